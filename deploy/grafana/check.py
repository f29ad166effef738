"""Checks the dashboard and the alerting rules against the server's own metrics, offline.

Writes every dashboard query as a recording rule (for `promtool check rules`, which parses the
PromQL), and fails when a query or a rule names a metric the server does not register
(src/metrics.rs) or when an alert has no test that expects it to fire (alerts.test.yaml).
"""

import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "clari-mcp.json"
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yaml"
ALERT_TESTS = ROOT / "deploy" / "prometheus" / "alerts.test.yaml"


def registered():
    src = (ROOT / "src" / "metrics.rs").read_text()
    names = re.findall(r'r\.register\(\s*"([a-z_]+)"', src)
    assert names, "no metrics registered in src/metrics.rs"
    return {f"clari_mcp_{n}{s}" for n in names for s in ("", "_total", "_bucket", "_sum", "_count")}


def main(out: Path) -> int:
    known = registered()
    failures = []
    dash = json.loads(DASHBOARD.read_text())
    queries = []
    for panel in dash["panels"]:
        for t in panel.get("targets", []):
            queries.append((panel["id"], t["refId"], panel["title"], t["expr"]))
    assert queries, "the dashboard has no queries"
    rules = ["groups:", "  - name: dashboard", "    rules:"]
    for pid, ref, title, expr in queries:
        rules.append(f"      - record: dashboard:panel_{pid}_{ref}")
        rules.append("        expr: " + json.dumps(expr.replace("$__rate_interval", "5m")))
    out.write_text("\n".join(rules) + "\n")

    alerts = ALERTS.read_text()
    for where, text in [("dashboard", "\n".join(q[3] for q in queries)), ("alerts.yaml", alerts)]:
        for name in sorted(set(re.findall(r"\bclari_mcp_[a-z_]+", text))):
            if name not in known:
                failures.append(f"{where} names {name}, which the server does not serve")

    tests = ALERT_TESTS.read_text()
    for alert in re.findall(r"^\s*- alert: (\S+)", alerts, re.M):
        fires = re.search(
            rf"alertname: {alert}\n\s*exp_alerts:\n\s*- exp_labels", tests
        )
        if not fires:
            failures.append(f"alert {alert} has no test that expects it to fire")

    for f in failures:
        print("FAIL", f)
    print(f"dashboard: {len(queries)} queries in {len(dash['panels'])} panels; "
          f"alerts: {len(re.findall(r'- alert:', alerts))}, each tested")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
