//! One `Config` for every subcommand, read with figment: environment first (`CLARI_MCP_*`), then an
//! optional TOML file (the same keys in lower case without the prefix), then defaults. Durations are
//! humantime strings everywhere (`15m`, `30d`). `validate` runs at start and names the bad setting.
//!
//! The issuer and the MCP resource URL are derived here once, from the public base URL, and reused
//! verbatim everywhere (metadata, challenges, token claims); they are never rebuilt from request headers.

mod settings;
mod sources;
mod validate;

pub use settings::{SETTINGS, Setting};

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

use self::sources::process_env;
use crate::crypto::Vault;

pub const DEFAULT_BIND: &str = "127.0.0.1:8080";
pub const DEFAULT_CLARI_BASE_URL: &str = "https://api.clari.com/v4";
pub const VAULT_KEY_FILE: &str = "vault.key";
/// Every environment variable starts with this; the file uses the rest in lower case.
pub const ENV_PREFIX: &str = "CLARI_MCP_";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{setting}: {reason}")]
    Invalid { setting: String, reason: String },
    #[error("cannot read the configuration file {path}: {reason}")]
    File { path: PathBuf, reason: String },
}

fn invalid(setting: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        setting: setting.to_owned(),
        reason: reason.into(),
    }
}

/// The audit trail's settings.
#[derive(Debug, Clone)]
pub struct AuditSettings {
    /// Refuse tool calls while events cannot be recorded.
    pub fail_closed: bool,
    /// Sign a checkpoint after this many new rows in a chain...
    pub checkpoint_every: i64,
    /// ...or when this long has passed since the last one and there are new rows.
    pub checkpoint_interval: Duration,
    /// Events older than this are pruned (behind a signed checkpoint at the cut).
    pub retention: Duration,
}

impl Default for AuditSettings {
    fn default() -> Self {
        Self {
            fail_closed: true,
            checkpoint_every: 1_000,
            checkpoint_interval: Duration::from_secs(300),
            retention: Duration::from_secs(400 * 86_400),
        }
    }
}

#[derive(Clone)]
pub struct Config {
    pub bind: SocketAddr,
    /// The public base URL exactly as configured, without a trailing slash.
    pub public_url: String,
    /// The OAuth issuer identifier; equal to `public_url`.
    pub issuer: String,
    /// The MCP resource URL (`<public_url>/mcp`).
    pub mcp_url: String,
    pub data_dir: PathBuf,
    pub database_url: String,
    /// Keys given by configuration; when absent the key file in the data directory is used.
    pub vault_keys: Option<Vec<SecretString>>,
    pub clari_base_url: String,
    pub log_format: LogFormat,
    /// Lifetime of access tokens, seconds (`CLARI_MCP_ACCESS_TOKEN_TTL`, default 15m).
    pub access_token_ttl: i64,
    /// Refresh tokens expire after this much inactivity, seconds (`CLARI_MCP_REFRESH_TOKEN_TTL`, 30d).
    pub refresh_token_ttl: i64,
    /// Dynamic registrations per client IP per hour (`CLARI_MCP_DCR_RATE_LIMIT`, default 20).
    pub dcr_rate_limit: u32,
    /// Unused dynamically registered clients expire after this long (`CLARI_MCP_DCR_CLIENT_TTL`, 90d).
    pub dcr_client_ttl: i64,
    /// When set, registration requires `Authorization: Bearer <token>` (closed deployments).
    pub dcr_initial_access_token: Option<SecretString>,
    /// Take the client IP from `X-Forwarded-For` (only behind a proxy that sets it).
    pub trust_forwarded_for: bool,
    /// How many proxies in front append to `X-Forwarded-For` (`CLARI_MCP_TRUSTED_PROXIES`; 1 when
    /// `CLARI_MCP_TRUST_FORWARDED_FOR` is on, else 0): the client is that many entries from the
    /// right, since everything further left is whatever the client sent.
    pub trusted_proxies: u8,
    /// DANGER, tests only: allow Client ID Metadata Documents on http loopback URLs.
    pub danger_cimd_allow_loopback: bool,
    /// Browser origins allowed to call `/mcp` besides the public URL's (`CLARI_MCP_ALLOWED_ORIGINS`).
    pub allowed_origins: Vec<String>,
    /// How long a finished Clari export is served from memory (`CLARI_MCP_EXPORT_CACHE_TTL`, 5m).
    pub export_cache_ttl: std::time::Duration,
    /// Finished exports each replica keeps, of each kind (`CLARI_MCP_EXPORT_CACHE_ENTRIES`, 1000).
    pub export_cache_entries: usize,
    /// Megabytes of Clari's answers each replica keeps in finished exports, of each kind
    /// (`CLARI_MCP_EXPORT_CACHE_MB`, 256).
    pub export_cache_mb: u32,
    /// The most megabytes read of one Clari answer, decompressed
    /// (`CLARI_MCP_CLARI_MAX_RESPONSE_MB`, 256).
    pub clari_max_response_mb: u32,
    /// Organisations with a series of their own in the credential gauges, those with the most
    /// live grants and API keys (`CLARI_MCP_METRICS_ORGS`, 20).
    pub metrics_orgs: u32,
    /// Pause between export status checks (`CLARI_MCP_EXPORT_POLL_MS`, 1000).
    pub export_poll_interval: std::time::Duration,
    /// The audit trail: retention (`CLARI_MCP_AUDIT_RETENTION`, 400d), fail closed
    /// (`CLARI_MCP_AUDIT_FAIL_CLOSED`, true), checkpoint every N rows
    /// (`CLARI_MCP_AUDIT_CHECKPOINT_EVERY`, 1000) or interval (`..._INTERVAL`, 5m).
    pub audit: AuditSettings,
    /// `/metrics` on a separate listener (`CLARI_MCP_METRICS_BIND`, e.g. 127.0.0.1:9464)...
    pub metrics_bind: Option<SocketAddr>,
    /// ...or on the main one behind this bearer token (`CLARI_MCP_METRICS_TOKEN`). Neither: off.
    pub metrics_token: Option<SecretString>,
    /// What is redacted from tool answers for organisations without a policy of their own
    /// (`CLARI_MCP_REDACT`: emails, phones, cards, ssns, ibans, all or none; default none).
    pub redact: Vec<String>,
    /// Forecast tabs whose current-quarter export is kept warm for organisations without a list of
    /// their own (`CLARI_MCP_PREWARM`, e.g. `forecast,renewals`; default none).
    pub prewarm: Vec<crate::clari::ForecastId>,
    /// Clari exports each organisation may spend on pre-warming per UTC day
    /// (`CLARI_MCP_PREWARM_DAILY_BUDGET`, 24; 0 turns pre-warming off).
    pub prewarm_daily_budget: u32,
    /// Where invitations are sent from (`CLARI_MCP_SMTP_URL`: `smtp://host:port`,
    /// `smtp://user:pass@host:587?tls=required` for STARTTLS, `smtps://…` for implicit TLS).
    /// Unset: invitation links are shown to the admin only.
    pub smtp_url: Option<SecretString>,
    /// The sender of invitation mail (`CLARI_MCP_SMTP_FROM`; default `clari-mcp@<public host>`).
    pub smtp_from: String,
    /// How long an invitation link can be used, seconds (`CLARI_MCP_INVITATION_TTL`, 7d).
    pub invitation_ttl: i64,
    /// DANGER, tests only: allow an organisation's OpenID Connect provider on http loopback.
    pub danger_sso_allow_loopback: bool,
    /// What every listener allows a slow client (`CLARI_MCP_HEADER_READ_TIMEOUT`,
    /// `CLARI_MCP_BODY_READ_TIMEOUT`, `CLARI_MCP_MAX_CONNECTIONS_PER_ADDRESS`).
    pub listener: crate::serve::ListenerLimits,
    /// Requests to Clari one caller (a person's application or API key) may cause per minute
    /// (`CLARI_MCP_CLARI_REQUESTS_PER_MINUTE`, 60), across every replica.
    pub clari_requests_per_minute: u32,
    /// The OTLP/HTTP collector's base URL; traces are off when unset.
    pub otlp_endpoint: Option<String>,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("bind", &self.bind)
            .field("public_url", &self.public_url)
            .field("data_dir", &self.data_dir)
            .field("database_url", &redact_url(&self.database_url))
            .field(
                "vault_keys",
                &self
                    .vault_keys
                    .as_ref()
                    .map(|k| format!("{} key(s)", k.len())),
            )
            .field("clari_base_url", &self.clari_base_url)
            .field("log_format", &self.log_format)
            .field("access_token_ttl", &self.access_token_ttl)
            .field("refresh_token_ttl", &self.refresh_token_ttl)
            .field("dcr_rate_limit", &self.dcr_rate_limit)
            .field("dcr_client_ttl", &self.dcr_client_ttl)
            .field(
                "dcr_initial_access_token",
                &self.dcr_initial_access_token.as_ref().map(|_| "***"),
            )
            .field("trust_forwarded_for", &self.trust_forwarded_for)
            .field("trusted_proxies", &self.trusted_proxies)
            .field(
                "danger_cimd_allow_loopback",
                &self.danger_cimd_allow_loopback,
            )
            .field("allowed_origins", &self.allowed_origins)
            .field("export_cache_ttl", &self.export_cache_ttl)
            .field("export_cache_entries", &self.export_cache_entries)
            .field("export_cache_mb", &self.export_cache_mb)
            .field("clari_max_response_mb", &self.clari_max_response_mb)
            .field("metrics_orgs", &self.metrics_orgs)
            .field("export_poll_interval", &self.export_poll_interval)
            .field("audit", &self.audit)
            .field("metrics_bind", &self.metrics_bind)
            .field("redact", &self.redact)
            .field("prewarm", &self.prewarm)
            .field("prewarm_daily_budget", &self.prewarm_daily_budget)
            .field("metrics_token", &self.metrics_token.as_ref().map(|_| "***"))
            .field(
                "smtp_url",
                &self
                    .smtp_url
                    .as_ref()
                    .map(|u| redact_url(u.expose_secret())),
            )
            .field("smtp_from", &self.smtp_from)
            .field("invitation_ttl", &self.invitation_ttl)
            .field("danger_sso_allow_loopback", &self.danger_sso_allow_loopback)
            .field("listener", &self.listener)
            .field("clari_requests_per_minute", &self.clari_requests_per_minute)
            .field("otlp_endpoint", &self.otlp_endpoint)
            .finish()
    }
}

/// Hides a password in a connection URL.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_owned(),
    }
}

impl Config {
    /// The `CLARI_MCP_DANGER_*` settings that are on: each weakens a protection for tests, and
    /// every start says so in the log.
    pub fn danger_settings(&self) -> Vec<&'static str> {
        let mut on = Vec::new();
        if self.danger_cimd_allow_loopback {
            on.push("CLARI_MCP_DANGER_CIMD_ALLOW_LOOPBACK");
        }
        if self.danger_sso_allow_loopback {
            on.push("CLARI_MCP_DANGER_SSO_ALLOW_LOOPBACK");
        }
        on
    }

    /// Reads the process environment and, when given, a TOML file.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        Self::from_sources(file, &process_env())
    }

    /// Like [`Config::load`], with some settings forced (the `demo` command uses this).
    pub fn load_with(
        file: Option<&Path>,
        overrides: &[(&str, String)],
    ) -> Result<Self, ConfigError> {
        let mut env = process_env();
        for (k, v) in overrides {
            env.insert((*k).to_owned(), v.clone());
        }
        Self::from_sources(file, &env)
    }

    /// As [`Config::load_with`], and `defaults` apply only where neither the environment nor
    /// the file sets the key.
    pub fn load_with_defaults(
        file: Option<&Path>,
        defaults: &[(&str, String)],
        overrides: &[(&str, String)],
    ) -> Result<Self, ConfigError> {
        let mut env = process_env();
        let in_file = sources::keys_in_file(file)?;
        for (k, v) in defaults {
            let unset = env.get(*k).is_none_or(|v| v.is_empty());
            let key = k.trim_start_matches("CLARI_MCP_").to_ascii_lowercase();
            if unset && !in_file.contains(&key) {
                env.insert((*k).to_owned(), v.clone());
            }
        }
        for (k, v) in overrides {
            env.insert((*k).to_owned(), v.clone());
        }
        Self::from_sources(file, &env)
    }

    /// Builds the configuration from an explicit environment map (tests use this): the file is
    /// the lower layer, the variables named `CLARI_MCP_<KEY>` are merged over it (empty values
    /// count as unset), then [`Config::validate`] applies defaults and rules.
    pub fn from_sources(
        file: Option<&Path>,
        env: &HashMap<String, String>,
    ) -> Result<Self, ConfigError> {
        Self::validate(sources::read(file, env)?)
    }

    /// Applies defaults and checks every rule, naming the setting that breaks one.
    pub fn vault_key_file(&self) -> PathBuf {
        self.data_dir.join(VAULT_KEY_FILE)
    }

    /// Whether browser cookies must carry `Secure` (the public URL is https).
    pub fn is_https(&self) -> bool {
        self.public_url.starts_with("https://")
    }

    /// The vault key ring: configured keys, else the key file in the data directory, created with
    /// mode 0600 on first use. Returns the vault and whether a new key file was generated.
    pub fn open_vault(&self) -> anyhow::Result<(Vault, bool)> {
        use anyhow::Context;
        if let Some(keys) = &self.vault_keys {
            return Ok((Vault::new(keys)?, false));
        }
        let path = self.vault_key_file();
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                refuse_if_others_can_read(&path)?;
                let keys = split_keys(&text);
                let vault = Vault::new(&keys)
                    .with_context(|| format!("vault key file {}", path.display()))?;
                Ok((vault, false))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                create_private_dir(&self.data_dir).with_context(|| {
                    format!("creating data directory {}", self.data_dir.display())
                })?;
                let key = Vault::generate_key();
                write_private_file(&path, format!("{}\n", key.expose_secret()).as_bytes())
                    .with_context(|| format!("writing vault key file {}", path.display()))?;
                Ok((Vault::new(&[key])?, true))
            }
            Err(e) => Err(e).with_context(|| format!("reading vault key file {}", path.display())),
        }
    }
}

fn split_keys(text: &str) -> Vec<SecretString> {
    text.split([',', '\n'])
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .map(|k| SecretString::from(k.to_owned()))
        .collect()
}

/// The vault key decrypts every stored secret: a key file that others can read is refused,
/// with the command that fixes it.
fn refuse_if_others_can_read(path: &Path) -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)?.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            anyhow::bail!(
                "the vault key file {} is readable by others (mode {mode:o}); run `chmod 600 {}` and start again",
                path.display(),
                path.display()
            );
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

pub use crate::files::{create_private_dir, write_private_file};

#[cfg(test)]
mod tests;
