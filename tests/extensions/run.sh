#!/usr/bin/env bash
# The MCP authorization extensions with the official TypeScript MCP client
# (@modelcontextprotocol/client, pinned by tests/extensions/package-lock.json, run on Node 22 from
# npx) against a live `clari-mcp demo`: client credentials with a secret and with private_key_jwt,
# DPoP-bound tokens, and an ID-JAG from a real OpenID provider (oidc-provider) the organisation
# trusts. See check.mjs.
set -euo pipefail
cd "$(dirname "$0")/../.."
DIR="$PWD/tests/extensions"

(cd "$DIR" && npx -y -p node@22 -- npm ci --silent --no-audit --no-fund >/dev/null)

. tests/demo.sh
start_demo CLARI_MCP_DANGER_SSO_ALLOW_LOOPBACK=true
ISSUER="$(cred issuer)"
ADMIN_KEY="$(CLARI_MCP_DATA_DIR="$WORK/data" CLARI_MCP_PUBLIC_URL="$ISSUER" RUST_LOG=error \
  "$WORK/clari-mcp" api-key create --email "$(cred email)" --scopes admin --name extensions 2>/dev/null)"
export ISSUER ADMIN_KEY MCP_URL="$(cred mcp_url)" EMAIL="$(cred email)"

if ! (cd "$DIR" && npx -y -p node@22 -- node check.mjs); then
  echo "server log (last lines):"; tail -20 "$WORK/server.log"
  echo "authorization extensions: FAILED"; exit 1
fi
echo "authorization extensions: passed"
