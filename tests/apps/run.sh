#!/usr/bin/env bash
# clari-mcp's MCP Apps views (src/mcp/apps/*.html) in a real browser: Debian's Chromium (installed
# when missing), driven headless by Playwright (pinned in tests/browser/requirements.txt, in a
# virtual environment), each view mounted by a test host page through the official host-side
# bridge of @modelcontextprotocol/ext-apps (pinned by tests/apps/package-lock.json, bundled for the
# browser by esbuild on Node 22). Against a live `clari-mcp demo`; `run.sh --fixtures` starts no
# server and mounts the answers in tests/apps/fixtures/. Screenshots go to target/screenshots/ (or
# $SCREENSHOTS). Under CI=true a missing tool fails the run instead of skipping it.
set -euo pipefail
cd "$(dirname "$0")/../.."
DIR="$PWD/tests/apps"

missing() {
  if [ "${CI:-}" = "true" ]; then echo "$1 is missing and could not be installed"; exit 1; fi
  echo "SKIPPED: no $1"; exit 0
}
if ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
  echo "== installing Debian's chromium"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium) >/dev/null 2>&1 || true
fi
command -v chromium >/dev/null 2>&1 || missing "chromium (Debian's chromium package)"
command -v npm >/dev/null 2>&1 || missing "npm"
if [ ! -x "$DIR/.venv/bin/python" ]; then python3 -m venv "$DIR/.venv"; fi
"$DIR/.venv/bin/pip" install --quiet --disable-pip-version-check -r "$PWD/tests/browser/requirements.txt"

echo "== the official host-side bridge, bundled for the browser (esbuild, Node 22)"
(cd "$DIR" && npm ci --silent --no-audit --no-fund >/dev/null)
(cd "$DIR" && npx -y -p node@22 -- node build.mjs)

export SCREENSHOTS="${SCREENSHOTS:-$PWD/target/screenshots}"
if [ "${1:-}" = "--fixtures" ]; then
  exec "$DIR/.venv/bin/python" "$DIR/drive.py" --fixtures
fi

. tests/demo.sh
start_demo CLARI_MCP_EXPORT_POLL_MS=200
export MCP_URL="$(cred mcp_url)" API_KEY="$(cred api_key)"
if ! "$DIR/.venv/bin/python" "$DIR/drive.py"; then
  echo "server log (last lines):"; tail -20 "$WORK/server.log"
  echo "MCP Apps views: FAILED"; exit 1
fi
