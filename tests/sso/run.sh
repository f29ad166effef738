#!/usr/bin/env bash
# Single sign-on in a real browser against a real OpenID provider: oidc-provider (pinned in
# tests/sso/idp/package-lock.json, run on Node 22 from npx) as the company IdP on loopback, a live
# `clari-mcp demo` whose organisation is connected to it, and Debian's Chromium driven by
# Playwright (tests/browser's pinned environment). Screenshots go to target/screenshots/.
set -euo pipefail
cd "$(dirname "$0")/../.."
DIR="$PWD/tests/sso"
BROWSER_DIR="$PWD/tests/browser"

if ! command -v chromium >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium) >/dev/null 2>&1 || true
  fi
fi
if ! command -v chromium >/dev/null 2>&1; then
  if [ "${CI:-}" = "true" ]; then echo "chromium is missing and could not be installed"; exit 1; fi
  echo "SKIPPED: no chromium (install Debian's chromium package)"; exit 0
fi
if [ ! -x "$BROWSER_DIR/.venv/bin/python" ]; then python3 -m venv "$BROWSER_DIR/.venv"; fi
"$BROWSER_DIR/.venv/bin/pip" install --quiet --disable-pip-version-check -r "$BROWSER_DIR/requirements.txt"
(cd "$DIR/idp" && npm ci --silent --no-audit --no-fund >/dev/null)

. tests/demo.sh
start_demo CLARI_MCP_DANGER_SSO_ALLOW_LOOPBACK=true
ISSUER="$(cred issuer)"
IDP_PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
IDP_SECRET="$(python3 -c 'import secrets; print(secrets.token_urlsafe(24))')"
(cd "$DIR/idp" && exec npx -y -p node@22 -- node idp.mjs "$IDP_PORT" "$ISSUER/sso/callback" "$IDP_SECRET") >"$WORK/idp.log" 2>&1 &
IDP_PID=$!
trap 'kill "$IDP_PID" 2>/dev/null || true; if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; fi; rm -rf "$WORK"' EXIT
for _ in $(seq 1 300); do
  curl -fs "http://127.0.0.1:${IDP_PORT}/.well-known/openid-configuration" >/dev/null 2>&1 && break
  sleep 0.1
done
curl -fs "http://127.0.0.1:${IDP_PORT}/.well-known/openid-configuration" >/dev/null || { cat "$WORK/idp.log"; exit 1; }

cli() {
  CLARI_MCP_DATA_DIR="$WORK/data" CLARI_MCP_PUBLIC_URL="$ISSUER" CLARI_MCP_DANGER_SSO_ALLOW_LOOPBACK=true \
    RUST_LOG=error "$WORK/clari-mcp" "$@"
}
ORG="$(cli org list --json | python3 -c 'import json, sys; print(json.load(sys.stdin)[0]["id"])')"
echo "$IDP_SECRET" | cli org sso --org "$ORG" --issuer "http://127.0.0.1:${IDP_PORT}" \
  --client-id clari-mcp --domains sso-example.test --admin-group clari-admins --member-group clari-users

export ISSUER SCREENSHOTS="${SCREENSHOTS:-$PWD/target/screenshots}" IDP="http://127.0.0.1:${IDP_PORT}"
if ! "$BROWSER_DIR/.venv/bin/python" "$DIR/drive.py"; then
  echo "server log (last lines):"; tail -20 "$WORK/server.log"
  echo "IdP log (last lines):"; tail -20 "$WORK/idp.log"
  echo "single sign-on browser test: FAILED"; exit 1
fi
echo "single sign-on browser test: passed"
