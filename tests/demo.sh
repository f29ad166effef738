# Sourced by the scripts that drive a live `clari-mcp demo` (tests/sdk, tests/browser,
# tests/schemathesis): `start_demo [NAME=VALUE ...]` builds the binary, starts the demo on a free
# port with a fresh data directory and the given extra settings, waits until it answers, and
# stops it on exit. Sets WORK, PORT and SERVER_PID; `cred KEY` reads demo-credentials.json.
# Run from the repository root.

start_demo() {
  cargo build --quiet --bin clari-mcp
  WORK="$(mktemp -d)"
  cp target/debug/clari-mcp "$WORK/clari-mcp"
  SERVER_PID=""
  trap 'if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; fi; rm -rf "$WORK"' EXIT
  PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
  env -u CLARI_MCP_DATABASE_URL -u CLARI_MCP_PUBLIC_URL -u CLARI_MCP_VAULT_KEYS RUST_LOG=warn "$@" \
    "$WORK/clari-mcp" demo --port "$PORT" --data-dir "$WORK/data" >"$WORK/server.log" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 1 100); do
    [ -f "$WORK/data/demo-credentials.json" ] && curl -fs "http://127.0.0.1:${PORT}/healthz" >/dev/null 2>&1 && break
    sleep 0.1
  done
  curl -fs "http://127.0.0.1:${PORT}/healthz" >/dev/null || { cat "$WORK/server.log"; exit 1; }
}

cred() { python3 -c "import json, sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])" "$WORK/data/demo-credentials.json" "$1"; }
