#!/usr/bin/env bash
# A real browser against a live `clari-mcp demo`: Debian's Chromium (installed when missing),
# driven headless by Playwright (pinned in tests/browser/requirements.txt, in a virtual
# environment; it uses /usr/bin/chromium and downloads no browser). Screenshots of every page go
# to target/screenshots/ (or $SCREENSHOTS).
set -euo pipefail
cd "$(dirname "$0")/../.."
DIR="$PWD/tests/browser"

if ! command -v chromium >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1; then
    echo "== installing Debian's chromium"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium) >/dev/null 2>&1 || true
  fi
fi
if ! command -v chromium >/dev/null 2>&1; then
  if [ "${CI:-}" = "true" ]; then echo "chromium is missing and could not be installed"; exit 1; fi
  echo "SKIPPED: no chromium (install Debian's chromium package)"; exit 0
fi
if [ ! -x "$DIR/.venv/bin/python" ]; then python3 -m venv "$DIR/.venv"; fi
"$DIR/.venv/bin/pip" install --quiet --disable-pip-version-check -r "$DIR/requirements.txt"

. tests/demo.sh
start_demo

export ISSUER="$(cred issuer)" MCP_URL="$(cred mcp_url)" EMAIL="$(cred email)" PASSWORD="$(cred password)"
export SCREENSHOTS="${SCREENSHOTS:-$PWD/target/screenshots}"
if ! "$DIR/.venv/bin/python" "$DIR/drive.py"; then
  echo "server log (last lines):"; tail -20 "$WORK/server.log"
  echo "browser test: FAILED"; exit 1
fi
