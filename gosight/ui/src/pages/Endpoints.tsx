// Endpoints: a paged table of hosts and containers, filtered and sorted by the
// endpoints API. The CPU, memory and disk columns come from one PromQL query for the
// hosts on the page and one for the containers.

import { useEffect, useState } from 'preact/hooks';
import { ConflictMarker } from '../components/ConflictBanner';
import { ErrorMessage, Link, Meter, StatusBadge } from '../components/Status';
import { Icon } from '../components/Icon';
import { isAbort, listEndpoints, type Endpoint, type EndpointList } from '../lib/api';
import { endpointName, fetchContainerStatus, isContainerEndpoint, memoryPercentOfLimit } from '../lib/containers';
import { formatAgo, formatDuration } from '../lib/format';
import { navigate, useFollowingState, useReloadTick } from '../lib/state';
import { fetchUsage, type Usage } from '../lib/usage';
import { PAGE_SIZES, type AppState, type Kind, type ListState, type Status } from '../lib/url';

const SEARCH_DELAY_MS = 250;

function describeOs(endpoint: Endpoint): string {
  const { facts } = endpoint;
  if (endpoint.kind === 'container') return facts.image || '–';
  return facts.os_version || facts.platform || facts.os || '–';
}

function uptime(endpoint: Endpoint, nowMs: number): string {
  const boot = Number(endpoint.facts.boot_time_unix_ms);
  if (!boot || endpoint.status === 'offline') return '–';
  return formatDuration((nowMs - boot) / 1000);
}

function lastSeen(endpoint: Endpoint, nowMs: number): string {
  if (!endpoint.last_seen) return 'never';
  return formatAgo(Date.parse(endpoint.last_seen), nowMs);
}

/** Fetch the usage columns: host metrics for hosts, and CPU and memory of the limit for containers. */
async function fetchTableUsage(endpoints: Endpoint[], signal: AbortSignal): Promise<Map<string, Usage>> {
  const ids = endpoints.map((endpoint) => endpoint.endpoint_id);
  const containerIds = ids.filter(isContainerEndpoint);
  const [hosts, containers] = await Promise.all([
    fetchUsage(ids.filter((id) => !isContainerEndpoint(id)), signal),
    fetchContainerStatus(containerIds, signal),
  ]);
  for (const [id, status] of containers) {
    hosts.set(id, { cpu: status.cpu, memory: memoryPercentOfLimit(status) });
  }
  return hosts;
}

const SORTABLE: Record<string, string> = { status: 'Status', hostname: 'Hostname', last_seen: 'Last seen' };

function SortHeader({ field, list }: { field: string; list: ListState }) {
  const ascending = list.sort === field;
  const descending = list.sort === `-${field}`;
  const sort = ascending ? `-${field}` : field;
  let direction: 'ascending' | 'descending' | 'none' = 'none';
  if (ascending) direction = 'ascending';
  else if (descending) direction = 'descending';
  const marks = { ascending: '▲', descending: '▼', none: '' };
  return (
    <th scope="col" aria-sort={direction}>
      <button
        type="button"
        class="sort-button"
        onClick={() => navigate({ list: { ...list, sort, page: 1 } })}
        title={`Sort by ${SORTABLE[field].toLowerCase()}`}
      >
        {SORTABLE[field]}
        <span class="sort-mark" aria-hidden="true">
          {marks[direction]}
        </span>
      </button>
    </th>
  );
}

function Filters({ list }: { list: ListState }) {
  const [search, setSearch] = useFollowingState(list.search);
  const [label, setLabel] = useFollowingState(list.label);
  const [labelProblem, setLabelProblem] = useState('');

  // Typing replaces the history entry, so Back leaves the page instead of undoing letters.
  useEffect(() => {
    if (search === list.search) return undefined;
    const timer = window.setTimeout(() => navigate({ list: { ...list, search, page: 1 } }, true), SEARCH_DELAY_MS);
    return () => window.clearTimeout(timer);
  }, [search]);

  const applyLabel = (event: Event) => {
    event.preventDefault();
    const text = label.trim();
    if (text && !/^[^=]+=.*$/.test(text)) {
      setLabelProblem(`Invalid label filter "${text}": write name=value, such as env=prod.`);
      return;
    }
    setLabelProblem('');
    navigate({ list: { ...list, label: text, page: 1 } });
  };

  return (
    <div class="filters">
      <label class="field search-field">
        <span class="visually-hidden">Search endpoints</span>
        <Icon name="search" />
        <input
          type="search"
          placeholder="Search host, id, label or OS"
          value={search}
          onInput={(event) => setSearch(event.currentTarget.value)}
          data-testid="endpoint-search"
        />
      </label>
      <label class="field">
        <span>Status</span>
        <select
          value={list.status}
          onChange={(event) => navigate({ list: { ...list, status: event.currentTarget.value as Status, page: 1 } })}
          data-testid="status-filter"
        >
          <option value="">Any</option>
          <option value="online">Online</option>
          <option value="idle">Idle</option>
          <option value="offline">Offline</option>
          <option value="gone">Gone (removed containers)</option>
        </select>
      </label>
      <label class="field">
        <span>Kind</span>
        <select
          value={list.kind}
          onChange={(event) => navigate({ list: { ...list, kind: event.currentTarget.value as Kind, page: 1 } })}
          data-testid="kind-filter"
        >
          <option value="">Any</option>
          <option value="host">Hosts</option>
          <option value="container">Containers</option>
        </select>
      </label>
      <form class="field" onSubmit={applyLabel}>
        <label class="field">
          <span>Label</span>
          <input
            placeholder="name=value"
            value={label}
            size={14}
            onInput={(event) => setLabel(event.currentTarget.value)}
            onBlur={applyLabel}
            aria-invalid={labelProblem ? 'true' : undefined}
            aria-describedby={labelProblem ? 'label-problem' : undefined}
          />
        </label>
      </form>
      {labelProblem && (
        <p id="label-problem" class="form-error" role="alert">
          {labelProblem}
        </p>
      )}
    </div>
  );
}

function Pagination({ list, total }: { list: ListState; total: number }) {
  const pages = Math.max(1, Math.ceil(total / list.pageSize));
  const first = total === 0 ? 0 : (list.page - 1) * list.pageSize + 1;
  const last = Math.min(total, list.page * list.pageSize);
  const go = (page: number) => navigate({ list: { ...list, page } });
  return (
    <nav class="pagination" aria-label="Pages">
      <span class="muted" role="status" data-testid="page-range">
        {first.toLocaleString()}–{last.toLocaleString()} of {total.toLocaleString()}
      </span>
      <label class="field">
        <span>Rows</span>
        <select
          value={String(list.pageSize)}
          onChange={(event) => navigate({ list: { ...list, pageSize: Number(event.currentTarget.value), page: 1 } })}
        >
          {PAGE_SIZES.map((size) => (
            <option key={size} value={String(size)}>
              {size}
            </option>
          ))}
        </select>
      </label>
      <button type="button" class="control icon-only" aria-label="Previous page" disabled={list.page <= 1} onClick={() => go(list.page - 1)}>
        <Icon name="left" />
      </button>
      <span class="muted">
        Page {list.page} of {pages}
      </span>
      <button type="button" class="control icon-only" aria-label="Next page" disabled={list.page >= pages} onClick={() => go(list.page + 1)}>
        <Icon name="right" />
      </button>
    </nav>
  );
}

export function Endpoints({ state }: { state: AppState }) {
  const { list } = state;
  const tick = useReloadTick();
  const [result, setResult] = useState<EndpointList | null>(null);
  const [usage, setUsage] = useState(new Map<string, Usage>());
  const [error, setError] = useState('');
  const [usageError, setUsageError] = useState('');
  const listKey = JSON.stringify(list);

  useEffect(() => {
    const controller = new AbortController();
    const query = {
      search: list.search,
      status: list.status,
      kind: list.kind,
      label: list.label,
      sort: list.sort,
      limit: list.pageSize,
      offset: (list.page - 1) * list.pageSize,
    };
    listEndpoints(query, controller.signal)
      .then(async (page) => {
        setResult(page);
        setError('');
        try {
          setUsage(await fetchTableUsage(page.endpoints, controller.signal));
          setUsageError('');
        } catch (failure) {
          if (!isAbort(failure)) setUsageError(`Usage columns unavailable: ${(failure as Error).message}`);
        }
      })
      .catch((failure: unknown) => {
        if (!isAbort(failure)) setError(`Loading endpoints failed: ${(failure as Error).message ?? String(failure)}`);
      });
    return () => controller.abort();
  }, [listKey, tick]);

  const now = Date.now();
  return (
    <div class="page">
      <div class="page-header">
        <h1 class="page-title" tabIndex={-1}>
          Endpoints
        </h1>
      </div>
      <Filters list={list} />
      {error && <ErrorMessage message={error} />}
      {usageError && <p class="notice">{usageError}</p>}
      <div class="panel table-panel">
        <table class="table" data-testid="endpoints-table" aria-busy={result === null}>
          <thead>
            <tr>
              <SortHeader field="status" list={list} />
              <SortHeader field="hostname" list={list} />
              <th scope="col">Host</th>
              <th scope="col">OS or image</th>
              <th scope="col">Uptime</th>
              <th scope="col">CPU</th>
              <th scope="col">Memory</th>
              <th scope="col">Disk</th>
              <SortHeader field="last_seen" list={list} />
            </tr>
          </thead>
          <tbody>
            {result?.endpoints.map((endpoint) => {
              const values = usage.get(endpoint.endpoint_id) ?? {};
              return (
                <tr key={endpoint.endpoint_id} data-endpoint={endpoint.endpoint_id}>
                  <td>
                    <StatusBadge status={endpoint.status} />
                  </td>
                  <td class="cell-name">
                    <Link
                      to={{ page: 'endpoint', endpoint: endpoint.endpoint_id, tab: 'overview' }}
                      title={endpointName(endpoint)}
                    >
                      {endpointName(endpoint)}
                    </Link>
                    {endpoint.conflict && <ConflictMarker conflict={endpoint.conflict} endpointId={endpoint.endpoint_id} />}
                    {Object.keys(endpoint.labels).length > 0 && (
                      <span class="labels">
                        {Object.entries(endpoint.labels).map(([name, value]) => (
                          <span key={name} class="label-chip">
                            {name}={value}
                          </span>
                        ))}
                      </span>
                    )}
                  </td>
                  <td data-column="host">
                    {endpoint.parent ? (
                      <Link to={{ page: 'endpoint', endpoint: endpoint.parent, tab: 'containers' }}>
                        {endpoint.hostname || endpoint.parent}
                      </Link>
                    ) : (
                      <span class="muted">–</span>
                    )}
                  </td>
                  <td>{describeOs(endpoint)}</td>
                  <td class="numeric">{uptime(endpoint, now)}</td>
                  <td data-column="cpu">
                    <Meter value={values.cpu} label="CPU" />
                  </td>
                  <td data-column="memory">
                    <Meter value={values.memory} label="Memory" />
                  </td>
                  <td data-column="disk">
                    <Meter value={values.disk} label="Fullest disk" />
                  </td>
                  <td>
                    <time dateTime={endpoint.last_seen ?? undefined}>{lastSeen(endpoint, now)}</time>
                  </td>
                </tr>
              );
            })}
          </tbody>
        </table>
        {result && result.endpoints.length === 0 && (
          <p class="empty-state">
            {list.search || list.status || list.kind || list.label
              ? 'No endpoint matches these filters.'
              : 'No endpoints yet. Start an agent with: gosight agent --server HOST:PORT'}
          </p>
        )}
      </div>
      {result && <Pagination list={list} total={result.total} />}
    </div>
  );
}
