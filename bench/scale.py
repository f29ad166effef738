#!/usr/bin/env python3
"""The scale model behind bench/README.md ("A scale model"); `bash bench/run.sh --scale` builds
what it needs and runs this, with CLARI_MCP_TEST_POSTGRES_URL naming a PostgreSQL server.

1. A fresh PostgreSQL database, the Clari sandbox, two clari-mcp replicas (core 0) behind nginx
   (round robin, core 1). Three agent applications register themselves (DCR).
2. `scale seed` (bench/scale.rs) provisions --orgs organisations of --people people each: an API
   key and an OAuth grant with a refresh token per person. Every person then redeems the refresh
   token once at /token, as an agent does when it starts, and the agents warm each
   organisation's exports on both replicas.
3. The mixed agent workload (MIX below) at a fixed rate for --duration seconds, open loop: each
   call is scheduled in advance and its latency counts from that moment, so a server that falls
   behind shows it in p99 instead of slowing the load down. Half the people call with OAuth
   access tokens (and refresh them), half with API keys.
4. What it cost: p50/p99 per tool, the replicas' CPU per call, PostgreSQL's CPU, disk I/O and
   WAL, rows and bytes added per table per hour, the audit trail's growth, and one pass of
   housekeeping and of the store-read gauges at the size reached.

Results go to stdout and target/bench/scale.json. `--quick` (10 organisations of 3 people, 15 s
at 20 calls/s, on the debug build) is the smoke test CI runs; its figures are not for quoting.
"""
import argparse
import concurrent.futures
import http.client
import json
import math
import os
import queue
import random
import subprocess
import sys
import threading
import time
import urllib.parse
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench as b  # noqa: E402

SCALE = b.ROOT / f"target/{b.PROFILE}/examples/scale"
AGENTS = ["Claude (scale model)", "Cursor (scale model)", "ChatGPT (scale model)"]

# The workload: what agents call, by weight. Mostly warm reads of the forecast and of deals;
# a session starts with tools/list; a few calls ask for a period nobody asked for yet (a cold
# export at Clari); OAuth agents refresh their access token now and then.
MIX = [
    ("get_forecast", 30),
    ("list_forecast_submissions", 8),
    ("list_users", 8),
    ("list_time_periods", 6),
    ("search_deals", 8),
    ("get_deal_risk", 6),
    ("list_opportunities", 6),
    ("get_pipeline_changes", 5),
    ("list_accounts", 3),
    ("list_audit_events", 3),
    ("list_export_jobs", 2),
    ("tools/list", 6),
    ("get_forecast, another period (cold export)", 3),
    ("token refresh", 6),
]
WARM_UP = ["get_forecast", "list_forecast_submissions", "list_users", "list_time_periods",
           "search_deals", "list_opportunities", "get_pipeline_changes", "list_accounts"]
COLD = "get_forecast, another period (cold export)"
# The sandbox's forecasts; with the three quarters before the current one, six exports per
# organisation nobody has asked for before the run.
FORECASTS = ["forecast", "renewals"]
REFRESH = "token refresh"


class Person:
    def __init__(self, line, oauth):
        self.org, self.email = line["org"], line["email"]
        self.api_key, self.client_id = line["api_key"], line["client_id"]
        self.refresh_token, self.access_token = line["refresh_token"], None
        self.oauth, self.lock = oauth, threading.Lock()

    def bearer(self):
        return self.access_token if self.oauth else self.api_key


class Conn:
    """One kept-alive HTTP connection, reopened when the server closes it."""

    def __init__(self, port, host):
        self.port, self.host, self.c = port, host, None

    def send(self, method, path, body, headers, retry=True):
        for attempt in (0, 1) if retry else (1,):
            if self.c is None:
                self.c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
            try:
                self.c.request(method, path, body=body, headers={"Host": self.host, **headers})
                r = self.c.getresponse()
                return r.status, r.read()
            except (http.client.HTTPException, OSError):
                self.c.close()
                self.c = None
                if attempt:
                    raise


def token_form(person, host):
    return urllib.parse.urlencode({
        "grant_type": "refresh_token", "refresh_token": person.refresh_token,
        "client_id": person.client_id, "resource": f"http://{host}/mcp"})


def refresh(conn, person, host):
    """Redeems the person's refresh token (rotated: the new one replaces it)."""
    with person.lock:
        # Never sent twice: a replayed refresh token is reuse, which revokes its family.
        status, data = conn.send("POST", "/token", token_form(person, host),
                                 {"Content-Type": "application/x-www-form-urlencoded"},
                                 retry=False)
        if status != 200:
            return False, f"/token {status} {data[:200]!r}"
        t = json.loads(data)
        person.access_token, person.refresh_token = t["access_token"], t["refresh_token"]
        return True, None


def tool_args(op, fixture, person):
    if op == COLD:
        return "get_forecast", {"time_period": random.choice(fixture["periods"]),
                                "forecast_id": random.choice(FORECASTS), "wait_seconds": 50}
    if op == "get_deal_risk":
        ids = fixture["opportunities"][person.org]
        return op, {"opportunity_ids": random.sample(ids, min(3, len(ids)))}
    if op == "list_audit_events":
        return op, {"limit": 10}
    if op in ("search_deals", "list_opportunities", "list_accounts", "get_pipeline_changes"):
        return op, {"limit": 10}
    return op, {}


def call(conn, person, op, args, host, request_id):
    """One operation as an agent makes it, with its arguments drawn beforehand (`tool_args`);
    (ok, why not)."""
    if op == REFRESH:
        return refresh(conn, person, host)
    headers = {**b.mcp_headers(person.bearer()), "X-Request-Id": request_id}
    if op == "tools/list":
        body = b.rpc("tools/list")
    else:
        name, args = args
        body = b.call_body(name, args)
    status, data = conn.send("POST", "/mcp", body, headers)
    if status != 200:
        return False, f"{op}: {status} {data[:200]!r}"
    answer = json.loads(data)
    if "error" in answer or answer.get("result", {}).get("isError"):
        return False, f"{op}: {data[:300]!r}"
    return True, None


def pick(people, oauth_people):
    op = random.choices([m[0] for m in MIX], weights=[m[1] for m in MIX])[0]
    who = random.choice(oauth_people if op == REFRESH else people)
    return op, who


def cpu_by_tool(port, host, people, fixture, replica, seconds):
    """Each warm call alone: one replica's CPU per call over `seconds` of calls one after another,
    so the mixed workload's CPU can be told apart by tool. The callers are the API-key people of
    five organisations, taken in turn (each key may cause 60 Clari requests a minute), whose
    exports are made fresh first."""
    orgs = sorted({p.org for p in people})[:5]
    who = [p for p in people if not p.oauth and p.org in orgs]
    conn, out = Conn(port, host), {}
    for org in orgs:
        p = next(x for x in who if x.org == org)
        for name in WARM_UP:
            structured(conn, p, name, {"wait_seconds": 50}, host)
    for op, _ in MIX:
        if op in (REFRESH, COLD):
            continue
        n, cpu0, end = 0, b.cpu_seconds(replica.pid), time.monotonic() + seconds
        while time.monotonic() < end:
            p = who[n % len(who)]
            ok, why = call(conn, p, op, tool_args(op, fixture, p), host, f"cpu-{op}-{n}")
            if not ok:
                raise SystemExit(why)
            n += 1
        out[op] = round((b.cpu_seconds(replica.pid) - cpu0) / n * 1e6)
    return out


def run_load(port, host, people, fixture, rate, duration, workers):
    """Open loop: the schedule is fixed in advance; latency counts from each call's slot."""
    oauth_people = [p for p in people if p.oauth]
    # The agents run on the load core beside nginx and the sandbox (threads started from here
    # inherit it); the replicas have core 0, PostgreSQL is not pinned.
    os.sched_setaffinity(0, {int(b.LOAD_CORE)})
    jobs = queue.Queue()
    results, errors, lock = [], [], threading.Lock()

    def worker():
        conn = Conn(port, host)
        while True:
            job = jobs.get()
            if job is None:
                return
            i, due, op, person, args = job
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            request_id = f"scale-{i}"
            try:
                ok, why = call(conn, person, op, args, host, request_id)
            except Exception as e:  # noqa: BLE001 (a failed call is counted, never lost)
                ok, why = False, f"{op}: {e!r}"
            took = time.monotonic() - due
            with lock:
                results.append((request_id, op, took, ok))
                if not ok:
                    errors.append(why)

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(workers)]
    for t in threads:
        t.start()
    start = time.monotonic() + 0.5
    n = int(rate * duration)
    for i in range(n):
        due = start + i / rate
        # Feed the queue a little ahead of time, so a worker is free when a slot comes.
        ahead = due - time.monotonic() - 0.2
        if ahead > 0:
            time.sleep(ahead)
        # Drawn here, in one thread, so that the seed makes the same workload every run.
        op, who = pick(people, oauth_people)
        jobs.put((i, due, op, who, tool_args(op, fixture, who)))
    for _ in threads:
        jobs.put(None)
    for t in threads:
        t.join()
    assert len(results) == n, f"{n - len(results)} calls unaccounted for"
    return results, errors, time.monotonic() - start


# --- what PostgreSQL and the machine say ----------------------------------------------------------

def psql(url, sql):
    out = subprocess.run(["psql", url, "-XAtqF", "\t", "-c", sql], capture_output=True,
                         text=True, check=True)
    return [line.split("\t") for line in out.stdout.strip().splitlines() if line]


def tables(url):
    """Per table: exact rows, total bytes (heap, indexes, TOAST), and rows inserted, updated and
    deleted so far."""
    stats = {r[0]: tuple(map(int, r[1:])) for r in psql(
        url, "SELECT relname, n_tup_ins, n_tup_upd, n_tup_del FROM pg_stat_user_tables")}
    counts = " UNION ALL ".join(
        f"SELECT '{n}', count(*), pg_total_relation_size('{n}') FROM \"{n}\"" for n in stats)
    return {r[0]: (int(r[1]), int(r[2]), *stats[r[0]]) for r in psql(url, counts)}


def db_stats(url):
    row = psql(url, "SELECT xact_commit, blks_read, blks_hit, tup_inserted, tup_updated, "
                    "tup_deleted, pg_current_wal_lsn() - '0/0'::pg_lsn, "
                    "pg_database_size(current_database()) "
                    "FROM pg_stat_database WHERE datname = current_database()")[0]
    keys = ["commits", "blocks_read", "blocks_hit", "rows_inserted", "rows_updated",
            "rows_deleted", "wal_bytes", "database_bytes"]
    return dict(zip(keys, map(lambda v: int(float(v)), row)))


def postgres_io():
    """Bytes every PostgreSQL process read from and wrote to storage (/proc/PID/io)."""
    read = written = 0
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            if (p / "comm").read_text().strip() != "postgres":
                continue
            for line in (p / "io").read_text().splitlines():
                k, v = line.split(":")
                if k == "read_bytes":
                    read += int(v)
                elif k == "write_bytes":
                    written += int(v)
        except (OSError, ValueError):
            pass
    return read, written


def drop_database(url):
    u = urllib.parse.urlparse(url)
    subprocess.run(["psql", u._replace(path="/postgres").geturl(), "-qc",
                    f"DROP DATABASE IF EXISTS {u.path.lstrip('/')} WITH (FORCE)"],
                   capture_output=True)


def cache_use(url):
    """request id → the cache use its tool call's audit event recorded."""
    rows = psql(url, "SELECT request_id, details::jsonb->>'cache' FROM audit_events "
                     "WHERE action = 'tool.call' AND request_id LIKE 'scale-%'")
    return {r[0]: r[1] for r in rows}


def pct(values, q):
    if not values:
        return 0.0
    values = sorted(values)
    return values[max(0, math.ceil(q * len(values)) - 1)]


# --- the run ----------------------------------------------------------------------------------------

def sandbox():
    # Each organisation here shares one of the sandbox's few tenants; in production each has its
    # own Clari tenant and limits, so the shared tenants get limits no single one would hit.
    return b.sandbox_tenants(1000, 0, concurrent_limit=100000, monthly_quota=100000000)


def earlier_quarters(current, n):
    """The n quarters before `current` (YYYY_QN), the periods nobody has asked for yet."""
    year, q = int(current[:4]), int(current[-1])
    out = []
    for _ in range(n):
        year, q = (year, q - 1) if q > 1 else (year - 1, 4)
        out.append(f"{year}_Q{q}")
    return out


def parallel(fn, items, workers=16):
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        return list(pool.map(fn, items))


def structured(conn, person, name, args, host):
    status, data = conn.send("POST", "/mcp", b.call_body(name, args),
                             b.mcp_headers(person.bearer()))
    answer = json.loads(data)
    if status != 200 or answer.get("result", {}).get("isError"):
        raise SystemExit(f"{name} for {person.org}: {status} {data[:300]!r}")
    return answer["result"].get("structuredContent") or {}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--orgs", type=int, default=1000)
    ap.add_argument("--people", type=int, default=10)
    ap.add_argument("--rate", type=float, default=100.0, help="calls per second")
    ap.add_argument("--duration", type=float, default=300.0, help="seconds")
    ap.add_argument("--workers", type=int, default=64, help="connections the agents hold")
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    if args.quick:
        args.orgs, args.people, args.rate, args.duration, args.workers = 10, 3, 20.0, 15.0, 8
    pg = os.environ.get("CLARI_MCP_TEST_POSTGRES_URL")
    if not pg:
        raise SystemExit("the scale model runs on PostgreSQL: set CLARI_MCP_TEST_POSTGRES_URL")
    b.OUT.mkdir(parents=True, exist_ok=True)
    random.seed(25)
    vault_key = b.cli({**os.environ}, "keys", "new-vault-key")
    sb = db_url = proxy = None
    started = []
    report = {"machine": b.machine(), "date": time.strftime("%Y-%m-%d"), "commit": b.commit(),
              "quick": args.quick, "orgs": args.orgs, "people_per_org": args.people,
              "rate": args.rate, "duration_s": args.duration, "workers": args.workers,
              "mix": dict(MIX)}
    try:
        sb, sb_url, clari_keys = sandbox()
        db_url = b.fresh_postgres(pg)
        ports = [b.free_port(), b.free_port()]
        front = b.free_port()
        host = f"127.0.0.1:{front}"
        public = {"CLARI_MCP_PUBLIC_URL": f"http://{host}"}
        # The server's own export polling (once a second), not the benchmark's faster one.
        server_env = lambda port: {
            k: v for k, v in {**b.server_env(db_url, vault_key, sb_url, port), **public}.items()
            if k != "CLARI_MCP_EXPORT_POLL_MS"} | {
            # No caller of the workload comes near the default 60 Clari requests a minute (each
            # person makes a call every few minutes); the CPU-by-tool phase at the end, one call
            # after another, would.
            "CLARI_MCP_CLARI_REQUESTS_PER_MINUTE": "100000"}
        env = server_env(ports[0])
        b.cli(env, "migrate")
        for i, port in enumerate(ports):
            started.append(b.Server(f"scale-replica-{i}", [b.BIN, "serve"], port,
                                    server_env(port), ready_path="/healthz"))
        proxy = b.Replicas("scale", started, front)

        clients = []
        for name in AGENTS:
            _, _, data = b.request(front, "POST", "/register", json.dumps({
                "client_name": name, "redirect_uris": [b.REDIRECT],
                "token_endpoint_auth_method": "none",
                "grant_types": ["authorization_code", "refresh_token"]}),
                {"Content-Type": "application/json", "Host": host})
            clients.append(json.loads(data)["client_id"])

        t = time.time()
        out = subprocess.run([str(SCALE), "seed", "--orgs", str(args.orgs), "--people",
                              str(args.people), "--clari-keys", ",".join(clari_keys),
                              "--clients", ",".join(clients)],
                             env=env, capture_output=True, text=True)
        if out.returncode != 0:
            raise SystemExit(f"scale seed: {out.stderr.strip()[-2000:]}")
        lines = [json.loads(l) for l in out.stdout.splitlines()]
        people = [Person(l, i % 2 == 0) for i, l in enumerate(lines)]
        # After a bulk load, statistics as autovacuum would gather them over the next minutes:
        # without them the planner picks poor plans that steady state never sees.
        psql(db_url, "ANALYZE")
        report["seed_s"] = round(time.time() - t, 1)
        print(f"== seeded {args.orgs} organisations, {len(people)} people in "
              f"{report['seed_s']} s", flush=True)

        # Every OAuth agent redeems its refresh token once, as it does when it starts.
        t = time.time()
        local = threading.local()

        def conn_to(port):
            c = getattr(local, f"c{port}", None)
            if c is None:
                c = Conn(port, host)
                setattr(local, f"c{port}", c)
            return c

        def start_agent(p):
            ok, why = refresh(conn_to(front), p, host)
            if not ok:
                raise SystemExit(why)
        parallel(start_agent, [p for p in people if p.oauth])
        report["first_tokens_s"] = round(time.time() - t, 1)

        # Warm each organisation's exports on both replicas, and note what the workload needs
        # from each: its periods and some of its deals.
        t = time.time()
        first = {}
        for p in people:
            first.setdefault(p.org, p)
        fixture = {"opportunities": {}, "periods": []}

        def warm(org_person):
            org, p = org_person
            for port in ports:
                c = conn_to(port)
                for name in WARM_UP:
                    args_ = {"wait_seconds": 50}
                    if name in ("search_deals", "list_opportunities", "list_accounts",
                                "get_pipeline_changes"):
                        args_["limit"] = 10
                    data = structured(c, p, name, args_, host)
                    if name == "search_deals":
                        fixture["opportunities"][org] = [
                            d["opportunity_id"] for d in data.get("deals", [])][:10]
                    if name == "list_time_periods" and not fixture["periods"]:
                        fixture["periods"] = earlier_quarters(
                            data["time_periods"][0]["time_period"], 3)
        parallel(warm, list(first.items()), workers=32)
        for org, ids in fixture["opportunities"].items():
            if not ids:
                raise SystemExit(f"search_deals found no deal for {org}")
        if not fixture["periods"]:
            raise SystemExit("list_time_periods gave no period")
        report["warm_up_s"] = round(time.time() - t, 1)
        print(f"== first tokens {report['first_tokens_s']} s, warm-up {report['warm_up_s']} s",
              flush=True)

        jobs_before = b.sandbox_stats(sb_url)["jobs_created"]
        before = {"tables": tables(db_url), "db": db_stats(db_url), "pg_cpu": b.postgres_cpu(),
                  "pg_io": postgres_io(), "cpu": sum(b.cpu_seconds(s.pid) for s in started)}
        results, errors, wall = run_load(front, host, people, fixture, args.rate, args.duration,
                                         args.workers)
        report["replica_rss_mb"] = [round(b.rss_mb(s.pid), 1) for s in started]
        # The replicas' audit writers flush their last batch; PostgreSQL publishes its counters.
        time.sleep(2)
        after = {"tables": tables(db_url), "db": db_stats(db_url), "pg_cpu": b.postgres_cpu(),
                 "pg_io": postgres_io(), "cpu": sum(b.cpu_seconds(s.pid) for s in started)}
        if errors:
            print("\n".join(errors[:10]), file=sys.stderr)
            raise SystemExit(f"{len(errors)} of {len(results)} calls failed")
        # Whether each tool call was answered from memory or waited for a Clari export, as its
        # audit event says (`cache`: hit, none, joined or miss).
        waited = cache_use(db_url)

        calls = len(results)
        per_hour = 3600 / wall
        report["calls"] = calls
        report["achieved_rate"] = round(calls / wall, 1)
        report["clari_exports_per_hour"] = round(
            (b.sandbox_stats(sb_url)["jobs_created"] - jobs_before) * per_hour)
        report["per_op"] = {}
        is_warm = lambda x: x[1] != REFRESH and waited.get(x[0]) not in ("miss", "joined")
        for op, _ in MIX:
            took = [x[2] * 1000 for x in results if x[1] == op]
            if not took:
                continue
            warm = [x[2] * 1000 for x in results if x[1] == op and is_warm(x)]
            report["per_op"][op] = {
                "calls": len(took), "p50_ms": round(pct(took, 0.5), 2),
                "p99_ms": round(pct(took, 0.99), 2),
                "waited_for_clari": len(took) - len(warm) if op != REFRESH else 0,
                "warm_p50_ms": round(pct(warm, 0.5), 2), "warm_p99_ms": round(pct(warm, 0.99), 2)}
        warm = [x[2] * 1000 for x in results if is_warm(x)]
        report["warm"] = {"calls": len(warm), "p50_ms": round(pct(warm, 0.5), 2),
                          "p99_ms": round(pct(warm, 0.99), 2)}
        report["cpu_us_per_call"] = round((after["cpu"] - before["cpu"]) / calls * 1e6)
        report["pg_cpu_us_per_call"] = round((after["pg_cpu"] - before["pg_cpu"]) / calls * 1e6)
        report["pg_read_bytes_per_call"] = round((after["pg_io"][0] - before["pg_io"][0]) / calls)
        report["pg_write_bytes_per_call"] = round((after["pg_io"][1] - before["pg_io"][1]) / calls)
        db = {k: after["db"][k] - before["db"][k] for k in after["db"]}
        report["pg"] = {
            "commits_per_call": round(db["commits"] / calls, 2),
            "wal_bytes_per_call": round(db["wal_bytes"] / calls),
            "blocks_read_per_call": round(db["blocks_read"] / calls, 3),
            "cache_hit_ratio": round(db["blocks_hit"] / max(1, db["blocks_hit"] + db["blocks_read"]), 4),
            "database_bytes_after": after["db"]["database_bytes"],
        }
        growth = {}
        for name, now_ in sorted(after["tables"].items()):
            then = before["tables"].get(name, (0,) * 5)
            if now_ != then:
                d = [(x - y) * per_hour for x, y in zip(now_, then)]
                growth[name] = {"rows_per_hour": round(d[0]), "bytes_per_hour": round(d[1]),
                                "inserts_per_hour": round(d[2]), "updates_per_hour": round(d[3]),
                                "deletes_per_hour": round(d[4]), "rows": now_[0],
                                "bytes": now_[1]}
        report["tables_per_hour"] = growth
        audit = growth.get("audit_events", {"rows_per_hour": 0, "bytes_per_hour": 0})
        report["audit"] = {
            "events_per_call": round(audit["rows_per_hour"] / per_hour / calls, 3),
            "bytes_per_event": round(audit["bytes_per_hour"] / max(1, audit["rows_per_hour"])),
            "rows_per_hour": audit["rows_per_hour"], "bytes_per_hour": audit["bytes_per_hour"],
        }
        report["tables_at_end"] = {n: {"rows": t[0], "bytes": t[1]}
                                   for n, t in sorted(after["tables"].items())}

        (b.OUT / "scale.json").write_text(json.dumps(report, indent=2))
        report["cpu_us_by_tool"] = cpu_by_tool(ports[0], host, people, fixture, started[0],
                                               0.3 if args.quick else 2.0)
        out = subprocess.run([str(SCALE), "housekeeping"], env=env, capture_output=True,
                             text=True)
        if out.returncode != 0:
            raise SystemExit(f"scale housekeeping: {out.stderr.strip()[-2000:]}")
        report["housekeeping"] = json.loads(out.stdout.strip().splitlines()[-1])
    finally:
        if proxy:
            proxy.stop()
        for s in started:
            s.stop()
        if sb:
            sb.stop()
        if db_url:
            drop_database(db_url)
    (b.OUT / "scale.json").write_text(json.dumps(report, indent=2))
    print_report(report)


def print_report(r):
    print(f"\n{r['machine']} · {r['date']} · commit {r['commit']}"
          f"{' · QUICK (smoke test, not for quoting)' if r['quick'] else ''}")
    print(f"{r['orgs']} organisations × {r['people_per_org']} people, {r['calls']} calls at "
          f"{r['achieved_rate']}/s for {r['duration_s']:.0f} s, two replicas on PostgreSQL\n")
    print("| call | share | calls | p50 ms | p99 ms | waited for Clari | warm p50 ms | warm p99 ms |")
    print("|---|---|---|---|---|---|---|---|")
    total = sum(w for _, w in MIX)
    for op, w in MIX:
        if op in r["per_op"]:
            x = r["per_op"][op]
            warm = (f"{x['warm_p50_ms']:.2f} | {x['warm_p99_ms']:.2f}"
                    if op != REFRESH and x["calls"] > x["waited_for_clari"] else "– | –")
            waited = f"{x['waited_for_clari']:,}" if op != REFRESH else "–"
            print(f"| {op} | {100 * w / total:.0f} % | {x['calls']:,} | {x['p50_ms']:.2f} | "
                  f"{x['p99_ms']:.2f} | {waited} | {warm} |")
    w = r["warm"]
    print(f"| **every warm call** | | {w['calls']:,} | {w['p50_ms']:.2f} | {w['p99_ms']:.2f} | "
          f"| | |\n")
    print(f"- Clari export jobs started: {r['clari_exports_per_hour']:,} per hour")
    print(f"- clari-mcp CPU per call (both replicas): {r['cpu_us_per_call']} µs; memory (RSS) "
          f"of each replica at the end: {', '.join(f'{m} MB' for m in r['replica_rss_mb'])}")
    print("- clari-mcp CPU per warm call alone, by tool: " + ", ".join(
        f"{op} {us:,} µs" for op, us in r["cpu_us_by_tool"].items()))
    print(f"- PostgreSQL CPU per call: {r['pg_cpu_us_per_call']} µs; per call "
          f"{r['pg']['commits_per_call']} transactions (reads included), {r['pg']['wal_bytes_per_call']} WAL bytes, "
          f"{r['pg_write_bytes_per_call']} bytes written and {r['pg_read_bytes_per_call']} read "
          f"by PostgreSQL processes; buffer cache hit ratio {r['pg']['cache_hit_ratio']}")
    print(f"- audit trail: {r['audit']['events_per_call']} events per call, "
          f"{r['audit']['bytes_per_event']} bytes per event on disk (with indexes)")
    h = r["housekeeping"]
    print(f"- housekeeping pass {h['housekeeping_ms']:.0f} ms; gauges read from the store "
          f"{h['gauges_ms']:.0f} ms; database {r['pg']['database_bytes_after'] / 1e6:.1f} MB\n")
    print("| table | rows added / hour | bytes added / hour | inserts / hour | updates / hour | "
          "deletes / hour | rows at end | bytes at end |")
    print("|---|---|---|---|---|---|---|---|")
    for name, g in r["tables_per_hour"].items():
        print(f"| {name} | {g['rows_per_hour']:,} | {g['bytes_per_hour']:,} | "
              f"{g['inserts_per_hour']:,} | {g['updates_per_hour']:,} | {g['deletes_per_hour']:,} | "
              f"{g['rows']:,} | {g['bytes']:,} |")


if __name__ == "__main__":
    sys.exit(main())
