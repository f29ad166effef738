//! One `Config` for every subcommand, read with figment: environment first (`CLARI_MCP_*`), then an
//! optional TOML file (the same keys in lower case without the prefix), then defaults. Durations are
//! humantime strings everywhere (`15m`, `30d`). `validate` runs at start and names the bad setting.
//!
//! The issuer and the MCP resource URL are derived here once, from the public base URL, and reused
//! verbatim everywhere (metadata, challenges, token claims); they are never rebuilt from request headers.

mod settings;
mod sources;

pub use settings::{SETTINGS, Setting};

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

use self::sources::{RawConfig, Text, process_env};
use crate::clock::{parse_duration, parse_std_duration};
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
    fn validate(raw: RawConfig) -> Result<Self, ConfigError> {
        let text = |v: Option<Text>| v.map(|t| t.0).filter(|t| !t.is_empty());

        let bind_text = text(raw.bind).unwrap_or_else(|| DEFAULT_BIND.to_owned());
        let bind: SocketAddr = bind_text.parse().map_err(|_| {
            invalid(
                "CLARI_MCP_BIND",
                format!("'{bind_text}' is not an address:port such as 127.0.0.1:8080"),
            )
        })?;

        let public_text = text(raw.public_url).unwrap_or_else(|| format!("http://{bind}"));
        let public_url = validate_public_url(&public_text)?;

        let data_dir = text(raw.data_dir)
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("./data"));

        let database_url = text(raw.database_url)
            .unwrap_or_else(|| format!("sqlite://{}/clari-mcp.db", data_dir.display()));
        if !(database_url.starts_with("sqlite:")
            || database_url.starts_with("postgres://")
            || database_url.starts_with("postgresql://"))
        {
            return Err(invalid(
                "CLARI_MCP_DATABASE_URL",
                format!(
                    "'{}' is neither sqlite://PATH nor postgres://…",
                    redact_url(&database_url)
                ),
            ));
        }

        let vault_keys = raw.vault_keys.map(|keys| {
            keys.0
                .into_iter()
                .map(SecretString::from)
                .collect::<Vec<_>>()
        });
        if let Some(keys) = &vault_keys {
            Vault::new(keys).map_err(|e| invalid("CLARI_MCP_VAULT_KEYS", e.to_string()))?;
        }

        let clari_text =
            text(raw.clari_base_url).unwrap_or_else(|| DEFAULT_CLARI_BASE_URL.to_owned());
        let clari_base_url = crate::clari::client::check_base_url(&clari_text)
            .map_err(|e| invalid("CLARI_MCP_CLARI_BASE_URL", e.to_string()))?;

        let log_format = match text(raw.log_format).as_deref() {
            None | Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(other) => {
                return Err(invalid(
                    "CLARI_MCP_LOG_FORMAT",
                    format!("'{other}' is not one of: text, json"),
                ));
            }
        };

        let seconds =
            |setting: &str, value: Option<Text>, default: i64| -> Result<i64, ConfigError> {
                match text(value) {
                    None => Ok(default),
                    Some(v) => parse_duration(&v).map_err(|e| invalid(setting, e.to_string())),
                }
            };
        let access_token_ttl =
            seconds("CLARI_MCP_ACCESS_TOKEN_TTL", raw.access_token_ttl, 15 * 60)?;
        if !(60..=86_400).contains(&access_token_ttl) {
            return Err(invalid(
                "CLARI_MCP_ACCESS_TOKEN_TTL",
                "must be between 1m and 24h",
            ));
        }
        let refresh_token_ttl = seconds(
            "CLARI_MCP_REFRESH_TOKEN_TTL",
            raw.refresh_token_ttl,
            30 * 86_400,
        )?;
        let dcr_client_ttl = seconds("CLARI_MCP_DCR_CLIENT_TTL", raw.dcr_client_ttl, 90 * 86_400)?;
        let dcr_rate_limit = raw.dcr_rate_limit.unwrap_or(20);
        let trust_forwarded_for = raw.trust_forwarded_for.unwrap_or(false);
        let trusted_proxies = raw.trusted_proxies.unwrap_or(u8::from(trust_forwarded_for));
        if trusted_proxies > 10 {
            return Err(invalid(
                "CLARI_MCP_TRUSTED_PROXIES",
                format!("'{trusted_proxies}' is not a number of proxies from 0 to 10"),
            ));
        }
        let danger_cimd_allow_loopback = raw.danger_cimd_allow_loopback.unwrap_or(false);
        let dcr_initial_access_token = text(raw.dcr_initial_access_token).map(SecretString::from);

        let allowed_origins: Vec<String> = raw
            .allowed_origins
            .map(|l| {
                l.0.into_iter()
                    .map(|o| o.trim_end_matches('/').to_owned())
                    .collect()
            })
            .unwrap_or_default();
        for o in &allowed_origins {
            if !(o.starts_with("http://") || o.starts_with("https://")) {
                return Err(invalid(
                    "CLARI_MCP_ALLOWED_ORIGINS",
                    format!("'{o}' must be an origin such as https://app.example.com"),
                ));
            }
        }
        let export_cache_ttl = seconds("CLARI_MCP_EXPORT_CACHE_TTL", raw.export_cache_ttl, 300)?;
        let export_poll_interval = match text(raw.export_poll_ms) {
            None => Duration::from_secs(1),
            Some(v) => match v.parse::<u64>() {
                Ok(ms) => Duration::from_millis(ms),
                Err(_) => parse_std_duration(&v)
                    .map_err(|e| invalid("CLARI_MCP_EXPORT_POLL_MS", e.to_string()))?,
            },
        };
        if !(Duration::from_millis(10)..=Duration::from_secs(60)).contains(&export_poll_interval) {
            return Err(invalid(
                "CLARI_MCP_EXPORT_POLL_MS",
                "must be between 10 and 60000 (milliseconds), or 10ms to 1m",
            ));
        }

        let audit_retention = seconds(
            "CLARI_MCP_AUDIT_RETENTION",
            raw.audit_retention,
            400 * 86_400,
        )?;
        if audit_retention < 86_400 {
            return Err(invalid("CLARI_MCP_AUDIT_RETENTION", "must be at least 1d"));
        }
        let audit_checkpoint_interval = seconds(
            "CLARI_MCP_AUDIT_CHECKPOINT_INTERVAL",
            raw.audit_checkpoint_interval,
            300,
        )?;
        let audit_checkpoint_every = raw.audit_checkpoint_every.unwrap_or(1_000);
        if audit_checkpoint_every == 0 {
            return Err(invalid(
                "CLARI_MCP_AUDIT_CHECKPOINT_EVERY",
                "must be at least 1",
            ));
        }
        let audit = AuditSettings {
            fail_closed: raw.audit_fail_closed.unwrap_or(true),
            checkpoint_every: i64::from(audit_checkpoint_every),
            checkpoint_interval: Duration::from_secs(audit_checkpoint_interval as u64),
            retention: Duration::from_secs(audit_retention as u64),
        };

        let metrics_bind = match text(raw.metrics_bind) {
            None => None,
            Some(b) => Some(b.parse::<SocketAddr>().map_err(|_| {
                invalid(
                    "CLARI_MCP_METRICS_BIND",
                    format!("'{b}' is not an address:port such as 127.0.0.1:9464"),
                )
            })?),
        };
        let metrics_token = text(raw.metrics_token).map(SecretString::from);
        if metrics_token
            .as_ref()
            .is_some_and(|t| t.expose_secret().len() < 16)
        {
            return Err(invalid(
                "CLARI_MCP_METRICS_TOKEN",
                "must be at least 16 characters",
            ));
        }

        let redact = match text(raw.redact) {
            None => Vec::new(),
            Some(r) => crate::redact::RedactionPolicy::parse_kinds(&r)
                .map_err(|e| invalid("CLARI_MCP_REDACT", e.to_string()))?,
        };

        let prewarm = crate::clari::ForecastId::parse_list(
            &raw.prewarm.map(|l| l.0.join(",")).unwrap_or_default(),
        )
        .map_err(|e| invalid("CLARI_MCP_PREWARM", e.reason))?;
        let prewarm_daily_budget = raw.prewarm_daily_budget.unwrap_or(24);
        if prewarm_daily_budget > 10_000 {
            return Err(invalid(
                "CLARI_MCP_PREWARM_DAILY_BUDGET",
                "must be at most 10000 exports a day",
            ));
        }

        let smtp_url = text(raw.smtp_url).map(SecretString::from);
        if let Some(url) = &smtp_url {
            crate::mail::check_smtp_url(url.expose_secret())
                .map_err(|e| invalid("CLARI_MCP_SMTP_URL", e))?;
        }
        let smtp_from = text(raw.smtp_from).unwrap_or_else(|| {
            let host = url::Url::parse(&public_url)
                .ok()
                .and_then(|u| u.host_str().map(str::to_owned))
                .unwrap_or_else(|| "localhost".to_owned());
            format!("clari-mcp <clari-mcp@{host}>")
        });
        crate::mail::check_sender(&smtp_from).map_err(|e| invalid("CLARI_MCP_SMTP_FROM", e))?;
        let invitation_ttl = seconds("CLARI_MCP_INVITATION_TTL", raw.invitation_ttl, 7 * 86_400)?;
        if !(600..=30 * 86_400).contains(&invitation_ttl) {
            return Err(invalid(
                "CLARI_MCP_INVITATION_TTL",
                "must be between 10m and 30d",
            ));
        }

        let header_read_timeout =
            seconds("CLARI_MCP_HEADER_READ_TIMEOUT", raw.header_read_timeout, 10)?;
        if !(1..=300).contains(&header_read_timeout) {
            return Err(invalid(
                "CLARI_MCP_HEADER_READ_TIMEOUT",
                "must be between 1s and 5m",
            ));
        }
        let body_read_timeout = seconds("CLARI_MCP_BODY_READ_TIMEOUT", raw.body_read_timeout, 30)?;
        if !(1..=600).contains(&body_read_timeout) {
            return Err(invalid(
                "CLARI_MCP_BODY_READ_TIMEOUT",
                "must be between 1s and 10m",
            ));
        }
        // Behind trusted proxies every connection comes from one of them: no limit by default.
        let max_connections_per_address = raw
            .max_connections_per_address
            .unwrap_or(if trusted_proxies > 0 { 0 } else { 64 });
        if max_connections_per_address > 100_000 {
            return Err(invalid(
                "CLARI_MCP_MAX_CONNECTIONS_PER_ADDRESS",
                "must be at most 100000 (0 for no limit)",
            ));
        }
        let shutdown_grace = seconds("CLARI_MCP_SHUTDOWN_GRACE", raw.shutdown_grace, 20)?;
        if !(0..=3_600).contains(&shutdown_grace) {
            return Err(invalid(
                "CLARI_MCP_SHUTDOWN_GRACE",
                "must be between 0s and 1h",
            ));
        }
        let listener = crate::serve::ListenerLimits {
            header_read_timeout: Duration::from_secs(header_read_timeout as u64),
            body_read_timeout: Duration::from_secs(body_read_timeout as u64),
            max_connections_per_address: max_connections_per_address as usize,
            shutdown_grace: Duration::from_secs(shutdown_grace as u64),
        };

        let clari_requests_per_minute = raw.clari_requests_per_minute.unwrap_or(60);
        if !(1..=100_000).contains(&clari_requests_per_minute) {
            return Err(invalid(
                "CLARI_MCP_CLARI_REQUESTS_PER_MINUTE",
                "must be between 1 and 100000",
            ));
        }

        let otlp_endpoint = match text(raw.otlp_endpoint) {
            None => None,
            Some(e) => {
                let ok = url::Url::parse(&e).is_ok_and(|u| {
                    matches!(u.scheme(), "http" | "https")
                        && u.host().is_some()
                        && u.query().is_none()
                        && u.username().is_empty()
                });
                if !ok {
                    return Err(invalid(
                        "CLARI_MCP_OTLP_ENDPOINT",
                        format!("'{e}' is not an http(s) URL such as http://otel-collector:4318"),
                    ));
                }
                Some(e.trim_end_matches('/').to_owned())
            }
        };

        Ok(Self {
            clari_requests_per_minute,
            otlp_endpoint,
            listener,
            danger_sso_allow_loopback: raw.danger_sso_allow_loopback.unwrap_or(false),
            smtp_url,
            smtp_from,
            invitation_ttl,
            prewarm,
            prewarm_daily_budget,
            redact,
            metrics_bind,
            metrics_token,
            audit,
            allowed_origins,
            export_cache_ttl: Duration::from_secs(export_cache_ttl as u64),
            export_poll_interval,
            access_token_ttl,
            refresh_token_ttl,
            dcr_rate_limit,
            dcr_client_ttl,
            dcr_initial_access_token,
            trust_forwarded_for,
            trusted_proxies,
            danger_cimd_allow_loopback,
            bind,
            issuer: public_url.clone(),
            mcp_url: format!("{public_url}/mcp"),
            public_url,
            data_dir,
            database_url,
            vault_keys,
            clari_base_url,
            log_format,
        })
    }

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

fn validate_http_url(setting: &'static str, text: &str) -> Result<String, ConfigError> {
    let trimmed = text.trim().trim_end_matches('/');
    let url = url::Url::parse(trimmed)
        .map_err(|e| invalid(setting, format!("'{text}' is not a URL: {e}")))?;
    if url.scheme() != "http" && url.scheme() != "https" {
        return Err(invalid(
            setting,
            format!("'{text}' must start with http:// or https://"),
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid(
            setting,
            format!("'{text}' must not have a query or fragment"),
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(invalid(setting, format!("'{text}' has no host")));
    }
    Ok(trimmed.to_owned())
}

fn validate_public_url(text: &str) -> Result<String, ConfigError> {
    const SETTING: &str = "CLARI_MCP_PUBLIC_URL";
    let url = validate_http_url(SETTING, text)?;
    let parsed = url::Url::parse(&url).expect("validated above");
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(invalid(SETTING, "must not contain credentials"));
    }
    if parsed.scheme() == "http"
        && !crate::net::is_loopback_host(parsed.host_str().unwrap_or_default())
    {
        return Err(invalid(
            SETTING,
            format!(
                "'{text}' uses http on a non-loopback host; OAuth requires https in production"
            ),
        ));
    }
    Ok(url)
}

#[cfg(test)]
mod tests;
