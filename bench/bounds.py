"""What an outsider's flood makes clari-mcp hold: memory, rows, connections, Clari requests.

    bash bench/run.sh --bounds          # the release build; the figures README quotes
    bash bench/run.sh --bounds --quick  # the debug build, smaller floods (CI runs it)

Each measurement floods one running server from 127.0.0.1 with one low-privilege credential
(or none), then reads what the server holds from outside: peak RSS from /proc (VmHWM, reset
before each flood through /proc/PID/clear_refs), rows from the SQLite file, open sockets from
/proc/PID/fd, upstream requests from the sandbox's /_sandbox/stats. Every figure is checked
against the bound the README states; a bound that does not hold fails the run.
Results go to stdout and target/bench/bounds.json.
"""

import argparse
import concurrent.futures
import json
import os
import socket
import sqlite3
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench  # noqa: E402  (the shared helpers: servers, provisioning, OAuth)
from bench import OUT, BIN, cli, request, mcp_headers, call_body, free_port  # noqa: E402

MIB = 1024 * 1024
MAX_MCP_BODY = 64 * 1024
HEADER_TIMEOUT_S = 2
BODY_TIMEOUT_S = 3
PER_ADDRESS = 64


def hwm_mb(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise SystemExit("no VmHWM in /proc")


def reset_hwm(pid):
    # "5" resets the peak resident set size to the current one (Linux 4.0+).
    Path(f"/proc/{pid}/clear_refs").write_text("5")


def open_fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def rows(db, sql):
    c = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        return c.execute(sql).fetchone()[0] or 0
    finally:
        c.close()


def parallel(n, fn):
    # A quarter of the per-address connection limit: each worker opens a connection per
    # request, and the server may still hold a closed one for a moment on a busy machine.
    with concurrent.futures.ThreadPoolExecutor(min(n, PER_ADDRESS // 4)) as pool:
        return list(pool.map(fn, range(n)))


def raw_post(port, head, body, chunked=False):
    """Sends one request by hand (so a 4 MiB body can go out chunked); returns the status."""
    s = socket.create_connection(("127.0.0.1", port), timeout=60)
    try:
        if chunked:
            s.sendall(head.encode() + b"Transfer-Encoding: chunked\r\n\r\n")
            step = 256 * 1024
            for i in range(0, len(body), step):
                part = body[i:i + step]
                try:
                    s.sendall(f"{len(part):x}\r\n".encode() + part + b"\r\n")
                except OSError:
                    break  # the server answered and closed: what we want to see
            try:
                s.sendall(b"0\r\n\r\n")
            except OSError:
                pass
        else:
            s.sendall(head.encode() + f"Content-Length: {len(body)}\r\n\r\n".encode())
            try:
                s.sendall(body)
            except OSError:
                pass
        data = b""
        while b"\r\n" not in data:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        return int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/1.1 ") else 0
    finally:
        s.close()


def shaped_body(shape, size):
    """A tools/call whose arguments fill `size` bytes with the given element."""
    head = '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"get_forecast","arguments":{"x":['
    tail = "]}}}"
    n = (size - len(head) - len(tail)) // (len(shape) + 1)
    return (head + ",".join([shape] * n) + tail).encode()


def memory(srv, key, quick):
    """Peak RSS per MiB of /mcp body in flight, for bodies under the cap and over it."""
    port, pid = srv.port, srv.pid
    head = (f"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {key}\r\n"
            f"Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\n"
            f"MCP-Protocol-Version: {bench.PROTOCOL}\r\n")
    n = 16 if quick else 32
    out = {}
    cases = [
        # (label, body, chunked, expected status); the first is run twice, so the second
        # figure is not the first-touch growth of the allocator's arenas.
        ("64 KiB of 0s (warm-up)", shaped_body("0", MAX_MCP_BODY - 1024), False, 200),
        ("64 KiB of 0s (the worst shape under the cap)", shaped_body("0", MAX_MCP_BODY - 1024), False, 200),
        ("64 KiB of {}s", shaped_body("{}", MAX_MCP_BODY - 1024), False, 200),
        ("64 KiB of []s", shaped_body("[]", MAX_MCP_BODY - 1024), False, 200),
        ("4 MiB, Content-Length", shaped_body("0", 4 * MIB), False, 413),
        ("4 MiB, chunked", shaped_body("0", 4 * MIB), True, 413),
    ]
    for label, body, chunked, want in cases:
        time.sleep(0.5)
        reset_hwm(pid)
        base = hwm_mb(pid)
        statuses = parallel(n, lambda _: raw_post(port, head, body, chunked))
        peak = hwm_mb(pid) - base
        bad = [s for s in statuses if s != want]
        if bad:
            raise SystemExit(f"memory: {label}: wanted {want}, got {sorted(set(bad))}")
        in_flight = n * len(body) / MIB
        out[label] = {"parallel": n, "body_kib": round(len(body) / 1024), "status": want,
                      "peak_rss_growth_mb": round(peak, 1),
                      "per_mib_sent": round(peak / in_flight, 1)}
        print(f"memory: {label} ×{n}: peak RSS +{peak:.1f} MiB "
              f"({peak / in_flight:.1f} MiB per MiB sent)", flush=True)
    # The cap is what makes the worst case small: 32 bodies at the cap must stay well under
    # what one uncapped 4 MiB body cost before (hundreds of MiB).
    worst = max(v["peak_rss_growth_mb"] for v in out.values())
    if worst > 64:
        raise SystemExit(f"memory: a flood raised peak RSS by {worst} MiB")
    return out


def sessions(srv, db, client_id, quick):
    """Cookie-less /authorize (one session row each, before) and one session's repeated
    /authorize (its pending requests, before: a record growing without end)."""
    port = srv.port
    n = 1_000 if quick else 10_000
    state = "s" * 2_000

    def authorize(browser=None):
        q = urllib.parse.urlencode({
            "response_type": "code", "client_id": client_id, "redirect_uri": bench.REDIRECT,
            "code_challenge": bench.pkce()[1], "code_challenge_method": "S256",
            "state": state, "scope": "clari:read",
            "resource": f"http://127.0.0.1:{port}/mcp"})
        if browser:
            return browser.go("GET", f"/authorize?{q}")[0]
        return request(port, "GET", f"/authorize?{q}")[0]

    before = rows(db, "SELECT COUNT(*) FROM web_sessions")
    t = time.time()
    statuses = parallel(n, lambda _: authorize())
    wall = time.time() - t
    if any(s not in (302, 303) for s in statuses):
        raise SystemExit(f"sessions: {sorted(set(statuses))}")
    added = rows(db, "SELECT COUNT(*) FROM web_sessions") - before
    size = rows(db, "SELECT SUM(LENGTH(data)) FROM web_sessions")
    print(f"sessions: {n} cookie-less /authorize in {wall:.1f} s: +{added} rows, "
          f"{size / 1024:.0f} KiB stored", flush=True)
    if added > 100:
        raise SystemExit(f"sessions: {added} rows for one address (bound: 100)")

    browser = bench.Browser(port)
    m = 200 if quick else 1_000
    for _ in range(m):
        authorize(browser)
    record = rows(db, "SELECT MAX(LENGTH(data)) FROM web_sessions")
    print(f"sessions: {m} /authorize in one session: largest record {record / 1024:.1f} KiB",
          flush=True)
    if record > 64 * 1024:
        raise SystemExit(f"sessions: a {record}-byte record (bound: 64 KiB)")
    return {"cookieless_requests": n, "rows_added": added, "stored_kib": round(size / 1024),
            "one_session_requests": m, "largest_record_kib": round(record / 1024, 1)}


def refusals(srv, db, narrow_key, budget_key, quick):
    """Tool calls refused for scope, and wrong passwords: how many rows each flood writes."""
    port = srv.port
    n = 500 if quick else 5_000
    audit_before = rows(db, "SELECT COUNT(*) FROM audit_events")
    buckets_before = rows(db, "SELECT COUNT(*) FROM rate_limits")
    statuses = parallel(n, lambda _: request(port, "POST", "/mcp",
                                             call_body("list_audit_events"),
                                             mcp_headers(narrow_key))[0])
    # A call beyond the token's scopes is 403 with the scope to ask for (step-up).
    if any(s != 403 for s in statuses):
        raise SystemExit(f"refusals: {sorted(set(statuses))}")
    audit = rows(db, "SELECT COUNT(*) FROM audit_events") - audit_before
    buckets = rows(db, "SELECT COUNT(*) FROM rate_limits") - buckets_before
    print(f"refusals: {n} tool calls refused for scope: +{audit} audit rows, "
          f"+{buckets} counter rows", flush=True)
    if audit > 1 or buckets > 1:
        raise SystemExit("refusals: a refused call wrote a row of its own")

    # Calls past the caller's Clari budget (60 requests a minute): each is answered with a
    # tool error of class throttled; the first is audited, the rest only counted.
    audit_before = rows(db, "SELECT COUNT(*) FROM audit_events")
    buckets_before = rows(db, "SELECT COUNT(*) FROM rate_limits")

    def deal_risk(i):
        _, _, body = request(port, "POST", "/mcp",
                             call_body("get_deal_risk", {"opportunity_ids": [f"006Zy{i:010d}"]}),
                             mcp_headers(budget_key))
        return bool(json.loads(body)["result"].get("isError"))

    # The budget counts per clock minute: a flood that straddles a minute's end meets two.
    minutes = int(time.time()) // 60
    refused = sum(parallel(n, deal_risk))
    minutes = int(time.time()) // 60 - minutes + 1
    served = n - refused
    throttled_audit = rows(db, "SELECT COUNT(*) FROM audit_events") - audit_before - served
    throttled_buckets = rows(db, "SELECT COUNT(*) FROM rate_limits") - buckets_before
    print(f"refusals: {n} get_deal_risk calls on one key: {served} served (one audit row each), "
          f"{refused} throttled: +{throttled_audit} audit rows, +{throttled_buckets} counter rows "
          f"({minutes} budget minute{'s' if minutes > 1 else ''})",
          flush=True)
    if served > 60 * minutes or throttled_audit > minutes or throttled_buckets > 3 * minutes:
        raise SystemExit("refusals: throttled calls wrote rows of their own")

    browser = bench.Browser(port)
    _, _, page = browser.go("GET", "/login")
    csrf = bench.field(page, "csrf")
    m = 100 if quick else 1_000
    audit_before = rows(db, "SELECT COUNT(*) FROM audit_events")
    t = time.time()
    codes = {}
    for _ in range(m):
        status, _, _ = browser.go("POST", "/login", {"csrf": csrf, "email": bench.EMAIL,
                                                     "password": "not the password"})
        codes[status] = codes.get(status, 0) + 1
    signin_rows = rows(db, "SELECT COUNT(*) FROM audit_events") - audit_before
    print(f"refusals: {m} wrong passwords in {time.time() - t:.1f} s ({codes}): "
          f"+{signin_rows} audit rows", flush=True)
    if signin_rows > 10:
        raise SystemExit(f"refusals: {signin_rows} audit rows for one flood of wrong passwords")
    return {"scope_refusals": n, "audit_rows": audit, "counter_rows": buckets,
            "throttled_calls": refused, "throttled_audit_rows": throttled_audit,
            "throttled_counter_rows": throttled_buckets,
            "wrong_passwords": m, "wrong_password_audit_rows": signin_rows}


def upstream(srv, key, sandbox_url):
    """get_deal_risk with 1,000 ids, 700 of them distinct and unknown, then 1,001: Clari
    requests made."""
    def call(ids):
        before = bench.sandbox_stats(sandbox_url)["requests"]
        status, _, body = request(srv.port, "POST", "/mcp",
                                  call_body("get_deal_risk", {"opportunity_ids": ids}),
                                  mcp_headers(key))
        made = bench.sandbox_stats(sandbox_url)["requests"] - before
        if status != 200:
            raise SystemExit(f"upstream: {status} {body[:300]!r}")
        return json.loads(body)["result"], made

    ids = [f"006Zz{i:010d}" for i in range(700)]
    result, made = call(ids + ids[:300])  # each record is asked for once
    sc = result.get("structuredContent") or {}
    if result.get("isError"):
        raise SystemExit(f"upstream: {result}")
    echoed = len(sc.get("not_found", []))
    print(f"upstream: get_deal_risk, 1,000 ids (700 distinct, unknown): {made} Clari requests, "
          f"{echoed} ids named back of {sc.get('not_found_count')}", flush=True)
    if made > 7 or echoed > 20:
        raise SystemExit("upstream: more Clari requests or echoed ids than the bound")
    result, made_over = call([f"006Zz{i:010d}" for i in range(1_001)])
    print(f"upstream: get_deal_risk, 1,001 ids: isError={result.get('isError')}, "
          f"{made_over} Clari requests", flush=True)
    if not result.get("isError") or made_over:
        raise SystemExit("upstream: 1,001 ids were not refused before calling Clari")
    return {"ids": 1_000, "distinct": 700, "clari_requests": made, "ids_named_back": echoed,
            "over_cap_clari_requests": made_over}


def connections(srv, key, quick):
    """Slow clients: headers that never end, bodies that never come. Sockets the server holds."""
    port, pid = srv.port, srv.pid
    n = 200 if quick else 1_000
    base = open_fds(pid)
    socks = []
    for i in range(n):
        s = socket.socket()
        s.settimeout(5)
        s.connect(("127.0.0.1", port))
        if i % 2:
            s.sendall(b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # the head never ends
        else:
            s.sendall((f"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {key}\r\n"
                       "Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{").encode())
        socks.append(s)
    time.sleep(0.5)
    held = open_fds(pid) - base
    time.sleep(max(HEADER_TIMEOUT_S, BODY_TIMEOUT_S) + 1.5)
    after = open_fds(pid) - base
    for s in socks:
        s.close()
    print(f"connections: {n} slow clients from one address: {held} held, "
          f"{after} after the read timeouts", flush=True)
    if held > PER_ADDRESS or after > 0:
        raise SystemExit("connections: more held than the per-address limit, or kept past the timeouts")
    return {"slow_clients": n, "held": held, "held_after_timeouts": after}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="smaller floods: a smoke test")
    args = ap.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    servers = []
    report = {}
    try:
        vault_key = cli({**os.environ}, "keys", "new-vault-key")
        sb, sb_url, clari_key = bench.sandbox(job_ms=200, request_ms=0)
        servers.append(sb)
        data = Path(tempfile.mkdtemp(dir=OUT))
        db = data / "clari-mcp.db"
        port = free_port()
        env = bench.server_env(f"sqlite://{db}", vault_key, sb_url, port)
        env.update({
            # This server keeps the per-address limit: it is what is measured.
            "CLARI_MCP_MAX_CONNECTIONS_PER_ADDRESS": str(PER_ADDRESS),
            "CLARI_MCP_HEADER_READ_TIMEOUT": f"{HEADER_TIMEOUT_S}s",
            "CLARI_MCP_BODY_READ_TIMEOUT": f"{BODY_TIMEOUT_S}s",
            "CLARI_MCP_DCR_RATE_LIMIT": "1000",
        })
        key = bench.provision(env, clari_key)
        narrow = cli(env, "api-key", "create", "--email", bench.EMAIL, "--scopes",
                     "forecasts:read", "--org", "Bench", "--name", "narrow")
        budget = cli(env, "api-key", "create", "--email", bench.EMAIL, "--scopes",
                     "clari:read", "--org", "Bench", "--name", "budget")
        srv = bench.Server("clari-mcp-bounds", [BIN, "serve"], port, env, ready_path="/healthz")
        servers.append(srv)
        oauth = bench.OAuth(port)
        report["rss_idle_mb"] = round(bench.rss_mb(srv.pid), 1)
        report["memory"] = memory(srv, key, args.quick)
        report["sessions"] = sessions(srv, db, oauth.client_id, args.quick)
        report["refusals"] = refusals(srv, db, narrow, budget, args.quick)
        report["upstream"] = upstream(srv, key, sb_url)
        report["connections"] = connections(srv, key, args.quick)
        report["rss_after_mb"] = round(bench.rss_mb(srv.pid), 1)
    finally:
        for s in servers:
            if s.proc.poll() is None:
                s.stop()
    report.update({"machine": bench.machine(), "date": time.strftime("%Y-%m-%d"),
                   "commit": bench.commit(), "profile": bench.PROFILE, "quick": args.quick})
    (OUT / "bounds.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    sys.exit(main())
