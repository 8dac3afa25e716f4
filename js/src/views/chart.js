// The chart view: the numeric fields of JSON events plotted over time with uPlot, one series
// per field (nested fields by dotted name), with uPlot's legend. Events with no numeric field
// are skipped. Points are bounded to max_rows.
import uPlot from "uplot";
import { jsonOf, numericFields } from "../json.js";

const PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf"];
const HEIGHT = 220;
// More series than this would make an unreadable chart (and a runaway legend).
export const MAX_SERIES = 16;

/** Time and one column per numeric field, aligned, bounded (pure: no DOM). */
export class ChartData {
  constructor(maxPoints = 500) {
    this.maxPoints = maxPoints;
    this.xs = [];
    this.series = new Map(); // name -> values aligned with xs (null where absent)
    this.skipped = 0;
    this.changedShape = false; // a series was added since the last take()
  }

  /** Add one row; returns whether it had something to plot. */
  add(row) {
    if (row.gap) return false;
    const v = jsonOf(row);
    const fields = v === undefined ? [] : numericFields(v);
    if (!fields.length) {
      this.skipped += 1;
      return false;
    }
    const n = this.xs.length;
    this.xs.push((row.time ?? Date.now()) / 1000);
    const seen = new Set();
    for (const [name, value] of fields) {
      let col = this.series.get(name);
      if (!col) {
        if (this.series.size >= MAX_SERIES) continue;
        col = new Array(n).fill(null);
        this.series.set(name, col);
        this.changedShape = true;
      }
      col.push(value);
      seen.add(name);
    }
    for (const [name, col] of this.series) if (!seen.has(name)) col.push(null);
    return true;
  }

  trim() {
    const extra = this.xs.length - this.maxPoints;
    if (extra <= 0) return;
    this.xs.splice(0, extra);
    for (const col of this.series.values()) col.splice(0, extra);
  }

  setMaxPoints(n) {
    this.maxPoints = n;
    this.trim();
  }

  /** uPlot's data: [xs, ...columns], in the order series were first seen. */
  data() {
    return [this.xs, ...this.series.values()];
  }

  names() {
    return [...this.series.keys()];
  }

  clear() {
    this.xs = [];
    this.series = new Map();
    this.skipped = 0;
    this.changedShape = true;
  }
}

function cssVar(el, name, fallback) {
  const v = el.ownerDocument.defaultView?.getComputedStyle(el).getPropertyValue(name).trim();
  return v || fallback;
}

export class ChartView {
  constructor(el, { maxRows = 500 } = {}) {
    this.el = el;
    this.doc = el.ownerDocument;
    this.data = new ChartData(maxRows);
    this.plot = null;
    el.classList.add("sse-widget-chart");
    el.setAttribute("role", "img");
    el.setAttribute("aria-label", "chart of numeric fields");
    this.empty = this.doc.createElement("div");
    this.empty.className = "sse-widget-chart-empty";
    this.empty.textContent = "waiting for JSON events with numeric fields";
    el.append(this.empty);
    this.resize = null;
    const RO = this.doc.defaultView?.ResizeObserver;
    if (RO) {
      this.resize = new RO(() => this.plot?.setSize({ width: this.width(), height: HEIGHT }));
      this.resize.observe(el);
    }
  }

  width() {
    return Math.max(200, Math.floor(this.el.getBoundingClientRect().width || 600) - 8);
  }

  append(rows) {
    let any = false;
    for (const row of rows) any = this.data.add(row) || any;
    if (!any) return;
    this.data.trim();
    if (!this.plot || this.data.changedShape) this.build();
    else this.plot.setData(this.data.data());
  }

  build() {
    this.data.changedShape = false;
    this.plot?.destroy();
    this.empty.hidden = true;
    const axis = cssVar(this.el, "--jp-ui-font-color2", "#666");
    const grid = cssVar(this.el, "--jp-border-color2", "#ddd");
    const font = `11px ${cssVar(this.el, "--jp-ui-font-family", "sans-serif")}`;
    const series = [
      {},
      ...this.data.names().map((label, i) => ({
        label,
        stroke: PALETTE[i % PALETTE.length],
        width: 1.5,
        spanGaps: true,
        points: { show: false },
      })),
    ];
    const axes = [
      { stroke: axis, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid }, font },
      { stroke: axis, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid }, font, size: 60 },
    ];
    this.plot = new uPlot(
      { width: this.width(), height: HEIGHT, series, axes, legend: { show: true }, cursor: { drag: { x: false } } },
      this.data.data(),
      this.el,
    );
  }

  setMaxRows(n) {
    this.data.setMaxPoints(n);
    this.plot?.setData(this.data.data());
  }

  clear() {
    this.data.clear();
    this.plot?.destroy();
    this.plot = null;
    this.empty.hidden = false;
  }

  destroy() {
    this.resize?.disconnect();
    this.plot?.destroy();
    this.plot = null;
    this.el.replaceChildren();
    this.el.classList.remove("sse-widget-chart");
  }
}
