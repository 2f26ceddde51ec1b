// Containers: endpoints whose id starts with ctr-, linked to the host they run on.
// One PromQL query returns the state, CPU and memory of many containers at once,
// for the host's Containers tab and the endpoints table.

import { parseSampleValue, queryVector, type Endpoint, type VectorSample } from './api';
import { endpointsSelector } from './usage';

/** Prefix of the endpoint ids that the agent gives containers: ctr- and 12 characters of the container id. */
export const CONTAINER_PREFIX = 'ctr-';

// Same fixed window as the host usage columns: two samples at a one-minute interval.
const INSTANT_WINDOW = '2m';

export interface ContainerStatus {
  /** The engine's state: running, exited, paused and so on. */
  state?: string;
  /** CPU time in percent of one CPU. */
  cpu?: number;
  /** Working set in bytes. */
  memory?: number;
  /** Memory limit in bytes; 0 when the container has none. */
  limit?: number;
  /** Time the container last started, in seconds since the Unix epoch. */
  started?: number;
}

export function isContainerEndpoint(endpointId: string): boolean {
  return endpointId.startsWith(CONTAINER_PREFIX);
}

/** Name to show for an endpoint: the container name for containers, else the host name. */
export function endpointName(endpoint: Endpoint): string {
  if (endpoint.kind === 'container') return endpoint.facts.container_name || endpoint.endpoint_id;
  return endpoint.hostname || endpoint.endpoint_id;
}

function tag(expr: string, field: keyof ContainerStatus): string {
  // label_replace on __name__ with ".*" always matches, so it only adds the label.
  return `label_replace(${expr}, "status_field", "${field}", "__name__", ".*")`;
}

/**
 * Build one instant query that returns, per container matched by `selector`, series
 * tagged status_field="state" (with the state label), "cpu", "memory", "limit" and "started".
 */
export function containerStatusQuery(selector: string): string {
  const sel = `{${selector}}`;
  return [
    tag(`container_state${sel} == 1`, 'state'),
    tag(`100 * sum by (endpoint_id) (rate(container_cpu_usage_seconds_total${sel}[${INSTANT_WINDOW}]))`, 'cpu'),
    tag(`max by (endpoint_id) (container_memory_working_set_bytes${sel})`, 'memory'),
    tag(`max by (endpoint_id) (container_spec_memory_limit_bytes${sel})`, 'limit'),
    tag(`max by (endpoint_id) (container_start_time_seconds${sel})`, 'started'),
  ].join(' or ');
}

/** Turn the samples of containerStatusQuery into a status per endpoint id. */
export function parseContainerStatus(samples: VectorSample[]): Map<string, ContainerStatus> {
  const statuses = new Map<string, ContainerStatus>();
  for (const sample of samples) {
    const id = sample.metric.endpoint_id;
    const field = sample.metric.status_field as keyof ContainerStatus | undefined;
    if (!id || !field) continue;
    const entry = statuses.get(id) ?? {};
    if (field === 'state') entry.state = sample.metric.state;
    else entry[field] = parseSampleValue(sample.value[1]);
    statuses.set(id, entry);
  }
  return statuses;
}

/** Return the working set in percent of the memory limit, or undefined without a limit. */
export function memoryPercentOfLimit(status: ContainerStatus): number | undefined {
  if (status.memory === undefined || !status.limit) return undefined;
  return (100 * status.memory) / status.limit;
}

/** Fetch the status of the given containers; containers without data are missing from the map. */
export async function fetchContainerStatus(endpointIds: string[], signal: AbortSignal): Promise<Map<string, ContainerStatus>> {
  if (endpointIds.length === 0) return new Map();
  const samples = await queryVector(containerStatusQuery(endpointsSelector(endpointIds)), signal);
  return parseContainerStatus(samples);
}

/** Sort containers for a table: running ones first, then by name. */
export function sortContainers(endpoints: Endpoint[], statuses: Map<string, ContainerStatus>): Endpoint[] {
  const rank = (endpoint: Endpoint) => {
    if (endpoint.status === 'gone') return 2;
    return statuses.get(endpoint.endpoint_id)?.state === 'running' ? 0 : 1;
  };
  return [...endpoints].sort((a, b) => rank(a) - rank(b) || endpointName(a).localeCompare(endpointName(b)));
}
