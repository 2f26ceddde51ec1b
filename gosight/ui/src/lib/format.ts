// Pure formatters for values, units and times. Every chart axis, legend,
// tooltip and table cell goes through these, so they carry the unit tests.

/** Units a chart or a column can declare; the formatter follows from the unit. */
export type Unit =
  | 'none'
  | 'percent'
  | 'bytes'
  | 'bytes/s'
  | 'seconds'
  | 'ops/s'
  | 'packets/s'
  | 'errors/s';

export const UNITS: readonly Unit[] = ['none', 'percent', 'bytes', 'bytes/s', 'seconds', 'ops/s', 'packets/s', 'errors/s'];

const BINARY_PREFIXES = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB', 'EiB'];
const SI_PREFIXES = ['', 'k', 'M', 'G', 'T', 'P', 'E'];

/** Round to `digits` significant digits and drop trailing zeros: 1.50 -> "1.5". */
export function formatNumber(value: number, digits = 3): string {
  if (!Number.isFinite(value)) return formatNonFinite(value);
  if (value === 0) return '0';
  const magnitude = Math.abs(value);
  if (magnitude >= 10 ** digits) return Math.round(value).toString();
  if (magnitude < 1e-3) return value.toExponential(digits - 1).replace(/\.?0+e/, 'e');
  return Number(value.toPrecision(digits)).toString();
}

function formatNonFinite(value: number): string {
  if (Number.isNaN(value)) return 'NaN';
  return value > 0 ? '+Inf' : '-Inf';
}

/** Scale a value by `base` and pick the matching prefix, up to the largest prefix given. */
function scaled(value: number, base: number, prefixes: string[], digits: number): [string, string] {
  let magnitude = Math.abs(value);
  let index = 0;
  while (magnitude >= base && index < prefixes.length - 1) {
    magnitude /= base;
    index += 1;
  }
  const sign = value < 0 ? '-' : '';
  return [sign + formatNumber(magnitude, digits), prefixes[index]];
}

/** Format bytes with IEC prefixes: 1536 -> "1.5 KiB". */
export function formatBytes(value: number, digits = 3): string {
  if (!Number.isFinite(value)) return formatNonFinite(value);
  const [number, prefix] = scaled(value, 1024, BINARY_PREFIXES, digits);
  return `${number} ${prefix}`;
}

/** Format a plain count with SI prefixes: 12_300 -> "12.3k". */
export function formatSI(value: number, digits = 3): string {
  if (!Number.isFinite(value)) return formatNonFinite(value);
  if (Math.abs(value) < 1000) return formatNumber(value, digits);
  const [number, prefix] = scaled(value, 1000, SI_PREFIXES, digits);
  return number + prefix;
}

/** Format a percentage that is already scaled to 0..100: 42.123 -> "42.1%". */
export function formatPercent(value: number): string {
  if (!Number.isFinite(value)) return formatNonFinite(value);
  const magnitude = Math.abs(value);
  if (magnitude === 0) return '0%';
  if (magnitude >= 100) return `${value.toFixed(0)}%`;
  if (magnitude < 0.01) return value > 0 ? '<0.01%' : '>-0.01%';
  if (magnitude < 1) return `${Number(value.toFixed(2))}%`;
  return `${Number(value.toFixed(1))}%`;
}

/** Format a per-second rate of a count: 1234.5 -> "1.23k/s". */
export function formatRate(value: number, noun = ''): string {
  if (!Number.isFinite(value)) return formatNonFinite(value);
  const suffix = noun ? ` ${noun}/s` : '/s';
  return formatSI(value) + suffix;
}

const DURATION_STEPS: [number, string][] = [
  [86_400 * 365, 'y'],
  [86_400, 'd'],
  [3600, 'h'],
  [60, 'm'],
  [1, 's'],
];

/**
 * Format a duration in seconds: 90 -> "1m 30s", 93_784 -> "1d 2h", 0.0042 -> "4.2 ms".
 * At most the two largest parts are shown, because "1d 2h 3m 4s" is noise on a chart.
 */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) return formatNonFinite(seconds);
  if (seconds < 0) return `-${formatDuration(-seconds)}`;
  if (seconds === 0) return '0s';
  if (seconds < 1e-3) return `${formatNumber(seconds * 1e6)} µs`;
  if (seconds < 1) return `${formatNumber(seconds * 1e3)} ms`;
  if (seconds < 60) return `${formatNumber(seconds)}s`;

  const rest = Math.round(seconds);
  const index = DURATION_STEPS.findIndex(([size]) => rest >= size);
  const [size, suffix] = DURATION_STEPS[index];
  const major = Math.floor(rest / size);
  const parts = [`${major}${suffix}`];
  if (index + 1 < DURATION_STEPS.length) {
    const [minorSize, minorSuffix] = DURATION_STEPS[index + 1];
    const minor = Math.floor((rest - major * size) / minorSize);
    if (minor > 0) parts.push(`${minor}${minorSuffix}`);
  }
  return parts.join(' ');
}

/** Format a value in `unit`, for legends, tooltips and table cells. */
export function formatValue(value: number | null | undefined, unit: Unit): string {
  if (value === null || value === undefined) return '–';
  switch (unit) {
    case 'percent':
      return formatPercent(value);
    case 'bytes':
      return formatBytes(value);
    case 'bytes/s':
      return Number.isFinite(value) ? `${formatBytes(value)}/s` : formatNonFinite(value);
    case 'seconds':
      return formatDuration(value);
    case 'ops/s':
      return formatRate(value, 'ops');
    case 'packets/s':
      return formatRate(value, 'pkt');
    case 'errors/s':
      return formatRate(value, 'err');
    default:
      return formatSI(value);
  }
}

/** Format axis ticks in `unit`; ticks share one precision, so 0.5 and 1 stay distinct but short. */
export function formatAxisValue(value: number, unit: Unit): string {
  if (unit === 'percent') return `${formatNumber(value, 3)}%`;
  return formatValue(value, unit);
}

/** Tick increments for byte axes: powers of two, so ticks land on 256 MiB or 1 GiB rather than 1e9. */
export function byteIncrements(): number[] {
  const increments: number[] = [];
  for (let power = 0; power <= 6; power += 1) {
    const base = 1024 ** power;
    for (const multiple of [1, 2, 4, 8, 16, 32, 64, 128, 256, 512]) {
      increments.push(base * multiple);
    }
  }
  return increments;
}

// Time formatting. A time zone argument keeps the functions pure and testable:
// the app passes undefined (the browser's zone), the tests pass "UTC".

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

interface TimeParts {
  year: number;
  month: number;
  day: number;
  hour: number;
  minute: number;
  second: number;
}

const partFormatters = new Map<string, Intl.DateTimeFormat>();

function timeParts(epochSeconds: number, timeZone?: string): TimeParts {
  const key = timeZone ?? '';
  let formatter = partFormatters.get(key);
  if (!formatter) {
    formatter = new Intl.DateTimeFormat('en-US', {
      timeZone,
      hourCycle: 'h23',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
      second: 'numeric',
    });
    partFormatters.set(key, formatter);
  }
  const parts: Record<string, number> = {};
  for (const part of formatter.formatToParts(new Date(epochSeconds * 1000))) {
    if (part.type !== 'literal') parts[part.type] = Number(part.value);
  }
  return {
    year: parts.year,
    month: parts.month,
    day: parts.day,
    hour: parts.hour,
    minute: parts.minute,
    second: parts.second,
  };
}

function pad2(value: number): string {
  return value < 10 ? `0${value}` : String(value);
}

/**
 * Format one time-axis tick. `spanSeconds` is the visible range and `stepSeconds`
 * the distance between ticks: seconds appear only when ticks are less than a
 * minute apart, and the date replaces the time on ticks at midnight of long ranges.
 */
export function formatAxisTime(epochSeconds: number, spanSeconds: number, stepSeconds: number, timeZone?: string): string {
  const t = timeParts(epochSeconds, timeZone);
  const clock = `${pad2(t.hour)}:${pad2(t.minute)}`;
  if (stepSeconds < 60) return `${clock}:${pad2(t.second)}`;
  if (stepSeconds >= 86_400) return `${MONTHS[t.month - 1]} ${t.day}`;
  if (spanSeconds > 86_400 && t.hour === 0 && t.minute === 0) return `${MONTHS[t.month - 1]} ${t.day}`;
  return clock;
}

/** Format a moment for tooltips and tables: "2024-03-05 14:07:09". */
export function formatDateTime(epochMs: number, timeZone?: string): string {
  const t = timeParts(epochMs / 1000, timeZone);
  return `${t.year}-${pad2(t.month)}-${pad2(t.day)} ${pad2(t.hour)}:${pad2(t.minute)}:${pad2(t.second)}`;
}

/** Format how long ago `epochMs` was, relative to `nowMs`: "12s ago", "3m ago". */
export function formatAgo(epochMs: number, nowMs: number): string {
  const seconds = Math.max(0, Math.round((nowMs - epochMs) / 1000));
  if (seconds < 5) return 'just now';
  return `${formatDuration(seconds)} ago`;
}
