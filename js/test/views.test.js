// @vitest-environment happy-dom
// Each view's data handling, without a browser: the chart's columns, the progress model and
// its formatting, the last-value view, JSON helpers, the log's expand and the snapshot.
import { describe, expect, it } from "vitest";
import { jsonOf, jsonTree, numericFields, prettyData } from "../src/json.js";
import { ChartData, MAX_SERIES } from "../src/views/chart.js";
import { LastView } from "../src/views/last.js";
import { LogView } from "../src/views/log.js";
import { ProgressModel, ProgressView, formatDuration, formatRate } from "../src/views/progress.js";
import { snapshotRows } from "../widget.js";

const row = (id, data, type = "message", time = id * 1000) => ({ id, type, data, time });

describe("json helpers", () => {
  it("parses once and caches, without making the cache part of the row", () => {
    const r = row(1, '{"a": 1}');
    expect(jsonOf(r)).toEqual({ a: 1 });
    expect(jsonOf(r)).toBe(jsonOf(r));
    expect(Object.keys(r)).toEqual(["id", "type", "data", "time"]);
    expect(jsonOf(row(2, "not json"))).toBeUndefined();
    expect(jsonOf(row(3, "{broken"))).toBeUndefined();
  });

  it("flattens numeric fields with dotted names, skipping booleans, strings and arrays", () => {
    const v = { loss: 0.5, ok: true, name: "x", nested: { lr: 0.01, deep: { m: 2 } }, xs: [1, 2], nan: null };
    expect(numericFields(v)).toEqual([
      ["loss", 0.5],
      ["nested.lr", 0.01],
      ["nested.deep.m", 2],
    ]);
    expect(numericFields(3.5)).toEqual([["value", 3.5]]);
  });

  it("pretty-prints JSON objects and leaves other data alone", () => {
    expect(prettyData(row(1, '{"a":[1,2]}'))).toBe('{\n  "a": [\n    1,\n    2\n  ]\n}');
    expect(prettyData(row(2, "plain <b>text</b>"))).toBe("plain <b>text</b>");
  });

  it("builds a tree from text only", () => {
    const tree = jsonTree(document, { "<i>k</i>": "<img src=x>", n: [1, { x: null }] }, { open: 1 });
    expect(tree.querySelector("img, i")).toBeNull();
    expect(tree.textContent).toContain('<i>k</i>: "<img src=x>"');
    expect(tree.tagName).toBe("DETAILS");
    expect(tree.open).toBe(true);
    expect(tree.querySelector("details details").open).toBe(false);
  });
});

describe("ChartData", () => {
  it("keeps one aligned column per field, in first-seen order", () => {
    const d = new ChartData(10);
    expect(d.add(row(1, '{"loss": 1, "acc": 0.1}'))).toBe(true);
    expect(d.add(row(2, "text, skipped"))).toBe(false);
    expect(d.add(row(3, '{"loss": 0.5, "lr": {"value": 0.01}}'))).toBe(true);
    expect(d.names()).toEqual(["loss", "acc", "lr.value"]);
    expect(d.data()).toEqual([
      [1, 3],
      [1, 0.5],
      [0.1, null],
      [null, 0.01],
    ]);
    expect(d.skipped).toBe(1);
  });

  it("is bounded to max points and to MAX_SERIES series", () => {
    const d = new ChartData(3);
    for (let i = 1; i <= 5; i++) d.add(row(i, JSON.stringify({ v: i })));
    d.trim();
    expect(d.data()).toEqual([
      [3, 4, 5],
      [3, 4, 5],
    ]);
    const wide = new ChartData(3);
    wide.add(row(1, JSON.stringify(Object.fromEntries([...Array(40).keys()].map((k) => [`f${k}`, k])))));
    expect(wide.names().length).toBe(MAX_SERIES);
  });
});

describe("progress", () => {
  it("formats durations and rates like tqdm", () => {
    expect(formatDuration(75)).toBe("01:15");
    expect(formatDuration(3725)).toBe("1:02:05");
    expect(formatDuration(Number.NaN)).toBe("?");
    expect(formatRate(1234, "it")).toBe("1.23k it/s");
    expect(formatRate(0.5, "batch")).toBe("2.00 s/batch");
    expect(formatRate(0)).toBe("? it/s");
  });

  it("tracks bars by id and describes them", () => {
    const m = new ProgressModel();
    expect(m.apply(row(1, '{"n": 1}', "message"))).toBeNull();
    m.apply(row(2, JSON.stringify({ id: "a", n: 25, total: 100, desc: "train", elapsed: 10, rate: 2.5 }), "progress"));
    const bar = m.apply(row(3, JSON.stringify({ id: "a", n: 50, total: 100, elapsed: 20, rate: 2.5, postfix: { loss: 0.123456 } }), "progress"));
    expect(bar.desc).toBe("train");
    expect(ProgressModel.describe(bar)).toEqual({
      pct: 50,
      label: "50%",
      detail: "50/100 · 00:20<00:20 · 2.50 it/s · loss=0.1235",
    });
    const done = m.apply(row(4, JSON.stringify({ id: "a", n: 100, total: 100, elapsed: 40, state: "done" }), "progress"));
    expect(ProgressModel.describe(done).detail).toBe("100/100 · 00:40 · 2.50 it/s");
  });

  it("sums what workers add to a shared bar, which is done when it reaches its total", () => {
    const m = new ProgressModel();
    const add = (id, add, extra = {}) => row(id, JSON.stringify({ id: "s", add, total: 10, elapsed: id, ...extra }), "progress");
    m.apply(add(1, 4));
    m.apply(add(2, 3, { elapsed: 0.5 })); // a worker whose clock reads earlier
    expect(m.bars.get("s")).toMatchObject({ n: 7, state: "running", elapsed: 1 });
    m.apply(add(3, 3));
    expect(m.bars.get("s").state).toBe("done");
    m.apply(add(4, 0, { state: "error" }));
    m.apply(add(5, 0, { state: "running" }));
    expect(m.bars.get("s").state).toBe("error"); // a failure stays
  });

  it("renders one row per bar, in first-seen order, coloured by state, hiding leave=false bars", () => {
    const el = document.createElement("div");
    const v = new ProgressView(el);
    const p = (id, o) => row(id, JSON.stringify(o), "progress");
    v.append([p(1, { id: "b", n: 1, total: 4 }), p(2, { id: "a", n: 1, total: 2, level: 1 })]);
    v.append([p(3, { id: "b", n: 4, total: 4, state: "done" }), p(4, { id: "a", n: 1, total: 2, state: "error" })]);
    v.append([p(5, { id: "c", n: 3, total: 3, state: "done", leave: false, desc: "<b>x</b>" })]);
    const bars = [...el.querySelectorAll(".sse-widget-bar")];
    expect(bars.map((b) => [b.dataset.bar, b.dataset.state, b.hidden])).toEqual([
      ["b", "done", false],
      ["a", "error", false],
      ["c", "done", true],
    ]);
    expect(bars[0].querySelector(".sse-widget-bar-fill").style.width).toBe("100%");
    expect(bars[1].style.getPropertyValue("--sse-widget-level")).toBe("1");
    expect(el.querySelector("b")).toBeNull();
  });
});

describe("LastView", () => {
  it("shows the newest value: scalars large, objects as a tree", () => {
    const el = document.createElement("div");
    const v = new LastView(el);
    v.append([row(1, "first"), row(2, "42")]);
    expect(el.querySelector(".sse-widget-last-value").textContent).toBe("42");
    v.append([row(3, '{"temp": 21.5, "where": {"room": "<b>lab</b>"}}', "status")]);
    expect(el.querySelector(".sse-widget-last-head").textContent).toMatch(/^status · id 3 · /);
    expect(el.querySelector("details")).not.toBeNull();
    expect(el.querySelector("b")).toBeNull();
    expect(el.textContent).toContain('"<b>lab</b>"');
  });
});

describe("LogView", () => {
  it("expands a row to its pretty JSON on click, and collapses it again", () => {
    const el = document.createElement("div");
    const v = new LogView(el);
    v.append([row(1, '{"a":1}')]);
    const r = el.querySelector(".sse-widget-row");
    r.click();
    expect(r.querySelector(".sse-widget-json").textContent).toBe('{\n  "a": 1\n}');
    r.click();
    expect(r.querySelector(".sse-widget-json")).toBeNull();
  });
});

describe("snapshot", () => {
  it("keeps progress bars as their accumulated state, not their raw updates", () => {
    const recent = [row(1, "a"), row(2, '{"id": "w", "add": 5}', "progress"), row(3, "b")];
    const bar = row(2, '{"id": "w", "n": 25}', "progress");
    const rows = snapshotRows(recent, new Map([["w", bar]]), 10);
    expect(rows.map((r) => r.data)).toEqual(["a", '{"id": "w", "n": 25}', "b"]);
  });

  it("keeps the last rows plus every progress bar's last row, plain fields only", () => {
    const recent = [1, 2, 3, 4, 5].map((i) => row(i, `d${i}`));
    const bar = row(0, '{"id": "x", "n": 1}', "progress");
    jsonOf(recent[4]);
    const rows = snapshotRows(recent, new Map([["x", bar]]), 2);
    expect(rows).toEqual([bar, recent[3], recent[4]].map(({ id, type, data, time }) => ({ id, type, data, time })));
    expect(JSON.stringify(rows)).not.toContain("_json");
  });
});
