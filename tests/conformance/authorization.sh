#!/usr/bin/env bash
# Runs the MCP conformance suite's authorization-server scenarios against a freshly started
# clari-mcp (own data directory, own port), completing the browser step headlessly.
#   authorization-server-metadata-endpoint
#   authorization-code-grant   (run together; public client registered by DCR; sign-in and consent by
#                               drive_consent.py, which delivers the code to the harness's callback)
# Needs: cargo, python3, npx (Node 22 is fetched by npx from the npm registry).
set -euo pipefail
cd "$(dirname "$0")/../.."

CONFORMANCE_VERSION="${CONFORMANCE_VERSION:-0.2.0-alpha.12}"
CONF=(npx -y -p node@22 -p "@modelcontextprotocol/conformance@${CONFORMANCE_VERSION}" -- conformance)

cargo build --quiet --bin clari-mcp
BIN="$(pwd)/target/debug/clari-mcp"
WORK="$(mktemp -d)"
SERVER_PID=""
cleanup() { [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
PORT="$(free_port)"
CALLBACK_PORT="$(free_port)"
BASE="http://127.0.0.1:${PORT}"
EMAIL="conformance@example.com"
PASSWORD="conformance-password-1"

# A private environment: nothing from the caller's CLARI_MCP_* settings leaks in.
run() { env -u CLARI_MCP_DATABASE_URL -u CLARI_MCP_PUBLIC_URL -u CLARI_MCP_VAULT_KEYS \
        CLARI_MCP_DATA_DIR="$WORK/data" CLARI_MCP_BIND="127.0.0.1:${PORT}" RUST_LOG=warn "$BIN" "$@"; }
run org create --name Conformance >/dev/null
printf '%s' "$PASSWORD" | run user create --org Conformance --email "$EMAIL" >/dev/null
run serve >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 100); do curl -fs "$BASE/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
curl -fs "$BASE/healthz" >/dev/null || { cat "$WORK/server.log"; exit 1; }

# Both scenarios in one run: the code-grant scenario reads the metadata scenario's result.
echo "== conformance: authorization-server-metadata-endpoint + authorization-code-grant"
CLIENT_ID="$(curl -fs -X POST "$BASE/register" -H 'content-type: application/json' \
  -d "{\"client_name\":\"MCP conformance\",\"redirect_uris\":[\"http://127.0.0.1:${CALLBACK_PORT}/callback\"],\"token_endpoint_auth_method\":\"none\",\"grant_types\":[\"authorization_code\",\"refresh_token\"]}" \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["client_id"])')"
"${CONF[@]}" authorization --url "$BASE" \
  --client-id "$CLIENT_ID" --resource "$BASE/mcp" --port "$CALLBACK_PORT" >"$WORK/grant.log" 2>&1 &
CONF_PID=$!
AUTH_URL=""
for _ in $(seq 1 600); do
  AUTH_URL="$(grep -oE "^${BASE}/authorize\?[^ ]+" "$WORK/grant.log" | head -1 || true)"
  [ -n "$AUTH_URL" ] && break
  kill -0 "$CONF_PID" 2>/dev/null || break
  sleep 0.2
done
if [ -z "$AUTH_URL" ]; then grep -v 'npm warn' "$WORK/grant.log"; echo "the harness printed no authorization URL"; exit 1; fi
python3 tests/conformance/drive_consent.py "$AUTH_URL" "$EMAIL" "$PASSWORD"
status=0
wait "$CONF_PID" || status=$?
grep -v 'npm warn' "$WORK/grant.log"
if [ "$status" -ne 0 ] || grep -q 'FAILURE' "$WORK/grant.log" \
   || ! grep -q '✓ authorization-server-metadata-endpoint' "$WORK/grant.log" \
   || ! grep -q '✓ authorization-code-grant' "$WORK/grant.log"; then
  echo "conformance: authorization scenarios FAILED"
  exit 1
fi
echo "conformance: authorization scenarios passed"
