import { describe, expect, it } from 'vitest';
import { appendLive, buildChartData, formatLabels, seriesName } from './series';

describe('buildChartData', () => {
  it('aligns series on the step grid and keeps the last raw value', () => {
    const data = buildChartData(
      [
        [{ metric: { device: 'eth0' }, values: [[100, '1'], [120, '3']] }],
        [{ metric: { device: 'eth1' }, values: [[110, '+Inf']] }],
      ],
      [{ expr: 'a', legend: '{{device}} in' }, { expr: 'b' }],
      100,
      125,
      10,
    );
    expect(data.x).toEqual([100, 110, 120]);
    expect(data.ys).toEqual([[1, null, 3], [null, null, null]]);
    expect(data.series.map((info) => info.name)).toEqual(['eth0 in', '{device="eth1"}']);
    expect(data.series[0].last).toBe('3');
    expect(data.series[1].last).toBe('+Inf');
  });

  it('keeps infinite and NaN samples out of the columns', () => {
    const data = buildChartData(
      [[{ metric: {}, values: [[100, '+Inf'], [110, '-Inf'], [120, 'NaN'], [130, '4']] }]],
      [{ expr: '1/0' }],
      100,
      130,
      10,
    );
    expect(data.ys).toEqual([[null, null, null, 4]]);
    expect([...data.series[0].nonFinite.keys()]).toEqual([100, 110, 120]);
    expect(data.series[0].nonFinite.get(100)).toBe(Number.POSITIVE_INFINITY);
    expect(data.series[0].nonFinite.get(110)).toBe(Number.NEGATIVE_INFINITY);
    expect(data.series[0].nonFinite.get(120)).toBeNaN();
  });
});

describe('appendLive', () => {
  it('appends points, adds new series and drops old points', () => {
    const data = buildChartData([[{ metric: { cpu: '0' }, values: [[100, '1'], [110, '2']] }]], [{ expr: 'q' }], 100, 110, 10);
    const spec = { expr: 'q', legend: 'cpu {{cpu}}' };

    expect(appendLive(data, 0, spec, 115, [
      { metric: { cpu: '0' }, value: [115, '5'] },
      { metric: { cpu: '1' }, value: [115, '7'] },
    ], 105)).toBe(true);

    expect(data.x).toEqual([110, 115]);
    expect(data.ys).toEqual([[2, 5], [null, 7]]);
    expect(data.series[1].name).toBe('cpu 1');
    expect(data.series[0].last).toBe('5');
  });

  it('tracks infinite samples and drops them with their points', () => {
    const data = buildChartData([[{ metric: {}, values: [[100, '+Inf'], [110, '1']] }]], [{ expr: 'q' }], 100, 110, 10);

    appendLive(data, 0, { expr: 'q' }, 120, [{ metric: {}, value: [120, '-Inf'] }], 105);

    expect(data.x).toEqual([110, 120]);
    expect(data.ys).toEqual([[1, null]]);
    expect([...data.series[0].nonFinite.entries()]).toEqual([[120, Number.NEGATIVE_INFINITY]]);
    expect(data.series[0].last).toBe('-Inf');
  });

  it('forgets an infinite sample that a finite one replaces', () => {
    const data = buildChartData([[{ metric: {}, values: [[100, '+Inf']] }]], [{ expr: 'q' }], 100, 100, 10);

    appendLive(data, 0, { expr: 'q' }, 100, [{ metric: {}, value: [100, '2'] }], 0);

    expect(data.ys).toEqual([[2]]);
    expect(data.series[0].nonFinite.size).toBe(0);
  });

  it('ignores updates older than the data', () => {
    const data = buildChartData([[{ metric: {}, values: [[100, '1']] }]], [{ expr: 'q' }], 100, 100, 10);
    expect(appendLive(data, 0, { expr: 'q' }, 90, [{ metric: {}, value: [90, '4'] }], 0)).toBe(false);
    expect(data.x).toEqual([100]);
  });
});

describe('series names', () => {
  it('formats label sets like PromQL', () => {
    expect(formatLabels({ __name__: 'up', job: 'node', instance: 'a:1' })).toBe('up{instance="a:1", job="node"}');
    expect(formatLabels({})).toBe('{}');
    expect(seriesName({}, undefined, 'sum(x)')).toBe('sum(x)');
    expect(seriesName({ mode: 'user' }, '{{ mode }} time', '')).toBe('user time');
  });
});
