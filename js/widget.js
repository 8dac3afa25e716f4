// The anywidget entry point: title, feed line, controls, a view and a status line, fed by
// the transport. Events are applied once per animation frame, in one batch; the widget keeps
// the last max_rows of them so that switching views or filters shows what already arrived,
// and saves a snapshot of them in the `snapshot` trait (about once a second) so that a
// notebook saved with its widget state shows its last events without a kernel.
import { FeedLine } from "./src/feed.js";
import { StatusLine } from "./src/status.js";
import { adoptStyle } from "./src/style.js";
import { Toolbar } from "./src/toolbar.js";
import { connectView } from "./src/transport.js";
import { ChartView } from "./src/views/chart.js";
import { LastView } from "./src/views/last.js";
import { LogView } from "./src/views/log.js";
import { PROGRESS_EVENT, ProgressModel, ProgressView } from "./src/views/progress.js";

export const VIEWS = { log: LogView, last: LastView, chart: ChartView, progress: ProgressView };
const STATUS_EVERY_MS = 500;
const SNAPSHOT_EVERY_MS = 1000;
const MAX_WAIT_MS = 250;
export const SNAPSHOT_ROWS = 200;

/**
 * What a snapshot keeps: the last rows, and every progress bar's accumulated state (one row
 * each, in place of its raw updates: workers send increments, which a tail would undercount).
 */
export function snapshotRows(recent, bars, limit = SNAPSHOT_ROWS) {
  const tail = recent.filter((r) => r.type !== PROGRESS_EVENT).slice(-limit);
  return [...bars.values(), ...tail]
    .sort((a, b) => a.id - b.id)
    .map(({ id, type, data, time, gap, missed }) => (gap ? { id, type, gap, missed, time } : { id, type, data, time }));
}

/** One bar's accumulated state as a progress row (absolute n, never an increment). */
function barRow(row, bar) {
  const { id, n, total, desc, unit, rate, elapsed, postfix, state, level, leave } = bar;
  const data = JSON.stringify({ id, n, total, desc, unit, rate, elapsed, postfix, state, level, leave });
  return { id: row.id, type: PROGRESS_EVENT, data, time: row.time };
}

function render({ model, el }) {
  const doc = el.ownerDocument;
  // Our own shadow tree: see style.js for why.
  const host = doc.createElement("div");
  host.className = "sse-widget-host";
  const shadow = host.attachShadow({ mode: "open" });
  adoptStyle(shadow);
  const root = doc.createElement("div");
  root.className = "sse-widget";
  const title = doc.createElement("div");
  title.className = "sse-widget-title";
  const feedEl = doc.createElement("div");
  const toolEl = doc.createElement("div");
  const body = doc.createElement("div");
  body.className = "sse-widget-body";
  const statusEl = doc.createElement("div");
  root.append(title, feedEl, toolEl, body, statusEl);
  shadow.append(root);
  el.append(host);

  const showTitle = () => {
    title.textContent = model.get("title");
    title.hidden = !model.get("title");
  };
  showTitle();
  const status = new StatusLine(statusEl);
  const feed = new FeedLine(feedEl, model);

  let maxRows = model.get("max_rows");
  let recent = []; // the last max_rows rows, every type
  // Every progress bar's state so far, as one row each: what a new progress view, a filter
  // change or the snapshot starts from (the raw updates may be increments, and only the
  // last max_rows of them are kept).
  let barModel = new ProgressModel();
  const bars = new Map();
  let filter = "";
  let paused = false;
  let held = [];
  let dirty = false;

  const viewName = () => (model.get("view") in VIEWS ? model.get("view") : "log");
  let view = null;
  const shows = (row) => !filter || row.gap || row.type === filter;
  const replay = () =>
    (viewName() === "progress" ? [...bars.values()].sort((a, b) => a.id - b.id) : recent).filter(shows);
  const makeView = () => {
    view?.destroy();
    body.dataset.view = viewName();
    view = new VIEWS[viewName()](body, { maxRows });
    view.append(replay());
  };

  const toolbar = new Toolbar(toolEl, {
    views: Object.keys(VIEWS),
    view: viewName(),
    onView: (name) => {
      model.set("view", name);
      model.save_changes();
    },
    onFilter: (type) => {
      filter = type;
      view.clear();
      view.append(replay());
    },
    onPause: (on) => {
      paused = on;
      if (!on && held.length) {
        view.append(held.filter(shows));
        held = [];
      }
      toolbar.setPaused(paused, held.length);
    },
    onClear: () => {
      recent = [];
      held = [];
      barModel = new ProgressModel();
      bars.clear();
      view.clear();
      toolbar.setPaused(paused, 0);
      dirty = true;
    },
  });

  const keep = (rows) => {
    for (const row of rows) {
      const bar = row.type === PROGRESS_EVENT ? barModel.apply(row) : null;
      if (bar) bars.set(bar.id, barRow(row, bar));
    }
    // concat, not push(...rows): a batch can be huge (a hidden tab runs no frames for a
    // while), and spreading it into arguments would overflow the stack.
    recent = recent.concat(rows);
    if (recent.length > maxRows) recent = recent.slice(-maxRows);
    toolbar.addTypes(new Set(rows.filter((r) => !r.gap).map((r) => r.type)));
    dirty = true;
  };

  // A snapshot saved with the notebook: show it at once, and resume after its last id.
  const snap = model.get("snapshot");
  let lastId = null;
  if (snap && Array.isArray(snap.rows) && snap.rows.length) {
    keep(snap.rows);
    lastId = snap.rows.reduce((m, r) => Math.max(m, r.id), 0);
    status.count = snap.count ?? snap.rows.length;
    status.set({ transport: "", state: "snapshot" });
    dirty = false;
  }
  makeView();

  // Rows are applied in one batch per animation frame, and under load less often: the
  // next batch waits about four times as long as the last one took to apply (at most
  // MAX_WAIT_MS). A batch builds at most max_rows rows, so a fast stream costs a bounded
  // amount of work per second and the page stays responsive; nothing is dropped from the
  // count, the snapshot or the views' data.
  let queue = [];
  let frame = 0;
  let timer = 0;
  let lastEnd = 0;
  let lastCost = 0;
  const flush = () => {
    frame = 0;
    const t0 = performance.now();
    const rows = queue;
    queue = [];
    keep(rows);
    if (paused) {
      held = held.concat(rows);
      if (held.length > maxRows) held = held.slice(-maxRows);
      toolbar.setPaused(true, held.length);
    } else {
      view.append(rows.filter(shows));
    }
    status.render();
    lastEnd = performance.now();
    lastCost = lastEnd - t0;
  };
  const schedule = () => {
    if (frame || timer) return;
    const wait = Math.min(MAX_WAIT_MS, lastCost * 4) - (performance.now() - lastEnd);
    if (wait > 16) {
      timer = setTimeout(() => {
        timer = 0;
        frame = requestAnimationFrame(flush);
      }, wait);
    } else {
      frame = requestAnimationFrame(flush);
    }
  };
  const onRows = (rows) => {
    const now = Date.now();
    let n = 0;
    for (const row of rows) {
      row.time = now;
      if (!row.gap) n += 1;
      queue.push(row);
    }
    status.add(n);
    schedule();
  };
  const onStatus = (s) => status.set(s);

  const saveSnapshot = () => {
    if (!dirty) return;
    dirty = false;
    model.set("snapshot", { count: status.count, rows: snapshotRows(recent, bars) });
    model.save_changes();
  };
  const ticker = setInterval(() => status.render(), STATUS_EVERY_MS);
  const snapper = setInterval(saveSnapshot, SNAPSHOT_EVERY_MS);
  const onMaxRows = () => {
    maxRows = model.get("max_rows");
    if (recent.length > maxRows) recent = recent.slice(-maxRows);
    view.setMaxRows(maxRows);
  };
  const onView = () => {
    toolbar.setView(viewName());
    makeView();
  };
  model.on("change:title", showTitle);
  model.on("change:max_rows", onMaxRows);
  model.on("change:view", onView);
  const disconnect = connectView(model, { onRows, onStatus, lastId });

  return () => {
    disconnect();
    feed.close();
    clearInterval(ticker);
    clearInterval(snapper);
    if (frame) cancelAnimationFrame(frame);
    clearTimeout(timer);
    model.off("change:title", showTitle);
    model.off("change:max_rows", onMaxRows);
    model.off("change:view", onView);
    view.destroy();
    host.remove();
  };
}

export default { render };
