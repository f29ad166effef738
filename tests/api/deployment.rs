//! Deployment defaults: private files, a vault key nobody else can read, HSTS on https, and
//! logs without colour codes when they go to a file or a pipe.

use std::os::unix::fs::PermissionsExt;

use crate::helpers::{Backend, Cli, TestDb, free_port, spawn_app, spawn_app_with};

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[tokio::test]
async fn database_files_are_private_and_a_readable_vault_key_is_refused() {
    let db = TestDb::new(Backend::Sqlite).await.unwrap();
    let cli = Cli::new(&db);
    let data = db.dir.path().join("data");
    let file = db.dir.path().join("clari-mcp.db");
    cli.ok(&["org", "create", "--name", "A"], None);
    assert_eq!(mode(&data), 0o700, "data directory");
    assert_eq!(mode(&data.join("vault.key")), 0o600, "vault key");
    assert_eq!(mode(&file), 0o600, "database");
    for suffix in ["-wal", "-shm"] {
        let side = db.dir.path().join(format!("clari-mcp.db{suffix}"));
        if side.exists() {
            assert_eq!(mode(&side), 0o600, "{suffix}");
        }
    }

    // A database file left world-readable by an older version is tightened at start.
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    cli.ok(&["org", "list"], None);
    assert_eq!(mode(&file), 0o600);

    // A vault key others can read is refused, with the fix in the message; nothing starts.
    let key = data.join("vault.key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = cli.fails(&["org", "list"], None);
    assert!(
        err.contains("readable by others") && err.contains("chmod 600"),
        "{err}"
    );
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    cli.ok(&["org", "list"], None);
    db.cleanup().await;
}

#[tokio::test]
async fn logs_to_a_pipe_carry_no_colour_codes() {
    let db = TestDb::new(Backend::Sqlite).await.unwrap();
    let mut cli = Cli::new(&db);
    cli.env.insert("RUST_LOG".into(), "debug".into());
    let out = cli.run(&["org", "create", "--name", "A"], None);
    let stderr = out.stderr();
    assert!(out.0.status.success(), "{stderr}");
    assert!(stderr.lines().count() > 3, "there are log lines: {stderr}");
    assert!(!stderr.contains('\u{1b}'), "no ANSI escapes: {stderr}");
    db.cleanup().await;
}

#[tokio::test]
async fn an_https_public_url_sends_hsts_and_plain_http_does_not() {
    let db = TestDb::new(Backend::Sqlite).await.unwrap();
    let app = spawn_app_with(&db, &[("CLARI_MCP_PUBLIC_URL", "https://mcp.example.test")]).await;
    for path in [
        "/healthz",
        "/login",
        "/.well-known/oauth-authorization-server",
    ] {
        let r = app.http.get(app.url(path)).send().await.unwrap();
        assert_eq!(
            r.headers()
                .get("strict-transport-security")
                .map(|v| v.to_str().unwrap()),
            Some("max-age=63072000; includeSubDomains"),
            "{path}"
        );
    }
    let db2 = TestDb::new(Backend::Sqlite).await.unwrap();
    let plain = spawn_app(&db2).await;
    let r = plain.http.get(plain.url("/healthz")).send().await.unwrap();
    assert!(r.headers().get("strict-transport-security").is_none());
    db.cleanup().await;
    db2.cleanup().await;
}

#[tokio::test]
async fn browser_clients_of_allowed_origins_get_cors_on_mcp_discovery_and_token() {
    let db = TestDb::new(Backend::Sqlite).await.unwrap();
    let app = spawn_app_with(
        &db,
        &[("CLARI_MCP_ALLOWED_ORIGINS", "https://agent.example")],
    )
    .await;
    let preflight = |path: &str, origin: &str| {
        app.http
            .request(reqwest::Method::OPTIONS, app.url(path))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization, content-type, mcp-protocol-version",
            )
            .send()
    };
    // The preflight of an allowed origin is answered before authentication.
    let r = preflight("/mcp", "https://agent.example").await.unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let h = r.headers();
    assert_eq!(h["access-control-allow-origin"], "https://agent.example");
    let allowed = h["access-control-allow-headers"].to_str().unwrap();
    for name in ["authorization", "content-type", "mcp-protocol-version"] {
        assert!(allowed.contains(name), "{allowed}");
    }
    assert!(
        h["access-control-allow-methods"]
            .to_str()
            .unwrap()
            .contains("POST")
    );
    // Another origin gets nothing a browser would accept.
    let r = preflight("/mcp", "https://evil.example").await.unwrap();
    assert!(r.headers().get("access-control-allow-origin").is_none());
    // The 401 challenge is readable by the allowed origin's script.
    let r = app
        .http
        .post(app.url("/mcp"))
        .header("origin", "https://agent.example")
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.headers()["access-control-allow-origin"],
        "https://agent.example"
    );
    let exposed = r.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(exposed.contains("www-authenticate"), "{exposed}");
    // Discovery and the token and registration endpoints answer any origin.
    for path in ["/token", "/register"] {
        let r = preflight(path, "https://agent.example").await.unwrap();
        assert!(r.status().is_success(), "{path}");
        assert!(
            r.headers().get("access-control-allow-origin").is_some(),
            "{path}"
        );
    }
    let r = app
        .http
        .get(app.url("/.well-known/oauth-protected-resource/mcp"))
        .header("origin", "https://agent.example")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["access-control-allow-origin"], "*");
    db.cleanup().await;
}

/// `clari-mcp demo` (the same serve path as `serve`) as a child process; killed on drop.
struct Server {
    child: tokio::process::Child,
    dir: tempfile::TempDir,
    base: String,
    key: String,
    sandbox: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

async fn start_server(grace: &str, job_latency_ms: u64) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_clari-mcp"))
        .args(["demo", "--port", &port.to_string(), "--data-dir"])
        .arg(dir.path())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RUST_LOG", "warn")
        .env("CLARI_MCP_SHUTDOWN_GRACE", grace)
        .env("CLARI_MCP_EXPORT_POLL_MS", "50")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let creds = dir.path().join("demo-credentials.json");
    for _ in 0..300 {
        if creds.exists()
            && http
                .get(format!("{base}/healthz"))
                .send()
                .await
                .is_ok_and(|r| r.status() == 200)
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let c: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&creds).expect("the demo started")).unwrap();
    let sandbox = c["sandbox_url"]
        .as_str()
        .unwrap()
        .trim_end_matches("/v4")
        .to_owned();
    let knobs = http
        .put(format!("{sandbox}/_sandbox/knobs"))
        .json(&serde_json::json!({"job_latency_ms": job_latency_ms}))
        .send()
        .await
        .unwrap();
    assert!(knobs.status().is_success());
    Server {
        child,
        dir,
        base,
        key: c["api_key"].as_str().unwrap().to_owned(),
        sandbox,
    }
}

impl Server {
    /// A `get_forecast` that waits up to 20 s for its export, in flight once this returns.
    async fn slow_call(&self) -> tokio::task::JoinHandle<reqwest::Result<serde_json::Value>> {
        let (url, key) = (format!("{}/mcp", self.base), self.key.clone());
        let call = tokio::spawn(async move {
            reqwest::Client::new()
                .post(url)
                .bearer_auth(key)
                .header("accept", "application/json, text/event-stream")
                .json(
                    &serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                    "params": {"name": "get_forecast", "arguments": {"wait_seconds": 20}}}),
                )
                .send()
                .await?
                .json::<serde_json::Value>()
                .await
        });
        // In flight once the sandbox has the export job it asked for.
        let http = reqwest::Client::new();
        for _ in 0..200 {
            let stats: serde_json::Value = http
                .get(format!("{}/_sandbox/stats", self.sandbox))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if stats["jobs_created"].as_u64().unwrap_or(0) > 0 {
                return call;
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        panic!("the call never reached Clari");
    }

    fn terminate(&self) {
        let pid = self.child.id().unwrap().to_string();
        let status = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap();
        assert!(status.success());
    }
}

/// SIGTERM: the server stops accepting, the call in flight gets its whole answer, its audit event
/// is written before the process exits 0.
#[tokio::test]
async fn sigterm_lets_the_call_in_flight_finish_and_writes_its_audit_event() {
    clari_mcp::init_crypto();
    let mut server = start_server("20s", 1_500).await;
    let call = server.slow_call().await;
    server.terminate();
    let answer = call.await.unwrap().expect("the call in flight is answered");
    assert_eq!(
        answer["result"]["structuredContent"]["status"], "ready",
        "{answer}"
    );
    let status = server.child.wait().await.unwrap();
    assert!(status.success(), "{status}");
    assert!(
        reqwest::get(format!("{}/healthz", server.base))
            .await
            .is_err(),
        "nothing listens any more"
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_clari-mcp"))
        .args(["audit", "export"])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env(
            "CLARI_MCP_DATABASE_URL",
            format!("sqlite://{}/clari-mcp.db", server.dir.path().display()),
        )
        .env("CLARI_MCP_DATA_DIR", server.dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let trail = String::from_utf8_lossy(&out.stdout);
    assert!(
        trail
            .lines()
            .any(|l| l.contains("\"tool.call\"") && l.contains("get_forecast")),
        "the call's audit event was written before the exit: {trail}"
    );
}

/// A call that outlasts `CLARI_MCP_SHUTDOWN_GRACE` does not hold the process: it exits 0 at the
/// deadline and the call's connection is closed unanswered.
#[tokio::test]
async fn a_call_that_outlasts_the_shutdown_grace_does_not_hold_the_process() {
    clari_mcp::init_crypto();
    let mut server = start_server("1s", 60_000).await;
    let call = server.slow_call().await;
    server.terminate();
    let status = server.child.wait().await.unwrap();
    assert!(status.success(), "{status}");
    let answer = call.await.unwrap();
    assert!(
        answer.is_err(),
        "cut at the deadline, not answered: {answer:?}"
    );
}
