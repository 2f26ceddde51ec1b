// Endpoint detail: facts of one endpoint and tabs of charts (see ENDPOINT_TABS).

import { useEffect, useMemo, useState } from 'preact/hooks';
import { Chart } from '../components/Chart';
import { ErrorMessage, Link, StatusBadge } from '../components/Status';
import { TabPanel, Tabs } from '../components/Tabs';
import { ApiError, getEndpoint, isAbort, type Endpoint } from '../lib/api';
import { formatAgo, formatDateTime, formatDuration } from '../lib/format';
import { navigate, useReloadTick } from '../lib/state';
import type { AppState } from '../lib/url';
import { ENDPOINT_TABS, endpointSelector } from './panels';

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

  const tab = ENDPOINT_TABS.find((item) => item.id === state.tab) ?? ENDPOINT_TABS[0];
  const selector = endpointSelector(state.endpoint);
  const panels = useMemo(() => tab.panels(selector), [tab, selector]);
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
      {endpoint && <Facts endpoint={endpoint} />}
      <Tabs
        tabs={ENDPOINT_TABS}
        selected={tab.id}
        onSelect={(id) => navigate({ tab: id })}
        label="Endpoint metrics"
        idPrefix="endpoint"
      />
      <TabPanel idPrefix="endpoint" id={tab.id}>
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
