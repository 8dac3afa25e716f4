// The feed line of an EventFeed: where it reads from, its state, and its error as text.
// Only feeds have a `source` trait; for an EventStream this line stays hidden.

export class FeedLine {
  constructor(el, model) {
    this.el = el;
    this.model = model;
    el.className = "sse-widget-feed";
    this.state = el.ownerDocument.createElement("span");
    this.state.className = "sse-widget-feed-state";
    this.error = el.ownerDocument.createElement("div");
    this.error.className = "sse-widget-feed-error";
    el.append(this.state, this.error);
    this.render = this.render.bind(this);
    for (const name of ["status", "error", "source"]) model.on(`change:${name}`, this.render);
    this.render();
  }

  render() {
    const source = this.model.get("source");
    this.el.hidden = !source;
    if (!source) return;
    const status = this.model.get("status") ?? "";
    const error = this.model.get("error") ?? "";
    this.el.dataset.status = status;
    this.state.textContent = `${source} · ${status}`;
    // Third-party text (an error body) is shown with textContent only, never as HTML.
    this.error.textContent = error;
    this.error.hidden = !error;
  }

  close() {
    for (const name of ["status", "error", "source"]) this.model.off(`change:${name}`, this.render);
  }
}
