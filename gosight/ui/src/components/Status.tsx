// Small shared pieces: status badges, link helper, meters and messages.

import type { ComponentChildren } from 'preact';
import { formatPercent } from '../lib/format';
import { followLink, hrefFor } from '../lib/state';
import type { AppState } from '../lib/url';

const STATUS_TEXT: Record<string, string> = { online: 'Online', idle: 'Idle', offline: 'Offline', gone: 'Gone' };

export function StatusBadge({ status }: { status: string }) {
  return (
    <span class={`status status-${status}`} data-status={status}>
      <span class="status-dot" aria-hidden="true" />
      {STATUS_TEXT[status] ?? status}
    </span>
  );
}

/** Render a link inside the app: a real href for new tabs, client-side navigation on a plain click. */
export function Link({ to, children, ...rest }: { to: Partial<AppState>; children: ComponentChildren; class?: string; title?: string; 'aria-current'?: 'page' }) {
  return (
    <a href={hrefFor(to)} onClick={(event) => followLink(event, to)} {...rest}>
      {children}
    </a>
  );
}

/** Render a percentage with a small bar, colored as a warning from 75 and as high from 90 percent. */
export function Meter({ value, label }: { value: number | undefined; label: string }) {
  if (value === undefined || !Number.isFinite(value)) return <span class="muted">–</span>;
  const clamped = Math.max(0, Math.min(100, value));
  let level = 'ok';
  if (clamped >= 90) level = 'high';
  else if (clamped >= 75) level = 'warn';
  return (
    <span class="meter" title={`${label}: ${formatPercent(value)}`}>
      <span class="meter-bar" aria-hidden="true">
        <span class={`meter-fill meter-${level}`} style={{ width: `${clamped}%` }} />
      </span>
      <span class="meter-text">{formatPercent(value)}</span>
    </span>
  );
}

export function ErrorMessage({ message }: { message: string }) {
  return (
    <div class="notice notice-error" role="alert">
      {message}
    </div>
  );
}
