// The log view: one row per event (time, type, id, data), newest last, bounded to
// max_rows. Rows are built with textContent only: third-party data is never HTML.

function cell(doc, cls, text) {
  const el = doc.createElement("span");
  el.className = cls;
  el.textContent = text;
  return el;
}

function clock(ms) {
  const d = new Date(ms);
  const pad = (n, w = 2) => String(n).padStart(w, "0");
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}

export class LogView {
  constructor(el, { maxRows = 500 } = {}) {
    this.el = el;
    this.doc = el.ownerDocument;
    this.maxRows = maxRows;
    el.classList.add("sse-widget-log");
    el.setAttribute("role", "log");
    el.tabIndex = 0;
  }

  setMaxRows(n) {
    this.maxRows = n;
    this.trim();
  }

  /** Append rows ({id, type, data, gap, missed, time}); only the last max_rows are kept. */
  append(rows) {
    const doc = this.doc;
    const stick = this.el.scrollHeight - this.el.scrollTop - this.el.clientHeight < 24;
    const frag = doc.createDocumentFragment();
    // Rows that would be trimmed at once are never built.
    for (const row of rows.slice(-this.maxRows)) {
      const r = doc.createElement("div");
      r.className = row.gap ? "sse-widget-row sse-widget-gap" : "sse-widget-row";
      r.dataset.id = String(row.id);
      r.append(cell(doc, "sse-widget-time", clock(row.time ?? Date.now())));
      if (row.gap) {
        r.append(cell(doc, "sse-widget-data", `${row.missed.toLocaleString("en-US")} events missed`));
      } else {
        r.append(
          cell(doc, "sse-widget-type", row.type),
          cell(doc, "sse-widget-id", String(row.id)),
          cell(doc, "sse-widget-data", row.data),
        );
      }
      frag.append(r);
    }
    this.el.append(frag);
    this.trim();
    if (stick) this.el.scrollTop = this.el.scrollHeight;
  }

  trim() {
    const extra = this.el.childElementCount - this.maxRows;
    for (let i = 0; i < extra; i++) this.el.firstElementChild.remove();
  }
}
