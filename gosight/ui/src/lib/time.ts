// Time ranges, refresh intervals and query steps.

export type TimeRange =
  | { kind: 'relative'; seconds: number }
  | { kind: 'absolute'; startMs: number; endMs: number };

/** Auto-refresh setting: off, live (pushed over the WebSocket) or an interval in seconds. */
export type Refresh = 'off' | 'live' | number;

export const DEFAULT_RANGE: TimeRange = { kind: 'relative', seconds: 3600 };

export const RELATIVE_CHOICES: readonly number[] = [
  300, 900, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600, 86_400, 2 * 86_400, 7 * 86_400, 30 * 86_400,
];

export const REFRESH_CHOICES: readonly Refresh[] = ['off', 'live', 5, 10, 30, 60, 300, 900];

const DURATION_UNITS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86_400, w: 604_800 };

/** Parse a Prometheus-style duration such as "90s", "5m" or "1h30m" into seconds; null when invalid. */
export function parseDuration(text: string): number | null {
  const trimmed = text.trim();
  if (!/^(\d+[smhdw])+$/.test(trimmed)) return null;
  let total = 0;
  for (const match of trimmed.matchAll(/(\d+)([smhdw])/g)) {
    total += Number(match[1]) * DURATION_UNITS[match[2]];
  }
  return total > 0 ? total : null;
}

/** Format seconds as the shortest exact duration: 5400 -> "90m", 86400 -> "1d". */
export function formatDurationShort(seconds: number): string {
  for (const unit of ['w', 'd', 'h', 'm']) {
    const size = DURATION_UNITS[unit];
    if (seconds >= size && seconds % size === 0) return `${seconds / size}${unit}`;
  }
  return `${Math.max(1, Math.round(seconds))}s`;
}

const RANGE_WORDS: Record<string, string> = { s: 'second', m: 'minute', h: 'hour', d: 'day', w: 'week' };

/** Describe a relative range for people: 3600 -> "Last 1 hour", 172800 -> "Last 2 days". */
export function describeRelative(seconds: number): string {
  const short = formatDurationShort(seconds);
  const count = Number(short.slice(0, -1));
  const word = RANGE_WORDS[short.slice(-1)];
  return `Last ${count} ${word}${count === 1 ? '' : 's'}`;
}

/** Resolve a range to start and end in epoch milliseconds; relative ranges end at `nowMs`. */
export function resolveRange(range: TimeRange, nowMs: number): { startMs: number; endMs: number } {
  if (range.kind === 'absolute') return { startMs: range.startMs, endMs: range.endMs };
  return { startMs: nowMs - range.seconds * 1000, endMs: nowMs };
}

/** Length of a range in seconds. */
export function rangeSeconds(range: TimeRange): number {
  return range.kind === 'relative' ? range.seconds : Math.max(1, (range.endMs - range.startMs) / 1000);
}

const NICE_STEPS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10_800, 21_600, 43_200, 86_400];

/**
 * Choose the query_range step: about one point per two pixels of chart width, never
 * finer than `minStepSeconds` (the collection interval), rounded up to a round number
 * of seconds, minutes or hours.
 */
export function chooseStep(spanSeconds: number, widthPx: number, minStepSeconds = 1): number {
  const points = Math.max(50, Math.min(1000, Math.floor(widthPx / 2)));
  const raw = Math.max(minStepSeconds, spanSeconds / points);
  return NICE_STEPS.find((step) => step >= raw) ?? Math.ceil(raw / 86_400) * 86_400;
}

/**
 * Window for rate() and friends at a given step, as a PromQL duration: at least four
 * collection intervals, so each window contains enough samples to compute a rate, and at
 * least one step, so no sample falls between two windows.
 */
export function rateWindow(stepSeconds: number, intervalSeconds = 10): string {
  const seconds = Math.max(60, 4 * intervalSeconds, stepSeconds + intervalSeconds);
  return formatDurationShort(Math.ceil(seconds));
}

export function describeRefresh(refresh: Refresh): string {
  if (refresh === 'off') return 'Off';
  if (refresh === 'live') return 'Live';
  return `Every ${formatDurationShort(refresh)}`;
}
