// Metric explorer: several PromQL queries on one chart, or as a table of their
// instant values. Each query is checked with an instant query first, so an error
// shows under the query that caused it and the chart draws the others.

import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { Chart, type PanelDef } from '../components/Chart';
import { Icon } from '../components/Icon';
import { QueryEditor } from '../components/QueryEditor';
import { TabPanel, Tabs } from '../components/Tabs';
import { isAbort, parseSampleValue, queryInstant, type MatrixSeries, type QueryData } from '../lib/api';
import { formatValue, UNITS, type Unit } from '../lib/format';
import { formatLabels } from '../lib/series';
import { navigate, useFollowingState, useReloadTick } from '../lib/state';
import { resolveRange } from '../lib/time';
import type { AppState, ExplorerView } from '../lib/url';

/** Guess a unit from metric names in the query; the unit menu overrides it. */
export function guessUnit(expr: string): Unit {
  const rated = /\b(rate|irate|increase|deriv)\s*\(/.test(expr);
  if (/_bytes(_total)?\b/.test(expr)) return rated ? 'bytes/s' : 'bytes';
  if (/_seconds_total\b/.test(expr) && rated) return 'none';
  if (/_seconds\b/.test(expr)) return 'seconds';
  if (/_total\b/.test(expr) && rated) return 'ops/s';
  return 'none';
}

interface Outcome {
  data: QueryData | null;
  error: string;
}

const VIEWS = [
  { id: 'graph', label: 'Graph' },
  { id: 'table', label: 'Table' },
];

function ResultTable({ outcome, unit, index }: { outcome: Outcome; unit: Unit; index: number }) {
  const { data } = outcome;
  if (!data) return null;
  if (data.resultType === 'scalar' || data.resultType === 'string') {
    return (
      <p class="scalar" data-testid="result-scalar">
        {data.resultType === 'scalar' ? formatValue(parseSampleValue(data.result[1]), unit) : data.result[1]}
      </p>
    );
  }
  const rows =
    data.resultType === 'vector'
      ? data.result.map((sample) => ({ labels: sample.metric, value: sample.value[1] }))
      : (data.result as MatrixSeries[]).map((series) => ({
          labels: series.metric,
          value: series.values[series.values.length - 1]?.[1] ?? '',
        }));
  if (rows.length === 0) return <p class="muted panel-note">Query {index + 1} returned no series.</p>;
  return (
    <table class="table" data-testid="result-table">
      <caption class="visually-hidden">Results of query {index + 1}</caption>
      <thead>
        <tr>
          <th scope="col">Series</th>
          <th scope="col" class="numeric">
            Value
          </th>
        </tr>
      </thead>
      <tbody>
        {rows.map((row) => (
          <tr key={formatLabels(row.labels)}>
            <td class="mono series-cell">{formatLabels(row.labels)}</td>
            <td class="numeric mono" title={row.value} data-value={row.value}>
              {formatValue(parseSampleValue(row.value), unit)}
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

export function Explorer({ state }: { state: AppState }) {
  const queries = state.queries;
  const queriesKey = JSON.stringify(queries);
  // Back and Forward change the queries in the URL; the editors follow.
  const [drafts, setDraftState] = useFollowingState<string[]>(queries.length ? queries : [''], queriesKey);
  // Run reads the drafts from this ref, not from the render's closure: a key press
  // right after typing can arrive before the re-render that would refresh the closure.
  // A render always carries the newest state, so it may refresh the ref too.
  const latestDrafts = useRef(drafts);
  latestDrafts.current = drafts;
  const setDrafts = (next: string[]) => {
    latestDrafts.current = next;
    setDraftState(next);
  };
  const [outcomes, setOutcomes] = useState<Outcome[]>([]);
  const [unitChoice, setUnitChoice] = useState<Unit | 'auto'>('auto');
  const tick = useReloadTick(true);


  const rangeKey = JSON.stringify(state.range);
  useEffect(() => {
    if (queries.length === 0) {
      setOutcomes([]);
      return undefined;
    }
    const controller = new AbortController();
    const endS = resolveRange(state.range, Date.now()).endMs / 1000;
    Promise.all(
      queries.map((expr) =>
        queryInstant(expr, endS, controller.signal).then(
          (data): Outcome => ({ data, error: '' }),
          (failure: unknown): Outcome => {
            if (isAbort(failure)) throw failure;
            return { data: null, error: (failure as Error).message ?? String(failure) };
          },
        ),
      ),
    )
      .then(setOutcomes)
      .catch((failure: unknown) => {
        if (!isAbort(failure)) throw failure;
      });
    return () => controller.abort();
  }, [queriesKey, rangeKey, tick]);

  const run = () => {
    const cleaned = latestDrafts.current.map((draft) => draft.trim()).filter(Boolean);
    navigate({ queries: cleaned });
  };

  const valid = queries.filter((_, index) => outcomes[index] && !outcomes[index].error);
  const unit: Unit = unitChoice === 'auto' ? guessUnit(valid[0] ?? queries[0] ?? '') : unitChoice;
  const panel: PanelDef = useMemo(
    () => ({ id: 'explore', title: 'Graph', unit, queries: valid.map((expr) => ({ expr })) }),
    [JSON.stringify(valid), unit],
  );

  return (
    <div class="page">
      <div class="page-header">
        <h1 class="page-title" tabIndex={-1}>
          Explore
        </h1>
      </div>
      <form
        class="panel explorer-form"
        onSubmit={(event) => {
          event.preventDefault();
          run();
        }}
      >
        {drafts.map((draft, index) => (
          <div class="query-row" key={index}>
            <span class="query-index" aria-hidden="true">
              {index + 1}
            </span>
            <QueryEditor
              id={`query-${index}`}
              label={`Query ${index + 1}`}
              value={draft}
              error={queries[index] === draft.trim() ? outcomes[index]?.error ?? '' : ''}
              onChange={(text) =>
                setDrafts(latestDrafts.current.map((item, position) => (position === index ? text : item)))
              }
              onSubmit={run}
            />
            {drafts.length > 1 && (
              <button
                type="button"
                class="control icon-only"
                aria-label={`Remove query ${index + 1}`}
                onClick={() => setDrafts(latestDrafts.current.filter((_, position) => position !== index))}
              >
                <Icon name="close" />
              </button>
            )}
          </div>
        ))}
        <div class="explorer-actions">
          <button type="button" class="button" onClick={() => setDrafts([...latestDrafts.current, ''])}>
            <Icon name="plus" /> Add query
          </button>
          <label class="field">
            <span>Unit</span>
            <select value={unitChoice} onChange={(event) => setUnitChoice(event.currentTarget.value as Unit | 'auto')}>
              <option value="auto">Automatic ({unit})</option>
              {UNITS.map((choice) => (
                <option key={choice} value={choice}>
                  {choice}
                </option>
              ))}
            </select>
          </label>
          <span class="hint">Enter runs, Shift+Enter adds a line, Ctrl+Space suggests.</span>
          <button type="submit" class="button button-primary" data-testid="run-query">
            <Icon name="play" /> Run
          </button>
        </div>
      </form>

      {queries.length > 0 && (
        <>
          <Tabs
            tabs={VIEWS}
            selected={state.view}
            onSelect={(view) => navigate({ view: view as ExplorerView }, true)}
            label="Result view"
            idPrefix="explore"
          />
          <TabPanel idPrefix="explore" id={state.view}>
            {state.view === 'graph' &&
              (valid.length > 0 ? (
                <Chart key={panel.unit} panel={panel} range={state.range} refresh={state.refresh} height={320} />
              ) : (
                <p class="muted panel-note">{outcomes.length ? 'No query to draw: fix the errors above.' : 'Running…'}</p>
              ))}
            {state.view === 'table' && (
              <div class="stack">
                {outcomes.map((outcome, index) => (
                  <section class="panel" key={index} aria-label={`Query ${index + 1}`}>
                    <header class="panel-header">
                      <h2 class="panel-title mono">{queries[index]}</h2>
                    </header>
                    {outcome.error ? (
                      <p class="query-error">{outcome.error}</p>
                    ) : (
                      <ResultTable outcome={outcome} unit={unit} index={index} />
                    )}
                  </section>
                ))}
              </div>
            )}
          </TabPanel>
        </>
      )}
      {queries.length === 0 && (
        <p class="empty-state">
          Write a PromQL query and press Enter. Metric names complete as you type; inside braces, labels and their
          values do.
        </p>
      )}
    </div>
  );
}
