"""The MCP Inspector's command-line client (pinned in package.json) against a live server: it
lists tools, resources and prompts and calls tools as people debugging a server do. Every answer
must parse and carry what the server promises. Environment: MCP_URL, API_KEY."""
import json
import os
import subprocess
import sys

URL, KEY = os.environ["MCP_URL"], os.environ["API_KEY"]
HERE = os.path.dirname(os.path.abspath(__file__))
failed = 0


def inspector(*args):
    cmd = ["npx", "-y", "-p", "node@22", "--", "node", "node_modules/.bin/mcp-inspector",
           "--cli", URL, "--transport", "http", "--header", f"Authorization: Bearer {KEY}", *args]
    out = subprocess.run(cmd, cwd=HERE, capture_output=True, text=True, timeout=120)
    if out.returncode != 0:
        raise AssertionError(f"exit {out.returncode}: {out.stderr.strip()[-400:]}")
    return json.loads(out.stdout)


def check(name, fn):
    global failed
    try:
        print(f"  ok   {name}: {fn()}", flush=True)
    except Exception as e:  # noqa: BLE001 - every failure is reported and counted
        failed += 1
        print(f"  FAIL {name}: {e}", flush=True)


def tools():
    listed = inspector("--method", "tools/list")["tools"]
    assert len(listed) == 14, len(listed)
    apps = [t["name"] for t in listed if t.get("_meta", {}).get("ui", {}).get("resourceUri")]
    assert sorted(apps) == ["get_deal_risk", "get_forecast", "get_pipeline_changes"], apps
    return f"{len(listed)} tools, {len(apps)} with an app view"


def resources():
    listed = inspector("--method", "resources/list")["resources"]
    views = [r["uri"] for r in listed if r["uri"].startswith("ui://")]
    assert len(views) == 3, listed
    read = inspector("--method", "resources/read", "--uri", views[0])["contents"][0]
    assert read["mimeType"] == "text/html;profile=mcp-app", read["mimeType"]
    return f"{len(listed)} resources; {views[0]} read as {read['mimeType']}"


def prompts():
    listed = inspector("--method", "prompts/list")["prompts"]
    assert listed, "no prompts"
    return f"{len(listed)} prompts"


def call(tool, *args):
    def run():
        r = inspector("--method", "tools/call", "--tool-name", tool, *args)
        assert r.get("isError") is not True, r["content"][0]["text"]
        status = r["structuredContent"].get("status", "ready")
        assert status == "ready", status
        return r["content"][0]["text"].splitlines()[0][:110]
    return run


check("tools/list", tools)
check("resources/list and read", resources)
check("prompts/list", prompts)
check("get_forecast", call("get_forecast", "--tool-arg", "wait_seconds=40"))
check("search_deals", call("search_deals", "--tool-arg", "min_amount=100000",
                           "--tool-arg", "sort=risk", "--tool-arg", "wait_seconds=40"))
check("get_pipeline_changes", call("get_pipeline_changes", "--tool-arg", 'changes=["close_date"]',
                                   "--tool-arg", "wait_seconds=40"))
sys.exit(1 if failed else 0)
