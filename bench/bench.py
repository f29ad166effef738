#!/usr/bin/env python3
"""The benchmark behind bench/README.md; `bash bench/run.sh` builds and installs what it needs and
runs this. Each server under test is pinned to core 0 and wrk to core 1; every figure is the
median of 3 runs (1 with --quick). Before a case is timed, one request checks its answer; during
it, wrk counts every non-2xx answer, and a case with any (where 2xx is expected) fails the run.

Server CPU per request is the server process's user+system time from /proc/PID/stat over the run,
divided by the requests wrk completed. Results go to stdout (a Markdown table) and
target/bench/results.json.
"""
import argparse
import base64
import concurrent.futures
import hashlib
import http.client
import json
import os
import re
import resource
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROFILE = os.environ.get("BENCH_PROFILE", "release")
BIN = ROOT / f"target/{PROFILE}/clari-mcp"
FLOOR = ROOT / f"target/{PROFILE}/examples/floor"
OUT = ROOT / "target/bench"
SERVER_CORE, LOAD_CORE = "0", "1"
CLK_TCK = os.sysconf("SC_CLK_TCK")
PROTOCOL = "2025-11-25"
PASSWORD = "bench password 1234"
EMAIL = "bench@example.test"
REDIRECT = "http://127.0.0.1:9/callback"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def cpu_seconds(pid):
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_mb(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class Server:
    """A process pinned to the server core, stopped at exit."""

    def __init__(self, name, argv, port, env=None, ready_path="/mcp", ready_method="GET"):
        self.name, self.port = name, port
        self.log = open(OUT / f"{name}.log", "w")
        self.proc = subprocess.Popen(
            ["taskset", "-c", SERVER_CORE, *map(str, argv)],
            env={**os.environ, **(env or {})},
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.time() + 60
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"{name} exited: see {self.log.name}")
            try:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                c.request(ready_method, ready_path)
                c.getresponse().read()
                return
            except OSError:
                time.sleep(0.1)
        raise SystemExit(f"{name} did not start: see {self.log.name}")

    @property
    def pid(self):
        return self.proc.pid

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def request(port, method, path, body=None, headers=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    c.request(method, path, body=body, headers=headers or {})
    r = c.getresponse()
    data = r.read()
    return r.status, dict(r.getheaders()), data


def mcp_headers(token):
    return {
        "Authorization": f"Bearer {token}",
        "Content-Type": "application/json",
        "Accept": "application/json, text/event-stream",
        "MCP-Protocol-Version": PROTOCOL,
    }


def rpc(method, params=None):
    return json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params or {}})


def call_body(tool, args=None):
    return rpc("tools/call", {"name": tool, "arguments": args or {}})


class Case:
    def __init__(self, server, label, method, path, body=None, headers=None, mode="static",
                 conns=8, expect=200, check=None, prepare=None, duration=None):
        self.server, self.label, self.method, self.path = server, label, method, path
        self.body, self.headers, self.mode, self.conns = body, headers or {}, mode, conns
        self.expect, self.check, self.prepare, self.duration = expect, check, prepare, duration


def wrk(case, duration, extra_env):
    work = Path(tempfile.mkdtemp(dir=OUT))
    env = {**os.environ, "BENCH_METHOD": case.method, "BENCH_PATH": case.path,
           "BENCH_MODE": case.mode, "BENCH_TOOL_ERRORS": "1", **extra_env}
    if case.body is not None:
        (work / "body").write_text(case.body)
        env["BENCH_BODY_FILE"] = str(work / "body")
    (work / "headers").write_text("".join(f"{k}: {v}\n" for k, v in case.headers.items()))
    env["BENCH_HEADERS_FILE"] = str(work / "headers")
    url = f"http://127.0.0.1:{case.server.port}{case.path}"
    pids = getattr(case.server, "pids", None) or [case.server.pid]
    before = sum(cpu_seconds(p) for p in pids)
    pg_before = postgres_cpu() if getattr(case.server, "postgres", False) else None
    out = subprocess.run(
        ["taskset", "-c", LOAD_CORE, "wrk", "-t1", f"-c{case.conns}", f"-d{duration}s",
         "--latency", "-s", str(ROOT / "bench/wrk.lua"), url],
        env=env, capture_output=True, text=True, check=True,
    ).stdout
    cpu = sum(cpu_seconds(p) for p in pids) - before
    line = next(l for l in out.splitlines() if l.startswith("{"))
    r = json.loads(line)
    r["cpu_s"] = cpu
    if pg_before is not None:
        r["pg_cpu_s"] = postgres_cpu() - pg_before
    return r


def postgres_cpu():
    """CPU seconds (user + system) of every PostgreSQL server process on the machine so far."""
    total = 0.0
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            if (p / "comm").read_text().strip() == "postgres":
                total += cpu_seconds(p.name)
        except (OSError, IndexError, ValueError):
            pass
    return total


def run_case(case, runs, duration):
    if case.check and case.mode == "static":
        status, _, data = request(case.server.port, case.method, case.path, case.body,
                                  case.headers)
        assert status == case.expect, f"{case.label}: {status} {data[:300]!r}"
        if data[:1] in (b"{", b"["):
            case.check(json.loads(data))
    results = []
    for _ in range(runs):
        extra = case.prepare() if case.prepare else {}
        r = wrk(case, case.duration or duration, extra)
        if r["requests"] == 0:
            raise SystemExit(f"{case.label}: no requests completed")
        bad = r["non2xx"] if case.expect < 300 else r["requests"] - r["non2xx"]
        if case.mode == "codes":
            # The requests in flight when the codes ran out carry no code.
            bad -= max(0, r["requests"] - int(extra["BENCH_CODES"]))
        if bad or r["socket_errors"] or r["tool_errors"]:
            raise SystemExit(f"{case.label}: {bad} unexpected statuses, "
                             f"{r['tool_errors']} tool errors (a refused call is not the work "
                             f"measured), {r['socket_errors']} socket errors in {r['requests']}")
        results.append(r)
    med = lambda key: statistics.median(x[key] for x in results)
    if case.mode == "codes":
        # The run ends when the codes do, before wrk's clock: by Little's law instead.
        rps = statistics.median(case.conns / (x["mean_us"] / 1e6) for x in results)
    else:
        rps = statistics.median(x["requests"] / (x["duration_us"] / 1e6) for x in results)
    cpu_us = statistics.median(x["cpu_s"] / x["requests"] * 1e6 for x in results)
    out = {"server": case.server.name, "case": case.label, "conns": case.conns, "rps": rps,
           "p50_ms": med("p50_us") / 1000, "p99_ms": med("p99_us") / 1000, "cpu_us": cpu_us,
           "runs": len(results)}
    if "pg_cpu_s" in results[0]:
        out["pg_cpu_us"] = statistics.median(x["pg_cpu_s"] / x["requests"] * 1e6 for x in results)
    return out


def cli(env, *args, stdin=None):
    out = subprocess.run([str(BIN), *args], env=env, input=stdin, capture_output=True,
                         text=True)
    if out.returncode != 0:
        raise SystemExit(f"clari-mcp {' '.join(args)}: {out.stderr.strip()}")
    return out.stdout.strip()


def server_env(db_url, vault_key, sandbox_url, port):
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLARI_MCP_")}
    env.update({
        "CLARI_MCP_DATABASE_URL": db_url,
        "CLARI_MCP_VAULT_KEYS": vault_key,
        "CLARI_MCP_CLARI_BASE_URL": sandbox_url,
        "CLARI_MCP_BIND": f"127.0.0.1:{port}",
        "CLARI_MCP_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "CLARI_MCP_DCR_RATE_LIMIT": "1000000",
        "CLARI_MCP_EXPORT_POLL_MS": "100",
        # Every simulated client comes from 127.0.0.1, as from behind a load balancer: the
        # per-address connection limit (64) would otherwise refuse the 64-connection cases'
        # own warm-up connection.
        "CLARI_MCP_MAX_CONNECTIONS_PER_ADDRESS": "0",
        "RUST_LOG": "warn",
    })
    return env


def provision(env, clari_key):
    cli(env, "org", "create", "--name", "Bench")
    cli(env, "org", "set-clari-key", "--org", "Bench", stdin=clari_key)
    cli(env, "user", "create", "--org", "Bench", "--email", EMAIL, "--role", "admin",
        stdin=PASSWORD)
    return cli(env, "api-key", "create", "--email", EMAIL, "--scopes", "clari:read",
               "--org", "Bench", "--name", "bench")


def sandbox(job_ms, request_ms):
    s, base_url, keys = sandbox_tenants(job_ms, request_ms, concurrent_limit=10)
    return s, base_url, keys[0]


def sandbox_tenants(job_ms, request_ms, concurrent_limit, monthly_quota=None):
    """The Clari sandbox on the load core: the process, its base URL and every tenant's key."""
    port = free_port()
    quota = ["--monthly-quota", monthly_quota] if monthly_quota else []
    s = Server(f"sandbox-{job_ms}-{request_ms}",
               [BIN, "sandbox", "--port", port, "--job-latency-ms", job_ms,
                "--request-latency-ms", request_ms, "--concurrent-limit", concurrent_limit,
                *quota],
               port, ready_path="/_sandbox/describe")
    # The sandbox shares the load core: it is idle once exports are cached.
    subprocess.run(["taskset", "-pc", LOAD_CORE, str(s.pid)], capture_output=True, check=True)
    _, _, body = request(port, "GET", "/_sandbox/describe")
    d = json.loads(body)
    return s, d["base_url"], [o["api_key"] for o in d["orgs"]]


def sandbox_stats(base_url):
    u = urllib.parse.urlparse(base_url)
    _, _, body = request(u.port, "GET", "/_sandbox/stats")
    return json.loads(body)


# --- OAuth: a public client, signed in once, consent remembered ---------------------------------

class Browser:
    def __init__(self, port):
        self.port, self.cookies = port, {}

    def go(self, method, path, form=None):
        headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())}
        body = None
        if form is not None:
            body = urllib.parse.urlencode(form)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        status, hdrs, data = request(self.port, method, path, body, headers)
        for k, v in hdrs.items():
            if k.lower() == "set-cookie":
                name, _, rest = v.partition("=")
                self.cookies[name] = rest.split(";", 1)[0]
        return status, hdrs.get("location") or hdrs.get("Location"), data.decode(errors="replace")


def field(html, name):
    m = re.search(f'name="{name}" value="([^"]*)"', html)
    return m and m.group(1).replace("&amp;", "&").replace("&#x2f;", "/")


def pkce():
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    return verifier, challenge.rstrip(b"=").decode()


class OAuth:
    def __init__(self, port):
        self.port = port
        self.resource = f"http://127.0.0.1:{port}/mcp"
        _, _, data = request(port, "POST", "/register", json.dumps({
            "client_name": "bench", "redirect_uris": [REDIRECT],
            "token_endpoint_auth_method": "none",
            "grant_types": ["authorization_code", "refresh_token"]}),
            {"Content-Type": "application/json"})
        self.client_id = json.loads(data)["client_id"]
        self.browser = Browser(port)
        self.verifier, self.challenge = pkce()

    def code(self):
        q = urllib.parse.urlencode({
            "response_type": "code", "client_id": self.client_id, "redirect_uri": REDIRECT,
            "code_challenge": self.challenge, "code_challenge_method": "S256",
            "state": "s", "scope": "clari:read", "resource": self.resource})
        b = self.browser
        status, loc, html = b.go("GET", f"/authorize?{q}")
        for _ in range(6):
            if loc and loc.startswith(REDIRECT):
                return urllib.parse.parse_qs(urllib.parse.urlparse(loc).query)["code"][0]
            if loc and loc.startswith("/login"):
                _, _, page = b.go("GET", loc)
                form = {"csrf": field(page, "csrf"), "email": EMAIL, "password": PASSWORD}
                if field(page, "rid"):
                    form["rid"] = field(page, "rid")
                status, loc, html = b.go("POST", "/login", form)
            elif loc:
                status, loc, html = b.go("GET", loc)
            elif status == 200 and field(html, "rid"):
                form = {"csrf": field(html, "csrf"), "rid": field(html, "rid"),
                        "org": field(html, "org"), "decision": "approve",
                        "scope_clari:read": "on"}
                for s in re.findall(r'name="(scope_[a-z:_]+)"', html):
                    form[s] = "on"
                status, loc, html = b.go("POST", "/authorize/consent", form)
            else:
                raise SystemExit(f"authorize: {status} {html[:300]}")
        raise SystemExit("authorize: too many redirects")

    def token_body(self, code="{CODE}"):
        return urllib.parse.urlencode({
            "grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT,
            "client_id": self.client_id, "code_verifier": self.verifier,
            "resource": self.resource}).replace("%7BCODE%7D", "{CODE}")

    def tokens(self):
        _, _, data = request(self.port, "POST", "/token", self.token_body(self.code()),
                             {"Content-Type": "application/x-www-form-urlencoded"})
        return json.loads(data)


# --- the cases ------------------------------------------------------------------------------------

def forecast_ready(body):
    assert body["result"]["structuredContent"]["status"] == "ready", body


def clari_cases(srv, key, jwt, oauth, codes_per_run):
    h, hj = mcp_headers(key), mcp_headers(jwt)
    fc = call_body("get_forecast")
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    ok = lambda body: None

    def mint_codes():
        path = OUT / "codes.txt"
        path.write_text("\n".join(oauth.code() for _ in range(codes_per_run)) + "\n")
        return {"BENCH_CODES_FILE": str(path), "BENCH_CODES": str(codes_per_run)}

    def refresh_token():
        return {"BENCH_REFRESH_TOKEN": oauth.tokens()["refresh_token"]}

    refresh_body = urllib.parse.urlencode({
        "grant_type": "refresh_token", "refresh_token": "{TOKEN}",
        "client_id": oauth.client_id, "resource": oauth.resource}).replace("%7BTOKEN%7D", "{TOKEN}")
    register = json.dumps({"client_name": "bench", "redirect_uris": [REDIRECT],
                           "token_endpoint_auth_method": "none"})
    return [
        Case(srv, "discovery: protected resource", "GET", "/.well-known/oauth-protected-resource/mcp", check=ok),
        Case(srv, "discovery: authorization server", "GET", "/.well-known/oauth-authorization-server", check=ok),
        Case(srv, "401: garbage bearer", "POST", "/mcp", rpc("ping"), mcp_headers("garbage"), expect=401, check=ok),
        Case(srv, "401: forged JWT, random kid", "POST", "/mcp", rpc("ping"), h, mode="forged_jwt", expect=401),
        Case(srv, "ping (API key)", "POST", "/mcp", rpc("ping"), h, check=ok),
        Case(srv, "tools/list (API key)", "POST", "/mcp", rpc("tools/list"), h, check=ok),
        Case(srv, "get_forecast warm (API key)", "POST", "/mcp", fc, h, conns=1, check=forecast_ready),
        Case(srv, "get_forecast warm (API key)", "POST", "/mcp", fc, h, check=forecast_ready),
        Case(srv, "get_forecast warm (API key)", "POST", "/mcp", fc, h, conns=64, check=forecast_ready),
        Case(srv, "get_forecast warm (JWT)", "POST", "/mcp", fc, hj, check=forecast_ready),
        Case(srv, "get_admin_limits, upstream each call (API key)", "POST", "/mcp",
             call_body("get_admin_limits"), h, check=ok),
        Case(srv, "/token code exchange", "POST", "/token", oauth.token_body(), form, mode="codes",
             prepare=mint_codes, duration=max(5, codes_per_run // 150)),
        Case(srv, "/token refresh rotation", "POST", "/token", refresh_body, form, mode="refresh",
             conns=1, prepare=refresh_token, duration=2),
        Case(srv, "/register (DCR)", "POST", "/register", register,
             {"Content-Type": "application/json"}, expect=201, check=ok),
    ]


def peer_cases(srv, key):
    return [
        Case(srv, "401: garbage bearer", "POST", "/mcp", rpc("ping"), mcp_headers("garbage"), expect=401, check=lambda b: None),
        Case(srv, "get_forecast warm (API key)", "POST", "/mcp", call_body("get_forecast"), mcp_headers(key), conns=1, check=lambda b: None),
        Case(srv, "get_forecast warm (API key)", "POST", "/mcp", call_body("get_forecast"), mcp_headers(key), check=lambda b: None),
        Case(srv, "get_forecast warm (API key)", "POST", "/mcp", call_body("get_forecast"), mcp_headers(key), conns=64, check=lambda b: None),
    ]


def floor_cases(srv, rmcp):
    h = mcp_headers("unused")
    cases = [Case(srv, "get_forecast warm (API key)", "POST", "/mcp", call_body("get_forecast"), h, conns=c, check=lambda b: None)
             for c in (1, 8, 64)]
    if rmcp:
        cases += [Case(srv, "ping (API key)", "POST", "/mcp", rpc("ping"), h, check=lambda b: None),
                  Case(srv, "tools/list (API key)", "POST", "/mcp", rpc("tools/list"), h, check=lambda b: None)]
    return cases


# --- scenario 4 and memory --------------------------------------------------------------------

def cold_burst(ports, key, n=50):
    """n identical cold get_forecast calls at once, spread over the replicas' ports."""
    def one(i):
        t = time.time()
        _, _, data = request(ports[i % len(ports)], "POST", "/mcp",
                             call_body("get_forecast", {"wait_seconds": 50}), mcp_headers(key))
        body = json.loads(data)
        return time.time() - t, body["result"]["structuredContent"]["status"]
    with concurrent.futures.ThreadPoolExecutor(n) as pool:
        return list(pool.map(one, range(n)))


def hold_connections(port, key, n):
    """n connections, each in the middle of sending a tools/call (the headers and half the body):
    the server holds every one of them. Returns the open sockets."""
    socks = []
    body = call_body("get_forecast").encode()
    head = (f"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {key}\r\n"
            f"Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\n"
            f"MCP-Protocol-Version: {PROTOCOL}\r\nContent-Length: {len(body)}\r\n\r\n").encode()
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(head + body[: len(body) // 2])
        socks.append(s)
    return socks


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="one short run per case: a smoke test")
    ap.add_argument("--postgres", default=os.environ.get("CLARI_MCP_TEST_POSTGRES_URL"),
                    help="server URL for the two-replica scenario (postgres://…/db)")
    args = ap.parse_args()
    runs, duration = (1, 1) if args.quick else (3, 5)
    codes_per_run = 300 if args.quick else 3_000
    OUT.mkdir(parents=True, exist_ok=True)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 8192), hard))

    results, extra, servers = [], {}, []
    try:
        vault_key = cli({**os.environ}, "keys", "new-vault-key")
        for latency in (0, 50):
            sb, sb_url, clari_key = sandbox(job_ms=200, request_ms=latency)
            servers.append(sb)
            data = Path(tempfile.mkdtemp(dir=OUT))
            db_url = f"sqlite://{data}/clari-mcp.db"
            port = free_port()
            env = server_env(db_url, vault_key, sb_url, port)
            key = provision(env, clari_key)
            srv = Server(f"clari-mcp-{latency}ms", [BIN, "serve"], port, env,
                         ready_path="/healthz")
            servers.append(srv)
            srv.name = "clari-mcp"
            # Warm the export cache, and keep the answer the floors and peers will serve.
            status, _, body = request(port, "POST", "/mcp",
                                      call_body("get_forecast", {"wait_seconds": 50}),
                                      mcp_headers(key))
            result = json.loads(body)["result"]
            assert result["structuredContent"]["status"] == "ready", result
            (OUT / "forecast-result.json").write_text(json.dumps(result))
            if latency == 0:
                extra["rss_idle_mb"] = rss_mb(srv.pid)
                oauth = OAuth(port)
                jwt = oauth.tokens()["access_token"]
                cases = clari_cases(srv, key, jwt, oauth, codes_per_run)
            else:
                cases = [c for c in clari_cases(srv, key, key, OAuth(port), codes_per_run)
                         if "upstream" in c.label]
            for case in cases:
                r = run_case(case, runs, duration)
                r["upstream_ms"] = latency
                results.append(r)
                print(json.dumps(r), flush=True)
            if latency == 0:
                socks = hold_connections(port, key, 1_000)
                time.sleep(2)
                extra["rss_1000_conns_mb"] = rss_mb(srv.pid)
                for s in socks:
                    s.close()
                db_file = data / "clari-mcp.db"
                api_key, sqlite_file = key, db_file
            srv.stop()
            sb.stop()

        # Floors and peers serve the same answer.
        result_file = OUT / "forecast-result.json"
        venv_py = OUT / "py/bin/python"
        for name, argv, rmcp in [
            ("floor A: bare axum", [FLOOR, "axum", "{port}", result_file], False),
            ("floor B: bare rmcp", [FLOOR, "rmcp", "{port}", result_file], True),
            ("TypeScript SDK", ["node", ROOT / "bench/peers/ts/server.mjs", "{port}", result_file, sqlite_file], None),
            ("Python SDK", [venv_py, ROOT / "bench/peers/py/server.py", "{port}", result_file, sqlite_file], None),
        ]:
            port = free_port()
            argv = [str(a).replace("{port}", str(port)) for a in argv]
            srv = Server(name, argv, port, ready_method="GET")
            servers.append(srv)
            extra[f"rss_idle_mb {name}"] = rss_mb(srv.pid)
            cases = floor_cases(srv, rmcp) if rmcp is not None else peer_cases(srv, api_key)
            for case in cases:
                r = run_case(case, runs, duration)
                r["upstream_ms"] = 0
                results.append(r)
                print(json.dumps(r), flush=True)
            srv.stop()

        # The deployments that matter for companies: PostgreSQL, one replica and two behind a
        # round-robin proxy.
        if args.postgres:
            for r in postgres_cases(vault_key, args.postgres, runs, duration):
                results.append(r)
                print(json.dumps(r), flush=True)

        # Scenario 4: 50 identical cold calls on a 5 s export, one replica then two.
        extra["cold_burst"] = burst(vault_key, args.postgres)
    finally:
        for s in servers:
            if s.proc.poll() is None:
                s.stop()
    report = {"results": results, **extra,
              "machine": machine(), "date": time.strftime("%Y-%m-%d"), "commit": commit(),
              "quick": args.quick}
    (OUT / "results.json").write_text(json.dumps(report, indent=2))
    print_table(report)


def burst(vault_key, postgres):
    out = {}
    setups = [("one replica, SQLite", 1, None)]
    if postgres:
        setups.append(("two replicas, PostgreSQL", 2, postgres))
    for label, replicas, pg in setups:
        sb, sb_url, clari_key = sandbox(job_ms=5_000, request_ms=0)
        started = []
        try:
            if pg:
                db_url = fresh_postgres(pg)
            else:
                db_url = f"sqlite://{tempfile.mkdtemp(dir=OUT)}/clari-mcp.db"
            ports = [free_port() for _ in range(replicas)]
            key = provision(server_env(db_url, vault_key, sb_url, ports[0]), clari_key)
            for i, port in enumerate(ports):
                env = server_env(db_url, vault_key, sb_url, port)
                env["CLARI_MCP_PUBLIC_URL"] = f"http://127.0.0.1:{ports[0]}"
                started.append(Server(f"burst-{replicas}-{i}", [BIN, "serve"], port, env,
                                      ready_path="/healthz"))
            t = time.time()
            answers = cold_burst(ports, key)
            out[label] = {
                "calls": len(answers),
                "ready": sum(1 for _, s in answers if s == "ready"),
                "upstream_jobs": sandbox_stats(sb_url)["jobs_created"],
                "slowest_s": round(max(d for d, _ in answers), 2),
                "fastest_s": round(min(d for d, _ in answers), 2),
                "wall_s": round(time.time() - t, 2),
            }
            print(json.dumps({label: out[label]}), flush=True)
        finally:
            for s in started:
                s.stop()
            sb.stop()
    return out


class Replicas:
    """Several clari-mcp replicas behind one nginx (round robin, kept-alive upstream connections)
    on the load core: wrk talks to the proxy, and CPU is the replicas' together."""

    def __init__(self, name, replicas, port):
        self.name, self.replicas, self.port, self.postgres = name, replicas, port, True
        conf_dir = Path(tempfile.mkdtemp(dir=OUT))
        upstream = "".join(f"    server 127.0.0.1:{r.port};\n" for r in replicas)
        (conf_dir / "nginx.conf").write_text(f"""worker_processes 1;
pid {conf_dir}/nginx.pid;
error_log {conf_dir}/error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  upstream replicas {{
{upstream}    keepalive 128;
  }}
  server {{
    listen 127.0.0.1:{port};
    location / {{
      proxy_pass http://replicas;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $http_host;
      proxy_set_header X-Forwarded-For $remote_addr;
    }}
  }}
}}
""")
        self.proxy = subprocess.Popen(
            ["taskset", "-c", LOAD_CORE, "nginx", "-p", str(conf_dir), "-c",
             str(conf_dir / "nginx.conf"), "-g", "daemon off;"],
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        deadline = time.time() + 20
        while time.time() < deadline:
            try:
                request(port, "GET", "/healthz")
                return
            except OSError:
                time.sleep(0.1)
        raise SystemExit(f"nginx did not start: see {conf_dir}/error.log")

    @property
    def pids(self):
        return [r.pid for r in self.replicas]

    def stop(self):
        self.proxy.terminate()
        self.proxy.wait(10)


def postgres_cases(vault_key, pg, runs, duration):
    """Warm get_forecast against one replica on PostgreSQL, then two behind nginx: the same
    calls as on SQLite, with PostgreSQL's CPU per call beside the servers'."""
    results = []
    for replicas in (1, 2):
        sb, sb_url, clari_key = sandbox(job_ms=200, request_ms=0)
        db_url = fresh_postgres(pg)
        started, proxy = [], None
        try:
            ports = [free_port() for _ in range(replicas)]
            front = free_port() if replicas > 1 else ports[0]
            public = {"CLARI_MCP_PUBLIC_URL": f"http://127.0.0.1:{front}"}
            key = provision({**server_env(db_url, vault_key, sb_url, ports[0]), **public},
                            clari_key)
            for i, port in enumerate(ports):
                env = {**server_env(db_url, vault_key, sb_url, port), **public}
                started.append(Server(f"clari-mcp-pg-{replicas}-{i}", [BIN, "serve"], port, env,
                                      ready_path="/healthz"))
                # Each replica warms its own export cache (the export row is shared).
                _, _, body = request(port, "POST", "/mcp",
                                     call_body("get_forecast", {"wait_seconds": 50}),
                                     {**mcp_headers(key), "Host": f"127.0.0.1:{front}"})
                status = json.loads(body)["result"]["structuredContent"]["status"]
                assert status == "ready", body[:300]
            if replicas == 1:
                srv = started[0]
                srv.postgres = True
                srv.name = "clari-mcp, PostgreSQL, 1 replica"
            else:
                proxy = Replicas("clari-mcp, PostgreSQL, 2 replicas + nginx", started, front)
                srv = proxy
            jwt = OAuth(front).tokens()["access_token"]
            h, hj = mcp_headers(key), mcp_headers(jwt)
            fc = call_body("get_forecast")
            for case in [
                Case(srv, "get_forecast warm (API key)", "POST", "/mcp", fc, h, conns=1, check=forecast_ready),
                Case(srv, "get_forecast warm (API key)", "POST", "/mcp", fc, h, check=forecast_ready),
                Case(srv, "get_forecast warm (API key)", "POST", "/mcp", fc, h, conns=64, check=forecast_ready),
                Case(srv, "get_forecast warm (JWT)", "POST", "/mcp", fc, hj, check=forecast_ready),
            ]:
                r = run_case(case, runs, duration)
                r["upstream_ms"] = 0
                results.append(r)
        finally:
            if proxy:
                proxy.stop()
            for s in started:
                s.stop()
            sb.stop()
    return results


def fresh_postgres(url):
    """A new, empty database next to the one `url` names."""
    u = urllib.parse.urlparse(url)
    name = f"clari_mcp_bench_{secrets.token_hex(4)}"
    admin = u._replace(path="/postgres").geturl()
    subprocess.run(["psql", admin, "-qc", f"CREATE DATABASE {name}"], check=True,
                   capture_output=True)
    return u._replace(path=f"/{name}").geturl()


def machine():
    cpu = next((l.split(":", 1)[1].strip() for l in Path("/proc/cpuinfo").read_text().splitlines()
                if l.startswith("model name")), "unknown")
    return f"{cpu}, {os.cpu_count()} cores"


def commit():
    return subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                          capture_output=True, text=True).stdout.strip()


def print_table(report):
    print(f"\n{report['machine']} · {report['date']} · commit {report['commit']}"
          f"{' · QUICK (smoke test, not for quoting)' if report['quick'] else ''}\n")
    print("| server | case | conns | upstream | req/s | p50 ms | p99 ms | CPU µs/req | PostgreSQL CPU µs/req |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in report["results"]:
        pg = f"{r['pg_cpu_us']:,.0f}" if "pg_cpu_us" in r else ""
        print(f"| {r['server']} | {r['case']} | {r['conns']} | {r['upstream_ms']} ms | "
              f"{r['rps']:,.0f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['cpu_us']:,.0f} | {pg} |")
    print()
    for k, v in report.items():
        if k.startswith("rss") or k == "cold_burst":
            print(f"- {k}: {v}")


if __name__ == "__main__":
    sys.exit(main())
