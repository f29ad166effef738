// The MCP Apps host bridge every view shares, spliced into each view at its include line when
// the server starts (src/mcp/apps.rs), so each view stays one self-contained document.
// It speaks JSON-RPC 2.0 over postMessage with the host window, and holds the page-building
// helpers and the drawing of each state that every view uses. Each view defines `TOOL`, `APP_INFO`
// and `view`: its state, with `waiting` (the sentence shown until the answer comes), `answer` (builds
// the page of a structured answer) and, where it draws more once that page is shown, `drawn`. It
// ends by calling `start()`.
const PROTOCOL_VERSION = "2026-01-26";
// --- the host bridge --------------------------------------------------------------------------
const waiting = new Map();
let lastId = 0;
const post = (message) => window.parent.postMessage({ jsonrpc: "2.0", ...message }, "*");
const notify = (method, params) => post({ method, params });
function request(method, params) {
  const id = ++lastId;
  post({ id, method, params });
  return new Promise((resolve, reject) => waiting.set(id, { resolve, reject }));
}
window.addEventListener("message", (event) => {
  if (event.source !== window.parent) return;
  const m = event.data;
  if (!m || typeof m !== "object" || m.jsonrpc !== "2.0") return;
  if (m.method === undefined) {
    const w = waiting.get(m.id);
    if (w) { waiting.delete(m.id); if (m.error) w.reject(m.error); else w.resolve(m.result); }
    return;
  }
  const params = m.params || {};
  switch (m.method) {
    case "ui/notifications/tool-result": view.result = params; view.cancelled = false; render(); break;
    case "ui/notifications/tool-cancelled": view.cancelled = true; render(); break;
    case "ui/notifications/host-context-changed": applyContext(params); render(); break;
    case "ui/resource-teardown": case "ping": post({ id: m.id, result: {} }); break;
    default:
      if (m.id !== undefined) post({ id: m.id, error: { code: -32601, message: `Method not found: ${m.method}` } });
  }
});
function applyContext(partial) {
  Object.assign(view.context, partial);
  const root = document.documentElement;
  const theme = view.context.theme;
  root.dataset.theme = theme === "dark" || theme === "light" ? theme
    : matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light";
  const vars = view.context.styles && view.context.styles.variables;
  for (const [name, value] of Object.entries(vars || {})) {
    if (name.startsWith("--") && typeof value === "string") root.style.setProperty(name, value);
  }
}
let lastSize = "";
function reportSize() {
  if (!view.ready) return;
  const height = Math.ceil(document.documentElement.getBoundingClientRect().height);
  const width = Math.ceil(window.innerWidth);
  if (`${width}x${height}` === lastSize) return;
  lastSize = `${width}x${height}`;
  notify("ui/notifications/size-changed", { width, height });
}

const isNum = (v) => typeof v === "number" && Number.isFinite(v);
const locale = () => view.context.locale || "en-US";
function numberFormat(options) {
  try { return new Intl.NumberFormat(locale(), options); } catch { return new Intl.NumberFormat("en-US", options); }
}
const count = (n) => numberFormat({ maximumFractionDigits: 0 }).format(n);

// --- building the page ------------------------------------------------------------------------
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null) continue;
    // Styles through the CSSOM, which a content security policy leaves alone.
    if (k === "style") node.style.cssText = v; else node.setAttribute(k, String(v));
  }
  node.append(...children.flat(Infinity).filter((c) => c !== undefined && c !== null && c !== false).map((c) => (c instanceof Node ? c : String(c))));
  return node;
}
function svg(tag, attrs, ...children) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
  node.append(...children);
  return node;
}
function textOf(result) {
  return (result.content || []).filter((c) => c && c.type === "text").map((c) => c.text).join("\n\n");
}
function statusBox(kind, ...lines) {
  return el("div", { class: `status ${kind}`, role: kind === "error" ? "alert" : "status" },
    kind === "pending" ? el("div", { class: "spin", "aria-hidden": "true" }) : null, el("div", null, ...lines));
}
function pending(s) {
  const where = s.status === "queued"
    ? `Queued behind Clari's limit on concurrent exports (position ${s.position ?? "?"}${s.waiting_for_job_id ? `, after job ${s.waiting_for_job_id}` : ""}).`
    : `Clari is running the export${s.job_id ? ` (job ${s.job_id})` : ""}.`;
  const again = isNum(s.retry_after_seconds)
    ? `Call ${TOOL} again with the same arguments in about ${s.retry_after_seconds} s.`
    : `Call ${TOOL} again with the same arguments shortly.`;
  return statusBox("pending", el("p", null, el("strong", null, "Clari is preparing this export…")),
    el("p", { class: "sub" }, where), el("p", { class: "sub" }, again));
}

// --- drawing ----------------------------------------------------------------------------------
// Draws the state the call is in: cancelled, waiting, failed, answered in text only, an export still
// pending, or ready: the view's `answer` of the structured answer, then its `drawn` where it has one.
function render() {
  const app = document.getElementById("app");
  const r = view.result;
  let state;
  let content;
  if (view.cancelled) {
    state = "cancelled"; content = statusBox("", el("p", null, "The call was cancelled."));
  } else if (!r) {
    state = "waiting"; content = statusBox("pending", el("p", null, view.waiting));
  } else if (r.isError) {
    state = "error"; content = statusBox("error", el("pre", null, textOf(r) || "The tool reported an error."));
  } else if (!r.structuredContent || typeof r.structuredContent !== "object") {
    state = "text"; content = statusBox("", el("pre", null, textOf(r)));
  } else if (["queued", "running"].includes(r.structuredContent.status)) {
    state = "pending"; content = pending(r.structuredContent);
  } else {
    state = "ready"; content = view.answer(r.structuredContent);
  }
  document.body.dataset.state = state;
  app.replaceChildren(content);
  if (state === "ready" && view.drawn) view.drawn(r.structuredContent);
  reportSize();
}

// --- starting ---------------------------------------------------------------------------------
// Draws the waiting state, then introduces the view to its host (`ui/initialize`) and draws
// again in the host's context; a host that does not answer still gets a view that works.
function start() {
  applyContext({});
  render();
  request("ui/initialize", { protocolVersion: PROTOCOL_VERSION, appInfo: APP_INFO, appCapabilities: {} })
    .then((answer) => {
      applyContext((answer && answer.hostContext) || {});
      notify("ui/notifications/initialized", {});
      view.ready = true;
      render();
    })
    .catch(() => { view.ready = true; render(); });
}
