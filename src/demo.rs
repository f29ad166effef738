//! `clari-mcp demo`: the whole product on one machine. SQLite in a data directory, the Clari
//! sandbox in-process, a demo organisation holding the sandbox's key in the vault, an admin user
//! with a random password and a `clari:read` API key. It prints the MCP URL and ready-to-paste
//! client configuration, and writes `<data-dir>/demo-credentials.json` (mode 0600). Re-running
//! reuses the same data and credentials.

use std::path::Path;

use anyhow::Context;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use crate::app::{AppState, Application, shutdown_signal};
use crate::clari::sandbox::{self, SandboxConfig};
use crate::config::{Config, write_private_file};
use crate::crypto::{random_token, sha256_hex, token::hint};
use crate::orgname::OrgName;
use crate::scope::{Scope, ScopeSet};
use crate::store::{Email, Role};

const ORG: &str = "Demo (Northwind Analytics)";
const EMAIL: &str = "admin@demo.example";
pub const CREDENTIALS_FILE: &str = "demo-credentials.json";

#[derive(Debug, Serialize, Deserialize)]
pub struct DemoCredentials {
    pub mcp_url: String,
    pub issuer: String,
    pub email: String,
    pub password: String,
    pub api_key: String,
    /// The in-process Clari sandbox (its knobs at `<origin>/_sandbox/knobs`); a new port each run.
    #[serde(default)]
    pub sandbox_url: String,
}

pub async fn run(config_file: Option<&Path>, port: u16, data_dir: &Path) -> anyhow::Result<()> {
    crate::config::create_private_dir(data_dir)
        .with_context(|| format!("creating {}", data_dir.display()))?;
    let data_dir = data_dir
        .canonicalize()
        .with_context(|| format!("resolving {}", data_dir.display()))?;
    crate::init_crypto();
    let sandbox = sandbox::start(SandboxConfig::default())
        .await
        .context("starting the Clari sandbox")?;
    // The demo's own choices fill what the environment and the file leave unset (so
    // CLARI_MCP_DATABASE_URL, CLARI_MCP_PUBLIC_URL and every other documented setting work as in
    // `serve`); only the port (`--port`) and the Clari base URL (the sandbox) are the demo's.
    let config = Config::load_with_defaults(
        config_file,
        &[
            ("CLARI_MCP_PUBLIC_URL", format!("http://127.0.0.1:{port}")),
            ("CLARI_MCP_DATA_DIR", data_dir.display().to_string()),
            (
                "CLARI_MCP_DATABASE_URL",
                format!("sqlite://{}/clari-mcp.db", data_dir.display()),
            ),
        ],
        &[
            ("CLARI_MCP_BIND", format!("127.0.0.1:{port}")),
            ("CLARI_MCP_CLARI_BASE_URL", sandbox.base_url.clone()),
        ],
    )
    .context("configuration")?;
    crate::telemetry::init(config.log_format, config.otlp_endpoint.as_deref());
    let state = AppState::from_config(config).await?;
    let creds = provision(
        &state,
        &sandbox.orgs()[0].api_key,
        &sandbox.base_url,
        &data_dir,
    )
    .await?;
    let app = Application::build(state.clone()).await?;
    print_instructions(&creds, &sandbox.base_url, &data_dir);
    crate::app::serve_until_stopped(state, app, shutdown_signal()).await?;
    drop(sandbox);
    Ok(())
}

/// Creates (or reuses) the demo organisation, user and API key; returns the credentials.
async fn provision(
    state: &AppState,
    clari_key: &str,
    sandbox_url: &str,
    data_dir: &Path,
) -> anyhow::Result<DemoCredentials> {
    let now = state.now();
    let store = &state.store;
    let org = match store.find_org(ORG).await? {
        Some(o) => o,
        None => store.create_org(&OrgName::parse(ORG)?, now).await?,
    };
    // The sandbox's base URL changes with its port, so the credential takes the configured one.
    let sealed = state.vault.seal(clari_key.as_bytes());
    store
        .put_clari_credential(&org.id, &sealed, &hint(clari_key), None, now)
        .await?;

    let path = data_dir.join(CREDENTIALS_FILE);
    let previous: Option<DemoCredentials> = std::fs::read_to_string(&path)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok());
    let email = Email::parse(EMAIL).map_err(|e| anyhow::anyhow!(e))?;

    // The user: reuse with the saved password when it still verifies, else set a new one.
    let existing = store.find_user_by_email(&email).await?;
    let password = match (&existing, &previous) {
        (Some(u), Some(p))
            if state
                .passwords
                .verify(
                    SecretString::from(p.password.clone()),
                    Some(u.password_hash.clone()),
                )
                .await
                .unwrap_or(false) =>
        {
            p.password.clone()
        }
        _ => random_token(18),
    };
    let hash = state
        .passwords
        .hash(SecretString::from(password.clone()))
        .await?;
    match existing {
        None => {
            store
                .create_user(&org.id, &email, &hash, Role::Admin, now)
                .await?;
        }
        Some(u) => {
            store.set_user_password(&u.user.id, &hash, false).await?;
            if !store
                .memberships(&u.user.id)
                .await?
                .iter()
                .any(|m| m.organization.id == org.id)
            {
                store
                    .add_membership(&org.id, &u.user.id, Role::Admin, now)
                    .await?;
            }
        }
    }
    let user = store
        .find_user_by_email(&email)
        .await?
        .context("the demo user was just created")?
        .user;

    // The API key: reuse while it still authenticates.
    let api_key = match &previous {
        Some(p)
            if store
                .authenticate_api_key(&sha256_hex(&p.api_key), now)
                .await?
                .is_some() =>
        {
            p.api_key.clone()
        }
        _ => {
            let (key, _) = crate::apikeys::mint(
                store.as_ref(),
                crate::apikeys::KeyRequest {
                    org: &org.id,
                    user: &user.id,
                    name: "demo",
                    scopes: ScopeSet::new([Scope::ClariRead]),
                    expires_at: None,
                    now,
                },
            )
            .await?;
            key.expose_secret().to_owned()
        }
    };
    let creds = DemoCredentials {
        mcp_url: state.config.mcp_url.clone(),
        issuer: state.config.issuer.clone(),
        email: EMAIL.into(),
        password,
        api_key,
        sandbox_url: sandbox_url.to_owned(),
    };
    let text = serde_json::to_string_pretty(&creds)?;
    let _ = std::fs::remove_file(&path);
    write_private_file(&path, text.as_bytes())
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(creds)
}

fn print_instructions(c: &DemoCredentials, sandbox_url: &str, data_dir: &Path) {
    let cursor = serde_json::json!({"mcpServers": {"clari": {"url": c.mcp_url, "headers": {"Authorization": format!("Bearer {}", c.api_key)}}}});
    let desktop = serde_json::json!({"mcpServers": {"clari": {"command": "npx", "args": ["-y", "mcp-remote", c.mcp_url, "--header", format!("Authorization: Bearer {}", c.api_key)]}}});
    let binary = std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "clari-mcp".into());
    let stdio = serde_json::json!({"mcpServers": {"clari": {"command": binary, "args": ["stdio"], "env": {"CLARI_API_KEY": "<your Clari API key>"}}}});
    println!(
        r#"
clari-mcp demo is running.

  MCP URL       {mcp}
  Sign-in       {email} / {password}   (OAuth clients open a browser to {issuer}/authorize)
  API key       {key}   (scope clari:read)
  Clari sandbox {sandbox}

OAuth clients (Claude, Cursor, VS Code, MCP Inspector) only need the MCP URL: they discover the
authorization server, register themselves and send you to the sign-in page.

Claude Code:
  claude mcp add --transport http clari {mcp} --header "Authorization: Bearer {key}"

Cursor (.cursor/mcp.json):
{cursor}

Claude Desktop (claude_desktop_config.json):
{desktop}

Or, with no server at all, over stdio for one person (Claude Desktop, Claude Code, Cursor) with
your own Clari API key (state in ~/.local/share/clari-mcp):
{stdio}

curl:
  curl -s {mcp} -H 'Authorization: Bearer {key}' -H 'Content-Type: application/json' \
       -H 'Accept: application/json, text/event-stream' -H 'MCP-Protocol-Version: 2025-11-25' \
       -d '{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"get_forecast","arguments":{{}}}}}}'

The same credentials are in {file} (readable by you only). Press Ctrl-C to stop.
"#,
        mcp = c.mcp_url,
        email = c.email,
        password = c.password,
        issuer = c.issuer,
        key = c.api_key,
        sandbox = sandbox_url,
        cursor = serde_json::to_string_pretty(&cursor).unwrap_or_default(),
        desktop = serde_json::to_string_pretty(&desktop).unwrap_or_default(),
        stdio = serde_json::to_string_pretty(&stdio).unwrap_or_default(),
        file = data_dir.join(CREDENTIALS_FILE).display(),
    );
}

/// The conformance build's server: a throwaway data directory, the sandbox, one organisation
/// holding the sandbox key, and a fixed identity with `clari:read` in place of the bearer layer.
#[cfg(feature = "conformance")]
pub async fn conformance_server(port: u16) -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("clari-mcp-conformance-{}", random_token(8)));
    std::fs::create_dir_all(&dir)?;
    crate::init_crypto();
    let sandbox = sandbox::start(SandboxConfig::default())
        .await
        .context("starting the Clari sandbox")?;
    let config = Config::load_with(
        None,
        &[
            ("CLARI_MCP_BIND", format!("127.0.0.1:{port}")),
            ("CLARI_MCP_PUBLIC_URL", format!("http://127.0.0.1:{port}")),
            ("CLARI_MCP_DATA_DIR", dir.display().to_string()),
            (
                "CLARI_MCP_DATABASE_URL",
                format!("sqlite://{}/clari-mcp.db", dir.display()),
            ),
            ("CLARI_MCP_CLARI_BASE_URL", sandbox.base_url.clone()),
        ],
    )?;
    crate::telemetry::init(config.log_format, config.otlp_endpoint.as_deref());
    let state = AppState::from_config(config).await?;
    let now = state.now();
    let org = state
        .store
        .create_org(&OrgName::parse("Conformance")?, now)
        .await?;
    let key = sandbox.orgs()[0].api_key.clone();
    state
        .store
        .put_clari_credential(
            &org.id,
            &state.vault.seal(key.as_bytes()),
            &hint(&key),
            None,
            now,
        )
        .await?;
    let hash = state
        .passwords
        .hash(SecretString::from(random_token(18)))
        .await?;
    let user = state
        .store
        .create_user(
            &org.id,
            &Email::parse("conformance@example.com").map_err(|e| anyhow::anyhow!(e))?,
            &hash,
            Role::Admin,
            now,
        )
        .await?;
    let _ = state
        .conformance_identity
        .set(crate::principal::AuthContext {
            org_id: org.id,
            user_id: Some(user.id),
            subject: crate::principal::Subject::ApiKey {
                key_id: crate::store::ApiKeyId::parse("conformance").expect("a fixed id parses"),
            },
            scopes: ScopeSet::new([Scope::ClariRead]),
            checked: None,
        });
    let app = Application::build(state).await?;
    println!("conformance server on http://127.0.0.1:{port}/mcp");
    app.run_until_stopped(shutdown_signal()).await?;
    let _ = std::fs::remove_dir_all(&dir);
    drop(sandbox);
    Ok(())
}
