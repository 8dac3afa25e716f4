// Event data as JSON: parsed once per row and cached, flattened for charts, and shown as a
// collapsible tree built from text nodes only (third-party data is never HTML).

const NOT_JSON = Symbol("not JSON");

/** The row's data parsed as JSON, or undefined when it is not JSON. Cached on the row. */
export function jsonOf(row) {
  if (!Object.prototype.hasOwnProperty.call(row, "_json")) {
    let value = NOT_JSON;
    const d = row.data;
    // Only text that can start a JSON object, array, number, string or literal is tried.
    if (typeof d === "string" && d && /^\s*[[{"\-\d tfn]/.test(d)) {
      try {
        value = JSON.parse(d);
      } catch {
        value = NOT_JSON;
      }
    }
    Object.defineProperty(row, "_json", { value, enumerable: false });
  }
  return row._json === NOT_JSON ? undefined : row._json;
}

/** Numeric leaves of a JSON value as [dotted.name, number] pairs (booleans are not numbers). */
export function numericFields(value, prefix = "", out = []) {
  if (typeof value === "number") {
    if (Number.isFinite(value)) out.push([prefix || "value", value]);
  } else if (value && typeof value === "object" && !Array.isArray(value)) {
    for (const [k, v] of Object.entries(value)) numericFields(v, prefix ? `${prefix}.${k}` : k, out);
  }
  return out;
}

/** Pretty JSON text for a row, or its data unchanged when it is not JSON. */
export function prettyData(row) {
  const v = jsonOf(row);
  return v === undefined || typeof v !== "object" || v === null ? row.data : JSON.stringify(v, null, 2);
}

function leaf(doc, value) {
  const span = doc.createElement("span");
  span.className = `sse-widget-json-${value === null ? "null" : typeof value}`;
  span.textContent = typeof value === "string" ? JSON.stringify(value) : String(value);
  return span;
}

/**
 * A collapsible tree for a JSON value: objects and arrays become <details>, open down to
 * `open` levels; everything is put in as text.
 */
export function jsonTree(doc, value, { open = 1, key = null, depth = 0 } = {}) {
  const label = (el) => {
    if (key == null) return;
    const k = doc.createElement("span");
    k.className = "sse-widget-json-key";
    k.textContent = `${key}: `;
    el.prepend(k);
  };
  if (value === null || typeof value !== "object") {
    const row = doc.createElement("div");
    row.className = "sse-widget-json-leaf";
    row.append(leaf(doc, value));
    label(row);
    return row;
  }
  const isArray = Array.isArray(value);
  const entries = isArray ? value.map((v, i) => [i, v]) : Object.entries(value);
  const details = doc.createElement("details");
  details.className = "sse-widget-json-node";
  details.open = depth < open;
  const summary = doc.createElement("summary");
  summary.textContent = isArray ? `[${entries.length}]` : `{${entries.length}}`;
  label(summary);
  details.append(summary);
  for (const [k, v] of entries) details.append(jsonTree(doc, v, { open, key: k, depth: depth + 1 }));
  return details;
}
