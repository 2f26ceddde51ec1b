// Who is signed in, and the calls of signing in and out. The server keeps the
// session in an HttpOnly cookie; this module keeps what GET /api/v1/auth/me
// returns: the user, their permissions and the CSRF token that every request that
// changes something must send in the X-CSRF-Token header.

import { useLayoutEffect, useState } from 'preact/hooks';

export interface User {
  id: string;
  username: string;
  email: string | null;
  role: string;
  disabled: boolean;
  mfa_enabled: boolean;
  has_password: boolean;
  created: string | null;
  last_login: string | null;
  password_changed: string | null;
}

/** "active" once signed in; "mfa" or "enroll" while the second factor is still owed. */
export type Stage = 'active' | 'mfa' | 'enroll';

export interface Me {
  user: User;
  stage: Stage;
  auth: string;
  method: string;
  permissions: string[];
  csrf_token: string | null;
  mfa: { enabled: boolean; required: boolean; recovery_codes_left: number };
}

export interface Providers {
  local: boolean;
  oidc: { name: string; login_url: string } | null;
  setup_required: boolean;
  /** Whether this browser has a session; asked first, so a signed-out visit causes no failed request. */
  signed_in: boolean;
}

/** The sign-in state: still loading, signed out (with why), or signed in (possibly pending MFA). */
export type AuthState =
  | { kind: 'loading' }
  | { kind: 'signed-out'; reason: string; setupRequired: boolean }
  | { kind: 'signed-in'; me: Me };

let state: AuthState = { kind: 'loading' };
const listeners = new Set<() => void>();

function setState(next: AuthState): void {
  state = next;
  for (const listener of listeners) listener();
}

export function authState(): AuthState {
  return state;
}

export function useAuth(): AuthState {
  const [, setVersion] = useState(0);
  // A layout effect subscribes before the browser can deliver any input event, so a
  // click right after the first paint cannot change the state unnoticed.
  useLayoutEffect(() => {
    const listener = () => setVersion((version) => version + 1);
    listeners.add(listener);
    return () => {
      listeners.delete(listener);
    };
  }, []);
  return state;
}

/** Return whether the signed-in user holds `permission`; the server checks again on every request. */
export function can(permission: string): boolean {
  return state.kind === 'signed-in' && state.me.permissions.includes(permission);
}

export function csrfToken(): string {
  return state.kind === 'signed-in' ? state.me.csrf_token ?? '' : '';
}

// 401 codes that mean the browser has no valid session (a wrong password or code keeps it).
const SIGNED_OUT_CODES = new Set(['unauthenticated', 'session_expired', 'session_invalid', 'setup_required', 'disabled']);

/** Read the server's answer; throw an Error with the server's message when it failed. */
export async function readAnswer<T>(response: Response): Promise<T> {
  let body: unknown = null;
  try {
    body = await response.json();
  } catch {
    // An empty or non-JSON body: the status code says enough below.
  }
  if (!response.ok) {
    const nested = (body as { error?: { message?: string; code?: string } } | null)?.error;
    const error = new Error(nested?.message ?? `request failed with HTTP ${response.status}`) as Error & {
      status?: number;
      code?: string;
    };
    error.status = response.status;
    error.code = nested?.code;
    if (response.status === 401 && SIGNED_OUT_CODES.has(nested?.code ?? '')) {
      signedOut(nested?.message ?? '', nested?.code === 'setup_required');
    }
    throw error;
  }
  return body as T;
}

/** Send a JSON request that changes something, with the session's CSRF token. */
export async function sendJSON<T>(method: string, path: string, body?: unknown): Promise<T> {
  const response = await fetch(path, {
    method,
    headers: { Accept: 'application/json', 'Content-Type': 'application/json', 'X-CSRF-Token': csrfToken() },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return readAnswer<T>(response);
}

export async function getJSON<T>(path: string, signal?: AbortSignal): Promise<T> {
  return readAnswer<T>(await fetch(path, { signal, headers: { Accept: 'application/json' } }));
}

/** Find out on load whether this browser is signed in, without a request that fails when it is not. */
export async function loadSession(): Promise<void> {
  const options = await providers();
  if (options.signed_in) {
    await refreshMe();
    return;
  }
  setState({ kind: 'signed-out', reason: '', setupRequired: options.setup_required });
}

/** Ask the server who is signed in, and update the state. */
export async function refreshMe(): Promise<void> {
  const response = await fetch('/api/v1/auth/me', { headers: { Accept: 'application/json' } });
  if (response.ok) {
    setState({ kind: 'signed-in', me: (await response.json()) as Me });
    return;
  }
  let message = '';
  let code = '';
  try {
    const body = (await response.json()) as { error?: { message?: string; code?: string } };
    message = body.error?.message ?? '';
    code = body.error?.code ?? '';
  } catch {
    // Keep the defaults.
  }
  setState({ kind: 'signed-out', reason: response.status === 401 ? '' : message, setupRequired: code === 'setup_required' });
}

/** Mark the user signed out, for example after the server answered 401 because the session expired. */
export function signedOut(reason: string, setupRequired = false): void {
  if (state.kind === 'signed-out' && state.reason === reason) return;
  setState({ kind: 'signed-out', reason, setupRequired });
}

export interface SignInAnswer {
  status: 'signed_in' | 'mfa_required' | 'mfa_enrollment_required';
  csrf_token: string;
}

export async function login(username: string, password: string): Promise<SignInAnswer> {
  const answer = await sendJSON<SignInAnswer>('POST', '/api/v1/auth/login', { username, password });
  await refreshMe();
  return answer;
}

export async function completeSetup(token: string, username: string, password: string): Promise<void> {
  await sendJSON('POST', '/api/v1/auth/setup', { token, username, password });
  await refreshMe();
}

export async function verifyMfa(code: { code?: string; recovery_code?: string }): Promise<void> {
  await sendJSON('POST', '/api/v1/auth/mfa/verify', code);
  await refreshMe();
}

export interface Enrollment {
  secret: string;
  otpauth_uri: string;
  qr_svg: string;
}

export function startEnrollment(): Promise<Enrollment> {
  return sendJSON<Enrollment>('POST', '/api/v1/auth/mfa/enrollment');
}

export function confirmEnrollment(code: string): Promise<{ recovery_codes: string[] }> {
  return sendJSON<{ recovery_codes: string[] }>('POST', '/api/v1/auth/mfa/enrollment/confirm', { code });
}

export async function logout(): Promise<void> {
  try {
    await sendJSON('POST', '/api/v1/auth/logout');
  } finally {
    setState({ kind: 'signed-out', reason: '', setupRequired: false });
  }
}

export function providers(): Promise<Providers> {
  return getJSON<Providers>('/api/v1/auth/providers');
}
