#!/usr/bin/env bash
# schemathesis (pinned in tests/schemathesis/requirements.txt, in a virtual environment) against
# the WHOLE openapi.yaml and a live `clari-mcp demo`, with an admin API key: all checks, all
# phases. Any failure fails the run. The document is first checked as OpenAPI 3.1.
set -euo pipefail
cd "$(dirname "$0")/../.."
DIR="$PWD/tests/schemathesis"

if [ ! -x "$DIR/.venv/bin/python" ]; then python3 -m venv "$DIR/.venv"; fi
"$DIR/.venv/bin/pip" install --quiet --disable-pip-version-check -r "$DIR/requirements.txt"
"$DIR/.venv/bin/python" tests/openapi_valid.py openapi.yaml

cargo build --quiet --bin clari-mcp
WORK="$(mktemp -d)"
cp target/debug/clari-mcp "$WORK/clari-mcp"
SERVER_PID=""
cleanup() { [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
METRICS_TOKEN="$(python3 -c 'import secrets; print(secrets.token_urlsafe(24))')"
env -u CLARI_MCP_DATABASE_URL -u CLARI_MCP_PUBLIC_URL -u CLARI_MCP_VAULT_KEYS RUST_LOG=warn \
  CLARI_MCP_METRICS_TOKEN="$METRICS_TOKEN" CLARI_MCP_DCR_RATE_LIMIT=100000 \
  "$WORK/clari-mcp" demo --port "$PORT" --data-dir "$WORK/data" >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 100); do [ -f "$WORK/data/demo-credentials.json" ] && curl -fs "http://127.0.0.1:${PORT}/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
curl -fs "http://127.0.0.1:${PORT}/healthz" >/dev/null || { cat "$WORK/server.log"; exit 1; }
cred() { python3 -c "import json; print(json.load(open('$WORK/data/demo-credentials.json'))['$1'])"; }
ISSUER="$(cred issuer)"
ADMIN_KEY="$(CLARI_MCP_DATA_DIR="$WORK/data" CLARI_MCP_PUBLIC_URL="$ISSUER" RUST_LOG=error \
  "$WORK/clari-mcp" api-key create --email "$(cred email)" --scopes admin --name schemathesis 2>/dev/null)"

cd "$DIR"
if ! "$DIR/.venv/bin/st" run "$OLDPWD/openapi.yaml" --url "$ISSUER" --checks all \
    --phases examples,coverage,fuzzing,stateful --seed "${ST_SEED:-1}" \
    -H "Authorization: Bearer $ADMIN_KEY" "$@"; then
  echo "server log (last lines):"; tail -20 "$WORK/server.log"
  echo "schemathesis: FAILED"; exit 1
fi
echo "schemathesis: passed"
