//! The operator's surface. Every subcommand reads the same configuration, so `org create` and `serve`
//! with the same environment share one database. Secrets (Clari keys, passwords) are read from
//! standard input, never from argv. Bad input exits non-zero with one line and changes nothing.

use std::io::{IsTerminal, Read, Write};
use std::path::PathBuf;

use anyhow::{Context, anyhow, bail};
use clap::{Args, Parser, Subcommand};
use secrecy::{ExposeSecret, SecretString};

use crate::app::{AppState, Application, shutdown_signal};
use crate::clock::{parse_duration, rfc3339};
use crate::config::Config;
use crate::crypto::Passwords;
use crate::crypto::token::hint;
use crate::scope::ScopeSet;
use crate::store::{ApiKeyId, Email, OrgId, Organization, Role, StoreError, User};

#[derive(Debug, Parser)]
#[command(
    name = "clari-mcp",
    version,
    about = "OAuth 2.1 + MCP server for read-only Clari revenue data"
)]
pub struct Cli {
    /// Optional TOML configuration file; environment variables (CLARI_MCP_*) take precedence.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server.
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Manage organisations.
    #[command(subcommand)]
    Org(OrgCommand),
    /// Manage users.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage API keys for single-user setups (sent as `Authorization: Bearer cmk_…`).
    #[command(subcommand, name = "api-key")]
    ApiKey(ApiKeyCommand),
    /// Manage encryption keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Run the Clari API sandbox: a simulator of the Clari Revenue API with a synthetic dataset.
    Sandbox(SandboxArgs),
    /// Everything on one machine: SQLite, the sandbox in-process, a demo organisation, user and
    /// API key; prints how to connect an agent.
    Demo(DemoArgs),
    /// Conformance build only: serve `/mcp` with a fixed test identity and the MCP conformance
    /// suite's fixtures (over the sandbox), for `tests/conformance/server.sh`.
    #[cfg(feature = "conformance")]
    ConformanceServer {
        #[arg(long, default_value_t = 3001)]
        port: u16,
    },
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Port of the server (the sandbox picks a free one).
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// Where the demo keeps its database, vault key and credentials.
    #[arg(long, value_name = "DIR", default_value = "./demo-data")]
    pub data_dir: PathBuf,
}

#[derive(Debug, Args)]
pub struct SandboxArgs {
    #[arg(long, env = "CLARI_SANDBOX_PORT", default_value_t = 8089)]
    pub port: u16,
    #[arg(long, env = "CLARI_SANDBOX_HOST", default_value = "127.0.0.1")]
    pub host: std::net::IpAddr,
    /// Seed of the synthetic dataset (same seed, same keys and data).
    #[arg(long, env = "CLARI_SANDBOX_SEED", default_value_t = 42)]
    pub seed: u64,
    /// Print `{"base_url", "orgs": [{"name", "api_key", …}]}` as JSON and exit.
    #[arg(long)]
    pub describe: bool,
    /// How long an export job takes to finish.
    #[arg(long, env = "CLARI_SANDBOX_JOB_LATENCY_MS")]
    pub job_latency_ms: Option<u64>,
    /// Delay added to every request.
    #[arg(long, env = "CLARI_SANDBOX_REQUEST_LATENCY_MS")]
    pub request_latency_ms: Option<u64>,
    #[arg(long, env = "CLARI_SANDBOX_CONCURRENT_LIMIT")]
    pub concurrent_limit: Option<u32>,
    #[arg(long, env = "CLARI_SANDBOX_MONTHLY_QUOTA")]
    pub monthly_quota: Option<u32>,
    /// Make every Nth request fail with --failure.
    #[arg(long, env = "CLARI_SANDBOX_FAIL_EVERY")]
    pub fail_every: Option<u32>,
    /// The injected failure: 429, 500, 503 or timeout.
    #[arg(long, env = "CLARI_SANDBOX_FAILURE", value_parser = parse_failure)]
    pub failure: Option<crate::clari::sandbox::Failure>,
    /// Answer 401 for this key as if it were revoked in Clari (repeatable).
    #[arg(long, value_name = "KEY")]
    pub revoke_key: Vec<String>,
}

fn parse_failure(text: &str) -> Result<crate::clari::sandbox::Failure, String> {
    crate::clari::sandbox::Failure::parse(text)
        .ok_or_else(|| format!("'{text}' is not one of 429, 500, 503, timeout"))
}

#[derive(Debug, Subcommand)]
pub enum OrgCommand {
    /// Create an organisation and print its id.
    Create {
        #[arg(long)]
        name: String,
    },
    /// List organisations.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Store the organisation's Clari API key, read from standard input.
    SetClariKey {
        #[arg(long, value_name = "ORG")]
        org: String,
        /// Clari API base URL for this organisation (default: the configured one).
        #[arg(long, value_name = "URL")]
        base_url: Option<String>,
    },
    /// Disable an organisation: its tokens and API keys stop working on the next request.
    Disable {
        #[arg(long, value_name = "ORG")]
        org: String,
    },
    /// Enable a disabled organisation.
    Enable {
        #[arg(long, value_name = "ORG")]
        org: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user in an organisation; the password is read from standard input.
    Create {
        #[arg(long, value_name = "ORG")]
        org: String,
        #[arg(long)]
        email: String,
        #[arg(long, default_value = "member", value_parser = ["admin", "member"])]
        role: String,
    },
    /// Add an existing user to another organisation.
    AddToOrg {
        #[arg(long, value_name = "ORG")]
        org: String,
        #[arg(long)]
        email: String,
        #[arg(long, default_value = "member", value_parser = ["admin", "member"])]
        role: String,
    },
    /// List the users of an organisation.
    List {
        #[arg(long, value_name = "ORG")]
        org: String,
        #[arg(long)]
        json: bool,
    },
    /// Replace a user's password with one read from standard input.
    SetPassword {
        #[arg(long)]
        email: String,
    },
    /// Disable a user: sign-in, tokens and API keys stop working.
    Disable {
        #[arg(long)]
        email: String,
    },
    /// Enable a disabled user.
    Enable {
        #[arg(long)]
        email: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum ApiKeyCommand {
    /// Create an API key and print it once.
    Create(ApiKeyCreate),
    /// List API keys (never the keys themselves).
    List {
        #[arg(long, value_name = "ORG")]
        org: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Revoke an API key by id.
    Revoke { id: String },
}

#[derive(Debug, Args)]
pub struct ApiKeyCreate {
    #[arg(long)]
    pub email: String,
    /// Comma-separated scopes, e.g. forecasts:read,users:read or clari:read.
    #[arg(long)]
    pub scopes: String,
    #[arg(long)]
    pub name: Option<String>,
    /// Lifetime such as 90d, 12h or 2w; no expiry when omitted.
    #[arg(long, value_name = "DURATION")]
    pub expires_in: Option<String>,
    /// Organisation, required when the user belongs to several.
    #[arg(long, value_name = "ORG")]
    pub org: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Re-encrypt every stored Clari key under the primary (first) vault key.
    RotateVault {
        /// Generate a new key, put it first in the vault key file, then re-encrypt
        /// (only when the keys come from the key file, not CLARI_MCP_VAULT_KEYS).
        #[arg(long)]
        add_key: bool,
    },
    /// Print a new random vault key (to put first in CLARI_MCP_VAULT_KEYS).
    NewVaultKey,
    /// Add a new access-token signing key; older keys stay published until their tokens expire.
    RotateSigning,
}

/// Runs a parsed command line. Errors come back as one chain for `main` to print on one line.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    if let Command::Demo(args) = &cli.command {
        return crate::demo::run(cli.config.as_deref(), args.port, &args.data_dir).await;
    }
    #[cfg(feature = "conformance")]
    if let Command::ConformanceServer { port } = &cli.command {
        return crate::demo::conformance_server(*port).await;
    }
    let config = Config::load(cli.config.as_deref()).context("configuration")?;
    crate::telemetry::init(config.log_format);
    match cli.command {
        Command::Serve => serve(config).await,
        Command::Migrate => {
            let state = AppState::from_config(config).await?;
            println!("database is up to date ({:?})", state.store.backend());
            Ok(())
        }
        Command::Org(cmd) => org(AppState::from_config(config).await?, cmd).await,
        Command::User(cmd) => user(AppState::from_config(config).await?, cmd).await,
        Command::ApiKey(cmd) => api_key(AppState::from_config(config).await?, cmd).await,
        Command::Keys(KeysCommand::NewVaultKey) => {
            println!("{}", crate::crypto::Vault::generate_key().expose_secret());
            Ok(())
        }
        Command::Keys(KeysCommand::RotateVault { add_key }) => rotate_vault(config, add_key).await,
        Command::Keys(KeysCommand::RotateSigning) => {
            let state = AppState::from_config(config).await?;
            let kid = crate::signing::Keys::rotate(state.store.as_ref(), &state.vault, state.now())
                .await?;
            let purged = state
                .store
                .purge_signing_keys(state.now() - state.config.access_token_ttl - 300)
                .await?;
            println!(
                "new signing key {kid}; earlier keys stay published until their tokens expire ({purged} expired key(s) removed)"
            );
            Ok(())
        }
        Command::Sandbox(args) => sandbox(args).await,
        Command::Demo(_) => unreachable!("handled above"),
        #[cfg(feature = "conformance")]
        Command::ConformanceServer { .. } => unreachable!("handled above"),
    }
}

async fn sandbox(args: SandboxArgs) -> anyhow::Result<()> {
    use crate::clari::sandbox::{self, Knobs, SandboxConfig};
    let defaults = Knobs::default();
    let knobs = Knobs {
        job_latency_ms: args.job_latency_ms.unwrap_or(defaults.job_latency_ms),
        request_latency_ms: args
            .request_latency_ms
            .unwrap_or(defaults.request_latency_ms),
        concurrent_limit: args.concurrent_limit.unwrap_or(defaults.concurrent_limit),
        monthly_quota: args.monthly_quota.unwrap_or(defaults.monthly_quota),
        fail_every: args.fail_every.unwrap_or(defaults.fail_every),
        failure: args.failure.unwrap_or(defaults.failure),
        revoked_keys: args.revoke_key.clone(),
        ..defaults
    };
    let addr = std::net::SocketAddr::new(args.host, args.port);
    if args.describe {
        let data = sandbox::Dataset::generate(args.seed, time::OffsetDateTime::now_utc());
        let out = serde_json::json!({"base_url": format!("http://{addr}/v4"), "orgs": sandbox::describe_orgs(&data)});
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    let handle = sandbox::start(SandboxConfig {
        addr,
        seed: args.seed,
        knobs,
        ..SandboxConfig::default()
    })
    .await
    .with_context(|| format!("binding {addr}"))?;
    println!("Clari sandbox listening on {}", handle.base_url);
    for org in handle.orgs() {
        println!(
            "  {:<22} api key: {}   manager key: {}",
            org.name, org.api_key, org.manager_api_key
        );
    }
    let first = &handle.orgs()[0];
    println!(
        "Try:  curl -s -H 'apikey: {}' {}/admin/limits",
        first.api_key, handle.base_url
    );
    println!(
        "      curl -s -X POST -H 'apikey: {}' {}/export/forecast/forecast",
        first.api_key, handle.base_url
    );
    println!(
        "Knobs: GET/PUT {}/_sandbox/knobs",
        handle.base_url.trim_end_matches("/v4")
    );
    shutdown_signal().await;
    Ok(())
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let state = AppState::from_config(config).await?;
    let app = Application::build(state.clone()).await?;
    crate::app::spawn_maintenance(state.clone());
    tracing::info!(
        addr = %app.local_addr(),
        public_url = %state.config.public_url,
        mcp_url = %state.config.mcp_url,
        backend = ?state.store.backend(),
        "clari-mcp listening"
    );
    app.run_until_stopped(shutdown_signal()).await?;
    Ok(())
}

async fn find_org(state: &AppState, org: &str) -> anyhow::Result<Organization> {
    state.store.find_org(org.trim()).await?.ok_or_else(|| {
        anyhow!(
            "unknown organisation '{}' (use the id or the exact name; see `clari-mcp org list`)",
            org.trim()
        )
    })
}

async fn find_user(state: &AppState, email: &str) -> anyhow::Result<User> {
    let email = Email::parse(email).map_err(|e| anyhow!(e))?;
    state
        .store
        .find_user_by_email(&email)
        .await?
        .map(|c| c.user)
        .ok_or_else(|| anyhow!("unknown user {email}"))
}

fn validate_org_name(name: &str) -> anyhow::Result<String> {
    let name = name.trim();
    if name.is_empty() {
        bail!("the organisation name must not be empty");
    }
    if name.chars().count() > 100 {
        bail!("the organisation name must be at most 100 characters");
    }
    if name.chars().any(char::is_control) {
        bail!("the organisation name must not contain control characters");
    }
    Ok(name.to_owned())
}

/// Reads a secret from standard input: the whole input, without its trailing newline. On a terminal
/// it prompts on stderr and reads one line.
fn read_secret(what: &str) -> anyhow::Result<SecretString> {
    let stdin = std::io::stdin();
    let mut text = String::new();
    if stdin.is_terminal() {
        eprint!("{what}: ");
        let _ = std::io::stderr().flush();
        stdin
            .read_line(&mut text)
            .context("reading standard input")?;
    } else {
        stdin
            .lock()
            .take(64 * 1024)
            .read_to_string(&mut text)
            .context("reading standard input (it must be UTF-8 text)")?;
    }
    let trimmed = text.trim_end_matches(['\n', '\r']).to_owned();
    zeroize::Zeroize::zeroize(&mut text);
    if trimmed.is_empty() {
        bail!("no {what} on standard input");
    }
    Ok(SecretString::from(trimmed))
}

/// A Clari API key: printable ASCII, no spaces, sensible length.
fn validate_clari_key(key: &SecretString) -> anyhow::Result<()> {
    let k = key.expose_secret();
    if k.trim() != k || k.chars().any(|c| !c.is_ascii_graphic()) {
        bail!("the Clari API key must be one token of printable characters without spaces");
    }
    if !(8..=512).contains(&k.len()) {
        bail!("the Clari API key must be between 8 and 512 characters long");
    }
    Ok(())
}

fn status(disabled: bool) -> &'static str {
    if disabled { "disabled" } else { "active" }
}

async fn org(state: AppState, cmd: OrgCommand) -> anyhow::Result<()> {
    let now = state.now();
    match cmd {
        OrgCommand::Create { name } => {
            let name = validate_org_name(&name)?;
            let org = state.store.create_org(&name, now).await?;
            println!("{}", org.id);
        }
        OrgCommand::List { json } => {
            let orgs = state.store.list_orgs().await?;
            let mut rows = Vec::with_capacity(orgs.len());
            for o in orgs {
                let cred = state.store.clari_credential(&o.id).await?;
                rows.push((o, cred));
            }
            if json {
                let out: Vec<_> = rows
                    .iter()
                    .map(|(o, c)| {
                        serde_json::json!({
                            "id": o.id, "name": o.name, "disabled": o.disabled,
                            "created_at": rfc3339(o.created_at),
                            "clari_key": c.as_ref().map(|c| serde_json::json!({
                                "hint": c.key_hint, "base_url": c.base_url, "rotated_at": rfc3339(c.rotated_at)
                            })),
                        })
                    })
                    .collect();
                println!("{}", serde_json::to_string_pretty(&out)?);
            } else {
                println!("{:<38} {:<9} {:<12} NAME", "ID", "STATUS", "CLARI KEY");
                for (o, c) in rows {
                    let key =
                        c.map_or_else(|| "not set".to_owned(), |c| format!("****{}", c.key_hint));
                    println!(
                        "{:<38} {:<9} {:<12} {}",
                        o.id,
                        status(o.disabled),
                        key,
                        o.name
                    );
                }
            }
        }
        OrgCommand::SetClariKey { org, base_url } => {
            let org = find_org(&state, &org).await?;
            let base_url = base_url
                .map(|u| {
                    crate::clari::client::check_base_url(&u)
                        .map_err(|reason| anyhow!("--base-url: {reason}"))
                })
                .transpose()?;
            let key = read_secret("Clari API key")?;
            validate_clari_key(&key)?;
            let sealed = state.vault.seal(key.expose_secret().as_bytes());
            let key_hint = hint(key.expose_secret());
            drop(key);
            state
                .store
                .put_clari_credential(&org.id, &sealed, &key_hint, base_url.as_deref(), now)
                .await?;
            println!(
                "stored Clari API key ****{key_hint} for organisation '{}' ({})",
                org.name, org.id
            );
        }
        OrgCommand::Disable { org } => {
            let org = find_org(&state, &org).await?;
            state.store.set_org_disabled(&org.id, true).await?;
            println!("organisation '{}' disabled", org.name);
        }
        OrgCommand::Enable { org } => {
            let org = find_org(&state, &org).await?;
            state.store.set_org_disabled(&org.id, false).await?;
            println!("organisation '{}' enabled", org.name);
        }
    }
    Ok(())
}

async fn user(state: AppState, cmd: UserCommand) -> anyhow::Result<()> {
    let now = state.now();
    match cmd {
        UserCommand::Create { org, email, role } => {
            let role = Role::parse(&role).map_err(|e| anyhow!(e))?;
            let email = Email::parse(&email).map_err(|e| anyhow!(e))?;
            let org = find_org(&state, &org).await?;
            if state.store.find_user_by_email(&email).await?.is_some() {
                bail!(
                    "a user with e-mail {email} already exists (use `clari-mcp user add-to-org` to add them to another organisation)"
                );
            }
            let password = read_secret("password")?;
            Passwords::check_policy(&password)?;
            let hash = state.passwords.hash(password).await?;
            let user = state
                .store
                .create_user(&org.id, &email, &hash, role, now)
                .await?;
            println!("{}", user.id);
        }
        UserCommand::AddToOrg { org, email, role } => {
            let role = Role::parse(&role).map_err(|e| anyhow!(e))?;
            let user = find_user(&state, &email).await?;
            let org = find_org(&state, &org).await?;
            state
                .store
                .add_membership(&org.id, &user.id, role, now)
                .await?;
            println!("{} is now {} of '{}'", user.email, role.as_str(), org.name);
        }
        UserCommand::List { org, json } => {
            let org = find_org(&state, &org).await?;
            let members = state.store.list_members(&org.id).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&members)?);
            } else {
                println!("{:<38} {:<7} {:<9} EMAIL", "ID", "ROLE", "STATUS");
                for m in members {
                    println!(
                        "{:<38} {:<7} {:<9} {}",
                        m.user.id,
                        m.role.as_str(),
                        status(m.user.disabled),
                        m.user.email
                    );
                }
            }
        }
        UserCommand::SetPassword { email } => {
            let user = find_user(&state, &email).await?;
            let password = read_secret("new password")?;
            Passwords::check_policy(&password)?;
            let hash = state.passwords.hash(password).await?;
            state.store.set_user_password(&user.id, &hash).await?;
            println!("password of {} replaced", user.email);
        }
        UserCommand::Disable { email } => {
            let user = find_user(&state, &email).await?;
            state.store.set_user_disabled(&user.id, true).await?;
            println!("user {} disabled", user.email);
        }
        UserCommand::Enable { email } => {
            let user = find_user(&state, &email).await?;
            state.store.set_user_disabled(&user.id, false).await?;
            println!("user {} enabled", user.email);
        }
    }
    Ok(())
}

async fn api_key(state: AppState, cmd: ApiKeyCommand) -> anyhow::Result<()> {
    let now = state.now();
    match cmd {
        ApiKeyCommand::Create(args) => {
            let scopes = ScopeSet::parse(&args.scopes)?;
            if scopes.is_empty() {
                bail!("--scopes must name at least one scope, e.g. clari:read");
            }
            let expires_at = args
                .expires_in
                .as_deref()
                .map(parse_duration)
                .transpose()
                .map_err(|e| anyhow!("--expires-in: {e}"))?
                .map(|secs| now + secs);
            let name = args.name.unwrap_or_else(|| "api key".to_owned());
            let name = name.trim();
            if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
                bail!("--name must be 1 to 100 printable characters");
            }
            let user = find_user(&state, &args.email).await?;
            let memberships = state.store.memberships(&user.id).await?;
            let org: OrgId = match args.org {
                Some(o) => {
                    let org = find_org(&state, &o).await?;
                    if !memberships.iter().any(|m| m.organization.id == org.id) {
                        bail!("{} is not a member of '{}'", user.email, org.name);
                    }
                    org.id
                }
                None => match memberships.as_slice() {
                    [only] => only.organization.id.clone(),
                    [] => bail!("{} belongs to no organisation", user.email),
                    _ => bail!(
                        "{} belongs to several organisations; pass --org",
                        user.email
                    ),
                },
            };
            let (key, new) = crate::apikeys::mint(
                state.store.as_ref(),
                crate::apikeys::KeyRequest {
                    org: &org,
                    user: &user.id,
                    name,
                    scopes: scopes.clone(),
                    expires_at,
                    now,
                },
            )
            .await?;
            println!("{}", key.expose_secret());
            eprintln!(
                "created API key {} for {} with scopes '{}'{}; it is shown only once",
                new.id,
                user.email,
                scopes,
                expires_at
                    .map(|e| format!(", expiring {}", rfc3339(e)))
                    .unwrap_or_default()
            );
        }
        ApiKeyCommand::List { org, json } => {
            let orgs = match org {
                Some(o) => vec![find_org(&state, &o).await?],
                None => state.store.list_orgs().await?,
            };
            let mut keys = Vec::new();
            for o in &orgs {
                keys.extend(state.store.list_api_keys(&o.id).await?);
            }
            if json {
                println!("{}", serde_json::to_string_pretty(&keys)?);
            } else {
                println!(
                    "{:<38} {:<9} {:<9} {:<26} {:<24} NAME",
                    "ID", "STATUS", "KEY", "USER", "SCOPES"
                );
                for k in keys {
                    let st = if k.revoked_at.is_some() {
                        "revoked"
                    } else if !k.is_active(now) {
                        "expired"
                    } else {
                        "active"
                    };
                    println!(
                        "{:<38} {:<9} ****{:<5} {:<26} {:<24} {}",
                        k.id,
                        st,
                        k.key_hint,
                        k.user_email,
                        k.scopes.to_string(),
                        k.name
                    );
                }
            }
        }
        ApiKeyCommand::Revoke { id } => {
            let id = ApiKeyId::parse(id.trim())?;
            let org = state.store.api_key_org(&id).await?.ok_or_else(|| {
                anyhow!("unknown API key id '{id}' (see `clari-mcp api-key list`)")
            })?;
            match state.store.revoke_api_key(&org, &id, now).await {
                Ok(true) => println!("API key {id} revoked"),
                Ok(false) => println!("API key {id} was already revoked"),
                Err(StoreError::NotFound(_)) => bail!("unknown API key id '{id}'"),
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(())
}

async fn rotate_vault(config: Config, add_key: bool) -> anyhow::Result<()> {
    if add_key {
        if config.vault_keys.is_some() {
            bail!(
                "--add-key works with the vault key file only; CLARI_MCP_VAULT_KEYS is set, so put the new key (`clari-mcp keys new-vault-key`) first there and run `keys rotate-vault` again"
            );
        }
        // Make sure the file exists (first start) before prepending.
        config.open_vault()?;
        let path = config.vault_key_file();
        let old = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let new_key = crate::crypto::Vault::generate_key();
        let contents = format!("{}\n{}", new_key.expose_secret(), old.trim_start());
        let tmp = path.with_extension("key.new");
        let _ = std::fs::remove_file(&tmp);
        crate::config::write_private_file(&tmp, contents.as_bytes())
            .with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, &path).with_context(|| format!("replacing {}", path.display()))?;
        eprintln!("added a new primary key to {}", path.display());
    }
    let state = AppState::from_config(config).await?;
    let vault = state.vault.clone();
    let reseal = move |ciphertext: &str, key_id: &str| vault.reseal(ciphertext, key_id);
    let n = state
        .store
        .reseal_clari_credentials(&reseal, state.now())
        .await?;
    let k = state.store.reseal_signing_keys(&reseal).await?;
    println!(
        "re-encrypted {n} Clari credential(s) and {k} signing key(s) under vault key {}",
        state.vault.primary_key_id()
    );
    Ok(())
}
