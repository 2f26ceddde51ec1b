// The screens before the dashboard: first-run setup, sign-in with a password or
// single sign-on, and the second factor (a TOTP code, a recovery code, or the
// enrolment that a server requiring MFA asks for).

import { useEffect, useState } from 'preact/hooks';
import type { ComponentChildren } from 'preact';
import { MfaEnrollment } from '../components/MfaEnrollment';
import {
  completeSetup,
  login,
  logout,
  providers,
  verifyMfa,
  type AuthState,
  type Me,
  type Providers,
} from '../lib/auth';
import { navigate } from '../lib/state';
import type { AppState } from '../lib/url';

function AuthCard({ title, children }: { title: string; children: ComponentChildren }) {
  return (
    <main id="main" class="auth-screen">
      <div class="auth-card panel">
        <div class="auth-brand">
          <svg class="brand-mark" viewBox="0 0 32 32" width="28" height="28" aria-hidden="true">
            <rect width="32" height="32" rx="7" fill="currentColor" />
            <path d="M6 20l6-6 5 4 9-9" stroke="var(--brand-contrast)" stroke-width="3" fill="none" stroke-linecap="round" stroke-linejoin="round" />
          </svg>
          <span>GoSight</span>
        </div>
        <h1 class="page-title" tabIndex={-1}>
          {title}
        </h1>
        {children}
      </div>
    </main>
  );
}

function FormError({ message }: { message: string }) {
  if (!message) return null;
  return (
    <p class="notice notice-error" role="alert" data-testid="form-error">
      {message}
    </p>
  );
}

/** Return the page to open after signing in: the `next` parameter when it is a path of this app. */
function nextPath(): string {
  const next = new URLSearchParams(window.location.search).get('next') ?? '';
  return next.startsWith('/') && !next.startsWith('//') ? next : '/';
}

function goToApp(): void {
  window.history.replaceState(null, '', nextPath());
  // The app state follows the address on popstate, as after the browser's back button.
  window.dispatchEvent(new PopStateEvent('popstate'));
}

function Setup() {
  const token = new URLSearchParams(window.location.search).get('token') ?? '';
  const [username, setUsername] = useState('admin');
  const [password, setPassword] = useState('');
  const [repeat, setRepeat] = useState('');
  const [error, setError] = useState('');
  const [busy, setBusy] = useState(false);

  if (!token) {
    return (
      <AuthCard title="Finish setting up GoSight">
        <p>No user account exists yet. Open the setup link that the server wrote to its log on start (the line
          “first start: open the setup link”), or create the first admin on the server:</p>
        <pre class="code-block">gosight user add --admin NAME</pre>
      </AuthCard>
    );
  }

  const submit = async (event: Event) => {
    event.preventDefault();
    if (password !== repeat) {
      setError('The two passwords differ.');
      return;
    }
    setBusy(true);
    setError('');
    try {
      await completeSetup(token, username, password);
      window.history.replaceState(null, '', '/');
      navigate({ page: 'overview' }, true);
    } catch (failure) {
      setError((failure as Error).message);
    } finally {
      setBusy(false);
    }
  };

  return (
    <AuthCard title="Create the admin account">
      <p class="muted">This account manages users, roles and tokens. Choose a long password.</p>
      <form class="form-stack" onSubmit={submit} data-testid="setup-form">
        <label class="form-field">
          <span>User name</span>
          <input name="username" autocomplete="username" required value={username} onInput={(event) => setUsername(event.currentTarget.value)} />
        </label>
        <label class="form-field">
          <span>Password</span>
          <input name="password" type="password" autocomplete="new-password" required value={password} onInput={(event) => setPassword(event.currentTarget.value)} />
        </label>
        <label class="form-field">
          <span>Repeat the password</span>
          <input name="repeat" type="password" autocomplete="new-password" required value={repeat} onInput={(event) => setRepeat(event.currentTarget.value)} />
        </label>
        <FormError message={error} />
        <button type="submit" class="button button-primary" disabled={busy}>
          Create account
        </button>
      </form>
    </AuthCard>
  );
}

function Login({ reason }: { reason: string }) {
  const [options, setOptions] = useState<Providers | null>(null);
  const [username, setUsername] = useState('');
  const [password, setPassword] = useState('');
  const [error, setError] = useState(new URLSearchParams(window.location.search).get('error') ?? '');
  const [busy, setBusy] = useState(false);

  useEffect(() => {
    providers()
      .then(setOptions)
      .catch((failure: unknown) => setError(`Loading the sign-in options failed: ${(failure as Error).message}`));
  }, []);

  const submit = async (event: Event) => {
    event.preventDefault();
    setBusy(true);
    setError('');
    try {
      const answer = await login(username, password);
      if (answer.status === 'signed_in') goToApp();
    } catch (failure) {
      setError((failure as Error).message);
    } finally {
      setBusy(false);
    }
  };

  const oidcUrl = options?.oidc ? `${options.oidc.login_url}?next=${encodeURIComponent(nextPath())}` : '';
  return (
    <AuthCard title="Sign in">
      {reason && <p class="notice">{reason}</p>}
      {options?.local !== false && (
        <form class="form-stack" onSubmit={submit} data-testid="login-form">
          <label class="form-field">
            <span>User name</span>
            <input name="username" autocomplete="username" required value={username} onInput={(event) => setUsername(event.currentTarget.value)} />
          </label>
          <label class="form-field">
            <span>Password</span>
            <input name="password" type="password" autocomplete="current-password" required value={password} onInput={(event) => setPassword(event.currentTarget.value)} />
          </label>
          <FormError message={error} />
          <button type="submit" class="button button-primary" disabled={busy}>
            Sign in
          </button>
        </form>
      )}
      {options?.local === false && <FormError message={error} />}
      {options?.oidc && (
        <a class="button sso-button" href={oidcUrl} data-testid="sso-button">
          Sign in with {options.oidc.name}
        </a>
      )}
    </AuthCard>
  );
}

function SecondFactor() {
  const [useRecovery, setUseRecovery] = useState(false);
  const [code, setCode] = useState('');
  const [error, setError] = useState('');
  const [busy, setBusy] = useState(false);

  const submit = async (event: Event) => {
    event.preventDefault();
    setBusy(true);
    setError('');
    try {
      await verifyMfa(useRecovery ? { recovery_code: code } : { code });
      goToApp();
    } catch (failure) {
      setError((failure as Error).message);
    } finally {
      setBusy(false);
    }
  };

  return (
    <AuthCard title="Two-factor authentication">
      <form class="form-stack" onSubmit={submit} data-testid="mfa-form">
        <label class="form-field">
          <span>{useRecovery ? 'Recovery code' : 'Code from your authenticator app'}</span>
          <input
            name="code"
            autocomplete="one-time-code"
            inputMode={useRecovery ? 'text' : 'numeric'}
            required
            value={code}
            onInput={(event) => setCode(event.currentTarget.value)}
          />
        </label>
        <FormError message={error} />
        <button type="submit" class="button button-primary" disabled={busy}>
          Verify
        </button>
      </form>
      <div class="auth-links">
        <button type="button" class="link-button" onClick={() => { setUseRecovery(!useRecovery); setCode(''); }}>
          {useRecovery ? 'Use a code from the app' : 'Use a recovery code'}
        </button>
        <button type="button" class="link-button" onClick={() => void logout()}>
          Sign out
        </button>
      </div>
    </AuthCard>
  );
}

function RequiredEnrollment() {
  return (
    <AuthCard title="Set up two-factor authentication">
      <p class="muted">This server requires a second factor for every account. Set it up to continue.</p>
      <MfaEnrollment onDone={goToApp} />
      <div class="auth-links">
        <button type="button" class="link-button" onClick={() => void logout()}>
          Sign out
        </button>
      </div>
    </AuthCard>
  );
}

/** Render the screen a signed-out browser sees: setup while no user exists, else the sign-in form. */
export function SignedOutScreen({ state, auth }: { state: AppState; auth: Extract<AuthState, { kind: 'signed-out' }> }) {
  useEffect(() => {
    // Keep the address of the page that was asked for, to return to it after signing in.
    if (state.page === 'login' || state.page === 'setup' || auth.setupRequired) return;
    const here = window.location.pathname + window.location.search;
    window.history.replaceState(null, '', `/login${here === '/' ? '' : `?next=${encodeURIComponent(here)}`}`);
  }, [state.page, auth.setupRequired]);
  if (auth.setupRequired || state.page === 'setup') return <Setup />;
  return <Login reason={auth.reason} />;
}

/** Render the second-factor step of a session that still owes it. */
export function PendingScreen({ me }: { me: Me }) {
  return me.stage === 'enroll' ? <RequiredEnrollment /> : <SecondFactor />;
}
