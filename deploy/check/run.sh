#!/usr/bin/env bash
# Validates the deployment files offline: deploy/k8s and deploy/compose.yaml with pinned
# validators from PyPI (in a virtual environment of their own), deploy/proxy/Caddyfile with
# `caddy validate` and deploy/proxy/nginx.conf with `nginx -t` (Debian's caddy and nginx-light,
# pinned, installed when missing; no service is started).
set -euo pipefail
cd "$(dirname "$0")/../.."
. deploy/apt.sh
CADDY_DEB="2.6.2-5"
NGINX_DEB="1.22.1-9+deb12u12"

VENV=deploy/check/.venv
if [ ! -x "$VENV/bin/python" ]; then python3 -m venv "$VENV"; fi
"$VENV/bin/pip" install --quiet --disable-pip-version-check -r deploy/check/requirements.txt
"$VENV/bin/python" deploy/check/manifests.py

if ! { caddy version 2>/dev/null | grep -q "^v\?2.6.2" && nginx -v 2>&1 | grep -q "nginx/1.22.1"; }; then
  echo "installing caddy ${CADDY_DEB} and nginx-light ${NGINX_DEB} (Debian)"
  apt_install "caddy=${CADDY_DEB}" "nginx-light=${NGINX_DEB}"
fi

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
if SITE_ADDRESS=localhost XDG_DATA_HOME="$WORK" XDG_CONFIG_HOME="$WORK" \
  caddy validate --config deploy/proxy/Caddyfile --adapter caddyfile >"$WORK/caddy.log" 2>&1; then
  echo "  ok   deploy/proxy/Caddyfile passes caddy validate ($(caddy version | cut -d' ' -f1))"
else
  cat "$WORK/caddy.log"; echo "  FAIL deploy/proxy/Caddyfile"; exit 1
fi

# nginx.conf as written, with the upstream names and certificate paths of this machine.
sed -e 's/clari-mcp-[ab]:8080/127.0.0.1:8080/' -e "s#/etc/ssl/clari-mcp#$WORK#" \
  deploy/proxy/nginx.conf > "$WORK/site.conf"
openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=localhost -days 1 \
  -keyout "$WORK/privkey.pem" -out "$WORK/fullchain.pem" 2>/dev/null
printf 'pid %s/nginx.pid;\nerror_log %s/error.log;\nevents {}\nhttp { access_log off; include %s/site.conf; }\n' \
  "$WORK" "$WORK" "$WORK" > "$WORK/nginx.conf"
if nginx -q -t -c "$WORK/nginx.conf" -p "$WORK" 2>"$WORK/nginx.log"; then
  echo "  ok   deploy/proxy/nginx.conf passes nginx -t ($(nginx -v 2>&1 | cut -d' ' -f3))"
else
  cat "$WORK/nginx.log"; echo "  FAIL deploy/proxy/nginx.conf"; exit 1
fi
echo "deployment files: passed"
