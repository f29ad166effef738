#!/usr/bin/env python3
"""Server CPU per request of a warm tool call: the server's user+system CPU time (from
/proc/PID/stat) over N sequential keep-alive calls, divided by N. The client's cost is not in it.

    cpu.py PID MCP_URL API_KEY [TOOL] [N]
"""
import http.client
import json
import os
import sys
import time
import urllib.parse

pid, url, key = int(sys.argv[1]), sys.argv[2], sys.argv[3]
tool = sys.argv[4] if len(sys.argv) > 4 else "get_forecast"
n = int(sys.argv[5]) if len(sys.argv) > 5 else 3000
u = urllib.parse.urlparse(url)
conn = http.client.HTTPConnection(u.hostname, u.port)
headers = {
    "Authorization": f"Bearer {key}",
    "Content-Type": "application/json",
    "Accept": "application/json, text/event-stream",
    "MCP-Protocol-Version": "2025-11-25",
}
body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                   "params": {"name": tool, "arguments": {"wait_seconds": 50}}})


def call():
    conn.request("POST", u.path, body=body, headers=headers)
    r = conn.getresponse()
    data = r.read()
    assert r.status == 200, (r.status, data[:200])
    return json.loads(data)


def cpu_seconds():
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


first = call()
assert first["result"].get("isError") is False, first
for _ in range(200):
    call()  # warm: the export is cached, connections and caches are hot
time.sleep(0.5)
c0, t0 = cpu_seconds(), time.perf_counter()
for _ in range(n):
    call()
time.sleep(0.5)  # let background work (the audit writer) finish and be counted
c1, t1 = cpu_seconds(), time.perf_counter()
print(f"{tool}: {n} calls, server CPU {(c1 - c0) / n * 1e6:.0f} µs per call, "
      f"p50-ish wall {(t1 - t0 - 0.5) / n * 1e3:.2f} ms per call (client included)")
