import { describe, expect, it } from 'vitest';
import { DEFAULT_LIST, DEFAULT_STATE, parseState, serializeState, type AppState } from './url';

function roundTrip(state: AppState): AppState {
  const url = new URL(serializeState(state), 'http://gosight.test');
  return parseState(url.pathname, url.search);
}

describe('URL state round trips', () => {
  const cases: [string, AppState][] = [
    ['default overview', DEFAULT_STATE],
    ['overview with a relative range and refresh', { ...DEFAULT_STATE, range: { kind: 'relative', seconds: 6 * 3600 }, refresh: 30 }],
    ['endpoints with filters and paging', {
      ...DEFAULT_STATE,
      page: 'endpoints',
      list: { search: 'web 01', status: 'idle', kind: 'container', label: 'env=prod', sort: '-last_seen', page: 3, pageSize: 100 },
    }],
    ['endpoint detail with a tab and an absolute range', {
      ...DEFAULT_STATE,
      page: 'endpoint',
      endpoint: 'host/with spaces?&#',
      tab: 'network',
      range: { kind: 'absolute', startMs: Date.UTC(2024, 0, 1), endMs: Date.UTC(2024, 0, 2, 6, 30) },
    }],
    ['explorer with several queries and the table view', {
      ...DEFAULT_STATE,
      page: 'explore',
      queries: ['rate(node_cpu_seconds_total{mode="idle"}[5m])', 'sum by (device) (node_network_receive_bytes_total) + 1'],
      view: 'table',
      refresh: 'live',
    }],
  ];

  it.each(cases)('%s', (_, state) => {
    expect(roundTrip(state)).toEqual(state);
  });

  it.each([
    ['account page', { ...DEFAULT_STATE, page: 'account' } as AppState],
    ['settings section', { ...DEFAULT_STATE, page: 'settings', section: 'events' } as AppState],
    ['settings without a section', { ...DEFAULT_STATE, page: 'settings' } as AppState],
    ['sign-in page', { ...DEFAULT_STATE, page: 'login' } as AppState],
  ])('%s', (_, state) => {
    expect(roundTrip(state)).toEqual(state);
  });

  it('leaves defaults out of the URL', () => {
    expect(serializeState(DEFAULT_STATE)).toBe('/');
    expect(serializeState({ ...DEFAULT_STATE, page: 'endpoints', list: DEFAULT_LIST })).toBe('/endpoints');
  });

  it('writes readable parameters', () => {
    const url = serializeState({
      ...DEFAULT_STATE,
      page: 'endpoint',
      endpoint: 'web-1',
      tab: 'disk',
      range: { kind: 'relative', seconds: 86_400 },
      refresh: 'live',
    });
    expect(url).toBe('/endpoints/web-1?tab=disk&range=1d&refresh=live');
  });
});

describe('parseState', () => {
  it('reads the settings section from the path and rejects unknown ones', () => {
    expect(parseState('/settings/users', '').section).toBe('users');
    expect(parseState('/settings/agent-tokens', '').section).toBe('agent-tokens');
    expect(parseState('/settings/nothing', '').page).toBe('notfound');
    expect(serializeState({ ...DEFAULT_STATE, page: 'settings', section: 'roles' })).toBe('/settings/roles');
  });

  it('falls back to defaults for invalid values', () => {
    const state = parseState('/endpoints', '?status=broken&page=-2&size=7&range=soon&refresh=often');
    expect(state.list.status).toBe('');
    expect(state.list.page).toBe(1);
    expect(state.list.pageSize).toBe(50);
    expect(state.range).toEqual(DEFAULT_STATE.range);
    expect(state.refresh).toBe('off');
  });

  it('turns live off for absolute ranges', () => {
    // Live mode follows the present, which a fixed time range does not reach.
    const state = parseState('/explore', '?q=up&from=1700000000000&to=1700000600000&refresh=live');
    expect(state.refresh).toBe('off');
    const absolute = { kind: 'absolute' as const, startMs: 1_700_000_000_000, endMs: 1_700_000_600_000 };
    expect(serializeState({ ...DEFAULT_STATE, range: absolute, refresh: 'live' })).not.toContain('refresh');
    expect(parseState('/', '?range=5m&refresh=live').refresh).toBe('live');
  });

  it('accepts epoch milliseconds and ISO times for absolute ranges', () => {
    const state = parseState('/', '?from=1700000000000&to=2023-11-14T23:00:00Z');
    expect(state.range).toEqual({ kind: 'absolute', startMs: 1_700_000_000_000, endMs: Date.UTC(2023, 10, 14, 23) });
  });

  it('ignores an absolute range that ends before it starts', () => {
    const state = parseState('/', '?from=2024-01-02T00:00:00Z&to=2024-01-01T00:00:00Z&range=15m');
    expect(state.range).toEqual({ kind: 'relative', seconds: 900 });
  });

  it('recognizes pages by path', () => {
    expect(parseState('/', '').page).toBe('overview');
    expect(parseState('/endpoints/', '').page).toBe('endpoints');
    expect(parseState('/endpoints/a%2Fb', '').endpoint).toBe('a/b');
    expect(parseState('/explore', '?q=up&q=&view=graph').queries).toEqual(['up', '']);
    expect(parseState('/nowhere', '').page).toBe('notfound');
    expect(parseState('/endpoints/%E0%A4%A', '').page).toBe('notfound');
  });

  it('reads only the parameters of the current page', () => {
    const state = parseState('/', '?q=up&tab=disk&status=idle');
    expect(state.queries).toEqual([]);
    expect(state.tab).toBe('overview');
    expect(state.list).toEqual(DEFAULT_LIST);
  });
});
