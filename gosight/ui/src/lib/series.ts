// Turn Prometheus query results into uPlot's aligned columns, name the series, and
// append live points. Pure functions, so the chart component stays small and testable.

import { parseSampleValue, type Labels, type MatrixSeries, type VectorSample } from './api';

/** One PromQL query of a chart and how to name its series. */
export interface QuerySpec {
  expr: string;
  /** Series name template such as "{{device}} read"; without one the label set is shown. */
  legend?: string;
}

export interface SeriesInfo {
  key: string;
  name: string;
  labels: Labels;
  query: number;
  /** Latest value as the API sent it, and its time in seconds. */
  last: string | null;
  lastTimeS: number | null;
  /** Infinite and NaN samples by time in seconds, for the tooltip, because their column has null there. */
  nonFinite: Map<number, number>;
}

/** Chart data in uPlot's layout: one x column (seconds) and one y column per series. */
export interface ChartData {
  x: number[];
  ys: (number | null)[][];
  series: SeriesInfo[];
}

export function emptyChartData(): ChartData {
  return { x: [], ys: [], series: [] };
}

/** Identify a series across fetches and live updates: query index plus sorted labels. */
export function seriesKey(query: number, labels: Labels): string {
  const pairs = Object.keys(labels)
    .sort()
    .map((name) => `${name}=${JSON.stringify(labels[name])}`);
  return `${query}|${pairs.join(',')}`;
}

/** Format a label set as PromQL does: name{a="1", b="2"}. */
export function formatLabels(labels: Labels): string {
  const name = labels.__name__ ?? '';
  const pairs = Object.keys(labels)
    .filter((key) => key !== '__name__')
    .sort()
    .map((key) => `${key}=${JSON.stringify(labels[key])}`);
  if (pairs.length === 0) return name || '{}';
  return `${name}{${pairs.join(', ')}}`;
}

/** Name a series from a "{{label}}" template; without a template, from its labels or the query. */
export function seriesName(labels: Labels, template: string | undefined, expr: string): string {
  if (template) {
    return template.replace(/\{\{\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}/g, (_, label: string) => labels[label] ?? '');
  }
  if (Object.keys(labels).length === 0) return expr;
  return formatLabels(labels);
}

/** Store one sample in column `index` of the series at `position`. */
function setSample(data: ChartData, position: number, index: number, text: string): void {
  const value = parseSampleValue(text);
  const timeS = data.x[index];
  // Canvas paths cannot draw infinities or NaN, so the column gets a gap there.
  if (Number.isFinite(value)) {
    data.ys[position][index] = value;
    data.series[position].nonFinite.delete(timeS);
  } else {
    data.ys[position][index] = null;
    data.series[position].nonFinite.set(timeS, value);
  }
}

/**
 * Lay out range query results on one time grid. Prometheus stamps range results at
 * start + k * step, so every sample has a column index without searching.
 */
export function buildChartData(
  results: MatrixSeries[][],
  specs: QuerySpec[],
  startS: number,
  endS: number,
  stepS: number,
): ChartData {
  const count = Math.max(0, Math.floor((endS - startS) / stepS + 1e-9) + 1);
  const x = new Array<number>(count);
  for (let index = 0; index < count; index += 1) x[index] = startS + index * stepS;

  const data: ChartData = { x, ys: [], series: [] };
  results.forEach((matrix, query) => {
    for (const item of matrix) {
      const position = data.series.length;
      data.ys.push(new Array<number | null>(count).fill(null));
      const info: SeriesInfo = {
        key: seriesKey(query, item.metric),
        name: seriesName(item.metric, specs[query]?.legend, specs[query]?.expr ?? ''),
        labels: item.metric,
        query,
        last: null,
        lastTimeS: null,
        nonFinite: new Map(),
      };
      data.series.push(info);
      for (const [timeS, text] of item.values) {
        const index = Math.round((timeS - startS) / stepS);
        if (index < 0 || index >= count) continue;
        setSample(data, position, index, text);
        info.last = text;
        info.lastTimeS = timeS;
      }
    }
  });
  return data;
}

/**
 * Append one live evaluation of query `query` at `timeS` and drop points before
 * `windowStartS`. Series seen for the first time get a column filled with nulls.
 * Returns false when the update is not newer than the data, and so was ignored.
 */
export function appendLive(
  data: ChartData,
  query: number,
  spec: QuerySpec,
  timeS: number,
  result: VectorSample[],
  windowStartS: number,
): boolean {
  const lastX = data.x.length ? data.x[data.x.length - 1] : -Infinity;
  if (timeS < lastX) return false;

  // Several queries of one chart update separately; a second query at the same
  // time fills the column that the first one added.
  if (timeS > lastX) {
    data.x.push(timeS);
    for (const column of data.ys) column.push(null);
  }
  const index = data.x.length - 1;
  const positions = new Map(data.series.map((info, position) => [info.key, position]));
  for (const sample of result) {
    const key = seriesKey(query, sample.metric);
    let position = positions.get(key);
    if (position === undefined) {
      position = data.series.length;
      data.series.push({
        key,
        name: seriesName(sample.metric, spec.legend, spec.expr),
        labels: sample.metric,
        query,
        last: null,
        lastTimeS: null,
        nonFinite: new Map(),
      });
      data.ys.push(new Array<number | null>(data.x.length).fill(null));
      positions.set(key, position);
    }
    setSample(data, position, index, sample.value[1]);
    data.series[position].last = sample.value[1];
    data.series[position].lastTimeS = sample.value[0];
  }

  let drop = 0;
  while (drop < data.x.length - 1 && data.x[drop] < windowStartS) drop += 1;
  if (drop > 0) {
    data.x.splice(0, drop);
    for (const column of data.ys) column.splice(0, drop);
    const firstS = data.x[0];
    for (const info of data.series) {
      for (const timeS of info.nonFinite.keys()) {
        if (timeS < firstS) info.nonFinite.delete(timeS);
      }
    }
  }
  return true;
}
