//! The operator's CLI, run as a process with its own environment, as operators and scripts do.

use clari_mcp::crypto::{Vault, sha256_hex};
use clari_mcp::store::Email;
use secrecy::{ExposeSecret, SecretString};

use crate::both_backends;
use crate::helpers::{Backend, Cli, TestDb, free_port, python_fernet_decrypt};

const PASSWORD: &str = "correct horse battery staple";

both_backends!(
    migrate_and_org_commands_work,
    clari_key_is_read_from_stdin_stored_encrypted_and_never_shown,
    user_and_api_key_commands_work,
    bad_input_exits_non_zero_with_one_line_and_changes_nothing,
    rotate_vault_reencrypts_every_credential,
);

#[tokio::test]
async fn first_start_creates_data_dir_database_and_private_vault_key() {
    let db = TestDb::new(Backend::Sqlite).await.unwrap();
    let cli = Cli::new(&db);
    let mut cli = cli;
    cli.env.remove("CLARI_MCP_DATABASE_URL");
    assert!(!cli.data_dir.exists());
    let out = cli.run(&["migrate"], None);
    assert!(out.0.status.success(), "{}", out.stderr());
    assert!(
        out.stderr().contains("generated a new vault key file"),
        "{}",
        out.stderr()
    );
    assert!(cli.data_dir.join("clari-mcp.db").exists());
    let key_file = cli.data_dir.join("vault.key");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    let key = std::fs::read_to_string(&key_file).unwrap();
    assert!(
        !out.stderr().contains(key.trim()),
        "the key is never logged"
    );
    // A second start reuses the key and says nothing about generating one.
    let again = cli.run(&["migrate"], None);
    assert!(again.0.status.success());
    assert!(!again.stderr().contains("generated"));
    assert_eq!(std::fs::read_to_string(&key_file).unwrap(), key);
    // WAL mode is on.
    let mode: (String,) = sqlx::query_as("PRAGMA journal_mode")
        .fetch_one(
            &sqlx::SqlitePool::connect(&format!(
                "sqlite://{}/clari-mcp.db",
                cli.data_dir.display()
            ))
            .await
            .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(mode.0, "wal");
}

async fn migrate_and_org_commands_work(db: &TestDb) {
    let cli = Cli::new(db);
    assert!(cli.ok(&["migrate"], None).contains("up to date"));
    let id = cli
        .ok(&["org", "create", "--name", "Acme Corp"], None)
        .trim()
        .to_owned();
    assert_eq!(id.len(), 36, "prints the org id: {id}");
    let table = cli.ok(&["org", "list"], None);
    assert!(
        table.contains(&id) && table.contains("Acme Corp") && table.contains("not set"),
        "{table}"
    );
    cli.ok(&["org", "disable", "--org", "Acme Corp"], None);
    let json: serde_json::Value =
        serde_json::from_str(&cli.ok(&["org", "list", "--json"], None)).unwrap();
    assert_eq!(json[0]["disabled"], true);
    cli.ok(&["org", "enable", "--org", &id], None);
    let json: serde_json::Value =
        serde_json::from_str(&cli.ok(&["org", "list", "--json"], None)).unwrap();
    assert_eq!(json[0]["disabled"], false);
    assert_eq!(json[0]["id"], id.as_str());

    // Pre-warmed tabs: a list (repeats dropped), off, or back to the server's default.
    let org = clari_mcp::store::OrgId::parse(&id).unwrap();
    let store = db.store().await;
    let said = cli.ok(
        &[
            "org",
            "set",
            "--org",
            &id,
            "--prewarm",
            "forecast, renewals,forecast",
        ],
        None,
    );
    assert!(said.contains("forecast,renewals"), "{said}");
    assert_eq!(
        store.org_prewarm(&org).await.unwrap().as_deref(),
        Some("forecast,renewals")
    );
    cli.ok(&["org", "set", "--org", &id, "--prewarm", "none"], None);
    assert_eq!(store.org_prewarm(&org).await.unwrap().as_deref(), Some(""));
    cli.ok(&["org", "set", "--org", &id, "--prewarm", "default"], None);
    assert_eq!(store.org_prewarm(&org).await.unwrap(), None);
}

async fn clari_key_is_read_from_stdin_stored_encrypted_and_never_shown(db: &TestDb) {
    let cli = Cli::new(db);
    let org = cli
        .ok(&["org", "create", "--name", "Acme"], None)
        .trim()
        .to_owned();
    let secret = "clari-live-key-0123456789WXYZ";
    let out = cli.run(
        &[
            "org",
            "set-clari-key",
            "--org",
            "Acme",
            "--base-url",
            "http://127.0.0.1:9/v4/",
        ],
        Some(&format!("{secret}\n")),
    );
    assert!(out.0.status.success(), "{}", out.stderr());
    assert!(out.stdout().contains("****WXYZ"));
    assert!(!out.stdout().contains(secret) && !out.stderr().contains(secret));
    let listing = cli.ok(&["org", "list", "--json"], None);
    assert!(!listing.contains(secret));
    let json: serde_json::Value = serde_json::from_str(&listing).unwrap();
    assert_eq!(json[0]["clari_key"]["hint"], "WXYZ");
    assert_eq!(json[0]["clari_key"]["base_url"], "http://127.0.0.1:9/v4");

    // The stored ciphertext is Fernet under the vault key, readable by Python's implementation.
    let store = db.store().await;
    let cred = store
        .clari_credential(&clari_mcp::store::OrgId::parse(&org).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert!(!cred.ciphertext.contains(secret));
    let vault_key = std::fs::read_to_string(cli.data_dir.join("vault.key")).unwrap();
    let vault_key = vault_key.lines().next().unwrap().trim().to_owned();
    let vault = Vault::new(&[SecretString::from(vault_key.clone())]).unwrap();
    assert_eq!(
        &*vault.open(&cred.ciphertext, &cred.key_id).unwrap(),
        secret.as_bytes()
    );
    if let Some(plain) = python_fernet_decrypt(&vault_key, &cred.ciphertext) {
        assert_eq!(plain, secret);
    }
}

async fn user_and_api_key_commands_work(db: &TestDb) {
    let cli = Cli::new(db);
    cli.ok(&["org", "create", "--name", "Acme"], None);
    cli.ok(&["org", "create", "--name", "Globex"], None);
    let uid = cli.ok(
        &[
            "user",
            "create",
            "--org",
            "Acme",
            "--email",
            "Ava@Acme.test",
            "--role",
            "admin",
        ],
        Some(PASSWORD),
    );
    assert_eq!(uid.trim().len(), 36);
    let users = cli.ok(&["user", "list", "--org", "Acme"], None);
    assert!(
        users.contains("ava@acme.test") && users.contains("admin"),
        "{users}"
    );

    // The stored hash verifies the password given on stdin.
    let store = db.store().await;
    let creds = store
        .find_user_by_email(&Email::parse("ava@acme.test").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert!(creds.password_hash.starts_with("$argon2id$"));
    let passwords = clari_mcp::crypto::Passwords::new(1);
    assert!(
        passwords
            .verify(
                SecretString::from(PASSWORD.to_owned()),
                Some(creds.password_hash)
            )
            .await
            .unwrap()
    );

    let out = cli.run(
        &[
            "api-key",
            "create",
            "--email",
            "ava@acme.test",
            "--scopes",
            "forecasts:read,users:read",
            "--name",
            "laptop",
            "--expires-in",
            "90d",
        ],
        None,
    );
    assert!(out.0.status.success(), "{}", out.stderr());
    let key = out.stdout().trim().to_owned();
    assert!(key.starts_with("cmk_") && key.len() == 47, "{key}");
    assert!(out.stderr().contains("shown only once"));
    let principal = store
        .authenticate_api_key(
            &sha256_hex(&key),
            time::OffsetDateTime::now_utc().unix_timestamp(),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(principal.scopes.to_string(), "forecasts:read users:read");

    let listing = cli.ok(&["api-key", "list", "--json"], None);
    assert!(!listing.contains(&key));
    let keys: serde_json::Value = serde_json::from_str(&listing).unwrap();
    let id = keys[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(keys[0]["name"], "laptop");
    assert!(keys[0]["expires_at"].as_i64().unwrap() > 0);
    assert!(
        cli.ok(&["api-key", "list", "--org", "Globex"], None)
            .lines()
            .count()
            == 1,
        "header only"
    );

    // Several memberships require --org.
    cli.ok(
        &[
            "user",
            "add-to-org",
            "--org",
            "Globex",
            "--email",
            "ava@acme.test",
        ],
        None,
    );
    let err = cli.fails(
        &[
            "api-key",
            "create",
            "--email",
            "ava@acme.test",
            "--scopes",
            "clari:read",
        ],
        None,
    );
    assert!(err.contains("--org"), "{err}");
    cli.ok(
        &[
            "api-key",
            "create",
            "--email",
            "ava@acme.test",
            "--scopes",
            "clari:read",
            "--org",
            "Globex",
        ],
        None,
    );

    assert!(
        cli.ok(&["api-key", "revoke", &id], None)
            .contains("revoked")
    );
    assert!(
        cli.ok(&["api-key", "revoke", &id], None)
            .contains("already revoked")
    );
    assert!(
        store
            .authenticate_api_key(
                &sha256_hex(&key),
                time::OffsetDateTime::now_utc().unix_timestamp()
            )
            .await
            .unwrap()
            .is_none()
    );
    let listing = cli.ok(&["api-key", "list"], None);
    assert!(listing.contains("revoked"), "{listing}");

    cli.ok(&["user", "disable", "--email", "ava@acme.test"], None);
    assert!(
        cli.ok(&["user", "list", "--org", "Acme"], None)
            .contains("disabled")
    );
}

async fn bad_input_exits_non_zero_with_one_line_and_changes_nothing(db: &TestDb) {
    let cli = Cli::new(db);
    cli.ok(&["org", "create", "--name", "Acme"], None);
    let before = cli.ok(&["org", "list", "--json"], None);

    let cases: &[(&[&str], Option<&str>, &str)] = &[
        (&["org", "create", "--name", "Acme"], None, "already exists"),
        (
            &["org", "create", "--name", "  "],
            None,
            "must not be empty",
        ),
        (
            &["org", "set-clari-key", "--org", "Nope"],
            Some("k-123456789"),
            "unknown organisation",
        ),
        (
            &["org", "set-clari-key", "--org", "Acme"],
            Some(""),
            "no Clari API key on standard input",
        ),
        (
            &["org", "set-clari-key", "--org", "Acme"],
            Some("has space inside"),
            "without spaces",
        ),
        (
            &[
                "org",
                "set-clari-key",
                "--org",
                "Acme",
                "--base-url",
                "ftp://x",
            ],
            Some("k-123456789"),
            "--base-url",
        ),
        (
            &["org", "disable", "--org", "Nope"],
            None,
            "unknown organisation",
        ),
        (
            &[
                "org",
                "set",
                "--org",
                "Acme",
                "--prewarm",
                "forecast,not a tab",
            ],
            None,
            "--prewarm: 'not a tab' is not a forecast tab id",
        ),
        (
            &["org", "set", "--org", "Acme", "--prewarm", " , "],
            None,
            "--prewarm: name forecast tabs",
        ),
        (
            &["user", "create", "--org", "Nope", "--email", "a@b.test"],
            Some(PASSWORD),
            "unknown organisation",
        ),
        (
            &["user", "create", "--org", "Acme", "--email", "not-an-email"],
            Some(PASSWORD),
            "not an e-mail",
        ),
        (
            &["user", "create", "--org", "Acme", "--email", "a@b.test"],
            Some("short"),
            "at least 12",
        ),
        (
            &["user", "create", "--org", "Acme", "--email", "a@b.test"],
            Some(""),
            "no password",
        ),
        (
            &[
                "api-key",
                "create",
                "--email",
                "ghost@b.test",
                "--scopes",
                "clari:read",
            ],
            None,
            "unknown user",
        ),
        (
            &["api-key", "revoke", "no-such-id"],
            None,
            "unknown API key",
        ),
    ];
    for (args, stdin, expected) in cases {
        let line = cli.fails(args, *stdin);
        assert!(line.contains(expected), "{args:?}: {line}");
    }
    // Malformed scope and duration, for a real user.
    cli.ok(
        &[
            "user",
            "create",
            "--org",
            "Acme",
            "--email",
            "ava@acme.test",
        ],
        Some(PASSWORD),
    );
    let line = cli.fails(
        &[
            "api-key",
            "create",
            "--email",
            "ava@acme.test",
            "--scopes",
            "forecasts:write",
        ],
        None,
    );
    assert!(line.contains("unknown scope 'forecasts:write'"), "{line}");
    let line = cli.fails(
        &[
            "api-key",
            "create",
            "--email",
            "ava@acme.test",
            "--scopes",
            "clari:read",
            "--expires-in",
            "90",
        ],
        None,
    );
    assert!(line.contains("--expires-in"), "{line}");
    let line = cli.fails(
        &[
            "user",
            "create",
            "--org",
            "Acme",
            "--email",
            "AVA@acme.test",
        ],
        Some(PASSWORD),
    );
    assert!(line.contains("already exists"), "{line}");

    assert_eq!(
        cli.ok(&["org", "list", "--json"], None),
        before,
        "orgs unchanged"
    );
    assert!(cli.ok(&["api-key", "list", "--json"], None).trim() == "[]");
    let users = cli.ok(&["user", "list", "--org", "Acme", "--json"], None);
    let users: serde_json::Value = serde_json::from_str(&users).unwrap();
    assert_eq!(
        users.as_array().unwrap().len(),
        1,
        "only the one valid user exists"
    );
}

async fn rotate_vault_reencrypts_every_credential(db: &TestDb) {
    let mut cli = Cli::new(db);
    let old = Vault::generate_key();
    cli.env.insert(
        "CLARI_MCP_VAULT_KEYS".into(),
        old.expose_secret().to_owned(),
    );
    cli.ok(&["org", "create", "--name", "A"], None);
    cli.ok(&["org", "create", "--name", "B"], None);
    cli.ok(
        &["org", "set-clari-key", "--org", "A"],
        Some("key-for-org-a-1"),
    );
    cli.ok(
        &["org", "set-clari-key", "--org", "B"],
        Some("key-for-org-b-2"),
    );

    // A person's TOTP secret, sealed under the old key, is re-encrypted too.
    cli.ok(
        &["user", "create", "--org", "A", "--email", "ann@a.test"],
        Some("ann's passphrase!"),
    );
    let store = db.store().await;
    let ann = store
        .find_user_by_email(&clari_mcp::store::Email::parse("ann@a.test").unwrap())
        .await
        .unwrap()
        .unwrap()
        .user
        .id;
    let sealed = Vault::new(std::slice::from_ref(&old))
        .unwrap()
        .seal(b"12345678901234567890");
    store
        .enable_totp(&ann, (&sealed.ciphertext, &sealed.key_id), 0, &[], 0)
        .await
        .unwrap();

    let new = Vault::generate_key();
    cli.env.insert(
        "CLARI_MCP_VAULT_KEYS".into(),
        format!("{},{}", new.expose_secret(), old.expose_secret()),
    );
    assert!(
        cli.ok(&["keys", "rotate-vault"], None)
            .contains("re-encrypted 2 Clari credential(s)")
    );
    assert!(
        cli.ok(&["keys", "rotate-vault"], None)
            .contains("re-encrypted 0")
    );
    let err = cli.fails(&["keys", "rotate-vault", "--add-key"], None);
    assert!(err.contains("CLARI_MCP_VAULT_KEYS"), "{err}");

    // With only the new key the server starts (signing and audit keys open too) and the audit
    // trail, which recorded the rotation, verifies.
    cli.env.insert(
        "CLARI_MCP_VAULT_KEYS".into(),
        new.expose_secret().to_owned(),
    );
    let out = cli.ok(&["audit", "verify"], None);
    assert!(out.contains("OK") && !out.contains("broken"), "{out}");
    // Every credential still opens.
    let only_new = Vault::new(&[new]).unwrap();
    let totp = store.totp_of(&ann).await.unwrap().unwrap();
    assert_eq!(totp.key_id, only_new.primary_key_id());
    assert_eq!(
        &*only_new.open(&totp.ciphertext, &totp.key_id).unwrap(),
        b"12345678901234567890"
    );
    for (name, plain) in [("A", "key-for-org-a-1"), ("B", "key-for-org-b-2")] {
        let org = store.find_org(name).await.unwrap().unwrap();
        let c = store.clari_credential(&org.id).await.unwrap().unwrap();
        assert_eq!(c.key_id, only_new.primary_key_id());
        assert_eq!(
            &*only_new.open(&c.ciphertext, &c.key_id).unwrap(),
            plain.as_bytes()
        );
    }

    // Key-file mode: --add-key prepends a key and re-encrypts under it.
    cli.env.remove("CLARI_MCP_VAULT_KEYS");
    cli.env.insert(
        "CLARI_MCP_DATA_DIR".into(),
        db.dir.path().join("file-mode").display().to_string(),
    );
    let file_db = format!("sqlite://{}/file-mode/other.db", db.dir.path().display());
    cli.env.insert("CLARI_MCP_DATABASE_URL".into(), file_db);
    cli.ok(&["org", "create", "--name", "C"], None);
    cli.ok(
        &["org", "set-clari-key", "--org", "C"],
        Some("key-for-org-c-3"),
    );
    let out = cli.ok(&["keys", "rotate-vault", "--add-key"], None);
    assert!(out.contains("re-encrypted 1"), "{out}");
    let file = std::fs::read_to_string(db.dir.path().join("file-mode/vault.key")).unwrap();
    assert_eq!(file.lines().filter(|l| !l.trim().is_empty()).count(), 2);
}

#[tokio::test]
async fn sandbox_describe_prints_base_url_and_keys_as_json() {
    let db = TestDb::new(Backend::Sqlite).await.unwrap();
    let cli = Cli::new(&db);
    let out = cli.ok(&["sandbox", "--describe", "--port", "9123"], None);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["base_url"], "http://127.0.0.1:9123/v4");
    let orgs = v["orgs"].as_array().unwrap();
    assert_eq!(orgs.len(), 2);
    assert!(
        orgs.iter()
            .all(|o| o["name"].is_string() && o["api_key"].as_str().unwrap().starts_with("sbx_"))
    );
    // Same seed, same keys.
    assert_eq!(
        cli.ok(&["sandbox", "--describe", "--port", "9123"], None),
        out
    );
}

/// Starts `clari-mcp demo` and waits until it serves; the child is killed on drop.
struct Demo(std::process::Child);

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn start_demo(dir: &std::path::Path, port: u16) -> Demo {
    start_demo_with(dir, port, &[]).await
}

async fn start_demo_with(dir: &std::path::Path, port: u16, env: &[(&str, &str)]) -> Demo {
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_clari-mcp"))
        .args([
            "demo",
            "--port",
            &port.to_string(),
            "--data-dir",
            dir.to_str().unwrap(),
        ])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RUST_LOG", "warn")
        .envs(env.iter().copied())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let demo = Demo(child);
    let http = reqwest::Client::new();
    for _ in 0..150 {
        if http
            .get(format!("http://127.0.0.1:{port}/healthz"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
            && dir.join("demo-credentials.json").exists()
        {
            return demo;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("the demo did not start");
}

#[tokio::test]
async fn demo_serves_a_working_mcp_url_and_reuses_its_data() {
    clari_mcp::init_crypto();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let demo = start_demo(dir.path(), port).await;
    let path = dir.path().join("demo-credentials.json");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    let creds: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(creds["mcp_url"], format!("http://127.0.0.1:{port}/mcp"));
    assert_eq!(creds["issuer"], format!("http://127.0.0.1:{port}"));
    let key = creds["api_key"].as_str().unwrap();
    let r: serde_json::Value = reqwest::Client::new()
        .post(creds["mcp_url"].as_str().unwrap())
        .bearer_auth(key)
        .header("accept", "application/json, text/event-stream")
        .json(&serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "get_forecast", "arguments": {}}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["result"]["structuredContent"]["status"], "ready", "{r}");
    drop(demo);
    // Again: same database, same key and password.
    let _again = start_demo(dir.path(), port).await;
    let again: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(again["api_key"], creds["api_key"]);
    assert_eq!(again["password"], creds["password"]);
}

#[tokio::test]
async fn demo_honours_the_documented_settings_as_serve_does() {
    clari_mcp::init_crypto();
    let dir = tempfile::tempdir().unwrap();
    let (port, metrics_port) = (free_port(), free_port());
    let metrics_bind = format!("127.0.0.1:{metrics_port}");
    let _demo = start_demo_with(
        dir.path(),
        port,
        &[
            ("CLARI_MCP_METRICS_BIND", metrics_bind.as_str()),
            ("CLARI_MCP_PUBLIC_URL", "http://localhost:1/"),
        ],
    )
    .await;
    let body = reqwest::get(format!("http://{metrics_bind}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        body.contains("clari_mcp_connections_refused_total"),
        "{body}"
    );
    let creds: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("demo-credentials.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        creds["issuer"], "http://localhost:1",
        "the public URL set is kept"
    );
}
