// The widget's controls: view, event-type filter, pause/resume and clear. Native <select>
// and <button> elements, labelled, so they are reachable and usable from the keyboard.

function labelled(doc, text, control) {
  const label = doc.createElement("label");
  label.className = "sse-widget-control";
  const span = doc.createElement("span");
  span.textContent = text;
  label.append(span, control);
  return label;
}

export class Toolbar {
  constructor(el, { views, view, onView, onFilter, onPause, onClear }) {
    const doc = el.ownerDocument;
    this.el = el;
    el.className = "sse-widget-toolbar";
    el.setAttribute("role", "toolbar");
    el.setAttribute("aria-label", "stream controls");

    this.view = doc.createElement("select");
    this.view.className = "sse-widget-view-select";
    for (const name of views) {
      const opt = doc.createElement("option");
      opt.value = name;
      opt.textContent = name;
      this.view.append(opt);
    }
    this.view.value = view;
    this.view.addEventListener("change", () => onView(this.view.value));

    this.filter = doc.createElement("select");
    this.filter.className = "sse-widget-filter";
    const all = doc.createElement("option");
    all.value = "";
    all.textContent = "all types";
    this.filter.append(all);
    this.types = new Set();
    this.filter.addEventListener("change", () => onFilter(this.filter.value));

    this.pause = doc.createElement("button");
    this.pause.type = "button";
    this.pause.className = "sse-widget-pause";
    this.pause.setAttribute("aria-pressed", "false");
    this.pause.addEventListener("click", () => onPause(this.pause.getAttribute("aria-pressed") !== "true"));

    this.clear = doc.createElement("button");
    this.clear.type = "button";
    this.clear.className = "sse-widget-clear";
    this.clear.textContent = "Clear";
    this.clear.title = "Clear what the view shows (the stream goes on)";
    this.clear.addEventListener("click", () => onClear());

    el.append(labelled(doc, "View", this.view), labelled(doc, "Type", this.filter), this.pause, this.clear);
    this.setPaused(false, 0);
  }

  /** Offer event types seen for the first time in the filter. */
  addTypes(types) {
    for (const t of types) {
      if (this.types.has(t)) continue;
      this.types.add(t);
      const opt = this.el.ownerDocument.createElement("option");
      opt.value = t;
      opt.textContent = t;
      this.filter.append(opt);
    }
  }

  setView(name) {
    this.view.value = name;
  }

  setPaused(paused, held) {
    this.pause.setAttribute("aria-pressed", String(paused));
    this.pause.textContent = paused ? (held ? `Resume (${held.toLocaleString("en-US")} new)` : "Resume") : "Pause";
    this.pause.title = paused ? "Show the events that arrived while paused, and go on" : "Hold new events back";
  }
}
