// The log view: one row per event (time, type, id, data), newest last, bounded to
// max_rows. A click on a row shows its data pretty-printed (JSON) below it. Rows are built
// with textContent only: third-party data is never HTML.
import { prettyData } from "../json.js";

// Columns are padded text in the monospace font, not a grid: a row is then one line of
// inline text, which lays out several times faster when thousands of rows a second arrive.
const TYPE_WIDTH = 14;
const ID_WIDTH = 8;
// The cells of a plain event's row, in order (a gap's row has only time and data).
const PLAIN_CELLS = ["sse-widget-time", "sse-widget-type", "sse-widget-id", "sse-widget-data"];

function column(text, width) {
  // Shorter text is padded; longer text is shown whole (and pushes the rest along).
  return text.length < width ? text.padEnd(width) : `${text} `;
}

function cell(doc, cls, text) {
  const el = doc.createElement("span");
  el.className = cls;
  el.textContent = text;
  return el;
}

export function clock(ms) {
  const d = new Date(ms);
  const pad = (n, w = 2) => String(n).padStart(w, "0");
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}

export class LogView {
  constructor(el, { maxRows = 500 } = {}) {
    this.el = el;
    this.doc = el.ownerDocument;
    this.maxRows = maxRows;
    this.rows = new WeakMap(); // row element -> the row it shows
    el.classList.add("sse-widget-log");
    el.setAttribute("role", "log");
    el.setAttribute("aria-label", "events");
    el.tabIndex = 0;
    this.onClick = (e) => {
      const r = e.target.closest?.(".sse-widget-row");
      if (r && this.el.contains(r) && !e.target.closest(".sse-widget-json")) this.toggle(r);
    };
    el.addEventListener("click", this.onClick);
  }

  setMaxRows(n) {
    this.maxRows = n;
    this.trim();
  }

  /** Append rows ({id, type, data, gap, missed, time}); only the last max_rows are kept. */
  append(rows) {
    const stick = this.el.scrollHeight - this.el.scrollTop - this.el.clientHeight < 24;
    // Rows that would be trimmed at once are never built.
    const fresh = rows.slice(-this.maxRows);
    if (fresh.length === this.maxRows && this.el.childElementCount === this.maxRows) {
      // Every row is replaced (a fast stream does this in each batch): new text goes into
      // the rows in place. Nothing is inserted or moved, so nothing needs styling again,
      // and only the rows in view are laid out.
      const kids = this.el.children;
      fresh.forEach((row, k) => {
        if (!row.gap && kids[k].childElementCount === PLAIN_CELLS.length) this.fill(kids[k], row);
        else kids[k].replaceWith(this.build(row)); // a gap, or a row opened to show its data
      });
    } else {
      const frag = this.doc.createDocumentFragment();
      for (const row of fresh) frag.append(this.build(row));
      this.el.append(frag);
      this.trim();
    }
    if (stick) this.el.scrollTop = this.el.scrollHeight;
  }

  build(row) {
    const doc = this.doc;
    const r = doc.createElement("div");
    if (row.gap) {
      r.className = "sse-widget-row sse-widget-gap";
      r.dataset.id = String(row.id);
      const n = row.missed.toLocaleString("en-US");
      r.append(
        cell(doc, "sse-widget-time", `${clock(row.time ?? Date.now())}  `),
        cell(doc, "sse-widget-data", `${row.atLeast ? "at least " : ""}${n} events missed`),
      );
      return r;
    }
    r.className = "sse-widget-row";
    r.append(...PLAIN_CELLS.map((cls) => cell(doc, cls, "")));
    this.fill(r, row);
    return r;
  }

  /** Show `row`, a plain event, in `r`: a plain event's row, new or being pushed out. */
  fill(r, row) {
    r.dataset.id = String(row.id);
    r.dataset.type = row.type;
    const [time, type, id, data] = r.children;
    time.textContent = `${clock(row.time ?? Date.now())}  `;
    type.textContent = column(row.type, TYPE_WIDTH);
    id.textContent = column(String(row.id), ID_WIDTH);
    data.textContent = row.data;
    this.rows.set(r, row);
  }

  /** Show or hide a row's data pretty-printed under it. */
  toggle(r) {
    const open = r.querySelector(".sse-widget-json");
    if (open) {
      open.remove();
      r.classList.remove("sse-widget-open");
      return;
    }
    const row = this.rows.get(r);
    if (!row) return;
    const pre = this.doc.createElement("pre");
    pre.className = "sse-widget-json";
    pre.textContent = prettyData(row);
    r.append(pre);
    r.classList.add("sse-widget-open");
  }

  clear() {
    this.el.replaceChildren();
  }

  trim() {
    const extra = this.el.childElementCount - this.maxRows;
    if (extra <= 0) return;
    // One range removal rather than a removal per row.
    const range = this.doc.createRange();
    range.setStartBefore(this.el.firstElementChild);
    range.setEndAfter(this.el.children[extra - 1]);
    range.deleteContents();
  }

  destroy() {
    this.el.removeEventListener("click", this.onClick);
    this.clear();
    this.el.classList.remove("sse-widget-log");
  }
}
