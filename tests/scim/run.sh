#!/usr/bin/env bash
# scim2-tester (pinned in tests/scim/requirements.txt, in a virtual environment) against the SCIM
# service of a scratch organisation of a live `clari-mcp demo`, with a SCIM token made by the
# operator CLI. Any ERROR or CRITICAL check fails the run.
set -euo pipefail
cd "$(dirname "$0")/../.."
DIR="$PWD/tests/scim"

if [ ! -x "$DIR/.venv/bin/python" ]; then python3 -m venv "$DIR/.venv"; fi
"$DIR/.venv/bin/pip" install --quiet --disable-pip-version-check -r "$DIR/requirements.txt"

. tests/demo.sh
start_demo
ISSUER="$(cred issuer)"
cli() { CLARI_MCP_DATA_DIR="$WORK/data" CLARI_MCP_PUBLIC_URL="$ISSUER" RUST_LOG=error "$WORK/clari-mcp" "$@"; }
cli org create --name "SCIM Tester" >/dev/null
TOKEN="$(cli org scim-token --org "SCIM Tester" --name scim2-tester 2>/dev/null)"

if ! "$DIR/.venv/bin/python" "$DIR/check.py" "$ISSUER/scim/v2/scim-tester" "$TOKEN"; then
  echo "server log (last lines):"; tail -20 "$WORK/server.log"
  echo "scim2-tester: FAILED"; exit 1
fi
echo "scim2-tester: passed"
