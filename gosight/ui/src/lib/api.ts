// Clients of the server's REST API and its Prometheus-compatible API. Every call
// takes an AbortSignal, so a view that changes cancels the fetches it no longer needs.

export type Labels = Record<string, string>;

/** One series of a range query: labels and [seconds, "value"] pairs. */
export interface MatrixSeries {
  metric: Labels;
  values: [number, string][];
}

/** One series of an instant query. */
export interface VectorSample {
  metric: Labels;
  value: [number, string];
}

export type QueryData =
  | { resultType: 'matrix'; result: MatrixSeries[] }
  | { resultType: 'vector'; result: VectorSample[] }
  | { resultType: 'scalar' | 'string'; result: [number, string] };

// Prometheus writes infinities as "+Inf" and "-Inf". The pattern also accepts "Inf" and "Infinity"
// in any case, because other servers of the same API may spell them so.
const INFINITY = /^([+-]?)inf(inity)?$/i;

/**
 * Parse a sample value as the Prometheus API writes it: a decimal number, "+Inf",
 * "-Inf" or "NaN". Number() alone returns NaN for "+Inf" and 0 for an empty string.
 * Returns NaN for text that is not a number.
 */
export function parseSampleValue(text: string): number {
  const infinity = INFINITY.exec(text.trim());
  if (infinity) return infinity[1] === '-' ? -Infinity : Infinity;
  if (text.trim() === '') return NaN;
  return Number(text);
}

export interface EndpointFacts {
  os?: string;
  os_version?: string;
  platform?: string;
  kernel_version?: string;
  arch?: string;
  agent_version?: string;
  boot_time_unix_ms?: string;
  interval_s?: string;
  [name: string]: string | undefined;
}

export interface Endpoint {
  endpoint_id: string;
  /** "host", or "container" for a container an agent reports. */
  kind: string;
  /** "gone" only for a container that its host's agent reported removed. */
  status: 'online' | 'idle' | 'offline' | 'gone';
  hostname: string;
  agent_id: string;
  connected: boolean;
  labels: Labels;
  facts: EndpointFacts;
  first_seen: string | null;
  last_seen: string | null;
  last_data: string | null;
  /** Endpoint id of the host a container runs on; empty for hosts. */
  parent: string;
  gone_at: string | null;
  /** Null unless two or more agents claimed this endpoint's id, as clones of one VM image do. */
  conflict: EndpointConflict | null;
}

/** One agent that claimed a shared endpoint id, and the endpoint the server stores its data under. */
export interface ConflictAgent {
  agent_id: string;
  hostname: string;
  endpoint_id: string;
  status: Endpoint['status'];
}

/**
 * Agents that claimed one host endpoint id. The first agent keeps the id, and the
 * server stores the data of each later agent under `<endpoint id>-<12 hex digits>`.
 */
export interface EndpointConflict {
  /** The endpoint id the agents claimed. */
  endpoint_id: string;
  /** True while at least two of the agents are online or idle. */
  active: boolean;
  /** First-seen time of the oldest split-off endpoint (RFC 3339). */
  detected_at: string | null;
  /** The agent that keeps the id, then the split-off agents, oldest first. */
  agents: ConflictAgent[];
  /** Fix for the operator, as one lowercase clause from the server. */
  hint: string;
}

export interface EndpointList {
  total: number;
  endpoints: Endpoint[];
}

/** A failed API call, with the server's message when it sent one. */
export class ApiError extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly errorType = '',
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

export function isAbort(error: unknown): boolean {
  return error instanceof DOMException && error.name === 'AbortError';
}

import { csrfToken, signedOut } from './auth';

const PROMETHEUS = '/prometheus/api/v1';

// Longer URLs risk the server's request line limit; the Prometheus API takes the
// same parameters as a form body in a POST.
const MAX_GET_URL = 4000;

async function getJSON<T>(path: string, params: URLSearchParams | null, signal?: AbortSignal): Promise<T> {
  const encoded = params ? params.toString() : '';
  const url = encoded ? `${path}?${encoded}` : path;
  const usePost = url.length > MAX_GET_URL && path.startsWith(PROMETHEUS);
  const response = usePost
    ? await fetch(path, {
        method: 'POST',
        signal,
        // A POST with a session cookie needs the session's CSRF token, even for a query.
        headers: { Accept: 'application/json', 'Content-Type': 'application/x-www-form-urlencoded', 'X-CSRF-Token': csrfToken() },
        body: encoded,
      })
    : await fetch(url, { signal, headers: { Accept: 'application/json' } });
  let body: unknown = null;
  try {
    body = await response.json();
  } catch (error) {
    if (isAbort(error)) throw error;
  }
  if (!response.ok || isPrometheusError(body)) {
    const error = errorFrom(body, response.status, path);
    if (response.status === 401) signedOut(error.message, error.errorType === 'setup_required');
    throw error;
  }
  return body as T;
}

function isPrometheusError(body: unknown): boolean {
  return typeof body === 'object' && body !== null && (body as { status?: string }).status === 'error';
}

// Two error shapes reach the UI: Prometheus' {"status":"error","error":...} from
// /prometheus/api/v1 and GoSight's {"error":{"code","message"}} from /api/v1.
function errorFrom(body: unknown, status: number, url: string): ApiError {
  if (typeof body === 'object' && body !== null) {
    const record = body as { error?: unknown; errorType?: string };
    if (typeof record.error === 'string') return new ApiError(record.error, status, record.errorType ?? '');
    if (typeof record.error === 'object' && record.error !== null) {
      const nested = record.error as { message?: string; code?: string };
      if (nested.message) return new ApiError(nested.message, status, nested.code ?? '');
    }
  }
  return new ApiError(`request failed with HTTP ${status}: ${url}`, status);
}

export async function queryRange(
  query: string,
  startS: number,
  endS: number,
  stepS: number,
  signal?: AbortSignal,
): Promise<MatrixSeries[]> {
  const params = new URLSearchParams({ query, start: String(startS), end: String(endS), step: String(stepS) });
  const body = await getJSON<{ data: QueryData }>(`${PROMETHEUS}/query_range`, params, signal);
  return body.data.resultType === 'matrix' ? body.data.result : [];
}

export async function queryInstant(query: string, timeS: number | null, signal?: AbortSignal): Promise<QueryData> {
  const params = new URLSearchParams({ query });
  if (timeS !== null) params.set('time', String(timeS));
  const body = await getJSON<{ data: QueryData }>(`${PROMETHEUS}/query`, params, signal);
  return body.data;
}

/** Return the instant vector of a query, or an empty list for scalars and strings. */
export async function queryVector(query: string, signal?: AbortSignal): Promise<VectorSample[]> {
  const data = await queryInstant(query, null, signal);
  return data.resultType === 'vector' ? data.result : [];
}

export async function labelNames(match: string[], signal?: AbortSignal): Promise<string[]> {
  const params = new URLSearchParams();
  for (const selector of match) params.append('match[]', selector);
  const body = await getJSON<{ data: string[] }>(`${PROMETHEUS}/labels`, params, signal);
  return body.data;
}

export async function labelValues(name: string, match: string[], signal?: AbortSignal): Promise<string[]> {
  const params = new URLSearchParams();
  for (const selector of match) params.append('match[]', selector);
  const body = await getJSON<{ data: string[] }>(
    `${PROMETHEUS}/label/${encodeURIComponent(name)}/values`,
    params,
    signal,
  );
  return body.data;
}

export interface MetricInfo {
  type: string;
  help: string;
  unit: string;
}

export async function metricMetadata(signal?: AbortSignal): Promise<Record<string, MetricInfo[]>> {
  const body = await getJSON<{ data: Record<string, MetricInfo[]> }>(`${PROMETHEUS}/metadata`, null, signal);
  return body.data;
}

export interface EndpointQuery {
  search?: string;
  status?: string;
  label?: string;
  kind?: string;
  /** Endpoint id of a host: only its containers. */
  host?: string;
  sort?: string;
  limit: number;
  offset?: number;
}

export function listEndpoints(query: EndpointQuery, signal?: AbortSignal): Promise<EndpointList> {
  const params = new URLSearchParams({ limit: String(query.limit) });
  if (query.offset) params.set('offset', String(query.offset));
  if (query.search) params.set('q', query.search);
  if (query.status) params.set('status', query.status);
  if (query.label) params.set('label', query.label);
  if (query.kind) params.set('kind', query.kind);
  if (query.host) params.set('host', query.host);
  if (query.sort) params.set('sort', query.sort);
  return getJSON<EndpointList>('/api/v1/endpoints', params, signal);
}

export function getEndpoint(endpointId: string, signal?: AbortSignal): Promise<Endpoint> {
  return getJSON<Endpoint>(`/api/v1/endpoints/${encodeURIComponent(endpointId)}`, null, signal);
}

/** Quote a string as a PromQL string literal. */
export function promString(value: string): string {
  return JSON.stringify(value);
}

/** Escape a string for use inside a PromQL regular expression (RE2 syntax). */
export function regexEscape(value: string): string {
  return value.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
