import { describe, expect, it } from 'vitest';
import { applyCompletion, completionContext, rankCandidates } from './complete';

function at(textWithCaret: string) {
  const caret = textWithCaret.indexOf('|');
  const text = textWithCaret.replace('|', '');
  return { text, caret, context: completionContext(text, caret) };
}

describe('completionContext', () => {
  it('completes metric names', () => {
    expect(at('rate(node_cp|').context).toEqual({ kind: 'metric', prefix: 'node_cp', from: 5 });
  });

  it('completes label names inside braces', () => {
    expect(at('node_cpu_seconds_total{mo|').context).toEqual({ kind: 'label', prefix: 'mo', from: 23, metric: 'node_cpu_seconds_total' });
    expect(at('up{job="a", |}').context).toMatchObject({ kind: 'label', prefix: '', metric: 'up' });
  });

  it('completes label values inside quotes', () => {
    expect(at('up{job="no|"}').context).toEqual({ kind: 'value', prefix: 'no', from: 8, metric: 'up', label: 'job', closed: true });
    expect(at('up{job=~"|').context).toMatchObject({ kind: 'value', label: 'job', closed: false });
  });

  it('completes label names in grouping clauses', () => {
    expect(at('sum by (dev|) (x)').context).toEqual({ kind: 'label', prefix: 'dev', from: 8, metric: '' });
  });

  it('offers nothing inside durations, strings or numbers', () => {
    expect(at('rate(x[5|').context.kind).toBe('none');
    expect(at('label_replace(x, "ds|').context.kind).toBe('none');
    expect(at('x > 1e|').context.kind).toBe('none');
  });
});

describe('applyCompletion', () => {
  it('replaces the word under the caret', () => {
    const { text, caret, context } = at('rate(node_cp|u[5m])');
    expect(applyCompletion(text, caret, context, 'node_cpu_seconds_total')).toEqual({
      text: 'rate(node_cpu_seconds_total[5m])',
      caret: 27,
    });
  });

  it('closes and escapes label values', () => {
    const { text, caret, context } = at('up{path="|');
    expect(applyCompletion(text, caret, context, 'C:\\"x"').text).toBe('up{path="C:\\\\\\"x\\""');
  });
});

describe('rankCandidates', () => {
  it('puts prefix matches before substring matches', () => {
    expect(rankCandidates(['node_load1', 'go_gc', 'load_x', 'node_cpu'], 'load')).toEqual(['load_x', 'node_load1']);
  });
});
