// CPU, memory and disk usage of many endpoints in one PromQL query, for tables.

import { parseSampleValue, queryVector, regexEscape } from './api';
import { cpuPercentExpr, filesystemPercentExpr, memoryPercentExpr } from '../pages/panels';

export interface Usage {
  cpu?: number;
  memory?: number;
  disk?: number;
}

// Instant values use a fixed rate window: long enough for two samples at a
// one-minute collection interval, short enough to show the present.
const INSTANT_WINDOW = '2m';

function tag(expr: string, kind: keyof Usage): string {
  // label_replace on __name__ with ".*" always matches, so it only adds the label.
  return `label_replace(${expr}, "usage", "${kind}", "__name__", ".*")`;
}

/**
 * Build one query that returns, per endpoint, three series tagged usage="cpu",
 * "memory" and "disk" (the fullest mount). `selector` restricts the endpoints.
 */
export function usageQuery(selector: string): string {
  const cpu = cpuPercentExpr(selector).replace('$__rate_interval', INSTANT_WINDOW);
  const memory = `max by (endpoint_id) (${memoryPercentExpr(selector)})`;
  const disk = `max by (endpoint_id) (${filesystemPercentExpr(selector)})`;
  return [tag(cpu, 'cpu'), tag(memory, 'memory'), tag(disk, 'disk')].join(' or ');
}

export function endpointsSelector(endpointIds: string[]): string {
  return `endpoint_id=~"${endpointIds.map(regexEscape).map(escapeQuotes).join('|')}"`;
}

function escapeQuotes(text: string): string {
  return text.replace(/\\/g, '\\\\').replace(/"/g, '\\"');
}

/** Fetch usage of the given endpoints; endpoints without data are missing from the map. */
export async function fetchUsage(endpointIds: string[], signal: AbortSignal): Promise<Map<string, Usage>> {
  const usage = new Map<string, Usage>();
  if (endpointIds.length === 0) return usage;
  const samples = await queryVector(usageQuery(endpointsSelector(endpointIds)), signal);
  for (const sample of samples) {
    const id = sample.metric.endpoint_id;
    const kind = sample.metric.usage as keyof Usage | undefined;
    if (!id || !kind) continue;
    const entry = usage.get(id) ?? {};
    entry[kind] = parseSampleValue(sample.value[1]);
    usage.set(id, entry);
  }
  return usage;
}
