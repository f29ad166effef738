"""Runs scim2-tester against one organisation's SCIM service and fails on any error.

Usage: check.py BASE_URL TOKEN. Every check's outcome is printed; ERROR and CRITICAL fail the
run. SKIPPED is what the tester reports for features the service says it does not offer
(`POST /.search`, answered 501).
"""

import sys

from httpx2 import Client
from scim2_client.engines.httpx2 import SyncSCIMClient
from scim2_tester import Status, check_server


def main() -> int:
    base, token = sys.argv[1], sys.argv[2]
    http = Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=30)
    results = check_server(SyncSCIMClient(http), resource_types=["User"])
    failed = [r for r in results if r.status in (Status.ERROR, Status.CRITICAL)]
    for r in results:
        print(f"{r.status.name:10} {r.resource_type or '-':5} {r.title} {r.reason or ''}".rstrip())
    counts = {}
    for r in results:
        counts[r.status.name] = counts.get(r.status.name, 0) + 1
    print("scim2-tester:", ", ".join(f"{n} {k.lower()}" for k, n in sorted(counts.items())))
    if not results:
        print("scim2-tester ran no check")
        return 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
