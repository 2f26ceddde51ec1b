// The settings area for admins: users, roles, agent tokens, security settings and
// security events. Each section shows only when the user holds its permission;
// the server checks every request again. Loaded on demand.

import { useEffect, useState } from 'preact/hooks';
import { ErrorMessage, Link } from '../components/Status';
import { can, getJSON, sendJSON } from '../lib/auth';
import { navigate } from '../lib/state';
import type { AppState, SettingsSection } from '../lib/url';

const SECTIONS: { id: SettingsSection; label: string; permission: string }[] = [
  { id: 'users', label: 'Users', permission: 'users:manage' },
  { id: 'roles', label: 'Roles', permission: 'users:manage' },
  { id: 'agent-tokens', label: 'Agent tokens', permission: 'tokens:manage' },
  { id: 'security', label: 'Security', permission: 'security:read' },
  { id: 'events', label: 'Security events', permission: 'security:read' },
];

interface UserRow {
  id: string;
  username: string;
  email: string | null;
  role: string;
  disabled: boolean;
  mfa_enabled: boolean;
  last_login: string | null;
}

interface RoleRow {
  name: string;
  description: string;
  permissions: string[];
  builtin: boolean;
}

interface EventRow {
  id: number;
  time: string;
  type: string;
  user: string | null;
  actor: string | null;
  client_ip: string | null;
  detail: Record<string, unknown>;
}

/** Load `path` again whenever `version` changes; return the answer and the error of the last load. */
function useLoad<T>(path: string, version: number): [T | null, string] {
  const [data, setData] = useState<T | null>(null);
  const [error, setError] = useState('');
  useEffect(() => {
    const controller = new AbortController();
    getJSON<T>(path, controller.signal)
      .then((answer) => {
        setData(answer);
        setError('');
      })
      .catch((failure: unknown) => {
        if (!controller.signal.aborted) setError((failure as Error).message);
      });
    return () => controller.abort();
  }, [path, version]);
  return [data, error];
}

function Users() {
  const [version, setVersion] = useState(0);
  const [users, loadError] = useLoad<{ users: UserRow[] }>('/api/v1/users', version);
  const [roles] = useLoad<{ roles: RoleRow[] }>('/api/v1/roles', 0);
  const [form, setForm] = useState({ username: '', password: '', role: 'viewer', email: '' });
  const [error, setError] = useState('');
  const [notice, setNotice] = useState('');

  const act = async (action: () => Promise<unknown>, done: string) => {
    setError('');
    setNotice('');
    try {
      await action();
      setNotice(done);
      setVersion(version + 1);
    } catch (failure) {
      setError((failure as Error).message);
    }
  };

  const create = (event: Event) => {
    event.preventDefault();
    void act(() => sendJSON('POST', '/api/v1/users', { ...form, email: form.email || undefined }), `Created ${form.username}.`);
  };

  const resetPassword = (user: UserRow) => {
    const password = window.prompt(`New password for ${user.username}`);
    if (password) void act(() => sendJSON('PUT', `/api/v1/users/${user.id}/password`, { password }), `Password of ${user.username} set.`);
  };

  const roleNames = roles?.roles.map((role) => role.name) ?? ['admin', 'editor', 'viewer'];
  return (
    <div class="stack">
      {(error || loadError) && <ErrorMessage message={error || loadError} />}
      {notice && <p class="notice" role="status">{notice}</p>}
      <div class="panel table-panel">
        <table class="table compact" data-testid="users-table">
          <thead>
            <tr>
              <th scope="col">User</th>
              <th scope="col">Email</th>
              <th scope="col">Role</th>
              <th scope="col">MFA</th>
              <th scope="col">Status</th>
              <th scope="col"><span class="visually-hidden">Actions</span></th>
            </tr>
          </thead>
          <tbody>
            {users?.users.map((user) => (
              <tr key={user.id} data-username={user.username}>
                <td>{user.username}</td>
                <td>{user.email ?? '–'}</td>
                <td>
                  <select
                    class="control"
                    aria-label={`Role of ${user.username}`}
                    value={user.role}
                    onChange={(event) => {
                      const role = event.currentTarget.value;
                      void act(() => sendJSON('PATCH', `/api/v1/users/${user.id}`, { role }), `${user.username} is now ${role}.`);
                    }}
                  >
                    {roleNames.map((name) => <option key={name} value={name}>{name}</option>)}
                  </select>
                </td>
                <td>{user.mfa_enabled ? 'on' : 'off'}</td>
                <td>{user.disabled ? 'disabled' : 'active'}</td>
                <td class="button-row">
                  <button type="button" class="control" onClick={() => resetPassword(user)}>Set password</button>
                  {user.mfa_enabled && (
                    <button type="button" class="control" onClick={() => act(() => sendJSON('DELETE', `/api/v1/users/${user.id}/mfa`), `MFA of ${user.username} reset.`)}>
                      Reset MFA
                    </button>
                  )}
                  <button
                    type="button"
                    class="control"
                    onClick={() => act(() => sendJSON('PATCH', `/api/v1/users/${user.id}`, { disabled: !user.disabled }), `${user.username} ${user.disabled ? 'enabled' : 'disabled'}.`)}
                  >
                    {user.disabled ? 'Enable' : 'Disable'}
                  </button>
                  <button
                    type="button"
                    class="control"
                    onClick={() => window.confirm(`Delete ${user.username}?`) && act(() => sendJSON('DELETE', `/api/v1/users/${user.id}`), `Deleted ${user.username}.`)}
                  >
                    Delete
                  </button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      <form class="panel form-stack settings-form" onSubmit={create} data-testid="new-user-form">
        <h2 class="panel-title">New user</h2>
        <label class="form-field">
          <span>User name</span>
          <input name="username" required value={form.username} onInput={(event) => setForm({ ...form, username: event.currentTarget.value })} />
        </label>
        <label class="form-field">
          <span>Password (leave empty for single sign-on only)</span>
          <input name="password" type="password" autocomplete="new-password" value={form.password} onInput={(event) => setForm({ ...form, password: event.currentTarget.value })} />
        </label>
        <label class="form-field">
          <span>Email</span>
          <input name="email" type="email" value={form.email} onInput={(event) => setForm({ ...form, email: event.currentTarget.value })} />
        </label>
        <label class="form-field">
          <span>Role</span>
          <select name="role" value={form.role} onChange={(event) => setForm({ ...form, role: event.currentTarget.value })}>
            {roleNames.map((name) => <option key={name} value={name}>{name}</option>)}
          </select>
        </label>
        <button type="submit" class="button button-primary">Create user</button>
      </form>
    </div>
  );
}

function Roles() {
  const [version, setVersion] = useState(0);
  const [data, loadError] = useLoad<{ roles: RoleRow[]; permissions: { name: string; description: string }[] }>('/api/v1/roles', version);
  const [name, setName] = useState('');
  const [description, setDescription] = useState('');
  const [chosen, setChosen] = useState<string[]>([]);
  const [error, setError] = useState('');

  const save = async (event: Event) => {
    event.preventDefault();
    setError('');
    const exists = data?.roles.some((role) => role.name === name);
    try {
      if (exists) await sendJSON('PUT', `/api/v1/roles/${encodeURIComponent(name)}`, { description, permissions: chosen });
      else await sendJSON('POST', '/api/v1/roles', { name, description, permissions: chosen });
      setVersion(version + 1);
    } catch (failure) {
      setError((failure as Error).message);
    }
  };

  const remove = async (role: string) => {
    setError('');
    try {
      await sendJSON('DELETE', `/api/v1/roles/${encodeURIComponent(role)}`);
      setVersion(version + 1);
    } catch (failure) {
      setError((failure as Error).message);
    }
  };

  return (
    <div class="stack">
      {(error || loadError) && <ErrorMessage message={error || loadError} />}
      <div class="panel table-panel">
        <table class="table compact" data-testid="roles-table">
          <thead>
            <tr>
              <th scope="col">Role</th>
              <th scope="col">Permissions</th>
              <th scope="col"><span class="visually-hidden">Actions</span></th>
            </tr>
          </thead>
          <tbody>
            {data?.roles.map((role) => (
              <tr key={role.name}>
                <td>
                  <strong>{role.name}</strong>
                  <div class="hint">{role.description}</div>
                </td>
                <td class="mono">{role.permissions.join(', ')}</td>
                <td class="button-row">
                  {!role.builtin && (
                    <>
                      <button type="button" class="control" onClick={() => { setName(role.name); setDescription(role.description); setChosen(role.permissions); }}>
                        Edit
                      </button>
                      <button type="button" class="control" onClick={() => remove(role.name)}>Delete</button>
                    </>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      <form class="panel form-stack settings-form" onSubmit={save}>
        <h2 class="panel-title">Custom role</h2>
        <label class="form-field">
          <span>Name</span>
          <input required value={name} onInput={(event) => setName(event.currentTarget.value)} />
        </label>
        <label class="form-field">
          <span>Description</span>
          <input value={description} onInput={(event) => setDescription(event.currentTarget.value)} />
        </label>
        <fieldset class="permission-choices">
          <legend>Permissions</legend>
          {data?.permissions.map((permission) => (
            <label key={permission.name} class="checkbox" title={permission.description}>
              <input
                type="checkbox"
                checked={chosen.includes(permission.name)}
                onChange={() => setChosen(chosen.includes(permission.name) ? chosen.filter((item) => item !== permission.name) : [...chosen, permission.name])}
              />
              <span class="mono">{permission.name}</span>
            </label>
          ))}
        </fieldset>
        <button type="submit" class="button button-primary">Save role</button>
      </form>
    </div>
  );
}

interface AgentToken {
  id: string;
  name: string;
  status: string;
  created: string;
  expires: string | null;
  last_used: string | null;
  agent_id: string | null;
}

function AgentTokens() {
  const [version, setVersion] = useState(0);
  const [data, loadError] = useLoad<{ tokens: AgentToken[] }>('/api/v1/tokens', version);
  const [name, setName] = useState('');
  const [created, setCreated] = useState('');
  const [error, setError] = useState('');

  const create = async (event: Event) => {
    event.preventDefault();
    try {
      const answer = await sendJSON<{ token: string }>('POST', '/api/v1/tokens', { name, bind_agent: true });
      setCreated(answer.token);
      setVersion(version + 1);
    } catch (failure) {
      setError((failure as Error).message);
    }
  };

  return (
    <div class="stack">
      {(error || loadError) && <ErrorMessage message={error || loadError} />}
      <form class="panel form-stack settings-form" onSubmit={create}>
        <h2 class="panel-title">New agent token</h2>
        <p class="hint">Bound to the first agent that uses it. Give it to the agent in agent.token_file.</p>
        <label class="form-field">
          <span>Name</span>
          <input value={name} onInput={(event) => setName(event.currentTarget.value)} />
        </label>
        <button type="submit" class="button button-primary">Create</button>
        {created && (
          <p class="notice" role="status">
            Copy it now; it is not shown again: <code class="mono">{created}</code>
          </p>
        )}
      </form>
      <div class="panel table-panel">
        <table class="table compact">
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Status</th>
              <th scope="col">Agent</th>
              <th scope="col">Last used</th>
              <th scope="col"><span class="visually-hidden">Actions</span></th>
            </tr>
          </thead>
          <tbody>
            {data?.tokens.map((token) => (
              <tr key={token.id}>
                <td>{token.name || token.id}</td>
                <td>{token.status}</td>
                <td class="mono">{token.agent_id ?? '–'}</td>
                <td>{token.last_used ?? 'never'}</td>
                <td>
                  {token.status === 'active' && (
                    <button type="button" class="control" onClick={() => sendJSON('DELETE', `/api/v1/tokens/${token.id}`).then(() => setVersion(version + 1), (failure: Error) => setError(failure.message))}>
                      Revoke
                    </button>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </div>
  );
}

function Security() {
  const [version, setVersion] = useState(0);
  const [data, loadError] = useLoad<{ require_mfa: boolean; local_login: boolean; oidc: string | null }>('/api/v1/security/settings', version);
  const [error, setError] = useState('');
  if (!data) return loadError ? <ErrorMessage message={loadError} /> : null;
  return (
    <div class="panel form-stack settings-form">
      <label class="checkbox">
        <input
          type="checkbox"
          checked={data.require_mfa}
          disabled={!can('security:manage')}
          data-testid="require-mfa"
          onChange={(event) => {
            const requireMfa = event.currentTarget.checked;
            sendJSON('PUT', '/api/v1/security/settings', { require_mfa: requireMfa }).then(
              () => setVersion(version + 1),
              (failure: Error) => setError(failure.message),
            );
          }}
        />
        <span>Require two-factor authentication for every account (users without it set it up at their next sign-in)</span>
      </label>
      <p class="hint">
        Sign-in with a password: {data.local_login ? 'on' : 'off'}. Single sign-on: {data.oidc ?? 'not configured'}. Both are set in the
        configuration file.
      </p>
      {error && <ErrorMessage message={error} />}
    </div>
  );
}

const PAGE_SIZE = 50;

function Events() {
  const [type, setType] = useState('');
  const [user, setUser] = useState('');
  const [offset, setOffset] = useState(0);
  const params = new URLSearchParams({ limit: String(PAGE_SIZE), offset: String(offset) });
  if (type) params.set('type', type);
  if (user) params.set('user', user);
  const [data, error] = useLoad<{ total: number; events: EventRow[] }>(`/api/v1/security/events?${params}`, 0);
  return (
    <div class="stack">
      <div class="filters">
        <label class="field">
          <span>Type</span>
          <input value={type} placeholder="login_failed" onChange={(event) => { setType(event.currentTarget.value); setOffset(0); }} />
        </label>
        <label class="field">
          <span>User</span>
          <input value={user} onChange={(event) => { setUser(event.currentTarget.value); setOffset(0); }} />
        </label>
      </div>
      {error && <ErrorMessage message={error} />}
      <div class="panel table-panel">
        <table class="table compact" data-testid="events-table">
          <thead>
            <tr>
              <th scope="col">Time</th>
              <th scope="col">Event</th>
              <th scope="col">User</th>
              <th scope="col">By</th>
              <th scope="col">Address</th>
              <th scope="col">Detail</th>
            </tr>
          </thead>
          <tbody>
            {data?.events.map((event) => (
              <tr key={event.id} data-type={event.type}>
                <td class="mono">{event.time.replace('T', ' ').slice(0, 19)}</td>
                <td>{event.type}</td>
                <td>{event.user ?? '–'}</td>
                <td>{event.actor ?? '–'}</td>
                <td class="mono">{event.client_ip ?? '–'}</td>
                <td class="mono hint">{Object.entries(event.detail).map(([key, value]) => `${key}=${JSON.stringify(value)}`).join(' ')}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      <div class="pagination">
        <span class="muted">{data ? `${Math.min(offset + 1, data.total)}–${Math.min(offset + PAGE_SIZE, data.total)} of ${data.total}` : ''}</span>
        <button type="button" class="control" disabled={offset === 0} onClick={() => setOffset(Math.max(0, offset - PAGE_SIZE))}>Newer</button>
        <button type="button" class="control" disabled={!data || offset + PAGE_SIZE >= data.total} onClick={() => setOffset(offset + PAGE_SIZE)}>Older</button>
      </div>
    </div>
  );
}

const VIEWS: Record<SettingsSection, () => preact.JSX.Element | null> = {
  users: Users,
  roles: Roles,
  'agent-tokens': AgentTokens,
  security: Security,
  events: Events,
};

export function Settings({ state }: { state: AppState }) {
  const allowed = SECTIONS.filter((section) => can(section.permission));
  const current = allowed.find((section) => section.id === state.section) ?? allowed[0];
  useEffect(() => {
    if (current && state.section !== current.id) navigate({ section: current.id }, true);
  }, [current?.id, state.section]);
  if (!current) {
    return (
      <div class="page">
        <h1 class="page-title" tabIndex={-1}>Settings</h1>
        <p class="notice">Your role has no settings to manage.</p>
      </div>
    );
  }
  const View = VIEWS[current.id];
  return (
    <div class="page">
      <div class="page-header">
        <h1 class="page-title" tabIndex={-1}>Settings</h1>
      </div>
      <nav class="tabs" aria-label="Settings sections">
        {allowed.map((section) => (
          <Link key={section.id} to={{ page: 'settings', section: section.id }} class={`tab${section.id === current.id ? ' active' : ''}`} aria-current={section.id === current.id ? 'page' : undefined}>
            {section.label}
          </Link>
        ))}
      </nav>
      <View />
    </div>
  );
}
