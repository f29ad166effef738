#!/usr/bin/env python3
"""Measures a running clari-mcp: tools/list latency (sequential and concurrent) and get_forecast
cold (first export through the sandbox) versus warm (served from the export cache).

    measure.py MCP_URL API_KEY
"""
import json
import statistics
import sys
import threading
import time
import urllib.request

URL, KEY = sys.argv[1], sys.argv[2]
HEADERS = {
    "Authorization": f"Bearer {KEY}",
    "Content-Type": "application/json",
    "Accept": "application/json, text/event-stream",
    "MCP-Protocol-Version": "2025-11-25",
}


def rpc(method, params):
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).encode()
    req = urllib.request.Request(URL, data=body, headers=HEADERS, method="POST")
    t = time.perf_counter()
    with urllib.request.urlopen(req, timeout=120) as r:
        out = json.loads(r.read())
    return (time.perf_counter() - t) * 1000, out


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def line(name, xs, wall=None):
    extra = f"  {len(xs) / wall:8.0f} req/s" if wall else ""
    print(f"{name:<34} n={len(xs):<5} p50={pct(xs, 50):7.2f} ms  p95={pct(xs, 95):7.2f} ms  p99={pct(xs, 99):7.2f} ms{extra}")


def main():
    rpc("tools/list", {})  # warm the connection path
    t0 = time.perf_counter()
    seq = [rpc("tools/list", {})[0] for _ in range(300)]
    line("tools/list, sequential", seq, time.perf_counter() - t0)

    results, lock = [], threading.Lock()

    def worker():
        mine = [rpc("tools/list", {})[0] for _ in range(100)]
        with lock:
            results.extend(mine)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    t0 = time.perf_counter()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    line("tools/list, 8 concurrent clients", results, time.perf_counter() - t0)

    args = {"name": "get_forecast", "arguments": {"time_period": None, "wait_seconds": 50}}
    args["arguments"].pop("time_period")
    cold, out = rpc("tools/call", args)
    status = out["result"]["structuredContent"]["status"]
    print(f"{'get_forecast, cold (Clari export)':<34} {cold:9.1f} ms  (status {status})")
    warm = [rpc("tools/call", args)[0] for _ in range(200)]
    line("get_forecast, warm (cache)", warm)
    print(f"{'warm speed-up (cold / warm p50)':<34} {cold / statistics.median(warm):9.0f}x")


if __name__ == "__main__":
    main()
