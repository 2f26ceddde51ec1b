// The app shell: header with navigation and time controls, and the current page.

import { useEffect, useState } from 'preact/hooks';
import type { ComponentType } from 'preact';
import { Icon } from './components/Icon';
import { Link } from './components/Status';
import { RefreshControl, TimeRangePicker } from './components/TimeControls';
import { EndpointDetail } from './pages/EndpointDetail';
import { Endpoints } from './pages/Endpoints';
import { Overview } from './pages/Overview';
import { useAppState } from './lib/state';
import { toggleTheme, useTheme } from './lib/theme';
import type { AppState, Page } from './lib/url';

const NAV: { page: Page; label: string }[] = [
  { page: 'overview', label: 'Overview' },
  { page: 'endpoints', label: 'Endpoints' },
  { page: 'explore', label: 'Explore' },
];

function ThemeToggle() {
  const theme = useTheme();
  const next = theme === 'dark' ? 'light' : 'dark';
  return (
    <button
      type="button"
      class="control icon-only"
      aria-label={`Switch to ${next} theme`}
      title={`Switch to ${next} theme`}
      data-testid="theme-toggle"
      data-theme-current={theme}
      onClick={toggleTheme}
    >
      <Icon name={theme === 'dark' ? 'sun' : 'moon'} />
    </button>
  );
}

// The explorer is the largest page and few visits need it, so it loads on demand.
let explorerModule: Promise<{ Explorer: ComponentType<{ state: AppState }> }> | null = null;

function LazyExplorer({ state }: { state: AppState }) {
  const [Explorer, setExplorer] = useState<ComponentType<{ state: AppState }> | null>(null);
  const [failed, setFailed] = useState('');
  useEffect(() => {
    explorerModule ??= import('./pages/Explorer');
    explorerModule
      .then((module) => setExplorer(() => module.Explorer))
      .catch((error: unknown) => setFailed(`Loading the explorer failed: ${String(error)}. Reload the page to try again.`));
  }, []);
  if (failed) return <p class="notice notice-error" role="alert">{failed}</p>;
  if (!Explorer) return <p class="muted" role="status">Loading the explorer…</p>;
  return <Explorer state={state} />;
}

function NotFound() {
  return (
    <div class="page">
      <h1 class="page-title" tabIndex={-1}>
        Page not found
      </h1>
      <p>
        No page at this address. <Link to={{ page: 'overview' }}>Go to the overview</Link>.
      </p>
    </div>
  );
}

function PageView({ state }: { state: AppState }) {
  switch (state.page) {
    case 'overview':
      return <Overview state={state} />;
    case 'endpoints':
      return <Endpoints state={state} />;
    case 'endpoint':
      return <EndpointDetail key={state.endpoint} state={state} />;
    case 'explore':
      return <LazyExplorer state={state} />;
    default:
      return <NotFound />;
  }
}

const TITLES: Record<Page, string> = {
  overview: 'Overview',
  endpoints: 'Endpoints',
  endpoint: 'Endpoint',
  explore: 'Explore',
  notfound: 'Not found',
};

export function App() {
  const state = useAppState();
  const activePage = state.page === 'endpoint' ? 'endpoints' : state.page;

  useEffect(() => {
    const subject = state.page === 'endpoint' ? state.endpoint : TITLES[state.page];
    document.title = `${subject} · GoSight`;
  }, [state.page, state.endpoint]);

  // Move focus to the new page's heading, so screen readers announce the change.
  const [firstPage] = useState(state.page);
  useEffect(() => {
    if (state.page === firstPage && state.endpoint === '') return;
    document.querySelector<HTMLElement>('main h1')?.focus({ preventScroll: true });
  }, [state.page, state.endpoint]);

  return (
    <div class="shell">
      <a class="skip-link" href="#main">
        Skip to content
      </a>
      <header class="topbar">
        <Link to={{ page: 'overview' }} class="brand">
          <svg class="brand-mark" viewBox="0 0 32 32" width="22" height="22" aria-hidden="true">
            <rect width="32" height="32" rx="7" fill="currentColor" />
            <path d="M6 20l6-6 5 4 9-9" stroke="var(--brand-contrast)" stroke-width="3" fill="none" stroke-linecap="round" stroke-linejoin="round" />
          </svg>
          <span>GoSight</span>
        </Link>
        <nav aria-label="Main" class="nav">
          {NAV.map((item) => (
            <Link
              key={item.page}
              to={{ page: item.page, endpoint: '', tab: 'overview' }}
              class={`nav-link${activePage === item.page ? ' active' : ''}`}
              aria-current={activePage === item.page ? 'page' : undefined}
            >
              {item.label}
            </Link>
          ))}
        </nav>
        <div class="topbar-controls">
          <TimeRangePicker range={state.range} />
          <RefreshControl refresh={state.refresh} range={state.range} />
          <ThemeToggle />
        </div>
      </header>
      <main id="main" class="main">
        <PageView state={state} />
      </main>
    </div>
  );
}
