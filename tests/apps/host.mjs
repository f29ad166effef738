// The test host page's script: mounts one MCP Apps view in a sandboxed iframe and drives it with
// the official host-side bridge (AppBridge over PostMessageTransport from
// @modelcontextprotocol/ext-apps), as a chat client does. drive.py calls window.mountView.
import { AppBridge, PostMessageTransport } from "@modelcontextprotocol/ext-apps/app-bridge";

const HOST_INFO = { name: "clari-mcp-apps-test-host", version: "1.0.0" };
const WIDTH = 760;
let bridge = null;
let hostContext = {};

// The policy a host builds from the resource's _meta.ui.csp: nothing from the network unless the
// server names the origins.
function policy(csp) {
  csp = csp || {};
  const list = (domains, none) => (domains && domains.length ? domains.join(" ") : none);
  const resources = list(csp.resourceDomains, "");
  return [
    "default-src 'none'",
    `script-src 'unsafe-inline' ${resources}`.trim(),
    `style-src 'unsafe-inline' ${resources}`.trim(),
    `img-src data: ${resources}`.trim(),
    `font-src ${list(csp.resourceDomains, "'none'")}`,
    `media-src ${list(csp.resourceDomains, "'none'")}`,
    `connect-src ${list(csp.connectDomains, "'none'")}`,
    `frame-src ${list(csp.frameDomains, "'none'")}`,
    `base-uri ${list(csp.baseUriDomains, "'none'")}`,
    "form-action 'none'",
  ].join("; ");
}

function withPolicy(html, csp) {
  const meta = `<meta http-equiv="Content-Security-Policy" content="${policy(csp).replace(/"/g, "&quot;")}">`;
  const head = /<head[^>]*>/i.exec(html);
  if (!head) return meta + html;
  const at = head.index + head[0].length;
  return html.slice(0, at) + meta + html.slice(at);
}

// Mounts `html` with the tool's arguments and CallToolResult (or, with options.cancelReason, the
// call's cancellation). Resolves once that was sent and the view has reported a size; the
// returned log keeps every size the view reports.
window.mountView = async (html, toolArgs, toolResult, options = {}) => {
  if (bridge) await bridge.close();
  const slot = document.getElementById("slot");
  const iframe = document.createElement("iframe");
  iframe.setAttribute("sandbox", "allow-scripts");
  iframe.title = options.title || "MCP App";
  const width = options.width || WIDTH;
  iframe.style.width = `${width}px`;
  slot.replaceChildren(iframe);
  hostContext = {
    theme: "light",
    displayMode: "inline",
    availableDisplayModes: ["inline"],
    containerDimensions: { width, maxHeight: 6000 },
    locale: "en-US",
    timeZone: "UTC",
    platform: "web",
    ...options.hostContext,
  };
  const log = { sizes: [], initialized: false, appInfo: null, resultSent: false };
  window.viewLog = log;
  bridge = new AppBridge(null, HOST_INFO, { openLinks: {}, logging: {} }, { hostContext });
  let shown;
  const done = new Promise((resolve) => (shown = resolve));
  bridge.onsizechange = ({ width, height }) => {
    log.sizes.push({ width, height });
    if (height !== undefined) iframe.style.height = `${height}px`;
    if (log.resultSent) shown();
  };
  bridge.oninitialized = async () => {
    log.initialized = true;
    log.appInfo = bridge.getAppVersion() || null;
    await bridge.sendToolInput({ arguments: toolArgs });
    if (options.cancelReason) await bridge.sendToolCancelled({ reason: options.cancelReason });
    else await bridge.sendToolResult(toolResult);
    log.resultSent = true;
    if (log.sizes.length) shown();
  };
  await bridge.connect(new PostMessageTransport(iframe.contentWindow, iframe.contentWindow));
  iframe.srcdoc = withPolicy(html, options.csp);
  const timeout = new Promise((_, reject) =>
    setTimeout(() => reject(new Error(`no size from the view (${JSON.stringify(log)})`)), 15000));
  await Promise.race([done, timeout]);
  return log;
};

// What the host does when the user changes theme: the view gets host-context-changed.
window.changeHostContext = (partial) => {
  hostContext = { ...hostContext, ...partial };
  bridge.setHostContext(hostContext);
};

// The host tears the view down; resolves with the view's answer.
window.teardownView = () => bridge.teardownResource({});

// The host checks the view is alive; resolves with its answer.
window.pingView = () => bridge.request({ method: "ping", params: {} });
