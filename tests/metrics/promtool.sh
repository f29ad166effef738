#!/usr/bin/env bash
# Starts `demo` with a metrics token, makes a few calls, and runs `promtool check metrics` on
# /metrics (Prometheus's own linter: names, types, help texts).
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --quiet --bin clari-mcp
WORK="$(mktemp -d)"
PID=""
cleanup() { [ -n "$PID" ] && kill "$PID" 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
TOKEN="metrics-$(python3 -c 'import secrets; print(secrets.token_hex(16))')"
env -u CLARI_MCP_DATABASE_URL -u CLARI_MCP_PUBLIC_URL -u CLARI_MCP_VAULT_KEYS RUST_LOG=warn \
  CLARI_MCP_METRICS_TOKEN="$TOKEN" \
  target/debug/clari-mcp demo --port "$PORT" --data-dir "$WORK/data" >"$WORK/server.log" 2>&1 &
PID=$!
for _ in $(seq 1 100); do [ -f "$WORK/data/demo-credentials.json" ] && curl -fs "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
KEY="$(python3 -c "import json; print(json.load(open('$WORK/data/demo-credentials.json'))['api_key'])")"
for tool in get_admin_limits list_export_jobs; do
  curl -fs "http://127.0.0.1:$PORT/mcp" -H "Authorization: Bearer $KEY" \
    -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream' \
    -H 'MCP-Protocol-Version: 2025-11-25' \
    -d "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"$tool\",\"arguments\":{}}}" >/dev/null
done
curl -fs "http://127.0.0.1:$PORT/metrics" -H "Authorization: Bearer $TOKEN" >"$WORK/metrics.txt"
promtool check metrics <"$WORK/metrics.txt"
echo "promtool: /metrics passes"
