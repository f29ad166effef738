//! Deployment defaults: private files, a vault key nobody else can read, HSTS on https, and
//! logs without colour codes when they go to a file or a pipe.

use std::os::unix::fs::PermissionsExt;

use crate::helpers::{Backend, Cli, TestDb, spawn_app, spawn_app_with};

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
