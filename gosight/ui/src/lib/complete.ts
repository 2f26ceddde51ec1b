// Completion context of the PromQL editor: whether the caret is on a metric or
// function name, a label name or a label value. Pure text analysis, so it is unit-tested.

export type CompletionContext =
  | { kind: 'none' }
  | { kind: 'metric'; prefix: string; from: number }
  | { kind: 'label'; prefix: string; from: number; metric: string }
  | { kind: 'value'; prefix: string; from: number; metric: string; label: string; closed: boolean };

const IDENTIFIER_TAIL = /[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_TAIL = /[a-zA-Z_][a-zA-Z0-9_]*$/;
const GROUPING = /\b(by|without|on|ignoring|group_left|group_right)\s*$/;

/** PromQL functions, aggregations and keywords offered next to metric names. */
export const PROMQL_WORDS = [
  'abs', 'absent', 'absent_over_time', 'avg', 'avg_over_time', 'bottomk', 'ceil', 'changes', 'clamp', 'clamp_max',
  'clamp_min', 'count', 'count_over_time', 'count_values', 'day_of_month', 'day_of_week', 'delta', 'deriv', 'exp',
  'floor', 'group', 'histogram_quantile', 'holt_winters', 'hour', 'idelta', 'increase', 'irate', 'label_join',
  'label_replace', 'last_over_time', 'ln', 'log2', 'log10', 'max', 'max_over_time', 'min', 'min_over_time',
  'minute', 'month', 'predict_linear', 'quantile', 'quantile_over_time', 'rate', 'resets', 'round', 'scalar',
  'sort', 'sort_desc', 'sqrt', 'stddev', 'stddev_over_time', 'stdvar', 'stdvar_over_time', 'sum', 'sum_over_time',
  'time', 'timestamp', 'topk', 'vector', 'year', 'by', 'without', 'on', 'ignoring', 'group_left', 'group_right',
  'offset', 'and', 'or', 'unless', 'bool',
];

interface Scan {
  /** Position of the innermost unclosed bracket, with its character. */
  open: { char: string; index: number } | null;
  /** Set when the caret is inside a string: where the string's text starts. */
  stringStart: number | null;
}

function scan(text: string): Scan {
  const stack: { char: string; index: number }[] = [];
  let quote: string | null = null;
  let stringStart: number | null = null;
  for (let index = 0; index < text.length; index += 1) {
    const char = text[index];
    if (quote) {
      if (char === '\\') index += 1;
      else if (char === quote) {
        quote = null;
        stringStart = null;
      }
      continue;
    }
    if (char === '"' || char === "'" || char === '`') {
      quote = char;
      stringStart = index + 1;
    } else if (char === '{' || char === '(' || char === '[') {
      stack.push({ char, index });
    } else if (char === '}' || char === ')' || char === ']') {
      stack.pop();
    }
  }
  return { open: stack.length ? stack[stack.length - 1] : null, stringStart };
}

function metricBefore(text: string, braceIndex: number): string {
  const match = IDENTIFIER_TAIL.exec(text.slice(0, braceIndex).trimEnd());
  return match ? match[0] : '';
}

/** Find what to complete in `text` with the caret at `caret`. */
export function completionContext(text: string, caret: number): CompletionContext {
  const before = text.slice(0, caret);
  const { open, stringStart } = scan(before);

  if (open?.char === '{') {
    const metric = metricBefore(before, open.index);
    if (stringStart !== null) {
      const labelMatch = /([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*$/.exec(before.slice(0, stringStart - 1));
      if (!labelMatch) return { kind: 'none' };
      const closed = text[caret] === before[stringStart - 1];
      return {
        kind: 'value',
        prefix: before.slice(stringStart),
        from: stringStart,
        metric,
        label: labelMatch[1],
        closed,
      };
    }
    const inside = before.slice(open.index + 1);
    // A label name starts the selector or follows a comma.
    if (!/(^|,)\s*[a-zA-Z0-9_]*$/.test(inside)) return { kind: 'none' };
    const prefix = LABEL_TAIL.exec(inside)?.[0] ?? '';
    return { kind: 'label', prefix, from: caret - prefix.length, metric };
  }
  if (stringStart !== null || open?.char === '[') return { kind: 'none' };

  if (open?.char === '(' && GROUPING.test(before.slice(0, open.index))) {
    const prefix = LABEL_TAIL.exec(before.slice(open.index + 1))?.[0] ?? '';
    return { kind: 'label', prefix, from: caret - prefix.length, metric: '' };
  }

  const match = IDENTIFIER_TAIL.exec(before);
  if (!match) return { kind: 'none' };
  // A number such as 1e3 or a duration is not a name.
  if (/[0-9.]$/.test(before.slice(0, caret - match[0].length))) return { kind: 'none' };
  return { kind: 'metric', prefix: match[0], from: caret - match[0].length };
}

/** Rank candidates for a prefix: prefix matches first, then substring matches. */
export function rankCandidates(candidates: string[], prefix: string, limit = 50): string[] {
  const needle = prefix.toLowerCase();
  const starts: string[] = [];
  const contains: string[] = [];
  for (const candidate of candidates) {
    const lower = candidate.toLowerCase();
    if (lower === needle) continue;
    if (lower.startsWith(needle)) starts.push(candidate);
    else if (needle && lower.includes(needle)) contains.push(candidate);
  }
  return [...starts, ...contains].slice(0, limit);
}

/** Insert a completion: returns the new text and caret position. */
export function applyCompletion(text: string, caret: number, context: CompletionContext, value: string): { text: string; caret: number } {
  if (context.kind === 'none') return { text, caret };
  let end = caret;
  // Replace the rest of the word under the caret too, not only the typed prefix.
  while (end < text.length && /[a-zA-Z0-9_:]/.test(text[end]) && context.kind !== 'value') end += 1;
  let insert = value;
  if (context.kind === 'value') {
    insert = value.replace(/\\/g, '\\\\').replace(/"/g, '\\"');
    if (!context.closed) insert += '"';
  }
  const next = text.slice(0, context.from) + insert + text.slice(end);
  const position = context.from + insert.length + (context.kind === 'value' && context.closed ? 1 : 0);
  return { text: next, caret: position };
}
