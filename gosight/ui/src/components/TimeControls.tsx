// Time range picker (relative and absolute) and the refresh control.

import { useEffect, useRef, useState } from 'preact/hooks';
import { formatDateTime } from '../lib/format';
import { live } from '../lib/live';
import { navigate, requestReload } from '../lib/state';
import {
  describeRefresh,
  describeRelative,
  formatDurationShort,
  parseDuration,
  REFRESH_CHOICES,
  RELATIVE_CHOICES,
  resolveRange,
  type Refresh,
  type TimeRange,
} from '../lib/time';
import { Icon } from './Icon';

export function describeRange(range: TimeRange): string {
  if (range.kind === 'relative') return describeRelative(range.seconds);
  return `${formatDateTime(range.startMs)} to ${formatDateTime(range.endMs)}`;
}

// <input type="datetime-local"> reads and writes local time without a zone.
function toLocalInput(epochMs: number): string {
  const date = new Date(epochMs - new Date(epochMs).getTimezoneOffset() * 60_000);
  return date.toISOString().slice(0, 16);
}

function fromLocalInput(text: string): number | null {
  if (!text) return null;
  const parsed = new Date(text).getTime();
  return Number.isNaN(parsed) ? null : parsed;
}

export function TimeRangePicker({ range }: { range: TimeRange }) {
  const [open, setOpen] = useState(false);
  const buttonRef = useRef<HTMLButtonElement>(null);
  const panelRef = useRef<HTMLDivElement>(null);
  const resolved = resolveRange(range, Date.now());
  const [from, setFrom] = useState(toLocalInput(resolved.startMs));
  const [to, setTo] = useState(toLocalInput(resolved.endMs));
  const [custom, setCustom] = useState(range.kind === 'relative' ? formatDurationShort(range.seconds) : '');
  const [problem, setProblem] = useState('');

  useEffect(() => {
    if (!open) return undefined;
    const now = resolveRange(range, Date.now());
    setFrom(toLocalInput(now.startMs));
    setTo(toLocalInput(now.endMs));
    setProblem('');
    panelRef.current?.querySelector<HTMLElement>('[aria-pressed="true"], button')?.focus();

    const onKey = (event: KeyboardEvent) => {
      if (event.key === 'Escape') close();
    };
    const onPointer = (event: MouseEvent) => {
      const target = event.target as Node;
      if (!panelRef.current?.contains(target) && !buttonRef.current?.contains(target)) setOpen(false);
    };
    document.addEventListener('keydown', onKey);
    document.addEventListener('mousedown', onPointer);
    return () => {
      document.removeEventListener('keydown', onKey);
      document.removeEventListener('mousedown', onPointer);
    };
  }, [open]);

  const close = () => {
    setOpen(false);
    buttonRef.current?.focus();
  };

  const choose = (next: TimeRange) => {
    navigate({ range: next });
    close();
  };

  const applyCustom = (event: Event) => {
    event.preventDefault();
    const seconds = parseDuration(custom);
    if (seconds === null) {
      setProblem(`Invalid duration "${custom}": use a number and a unit, such as 45m, 36h or 2w.`);
      return;
    }
    choose({ kind: 'relative', seconds });
  };

  const applyAbsolute = (event: Event) => {
    event.preventDefault();
    const startMs = fromLocalInput(from);
    const endMs = fromLocalInput(to);
    if (startMs === null || endMs === null) {
      setProblem('Enter both the start and the end time.');
      return;
    }
    if (startMs >= endMs) {
      setProblem('The start time must be before the end time.');
      return;
    }
    choose({ kind: 'absolute', startMs, endMs });
  };

  return (
    <div class="popover-anchor">
      <button
        ref={buttonRef}
        type="button"
        class="control"
        aria-haspopup="dialog"
        aria-expanded={open}
        aria-label={`Time range: ${describeRange(range)}`}
        data-testid="time-range"
        onClick={() => setOpen(!open)}
      >
        <Icon name="clock" />
        <span class="control-text">{describeRange(range)}</span>
        <Icon name="chevron" />
      </button>
      {open && (
        <div ref={panelRef} class="popover time-popover" role="dialog" aria-label="Choose a time range">
          <div class="time-columns">
            <div>
              <h2 class="popover-heading">Relative</h2>
              <ul class="choice-list">
                {RELATIVE_CHOICES.map((seconds) => (
                  <li key={seconds}>
                    <button
                      type="button"
                      class="choice"
                      aria-pressed={range.kind === 'relative' && range.seconds === seconds}
                      onClick={() => choose({ kind: 'relative', seconds })}
                    >
                      {describeRelative(seconds)}
                    </button>
                  </li>
                ))}
              </ul>
              <form class="inline-form" onSubmit={applyCustom}>
                <label class="field">
                  <span>Last</span>
                  <input
                    value={custom}
                    size={6}
                    onInput={(event) => setCustom(event.currentTarget.value)}
                    aria-label="Custom relative range, such as 45m"
                  />
                </label>
                <button type="submit" class="button">
                  Apply
                </button>
              </form>
            </div>
            <form class="absolute-form" onSubmit={applyAbsolute}>
              <h2 class="popover-heading">Absolute</h2>
              <label class="field">
                <span>From</span>
                <input type="datetime-local" value={from} onInput={(event) => setFrom(event.currentTarget.value)} />
              </label>
              <label class="field">
                <span>To</span>
                <input type="datetime-local" value={to} onInput={(event) => setTo(event.currentTarget.value)} />
              </label>
              <button type="submit" class="button button-primary">
                Apply range
              </button>
              <p class="hint">Tip: drag across a chart to zoom in.</p>
            </form>
          </div>
          {problem && (
            <p class="form-error" role="alert">
              {problem}
            </p>
          )}
        </div>
      )}
    </div>
  );
}

function refreshValue(refresh: Refresh): string {
  return refresh === 'off' || refresh === 'live' ? refresh : formatDurationShort(refresh);
}

export function RefreshControl({ refresh, range }: { refresh: Refresh; range: TimeRange }) {
  const [connected, setConnected] = useState(false);
  const isLive = refresh === 'live' && range.kind === 'relative';
  useEffect(() => (isLive ? live.onConnectionChange(setConnected) : undefined), [isLive]);

  const onChange = (value: string) => {
    const next: Refresh = value === 'off' || value === 'live' ? value : parseDuration(value) ?? 'off';
    navigate({ refresh: next });
  };

  return (
    <div class="refresh">
      <button type="button" class="control icon-only" aria-label="Refresh now" title="Refresh now" onClick={requestReload}>
        <Icon name="refresh" />
      </button>
      <label class="select-label">
        <span class="visually-hidden">Auto-refresh</span>
        <select
          class="control"
          value={refreshValue(refresh)}
          data-testid="refresh"
          onChange={(event) => onChange(event.currentTarget.value)}
        >
          {REFRESH_CHOICES.map((choice) => (
            <option
              key={String(choice)}
              value={refreshValue(choice)}
              disabled={choice === 'live' && range.kind === 'absolute'}
            >
              {choice === 'off' ? 'Auto-refresh off' : describeRefresh(choice)}
            </option>
          ))}
        </select>
      </label>
      {isLive && (
        <span class={`live-badge${connected ? ' live-on' : ''}`} role="status" data-testid="live-status">
          <span class="live-dot" aria-hidden="true" />
          {connected ? 'Live' : 'Connecting'}
        </span>
      )}
    </div>
  );
}
