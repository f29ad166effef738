//! `clari-mcp stdio`: the same tools, resources and prompts for one person's local agent (Claude
//! Desktop, Claude Code, Cursor), over MCP's stdio transport. No listener and no OAuth: the
//! agent starts this process and speaks JSON-RPC on its standard input and output.
//!
//! The Clari key comes from `CLARI_API_KEY`, or from a file (`--clari-key-file` or
//! `CLARI_API_KEY_FILE`). State lives in a small SQLite file in the data directory
//! (`--data-dir`, else `CLARI_MCP_DATA_DIR`, else `$XDG_DATA_HOME/clari-mcp` or
//! `~/.local/share/clari-mcp`): one organisation "Local" holding the key sealed in the vault, one
//! user, and a `clari:read` API key the process acts as. So the export cache, the export queue,
//! tasks, redaction, the audit trail and the kill switch (`org disable`) work exactly as in the
//! server. Standard output carries only protocol messages; logs go to standard error.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, anyhow, bail};
use rmcp::ServiceExt;
use secrecy::{ExposeSecret, SecretString};

use crate::app::AppState;
use crate::config::{Config, create_private_dir, write_private_file};
use crate::crypto::{random_token, sha256_hex, token::hint};
use crate::orgname::OrgName;
use crate::scope::{Scope, ScopeSet};
use crate::store::{Email, Role};

/// The organisation a stdio process keeps its state under.
pub const ORG: &str = "Local";
const EMAIL: &str = "me@clari-mcp.local";
/// The API key the process acts as, kept beside the database (mode 0600).
const KEY_FILE: &str = "stdio-api-key";
/// The database file in the data directory.
pub const DATABASE_FILE: &str = "local.db";

#[derive(Debug, clap::Args)]
pub struct StdioArgs {
    /// Where the local database and vault key live.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// A file holding the Clari API key (instead of `CLARI_API_KEY`).
    #[arg(long, value_name = "FILE", env = "CLARI_API_KEY_FILE")]
    pub clari_key_file: Option<PathBuf>,
}

/// The data directory when none is named: `CLARI_MCP_DATA_DIR`, else the XDG data directory.
fn default_data_dir() -> anyhow::Result<PathBuf> {
    if let Some(d) = std::env::var_os("CLARI_MCP_DATA_DIR").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(d));
    }
    if let Some(d) = std::env::var_os("XDG_DATA_HOME").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(d).join("clari-mcp"));
    }
    let home = std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .ok_or_else(|| anyhow!("no data directory: set --data-dir or CLARI_MCP_DATA_DIR"))?;
    Ok(PathBuf::from(home).join(".local/share/clari-mcp"))
}

/// The Clari API key: the file when one is named, else `CLARI_API_KEY`.
fn clari_key(file: Option<&Path>) -> anyhow::Result<SecretString> {
    let key = match file {
        Some(f) => std::fs::read_to_string(f)
            .with_context(|| format!("reading the Clari API key from {}", f.display()))?,
        None => std::env::var("CLARI_API_KEY").map_err(|_| {
            anyhow!("no Clari API key: set CLARI_API_KEY, or name a file with --clari-key-file or CLARI_API_KEY_FILE")
        })?,
    };
    let key = key.trim();
    if key.is_empty() {
        bail!("the Clari API key is empty");
    }
    if key.chars().any(|c| c.is_whitespace() || c.is_control()) {
        bail!("the Clari API key holds whitespace or control characters");
    }
    Ok(SecretString::from(key.to_owned()))
}

pub async fn run(config_file: Option<&Path>, args: &StdioArgs) -> anyhow::Result<()> {
    let data_dir = match &args.data_dir {
        Some(d) => d.clone(),
        None => default_data_dir()?,
    };
    let key = clari_key(args.clari_key_file.as_deref())?;
    create_private_dir(&data_dir).with_context(|| format!("creating {}", data_dir.display()))?;
    let data_dir = data_dir
        .canonicalize()
        .with_context(|| format!("resolving {}", data_dir.display()))?;
    crate::init_crypto();
    let config = Config::load_with_defaults(
        config_file,
        &[(
            "CLARI_MCP_DATABASE_URL",
            format!("sqlite://{}/{DATABASE_FILE}", data_dir.display()),
        )],
        &[("CLARI_MCP_DATA_DIR", data_dir.display().to_string())],
    )
    .context("configuration")?;
    crate::telemetry::init(config.log_format, config.otlp_endpoint.as_deref());
    let state = AppState::from_config(config).await?;
    let token = provision(&state, &key, &data_dir).await?;
    crate::app::spawn_maintenance(state.clone());
    tracing::info!(data_dir = %data_dir.display(), "clari-mcp serving MCP over stdio");
    let server = crate::mcp::server::ClariMcp::local(state.clone(), Arc::new(token));
    let running = server
        .serve(rmcp::transport::stdio())
        .await
        .context("starting the MCP session on stdio")?;
    let reason = running.waiting().await;
    tracing::info!(?reason, "the MCP client closed stdio");
    state.audit.flush().await;
    Ok(())
}

/// The local organisation (holding the Clari key as given this time), its user and the API key
/// the process acts as; returns that key. Reuses all three across runs.
async fn provision(
    state: &AppState,
    clari_key: &SecretString,
    data_dir: &Path,
) -> anyhow::Result<SecretString> {
    let now = state.now();
    let store = &state.store;
    let org = match store.find_org(ORG).await? {
        Some(o) => o,
        None => store.create_org(&OrgName::parse(ORG)?, now).await?,
    };
    if org.disabled {
        bail!(
            "the organisation {ORG:?} is disabled (the kill switch); `clari-mcp org enable --org {ORG}` with this data directory's database serves it again"
        );
    }
    let key = clari_key.expose_secret();
    let sealed = state.vault.seal(key.as_bytes());
    store
        .put_clari_credential(&org.id, &sealed, &hint(key), None, now)
        .await?;

    let email = Email::parse(EMAIL).map_err(|e| anyhow!(e))?;
    let user = match store.find_user_by_email(&email).await? {
        Some(u) => u.user,
        None => {
            // Nobody signs in with it: there is no listener. The password only fills the column.
            let hash = state
                .passwords
                .hash(SecretString::from(random_token(24)))
                .await?;
            store
                .create_user(&org.id, &email, &hash, Role::Admin, now)
                .await?
        }
    };

    let path = data_dir.join(KEY_FILE);
    if let Ok(saved) = std::fs::read_to_string(&path) {
        let saved = saved.trim().to_owned();
        if store
            .authenticate_api_key(&sha256_hex(&saved), now)
            .await?
            .is_some_and(|p| p.organization_id == org.id)
        {
            return Ok(SecretString::from(saved));
        }
    }
    let (minted, _) = crate::apikeys::mint(
        store.as_ref(),
        crate::apikeys::KeyRequest {
            org: &org.id,
            user: &user.id,
            name: "stdio",
            scopes: ScopeSet::new([Scope::ClariRead]),
            expires_at: None,
            now,
        },
    )
    .await?;
    let _ = std::fs::remove_file(&path);
    write_private_file(&path, minted.expose_secret().as_bytes())
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(minted)
}
