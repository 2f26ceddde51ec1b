// The app state that lives in the URL, so every view can be shared as a link.
//
// Paths name the page: /, /endpoints, /endpoints/<id>, /explore, /login, /setup,
// /account, /settings and /settings/<section>. Query parameters
// carry the rest; parameters that equal their default are left out, and each page
// writes only the parameters it reads.

import {
  DEFAULT_RANGE,
  formatDurationShort,
  parseDuration,
  type Refresh,
  type TimeRange,
} from './time';

export type Page =
  | 'overview'
  | 'endpoints'
  | 'endpoint'
  | 'explore'
  | 'login'
  | 'setup'
  | 'account'
  | 'settings'
  | 'notfound';

/** Sections of the settings area, at /settings/<section>. */
export const SETTINGS_SECTIONS = ['users', 'roles', 'agent-tokens', 'security', 'events'] as const;
export type SettingsSection = (typeof SETTINGS_SECTIONS)[number];
export type Status = '' | 'online' | 'idle' | 'offline' | 'gone';
export type Kind = '' | 'host' | 'container';
export type ExplorerView = 'graph' | 'table';

/** Filters and paging of the endpoints table. */
export interface ListState {
  search: string;
  status: Status;
  kind: Kind;
  label: string;
  sort: string;
  page: number;
  pageSize: number;
}

export interface AppState {
  page: Page;
  endpoint: string;
  /** Section of the settings area; empty elsewhere. */
  section: string;
  tab: string;
  range: TimeRange;
  refresh: Refresh;
  queries: string[];
  view: ExplorerView;
  list: ListState;
}

export const PAGE_SIZES = [25, 50, 100, 200] as const;
export const DEFAULT_TAB = 'overview';
export const DEFAULT_SORT = 'hostname';

export const DEFAULT_LIST: ListState = {
  search: '',
  status: '',
  kind: '',
  label: '',
  sort: DEFAULT_SORT,
  page: 1,
  pageSize: 50,
};

export const DEFAULT_STATE: AppState = {
  page: 'overview',
  endpoint: '',
  section: '',
  tab: DEFAULT_TAB,
  range: DEFAULT_RANGE,
  refresh: 'off',
  queries: [],
  view: 'graph',
  list: DEFAULT_LIST,
};

const STATUSES: readonly Status[] = ['online', 'idle', 'offline', 'gone'];
const KINDS: readonly Kind[] = ['host', 'container'];

/** Parse a path and query string into the app state; unknown or invalid values fall back to defaults. */
export function parseState(pathname: string, search: string): AppState {
  const params = new URLSearchParams(search);
  const { page, endpoint, section } = parsePath(pathname);
  const range = parseRange(params);
  const refresh = parseRefresh(params.get('refresh'));
  return {
    page,
    endpoint,
    section,
    tab: page === 'endpoint' ? params.get('tab') || DEFAULT_TAB : DEFAULT_TAB,
    range,
    // Live mode follows the present, which a fixed time range does not include.
    refresh: refresh === 'live' && range.kind === 'absolute' ? 'off' : refresh,
    queries: page === 'explore' ? params.getAll('q') : [],
    view: page === 'explore' && params.get('view') === 'table' ? 'table' : 'graph',
    list: page === 'endpoints' ? parseList(params) : DEFAULT_LIST,
  };
}

function parsePath(pathname: string): { page: Page; endpoint: string; section: string } {
  const path = pathname.replace(/\/+$/, '') || '/';
  if (path === '/') return { page: 'overview', endpoint: '', section: '' };
  if (path === '/endpoints') return { page: 'endpoints', endpoint: '', section: '' };
  if (path === '/explore') return { page: 'explore', endpoint: '', section: '' };
  if (path === '/login') return { page: 'login', endpoint: '', section: '' };
  if (path === '/setup') return { page: 'setup', endpoint: '', section: '' };
  if (path === '/account') return { page: 'account', endpoint: '', section: '' };
  if (path === '/settings') return { page: 'settings', endpoint: '', section: '' };
  const section = /^\/settings\/([a-z-]+)$/.exec(path);
  if (section && (SETTINGS_SECTIONS as readonly string[]).includes(section[1])) {
    return { page: 'settings', endpoint: '', section: section[1] };
  }
  const match = /^\/endpoints\/([^/]+)$/.exec(path);
  if (match) {
    try {
      return { page: 'endpoint', endpoint: decodeURIComponent(match[1]), section: '' };
    } catch {
      return { page: 'notfound', endpoint: '', section: '' };
    }
  }
  return { page: 'notfound', endpoint: '', section: '' };
}

function parseRange(params: URLSearchParams): TimeRange {
  const from = parseMoment(params.get('from'));
  const to = parseMoment(params.get('to'));
  if (from !== null && to !== null && from < to) return { kind: 'absolute', startMs: from, endMs: to };
  const seconds = parseDuration(params.get('range') ?? '');
  return seconds === null ? DEFAULT_RANGE : { kind: 'relative', seconds };
}

/** Parse an ISO 8601 time or epoch milliseconds; null when neither. */
export function parseMoment(text: string | null): number | null {
  if (!text) return null;
  if (/^\d+$/.test(text)) return Number(text);
  const parsed = Date.parse(text);
  return Number.isNaN(parsed) ? null : parsed;
}

function parseRefresh(text: string | null): Refresh {
  if (!text || text === 'off') return 'off';
  if (text === 'live') return 'live';
  return parseDuration(text) ?? 'off';
}

function parseList(params: URLSearchParams): ListState {
  const status = params.get('status') as Status | null;
  const kind = params.get('kind') as Kind | null;
  const page = Number(params.get('page'));
  const pageSize = Number(params.get('size'));
  return {
    search: params.get('search') ?? '',
    status: status && STATUSES.includes(status) ? status : '',
    kind: kind && KINDS.includes(kind) ? kind : '',
    label: params.get('label') ?? '',
    sort: params.get('sort') || DEFAULT_SORT,
    page: Number.isInteger(page) && page >= 1 ? page : 1,
    pageSize: (PAGE_SIZES as readonly number[]).includes(pageSize) ? pageSize : DEFAULT_LIST.pageSize,
  };
}

/** Serialize the state to a path with a query string, the inverse of parseState. */
export function serializeState(state: AppState): string {
  const params = new URLSearchParams();
  if (state.page === 'endpoint' && state.tab !== DEFAULT_TAB) params.set('tab', state.tab);
  if (state.page === 'explore') {
    for (const query of state.queries) params.append('q', query);
    if (state.view !== 'graph') params.set('view', state.view);
  }
  if (state.page === 'endpoints') writeList(params, state.list);
  writeRange(params, state.range);
  const liveWithoutPresent = state.refresh === 'live' && state.range.kind === 'absolute';
  if (state.refresh !== 'off' && !liveWithoutPresent) {
    params.set('refresh', state.refresh === 'live' ? 'live' : formatDurationShort(state.refresh));
  }
  const query = params.toString();
  return pathOf(state) + (query ? `?${query}` : '');
}

function pathOf(state: AppState): string {
  switch (state.page) {
    case 'endpoints':
      return '/endpoints';
    case 'endpoint':
      return `/endpoints/${encodeURIComponent(state.endpoint)}`;
    case 'explore':
      return '/explore';
    case 'login':
    case 'setup':
    case 'account':
      return `/${state.page}`;
    case 'settings':
      return state.section ? `/settings/${state.section}` : '/settings';
    default:
      return '/';
  }
}

function writeRange(params: URLSearchParams, range: TimeRange): void {
  if (range.kind === 'absolute') {
    params.set('from', new Date(range.startMs).toISOString());
    params.set('to', new Date(range.endMs).toISOString());
    return;
  }
  if (range.kind !== DEFAULT_RANGE.kind || range.seconds !== DEFAULT_RANGE.seconds) {
    params.set('range', formatDurationShort(range.seconds));
  }
}

function writeList(params: URLSearchParams, list: ListState): void {
  if (list.search) params.set('search', list.search);
  if (list.status) params.set('status', list.status);
  if (list.kind) params.set('kind', list.kind);
  if (list.label) params.set('label', list.label);
  if (list.sort !== DEFAULT_SORT) params.set('sort', list.sort);
  if (list.page !== 1) params.set('page', String(list.page));
  if (list.pageSize !== DEFAULT_LIST.pageSize) params.set('size', String(list.pageSize));
}
