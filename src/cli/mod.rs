//! The operator's surface. Every subcommand reads the same configuration, so `org create` and `serve`
//! with the same environment share one database. Secrets (Clari keys, passwords) are read from
//! standard input, never from argv. Bad input exits non-zero with one line and changes nothing.

mod api_key;
mod audit;
mod keys;
mod machine;
mod org;
mod sandbox;
mod user;

use std::io::{IsTerminal, Read, Write};
use std::path::PathBuf;

use anyhow::{Context, anyhow, bail};
use clap::{Args, Parser, Subcommand};
use secrecy::SecretString;

pub use api_key::{ApiKeyCommand, ApiKeyCreate};
pub use audit::AuditCommand;
pub use keys::KeysCommand;
pub use machine::MachineCommand;
pub use org::OrgCommand;
pub use sandbox::SandboxArgs;
pub use user::UserCommand;

use crate::app::{AppState, Application, shutdown_signal};
use crate::config::Config;
use crate::store::{Email, Organization, User};

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
    /// Manage machine clients: a scheduled report or CI job calling as the organisation's
    /// service identity (client credentials).
    #[command(subcommand, name = "service-client")]
    ServiceClient(MachineCommand),
    /// Manage encryption keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Verify or export the audit trail.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Run the Clari API sandbox: a simulator of the Clari Revenue API with a synthetic dataset.
    Sandbox(SandboxArgs),
    /// The MCP tools, resources and prompts over stdio for one person's local agent (Claude
    /// Desktop, Claude Code, Cursor): no listener, no OAuth; the Clari key from `CLARI_API_KEY`
    /// or a file, state in a small SQLite file. Standard output carries only protocol messages.
    Stdio(crate::stdio::StdioArgs),
    /// Exit 0 when the server this configuration runs answers `GET /healthz` (the image's
    /// HEALTHCHECK: the image has no shell or curl).
    Healthcheck {
        /// The URL to check instead of `/healthz` on `CLARI_MCP_BIND` (an unspecified address
        /// means loopback).
        #[arg(long)]
        url: Option<String>,
    },
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

/// Runs a parsed command line. Errors come back as one chain for `main` to print on one line.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    if let Command::Demo(args) = &cli.command {
        return crate::demo::run(cli.config.as_deref(), args.port, &args.data_dir).await;
    }
    if let Command::Healthcheck { url } = &cli.command {
        return healthcheck(cli.config.as_deref(), url.as_deref()).await;
    }
    if let Command::Stdio(args) = &cli.command {
        return crate::stdio::run(cli.config.as_deref(), args).await;
    }
    #[cfg(feature = "conformance")]
    if let Command::ConformanceServer { port } = &cli.command {
        return crate::demo::conformance_server(*port).await;
    }
    let config = Config::load(cli.config.as_deref()).context("configuration")?;
    crate::telemetry::init(config.log_format, config.otlp_endpoint.as_deref());
    if !matches!(cli.command, Command::Serve | Command::Sandbox(_)) {
        crate::store::changes::operator_process();
    }
    match cli.command {
        Command::Serve => serve(config).await,
        Command::Migrate => {
            let state = AppState::from_config(config).await?;
            println!("database is up to date ({:?})", state.store.backend());
            Ok(())
        }
        Command::Org(cmd) => audited(config, |s| org::run(s, cmd)).await,
        Command::User(cmd) => audited(config, |s| user::run(s, cmd)).await,
        Command::ApiKey(cmd) => audited(config, |s| api_key::run(s, cmd)).await,
        Command::ServiceClient(cmd) => audited(config, |s| machine::run(s, cmd)).await,
        Command::Keys(cmd) => keys::run(config, cmd).await,
        Command::Audit(cmd) => audit::run(AppState::from_config(config).await?, cmd).await,
        Command::Sandbox(args) => sandbox::run(args).await,
        Command::Demo(_) | Command::Stdio(_) | Command::Healthcheck { .. } => {
            unreachable!("handled above")
        }
        #[cfg(feature = "conformance")]
        Command::ConformanceServer { .. } => unreachable!("handled above"),
    }
}

/// Runs an operator command and waits until its audit events are written before exiting.
async fn audited<F, Fut>(config: Config, command: F) -> anyhow::Result<()>
where
    F: FnOnce(AppState) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let state = AppState::from_config(config).await?;
    let result = command(state.clone()).await;
    state.audit.flush().await;
    result
}

/// An audit event done by the operator at the command line.
fn operator_event(
    org: Option<&crate::store::OrgId>,
    action: &'static str,
    target: impl Into<String>,
) -> crate::audit::Event {
    crate::audit::Event::new(org, crate::audit::Actor::operator(), action)
        .target(target)
        .detail("via", "cli")
}

/// `GET /healthz` with a 3 s timeout; an error unless it answers 200.
async fn healthcheck(
    config_file: Option<&std::path::Path>,
    url: Option<&str>,
) -> anyhow::Result<()> {
    let url = match url {
        Some(u) => u.to_owned(),
        None => {
            let config = Config::load(config_file).context("configuration")?;
            let mut bind = config.bind;
            if bind.ip().is_unspecified() {
                bind.set_ip(match bind {
                    std::net::SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
                    std::net::SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
                });
            }
            format!("http://{bind}/healthz")
        }
    };
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(3))
        .build()?;
    let r = client
        .get(&url)
        .send()
        .await
        .with_context(|| format!("GET {url}"))?;
    if r.status() != reqwest::StatusCode::OK {
        bail!("GET {url} answered {}", r.status());
    }
    println!("ok");
    Ok(())
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let state = AppState::from_config(config).await?;
    let app = Application::build(state.clone()).await?;
    crate::app::serve_until_stopped(state, app, shutdown_signal()).await
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

fn status(disabled: bool) -> &'static str {
    if disabled { "disabled" } else { "active" }
}
