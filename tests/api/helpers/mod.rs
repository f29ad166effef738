//! Shared test plumbing: a fresh database per test (a temporary SQLite file, or a fresh PostgreSQL
//! database when `CLARI_MCP_TEST_POSTGRES_URL` is set), the app on 127.0.0.1:0, and the CLI binary;
//! driving the authorization server (`oauth`) and the MCP server (`mcp`) as clients do.

pub mod mcp;
pub mod oauth;

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::Duration;

use clari_mcp::app::{AppState, Application};
use clari_mcp::clock::{Clock, ManualClock};
use clari_mcp::config::Config;
use clari_mcp::crypto::Vault;
use clari_mcp::store::{self, Store};
use secrecy::ExposeSecret;

pub const POSTGRES_ENV: &str = "CLARI_MCP_TEST_POSTGRES_URL";

/// Says, where `cargo test` shows it even for passing tests, that a Postgres case was skipped.
pub fn announce_skip(test: &str) {
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED (PostgreSQL): {test}: set {POSTGRES_ENV}=postgres://postgres@127.0.0.1:5432/test to run it"
    );
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A database that exists only for one test.
pub struct TestDb {
    pub url: String,
    pub dir: tempfile::TempDir,
    pg: Option<(String, String)>, // (admin url, database name)
}

impl TestDb {
    /// `None` when the backend is PostgreSQL and no server is configured.
    pub async fn new(backend: Backend) -> Option<Self> {
        let dir = tempfile::tempdir().expect("tempdir");
        match backend {
            Backend::Sqlite => Some(Self {
                url: format!("sqlite://{}/clari-mcp.db", dir.path().display()),
                dir,
                pg: None,
            }),
            Backend::Postgres => {
                let admin = std::env::var(POSTGRES_ENV).ok().filter(|u| !u.is_empty())?;
                let name = format!("cmtest_{}", uuid::Uuid::new_v4().simple());
                let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&admin)
                    .await
                    .expect("connect to CLARI_MCP_TEST_POSTGRES_URL");
                sqlx::Executor::execute(
                    &mut conn,
                    sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")),
                )
                .await
                .expect("create test database");
                let mut url = url::Url::parse(&admin).expect("postgres url");
                url.set_path(&name);
                Some(Self {
                    url: url.to_string(),
                    dir,
                    pg: Some((admin, name)),
                })
            }
        }
    }

    /// The PostgreSQL test database: (admin URL, database name).
    /// Turns new connections to this PostgreSQL test database off or on (open ones stay).
    pub async fn allow_connections(&self, allow: bool) {
        let (admin, name) = self.postgres().expect("a PostgreSQL test database");
        let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(admin)
            .await
            .expect("connect as the admin");
        sqlx::Executor::execute(
            &mut conn,
            sqlx::AssertSqlSafe(format!(
                "ALTER DATABASE {name} WITH ALLOW_CONNECTIONS {allow}"
            )),
        )
        .await
        .expect("ALTER DATABASE");
    }

    pub fn postgres(&self) -> Option<(&str, &str)> {
        self.pg.as_ref().map(|(a, n)| (a.as_str(), n.as_str()))
    }

    pub async fn store(&self) -> Arc<dyn Store> {
        store::connect(&self.url).await.expect("open test store")
    }

    /// Drops a PostgreSQL test database; a temporary SQLite file goes with the directory.
    pub async fn cleanup(self) {
        if let Some((admin, name)) = &self.pg
            && let Ok(mut conn) = <sqlx::PgConnection as sqlx::Connection>::connect(admin).await
        {
            let _ = sqlx::Executor::execute(
                &mut conn,
                sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")),
            )
            .await;
        }
    }
}

/// Runs a test body against both backends; the Postgres half announces itself when skipped.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    let db = $crate::helpers::TestDb::new($crate::helpers::Backend::Sqlite).await.unwrap();
                    super::$name(&db).await;
                    db.cleanup().await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $name() {
                    let Some(db) = $crate::helpers::TestDb::new($crate::helpers::Backend::Postgres).await else {
                        $crate::helpers::announce_skip(concat!(module_path!(), "::", stringify!($name)));
                        return;
                    };
                    super::$name(&db).await;
                    db.cleanup().await;
                }
            )*
        }
    };
}

pub fn config_for(db: &TestDb, bind: &str, extra: &[(&str, &str)]) -> Config {
    let mut env: HashMap<String, String> = HashMap::new();
    env.insert("CLARI_MCP_BIND".into(), bind.into());
    env.insert(
        "CLARI_MCP_DATA_DIR".into(),
        db.dir.path().join("data").display().to_string(),
    );
    env.insert("CLARI_MCP_DATABASE_URL".into(), db.url.clone());
    env.insert(
        "CLARI_MCP_VAULT_KEYS".into(),
        Vault::generate_key().expose_secret().to_owned(),
    );
    for (k, v) in extra {
        env.insert((*k).into(), (*v).into());
    }
    Config::from_sources(None, &env).expect("test config")
}

#[allow(dead_code)] // later features drive the clock and state
pub struct TestApp {
    pub address: String,
    pub state: AppState,
    pub clock: ManualClock,
    pub http: reqwest::Client,
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }
}

/// Starts the app on 127.0.0.1:0 over the given database, with a manual clock.
pub async fn spawn_app(db: &TestDb) -> TestApp {
    spawn_app_with(db, &[]).await
}

/// Starts the app with extra `CLARI_MCP_*` settings.
pub async fn spawn_app_with(db: &TestDb, extra: &[(&str, &str)]) -> TestApp {
    clari_mcp::init_crypto();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let config = config_for(db, &addr.to_string(), extra);
    let clock = ManualClock::new(1_790_000_000);
    let (vault, _) = config.open_vault().unwrap();
    let store = db.store().await;
    let state = AppState::build(
        config,
        store,
        Arc::new(vault),
        Arc::new(clock.clone()) as Arc<dyn Clock>,
    )
    .await
    .expect("app state");
    let app = Application::from_listener(state.clone(), listener).unwrap();
    tokio::spawn(app.run_until_stopped(std::future::pending()));
    TestApp {
        address: format!("http://{addr}"),
        state,
        clock,
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
    }
}

/// Waits until `check` holds, asking again every 10 ms, and fails the test naming `what` when it
/// still does not after 10 s (a check that hangs counts against the same bound). For what happens
/// in real time: background tasks, the sandbox, other processes. What runs on the app's clock is
/// moved with `TestApp::clock` instead of waited for.
pub async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    const PATIENCE: Duration = Duration::from_secs(10);
    let held = tokio::time::timeout(PATIENCE, async {
        while !check().await {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    if held.is_err() {
        panic!("gave up after {PATIENCE:?} waiting for {what}");
    }
}

/// The `clari-mcp` binary with a private environment (no inherited CLARI_MCP_* settings).
pub struct Cli {
    pub env: HashMap<String, String>,
    pub data_dir: PathBuf,
}

impl Cli {
    pub fn new(db: &TestDb) -> Self {
        let data_dir = db.dir.path().join("data");
        let mut env = HashMap::new();
        env.insert(
            "CLARI_MCP_DATA_DIR".to_owned(),
            data_dir.display().to_string(),
        );
        env.insert("CLARI_MCP_DATABASE_URL".to_owned(), db.url.clone());
        Self { env, data_dir }
    }

    pub fn run(&self, args: &[&str], stdin: Option<&str>) -> CliOutput {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_clari-mcp"));
        cmd.args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("RUST_LOG", "warn")
            .envs(&self.env)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("run clari-mcp");
        {
            let mut input = child.stdin.take().unwrap();
            if let Some(text) = stdin {
                input.write_all(text.as_bytes()).unwrap();
            }
        }
        CliOutput(child.wait_with_output().unwrap())
    }

    /// Runs and asserts success, returning stdout.
    pub fn ok(&self, args: &[&str], stdin: Option<&str>) -> String {
        let out = self.run(args, stdin);
        assert!(
            out.0.status.success(),
            "clari-mcp {args:?} failed: {}",
            out.stderr()
        );
        out.stdout()
    }

    /// Runs and asserts failure with exactly one `error:` line, returning it.
    pub fn fails(&self, args: &[&str], stdin: Option<&str>) -> String {
        let out = self.run(args, stdin);
        assert!(
            !out.0.status.success(),
            "clari-mcp {args:?} should fail, printed {}",
            out.stdout()
        );
        let errors: Vec<&str> = out.stderr_lines();
        let error_lines: Vec<&&str> = errors.iter().filter(|l| l.starts_with("error")).collect();
        assert_eq!(error_lines.len(), 1, "one error line expected: {errors:?}");
        error_lines[0].to_string()
    }
}

pub struct CliOutput(pub Output);

impl CliOutput {
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.0.stdout).into_owned()
    }
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.0.stderr).into_owned()
    }
    fn stderr_lines(&self) -> Vec<&str> {
        std::str::from_utf8(&self.0.stderr)
            .unwrap_or_default()
            .lines()
            .filter(|l| !l.trim().is_empty())
            .collect()
    }
}

/// Where the shared reference material lives (beside the repository in CI).
pub fn shared_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared")
}

/// Runs Python with `cryptography`; `None` (after announcing it) when unavailable outside CI.
pub fn python_fernet_decrypt(key: &str, token: &str) -> Option<String> {
    let script = "import sys\nfrom cryptography.fernet import Fernet\nk, t = sys.stdin.read().split('\\n')[:2]\nsys.stdout.write(Fernet(k.encode()).decrypt(t.encode()).decode())";
    let child = Command::new("python3")
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => return python_missing(&e.to_string()),
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{key}\n{token}\n").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    if stderr.contains("No module named 'cryptography'") {
        return python_missing("the cryptography package is not installed");
    }
    assert!(out.status.success(), "python failed to decrypt: {stderr}");
    Some(String::from_utf8(out.stdout).unwrap())
}

fn python_missing(why: &str) -> Option<String> {
    assert!(
        std::env::var("CI").is_err(),
        "python3 with cryptography is required in CI: {why}"
    );
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED (Python interop): {why}; `pip install cryptography` to run it"
    );
    None
}

/// An organisation name for tests (panics on an invalid one).
pub fn org_name(name: &str) -> clari_mcp::orgname::OrgName {
    clari_mcp::orgname::OrgName::parse(name).expect("a valid organisation name")
}

/// A port nothing listens on right now, for a server started as a child process.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
