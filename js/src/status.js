// The status line: transport, state, event count and rate, in plain text.

const RATE_WINDOW_MS = 2000;

export class StatusLine {
  constructor(el) {
    this.el = el;
    this.el.className = "sse-widget-status";
    this.el.setAttribute("role", "status");
    this.transport = "";
    this.state = "connecting";
    this.count = 0;
    this.samples = []; // [time, count] pairs inside the rate window
    this.render();
  }

  set({ transport, state }) {
    if (transport === this.transport && state === this.state) return;
    this.transport = transport;
    this.state = state;
    this.render();
  }

  add(n, now = performance.now()) {
    this.count += n;
    this.samples.push([now, this.count]);
    while (this.samples.length > 1 && now - this.samples[0][0] > RATE_WINDOW_MS) {
      this.samples.shift();
    }
  }

  rate(now = performance.now()) {
    if (this.samples.length < 2) return 0;
    const [t0, c0] = this.samples[0];
    const span = Math.max(now - t0, 250);
    return now - this.samples[this.samples.length - 1][0] > RATE_WINDOW_MS
      ? 0
      : ((this.count - c0) * 1000) / span;
  }

  render(now) {
    const el = this.el;
    el.dataset.state = this.state;
    el.dataset.transport = this.transport;
    const rate = this.rate(now);
    const parts = [this.transport ? `${this.transport} · ${this.state}` : this.state];
    parts.push(`${this.count.toLocaleString("en-US")} events`);
    if (rate > 0) parts.push(`${rate < 10 ? rate.toFixed(1) : Math.round(rate).toLocaleString("en-US")}/s`);
    el.textContent = parts.join(" · ");
  }
}
