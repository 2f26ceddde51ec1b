import { describe, expect, it } from 'vitest';
import type { Endpoint } from './api';
import {
  containerStatusQuery,
  endpointName,
  isContainerEndpoint,
  memoryPercentOfLimit,
  parseContainerStatus,
  sortContainers,
} from './containers';
import { ENDPOINT_TABS, containerCpuPercentExpr, containerPanels, visibleTabs } from '../pages/panels';

function endpoint(id: string, extra: Partial<Endpoint> = {}): Endpoint {
  return {
    endpoint_id: id,
    kind: isContainerEndpoint(id) ? 'container' : 'host',
    status: 'online',
    hostname: 'web1',
    agent_id: 'a',
    connected: false,
    labels: {},
    facts: {},
    first_seen: null,
    last_seen: null,
    last_data: null,
    parent: isContainerEndpoint(id) ? 'host-1' : '',
    gone_at: null,
    conflict: null,
    ...extra,
  };
}

describe('container endpoints', () => {
  it('recognizes container ids by prefix', () => {
    expect(isContainerEndpoint('ctr-0123456789ab')).toBe(true);
    expect(isContainerEndpoint('host-0123456789ab')).toBe(false);
  });

  it('names containers by container name and hosts by host name', () => {
    expect(endpointName(endpoint('ctr-1', { facts: { container_name: 'shop-db' } }))).toBe('shop-db');
    expect(endpointName(endpoint('ctr-2'))).toBe('ctr-2');
    expect(endpointName(endpoint('host-1'))).toBe('web1');
  });
});

describe('containerStatusQuery', () => {
  it('tags each part and restricts every selector', () => {
    const query = containerStatusQuery('endpoint_id=~"ctr-1|ctr-2"');
    expect(query.split(' or ')).toHaveLength(5);
    for (const field of ['state', 'cpu', 'memory', 'limit', 'started']) {
      expect(query).toContain(`"status_field", "${field}"`);
    }
    expect(query.match(/\{endpoint_id=~"ctr-1\|ctr-2"\}/g)).toHaveLength(5);
    expect(query).toContain('container_state{endpoint_id=~"ctr-1|ctr-2"} == 1');
  });
});

describe('parseContainerStatus', () => {
  it('collects the fields of each container', () => {
    const statuses = parseContainerStatus([
      { metric: { endpoint_id: 'ctr-1', status_field: 'state', state: 'running' }, value: [1, '1'] },
      { metric: { endpoint_id: 'ctr-1', status_field: 'cpu' }, value: [1, '12.5'] },
      { metric: { endpoint_id: 'ctr-1', status_field: 'memory' }, value: [1, '1048576'] },
      { metric: { endpoint_id: 'ctr-1', status_field: 'limit' }, value: [1, '4194304'] },
      { metric: { endpoint_id: 'ctr-2', status_field: 'state', state: 'exited' }, value: [1, '1'] },
      { metric: { status_field: 'cpu' }, value: [1, '3'] },
      { metric: { endpoint_id: 'ctr-3' }, value: [1, '3'] },
    ]);
    expect(statuses.get('ctr-1')).toEqual({ state: 'running', cpu: 12.5, memory: 1048576, limit: 4194304 });
    expect(statuses.get('ctr-2')).toEqual({ state: 'exited' });
    expect(statuses.size).toBe(2);
  });
});

describe('memoryPercentOfLimit', () => {
  it('divides by the limit when there is one', () => {
    expect(memoryPercentOfLimit({ memory: 25, limit: 100 })).toBe(25);
    expect(memoryPercentOfLimit({ memory: 25, limit: 0 })).toBeUndefined();
    expect(memoryPercentOfLimit({ limit: 100 })).toBeUndefined();
  });
});

describe('sortContainers', () => {
  it('puts running containers first, then the others, then removed ones, each by name', () => {
    const endpoints = [
      endpoint('ctr-1', { facts: { container_name: 'b' } }),
      endpoint('ctr-2', { facts: { container_name: 'a' }, status: 'gone' }),
      endpoint('ctr-3', { facts: { container_name: 'c' } }),
      endpoint('ctr-4', { facts: { container_name: 'd' } }),
    ];
    const statuses = new Map([
      ['ctr-3', { state: 'running' }],
      ['ctr-4', { state: 'running' }],
      ['ctr-1', { state: 'exited' }],
    ]);
    expect(sortContainers(endpoints, statuses).map((item) => item.endpoint_id)).toEqual(['ctr-3', 'ctr-4', 'ctr-1', 'ctr-2']);
  });
});

describe('container panels', () => {
  it('select the container in every query', () => {
    for (const panel of containerPanels('endpoint_id="ctr-1"')) {
      for (const query of panel.queries) expect(query.expr).toContain('{endpoint_id="ctr-1"}');
    }
  });

  it('compute CPU in percent of one CPU per container', () => {
    expect(containerCpuPercentExpr('endpoint_id=~"ctr-1"')).toBe(
      '100 * sum by (endpoint_id, name) (rate(container_cpu_usage_seconds_total{endpoint_id=~"ctr-1"}[$__rate_interval]))',
    );
  });
});

describe('visibleTabs', () => {
  const ids = (count: number | null, requested: string) => visibleTabs(ENDPOINT_TABS, count, requested).map((tab) => tab.id);

  it('shows the containers tab only on hosts with containers', () => {
    expect(ids(2, 'overview')).toContain('containers');
    expect(ids(0, 'overview')).not.toContain('containers');
    expect(ids(0, 'containers')).not.toContain('containers');
  });

  it('keeps a requested containers tab while the count loads', () => {
    expect(ids(null, 'containers')).toContain('containers');
    expect(ids(null, 'overview')).not.toContain('containers');
  });
});
