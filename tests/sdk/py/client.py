"""The official Python SDK client against a running clari-mcp.

Lists the tools and calls all 14, including a get_forecast whose export is still running and a
later call that returns ready. The SDK validates every structuredContent against the tool's
outputSchema and raises on a mismatch.

Over Streamable HTTP (MCP_URL and API_KEY), or, with MCP_STDIO_COMMAND set, over stdio: the SDK
starts `MCP_STDIO_COMMAND stdio --data-dir MCP_STDIO_DATA_DIR` with CLARI_API_KEY and the sandbox
as its Clari, as a local agent would.
"""

import asyncio
import datetime
import json
import os
import sys
import urllib.request

import httpx2
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client

SANDBOX_URL = os.environ["SANDBOX_URL"]
STDIO = os.environ.get("MCP_STDIO_COMMAND")
MODE = "stdio" if STDIO else "http"

passed = 0
failed = 0


def knobs(patch: dict) -> None:
    origin = SANDBOX_URL.split("/v4")[0]
    req = urllib.request.Request(
        f"{origin}/_sandbox/knobs",
        data=json.dumps(patch).encode(),
        method="PUT",
        headers={"content-type": "application/json"},
    )
    with urllib.request.urlopen(req) as r:
        assert r.status == 200, r.status


def day(offset: int) -> str:
    return (datetime.date.today() + datetime.timedelta(days=offset)).isoformat()


async def main() -> int:
    global passed, failed
    if STDIO:
        server = StdioServerParameters(
            command=STDIO,
            args=["stdio", "--data-dir", os.environ["MCP_STDIO_DATA_DIR"]],
            env={
                "CLARI_API_KEY": os.environ["CLARI_API_KEY"],
                "CLARI_MCP_CLARI_BASE_URL": SANDBOX_URL,
                "CLARI_MCP_EXPORT_POLL_MS": "200",
                "RUST_LOG": "warn",
            },
        )
    else:
        http = httpx2.AsyncClient(
            headers={"Authorization": f"Bearer {os.environ['API_KEY']}"}, timeout=90
        )
        server = streamable_http_client(os.environ["MCP_URL"], http_client=http)
    async with Client(server) as client:

        async def check(name, coro):
            global passed, failed
            try:
                await coro
                passed += 1
                print(f"ok   {name}")
            except Exception as e:  # noqa: BLE001 - every failure is reported by name
                failed += 1
                print(f"FAIL {name}: {type(e).__name__}: {e}")

        async def call(name, args):
            r = await client.call_tool(name, args)
            assert not r.is_error, f"{name} answered an error: {r.content}"
            assert r.structured_content is not None, f"{name}: no structuredContent"
            text = "\n".join(c.text for c in r.content if getattr(c, "text", None))
            assert json.loads(text.split("\n", 1)[1]) == r.structured_content, name
            return r.structured_content

        async def list_tools():
            tools = (await client.list_tools()).tools
            assert len(tools) == 14, len(tools)
            assert all(t.output_schema for t in tools)

        await check("list_tools", list_tools())

        knobs({"job_latency_ms": 4000})

        async def running():
            s = await call("get_forecast", {"time_period": prior_quarter(), "wait_seconds": 1})
            assert s["status"] in ("running", "queued"), s

        async def ready():
            s = await call("get_forecast", {"time_period": prior_quarter(), "wait_seconds": 30})
            assert s["status"] == "ready", s
            assert isinstance(s["total"]["commit"], (int, float)), s

        await check("get_forecast while the export is still running", running())
        await check("get_forecast again returns ready data", ready())
        knobs({"job_latency_ms": 300})

        found = {}

        async def plain(name, args):
            s = await call(name, args)
            if "status" in s:
                assert s["status"] == "ready", s
            if name == "list_opportunities":
                found["opp"] = s["opportunities"][0]["opportunity_id"]
            if name == "list_export_jobs":
                found["job"] = s["jobs"][0]["job_id"]

        for name, args in [
            ("list_forecast_submissions", {"since": day(-30), "wait_seconds": 30}),
            ("list_time_periods", {"wait_seconds": 30}),
            ("list_users", {"limit": 5, "wait_seconds": 30}),
            ("list_opportunities", {"wait_seconds": 30}),
            ("list_accounts", {"wait_seconds": 30}),
            ("get_pipeline_changes", {"since": day(-30), "changes": ["close_date", "forecast"], "wait_seconds": 30}),
            ("search_deals", {"min_amount": 100000, "sort": "risk", "wait_seconds": 30}),
            ("list_audit_events", {"limit": 5}),
            ("list_export_jobs", {}),
            ("get_admin_limits", {}),
        ]:
            await check(name, plain(name, args))

        async def deal_risk():
            s = await call("get_deal_risk", {"opportunity_ids": [found["opp"]], "include_closed": True})
            assert len(s["opportunities"]) == 1, s

        async def opportunity():
            s = await call("get_opportunity", {"opportunity_id": found["opp"]})
            assert s["opportunity_id"] == found["opp"], s

        async def export_job():
            s = await call("get_export_job", {"job_id": found["job"]})
            assert s["job"]["job_id"] == found["job"], s

        await check("get_deal_risk", deal_risk())
        await check("get_opportunity", opportunity())
        await check("get_export_job", export_job())
    print(f"python sdk ({MODE}): {passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


def prior_quarter() -> str:
    # Fiscal years start on 1 February (the sandbox's calendar); any quarter before this one.
    today = datetime.date.today()
    months = (today.month - 2) % 12
    fy = today.year if today.month >= 2 else today.year - 1
    q = months // 3 + 1
    return f"{fy - 1}_Q4" if q == 1 else f"{fy}_Q{q - 1}"


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
