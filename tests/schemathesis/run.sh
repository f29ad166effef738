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

METRICS_TOKEN="$(python3 -c 'import secrets; print(secrets.token_urlsafe(24))')"
. tests/demo.sh
start_demo CLARI_MCP_METRICS_TOKEN="$METRICS_TOKEN" CLARI_MCP_DCR_RATE_LIMIT=100000
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
