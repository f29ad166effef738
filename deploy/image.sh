#!/usr/bin/env bash
# Builds the clari-mcp image with Debian's buildah (pinned below, installed when missing), FROM
# scratch: the release binary, exactly the shared libraries it links (read from the binary by
# ldd), CA certificates and a passwd entry for uid 10001. Tags localhost/clari-mcp:<version> in
# buildah's local storage and writes an OCI archive to target/image/clari-mcp-<version>.oci.tar.
#   bash deploy/image.sh            # build
#   bash deploy/image.sh --check    # build, then check the image itself (deploy/check-image.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
. deploy/apt.sh
BUILDAH_DEB="1.28.2+ds1-3+deb12u1+b3"
# No overlay or user namespaces on these machines: the vfs driver and chroot isolation work
# everywhere (the image has no RUN step, so isolation only matters for the build's bookkeeping).
export STORAGE_DRIVER=vfs BUILDAH_ISOLATION=chroot

if ! buildah --version 2>/dev/null | grep -q "1.28.2"; then
  echo "installing buildah (Debian ${BUILDAH_DEB})"
  apt_install "buildah=${BUILDAH_DEB}"
fi

VERSION="$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)"
REVISION="$(git rev-parse HEAD 2>/dev/null || echo unknown)"
SOURCE="$(sed -n 's/^repository = "\(.*\)"/\1/p' Cargo.toml | head -1)"
IMAGE="localhost/clari-mcp:${VERSION}"

cargo build --release --locked --quiet --bin clari-mcp
BIN=target/release/clari-mcp

CONTEXT="$(mktemp -d)"
trap 'rm -rf "$CONTEXT"' EXIT
ROOT="$CONTEXT/rootfs"
mkdir -p "$ROOT/usr/local/bin" "$ROOT/etc/ssl/certs" "$ROOT/tmp" "$CONTEXT/data"
install -m 0755 "$BIN" "$ROOT/usr/local/bin/clari-mcp"
strip "$ROOT/usr/local/bin/clari-mcp"
# Every library the binary loads, and the dynamic loader, at the same paths as on the build host.
ldd "$BIN" | awk '/=> \//{print $3} /^\s*\/.*ld-linux/{print $1}' | sort -u | while read -r lib; do
  mkdir -p "$ROOT$(dirname "$lib")"
  cp -L "$lib" "$ROOT$lib"
done
cp -L /etc/ssl/certs/ca-certificates.crt "$ROOT/etc/ssl/certs/ca-certificates.crt"
printf 'root:x:0:0:root:/:/nonexistent\nclari-mcp:x:10001:10001:clari-mcp:/data:/nonexistent\n' > "$ROOT/etc/passwd"
printf 'root:x:0:\nclari-mcp:x:10001:\n' > "$ROOT/etc/group"
chmod 1777 "$ROOT/tmp"
cp Containerfile "$CONTEXT/Containerfile"

buildah bud --quiet --format docker --layers=false \
  --build-arg VERSION="$VERSION" --build-arg REVISION="$REVISION" --build-arg SOURCE="$SOURCE" \
  -t "$IMAGE" -f "$CONTEXT/Containerfile" "$CONTEXT" >/dev/null
mkdir -p target/image
ARCHIVE="target/image/clari-mcp-${VERSION}.oci.tar"
rm -f "$ARCHIVE"
buildah push --quiet "$IMAGE" "oci-archive:${ARCHIVE}:clari-mcp:${VERSION}" >/dev/null
echo "built $IMAGE ($(du -h "$ARCHIVE" | cut -f1) as $ARCHIVE)"

if [ "${1:-}" = "--check" ]; then
  bash deploy/check-image.sh "$IMAGE" "$ARCHIVE"
fi
