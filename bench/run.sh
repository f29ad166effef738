#!/usr/bin/env bash
# Benchmark: starts `clari-mcp demo` (SQLite, in-process sandbox with its default 1.5 s export
# latency) on a free port and measures it with measure.py. Rerun any time:
#   bash bench/run.sh              # release build (the numbers to quote)
#   BENCH_PROFILE=debug bash bench/run.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PROFILE="${BENCH_PROFILE:-release}"
if [ "$PROFILE" = release ]; then cargo build --quiet --release --bin clari-mcp; else cargo build --quiet --bin clari-mcp; fi
BIN="target/${PROFILE}/clari-mcp"
WORK="$(mktemp -d)"
PID=""
cleanup() { [ -n "$PID" ] && kill "$PID" 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
env -u CLARI_MCP_DATABASE_URL -u CLARI_MCP_VAULT_KEYS RUST_LOG=warn "$BIN" demo --port "$PORT" --data-dir "$WORK/data" >"$WORK/demo.log" 2>&1 &
PID=$!
for _ in $(seq 1 100); do [ -f "$WORK/data/demo-credentials.json" ] && curl -fs "http://127.0.0.1:${PORT}/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
KEY="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["api_key"])' "$WORK/data/demo-credentials.json")"
echo "clari-mcp ${PROFILE} build, $(nproc) cores, SQLite, sandbox export latency 1.5 s"
python3 bench/measure.py "http://127.0.0.1:${PORT}/mcp" "$KEY"
