import { describe, expect, it } from 'vitest';
import {
  formatAgo,
  formatAxisTime,
  formatAxisValue,
  formatBytes,
  formatDateTime,
  formatDuration,
  formatNumber,
  formatPercent,
  formatRate,
  formatSI,
  formatValue,
} from './format';

describe('formatBytes', () => {
  it.each([
    [0, '0 B'],
    [512, '512 B'],
    [1023, '1023 B'],
    [1024, '1 KiB'],
    [1536, '1.5 KiB'],
    [10 * 1024 * 1024, '10 MiB'],
    [1.25 * 1024 ** 3, '1.25 GiB'],
    [3 * 1024 ** 4, '3 TiB'],
    [-2048, '-2 KiB'],
    [1024 ** 7, '1024 EiB'],
  ])('%d bytes is %s', (value, expected) => {
    expect(formatBytes(value)).toBe(expected);
  });

  it('non-finite values', () => {
    expect(formatBytes(Number.NaN)).toBe('NaN');
    expect(formatBytes(Number.POSITIVE_INFINITY)).toBe('+Inf');
  });
});

describe('formatPercent', () => {
  it.each([
    [0, '0%'],
    [0.004, '<0.01%'],
    [0.5, '0.5%'],
    [0.123, '0.12%'],
    [7.25, '7.3%'],
    [42.04, '42%'],
    [99.96, '100%'],
    [100, '100%'],
    [250, '250%'],
  ])('%d percent is %s', (value, expected) => {
    expect(formatPercent(value)).toBe(expected);
  });
});

describe('formatRate', () => {
  it('adds the per-second suffix and SI prefixes', () => {
    expect(formatRate(0)).toBe('0/s');
    expect(formatRate(12.345)).toBe('12.3/s');
    expect(formatRate(1234.5)).toBe('1.23k/s');
    expect(formatRate(2_500_000, 'ops')).toBe('2.5M ops/s');
  });

  it('byte rates use binary prefixes', () => {
    expect(formatValue(1536, 'bytes/s')).toBe('1.5 KiB/s');
    expect(formatValue(5 * 1024 ** 2, 'bytes/s')).toBe('5 MiB/s');
  });
});

describe('formatDuration', () => {
  it.each([
    [0, '0s'],
    [0.0000042, '4.2 µs'],
    [0.0042, '4.2 ms'],
    [0.25, '250 ms'],
    [1, '1s'],
    [59.5, '59.5s'],
    [60, '1m'],
    [90, '1m 30s'],
    [3600, '1h'],
    [3660, '1h 1m'],
    [86_400 + 7200 + 60, '1d 2h'],
    [86_400 + 60, '1d'],
    [400 * 86_400, '1y 35d'],
    [-90, '-1m 30s'],
  ])('%d seconds is %s', (value, expected) => {
    expect(formatDuration(value)).toBe(expected);
  });
});

describe('formatNumber and formatSI', () => {
  it('keep three significant digits', () => {
    expect(formatNumber(3.14159)).toBe('3.14');
    expect(formatNumber(0.000123)).toBe('1.23e-4');
    expect(formatNumber(123_456)).toBe('123456');
    expect(formatSI(999)).toBe('999');
    expect(formatSI(12_300)).toBe('12.3k');
    expect(formatSI(-4_200_000)).toBe('-4.2M');
  });
});

describe('formatValue', () => {
  it('dispatches on the unit', () => {
    expect(formatValue(null, 'bytes')).toBe('–');
    expect(formatValue(50, 'percent')).toBe('50%');
    expect(formatValue(2048, 'bytes')).toBe('2 KiB');
    expect(formatValue(120, 'seconds')).toBe('2m');
    expect(formatValue(3, 'packets/s')).toBe('3 pkt/s');
    expect(formatValue(0.5, 'errors/s')).toBe('0.5 err/s');
    expect(formatValue(1500, 'none')).toBe('1.5k');
  });

  it('axis percent ticks keep trailing precision short', () => {
    expect(formatAxisValue(12.5, 'percent')).toBe('12.5%');
    expect(formatAxisValue(100, 'percent')).toBe('100%');
  });
});

describe('time axis', () => {
  const noon = Date.UTC(2024, 2, 5, 12, 7, 9) / 1000;
  const midnight = Date.UTC(2024, 2, 6, 0, 0, 0) / 1000;

  it('shows seconds when ticks are under a minute apart', () => {
    expect(formatAxisTime(noon, 300, 30, 'UTC')).toBe('12:07:09');
  });

  it('shows hours and minutes for ticks minutes apart', () => {
    expect(formatAxisTime(noon, 6 * 3600, 1800, 'UTC')).toBe('12:07');
  });

  it('shows the date at midnight of multi-day ranges', () => {
    expect(formatAxisTime(midnight, 3 * 86_400, 6 * 3600, 'UTC')).toBe('Mar 6');
    expect(formatAxisTime(noon, 3 * 86_400, 6 * 3600, 'UTC')).toBe('12:07');
  });

  it('shows dates when ticks are days apart', () => {
    expect(formatAxisTime(noon, 30 * 86_400, 86_400, 'UTC')).toBe('Mar 5');
  });

  it('follows the time zone', () => {
    expect(formatAxisTime(noon, 3600, 600, 'Asia/Kolkata')).toBe('17:37');
  });

  it('formats tooltip times and ages', () => {
    expect(formatDateTime(noon * 1000, 'UTC')).toBe('2024-03-05 12:07:09');
    expect(formatAgo(1_000_000, 1_000_002)).toBe('just now');
    expect(formatAgo(1_000_000, 1_000_000 + 125_000)).toBe('2m 5s ago');
  });
});
