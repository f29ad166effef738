"""clari-mcp's MCP Apps views in a real browser (Debian's Chromium, headless, driven by
Playwright), mounted by a test host page through the official host-side bridge (AppBridge from
@modelcontextprotocol/ext-apps, bundled into tests/apps/dist/host.js).

Against a live server (the default), for get_forecast, get_pipeline_changes and get_deal_risk:
tools/list names the view in _meta.ui.resourceUri; resources/read serves it as one
text/html;profile=mcp-app content with _meta.ui.csp; the tool is called for real and its answer
mounted in the view; the figures read back from the view's DOM equal structuredContent exactly.
With --fixtures no server is needed: the views come from src/mcp/apps/ and the answers from
tests/apps/fixtures/*.json. Either way each view also shows queued, running, error, text-only and
cancelled calls; follows the host's theme and style variables; answers ping and
resource-teardown; reports its real height; fits a phone's width; makes no network request and
names no external resource. Screenshots go to $SCREENSHOTS: app-forecast.png, app-pipeline.png,
app-risk.png, and each view's -dark, -phone and -queued forms.

Environment: MCP_URL and API_KEY (live mode), SCREENSHOTS (a folder).
"""
import datetime
import json
import os
import re
import sys
import urllib.error
import urllib.request
from pathlib import Path

from playwright.sync_api import sync_playwright

import checks

ROOT = Path(__file__).resolve().parents[2]
APPS = ROOT / "tests" / "apps"
MIME = "text/html;profile=mcp-app"
UI_EXTENSION = "io.modelcontextprotocol/ui"
HOST = "http://host.test"
# tool → (the view's URI, its source, the screenshot's name, the DOM check)
VIEWS = {
    "get_forecast": ("ui://clari-mcp/forecast-by-manager.html", "forecast.html", "forecast", checks.forecast),
    "get_pipeline_changes": ("ui://clari-mcp/pipeline-changes.html", "pipeline.html", "pipeline", checks.pipeline),
    "get_deal_risk": ("ui://clari-mcp/deal-risk.html", "risk.html", "risk", checks.risk),
}
FIXTURES = "--fixtures" in sys.argv[1:]
SHOTS = Path(os.environ.get("SCREENSHOTS") or ROOT / "target" / "screenshots")
SHOTS.mkdir(parents=True, exist_ok=True)


# Each view's title, as src/mcp/apps.rs names it.
TITLES = {"forecast.html": "Forecast by manager", "pipeline.html": "Pipeline changes",
          "risk.html": "Deal risk"}


def view_source(name):
    """A view as the server serves it: the shared document around its file's style and script,
    with the shared look and bridge spliced in."""
    src = ROOT / "src" / "mcp" / "apps"
    view = (src / name).read_text()
    style, script = view[:view.index("<script>")], view[view.index("<script>"):]
    page = ((src / "document.html").read_text()
            .replace("{name}", TITLES[name], 1)
            .replace("<!-- @include the view's style -->\n", style, 1)
            .replace("<!-- @include the view's script -->\n", script, 1))
    for line, part in (("/* @include view.css */\n", "view.css"), ("// @include bridge.js\n", "bridge.js")):
        assert page.count(line) == 1, f"{name} does not include {part} once"
        page = page.replace(line, (src / part).read_text(), 1)
    return page


def step(text):
    print(f"  - {text}", flush=True)


# --- the MCP client: JSON-RPC over HTTP, as tests/browser/drive.py calls /mcp -----------------


class Mcp:
    def __init__(self, url, key):
        self.url, self.key, self.version, self.session, self.next_id = url, key, None, None, 0

    def call(self, method, params=None, notification=False):
        body = {"jsonrpc": "2.0", "method": method, "params": params or {}}
        if not notification:
            self.next_id += 1
            body["id"] = self.next_id
        headers = {
            "Authorization": f"Bearer {self.key}",
            "Accept": "application/json, text/event-stream",
            "Content-Type": "application/json",
        }
        if self.version:
            headers["MCP-Protocol-Version"] = self.version
        if self.session:
            headers["Mcp-Session-Id"] = self.session
        req = urllib.request.Request(self.url, data=json.dumps(body).encode(), headers=headers, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=120) as r:
                self.session = r.headers.get("Mcp-Session-Id") or self.session
                raw, kind = r.read().decode(), r.headers.get("Content-Type", "")
        except urllib.error.HTTPError as e:
            raise AssertionError(f"{method}: HTTP {e.code}: {e.read()[:500]!r}") from None
        if notification:
            return None
        if kind.startswith("text/event-stream"):
            raw = [line[5:] for line in raw.splitlines() if line.startswith("data:")][-1]
        answer = json.loads(raw)
        assert "error" not in answer, f"{method}: {answer['error']}"
        return answer["result"]

    def initialize(self):
        result = self.call("initialize", {
            "protocolVersion": "2025-11-25",
            "capabilities": {"extensions": {UI_EXTENSION: {"mimeTypes": [MIME]}}},
            "clientInfo": {"name": "clari-mcp-apps-test", "version": "1.0.0"},
        })
        self.version = result["protocolVersion"]
        self.call("notifications/initialized", notification=True)
        return result

    def tool(self, name, arguments, until_ready=False):
        for _ in range(6):
            result = self.call("tools/call", {"name": name, "arguments": arguments})
            assert not result.get("isError"), f"{name}: {result}"
            sc = result.get("structuredContent") or {}
            if not until_ready or sc.get("status") == "ready":
                return result
            step(f"{name}: export {sc.get('status')}, calling again")
        raise AssertionError(f"{name} never became ready: {sc}")


def served_views(mcp):
    """The three views as the server declares and serves them: tool → (html, csp)."""
    tools = {t["name"]: t for t in mcp.call("tools/list")["tools"]}
    views = {}
    for name, (uri, source, _, _) in VIEWS.items():
        assert name in tools, f"{name} is not in tools/list"
        meta = tools[name].get("_meta") or {}
        assert (meta.get("ui") or {}).get("resourceUri") == uri, f"{name} _meta: {meta}"
        contents = mcp.call("resources/read", {"uri": uri})["contents"]
        assert len(contents) == 1, f"{uri}: {len(contents)} contents"
        c = contents[0]
        assert c.get("uri") == uri and c.get("mimeType") == MIME, f"{uri}: {c.get('uri')} {c.get('mimeType')}"
        csp = ((c.get("_meta") or {}).get("ui") or {}).get("csp")
        assert isinstance(csp, dict), f"{uri}: _meta.ui.csp is {csp!r}"
        assert not any(csp.get(k) for k in ("connectDomains", "resourceDomains", "frameDomains")), \
            f"{uri}: the view loads nothing, yet its csp allows {csp}"
        assert c["text"] == view_source(source), \
            f"{uri} is not src/mcp/apps/{source} with view.css and bridge.js spliced in"
        views[name] = (c["text"], csp)
        step(f"{name}: _meta.ui.resourceUri {uri}; resources/read gives {MIME}, csp {json.dumps(csp)}")
    return views


def live_answers(mcp):
    """Each tool called for real: tool → (arguments, CallToolResult)."""
    today = datetime.datetime.now(datetime.timezone.utc).date()
    forecast_args = {"wait_seconds": 50}
    pipeline_args = {"since": (today - datetime.timedelta(days=7)).isoformat(), "wait_seconds": 50}
    answers = {
        "get_forecast": (forecast_args, mcp.tool("get_forecast", forecast_args, until_ready=True)),
        "get_pipeline_changes": (pipeline_args, mcp.tool("get_pipeline_changes", pipeline_args, until_ready=True)),
    }
    ids = list(dict.fromkeys(c["opportunity_id"] for c in answers["get_pipeline_changes"][1]["structuredContent"]["changes"]))
    if len(ids) < 5:
        listed = mcp.tool("list_opportunities", {"wait_seconds": 50}, until_ready=True)["structuredContent"]
        ids += [o["opportunity_id"] for o in listed["opportunities"] if o["opportunity_id"] not in ids]
    risk_args = {"opportunity_ids": ids[:20]}
    answers["get_deal_risk"] = (risk_args, mcp.tool("get_deal_risk", risk_args))
    return answers


def fixture_answers():
    answers = {}
    for name, (_, _, short, _) in VIEWS.items():
        f = json.loads((APPS / "fixtures" / f"{short}.json").read_text())
        assert f["tool"] == name, f
        sc = f["structuredContent"]
        text = f"{f['summary']}\n{json.dumps(sc, indent=2)}"
        answers[name] = (f["arguments"], {"content": [{"type": "text", "text": text}], "structuredContent": sc})
    return answers


# --- the browser ------------------------------------------------------------------------------


def serve_host(route):
    path = route.request.url[len(HOST):].split("?")[0]
    files = {"/host.html": ("text/html", "host.html"), "/dist/host.js": ("text/javascript", "dist/host.js")}
    if path not in files:
        return route.fulfill(status=404, body="")
    kind, name = files[path]
    return route.fulfill(status=200, content_type=kind, body=(APPS / name).read_bytes())


def no_external_references(html, name):
    """The view's source names nothing to load: no src/href, no url(), no @import, no fetch."""
    text = html.replace("http://www.w3.org/2000/svg", "")
    for pattern in (r"\b(?:src|href)\s*=", r"url\(", r"@import", r"https?://", r"\bfetch\(",
                    r"XMLHttpRequest", r"WebSocket", r"EventSource", r"\bimport\("):
        assert not re.search(pattern, text), f"{name}: the view's source has {pattern}"


def mount(context, html, args, result, csp=None, shot=None, dark_shot=None, **options):
    """Mounts one view in a fresh host page; returns (page, frame) once its state is shown and
    the size it reported is its real size. options go to mountView (width, hostContext)."""
    page = context.new_page()
    page.goto(f"{HOST}/host.html")
    page.wait_for_function("() => typeof window.mountView === 'function'")
    log = page.evaluate("([h, a, r, o]) => window.mountView(h, a, r, o)", [html, args, result, {"csp": csp, **options}])
    assert log["initialized"] and log["appInfo"], log
    frame = page.main_frame.child_frames[0]
    # Predicates as functions: the view's policy forbids eval, which an expression string needs.
    frame.wait_for_function("() => document.body.dataset.state !== 'waiting'")
    page.wait_for_function(
        """() => { const f = document.querySelector('iframe'); const s = window.viewLog.sizes.at(-1);
                   return s && Math.abs(f.getBoundingClientRect().height - s.height - 2) < 1; }""")
    real = frame.evaluate("Math.ceil(document.documentElement.getBoundingClientRect().height)")
    assert page.evaluate("window.viewLog.sizes.at(-1).height") == real, "the reported height is not the view's"
    refs = frame.evaluate("""[...document.querySelectorAll('*')].flatMap(e =>
        ['src', 'href', 'xlink:href', 'srcset', 'action'].filter(a => e.hasAttribute(a)).map(a => e.tagName + ' ' + a))""")
    assert refs == [], f"the view's document references {refs}"
    assert frame.evaluate("document.querySelectorAll('link, img, iframe, object, embed, script[src]').length") == 0
    # The whole view in the viewport: Chromium paints a frame only where the viewport can show it.
    tall = page.evaluate("Math.ceil(document.documentElement.getBoundingClientRect().height)")
    page.set_viewport_size({"width": page.viewport_size["width"], "height": max(600, tall)})
    if shot:
        page.locator("iframe").screenshot(path=SHOTS / shot)
    if dark_shot:
        page.evaluate("window.changeHostContext({theme: 'dark'})")
        frame.wait_for_function("() => document.documentElement.dataset.theme === 'dark'")
        dark = frame.evaluate("getComputedStyle(document.body).backgroundColor")
        assert dark not in ("rgb(255, 255, 255)", "rgba(0, 0, 0, 0)"), f"the dark theme's background is {dark}"
        page.wait_for_timeout(100)
        page.locator("iframe").screenshot(path=SHOTS / dark_shot)
    return page, frame


def host_styles_and_phone(context, html, args, result, name):
    """The host's style variables win over the view's own colours; on a phone's width the view
    does not scroll sideways (wide tables scroll inside it); ping is answered."""
    styles = {"variables": {"--color-background-primary": "rgb(253, 246, 227)",
                            "--color-text-primary": "rgb(88, 110, 117)"}}
    page, frame = mount(context, html, args, result, hostContext={"styles": styles})
    got = frame.evaluate("[getComputedStyle(document.body).backgroundColor, getComputedStyle(document.body).color]")
    assert got == ["rgb(253, 246, 227)", "rgb(88, 110, 117)"], f"{name} ignores the host's style variables: {got}"
    assert page.evaluate("window.pingView()") == {}, "ping was not answered"
    page.close()
    page, frame = mount(context, html, args, result, shot=f"app-{VIEWS[name][2]}-phone.png", width=390)
    wide = frame.evaluate("[document.documentElement.scrollWidth, document.documentElement.clientWidth]")
    assert wide[0] <= wide[1], f"{name} scrolls sideways at 390 px: {wide}"
    page.close()


def other_states(context, html, name):
    """Queued, running, error, text-only and cancelled answers each show what they should."""
    queued = {"status": "queued", "position": 2, "retry_after_seconds": 30}
    cases = [
        ({"content": [{"type": "text", "text": "This export is queued."}], "structuredContent": queued},
         "pending", ["Clari is preparing this export…", "position 2", "about 30 s", name]),
        ({"content": [{"type": "text", "text": "Still preparing."}],
          "structuredContent": {"status": "running", "job_id": "job-123", "retry_after_seconds": 10}},
         "pending", ["Clari is preparing this export…", "job-123", "about 10 s"]),
        ({"content": [{"type": "text", "text": "Clari answered 503 <mark>Service Unavailable</mark>; try again later."}],
          "isError": True}, "error", ["Clari answered 503 <mark>Service Unavailable</mark>; try again later."]),
        ({"content": [{"type": "text", "text": "Only text: 3 rows.\n{\"rows\": 3}"}]}, "text", ["Only text: 3 rows."]),
        (None, "cancelled", ["cancelled"]),
    ]
    for i, (result, state, wanted) in enumerate(cases):
        shot = f"app-{VIEWS[name][2]}-queued.png" if i == 0 else None
        page, frame = mount(context, html, {}, result, shot=shot, **({"cancelReason": "user"} if result is None else {}))
        assert frame.evaluate("document.body.dataset.state") == state, (name, state)
        shown = frame.evaluate("document.body.innerText")
        for w in wanted:
            assert w in shown, f"{name} {state}: {w!r} not in {shown!r}"
        assert frame.evaluate("document.querySelectorAll('mark').length") == 0, "text was read as HTML"
        page.close()


def check_views(views, answers):
    """Mounts each view with its answer and checks it; returns the failures."""
    failures = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True,
                                    args=["--no-sandbox", "--disable-dev-shm-usage"])
        context = browser.new_context(viewport={"width": 820, "height": 900}, device_scale_factor=1)
        context.set_default_timeout(20000)
        context.route(f"{HOST}/**", serve_host)
        requests, console = [], []
        context.on("request", lambda r: requests.append((r.url, r.frame.parent_frame is None)))
        context.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
        for name, (_, _, short, check) in VIEWS.items():
            html, csp = views[name]
            args, result = answers[name]
            try:
                no_external_references(html, name)
                page, frame = mount(context, html, args, result, csp, f"app-{short}.png", f"app-{short}-dark.png")
                assert frame.evaluate("document.body.dataset.state") == "ready", \
                    frame.evaluate("document.body.innerText")
                step(f"{name}: {check(frame, result['structuredContent'])}")
                assert page.evaluate("window.teardownView()") == {}, "resource-teardown was not answered"
                page.close()
                host_styles_and_phone(context, html, args, result, name)
                other_states(context, html, name)
                step(f"{name}: dark theme and host style variables followed, ping and teardown answered, "
                     "no sideways scroll at 390 px; queued, running, error, text-only and cancelled calls shown")
            except Exception as e:  # an assertion, or Playwright giving up
                failures.append(f"{name}: {e}")
                print(f"FAIL {name}: {e}", flush=True)
        foreign = [u for u, top in requests if not (top and u.startswith(f"{HOST}/"))]
        if foreign:
            failures.append(f"requests besides the host page's own: {foreign}")
        blocked = [m for m in console if "Content Security Policy" in m or m.startswith("error")]
        if blocked:
            failures.append(f"console errors: {blocked}")
        else:
            step(f"no request left the host page ({len(requests)} requests, all its own); no console error")
        browser.close()
    return failures


def main():
    if FIXTURES:
        step("fixtures: views from src/mcp/apps/, answers from tests/apps/fixtures/")
        views = {n: (view_source(v[1]), None) for n, v in VIEWS.items()}
        answers = fixture_answers()
    else:
        mcp = Mcp(os.environ["MCP_URL"], os.environ["API_KEY"])
        try:
            init = mcp.initialize()
            step(f"initialize: protocol {mcp.version}, server {init.get('serverInfo', {}).get('name')}")
            views = served_views(mcp)
            answers = live_answers(mcp)
        except AssertionError as e:
            print(f"FAIL the server: {e}")
            print(f"apps: 0 passed, {len(VIEWS)} failed")
            sys.exit(1)
    failures = check_views(views, answers)
    print(f"screenshots in {SHOTS}")
    print(f"apps: {len(VIEWS) - len([f for f in failures if f.split(':')[0] in VIEWS])} passed, {len(failures)} failed")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
