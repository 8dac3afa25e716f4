// The transport against a real sse_widget EventServer (a Python process) read with Node's
// WHATWG-compliant `eventsource` package: multiplexing, resume, dedupe and fallback order.
// Only the anywidget model is a stand-in (a few lines below): it exists only inside a
// notebook page. The real comm route, to a real kernel, is tested in
// tests/test_widgets_browser.py.
import { spawn } from "node:child_process";
import http from "node:http";
import { createInterface } from "node:readline";
import { EventSource } from "eventsource";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  CommLink,
  Cursor,
  Hub,
  connectView,
  hubFor,
  parseMux,
  routesFor,
} from "../src/transport.js";

class Server {
  async start() {
    this.proc = spawn(".venv/bin/python", ["js/test/support/serve.py"], {
      stdio: ["pipe", "pipe", "inherit"],
    });
    this.lines = createInterface({ input: this.proc.stdout })[Symbol.asyncIterator]();
    const info = JSON.parse((await this.lines.next()).value);
    Object.assign(this, info);
    return this;
  }

  async cmd(...args) {
    this.proc.stdin.write(`${JSON.stringify(args)}\n`);
    return JSON.parse((await this.lines.next()).value);
  }

  stop() {
    this.proc.stdin.end();
  }
}

// Counts the EventSources a hub makes, and the URLs it opens, without changing them.
function recordingEventSource() {
  const made = [];
  class Recording extends EventSource {
    constructor(url, init) {
      super(url, init);
      made.push(this);
    }
  }
  return { EventSource: Recording, made };
}

function until(pred, what, timeout = 10000) {
  return new Promise((resolve, reject) => {
    const start = Date.now();
    const tick = () => {
      if (pred()) return resolve();
      if (Date.now() - start > timeout) return reject(new Error(`timed out waiting for ${what}`));
      setTimeout(tick, 10);
    };
    tick();
  });
}

function subscriber(stream, lastId = null) {
  const cursor = new Cursor(lastId);
  const sub = {
    stream,
    rows: [],
    statuses: [],
    fellBack: 0,
    get lastId() {
      return cursor.lastId;
    },
    onRows(rows) {
      sub.rows.push(...cursor.accept(rows));
    },
    onStatus(s) {
      sub.statuses.push(s);
    },
    onFallback() {
      sub.fellBack += 1;
    },
  };
  return sub;
}

// Nothing listens on port 9 (discard) here: connections to it are refused at once.
const REFUSED = "http://127.0.0.1:9";

let server;
beforeAll(async () => {
  server = await new Server().start();
  for (const name of ["a", "b", "c", "d", "e"]) await server.cmd("create", name);
});
afterAll(() => server.stop());

describe("parseMux and routes", () => {
  it("turns each data line into one row", () => {
    const rows = parseMux('[7,"loss","update","{\\"loss\\":0.3}"]\n[8,"log","message","a\\nb"]');
    expect(rows).toEqual([
      { id: 7, stream: "loss", type: "update", data: '{"loss":0.3}' },
      { id: 8, stream: "log", type: "message", data: "a\nb" },
    ]);
  });

  it("tries direct, then proxy, for auto; comm needs no EventSource", () => {
    expect(routesFor("auto")).toEqual(["direct", "proxy"]);
    expect(routesFor("proxy")).toEqual(["proxy"]);
    expect(routesFor("comm")).toEqual([]);
  });
});

describe("Cursor", () => {
  it("drops rows already seen and reports gaps", () => {
    const c = new Cursor(5);
    const got = c.accept([
      { id: 4, type: "message", data: "old" },
      { id: 5, type: "sse_widget.gap", data: '{"missed": 12}' },
      { id: 6, type: "message", data: "new" },
      { id: 6, type: "message", data: "again" },
    ]);
    expect(got.map((r) => r.data)).toEqual(['{"missed": 12}', "new"]);
    expect(got[0]).toMatchObject({ gap: true, missed: 12, atLeast: false });
    expect(c.lastId).toBe(6);
  });

  it("keeps a gap's 'at least' from the server", () => {
    const [gap] = new Cursor(0).accept([
      { id: 3, type: "sse_widget.gap", data: '{"missed": 7, "at_least": true}' },
    ]);
    expect(gap).toMatchObject({ gap: true, missed: 7, atLeast: true });
  });
});

describe("Hub over a real server", () => {
  it("multiplexes several streams over one EventSource", async () => {
    const rec = recordingEventSource();
    const hub = new Hub({ serverUrl: server.url, port: server.port, key: server.key, env: rec });
    const subs = [subscriber("a"), subscriber("b"), subscriber("a")];
    for (const s of subs) hub.add(s);
    await until(() => hub.state === "live", "live");
    await server.cmd("send", "a", "to a", null);
    await server.cmd("send", "b", "to b", "tick");
    await until(() => subs[0].rows.length === 1 && subs[1].rows.length === 1, "rows");
    expect(rec.made.length).toBe(1); // three subscriptions in one burst: one connection
    expect(subs[0].rows[0]).toMatchObject({ stream: "a", data: "to a", type: "message" });
    expect(subs[2].rows.map((r) => r.data)).toEqual(["to a"]);
    expect(subs[1].rows[0]).toMatchObject({ stream: "b", data: "to b", type: "tick" });
    expect(subs[0].statuses.at(-1)).toEqual({ transport: "direct", state: "live" });
    hub.close();
  });

  it("adds a stream by reopening from each view's last id, losing nothing", async () => {
    const rec = recordingEventSource();
    const hub = new Hub({ serverUrl: server.url, port: server.port, key: server.key, env: rec });
    const first = subscriber("c");
    hub.add(first);
    await until(() => hub.state === "live", "live");
    const id1 = await server.cmd("send", "c", "one", null);
    await until(() => first.rows.length === 1, "first row");
    const second = subscriber("d");
    hub.add(second);
    const id2 = await server.cmd("send", "c", "two", null); // on the old or the new connection
    await server.cmd("send", "d", "dee", null);
    await until(() => first.rows.length === 2 && second.rows.length === 1, "after reopen");
    expect(first.rows.map((r) => r.data)).toEqual(["one", "two"]);
    expect(rec.made.length).toBe(2);
    // The new connection resumed c from the last row the view had when it opened.
    expect([`c:${id1},d`, `c:${id2},d`]).toContain(new URL(rec.made[1].url).searchParams.get("streams"));
    expect(rec.made[0].readyState).toBe(2); // the old connection was closed
    hub.remove(second);
    await until(() => rec.made.length === 3 && hub.state === "live", "third open");
    const streams = (es) => new URL(es.url).searchParams.get("streams");
    expect(streams(rec.made[2])).toBe(`c:${first.lastId}`);
    hub.close();
  });

  it("resumes after a given id and replays the rest exactly once", async () => {
    const ids = [];
    for (const x of ["r0", "r1", "r2", "r3"]) ids.push(await server.cmd("send", "e", x, null));
    const hub = new Hub({ serverUrl: server.url, port: server.port, key: server.key, env: { EventSource } });
    const sub = subscriber("e", ids[1]);
    hub.add(sub);
    await until(() => sub.rows.length === 2, "replay");
    expect(sub.rows.map((r) => r.data)).toEqual(["r2", "r3"]);
    hub.close();
  });

  it("falls back from direct to proxy to comm, in that order, each quickly", async () => {
    const rec = recordingEventSource();
    const hub = new Hub({
      serverUrl: REFUSED,
      port: 9,
      key: server.key,
      env: { ...rec, origin: REFUSED, baseUrl: "/jh/user/" },
    });
    const sub = subscriber("a");
    const start = Date.now();
    hub.add(sub);
    await until(() => sub.fellBack === 1, "fallback");
    expect(Date.now() - start).toBeLessThan(5000);
    expect(rec.made.map((es) => new URL(es.url).pathname)).toEqual([
      "/events",
      "/jh/user/proxy/9/events",
    ]);
    expect(rec.made.every((es) => es.readyState === 2)).toBe(true);
    // A view that comes later goes straight to comm.
    const later = subscriber("b");
    hub.add(later);
    expect(later.fellBack).toBe(1);
    expect(rec.made.length).toBe(2);
    hub.close();
  });

  it("gives up on a route that never opens after the open timeout", async () => {
    // A server that accepts and then says nothing: neither open nor error ever fires.
    const silent = http.createServer(() => {});
    await new Promise((r) => silent.listen(0, "127.0.0.1", r));
    const url = `http://127.0.0.1:${silent.address().port}`;
    const hub = new Hub({
      serverUrl: url,
      port: silent.address().port,
      key: server.key,
      transport: "direct",
      env: { EventSource, openTimeout: 300 },
    });
    const sub = subscriber("a");
    hub.add(sub);
    await until(() => sub.fellBack === 1, "timeout fallback", 3000);
    hub.close();
    silent.closeAllConnections();
    silent.close();
  });

  it("reaches the server through a proxy path when direct is refused", async () => {
    // A plain forwarding proxy at <origin>/base/proxy/<port>/..., as jupyter-server-proxy
    // maps it (the real jupyter-server-proxy is used by the browser tests).
    const proxy = http.createServer((req, res) => {
      const prefix = `/base/proxy/${server.port}`;
      const up = http.request(
        `${server.url}${req.url.slice(prefix.length)}`,
        { headers: { accept: req.headers.accept } },
        (r) => {
          res.writeHead(r.statusCode, r.headers);
          r.pipe(res);
        },
      );
      up.end();
    });
    await new Promise((r) => proxy.listen(0, "127.0.0.1", r));
    const origin = `http://127.0.0.1:${proxy.address().port}`;
    const hub = new Hub({
      serverUrl: REFUSED,
      port: server.port,
      key: server.key,
      env: { EventSource, origin, baseUrl: "/base/" },
    });
    const sub = subscriber("b");
    hub.add(sub);
    await until(() => hub.state === "live", "live via proxy");
    expect(sub.statuses.at(-1)).toEqual({ transport: "proxy", state: "live" });
    await server.cmd("send", "b", "proxied", null);
    await until(() => sub.rows.some((r) => r.data === "proxied"), "row via proxy");
    hub.close();
    proxy.closeAllConnections();
    proxy.close();
  });
});

// A stand-in for anywidget's model: get(), on/off("msg:custom"), send().
function fakeModel(traits) {
  const handlers = new Set();
  return {
    sent: [],
    get: (name) => traits[name],
    on: (name, fn) => name === "msg:custom" && handlers.add(fn),
    off: (name, fn) => handlers.delete(fn),
    send(msg) {
      this.sent.push(msg);
    },
    emit: (msg) => {
      for (const fn of handlers) fn(msg);
    },
  };
}

describe("comm", () => {
  it("applies batches of rows, deduped, and says it is live", () => {
    const model = fakeModel({});
    const rows = [];
    const statuses = [];
    const cursor = new Cursor(null);
    const link = new CommLink(model, {
      onRows: (r) => rows.push(...cursor.accept(r)),
      onStatus: (s) => statuses.push(s),
    });
    link.subscribe(null);
    expect(model.sent).toEqual([{ type: "comm_subscribe", after: null }]);
    model.emit({ type: "comm_live" });
    expect(statuses.at(-1)).toEqual({ transport: "comm", state: "live" });
    model.emit({ type: "events", lines: '[1,"s","message","x"]\n[2,"s","message","y"]' });
    model.emit({ type: "events", lines: '[2,"s","message","y"]\n[3,"s","message","z"]' });
    expect(rows.map((r) => r.data)).toEqual(["x", "y", "z"]);
    link.close();
    model.emit({ type: "events", lines: '[4,"s","message","late"]' });
    expect(rows.length).toBe(3);
    expect(model.sent.at(-1)).toEqual({ type: "comm_unsubscribe" });
  });

  it("a view with transport=comm never opens an EventSource", () => {
    const rec = recordingEventSource();
    const model = fakeModel({ stream: "a", transport: "comm", server_url: server.url, port: server.port, key: server.key });
    const statuses = [];
    const stop = connectView(model, { onRows: () => {}, onStatus: (s) => statuses.push(s), env: rec });
    expect(model.sent).toEqual([{ type: "comm_subscribe", after: null }]);
    expect(statuses).toEqual([{ transport: "comm", state: "connecting" }]);
    expect(rec.made.length).toBe(0);
    stop();
  });

  it("hubFor shares one hub per server and transport in a page", () => {
    const registry = new Map();
    const cfg = { serverUrl: server.url, port: server.port, key: server.key, transport: "auto" };
    expect(hubFor(cfg, registry)).toBe(hubFor({ ...cfg }, registry));
    expect(hubFor({ ...cfg, transport: "comm" }, registry)).not.toBe(hubFor(cfg, registry));
  });
});

describe("via=browser feeds", () => {
  it("open their own EventSource to the URL and hear the listed types", async () => {
    await server.cmd("create", "ext");
    const rec = recordingEventSource();
    const url = `${server.url}/streams/ext?key=${server.key}`;
    const model = fakeModel({ via: "browser", browser_url: url, browser_events: ["message", "tick"] });
    const rows = [];
    const statuses = [];
    const stop = connectView(model, {
      onRows: (r) => rows.push(...r),
      onStatus: (s) => statuses.push(s),
      env: rec,
    });
    expect(rec.made.map((es) => es.url)).toEqual([url]);
    await until(() => statuses.at(-1)?.state === "live", "the EventSource to open");
    await server.cmd("send", "ext", "a", null);
    await server.cmd("send", "ext", "b", "tick");
    await server.cmd("send", "ext", "unheard", "other");
    await server.cmd("send", "ext", "c", null);
    await until(() => rows.length >= 3, "three rows");
    expect(rows.map((r) => [r.type, r.data])).toEqual([
      ["message", "a"],
      ["tick", "b"],
      ["message", "c"],
    ]);
    expect(rows.map((r) => r.id)).toEqual([1, 2, 3]);
    expect(statuses[0]).toEqual({ transport: "browser", state: "connecting" });
    stop();
    expect(rec.made[0].readyState).toBe(2);
  });
});

describe("a route the page cannot open", () => {
  it("is skipped when the EventSource constructor throws", async () => {
    class Refusing extends EventSource {
      constructor(url, init) {
        if (String(url).startsWith("null/")) throw new SyntaxError("The URL is invalid.");
        super(url, init);
      }
    }
    const hub = new Hub({
      serverUrl: "http://127.0.0.1:9",
      port: 9,
      key: "k",
      env: { EventSource: Refusing, origin: "null", baseUrl: "/", openTimeout: 500 },
    });
    const fallbacks = [];
    hub.add({ stream: "a", lastId: null, onRows() {}, onStatus() {}, onFallback: () => fallbacks.push(1) });
    await until(() => fallbacks.length === 1, "the comm fallback", 15000);
    hub.close();
  });
});
