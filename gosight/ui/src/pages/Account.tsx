// The account page: password, two-factor authentication, sessions and API tokens
// of the signed-in user. Loaded on demand.

import { useEffect, useState } from 'preact/hooks';
import { ErrorMessage } from '../components/Status';
import { MfaEnrollment } from '../components/MfaEnrollment';
import { getJSON, refreshMe, sendJSON, useAuth } from '../lib/auth';
import { formatAgo } from '../lib/format';
import type { AppState } from '../lib/url';

interface SessionInfo {
  id: string;
  current: boolean;
  method: string;
  created: string;
  last_seen: string;
  expires: string;
  client_ip: string;
  user_agent: string;
}

interface TokenInfo {
  id: string;
  name: string;
  permissions: string[];
  status: string;
  created: string;
  expires: string;
  last_used: string | null;
}

function ago(iso: string | null): string {
  return iso ? formatAgo(Date.parse(iso), Date.now()) : 'never';
}

function PasswordForm() {
  const [current, setCurrent] = useState('');
  const [next, setNext] = useState('');
  const [message, setMessage] = useState('');
  const [error, setError] = useState('');

  const submit = async (event: Event) => {
    event.preventDefault();
    setError('');
    setMessage('');
    try {
      const answer = await sendJSON<{ other_sessions_ended: number }>('PUT', '/api/v1/auth/password', {
        current_password: current,
        new_password: next,
      });
      setMessage(`Password changed; ${answer.other_sessions_ended} other session(s) ended.`);
      setCurrent('');
      setNext('');
    } catch (failure) {
      setError((failure as Error).message);
    }
  };

  return (
    <section class="panel account-section" aria-labelledby="password-title">
      <h2 class="panel-title" id="password-title">Password</h2>
      <form class="form-stack" onSubmit={submit} data-testid="password-form">
        <label class="form-field">
          <span>Current password</span>
          <input type="password" autocomplete="current-password" value={current} onInput={(event) => setCurrent(event.currentTarget.value)} />
        </label>
        <label class="form-field">
          <span>New password</span>
          <input type="password" autocomplete="new-password" required value={next} onInput={(event) => setNext(event.currentTarget.value)} />
        </label>
        {error && <ErrorMessage message={error} />}
        {message && <p class="notice" role="status">{message}</p>}
        <button type="submit" class="button button-primary">Change password</button>
      </form>
    </section>
  );
}

function MfaSection() {
  const auth = useAuth();
  const [enrolling, setEnrolling] = useState(false);
  const [password, setPassword] = useState('');
  const [codes, setCodes] = useState<string[] | null>(null);
  const [error, setError] = useState('');
  if (auth.kind !== 'signed-in') return null;
  const { mfa } = auth.me;

  const disable = async () => {
    setError('');
    try {
      await sendJSON('DELETE', '/api/v1/auth/mfa', { password });
      setPassword('');
      await refreshMe();
    } catch (failure) {
      setError((failure as Error).message);
    }
  };

  const replaceCodes = async () => {
    setError('');
    try {
      const answer = await sendJSON<{ recovery_codes: string[] }>('POST', '/api/v1/auth/mfa/recovery-codes', { password });
      setCodes(answer.recovery_codes);
      setPassword('');
      await refreshMe();
    } catch (failure) {
      setError((failure as Error).message);
    }
  };

  return (
    <section class="panel account-section" aria-labelledby="mfa-title" data-testid="mfa-section">
      <h2 class="panel-title" id="mfa-title">Two-factor authentication</h2>
      {!mfa.enabled && !enrolling && (
        <div class="form-stack">
          <p>Off. {mfa.required ? 'This server requires it.' : 'Add a code from an authenticator app to every sign-in.'}</p>
          <button type="button" class="button button-primary" onClick={() => setEnrolling(true)}>
            Set up two-factor authentication
          </button>
        </div>
      )}
      {!mfa.enabled && enrolling && <MfaEnrollment onDone={() => setEnrolling(false)} />}
      {mfa.enabled && (
        <div class="form-stack">
          <p>On. {mfa.recovery_codes_left} unused recovery code(s) left.</p>
          <label class="form-field">
            <span>Your password, to change this</span>
            <input type="password" autocomplete="current-password" value={password} onInput={(event) => setPassword(event.currentTarget.value)} />
          </label>
          <div class="button-row">
            <button type="button" class="button" onClick={replaceCodes}>New recovery codes</button>
            {!mfa.required && (
              <button type="button" class="button" onClick={disable}>Turn off</button>
            )}
          </div>
          {codes && (
            <ul class="code-list" data-testid="recovery-codes">
              {codes.map((code) => <li key={code} class="mono">{code}</li>)}
            </ul>
          )}
        </div>
      )}
      {error && <ErrorMessage message={error} />}
    </section>
  );
}

function Sessions() {
  const [sessions, setSessions] = useState<SessionInfo[]>([]);
  const [error, setError] = useState('');
  const [version, setVersion] = useState(0);

  useEffect(() => {
    const controller = new AbortController();
    getJSON<{ sessions: SessionInfo[] }>('/api/v1/auth/sessions', controller.signal)
      .then((answer) => setSessions(answer.sessions))
      .catch((failure: unknown) => {
        if (!controller.signal.aborted) setError((failure as Error).message);
      });
    return () => controller.abort();
  }, [version]);

  const end = async (id: string) => {
    try {
      await sendJSON('DELETE', `/api/v1/auth/sessions/${encodeURIComponent(id)}`);
      setVersion(version + 1);
    } catch (failure) {
      setError((failure as Error).message);
    }
  };

  return (
    <section class="panel account-section table-panel" aria-labelledby="sessions-title">
      <h2 class="panel-title" id="sessions-title">Sessions</h2>
      {error && <ErrorMessage message={error} />}
      <table class="table compact" data-testid="sessions-table">
        <thead>
          <tr>
            <th scope="col">Signed in</th>
            <th scope="col">Last active</th>
            <th scope="col">Address</th>
            <th scope="col">Browser</th>
            <th scope="col"><span class="visually-hidden">Actions</span></th>
          </tr>
        </thead>
        <tbody>
          {sessions.map((session) => (
            <tr key={session.id}>
              <td>{ago(session.created)} ({session.method})</td>
              <td>{ago(session.last_seen)}</td>
              <td class="mono">{session.client_ip}</td>
              <td class="truncate" title={session.user_agent}>{session.user_agent}</td>
              <td>
                {session.current ? (
                  <span class="muted">This session</span>
                ) : (
                  <button type="button" class="control" onClick={() => end(session.id)}>End</button>
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}

function Tokens() {
  const [tokens, setTokens] = useState<TokenInfo[]>([]);
  const [grantable, setGrantable] = useState<string[]>([]);
  const [name, setName] = useState('grafana');
  const [chosen, setChosen] = useState<string[]>(['metrics:read']);
  const [expires, setExpires] = useState('90d');
  const [created, setCreated] = useState('');
  const [error, setError] = useState('');
  const [version, setVersion] = useState(0);

  useEffect(() => {
    const controller = new AbortController();
    getJSON<{ tokens: TokenInfo[]; grantable: string[] }>('/api/v1/auth/tokens', controller.signal)
      .then((answer) => {
        setTokens(answer.tokens);
        setGrantable(answer.grantable);
      })
      .catch((failure: unknown) => {
        if (!controller.signal.aborted) setError((failure as Error).message);
      });
    return () => controller.abort();
  }, [version]);

  const create = async (event: Event) => {
    event.preventDefault();
    setError('');
    try {
      const answer = await sendJSON<{ token: string }>('POST', '/api/v1/auth/tokens', { name, permissions: chosen, expires });
      setCreated(answer.token);
      setVersion(version + 1);
    } catch (failure) {
      setError((failure as Error).message);
    }
  };

  const revoke = async (id: string) => {
    try {
      await sendJSON('DELETE', `/api/v1/auth/tokens/${encodeURIComponent(id)}`);
      setVersion(version + 1);
    } catch (failure) {
      setError((failure as Error).message);
    }
  };

  const toggle = (permission: string) =>
    setChosen(chosen.includes(permission) ? chosen.filter((item) => item !== permission) : [...chosen, permission]);

  return (
    <section class="panel account-section table-panel" aria-labelledby="tokens-title">
      <h2 class="panel-title" id="tokens-title">API tokens</h2>
      <p class="muted">For Grafana, scripts and Prometheus scraping: sent as “Authorization: Bearer &lt;token&gt;”.</p>
      <form class="form-stack" onSubmit={create} data-testid="token-form">
        <label class="form-field">
          <span>Name</span>
          <input value={name} onInput={(event) => setName(event.currentTarget.value)} />
        </label>
        <fieldset class="permission-choices">
          <legend>Permissions</legend>
          {grantable.map((permission) => (
            <label key={permission} class="checkbox">
              <input type="checkbox" checked={chosen.includes(permission)} onChange={() => toggle(permission)} />
              <span class="mono">{permission}</span>
            </label>
          ))}
        </fieldset>
        <label class="form-field">
          <span>Expires after</span>
          <select value={expires} onChange={(event) => setExpires(event.currentTarget.value)}>
            <option value="7d">7 days</option>
            <option value="30d">30 days</option>
            <option value="90d">90 days</option>
            <option value="365d">1 year</option>
          </select>
        </label>
        <button type="submit" class="button button-primary">Create token</button>
      </form>
      {created && (
        <p class="notice" role="status" data-testid="created-token">
          Copy this token now; it is not shown again: <code class="mono">{created}</code>
        </p>
      )}
      {error && <ErrorMessage message={error} />}
      <table class="table compact">
        <thead>
          <tr>
            <th scope="col">Name</th>
            <th scope="col">Permissions</th>
            <th scope="col">Status</th>
            <th scope="col">Expires</th>
            <th scope="col">Last used</th>
            <th scope="col"><span class="visually-hidden">Actions</span></th>
          </tr>
        </thead>
        <tbody>
          {tokens.map((token) => (
            <tr key={token.id}>
              <td>{token.name || token.id}</td>
              <td class="mono">{token.permissions.join(', ')}</td>
              <td>{token.status}</td>
              <td>{token.expires.slice(0, 10)}</td>
              <td>{ago(token.last_used)}</td>
              <td>
                {token.status === 'active' && (
                  <button type="button" class="control" onClick={() => revoke(token.id)}>Revoke</button>
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}

export function Account(_props: { state: AppState }) {
  const auth = useAuth();
  if (auth.kind !== 'signed-in') return null;
  const { user } = auth.me;
  return (
    <div class="page">
      <div class="page-header">
        <h1 class="page-title" tabIndex={-1}>
          Account: {user.username}
        </h1>
        <span class="label-chip" data-testid="account-role">{user.role}</span>
      </div>
      <div class="stack">
        {user.has_password && <PasswordForm />}
        <MfaSection />
        <Sessions />
        <Tokens />
      </div>
    </div>
  );
}
