// The progress view: one row per bar, fed by `event: progress` payloads
// {id, n, total, desc, rate, elapsed, postfix, state, unit, level, leave}. It shows n/total,
// percent, rate, elapsed and ETA; state "done", "error" and "interrupted" have their own
// colours. Other event types are ignored.
import { jsonOf } from "../json.js";

export const PROGRESS_EVENT = "progress";
const STATES = new Set(["running", "done", "error", "interrupted"]);

/** 75 s -> "01:15", 3725 s -> "1:02:05", like tqdm. */
export function formatDuration(seconds) {
  if (!Number.isFinite(seconds) || seconds < 0) return "?";
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const pad = (n) => String(n).padStart(2, "0");
  return h ? `${h}:${pad(m)}:${pad(s % 60)}` : `${pad(m)}:${pad(s % 60)}`;
}

/** A rate with its unit, 3 significant digits: "1.23k it/s", "0.50 it/s". */
export function formatRate(rate, unit = "it") {
  if (!Number.isFinite(rate) || rate <= 0) return `? ${unit}/s`;
  if (rate < 1) return `${(1 / rate).toPrecision(3)} s/${unit}`;
  const units = ["", "k", "M", "G"];
  let i = 0;
  let r = rate;
  while (r >= 1000 && i < units.length - 1) {
    r /= 1000;
    i += 1;
  }
  return `${r.toPrecision(3)}${units[i]} ${unit}/s`;
}

/** The bars' state, keyed by bar id, from progress payloads (pure: no DOM). */
export class ProgressModel {
  constructor() {
    this.bars = new Map();
  }

  /** Apply one row; returns the bar it changed, or null if the row is not progress. */
  apply(row) {
    if (row.type !== PROGRESS_EVENT) return null;
    const p = jsonOf(row);
    if (!p || typeof p !== "object" || Array.isArray(p)) return null;
    const id = String(p.id ?? "");
    const prev = this.bars.get(id) ?? { id, order: this.bars.size };
    // `add` comes from workers sharing one bar: each sends what it added.
    const n = p.add != null ? Number(prev.n ?? 0) + Number(p.add) : Number(p.n ?? prev.n ?? 0);
    const total = p.total == null ? null : Number(p.total);
    const bar = {
      ...prev,
      n,
      total: Number.isFinite(total) && total > 0 ? total : null,
      desc: String(p.desc ?? prev.desc ?? ""),
      unit: String(p.unit ?? prev.unit ?? "it"),
      rate: p.rate == null ? null : Number(p.rate),
      elapsed: Math.max(Number(p.elapsed ?? 0), prev.elapsed ?? 0),
      postfix: p.postfix == null ? "" : typeof p.postfix === "string" ? p.postfix : formatPostfix(p.postfix),
      state: ProgressModel.state(p.state, prev.state, n, total),
      level: Math.max(0, Math.min(8, Number(p.level ?? prev.level ?? 0) | 0)),
      leave: p.leave ?? prev.leave ?? true,
    };
    this.bars.set(id, bar);
    return bar;
  }

  static state(sent, prev, n, total) {
    const state = STATES.has(sent) ? sent : "running";
    // A failure is not undone by a later "running" update (another worker's last one);
    // only another final state replaces it (Python's correction once a cell has ended).
    if ((prev === "error" || prev === "interrupted") && state === "running") return prev;
    return state === "running" && Number.isFinite(total) && total > 0 && n >= total ? "done" : state;
  }

  /** What the row of one bar says, as text parts. */
  static describe(bar) {
    const pct = bar.total ? Math.min(100, (100 * bar.n) / bar.total) : null;
    const counts = bar.total ? `${bar.n.toLocaleString("en-US")}/${bar.total.toLocaleString("en-US")}` : `${bar.n.toLocaleString("en-US")}`;
    const rate = bar.rate ?? (bar.elapsed > 0 ? bar.n / bar.elapsed : null);
    const eta = bar.total && rate ? (bar.total - bar.n) / rate : null;
    const time = bar.state === "running" && eta != null
      ? `${formatDuration(bar.elapsed)}<${formatDuration(eta)}`
      : formatDuration(bar.elapsed);
    return {
      pct,
      label: pct == null ? "" : `${Math.floor(pct)}%`,
      detail: [counts, time, formatRate(rate ?? NaN, bar.unit), bar.postfix].filter(Boolean).join(" · "),
    };
  }
}

function formatPostfix(obj) {
  if (!obj || typeof obj !== "object") return String(obj);
  return Object.entries(obj)
    .map(([k, v]) => `${k}=${typeof v === "number" ? Number(v.toPrecision(4)) : v}`)
    .join(", ");
}

export class ProgressView {
  constructor(el) {
    this.el = el;
    this.doc = el.ownerDocument;
    this.model = new ProgressModel();
    this.els = new Map(); // bar id -> {row, desc, fill, label, detail}
    el.classList.add("sse-widget-progress");
    el.setAttribute("role", "list");
    el.setAttribute("aria-label", "progress bars");
  }

  append(rows) {
    const changed = new Map();
    for (const row of rows) {
      const bar = this.model.apply(row);
      if (bar) changed.set(bar.id, bar);
    }
    for (const bar of changed.values()) this.render(bar);
  }

  render(bar) {
    let e = this.els.get(bar.id);
    const doc = this.doc;
    if (!e) {
      const row = doc.createElement("div");
      row.className = "sse-widget-bar";
      row.setAttribute("role", "listitem");
      row.dataset.bar = bar.id;
      const desc = doc.createElement("span");
      desc.className = "sse-widget-bar-desc";
      const track = doc.createElement("div");
      track.className = "sse-widget-bar-track";
      track.setAttribute("role", "progressbar");
      const fill = doc.createElement("div");
      fill.className = "sse-widget-bar-fill";
      track.append(fill);
      const label = doc.createElement("span");
      label.className = "sse-widget-bar-pct";
      const detail = doc.createElement("span");
      detail.className = "sse-widget-bar-detail";
      row.append(desc, track, label, detail);
      e = { row, desc, track, fill, label, detail };
      this.els.set(bar.id, e);
      this.insert(row, bar.order);
    }
    const { pct, label, detail } = ProgressModel.describe(bar);
    e.row.dataset.state = bar.state;
    e.row.style.setProperty("--sse-widget-level", String(bar.level));
    e.desc.textContent = bar.desc;
    e.fill.style.width = pct == null ? "100%" : `${pct}%`;
    e.fill.classList.toggle("sse-widget-bar-unknown", pct == null);
    e.track.setAttribute("aria-valuemin", "0");
    e.track.setAttribute("aria-valuemax", String(bar.total ?? 0));
    e.track.setAttribute("aria-valuenow", String(bar.n));
    if (bar.desc) e.track.setAttribute("aria-label", bar.desc);
    e.label.textContent = label;
    e.detail.textContent = detail;
    // A finished bar made with leave=False goes away, as in tqdm.
    e.row.hidden = bar.state === "done" && !bar.leave;
  }

  insert(row, order) {
    // Bars keep the order in which they first appeared.
    row.dataset.order = String(order);
    for (const other of this.el.children) {
      if (Number(other.dataset.order) > order) {
        this.el.insertBefore(row, other);
        return;
      }
    }
    this.el.append(row);
  }

  clear() {
    this.model = new ProgressModel();
    this.els.clear();
    this.el.replaceChildren();
  }

  setMaxRows() {}

  destroy() {
    this.clear();
    this.el.classList.remove("sse-widget-progress");
  }
}
