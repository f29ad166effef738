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
