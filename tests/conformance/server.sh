#!/usr/bin/env bash
# Runs the MCP conformance suite's server scenarios (2025-11-25 and 2026-07-28) against the
# conformance build of clari-mcp: the same /mcp transport settings, a fixed test identity instead of
# the bearer layer, and the suite's test_* fixtures, which exist only with --features conformance.
# Needs: cargo, curl, npx (Node 22 is fetched by npx from the npm registry).
set -euo pipefail
cd "$(dirname "$0")/../.."

CONFORMANCE_VERSION="${CONFORMANCE_VERSION:-0.2.0-alpha.12}"
CONF=(npx -y -p node@22 -p "@modelcontextprotocol/conformance@${CONFORMANCE_VERSION}" -- conformance)

cargo build --quiet --features conformance --bin clari-mcp
WORK="$(mktemp -d)"
# A copy, so later builds of the normal binary cannot touch the running one.
cp target/debug/clari-mcp "$WORK/clari-mcp-conformance"
SERVER_PID=""
cleanup() { [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
env -u CLARI_MCP_DATABASE_URL -u CLARI_MCP_PUBLIC_URL -u CLARI_MCP_VAULT_KEYS RUST_LOG=warn \
  "$WORK/clari-mcp-conformance" conformance-server --port "$PORT" >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:${PORT}/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
curl -fs "http://127.0.0.1:${PORT}/healthz" >/dev/null || { cat "$WORK/server.log"; exit 1; }

status=0
for version in 2025-11-25 2026-07-28; do
  echo "== conformance: server scenarios, ${version}"
  baseline=()
  [ -f "tests/conformance/expected-failures-${version}.yaml" ] && baseline=(--expected-failures "tests/conformance/expected-failures-${version}.yaml")
  if "${CONF[@]}" server --url "http://127.0.0.1:${PORT}/mcp" --spec-version "$version" \
       "${baseline[@]}" -o "$WORK/results-${version}" >"$WORK/run-${version}.log" 2>&1; then
    # Only the documented expected failures can be among the failures here.
    grep -E '^✗' "$WORK/run-${version}.log" | sed 's/^/  expected: /' || true
    grep -E '^Total' "$WORK/run-${version}.log" | sed -E "s/^Total: ([0-9]+) passed, ([0-9]+) failed/  ${version}: \1 checks passed; \2 expected failures (baseline)/" || true
  else
    grep -v 'npm warn' "$WORK/run-${version}.log" | tail -60
    status=1
  fi
done
# The Tasks extension (io.modelcontextprotocol/tasks) scenarios, by name: they belong to no
# protocol date. Those needing a tool that asks for input are in the tasks baseline.
echo "== conformance: Tasks extension scenarios"
for scenario in tasks-lifecycle tasks-capability-negotiation tasks-wire-fields \
    tasks-request-state-removal tasks-mrtr-input tasks-request-headers tasks-dispatch-and-envelope \
    tasks-status-notifications tasks-required-task-error tasks-mrtr-composition; do
  if "${CONF[@]}" server --url "http://127.0.0.1:${PORT}/mcp" --scenario "$scenario" \
       --expected-failures tests/conformance/expected-failures-tasks.yaml \
       -o "$WORK/results-${scenario}" >"$WORK/run-${scenario}.log" 2>&1; then
    echo "  ${scenario}: $(grep -E '^(Passed|Total)' "$WORK/run-${scenario}.log" | tail -1)"
  else
    grep -v 'npm warn' "$WORK/run-${scenario}.log" | tail -30
    status=1
  fi
done
if [ "$status" -ne 0 ]; then echo "conformance: server scenarios FAILED"; exit 1; fi
echo "conformance: server scenarios passed (expected failures: tests/conformance/expected-failures-*.yaml)"
