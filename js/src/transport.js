// How a view's events reach the page: one multiplexed EventSource per server per page
// (direct, then through jupyter-server-proxy), else anywidget custom messages (comm).
//
// The wire format of /events (see README, "The multiplexed wire format"): each SSE message
// carries many events, one per data line, as the JSON array [id, "stream", "type", "data"].
// Ids are one increasing sequence per server, so a stream listed as `name:17` resumes after
// 17 and the browser's own reconnect (Last-Event-ID = the message id) resumes them all.

export const GAP_EVENT = "sse_widget.gap";
// Give up on a route that has not opened by then and try the next one.
export const OPEN_TIMEOUT_MS = 2000;
// Subscriptions made in one burst (ten widgets rendering) reopen the connection once.
const SETTLE_MS = 25;
// After the server ended a stream for good (e.g. the kernel restarted), try again this late.
const REOPEN_MS = 1000;

/** Parse one multiplexed message's data into rows {id, stream, type, data}. */
export function parseMux(data) {
  const rows = [];
  for (const line of data.split("\n")) {
    if (!line) continue;
    const [id, stream, type, payload] = JSON.parse(line);
    rows.push({ id, stream, type, data: payload });
  }
  return rows;
}

/** The Jupyter server's base URL from the page's config ("/" when there is none). */
export function jupyterBaseUrl(doc = globalThis.document) {
  const el = doc?.getElementById?.("jupyter-config-data");
  if (el) {
    try {
      const base = JSON.parse(el.textContent).baseUrl;
      if (typeof base === "string" && base) return base.endsWith("/") ? base : `${base}/`;
    } catch {
      // A page whose config is not JSON has no base URL for us: use the default.
    }
  }
  return "/";
}

/** The ordered candidate routes for a connection setting. */
export function routesFor(transport) {
  if (transport === "direct" || transport === "proxy") return [transport];
  if (transport === "comm") return [];
  return ["direct", "proxy"];
}

function eventsUrl(base, key, streams) {
  const list = streams.map(([name, after]) =>
    after == null ? encodeURIComponent(name) : `${encodeURIComponent(name)}:${after}`,
  );
  return `${base}/events?key=${encodeURIComponent(key)}&streams=${list.join(",")}`;
}

/**
 * One server's shared connection in this page. Subscribers are views; each has a stream
 * name, the last id it has seen (`lastId`, null for "everything held"), and callbacks
 * `onRows(rows)`, `onStatus({transport, state})` and `onFallback()` (SSE cannot reach).
 */
export class Hub {
  constructor({ serverUrl, port, key, transport = "auto", env = {} }) {
    this.serverUrl = serverUrl.replace(/\/+$/, "");
    this.port = port;
    this.key = key;
    this.routes = routesFor(transport);
    this.EventSource = env.EventSource ?? globalThis.EventSource;
    this.origin = env.origin ?? globalThis.location?.origin ?? "";
    this.baseUrl = env.baseUrl ?? jupyterBaseUrl(env.document);
    this.openTimeout = env.openTimeout ?? OPEN_TIMEOUT_MS;
    this.subs = new Set();
    this.route = null; // the route that opened last
    this.failed = false; // every route failed: subscribers use comm
    this.state = "connecting";
    this.es = null;
    this.attempt = 0; // bumped on every (re)open, so stale callbacks can tell
    this.timer = null;
  }

  baseFor(route) {
    if (route === "direct") return this.serverUrl;
    return `${this.origin}${this.baseUrl}proxy/${this.port}`;
  }

  urlFor(route) {
    // Per stream, resume from the subscriber furthest behind; others dedupe by id.
    const after = new Map();
    for (const sub of this.subs) {
      const prev = after.get(sub.stream);
      if (!after.has(sub.stream)) after.set(sub.stream, sub.lastId);
      else if (prev != null && (sub.lastId == null || sub.lastId < prev)) {
        after.set(sub.stream, sub.lastId);
      }
    }
    return eventsUrl(this.baseFor(route), this.key, [...after]);
  }

  add(sub) {
    this.subs.add(sub);
    if (this.failed || this.routes.length === 0) {
      sub.onFallback();
      return;
    }
    sub.onStatus(this.status());
    this.schedule();
  }

  remove(sub) {
    if (!this.subs.delete(sub) || this.failed) return;
    this.schedule();
  }

  status() {
    return { transport: this.route ?? this.routes[0] ?? "comm", state: this.state };
  }

  setState(state, route = this.route) {
    this.state = state;
    this.route = route;
    const status = this.status();
    for (const sub of this.subs) sub.onStatus(status);
  }

  schedule(delay = SETTLE_MS) {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.open(), delay);
  }

  close() {
    clearTimeout(this.timer);
    this.attempt += 1;
    if (this.es) this.es.close();
    this.es = null;
  }

  open() {
    this.close();
    if (this.subs.size === 0) {
      this.state = "closed";
      return;
    }
    // Once a route has worked, keep to it; otherwise walk them in order.
    const order = this.route ? [this.route, ...this.routes.filter((r) => r !== this.route)] : this.routes;
    this.tryRoute(order, 0, this.attempt);
  }

  tryRoute(order, index, attempt) {
    if (attempt !== this.attempt) return;
    if (index >= order.length) {
      this.failed = true;
      this.state = "closed";
      for (const sub of [...this.subs]) sub.onFallback();
      return;
    }
    const route = order[index];
    let es;
    try {
      es = new this.EventSource(this.urlFor(route));
    } catch {
      // A URL this page cannot open at all (e.g. a proxy path on a page with no origin):
      // that route is out, try the next.
      this.tryRoute(order, index + 1, attempt);
      return;
    }
    this.es = es;
    let opened = false;
    const next = () => {
      if (attempt !== this.attempt || opened) return;
      clearTimeout(giveUp);
      es.close();
      this.tryRoute(order, index + 1, attempt);
    };
    const giveUp = setTimeout(next, this.openTimeout);
    es.onopen = () => {
      if (attempt !== this.attempt) return;
      opened = true;
      clearTimeout(giveUp);
      this.setState("live", route);
    };
    es.onerror = () => {
      if (attempt !== this.attempt) return;
      if (!opened) {
        next();
      } else if (es.readyState === 2) {
        // The server refused the reconnect (e.g. every stream is gone): start over later.
        this.setState("retrying");
        this.schedule(REOPEN_MS);
      } else {
        // The browser reconnects by itself, sending Last-Event-ID: nothing is lost.
        this.setState("retrying");
      }
    };
    es.onmessage = (msg) => {
      if (attempt !== this.attempt) return;
      this.deliver(parseMux(msg.data));
    };
  }

  deliver(rows) {
    const byStream = new Map();
    for (const row of rows) {
      let list = byStream.get(row.stream);
      if (!list) byStream.set(row.stream, (list = []));
      list.push(row);
    }
    for (const sub of this.subs) {
      const list = byStream.get(sub.stream);
      if (list) sub.onRows(list);
    }
  }
}

function hubRegistry() {
  // anywidget loads our module once per widget model, so module-level state would not be
  // shared between widgets: the registry lives on the page's global object instead.
  const g = globalThis;
  if (!g.__sse_widget_hubs) g.__sse_widget_hubs = new Map();
  return g.__sse_widget_hubs;
}

/** The page's hub for one server and transport setting (created on first use). */
export function hubFor(config, registry = hubRegistry()) {
  const id = `${config.serverUrl}|${config.key}|${config.transport ?? "auto"}`;
  let hub = registry.get(id);
  if (!hub) {
    hub = new Hub(config);
    registry.set(id, hub);
  }
  return hub;
}

/**
 * Keeps one view's place in its stream: drops rows it has already seen (by id) and turns
 * gap rows into {missed: N, atLeast}. `lastId` is what a reconnection resumes from.
 */
export class Cursor {
  constructor(lastId = null) {
    this.lastId = lastId;
  }

  accept(rows) {
    const fresh = [];
    for (const row of rows) {
      if (row.type === GAP_EVENT) {
        let missed = 0;
        let atLeast = false;
        try {
          const info = JSON.parse(row.data);
          missed = info.missed ?? 0;
          atLeast = info.at_least === true;
        } catch {
          missed = 0;
        }
        fresh.push({ ...row, gap: true, missed, atLeast });
        continue;
      }
      if (this.lastId != null && row.id <= this.lastId) continue;
      this.lastId = row.id;
      fresh.push(row);
    }
    return fresh;
  }
}

/**
 * Events over anywidget custom messages. Python batches them (about 20 messages/s, 256 KiB
 * each) and sends them from its server thread, so a busy cell still streams. A subscribe
 * message from here is only handled once the kernel is idle.
 */
export class CommLink {
  constructor(model, { onRows, onStatus }) {
    this.model = model;
    this.onRows = onRows;
    this.onStatus = onStatus;
    this.handler = (msg) => {
      if (!msg || typeof msg !== "object") return;
      if (msg.type === "comm_live") {
        this.onStatus({ transport: "comm", state: "live" });
      } else if (msg.type === "events") {
        this.onStatus({ transport: "comm", state: "live" });
        this.onRows(parseMux(msg.lines));
      }
    };
    model.on("msg:custom", this.handler);
  }

  subscribe(after) {
    this.onStatus({ transport: "comm", state: "connecting" });
    try {
      this.model.send({ type: "comm_subscribe", after: after ?? null });
    } catch {
      // No kernel behind this model (a saved notebook opened without one): nothing can
      // arrive, and what the view already shows stays.
      this.onStatus({ transport: "comm", state: "offline" });
    }
  }

  close() {
    this.model.off("msg:custom", this.handler);
    try {
      this.model.send({ type: "comm_unsubscribe" });
    } catch {
      // The widget is closing: nobody is left to tell.
    }
  }
}

/**
 * Connect one view to its stream by the best route this page has. Returns an unsubscribe
 * function. `onRows` gets only rows the view has not seen.
 */
export function connectView(model, { onRows, onStatus, env, lastId = null } = {}) {
  if (model.get("via") === "browser") return connectBrowserFeed(model, { onRows, onStatus, env });
  const cursor = new Cursor(lastId);
  const stream = model.get("stream");
  const transport = model.get("transport");
  let comm = null;
  const deliver = (rows) => {
    const fresh = cursor.accept(rows);
    if (fresh.length) onRows(fresh);
  };
  const sub = {
    stream,
    get lastId() {
      return cursor.lastId;
    },
    onRows: deliver,
    onStatus,
    onFallback() {
      if (comm) return;
      comm = new CommLink(model, { onRows: deliver, onStatus });
      comm.subscribe(cursor.lastId);
    },
  };
  const hub = hubFor({
    serverUrl: model.get("server_url"),
    port: model.get("port"),
    key: model.get("key"),
    transport,
    env,
  });
  hub.add(sub);
  return () => {
    hub.remove(sub);
    if (comm) comm.close();
  };
}

/**
 * A feed made with via="browser": this page opens its own EventSource to the third-party
 * URL (which must allow CORS). It hears only the event types listed in `browser_events`,
 * because EventSource has no "every type" listener. Python sees none of these events.
 */
export function connectBrowserFeed(model, { onRows, onStatus, env } = {}) {
  const EventSourceImpl = env?.EventSource ?? globalThis.EventSource;
  const source = new EventSourceImpl(model.get("browser_url"));
  let seq = 0;
  const status = (state) => onStatus({ transport: "browser", state });
  status("connecting");
  source.onopen = () => status("live");
  source.onerror = () => status(source.readyState === 2 ? "closed" : "retrying");
  const handler = (ev) => {
    seq += 1;
    onRows([{ id: seq, type: ev.type, data: ev.data, sourceId: ev.lastEventId }]);
  };
  const types = model.get("browser_events") ?? ["message"];
  for (const type of types) source.addEventListener(type, handler);
  return () => source.close();
}
