"""The official Python MCP SDK serving the benchmark's get_forecast (bench/run.sh): MCPServer,
stateless Streamable HTTP with JSON responses on uvicorn, behind a bearer check of the API key
against the same SQLite file.

    python server.py PORT RESULT.json DATABASE.sqlite
"""
import hashlib
import json
import sqlite3
import sys

import uvicorn
from mcp.server.mcpserver import MCPServer
from mcp.types import CallToolResult, TextContent

port, result_file, db_file = int(sys.argv[1]), sys.argv[2], sys.argv[3]
result = json.load(open(result_file))
db = sqlite3.connect(f"file:{db_file}?mode=ro", uri=True, check_same_thread=False)

server = MCPServer("bench-peer-py")


@server.tool(description="Forecast")
def get_forecast() -> CallToolResult:
    return CallToolResult(
        content=[TextContent(type="text", text=result["content"][0]["text"])],
        structured_content=result["structuredContent"],
    )


mcp_app = server.streamable_http_app(json_response=True, stateless_http=True)


def authorized(scope) -> bool:
    for name, value in scope["headers"]:
        if name == b"authorization" and value.startswith(b"Bearer "):
            digest = hashlib.sha256(value[7:]).hexdigest()
            row = db.execute(
                "SELECT organization_id FROM api_keys WHERE key_hash = ? AND revoked_at IS NULL",
                (digest,),
            ).fetchone()
            return row is not None
    return False


async def app(scope, receive, send):
    if scope["type"] == "http" and not authorized(scope):
        await send({"type": "http.response.start", "status": 401,
                    "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": b'{"error":"invalid_token"}'})
        return
    await mcp_app(scope, receive, send)


uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
