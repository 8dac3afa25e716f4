// Node's eventsource-parser (npm) reads the bytes of sse_widget.protocol.encode_event
// and must get back exactly the events we meant: type, data and id.
import { execFileSync } from "node:child_process";
import { createParser } from "eventsource-parser";
import { describe, expect, it } from "vitest";

// Tricky on purpose: every line break kind, empty data, leading spaces, colons,
// field names inside data, non-ASCII, U+2028 and friends (not line breaks in SSE).
const EVENTS = [
  { data: '{"loss": 0.25, "step": 1}', event: "update", id: "1" },
  { data: "line 1\nline 2\r\nline 3\rline 4", id: "2", retry: 3000 },
  { data: "", event: "empty" },
  { data: "\n" },
  { data: "  leading spaces: and: colons", event: "x:y", id: "id: with colon" },
  { data: "unicode é 中 😀 \u2028 \u2029 \u0085 \f \v tab\t nul\u0000", event: "ünï", id: "ïd" },
  { data: "trailing newline\n", event: "", id: "" },
  { data: "\r\n\r\n", event: "data", id: "5", retry: 0 },
  { data: "event: not an event\n\nid: 666\n\ndata: nor this", event: "message", id: "7" },
  { data: "x".repeat(5000) + "\n" + "y".repeat(70000), id: "8" },
];

const ENCODE = `
import base64, json, sys
from sse_widget.protocol import encode_event
events = json.load(sys.stdin)
wire = b"".join(
    encode_event(e["data"], event=e.get("event"), id=e.get("id"), retry=e.get("retry"))
    for e in events
)
sys.stdout.write(base64.b64encode(wire).decode("ascii"))
`;

function encodeWithPython(events) {
  // process.cwd() is the repository root when vitest runs.
  const out = execFileSync(".venv/bin/python", ["-c", ENCODE], {
    input: JSON.stringify(events),
    encoding: "utf8",
  });
  return Buffer.from(out, "base64");
}

// A small seeded PRNG (mulberry32), so a failing split can be reproduced.
function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function parseInChunks(bytes, seed) {
  const random = rng(seed);
  const sizes = [1, 2, 3, 5, 64, 1000, 65536];
  const events = [];
  const retries = [];
  const errors = [];
  const parser = createParser({
    onEvent: (e) => events.push({ event: e.event, data: e.data, id: e.id }),
    onRetry: (ms) => retries.push(ms),
    onError: (err) => errors.push(err),
  });
  // A streaming decoder, as a browser would use, so UTF-8 split across chunks is fine.
  const decoder = new TextDecoder("utf-8");
  for (let i = 0; i < bytes.length; ) {
    const n = sizes[Math.floor(random() * sizes.length)];
    parser.feed(decoder.decode(bytes.subarray(i, i + n), { stream: true }));
    i += n;
  }
  parser.feed(decoder.decode());
  return { events, retries, errors };
}

describe("eventsource-parser reads encode_event's bytes", () => {
  const wire = encodeWithPython(EVENTS);
  const normalise = (s) => s.replace(/\r\n/g, "\n").replace(/\r/g, "\n");
  // eventsource-parser reports only the fields an event itself carried (no carry-over
  // of ids) and leaves an empty or missing type undefined.
  const expected = EVENTS.map((e) => ({
    event: e.event || undefined,
    data: normalise(e.data),
    id: e.id,
  }));
  const expectedRetries = EVENTS.filter((e) => e.retry !== undefined).map((e) => e.retry);

  it("emits LF-only lines and one blank line per event", () => {
    const text = wire.toString("utf8");
    expect(text.includes("\r")).toBe(false);
    expect(text.split("\n\n").length - 1).toBe(EVENTS.length);
  });

  for (const seed of [1, 2, 3, 4, 5, 6, 7, 8]) {
    it(`gets the same events from random chunks (seed ${seed})`, () => {
      const { events, retries, errors } = parseInChunks(wire, seed);
      expect(errors).toEqual([]);
      expect(events).toEqual(expected);
      expect(retries).toEqual(expectedRetries);
    });
  }

  it("gets the same events from one-byte chunks", () => {
    const events = [];
    const parser = createParser({
      onEvent: (e) => events.push({ event: e.event, data: e.data, id: e.id }),
    });
    const decoder = new TextDecoder("utf-8");
    for (const byte of wire) parser.feed(decoder.decode(Uint8Array.of(byte), { stream: true }));
    expect(events).toEqual(expected);
  });
});
