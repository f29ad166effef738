#!/usr/bin/env bash
# Checks the image itself, not the script that built it: its configuration (user, entrypoint,
# command, port, volume, health check, labels), then its root filesystem unpacked from the OCI
# archive, run as the image would run it: `clari-mcp --version`, then `serve` on SQLite answering
# /healthz, /readyz and the MCP discovery documents, its own health check, and a clean exit on
# SIGTERM. Usage: deploy/check-image.sh IMAGE OCI_ARCHIVE
set -euo pipefail
cd "$(dirname "$0")/.."
IMAGE="$1"
ARCHIVE="$2"
export STORAGE_DRIVER=vfs BUILDAH_ISOLATION=chroot
VERSION="$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)"
WORK="$(mktemp -d)"
PID=""
cleanup() { if [ -n "$PID" ]; then kill "$PID" 2>/dev/null || true; fi; rm -rf "$WORK"; }
trap cleanup EXIT
ok() { echo "  ok   $*"; }

buildah inspect --type image "$IMAGE" > "$WORK/inspect.json"
python3 - "$WORK/inspect.json" "$VERSION" <<'PY'
import json, sys
info = json.load(open(sys.argv[1]))
version = sys.argv[2]
c = info["Docker"]["config"]
def expect(what, got, want):
    assert got == want, f"{what}: {got!r}, expected {want!r}"
expect("user", c.get("User"), "10001:10001")
expect("entrypoint", c.get("Entrypoint"), ["/usr/local/bin/clari-mcp"])
expect("command", c.get("Cmd"), ["serve"])
expect("exposed ports", sorted((c.get("ExposedPorts") or {}).keys()), ["8080/tcp"])
expect("volumes", sorted((c.get("Volumes") or {}).keys()), ["/data"])
expect("health check", (c.get("Healthcheck") or {}).get("Test"), ["CMD", "/usr/local/bin/clari-mcp", "healthcheck"])
labels = c.get("Labels") or {}
expect("version label", labels.get("org.opencontainers.image.version"), version)
assert labels.get("org.opencontainers.image.source", "").startswith("https://"), labels
assert len(labels.get("org.opencontainers.image.revision", "")) >= 7, labels
env = dict(e.split("=", 1) for e in c.get("Env") or [])
expect("data directory", env.get("CLARI_MCP_DATA_DIR"), "/data")
print("  ok   config: user 10001:10001, entrypoint clari-mcp, cmd serve, 8080/tcp, /data, health check, labels " + version)
PY

# The root filesystem, layer by layer, from the OCI archive (as a runtime would unpack it).
mkdir -p "$WORK/oci" "$WORK/rootfs"
tar -xf "$ARCHIVE" -C "$WORK/oci"
python3 - "$WORK/oci" "$WORK/rootfs" <<'PY'
import json, sys, tarfile
from pathlib import Path
oci, root = Path(sys.argv[1]), Path(sys.argv[2])
blob = lambda d: oci / "blobs" / d.replace(":", "/", 1)
index = json.loads((oci / "index.json").read_text())
manifest = json.loads(blob(index["manifests"][0]["digest"]).read_text())
for layer in manifest["layers"]:
    with tarfile.open(blob(layer["digest"])) as t:
        t.extractall(root, numeric_owner=True, filter="tar")
size = sum(f.stat().st_size for f in root.rglob("*") if f.is_file())
print(f"  ok   unpacked {len(manifest['layers'])} layer(s), {size / 1e6:.1f} MB")
PY
ROOT="$WORK/rootfs"
for shell in bin/sh bin/bash usr/bin/sh; do
  [ ! -e "$ROOT/$shell" ] || { echo "FAIL the image holds a shell: /$shell"; exit 1; }
done
ok "no shell in the image"
[ "$(stat -c %u "$ROOT/data")" = "10001" ] || { echo "FAIL /data is not owned by 10001"; exit 1; }

run() {
  env -i SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt CLARI_MCP_DATA_DIR=/data "$@"
}
IN_IMAGE=("$(command -v chroot)" --userspec=10001:10001 "$ROOT" /usr/local/bin/clari-mcp)
got="$(run "${IN_IMAGE[@]}" --version)"
[ "$got" = "clari-mcp $VERSION" ] || { echo "FAIL --version said: $got"; exit 1; }
ok "clari-mcp --version: $got"

PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
BASE="http://127.0.0.1:$PORT"
# Started directly (env and chroot exec into the server), so $! is the server's own pid.
env -i SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt CLARI_MCP_DATA_DIR=/data \
  CLARI_MCP_BIND="127.0.0.1:$PORT" CLARI_MCP_PUBLIC_URL="$BASE" CLARI_MCP_LOG_FORMAT=json \
  "${IN_IMAGE[@]}" serve >"$WORK/serve.log" 2>&1 &
PID=$!
for _ in $(seq 1 100); do curl -fs "$BASE/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
curl -fs "$BASE/healthz" >/dev/null || { cat "$WORK/serve.log"; echo "FAIL serve did not answer"; exit 1; }
ok "serve answers /healthz on SQLite in /data"
[ "$(curl -fs "$BASE/readyz")" = "ready" ] || { echo "FAIL /readyz"; exit 1; }
ok "/readyz: the database answers"
prm="$(curl -fs "$BASE/.well-known/oauth-protected-resource/mcp")"
python3 -c 'import json,sys; d=json.loads(sys.argv[1]); assert d["resource"]==sys.argv[2]+"/mcp", d; assert d["authorization_servers"]==[sys.argv[2]], d' "$prm" "$BASE"
asm="$(curl -fs "$BASE/.well-known/oauth-authorization-server")"
python3 -c 'import json,sys; d=json.loads(sys.argv[1]); assert d["issuer"]==sys.argv[2], d; assert "S256" in d["code_challenge_methods_supported"], d' "$asm" "$BASE"
ok "discovery: RFC 9728 protected resource and RFC 8414 authorization server metadata"
run CLARI_MCP_BIND="127.0.0.1:$PORT" "${IN_IMAGE[@]}" healthcheck >/dev/null
ok "the image's HEALTHCHECK command passes against the running server"
[ -f "$ROOT/data/clari-mcp.db" ] || { echo "FAIL no database in /data"; exit 1; }
kill -TERM "$PID"
status=0
wait "$PID" || status=$?
PID=""
[ "$status" = "0" ] || { cat "$WORK/serve.log"; echo "FAIL serve exited $status on SIGTERM"; exit 1; }
grep -q '"shutting down"' "$WORK/serve.log" || { cat "$WORK/serve.log"; echo "FAIL no shutdown in the log"; exit 1; }
ok "SIGTERM: stopped accepting, drained and exited 0"
if run CLARI_MCP_BIND="127.0.0.1:$PORT" "${IN_IMAGE[@]}" healthcheck >/dev/null 2>&1; then
  echo "FAIL the health check passes with no server"; exit 1
fi
ok "the health check fails once the server is gone"

# Running it under a container runtime as well, where this machine allows it.
if command -v podman >/dev/null 2>&1; then
  P=(podman --storage-driver vfs --cgroup-manager cgroupfs)
  if "${P[@]}" load -q -i "$ARCHIVE" >"$WORK/podman.out" 2>&1 \
    && "${P[@]}" run --rm --network none "clari-mcp:$VERSION" --version >"$WORK/podman.out" 2>&1; then
    ok "podman run: $(cat "$WORK/podman.out")"
  else
    echo "  note podman cannot run containers on this machine: $(tail -1 "$WORK/podman.out" 2>/dev/null)"
  fi
else
  echo "  note podman is not installed here; the root filesystem was run with chroot instead"
fi
echo "image: passed"
