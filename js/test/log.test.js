// @vitest-environment happy-dom
// The log view's data handling: bounded rows, text never parsed as HTML, gap rows.
import { describe, expect, it } from "vitest";
import { StatusLine } from "../src/status.js";
import { LogView } from "../src/views/log.js";

const row = (id, data, type = "message") => ({ id, type, data, time: 0 });

describe("LogView", () => {
  it("keeps only the last max_rows rows", () => {
    const el = document.createElement("div");
    const view = new LogView(el, { maxRows: 3 });
    view.append([row(1, "a"), row(2, "b")]);
    view.append([row(3, "c"), row(4, "d"), row(5, "e")]);
    expect([...el.children].map((r) => r.dataset.id)).toEqual(["3", "4", "5"]);
    view.setMaxRows(2);
    expect(el.childElementCount).toBe(2);
  });

  it("rewrites every row in place when a batch replaces them all", () => {
    const el = document.createElement("div");
    const view = new LogView(el, { maxRows: 3 });
    view.append([row(1, "a"), row(2, "b", "t"), row(3, "c")]);
    const before = [...el.children];
    el.children[1].click(); // opened: shows its data below, so it is built again
    view.append([row(4, "d", "u"), row(5, '{"x": 1}'), row(6, "f"), row(7, "<i>g</i>")]);
    const after = [...el.children];
    expect(after.map((r) => r.dataset.id)).toEqual(["5", "6", "7"]);
    expect(after.map((r) => r.querySelector(".sse-widget-data").textContent)).toEqual(['{"x": 1}', "f", "<i>g</i>"]);
    expect(after.map((r) => r.dataset.type)).toEqual(["message", "message", "message"]);
    expect(after[0]).toBe(before[0]);
    expect(after[1]).not.toBe(before[1]);
    expect(after[2]).toBe(before[2]);
    expect(el.querySelector("i, .sse-widget-json")).toBeNull();
    after[0].click(); // the row's data is the new row's
    expect(el.querySelector(".sse-widget-json").textContent).toContain('"x": 1');
    // A gap among them is built as a gap row.
    view.append([row(8, "h"), { id: 9, type: "sse_widget.gap", gap: true, missed: 2, time: 0 }, row(10, "j")]);
    expect(el.children[1].classList.contains("sse-widget-gap")).toBe(true);
    expect(el.children[1].textContent).toContain("2 events missed");
    expect(el.children[2].querySelector(".sse-widget-id").textContent.trim()).toBe("10");
  });

  it("shows markup as text", () => {
    const el = document.createElement("div");
    new LogView(el).append([row(1, '<img src=x onerror="alert(1)">', "<b>t</b>")]);
    expect(el.querySelector("img, b")).toBeNull();
    expect(el.textContent).toContain('<img src=x onerror="alert(1)">');
    expect(el.querySelector(".sse-widget-type").textContent.trim()).toBe("<b>t</b>");
  });

  it("renders a gap as 'N events missed'", () => {
    const el = document.createElement("div");
    new LogView(el).append([{ id: 9, type: "sse_widget.gap", gap: true, missed: 1234, time: 0 }]);
    expect(el.querySelector(".sse-widget-gap").textContent).toContain("1,234 events missed");
  });

  it("says 'at least' when the server could only bound the count", () => {
    const el = document.createElement("div");
    new LogView(el).append([{ id: 9, type: "sse_widget.gap", gap: true, missed: 7, atLeast: true, time: 0 }]);
    expect(el.querySelector(".sse-widget-gap").textContent).toContain("at least 7 events missed");
  });
});

describe("StatusLine", () => {
  it("shows transport, state, count and rate as plain text", () => {
    const el = document.createElement("div");
    const s = new StatusLine(el);
    s.set({ transport: "direct", state: "live" });
    s.add(10, 1000);
    s.add(10, 2000);
    s.render(2000);
    expect(el.dataset).toMatchObject({ transport: "direct", state: "live" });
    expect(el.textContent).toBe("direct · live · 20 events · 10/s");
    s.render(10_000); // nothing for a while: no stale rate
    expect(el.textContent).toBe("direct · live · 20 events");
  });
});
