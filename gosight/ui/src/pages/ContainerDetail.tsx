// Container detail: what the engine reports about one container, its host, and
// charts of its CPU, memory, network and block I/O.

import { useEffect, useMemo, useState } from 'preact/hooks';
import { Chart } from '../components/Chart';
import { ErrorMessage, Link, StatusBadge } from '../components/Status';
import { ApiError, getEndpoint, isAbort, type Endpoint } from '../lib/api';
import { endpointName, fetchContainerStatus, type ContainerStatus } from '../lib/containers';
import { formatAgo, formatBytes, formatDateTime } from '../lib/format';
import { useReloadTick } from '../lib/state';
import type { AppState } from '../lib/url';
import { containerPanels, endpointSelector } from './panels';

function useEndpoint(endpointId: string): { endpoint: Endpoint | null; error: string; missing: boolean } {
  const tick = useReloadTick();
  const [endpoint, setEndpoint] = useState<Endpoint | null>(null);
  const [error, setError] = useState('');
  const [missing, setMissing] = useState(false);
  useEffect(() => {
    const controller = new AbortController();
    getEndpoint(endpointId, controller.signal)
      .then((found) => {
        setEndpoint(found);
        setError('');
      })
      .catch((failure: unknown) => {
        if (isAbort(failure)) return;
        if (failure instanceof ApiError && failure.status === 404) setMissing(true);
        else setError(`Loading the container failed: ${(failure as Error).message ?? String(failure)}`);
      });
    return () => controller.abort();
  }, [endpointId, tick]);
  return { endpoint, error, missing };
}

// The agent's default collection interval, for hosts that do not report theirs.
const DEFAULT_INTERVAL_S = 10;

/** Return the collection interval of the host's agent, which also collects the container; null while loading. */
function useHostInterval(hostId: string): number | null {
  const [intervalS, setIntervalS] = useState<number | null>(null);
  useEffect(() => {
    if (!hostId) return undefined;
    const controller = new AbortController();
    getEndpoint(hostId, controller.signal)
      .then((host) => setIntervalS(Number(host.facts.interval_s) || DEFAULT_INTERVAL_S))
      .catch((failure: unknown) => {
        if (!isAbort(failure)) setIntervalS(DEFAULT_INTERVAL_S);
      });
    return () => controller.abort();
  }, [hostId]);
  return intervalS;
}

function useContainerStatus(endpointId: string): ContainerStatus | undefined {
  const tick = useReloadTick();
  const [status, setStatus] = useState<ContainerStatus | undefined>(undefined);
  useEffect(() => {
    const controller = new AbortController();
    fetchContainerStatus([endpointId], controller.signal)
      .then((found) => setStatus(found.get(endpointId)))
      .catch(() => {
        // The facts and charts still show; the state cell stays empty.
      });
    return () => controller.abort();
  }, [endpointId, tick]);
  return status;
}

function Facts({ endpoint, status }: { endpoint: Endpoint; status: ContainerStatus | undefined }) {
  const { facts } = endpoint;
  const now = Date.now();
  const removed = endpoint.status === 'gone' && endpoint.gone_at;
  const rows: [string, string][] = [
    ['Image', facts.image || '–'],
    ['State', removed ? `removed ${formatAgo(Date.parse(endpoint.gone_at ?? ''), now)}` : status?.state ?? '–'],
    ['Started', status?.started ? formatDateTime(status.started * 1000) : '–'],
    ['Memory limit', status?.limit ? formatBytes(status.limit) : 'none'],
    ['Engine', facts.runtime || '–'],
    ['Container id', facts.container_id || '–'],
    ['Last seen', endpoint.last_seen ? formatAgo(Date.parse(endpoint.last_seen), now) : 'never'],
  ];
  return (
    <dl class="facts" data-testid="facts">
      <div class="fact">
        <dt>Host</dt>
        <dd>
          {endpoint.parent ? (
            <Link to={{ page: 'endpoint', endpoint: endpoint.parent, tab: 'containers' }}>
              {endpoint.hostname || endpoint.parent}
            </Link>
          ) : (
            '–'
          )}
        </dd>
      </div>
      {rows.map(([term, value]) => (
        <div key={term} class={term === 'Container id' ? 'fact fact-wide' : 'fact'}>
          <dt>{term}</dt>
          <dd class={term === 'Container id' ? 'mono' : undefined}>{value}</dd>
        </div>
      ))}
    </dl>
  );
}

export function ContainerDetail({ state }: { state: AppState }) {
  const { endpoint, error, missing } = useEndpoint(state.endpoint);
  const status = useContainerStatus(state.endpoint);
  const panels = useMemo(() => containerPanels(endpointSelector(state.endpoint)), [state.endpoint]);
  const hostIntervalS = useHostInterval(endpoint?.parent ?? '');
  const intervalS = hostIntervalS ?? DEFAULT_INTERVAL_S;
  // Charts wait for the host's interval, which sets their step, so ranges are fetched once.
  const chartsReady = (endpoint !== null && (!endpoint.parent || hostIntervalS !== null)) || error !== '';

  if (missing) {
    return (
      <div class="page">
        <h1 class="page-title" tabIndex={-1}>
          Container not found
        </h1>
        <p>
          No endpoint has the id <code>{state.endpoint}</code>. <Link to={{ page: 'endpoints' }}>See all endpoints</Link>.
        </p>
      </div>
    );
  }

  const name = endpoint ? endpointName(endpoint) : state.endpoint;
  return (
    <div class="page">
      <nav class="breadcrumbs" aria-label="Breadcrumb">
        <Link to={{ page: 'endpoints' }}>Endpoints</Link>
        {endpoint?.parent && (
          <>
            <span aria-hidden="true">/</span>
            <Link to={{ page: 'endpoint', endpoint: endpoint.parent, tab: 'containers' }}>
              {endpoint.hostname || endpoint.parent}
            </Link>
          </>
        )}
        <span aria-hidden="true">/</span>
        <span aria-current="page">{name}</span>
      </nav>
      <div class="page-header">
        <h1 class="page-title" tabIndex={-1} data-testid="endpoint-title">
          {name}
        </h1>
        {endpoint && <StatusBadge status={endpoint.status} />}
        {status?.state && endpoint?.status !== 'gone' && (
          <span class={`state-chip state-${status.state}`} data-testid="container-state">
            {status.state}
          </span>
        )}
        <span class="muted mono" title="Endpoint id">
          {state.endpoint}
        </span>
      </div>
      {error && <ErrorMessage message={error} />}
      {endpoint && <Facts endpoint={endpoint} status={status} />}
      <div class="grid grid-2">
        {chartsReady &&
          panels.map((panel) => (
            <Chart key={panel.id} panel={panel} range={state.range} refresh={state.refresh} intervalS={intervalS} />
          ))}
      </div>
    </div>
  );
}
