#!/usr/bin/env bash
# The benchmark (see bench/README.md): clari-mcp, the framework floors (bare axum, bare rmcp) and
# the official TypeScript and Python MCP SDKs, side by side on this machine, in one run.
#   bash bench/run.sh           # 3 runs of 5 s per case, median (the numbers to quote)
#   bash bench/run.sh --quick   # 1 short run per case on the debug build: checks that the
#                               # benchmark works (CI runs it); its figures are not for quoting
#   bash bench/run.sh --bounds [--quick]   # what floods make the server hold (bench/bounds.py)
#   bash bench/run.sh --scale [--quick]    # the scale model: 1,000 organisations on two PostgreSQL
#                               # replicas for five minutes (bench/scale.py; needs the URL below)
# Installs what it needs: wrk (Debian), the peers' pinned packages (npm lock file, PyPI pins)
# into bench/peers/ts/node_modules and target/bench/py, never into the repository.
# Set CLARI_MCP_TEST_POSTGRES_URL to add the PostgreSQL cases: warm calls on one replica and on
# two behind nginx (Debian's nginx-light, installed here), and the two-replica cold burst.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v wrk >/dev/null 2>&1; then
  echo "== installing wrk (Debian)"
  apt-get install -y -qq wrk >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
fi
if [ -n "${CLARI_MCP_TEST_POSTGRES_URL:-}" ] && ! command -v nginx >/dev/null 2>&1; then
  echo "== installing nginx-light (Debian): the round-robin proxy of the two-replica PostgreSQL case"
  apt-get install -y -qq nginx-light >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq nginx-light >/dev/null; }
fi
PROFILE=release
BOUNDS=
SCALE=
ARGS=()
for a in "$@"; do
  case "$a" in
    --quick) PROFILE=debug; ARGS+=("$a") ;;
    --bounds) BOUNDS=1 ;;
    --scale) SCALE=1 ;;
    *) ARGS+=("$a") ;;
  esac
done
if [ -n "$SCALE" ] && [ -z "${CLARI_MCP_TEST_POSTGRES_URL:-}" ]; then
  if [ "${CI:-}" = true ]; then
    echo "bench/run.sh --scale runs on PostgreSQL: set CLARI_MCP_TEST_POSTGRES_URL" >&2
    exit 2
  fi
  echo "== scale model skipped: it runs on PostgreSQL (set CLARI_MCP_TEST_POSTGRES_URL)"
  exit 0
fi
echo "== $PROFILE build (server and floors)"
if [ "$PROFILE" = release ]; then
  cargo build --quiet --release --bin clari-mcp --example floor --example hotpath --example scale
else
  cargo build --quiet --bin clari-mcp --example floor --example hotpath --example scale
fi
if [ -n "$SCALE" ]; then
  BENCH_PROFILE="$PROFILE" exec python3 bench/scale.py ${ARGS[@]+"${ARGS[@]}"}
fi
if [ -n "$BOUNDS" ]; then
  BENCH_PROFILE="$PROFILE" exec python3 bench/bounds.py ${ARGS[@]+"${ARGS[@]}"}
fi
echo "== peers: official TypeScript SDK (npm ci) and Python SDK (pip)"
(cd bench/peers/ts && npm ci --silent --no-audit --no-fund >/dev/null)
mkdir -p target/bench
[ -x target/bench/py/bin/python ] || python3 -m venv target/bench/py
target/bench/py/bin/pip install --quiet --disable-pip-version-check -r bench/peers/py/requirements.txt
BENCH_PROFILE="$PROFILE" python3 bench/bench.py ${ARGS[@]+"${ARGS[@]}"}
echo "== what the parts of a warm call cost alone (audit, metrics, redaction, credential)"
QUICK=
[ "$PROFILE" = debug ] && QUICK=--quick
taskset -c 0 "target/$PROFILE/examples/hotpath" target/bench/forecast-result.json $QUICK
