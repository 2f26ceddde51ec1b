import { describe, expect, it } from 'vitest';
import { chooseStep, describeRelative, formatDurationShort, parseDuration, rateWindow, resolveRange } from './time';

describe('durations', () => {
  it('parses Prometheus durations', () => {
    expect(parseDuration('5m')).toBe(300);
    expect(parseDuration('1h30m')).toBe(5400);
    expect(parseDuration('2w')).toBe(1_209_600);
    expect(parseDuration('')).toBeNull();
    expect(parseDuration('5')).toBeNull();
    expect(parseDuration('0s')).toBeNull();
    expect(parseDuration('1.5h')).toBeNull();
  });

  it('formats the shortest exact unit', () => {
    expect(formatDurationShort(5400)).toBe('90m');
    expect(formatDurationShort(86_400)).toBe('1d');
    expect(formatDurationShort(1_209_600)).toBe('2w');
    expect(formatDurationShort(45)).toBe('45s');
  });

  it('describes relative ranges', () => {
    expect(describeRelative(3600)).toBe('Last 1 hour');
    expect(describeRelative(172_800)).toBe('Last 2 days');
    expect(describeRelative(900)).toBe('Last 15 minutes');
  });
});

describe('steps and windows', () => {
  it('chooses about one point per two pixels, on nice steps', () => {
    expect(chooseStep(3600, 1000, 1)).toBe(10);
    expect(chooseStep(86_400, 1000, 10)).toBe(300);
    expect(chooseStep(300, 1000, 10)).toBe(10);
    expect(chooseStep(30 * 86_400, 1200, 10)).toBe(7200);
  });

  it('rate windows cover four intervals and one step', () => {
    expect(rateWindow(10, 10)).toBe('1m');
    expect(rateWindow(300, 10)).toBe('310s');
    expect(rateWindow(15, 60)).toBe('4m');
  });

  it('resolves relative ranges against now', () => {
    expect(resolveRange({ kind: 'relative', seconds: 60 }, 100_000)).toEqual({ startMs: 40_000, endMs: 100_000 });
  });
});
