#!/usr/bin/env bash
# The official MCP SDK clients against a live `clari-mcp demo`: the TypeScript SDK (pinned by
# tests/sdk/ts/package-lock.json, run on Node 22 from npx) and the Python SDK (pinned by
# tests/sdk/py/requirements.txt, in a virtual environment). Both validate every tool result against
# its output schema, as the hosts built on them do; and the MCP Inspector's command-line client
# (pinned by tests/sdk/inspector/package-lock.json). Fails on any exception or schema warning.
set -euo pipefail
cd "$(dirname "$0")/../.."
SDK_DIR="$PWD/tests/sdk"

. tests/demo.sh
start_demo CLARI_MCP_EXPORT_POLL_MS=200
export MCP_URL="$(cred mcp_url)" API_KEY="$(cred api_key)" SANDBOX_URL="$(cred sandbox_url)"

status=0
echo "== official TypeScript SDK client (@modelcontextprotocol/sdk, Node 22)"
(cd "$SDK_DIR/ts" && npm ci --silent --no-audit --no-fund >/dev/null)
if ! (cd "$SDK_DIR/ts" && npx -y -p node@22 -- node client.mjs) >"$WORK/ts.out" 2>"$WORK/ts.err"; then
  status=1
fi
cat "$WORK/ts.out"
if grep -qi 'unknown format' "$WORK/ts.err"; then
  echo "FAIL the TypeScript SDK warned about schema formats:"; grep -i 'unknown format' "$WORK/ts.err" | head -5
  status=1
fi
if [ "$status" -ne 0 ]; then grep -v "npm warn" "$WORK/ts.err" | tail -20; fi

echo "== official Python SDK client (mcp)"
if [ ! -x "$SDK_DIR/py/.venv/bin/python" ]; then python3 -m venv "$SDK_DIR/py/.venv"; fi
"$SDK_DIR/py/.venv/bin/pip" install --quiet --disable-pip-version-check -r "$SDK_DIR/py/requirements.txt"
if ! "$SDK_DIR/py/.venv/bin/python" "$SDK_DIR/py/client.py" 2>"$WORK/py.err"; then
  status=1
  tail -20 "$WORK/py.err"
fi

echo "== MCP Inspector command-line client (@modelcontextprotocol/inspector, Node 22)"
(cd "$SDK_DIR/inspector" && npx -y -p node@22 -- npm ci --silent --no-audit --no-fund >/dev/null)
if ! python3 "$SDK_DIR/inspector/check.py"; then
  status=1
fi

if [ "$status" -ne 0 ]; then
  echo "server log (last lines):"; tail -20 "$WORK/server.log"
  echo "SDK clients: FAILED"; exit 1
fi
echo "SDK clients: passed"
