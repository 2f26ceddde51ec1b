// Overview: endpoint counts by status, the busiest endpoints, and fleet charts.

import { useEffect, useMemo, useState } from 'preact/hooks';
import { Chart } from '../components/Chart';
import { ErrorMessage, Link, Meter } from '../components/Status';
import { isAbort, listEndpoints, parseSampleValue, queryVector, type VectorSample } from '../lib/api';
import { useReloadTick } from '../lib/state';
import { DEFAULT_LIST, type AppState, type Status } from '../lib/url';
import { cpuPercentExpr, filesystemPercentExpr, fleetPanels, memoryPercentExpr } from './panels';

const STATUSES: { status: Exclude<Status, ''>; label: string }[] = [
  { status: 'online', label: 'Online' },
  { status: 'idle', label: 'Idle' },
  { status: 'offline', label: 'Offline' },
];

const TOP = 5;

const BUSIEST = [
  {
    id: 'cpu',
    title: 'Busiest by CPU',
    expr: `topk(${TOP}, ${cpuPercentExpr('').replace('$__rate_interval', '2m')})`,
  },
  { id: 'memory', title: 'Busiest by memory', expr: `topk(${TOP}, max by (endpoint_id, host) (${memoryPercentExpr('')}))` },
  { id: 'disk', title: 'Fullest disk', expr: `topk(${TOP}, max by (endpoint_id, host) (${filesystemPercentExpr('')}))` },
];

function StatusCounts() {
  const tick = useReloadTick();
  const [counts, setCounts] = useState<Record<string, number> | null>(null);
  const [error, setError] = useState('');

  useEffect(() => {
    const controller = new AbortController();
    Promise.all(STATUSES.map(({ status }) => listEndpoints({ status, limit: 1 }, controller.signal)))
      .then((lists) => {
        const next: Record<string, number> = {};
        STATUSES.forEach(({ status }, index) => {
          next[status] = lists[index].total;
        });
        setCounts(next);
        setError('');
      })
      .catch((failure: unknown) => {
        if (!isAbort(failure)) setError(`Loading endpoint counts failed: ${String((failure as Error).message ?? failure)}`);
      });
    return () => controller.abort();
  }, [tick]);

  if (error) return <ErrorMessage message={error} />;
  const total = counts ? Object.values(counts).reduce((sum, count) => sum + count, 0) : null;
  return (
    <div class="stat-grid" data-testid="status-counts">
      {STATUSES.map(({ status, label }) => (
        <Link key={status} to={{ page: 'endpoints', list: { ...DEFAULT_LIST, status } }} class={`stat stat-${status}`}>
          <span class="stat-label">
            <span class={`status-dot status-${status}`} aria-hidden="true" />
            {label}
          </span>
          <span class="stat-value" data-testid={`count-${status}`}>
            {counts ? counts[status] : '…'}
          </span>
        </Link>
      ))}
      <Link to={{ page: 'endpoints', list: DEFAULT_LIST }} class="stat">
        <span class="stat-label">Total endpoints</span>
        <span class="stat-value" data-testid="count-total">
          {total ?? '…'}
        </span>
      </Link>
    </div>
  );
}

function BusiestTable({ title, expr, id }: { title: string; expr: string; id: string }) {
  const tick = useReloadTick();
  const [rows, setRows] = useState<VectorSample[] | null>(null);
  const [error, setError] = useState('');

  useEffect(() => {
    const controller = new AbortController();
    queryVector(expr, controller.signal)
      .then((samples) => {
        setRows(samples.sort((a, b) => parseSampleValue(b.value[1]) - parseSampleValue(a.value[1])));
        setError('');
      })
      .catch((failure: unknown) => {
        if (!isAbort(failure)) setError((failure as Error).message ?? String(failure));
      });
    return () => controller.abort();
  }, [expr, tick]);

  const headingId = `busiest-${id}`;
  return (
    <section class="panel" aria-labelledby={headingId} data-testid={`busiest-${id}`}>
      <header class="panel-header">
        <h2 id={headingId} class="panel-title">
          {title}
        </h2>
      </header>
      {error && <ErrorMessage message={error} />}
      {!error && rows === null && <p class="muted panel-note">Loading…</p>}
      {!error && rows !== null && rows.length === 0 && <p class="muted panel-note">No data yet.</p>}
      {!error && rows !== null && rows.length > 0 && (
        <table class="table compact">
          <thead class="visually-hidden">
            <tr>
              <th scope="col">Endpoint</th>
              <th scope="col">Usage</th>
            </tr>
          </thead>
          <tbody>
            {rows.map((sample) => (
              <tr key={sample.metric.endpoint_id}>
                <td class="cell-name">
                  <Link
                    to={{ page: 'endpoint', endpoint: sample.metric.endpoint_id, tab: 'overview' }}
                    title={sample.metric.host || sample.metric.endpoint_id}
                  >
                    {sample.metric.host || sample.metric.endpoint_id}
                  </Link>
                </td>
                <td class="cell-meter">
                  <Meter value={parseSampleValue(sample.value[1])} label={title} />
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}

export function Overview({ state }: { state: AppState }) {
  const panels = useMemo(() => fleetPanels(), []);
  return (
    <div class="page">
      <div class="page-header">
        <h1 class="page-title" tabIndex={-1}>
          Overview
        </h1>
      </div>
      <StatusCounts />
      <div class="grid grid-3">
        {BUSIEST.map((item) => (
          <BusiestTable key={item.id} {...item} />
        ))}
      </div>
      <h2 class="section-title">Fleet</h2>
      <div class="grid grid-2">
        {panels.map((panel) => (
          <Chart key={panel.id} panel={panel} range={state.range} refresh={state.refresh} />
        ))}
      </div>
    </div>
  );
}
