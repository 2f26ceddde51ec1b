import { describe, expect, it } from 'vitest';
import { parseSampleValue } from './api';
import { formatValue, UNITS } from './format';

describe('parseSampleValue', () => {
  it.each([
    ['0', 0],
    ['1.5', 1.5],
    ['-2', -2],
    ['1e+21', 1e21],
    ['6.02e-23', 6.02e-23],
    ['100000000000000000000000', 1e23],
    ['+Inf', Number.POSITIVE_INFINITY],
    ['-Inf', Number.NEGATIVE_INFINITY],
    ['Inf', Number.POSITIVE_INFINITY],
    ['+inf', Number.POSITIVE_INFINITY],
    ['-Infinity', Number.NEGATIVE_INFINITY],
  ])('parses %s', (text, expected) => {
    expect(parseSampleValue(text)).toBe(expected);
  });

  it.each(['NaN', '', ' ', 'abc', '1.2.3', 'Infx'])('returns NaN for %j', (text) => {
    expect(parseSampleValue(text)).toBeNaN();
  });

  it('formats parsed infinities in every unit', () => {
    for (const unit of UNITS) {
      expect(formatValue(parseSampleValue('+Inf'), unit)).toBe('+Inf');
      expect(formatValue(parseSampleValue('-Inf'), unit)).toBe('-Inf');
      expect(formatValue(parseSampleValue('NaN'), unit)).toBe('NaN');
    }
  });
});
