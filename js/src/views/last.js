// The last-value view: the latest event's data, large; JSON objects and arrays as a
// collapsible tree. Built from text nodes only.
import { jsonOf, jsonTree } from "../json.js";
import { clock } from "./log.js";

export class LastView {
  constructor(el) {
    this.el = el;
    this.doc = el.ownerDocument;
    el.classList.add("sse-widget-last");
    el.setAttribute("role", "status");
    el.setAttribute("aria-label", "latest event");
    this.head = this.doc.createElement("div");
    this.head.className = "sse-widget-last-head";
    this.value = this.doc.createElement("div");
    this.value.className = "sse-widget-last-value";
    el.append(this.head, this.value);
    this.row = null;
    this.clear();
  }

  append(rows) {
    // Only the newest event matters; a gap is not a value.
    for (let i = rows.length - 1; i >= 0; i--) {
      if (!rows[i].gap) {
        this.show(rows[i]);
        return;
      }
    }
  }

  show(row) {
    this.row = row;
    this.head.textContent = `${row.type} · id ${row.id} · ${clock(row.time ?? Date.now())}`;
    const v = jsonOf(row);
    this.value.replaceChildren();
    if (v !== null && typeof v === "object") {
      this.value.classList.add("sse-widget-last-tree");
      this.value.append(jsonTree(this.doc, v, { open: 2 }));
    } else {
      this.value.classList.remove("sse-widget-last-tree");
      this.value.textContent = v === undefined ? row.data : typeof v === "string" ? v : String(v);
    }
  }

  clear() {
    this.row = null;
    this.head.textContent = "no events yet";
    this.value.replaceChildren();
  }

  setMaxRows() {}

  destroy() {
    this.el.replaceChildren();
    this.el.classList.remove("sse-widget-last");
  }
}
