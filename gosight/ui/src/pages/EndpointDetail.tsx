// Endpoint detail: facts of one host and tabs of charts (see ENDPOINT_TABS), or the
// container detail view for container endpoints.

import { useEffect, useMemo, useState } from 'preact/hooks';
import { Chart } from '../components/Chart';
import { ConflictBanner } from '../components/ConflictBanner';
import { ErrorMessage, Link, StatusBadge } from '../components/Status';
import { TabPanel, Tabs } from '../components/Tabs';
import { ApiError, getEndpoint, isAbort, type Endpoint } from '../lib/api';
import { isContainerEndpoint } from '../lib/containers';
import { formatAgo, formatDateTime, formatDuration } from '../lib/format';
import { navigate, useReloadTick } from '../lib/state';
import type { AppState } from '../lib/url';
import { ContainerDetail } from './ContainerDetail';
import { ContainersTab, useContainerCount } from './ContainersTab';
import { ENDPOINT_TABS, endpointSelector, visibleTabs } from './panels';

function Facts({ endpoint }: { endpoint: Endpoint }) {
  const { facts } = endpoint;
  const now = Date.now();
  const boot = Number(facts.boot_time_unix_ms);
  const rows: [string, string][] = [
    ['Operating system', facts.os_version || facts.platform || facts.os || '–'],
    ['Kernel', facts.kernel_version || '–'],
    ['Architecture', facts.arch || '–'],
    ['Uptime', boot && endpoint.status !== 'offline' ? formatDuration((now - boot) / 1000) : '–'],
    ['Agent', facts.agent_version ? `${facts.agent_version}, every ${facts.interval_s ?? '?'} s` : '–'],
    ['Last seen', endpoint.last_seen ? formatAgo(Date.parse(endpoint.last_seen), now) : 'never'],
    ['First seen', endpoint.first_seen ? formatDateTime(Date.parse(endpoint.first_seen)) : '–'],
  ];
  return (
    <dl class="facts" data-testid="facts">
      {rows.map(([term, value]) => (
        <div key={term} class="fact">
          <dt>{term}</dt>
          <dd>{value}</dd>
        </div>
      ))}
      {Object.keys(endpoint.labels).length > 0 && (
        <div class="fact fact-wide">
          <dt>Labels</dt>
          <dd class="labels">
            {Object.entries(endpoint.labels).map(([name, value]) => (
              <span key={name} class="label-chip">
                {name}={value}
              </span>
            ))}
          </dd>
        </div>
      )}
    </dl>
  );
}

export function EndpointDetail({ state }: { state: AppState }) {
  return isContainerEndpoint(state.endpoint) ? <ContainerDetail state={state} /> : <HostDetail state={state} />;
}

function HostDetail({ state }: { state: AppState }) {
  const tick = useReloadTick();
  const [endpoint, setEndpoint] = useState<Endpoint | null>(null);
  const [error, setError] = useState('');
  const [missing, setMissing] = useState(false);

  useEffect(() => {
    const controller = new AbortController();
    getEndpoint(state.endpoint, controller.signal)
      .then((found) => {
        setEndpoint(found);
        setError('');
      })
      .catch((failure: unknown) => {
        if (isAbort(failure)) return;
        if (failure instanceof ApiError && failure.status === 404) setMissing(true);
        else setError(`Loading the endpoint failed: ${(failure as Error).message ?? String(failure)}`);
      });
    return () => controller.abort();
  }, [state.endpoint, tick]);

  const containerCount = useContainerCount(state.endpoint);
  const tabs = visibleTabs(ENDPOINT_TABS, containerCount, state.tab);
  const tab = tabs.find((item) => item.id === state.tab) ?? tabs[0];
  const selector = endpointSelector(state.endpoint);
  const panels = useMemo(() => (tab.scope ? [] : tab.panels(selector)), [tab, selector]);
  const intervalS = Number(endpoint?.facts.interval_s) || 10;
  // Charts wait for the endpoint, whose collection interval sets their step; starting
  // them earlier would fetch every range twice.
  const chartsReady = endpoint !== null || error !== '';

  if (missing) {
    return (
      <div class="page">
        <h1 class="page-title" tabIndex={-1}>
          Endpoint not found
        </h1>
        <p>
          No endpoint has the id <code>{state.endpoint}</code>.{' '}
          <Link to={{ page: 'endpoints' }}>See all endpoints</Link>.
        </p>
      </div>
    );
  }

  return (
    <div class="page">
      <nav class="breadcrumbs" aria-label="Breadcrumb">
        <Link to={{ page: 'endpoints' }}>Endpoints</Link>
        <span aria-hidden="true">/</span>
        <span aria-current="page">{endpoint?.hostname || state.endpoint}</span>
      </nav>
      <div class="page-header">
        <h1 class="page-title" tabIndex={-1} data-testid="endpoint-title">
          {endpoint?.hostname || state.endpoint}
        </h1>
        {endpoint && <StatusBadge status={endpoint.status} />}
        <span class="muted mono" title="Endpoint id">
          {state.endpoint}
        </span>
      </div>
      {error && <ErrorMessage message={error} />}
      {/* The id check hides the previous endpoint's conflict while a linked endpoint loads. */}
      {endpoint?.conflict && endpoint.endpoint_id === state.endpoint && (
        <ConflictBanner conflict={endpoint.conflict} endpointId={endpoint.endpoint_id} />
      )}
      {endpoint && <Facts endpoint={endpoint} />}
      <Tabs
        tabs={tabs}
        selected={tab.id}
        onSelect={(id) => navigate({ tab: id })}
        label="Endpoint metrics"
        idPrefix="endpoint"
      />
      <TabPanel idPrefix="endpoint" id={tab.id}>
        {tab.scope === 'containers' && chartsReady && (
          <ContainersTab hostId={state.endpoint} tab={tab} range={state.range} refresh={state.refresh} intervalS={intervalS} />
        )}
        <div class="grid grid-2" key={tab.id}>
          {chartsReady && panels.map((panel) => (
            <Chart
              key={`${tab.id}-${panel.id}`}
              panel={panel}
              range={state.range}
              refresh={state.refresh}
              intervalS={intervalS}
            />
          ))}
        </div>
      </TabPanel>
    </div>
  );
}
