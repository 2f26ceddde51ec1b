// A time-series chart of one or more PromQL queries. The uPlot instance is created
// once on mount, updated in place with setData, and destroyed on unmount. Fetches
// are cancelled when the view changes, and live mode appends pushed points.

import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import uPlot from 'uplot';
import { isAbort, parseSampleValue, queryRange } from '../lib/api';
import { buildOptions, refreshThemeColors, seriesColor, seriesOptions } from '../lib/chartOptions';
import { formatValue, type Unit } from '../lib/format';
import { live } from '../lib/live';
import { appendLive, buildChartData, emptyChartData, type ChartData, type QuerySpec } from '../lib/series';
import { navigate, useReloadTick } from '../lib/state';
import { onThemeChange } from '../lib/theme';
import { chooseStep, rangeSeconds, rateWindow, resolveRange, type Refresh, type TimeRange } from '../lib/time';

export interface PanelDef {
  id: string;
  title: string;
  unit: Unit;
  queries: QuerySpec[];
  description?: string;
}

interface ChartProps {
  panel: PanelDef;
  range: TimeRange;
  refresh: Refresh;
  /** Collection interval of the data in seconds: the finest useful step. */
  intervalS?: number;
  height?: number;
}

type LoadState = 'loading' | 'ready' | 'empty' | 'error';

interface Request {
  startS: number;
  endS: number;
  stepS: number;
  exprs: string[];
}

/** Replace $__rate_interval with a window that suits the step, as Grafana does. */
export function expandQuery(expr: string, stepS: number, intervalS: number): string {
  return expr.replace(/\$__rate_interval/g, rateWindow(stepS, intervalS));
}

// Width is rounded before choosing the step, so a resize by a few pixels does not refetch.
const WIDTH_BUCKET_PX = 200;

export function Chart({ panel, range, refresh, intervalS = 10, height = 200 }: ChartProps) {
  const rootRef = useRef<HTMLDivElement>(null);
  const plotHostRef = useRef<HTMLDivElement>(null);
  const plotRef = useRef<uPlot | null>(null);
  const dataRef = useRef<ChartData>(emptyChartData());
  const drawsRef = useRef(0);
  const hiddenRef = useRef(new Set<string>());
  const plotKeysRef = useRef<string[]>([]);
  const [widthBucket, setWidthBucket] = useState(0);
  const [state, setState] = useState<LoadState>('loading');
  const [error, setError] = useState('');
  const [request, setRequest] = useState<Request | null>(null);
  const [legendVersion, setLegendVersion] = useState(0);
  const tick = useReloadTick(true);
  const isLive = refresh === 'live' && range.kind === 'relative';

  const specs = panel.queries;
  const specKey = useMemo(() => JSON.stringify(specs), [specs]);
  const rangeKey = range.kind === 'relative' ? `r${range.seconds}` : `a${range.startMs}-${range.endMs}`;

  // Create the chart once.
  useEffect(() => {
    const host = plotHostRef.current;
    if (!host) return undefined;
    const options = buildOptions(Math.max(100, host.clientWidth), height, {
      unit: panel.unit,
      series: () => dataRef.current.series,
      onZoom: (startMs, endMs) => navigate({ range: { kind: 'absolute', startMs, endMs } }),
      onDraw: (self) => {
        if (dataRef.current.x.length === 0 || !rootRef.current) return;
        drawsRef.current += 1;
        rootRef.current.dataset.drawn = String(drawsRef.current);
        rootRef.current.dataset.drawnSeries = String(self.series.length - 1);
      },
    });
    const plot = new uPlot(options, [[]], host);
    plotRef.current = plot;
    setWidthBucket(Math.round(host.clientWidth / WIDTH_BUCKET_PX));

    const observer = new ResizeObserver(() => {
      const width = host.clientWidth;
      if (width > 0 && Math.abs(width - plot.width) >= 1) plot.setSize({ width, height });
      setWidthBucket(Math.round(width / WIDTH_BUCKET_PX));
    });
    observer.observe(host);
    const stopThemeWatch = onThemeChange(() => {
      refreshThemeColors();
      plot.redraw(false, true);
    });
    return () => {
      stopThemeWatch();
      observer.disconnect();
      plot.destroy();
      plotRef.current = null;
    };
    // The unit and height are fixed for the lifetime of a panel.
  }, []);

  /** Push dataRef into the uPlot instance, replacing the series set only when it changed. */
  const applyData = () => {
    const plot = plotRef.current;
    if (!plot) return;
    const data = dataRef.current;
    const current = plotKeysRef.current;
    const wanted = data.series.map((info) => info.key);
    const single = data.series.length === 1;
    const seriesChanged = current.length !== wanted.length || current.some((key, index) => key !== wanted[index]);
    // uPlot recomputes its scales when a batch ends, and fails on a series without a data
    // column. So the new series and their columns go in one batch.
    plot.batch(() => {
      if (seriesChanged) {
        for (let index = plot.series.length - 1; index >= 1; index -= 1) plot.delSeries(index);
        data.series.forEach((info, position) => {
          const options = seriesOptions(info, position, single);
          options.show = !hiddenRef.current.has(info.key);
          plot.addSeries(options);
        });
      }
      plot.setData([data.x, ...data.ys] as uPlot.AlignedData);
    });
    // Set only after the batch succeeded, so after a batch that threw the next data replaces the series again.
    plotKeysRef.current = wanted;
    setLegendVersion((version) => version + 1);
  };

  // Fetch the range whenever the queries, the range, the width or the refresh tick change.
  useEffect(() => {
    if (widthBucket === 0) return undefined;
    const controller = new AbortController();
    const now = Date.now();
    const { startMs, endMs } = resolveRange(range, now);
    const stepS = chooseStep(rangeSeconds(range), widthBucket * WIDTH_BUCKET_PX, intervalS);
    // The grid ends at the range's end, so the newest samples always have a point.
    const endS = Math.floor(endMs / 1000);
    const startS = endS - Math.ceil((endMs - startMs) / 1000 / stepS) * stepS;
    const exprs = specs.map((spec) => expandQuery(spec.expr, stepS, intervalS));
    setState((previous) => (previous === 'ready' ? previous : 'loading'));

    Promise.all(exprs.map((expr) => queryRange(expr, startS, endS, stepS, controller.signal)))
      .then((results) => {
        const expanded = specs.map((spec, index) => ({ ...spec, expr: exprs[index] }));
        dataRef.current = buildChartData(results, expanded, startS, endS, stepS);
        setRequest({ startS, endS, stepS, exprs });
        setError('');
        setState(dataRef.current.series.length > 0 ? 'ready' : 'empty');
        applyData();
      })
      .catch((failure: unknown) => {
        if (isAbort(failure)) return;
        setError(failure instanceof Error ? failure.message : String(failure));
        setState('error');
      });
    return () => controller.abort();
    // specKey and rangeKey stand for specs and range, whose identities change on every render.
  }, [specKey, rangeKey, widthBucket, tick, intervalS]);

  // Live mode: append pushed points once the range is loaded.
  useEffect(() => {
    if (!isLive || !request || range.kind !== 'relative') return undefined;
    const spanS = range.seconds;
    const unsubscribers = request.exprs.map((expr, query) =>
      live.subscribe(
        expr,
        (update) => {
          const windowStartS = Date.now() / 1000 - spanS;
          const spec = { ...specs[query], expr };
          if (appendLive(dataRef.current, query, spec, update.timeS, update.result, windowStartS)) {
            if (dataRef.current.series.length > 0) setState('ready');
            applyData();
          }
        },
        (message) => {
          setError(message);
          setState('error');
        },
      ),
    );
    return () => {
      for (const unsubscribe of unsubscribers) unsubscribe();
    };
  }, [isLive, request]);

  const toggleSeries = (key: string, position: number) => {
    const hidden = hiddenRef.current;
    if (hidden.has(key)) hidden.delete(key);
    else hidden.add(key);
    plotRef.current?.setSeries(position + 1, { show: !hidden.has(key) });
    setLegendVersion((version) => version + 1);
  };

  const titleId = `chart-title-${panel.id}`;
  return (
    <section
      ref={rootRef}
      class="panel chart"
      aria-labelledby={titleId}
      data-testid="chart"
      data-panel={panel.id}
      data-state={state}
      data-unit={panel.unit}
      data-series={dataRef.current.series.length}
      data-points={dataRef.current.x.length}
      data-last-x={dataRef.current.x[dataRef.current.x.length - 1]}
      data-filled={dataRef.current.ys[0]?.reduce((count: number, value) => count + (value === null ? 0 : 1), 0)}
      data-queries={request ? JSON.stringify(request.exprs) : undefined}
      data-start={request?.startS}
      data-end={request?.endS}
      data-step={request?.stepS}
      data-live={isLive ? 'true' : undefined}
    >
      <header class="panel-header">
        <h3 id={titleId} class="panel-title" title={panel.description}>
          {panel.title}
        </h3>
        {state === 'loading' && <span class="spinner" role="status" aria-label="Loading" />}
      </header>
      <div class="chart-body" style={{ minHeight: `${height}px` }}>
        <div ref={plotHostRef} class="chart-plot" role="img" aria-label={`${panel.title} chart`} />
        {state === 'empty' && <div class="chart-message">No data in this time range</div>}
        {state === 'error' && (
          <div class="chart-message chart-error" role="alert">
            {error}
          </div>
        )}
      </div>
      <Legend data={dataRef.current} unit={panel.unit} hidden={hiddenRef.current} onToggle={toggleSeries} version={legendVersion} />
    </section>
  );
}

interface LegendProps {
  data: ChartData;
  unit: Unit;
  hidden: Set<string>;
  onToggle: (key: string, position: number) => void;
  version: number;
}

function Legend({ data, unit, hidden, onToggle }: LegendProps) {
  if (data.series.length === 0) return null;
  return (
    <ul class="legend" aria-label="Series">
      {data.series.map((info, position) => (
        <li key={info.key}>
          <button
            type="button"
            class={`legend-item${hidden.has(info.key) ? ' legend-hidden' : ''}`}
            aria-pressed={!hidden.has(info.key)}
            title={`${info.name}: click to show or hide`}
            onClick={() => onToggle(info.key, position)}
            data-testid="legend-item"
            data-labels={JSON.stringify(info.labels)}
            data-query={info.query}
            data-last={info.last ?? ''}
            data-last-time={info.lastTimeS ?? ''}
          >
            <span class="swatch" style={{ background: seriesColor(position) }} />
            <span class="legend-name">{info.name}</span>
            <span class="legend-value">{info.last === null ? '–' : formatValue(parseSampleValue(info.last), unit)}</span>
          </button>
        </li>
      ))}
    </ul>
  );
}
