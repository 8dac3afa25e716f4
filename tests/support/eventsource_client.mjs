// Reads an SSE URL with the `eventsource` npm package (a WHATWG-compliant EventSource for
// Node) and prints what it received as JSON. Used by tests/test_server.py.
// usage: node eventsource_client.mjs URL COUNT [EVENT_TYPE ...]
import { EventSource } from "eventsource";

const [url, count, ...types] = process.argv.slice(2);
const want = Number(count);
const got = [];
const es = new EventSource(url);
const done = () => {
  es.close();
  process.stdout.write(JSON.stringify(got));
  process.exit(0);
};
const onEvent = (e) => {
  got.push({ type: e.type, data: e.data, id: e.lastEventId });
  if (got.length >= want) done();
};
es.onmessage = onEvent;
for (const t of types) es.addEventListener(t, onEvent);
es.onerror = () => {
  if (es.readyState === EventSource.CLOSED) {
    process.stderr.write(`closed after ${got.length} events\n`);
    process.exit(2);
  }
};
setTimeout(() => {
  process.stderr.write(`timeout after ${got.length} of ${want} events\n`);
  process.exit(3);
}, 20000);
