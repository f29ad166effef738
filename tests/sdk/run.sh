#!/usr/bin/env bash
# The official MCP SDK clients against a live `clari-mcp demo`: the TypeScript SDK (pinned by
# tests/sdk/ts/package-lock.json, run on Node 22 from npx) and the Python SDK (pinned by
# tests/sdk/py/requirements.txt, in a virtual environment). Both validate every tool result against
# its output schema, as the hosts built on them do; and the MCP Inspector's command-line client
# (pinned by tests/sdk/inspector/package-lock.json). The two SDK clients then run again over stdio
# against `clari-mcp stdio`. Fails on any exception or schema warning.
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

# The same clients over stdio: each SDK starts `clari-mcp stdio` itself with the sandbox's Clari
# key (from the sandbox's own description) and a data directory of its own.
SANDBOX_ORIGIN="${SANDBOX_URL%/v4}"
export CLARI_API_KEY="$(curl -fs "$SANDBOX_ORIGIN/_sandbox/describe" | python3 -c 'import json, sys; print(json.load(sys.stdin)["orgs"][0]["api_key"])')"
export MCP_STDIO_COMMAND="$WORK/clari-mcp"

echo "== official TypeScript SDK client over stdio"
if ! (cd "$SDK_DIR/ts" && MCP_STDIO_DATA_DIR="$WORK/stdio-ts" npx -y -p node@22 -- node client.mjs) >"$WORK/ts-stdio.out" 2>"$WORK/ts-stdio.err"; then
  status=1
  grep -v "npm warn" "$WORK/ts-stdio.err" | tail -20
fi
cat "$WORK/ts-stdio.out"
if grep -qi 'unknown format' "$WORK/ts-stdio.err"; then
  echo "FAIL the TypeScript SDK warned about schema formats over stdio"; status=1
fi

echo "== official Python SDK client over stdio"
if ! MCP_STDIO_DATA_DIR="$WORK/stdio-py" "$SDK_DIR/py/.venv/bin/python" "$SDK_DIR/py/client.py" 2>"$WORK/py-stdio.err"; then
  status=1
  tail -20 "$WORK/py-stdio.err"
fi
unset MCP_STDIO_COMMAND

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
