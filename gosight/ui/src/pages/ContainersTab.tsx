// The Containers tab of a host: its containers with state, CPU and memory, and
// charts comparing them. Removed containers stay listed, marked gone, with their history.

import { useEffect, useMemo, useState } from 'preact/hooks';
import { Chart } from '../components/Chart';
import { ErrorMessage, Link, Meter, StatusBadge } from '../components/Status';
import { isAbort, listEndpoints, type Endpoint } from '../lib/api';
import {
  endpointName,
  fetchContainerStatus,
  memoryPercentOfLimit,
  sortContainers,
  type ContainerStatus,
} from '../lib/containers';
import { formatBytes, formatPercent } from '../lib/format';
import { useReloadTick } from '../lib/state';
import type { Refresh, TimeRange } from '../lib/time';
import { endpointsSelector } from '../lib/usage';
import type { TabDef } from './panels';

// The endpoints API returns at most this many rows per request.
const MAX_CONTAINERS = 10_000;

interface ContainersTabProps {
  hostId: string;
  tab: TabDef;
  range: TimeRange;
  refresh: Refresh;
  intervalS: number;
}

/** List the containers of a host; null until the first response. */
export function useHostContainers(hostId: string): { containers: Endpoint[] | null; error: string } {
  const tick = useReloadTick();
  const [containers, setContainers] = useState<Endpoint[] | null>(null);
  const [error, setError] = useState('');
  useEffect(() => {
    const controller = new AbortController();
    listEndpoints({ kind: 'container', host: hostId, limit: MAX_CONTAINERS }, controller.signal)
      .then((page) => {
        setContainers(page.endpoints);
        setError('');
      })
      .catch((failure: unknown) => {
        if (!isAbort(failure)) setError(`Loading the containers failed: ${(failure as Error).message ?? String(failure)}`);
      });
    return () => controller.abort();
  }, [hostId, tick]);
  return { containers, error };
}

/** Count the containers of a host, gone ones included; null until the first response. */
export function useContainerCount(hostId: string): number | null {
  const tick = useReloadTick();
  const [count, setCount] = useState<number | null>(null);
  useEffect(() => {
    const controller = new AbortController();
    listEndpoints({ kind: 'container', host: hostId, limit: 1 }, controller.signal)
      .then((page) => setCount(page.total))
      .catch((failure: unknown) => {
        // Without the count the tab stays hidden; the host's own tabs work as before.
        if (!isAbort(failure)) setCount(0);
      });
    return () => controller.abort();
  }, [hostId, tick]);
  return count;
}

function MemoryCell({ status }: { status: ContainerStatus | undefined }) {
  if (status?.memory === undefined) return <span class="muted">–</span>;
  const percent = memoryPercentOfLimit(status);
  if (percent === undefined) return <span class="numeric">{formatBytes(status.memory)}</span>;
  return <Meter value={percent} label={`Memory of the ${formatBytes(status.limit ?? 0)} limit`} />;
}

function ContainerRow({ endpoint, status }: { endpoint: Endpoint; status: ContainerStatus | undefined }) {
  const state = endpoint.status === 'gone' ? 'removed' : status?.state;
  return (
    <tr data-container={endpoint.endpoint_id}>
      <td class="cell-name">
        <Link to={{ page: 'endpoint', endpoint: endpoint.endpoint_id, tab: 'overview' }} title={endpointName(endpoint)}>
          {endpointName(endpoint)}
        </Link>
      </td>
      <td data-column="state">
        {state ? <span class={`state-chip state-${state}`}>{state}</span> : <span class="muted">–</span>}
      </td>
      <td data-column="cpu" title="Percent of one CPU">
        {status?.cpu === undefined ? <span class="muted">–</span> : formatPercent(status.cpu)}
      </td>
      <td data-column="memory">
        <MemoryCell status={status} />
      </td>
      <td class="mono">{endpoint.facts.image || '–'}</td>
      <td>
        <StatusBadge status={endpoint.status} />
      </td>
    </tr>
  );
}

export function ContainersTab({ hostId, tab, range, refresh, intervalS }: ContainersTabProps) {
  const tick = useReloadTick();
  const { containers, error } = useHostContainers(hostId);
  const [statuses, setStatuses] = useState(new Map<string, ContainerStatus>());
  const [statusError, setStatusError] = useState('');
  const ids = useMemo(() => (containers ?? []).map((endpoint) => endpoint.endpoint_id), [containers]);
  const idsKey = ids.join(',');

  useEffect(() => {
    const controller = new AbortController();
    fetchContainerStatus(ids, controller.signal)
      .then((found) => {
        setStatuses(found);
        setStatusError('');
      })
      .catch((failure: unknown) => {
        if (!isAbort(failure)) setStatusError(`State, CPU and memory unavailable: ${(failure as Error).message}`);
      });
    return () => controller.abort();
  }, [idsKey, tick]);

  const panels = useMemo(() => (ids.length > 0 ? tab.panels(endpointsSelector(ids)) : []), [tab, idsKey]);
  const rows = containers ? sortContainers(containers, statuses) : [];

  return (
    <div class="containers-tab">
      {error && <ErrorMessage message={error} />}
      {statusError && <p class="notice">{statusError}</p>}
      <div class="panel table-panel">
        <table class="table" data-testid="containers-table" aria-busy={containers === null}>
          <thead>
            <tr>
              <th scope="col">Container</th>
              <th scope="col">State</th>
              <th scope="col">CPU</th>
              <th scope="col">Memory</th>
              <th scope="col">Image</th>
              <th scope="col">Status</th>
            </tr>
          </thead>
          <tbody>
            {rows.map((endpoint) => (
              <ContainerRow key={endpoint.endpoint_id} endpoint={endpoint} status={statuses.get(endpoint.endpoint_id)} />
            ))}
          </tbody>
        </table>
        {containers && containers.length === 0 && <p class="empty-state">No containers reported on this host.</p>}
      </div>
      <div class="grid grid-2">
        {panels.map((panel) => (
          <Chart key={panel.id} panel={panel} range={range} refresh={refresh} intervalS={intervalS} />
        ))}
      </div>
    </div>
  );
}
