#!/usr/bin/env bash
# The alerting rules and the Grafana dashboard, checked offline with promtool (Debian's
# prometheus package, pinned below; installed when missing): the rules parse and every alert
# fires in alerts.test.yaml on the series that should raise it; every dashboard query parses;
# every metric either names is one the server serves.
set -euo pipefail
cd "$(dirname "$0")/../.."
. deploy/apt.sh
PROMETHEUS_DEB="2.42.0+ds-5+deb12u1"

if ! promtool --version 2>/dev/null | grep -q "${PROMETHEUS_DEB}"; then
  echo "installing promtool (Debian prometheus ${PROMETHEUS_DEB})"
  apt_install "prometheus=${PROMETHEUS_DEB}"
fi
promtool --version | head -1

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
promtool check rules deploy/prometheus/alerts.yaml
promtool test rules deploy/prometheus/alerts.test.yaml
python3 deploy/grafana/check.py "$WORK/dashboard-rules.yaml"
promtool check rules "$WORK/dashboard-rules.yaml"
echo "alerts and dashboard: passed"
