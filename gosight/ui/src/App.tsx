// The app shell: header with navigation and time controls, and the current page.

import { useEffect, useState } from 'preact/hooks';
import type { ComponentType } from 'preact';
import { Icon } from './components/Icon';
import { Link } from './components/Status';
import { RefreshControl, TimeRangePicker } from './components/TimeControls';
import { EndpointDetail } from './pages/EndpointDetail';
import { Endpoints } from './pages/Endpoints';
import { Overview } from './pages/Overview';
import { PendingScreen, SignedOutScreen } from './pages/SignIn';
import { can, loadSession, logout, signedOut, useAuth, type Me } from './lib/auth';
import { navigate, useAppState } from './lib/state';
import { toggleTheme, useTheme } from './lib/theme';
import type { AppState, Page } from './lib/url';

/** Permissions that open the settings area; each section checks its own. */
const SETTINGS_PERMISSIONS = ['users:manage', 'security:read', 'tokens:manage'];

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

type PageComponent = ComponentType<{ state: AppState }>;

// The explorer, the account page and the settings area are large and few visits
// need them, so each loads on demand, once.
const lazyModules = new Map<string, Promise<PageComponent>>();
const LOADERS: Record<string, () => Promise<PageComponent>> = {
  explorer: () => import('./pages/Explorer').then((module) => module.Explorer),
  account: () => import('./pages/Account').then((module) => module.Account),
  settings: () => import('./pages/Settings').then((module) => module.Settings),
};

function LazyPage({ name, label, state }: { name: string; label: string; state: AppState }) {
  const [Page, setPage] = useState<PageComponent | null>(null);
  const [failed, setFailed] = useState('');
  useEffect(() => {
    if (!lazyModules.has(name)) lazyModules.set(name, LOADERS[name]());
    lazyModules
      .get(name)!
      .then((component) => setPage(() => component))
      .catch((error: unknown) => setFailed(`Loading the ${label} failed: ${String(error)}. Reload the page to try again.`));
  }, [name]);
  if (failed) return <p class="notice notice-error" role="alert">{failed}</p>;
  if (!Page) return <p class="muted" role="status">Loading the {label}…</p>;
  return <Page state={state} />;
}

function UserMenu({ me }: { me: Me }) {
  return (
    <div class="user-menu">
      <Link to={{ page: 'account' }} class="nav-link" aria-current={undefined}>
        <span data-testid="signed-in-user">{me.user.username}</span>
      </Link>
      <button
        type="button"
        class="control"
        data-testid="sign-out"
        onClick={async () => {
          await logout();
          navigate({ page: 'login' }, true);
        }}
      >
        Sign out
      </button>
    </div>
  );
}

/** Leave the sign-in addresses once signed in, for the page after sign-in or the overview. */
function ToOverview() {
  useEffect(() => navigate({ page: 'overview' }, true), []);
  return null;
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
      return <LazyPage name="explorer" label="explorer" state={state} />;
    case 'account':
      return <LazyPage name="account" label="account page" state={state} />;
    case 'settings':
      return <LazyPage name="settings" label="settings" state={state} />;
    case 'login':
    case 'setup':
      return <ToOverview />;
    default:
      return <NotFound />;
  }
}

const TITLES: Record<Page, string> = {
  overview: 'Overview',
  endpoints: 'Endpoints',
  endpoint: 'Endpoint',
  explore: 'Explore',
  login: 'Sign in',
  setup: 'Setup',
  account: 'Account',
  settings: 'Settings',
  notfound: 'Not found',
};

/** Ask the server who is signed in, then show the sign-in screens or the dashboard. */
export function App() {
  const auth = useAuth();
  const state = useAppState();
  useEffect(() => {
    loadSession().catch(() => {
      // The server is unreachable: show the sign-in screen, which says so when it loads its options.
      signedOut('');
    });
  }, []);

  if (auth.kind === 'loading') {
    return (
      <p class="muted auth-loading" role="status">
        Loading…
      </p>
    );
  }
  if (auth.kind === 'signed-out') return <SignedOutScreen state={state} auth={auth} />;
  if (auth.me.stage !== 'active') return <PendingScreen me={auth.me} />;
  return <Shell state={state} me={auth.me} />;
}

function Shell({ state, me }: { state: AppState; me: Me }) {
  const activePage = state.page === 'endpoint' ? 'endpoints' : state.page;
  const nav = SETTINGS_PERMISSIONS.some(can) ? [...NAV, { page: 'settings' as Page, label: 'Settings' }] : NAV;

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
          {nav.map((item) => (
            <Link
              key={item.page}
              to={{ page: item.page, endpoint: '', section: '', tab: 'overview' }}
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
          <UserMenu me={me} />
        </div>
      </header>
      <main id="main" class="main">
        <PageView state={state} />
      </main>
    </div>
  );
}
