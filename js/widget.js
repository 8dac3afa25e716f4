// The anywidget entry point: a title, a view and a status line, fed by the transport.
import { ensureStyle } from "./src/style.js";
import { FeedLine } from "./src/feed.js";
import { StatusLine } from "./src/status.js";
import { connectView } from "./src/transport.js";
import { LogView } from "./src/views/log.js";

const STATUS_EVERY_MS = 500;

function render({ model, el }) {
  const doc = el.ownerDocument;
  ensureStyle(doc);
  const root = doc.createElement("div");
  root.className = "sse-widget";
  const title = doc.createElement("div");
  title.className = "sse-widget-title";
  const body = doc.createElement("div");
  const feedEl = doc.createElement("div");
  const statusEl = doc.createElement("div");
  root.append(title, feedEl, body, statusEl);
  el.append(root);

  const showTitle = () => {
    title.textContent = model.get("title");
    title.hidden = !model.get("title");
  };
  showTitle();
  const view = new LogView(body, { maxRows: model.get("max_rows") });
  const status = new StatusLine(statusEl);
  const feed = new FeedLine(feedEl, model);

  // Events are applied once per animation frame, in one batch.
  let queue = [];
  let frame = 0;
  const flush = () => {
    frame = 0;
    const rows = queue;
    queue = [];
    view.append(rows);
    status.render();
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
    if (!frame) frame = requestAnimationFrame(flush);
  };
  const onStatus = (s) => {
    status.set(s);
  };
  const ticker = setInterval(() => status.render(), STATUS_EVERY_MS);
  const onMaxRows = () => view.setMaxRows(model.get("max_rows"));
  model.on("change:title", showTitle);
  model.on("change:max_rows", onMaxRows);
  const disconnect = connectView(model, { onRows, onStatus });

  return () => {
    disconnect();
    feed.close();
    clearInterval(ticker);
    if (frame) cancelAnimationFrame(frame);
    model.off("change:title", showTitle);
    model.off("change:max_rows", onMaxRows);
    root.remove();
  };
}

export default { render };
