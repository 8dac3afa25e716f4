// The widget's stylesheet, themed with JupyterLab's --jp-* variables (with fallbacks for
// frontends that have none), plus uPlot's own stylesheet for the chart view. It is adopted
// by each widget's shadow root: the page's styles (JupyterLab ships thousands of rules)
// then never have to be matched against our rows, which made a fast log slow, while the
// --jp-* custom properties still inherit into the shadow tree, so themes apply.
import uplotCss from "uplot/dist/uPlot.min.css";

const CSS = `
:host { display: block; }
.sse-widget { font-family: var(--jp-ui-font-family, system-ui, sans-serif);
  font-size: var(--jp-ui-font-size1, 13px); color: var(--jp-ui-font-color1, #222);
  border: 1px solid var(--jp-border-color2, #ddd); border-radius: 4px; max-width: 100%;
  background: var(--jp-layout-color1, #fff); }
.sse-widget-title { font-weight: 600; padding: 4px 8px;
  border-bottom: 1px solid var(--jp-border-color2, #ddd); }
.sse-widget-status { font-size: var(--jp-ui-font-size0, 11px); padding: 2px 8px;
  color: var(--jp-ui-font-color2, #666); border-top: 1px solid var(--jp-border-color2, #ddd); }
.sse-widget-status[data-state="live"]::before { content: "● "; color: var(--jp-success-color1, #388e3c); }
.sse-widget-status[data-state="retrying"]::before { content: "● "; color: var(--jp-warn-color1, #f57c00); }
.sse-widget-toolbar { display: flex; flex-wrap: wrap; gap: 4px 12px; align-items: center;
  padding: 3px 8px; border-bottom: 1px solid var(--jp-border-color2, #ddd);
  font-size: var(--jp-ui-font-size0, 11px); color: var(--jp-ui-font-color2, #666); }
.sse-widget-control { display: inline-flex; gap: 4px; align-items: center; }
.sse-widget-toolbar select, .sse-widget-toolbar button { font: inherit;
  color: var(--jp-ui-font-color1, #222); background: var(--jp-layout-color2, #f3f3f3);
  border: 1px solid var(--jp-border-color1, #bbb); border-radius: 3px; padding: 1px 6px; }
.sse-widget-toolbar button[aria-pressed="true"] { background: var(--jp-warn-color3, #ffe0b2);
  color: var(--jp-ui-font-color0, #000); }
.sse-widget-toolbar :focus-visible { outline: 2px solid var(--jp-brand-color1, #1976d2);
  outline-offset: 1px; }
.sse-widget-log { height: 300px; overflow: auto; font-family: var(--jp-code-font-family, monospace);
  font-size: var(--jp-code-font-size, 12px); contain: strict; overflow-anchor: none; }
.sse-widget-row { display: block; padding: 1px 8px; white-space: pre; overflow: hidden;
  text-overflow: ellipsis; border-bottom: 1px solid var(--jp-border-color3, #f0f0f0);
  cursor: pointer; content-visibility: auto; contain-intrinsic-size: auto 1.5em; }
.sse-widget-open { white-space: normal; }
.sse-widget-open > span { white-space: pre; }
.sse-widget-open > .sse-widget-data { white-space: pre-wrap; word-break: break-word; }
.sse-widget-json { margin: 2px 0 4px 0; padding: 4px 8px;
  white-space: pre-wrap; word-break: break-word; cursor: text;
  background: var(--jp-layout-color2, #f5f5f5); border-radius: 3px; }
.sse-widget-time, .sse-widget-id { color: var(--jp-ui-font-color2, #777); }
.sse-widget-type { color: var(--jp-mirror-editor-keyword-color, #008000); }
.sse-widget-gap { color: var(--jp-warn-color1, #f57c00); font-style: italic; }
.sse-widget-feed { padding: 2px 8px; font-size: var(--jp-ui-font-size0, 11px);
  color: var(--jp-ui-font-color2, #666); border-bottom: 1px solid var(--jp-border-color2, #ddd); }
.sse-widget-feed[data-status="open"] .sse-widget-feed-state::before { content: "● ";
  color: var(--jp-success-color1, #388e3c); }
.sse-widget-feed[data-status="retrying"] .sse-widget-feed-state::before,
.sse-widget-feed[data-status="connecting"] .sse-widget-feed-state::before { content: "● ";
  color: var(--jp-warn-color1, #f57c00); }
.sse-widget-feed-error { color: var(--jp-error-color1, #d32f2f); white-space: pre-wrap;
  font-family: var(--jp-code-font-family, monospace); max-height: 8em; overflow: auto; }
.sse-widget-last { padding: 6px 10px; }
.sse-widget-last-head { font-size: var(--jp-ui-font-size0, 11px); color: var(--jp-ui-font-color2, #666); }
.sse-widget-last-value { font-size: 2em; line-height: 1.25; padding: 2px 0 4px;
  font-family: var(--jp-code-font-family, monospace); white-space: pre-wrap; word-break: break-word; }
.sse-widget-last-tree { font-size: var(--jp-code-font-size, 13px); max-height: 300px; overflow: auto; }
.sse-widget-json-node > .sse-widget-json-node, .sse-widget-json-node > .sse-widget-json-leaf {
  margin-left: 1.2em; }
.sse-widget-json-node > summary { cursor: pointer; }
.sse-widget-json-key { color: var(--jp-mirror-editor-property-color, #00f); }
.sse-widget-json-string { color: var(--jp-mirror-editor-string-color, #a11); }
.sse-widget-json-number { color: var(--jp-mirror-editor-number-color, #080); }
.sse-widget-json-boolean, .sse-widget-json-null { color: var(--jp-mirror-editor-keyword-color, #708); }
.sse-widget-chart { padding: 4px; min-height: 60px; }
.sse-widget-chart-empty { padding: 16px; color: var(--jp-ui-font-color2, #777); font-style: italic; }
.sse-widget-chart .u-legend { font-size: var(--jp-ui-font-size0, 11px); color: var(--jp-ui-font-color1, #222); }
.sse-widget-progress { padding: 4px 8px; max-height: 420px; overflow: auto; }
.sse-widget-bar { display: grid; grid-template-columns: minmax(6em, 14em) minmax(80px, 1fr) 3.5em 24em;
  gap: 8px; align-items: center; padding: 2px 0;
  padding-left: calc(var(--sse-widget-level, 0) * 1.2em); font-size: var(--jp-ui-font-size1, 13px); }
.sse-widget-bar-desc { overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.sse-widget-bar-track { height: 10px; border-radius: 5px; overflow: hidden;
  background: var(--jp-layout-color3, #e0e0e0); }
.sse-widget-bar-fill { height: 100%; width: 0; background: var(--jp-brand-color1, #1976d2);
  transition: width 0.15s linear; }
.sse-widget-bar-unknown { opacity: 0.4; }
.sse-widget-bar[data-state="done"] .sse-widget-bar-fill { background: var(--jp-success-color1, #388e3c); }
.sse-widget-bar[data-state="error"] .sse-widget-bar-fill { background: var(--jp-error-color1, #d32f2f); }
.sse-widget-bar[data-state="interrupted"] .sse-widget-bar-fill { background: var(--jp-warn-color1, #f57c00); }
.sse-widget-bar[data-state="error"] .sse-widget-bar-detail { color: var(--jp-error-color1, #d32f2f); }
.sse-widget-bar[data-state="interrupted"] .sse-widget-bar-detail { color: var(--jp-warn-color1, #f57c00); }
.sse-widget-bar-pct { text-align: right; font-variant-numeric: tabular-nums; }
.sse-widget-bar-detail { color: var(--jp-ui-font-color2, #666); font-variant-numeric: tabular-nums;
  white-space: nowrap; overflow: hidden; text-overflow: ellipsis; font-size: var(--jp-ui-font-size0, 11px); }
.sse-widget-status[data-state="snapshot"]::before { content: "◷ "; }
`;

let shared = null;

/** Give a shadow root our stylesheet: one shared constructed sheet, else a <style>. */
export function adoptStyle(root) {
  const text = (typeof uplotCss === "string" ? uplotCss : "") + CSS;
  const Sheet = root.ownerDocument?.defaultView?.CSSStyleSheet;
  if (Sheet && "adoptedStyleSheets" in root && "replaceSync" in Sheet.prototype) {
    shared ??= new Sheet();
    if (!shared.cssRules.length) shared.replaceSync(text);
    root.adoptedStyleSheets = [...root.adoptedStyleSheets, shared];
    return;
  }
  const style = root.ownerDocument.createElement("style");
  style.textContent = text;
  root.append(style);
}
