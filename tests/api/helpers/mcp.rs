//! The MCP server wired to an in-process Clari sandbox, driven with JSON-RPC over HTTP.

use clari_mcp::clari::sandbox::{self, Knobs, SandboxConfig, SandboxHandle};
use clari_mcp::scope::ScopeSet;
use clari_mcp::store::{Email, OrgId, Role, UserId};
use secrecy::SecretString;
use serde_json::{Value, json};

use crate::helpers::oauth::PASSWORD;
use crate::helpers::{TestApp, TestDb, spawn_app_with};

pub const PROTOCOL: &str = "2025-11-25";

pub struct McpEnv {
    pub app: TestApp,
    pub sandbox: SandboxHandle,
    pub org: OrgId,
    pub user: UserId,
}

/// The app and a sandbox; organisation "Acme" holds the sandbox's first organisation's key.
pub async fn mcp_env(db: &TestDb) -> McpEnv {
    mcp_env_with(db, &[]).await
}

pub async fn mcp_env_with(db: &TestDb, extra: &[(&str, &str)]) -> McpEnv {
    mcp_env_on(
        db,
        SandboxConfig {
            knobs: Knobs {
                job_latency_ms: 60,
                ..Knobs::default()
            },
            ..SandboxConfig::default()
        },
        extra,
    )
    .await
}

/// As [`mcp_env_with`], over a sandbox made to `config`.
pub async fn mcp_env_on(db: &TestDb, config: SandboxConfig, extra: &[(&str, &str)]) -> McpEnv {
    let sandbox = sandbox::start(config).await.unwrap();
    let mut settings = vec![
        ("CLARI_MCP_CLARI_BASE_URL", sandbox.base_url.as_str()),
        ("CLARI_MCP_EXPORT_POLL_MS", "40"),
    ];
    settings.extend_from_slice(extra);
    let app = spawn_app_with(db, &settings).await;
    // The sandbox's dataset is built around the real "now"; the app's clock must agree.
    app.clock
        .set(time::OffsetDateTime::now_utc().unix_timestamp());
    let now = app.state.now();
    let org = app
        .state
        .store
        .create_org(&crate::helpers::org_name("Acme"), now)
        .await
        .unwrap();
    let sealed = app.state.vault.seal(sandbox.orgs()[0].api_key.as_bytes());
    app.state
        .store
        .put_clari_credential(&org.id, &sealed, "xxxx", None, now)
        .await
        .unwrap();
    let hash = app
        .state
        .passwords
        .hash(SecretString::from(PASSWORD.to_owned()))
        .await
        .unwrap();
    let user = app
        .state
        .store
        .create_user(
            &org.id,
            &Email::parse("ava@acme.test").unwrap(),
            &hash,
            Role::Admin,
            now,
        )
        .await
        .unwrap();
    McpEnv {
        app,
        sandbox,
        org: org.id,
        user: user.id,
    }
}

/// The environment plus a second replica of the app over the same database (same vault key,
/// same public URL, its own memory and clock set to the first one's).
pub async fn mcp_env_with_replica(db: &TestDb) -> (McpEnv, TestApp) {
    mcp_env_with_replica_and(db, &[]).await
}

/// Two replicas, both with the extra settings.
pub async fn mcp_env_with_replica_and(db: &TestDb, extra: &[(&str, &str)]) -> (McpEnv, TestApp) {
    let vault_key = clari_mcp::crypto::Vault::generate_key();
    let mut settings = vec![(
        "CLARI_MCP_VAULT_KEYS",
        secrecy::ExposeSecret::expose_secret(&vault_key),
    )];
    settings.extend_from_slice(extra);
    let env = mcp_env_with(db, &settings).await;
    settings.extend_from_slice(&[
        ("CLARI_MCP_CLARI_BASE_URL", &env.sandbox.base_url),
        ("CLARI_MCP_PUBLIC_URL", &env.app.address),
        ("CLARI_MCP_EXPORT_POLL_MS", "40"),
    ]);
    let b = spawn_app_with(db, &settings).await;
    b.clock.set(env.app.clock.now_for_tests());
    (env, b)
}

impl McpEnv {
    /// A `cmk_` API key for the environment's user with these scopes.
    pub async fn api_key(&self, scopes: &str) -> String {
        self.api_key_for(&self.org, &self.user, scopes).await
    }

    /// A `cmk_` API key for any member of any organisation.
    pub async fn api_key_for(&self, org: &OrgId, user: &UserId, scopes: &str) -> String {
        let (key, _) = clari_mcp::apikeys::mint(
            self.app.state.store.as_ref(),
            clari_mcp::apikeys::KeyRequest {
                org,
                user,
                name: "test",
                scopes: ScopeSet::parse(scopes).unwrap(),
                expires_at: None,
                now: self.app.state.now(),
            },
        )
        .await
        .unwrap();
        secrecy::ExposeSecret::expose_secret(&key).to_owned()
    }
}

pub struct Rpc {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

pub async fn rpc(app: &TestApp, token: Option<&str>, method: &str, params: Value) -> Rpc {
    let mut req = app
        .http
        .post(app.url("/mcp"))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", PROTOCOL)
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let text = r.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or_else(|_| {
        // An SSE answer: take the data line.
        text.lines()
            .find_map(|l| l.strip_prefix("data:"))
            .and_then(|d| serde_json::from_str(d.trim()).ok())
            .unwrap_or(Value::String(text))
    });
    Rpc {
        status,
        headers,
        body,
    }
}

/// `tools/call`, returning the result object.
pub async fn call_tool(app: &TestApp, token: &str, name: &str, args: Value) -> Value {
    let r = rpc(
        app,
        Some(token),
        "tools/call",
        json!({"name": name, "arguments": args}),
    )
    .await;
    assert_eq!(r.status, 200, "{}: {}", name, r.body);
    r.body["result"].clone()
}
