// One stylesheet per document, themed with JupyterLab's --jp-* variables (with fallbacks
// for frontends that have none).

const CSS = `
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
.sse-widget-log { max-height: 300px; overflow: auto; font-family: var(--jp-code-font-family, monospace);
  font-size: var(--jp-code-font-size, 12px); }
.sse-widget-row { display: grid; grid-template-columns: 7.5em 8em 4em 1fr; gap: 8px;
  padding: 1px 8px; border-bottom: 1px solid var(--jp-border-color3, #f0f0f0); }
.sse-widget-row > span { overflow: hidden; text-overflow: ellipsis; white-space: pre-wrap;
  word-break: break-word; }
.sse-widget-time, .sse-widget-id { color: var(--jp-ui-font-color2, #777); }
.sse-widget-type { color: var(--jp-mirror-editor-keyword-color, #008000); white-space: nowrap; }
.sse-widget-gap { grid-template-columns: 7.5em 1fr; color: var(--jp-warn-color1, #f57c00);
  font-style: italic; }
.sse-widget-feed { padding: 2px 8px; font-size: var(--jp-ui-font-size0, 11px);
  color: var(--jp-ui-font-color2, #666); border-bottom: 1px solid var(--jp-border-color2, #ddd); }
.sse-widget-feed[data-status="open"] .sse-widget-feed-state::before { content: "● ";
  color: var(--jp-success-color1, #388e3c); }
.sse-widget-feed[data-status="retrying"] .sse-widget-feed-state::before,
.sse-widget-feed[data-status="connecting"] .sse-widget-feed-state::before { content: "● ";
  color: var(--jp-warn-color1, #f57c00); }
.sse-widget-feed-error { color: var(--jp-error-color1, #d32f2f); white-space: pre-wrap;
  font-family: var(--jp-code-font-family, monospace); max-height: 8em; overflow: auto; }
`;

export function ensureStyle(doc) {
  if (doc.getElementById("sse-widget-style")) return;
  const style = doc.createElement("style");
  style.id = "sse-widget-style";
  style.textContent = CSS;
  doc.head.append(style);
}
