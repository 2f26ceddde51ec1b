// uPlot options shared by every chart: theme-aware axes, unit-aware ticks, a
// tooltip that follows the cursor, and drag-to-zoom.

import uPlot from 'uplot';
import { byteIncrements, formatAxisTime, formatAxisValue, formatDateTime, formatValue, type Unit } from './format';
import type { SeriesInfo } from './series';

// Colors readable on both the light and the dark background. Most charts have few
// series, so the first colors are the most distinct from each other.
export const PALETTE = [
  '#3b82f6', '#f59e0b', '#10b981', '#ef4444', '#8b5cf6', '#06b6d4', '#ec4899', '#84cc16',
  '#f97316', '#6366f1', '#14b8a6', '#eab308', '#a855f7', '#22c55e', '#0ea5e9', '#e11d48',
];

export function seriesColor(position: number): string {
  return PALETTE[position % PALETTE.length];
}

export const SYNC_KEY = 'gosight';

interface ThemeColors {
  axis: string;
  grid: string;
  text: string;
}

// Canvas drawing cannot use CSS variables, so the colors are read from the root
// element when the theme changes and the charts redraw.
let colors: ThemeColors = readColors();

export function refreshThemeColors(): void {
  colors = readColors();
}

function readColors(): ThemeColors {
  const style = getComputedStyle(document.documentElement);
  const read = (name: string, fallback: string) => style.getPropertyValue(name).trim() || fallback;
  return {
    axis: read('--chart-axis', '#8a94a6'),
    grid: read('--chart-grid', 'rgba(128,128,128,0.15)'),
    text: read('--text-muted', '#6b7280'),
  };
}

const FONT = '11px system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif';

export interface ChartCallbacks {
  unit: Unit;
  /** Series metadata in uPlot order (uPlot index minus one). */
  series: () => SeriesInfo[];
  onZoom: (startMs: number, endMs: number) => void;
  onDraw: (plot: uPlot) => void;
}

// A canvas of its own for measuring, because uPlot caches the font of its context.
const measureContext = document.createElement('canvas').getContext('2d');

function yAxisSize(_self: uPlot, values: string[] | null): number {
  if (!values || values.length === 0 || !measureContext) return 48;
  measureContext.font = FONT;
  const widest = Math.max(...values.map((text) => measureContext.measureText(text).width));
  return Math.ceil(widest) + 18;
}

function yRange(unit: Unit) {
  return (_self: uPlot, min: number | null, max: number | null): uPlot.Range.MinMax => {
    if (min === null || max === null) return [0, unit === 'percent' ? 100 : 1];
    const low = Math.min(0, min);
    let high = max <= low ? low + 1 : max + (max - low) * 0.08;
    if (unit === 'percent' && max <= 100) high = Math.min(100, Math.max(high, 1));
    return [low, high];
  };
}

/** Build the options of a chart; series beyond the x column are added by the caller. */
export function buildOptions(width: number, height: number, callbacks: ChartCallbacks): uPlot.Options {
  const { unit } = callbacks;
  const tooltip = tooltipPlugin(callbacks);
  return {
    width,
    height,
    legend: { show: false },
    padding: [10, 12, 0, 4],
    cursor: {
      // A vertical line only: a horizontal one means nothing on the synced charts.
      y: false,
      sync: { key: SYNC_KEY, setSeries: false },
      drag: { x: true, y: false, setScale: false },
      points: { size: 6 },
      focus: { prox: 16 },
    },
    focus: { alpha: 0.35 },
    scales: { x: { time: true }, y: { range: yRange(unit) } },
    series: [{}],
    axes: [
      {
        stroke: () => colors.axis,
        font: FONT,
        // Wide enough for "20:35:30", so second-level ticks never crowd each other.
        space: 80,
        grid: { stroke: () => colors.grid, width: 1 },
        ticks: { stroke: () => colors.grid, width: 1, size: 4 },
        values: (self, splits, _axis, _space, increment) => {
          const span = (self.scales.x.max ?? 0) - (self.scales.x.min ?? 0);
          return splits.map((split) => formatAxisTime(split, span, increment));
        },
      },
      {
        stroke: () => colors.axis,
        font: FONT,
        size: yAxisSize,
        grid: { stroke: () => colors.grid, width: 1 },
        ticks: { show: false },
        incrs: unit === 'bytes' || unit === 'bytes/s' ? byteIncrements() : undefined,
        values: (_self, splits) => splits.map((split) => formatAxisValue(split, unit)),
      },
    ],
    hooks: {
      setSelect: [
        (self) => {
          const { left, width: selected } = self.select;
          if (selected < 4) return;
          const startS = self.posToVal(left, 'x');
          const endS = self.posToVal(left + selected, 'x');
          self.setSelect({ left: 0, top: 0, width: 0, height: 0 }, false);
          callbacks.onZoom(Math.round(startS * 1000), Math.round(endS * 1000));
        },
      ],
      draw: [(self) => callbacks.onDraw(self)],
    },
    plugins: [tooltip],
  };
}

export function seriesOptions(info: SeriesInfo, position: number, single: boolean): uPlot.Series {
  const color = seriesColor(position);
  return {
    label: info.name,
    stroke: color,
    width: 1.5,
    // One series gets a light fill; many filled series would hide each other.
    fill: single ? `${color}1f` : undefined,
    spanGaps: false,
    // uPlot's default shows points only where they are sparse, so isolated samples stay visible.
  };
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (char) => `&#${char.charCodeAt(0)};`);
}

const TOOLTIP_ROWS = 12;

/** Order values from largest to smallest with NaN last. Subtracting would give NaN for two equal infinities. */
function compareDescending(a: number, b: number): number {
  if (Number.isNaN(a) || Number.isNaN(b)) return Number(Number.isNaN(a)) - Number(Number.isNaN(b));
  if (a > b) return -1;
  if (a < b) return 1;
  return 0;
}

/**
 * Show the values under the cursor in a box beside it. Only the chart under the
 * mouse shows one; the synced charts show their cursor line alone.
 */
function tooltipPlugin(callbacks: ChartCallbacks): uPlot.Plugin {
  let box: HTMLDivElement | null = null;
  let hovered = false;

  const hide = () => {
    if (box) box.style.display = 'none';
  };

  return {
    hooks: {
      init: (self) => {
        box = document.createElement('div');
        box.className = 'chart-tooltip';
        box.setAttribute('role', 'status');
        box.style.display = 'none';
        self.over.appendChild(box);
        self.over.addEventListener('mouseenter', () => {
          hovered = true;
        });
        self.over.addEventListener('mouseleave', () => {
          hovered = false;
          hide();
        });
      },
      setCursor: (self) => {
        const index = self.cursor.idx;
        if (!box || !hovered || index === null || index === undefined || self.cursor.left === undefined) {
          hide();
          return;
        }
        const infos = callbacks.series();
        const timeS = self.data[0][index] as number;
        // A column has null where the sample is infinite or NaN, because the canvas cannot draw it.
        const rows = infos
          .map((info, position) => ({
            info,
            position,
            value: self.data[position + 1]?.[index] ?? info.nonFinite.get(timeS) ?? null,
          }))
          .filter((row) => row.value !== null && self.series[row.position + 1]?.show !== false)
          .sort((a, b) => compareDescending(a.value as number, b.value as number));
        if (rows.length === 0) {
          hide();
          return;
        }
        const shown = rows.slice(0, TOOLTIP_ROWS);
        const more = rows.length - shown.length;
        const timeMs = timeS * 1000;
        box.innerHTML =
          `<div class="chart-tooltip-time">${escapeHtml(formatDateTime(timeMs))}</div>` +
          shown
            .map(
              (row) =>
                `<div class="chart-tooltip-row"><span class="swatch" style="background:${seriesColor(row.position)}"></span>` +
                `<span class="chart-tooltip-name">${escapeHtml(row.info.name)}</span>` +
                `<span class="chart-tooltip-value">${escapeHtml(formatValue(row.value, callbacks.unit))}</span></div>`,
            )
            .join('') +
          (more > 0 ? `<div class="chart-tooltip-more">and ${more} more</div>` : '');
        box.style.display = 'block';
        const left = self.cursor.left ?? 0;
        const top = self.cursor.top ?? 0;
        const overWidth = self.over.clientWidth;
        const boxWidth = box.offsetWidth;
        const x = left + 16 + boxWidth > overWidth ? Math.max(0, left - 16 - boxWidth) : left + 16;
        box.style.transform = `translate(${x}px, ${Math.max(0, top - 10)}px)`;
      },
    },
  };
}
