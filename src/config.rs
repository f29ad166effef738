//! One `Config` for every subcommand, read with figment: environment first (`CLARI_MCP_*`), then an
//! optional TOML file (the same keys in lower case without the prefix), then defaults. Durations are
//! humantime strings everywhere (`15m`, `30d`). `validate` runs at start and names the bad setting.
//!
//! The issuer and the MCP resource URL are derived here once, from the public base URL, and reused
//! verbatim everywhere (metadata, challenges, token claims); they are never rebuilt from request headers.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Format, Serialized, Toml};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

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

/// The environment variable of a file key: `bind` → `CLARI_MCP_BIND`.
fn env_name(key: &str) -> String {
    format!("{ENV_PREFIX}{}", key.to_ascii_uppercase())
}

/// The settings as both sources spell them, before validation. Unknown keys in the file are an
/// error (a typo must not silently fall back to a default).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    bind: Option<Text>,
    public_url: Option<Text>,
    data_dir: Option<Text>,
    database_url: Option<Text>,
    vault_keys: Option<List>,
    clari_base_url: Option<Text>,
    log_format: Option<Text>,
    access_token_ttl: Option<Text>,
    refresh_token_ttl: Option<Text>,
    dcr_rate_limit: Option<u32>,
    dcr_client_ttl: Option<Text>,
    dcr_initial_access_token: Option<Text>,
    trust_forwarded_for: Option<bool>,
    trusted_proxies: Option<u8>,
    danger_cimd_allow_loopback: Option<bool>,
    allowed_origins: Option<List>,
    export_cache_ttl: Option<Text>,
    /// Milliseconds as a bare number (the historical form) or a humantime string (`250ms`).
    export_poll_ms: Option<Text>,
}

/// The keys [`RawConfig`] knows; other `CLARI_MCP_*` variables (e.g. the test suite's) are ignored.
const KEYS: &[&str] = &[
    "bind",
    "public_url",
    "data_dir",
    "database_url",
    "vault_keys",
    "clari_base_url",
    "log_format",
    "access_token_ttl",
    "refresh_token_ttl",
    "dcr_rate_limit",
    "dcr_client_ttl",
    "dcr_initial_access_token",
    "trust_forwarded_for",
    "trusted_proxies",
    "danger_cimd_allow_loopback",
    "allowed_origins",
    "export_cache_ttl",
    "export_poll_ms",
];

/// A text setting that also accepts a bare number or boolean (`CLARI_MCP_DATA_DIR=2024` is a
/// path, not an integer).
#[derive(Debug)]
struct Text(String);

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Text;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Text, E> {
                Ok(Text(v.trim().to_owned()))
            }
            fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Text, E> {
                Ok(Text(v.to_string()))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Text, E> {
                Ok(Text(v.to_string()))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Text, E> {
                Ok(Text(v.to_string()))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Text, E> {
                Ok(Text(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

/// A list setting: a TOML array, or one string separated by commas or new lines (environment).
#[derive(Debug)]
struct List(Vec<String>);

impl<'de> Deserialize<'de> for List {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Either {
            One(Text),
            Many(Vec<Text>),
        }
        let items = match Either::deserialize(d)? {
            Either::One(t) => t.0.split([',', '\n']).map(str::to_owned).collect(),
            Either::Many(v) => v.into_iter().map(|t| t.0).collect::<Vec<_>>(),
        };
        Ok(List(
            items
                .into_iter()
                .map(|i| i.trim().to_owned())
                .filter(|i| !i.is_empty())
                .collect(),
        ))
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

    /// Builds the configuration from an explicit environment map (tests use this): the file is
    /// the lower layer, the variables named `CLARI_MCP_<KEY>` are merged over it (empty values
    /// count as unset), then [`Config::validate`] applies defaults and rules.
    pub fn from_sources(
        file: Option<&Path>,
        env: &HashMap<String, String>,
    ) -> Result<Self, ConfigError> {
        let mut figment = Figment::new();
        if let Some(path) = file {
            // Read first, so a missing or unreadable file is an error rather than an empty layer.
            std::fs::metadata(path).map_err(|e| ConfigError::File {
                path: path.to_owned(),
                reason: e.to_string(),
            })?;
            figment = figment.merge(Toml::file_exact(path));
        }
        let vars: figment::value::Dict = KEYS
            .iter()
            .filter_map(|key| {
                let value = env.get(&env_name(key))?.trim();
                (!value.is_empty()).then(|| (key.to_string(), value.to_owned().into()))
            })
            .collect();
        figment = figment.merge(Serialized::globals(vars));
        let raw: RawConfig = figment.extract_lossy().map_err(|e| from_figment(e, file))?;
        Self::validate(raw)
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
            .map_err(|reason| invalid("CLARI_MCP_CLARI_BASE_URL", reason))?;

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
                    Some(v) => parse_duration(&v).map_err(|e| invalid(setting, e)),
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
                Err(_) => {
                    parse_std_duration(&v).map_err(|e| invalid("CLARI_MCP_EXPORT_POLL_MS", e))?
                }
            },
        };
        if !(Duration::from_millis(10)..=Duration::from_secs(60)).contains(&export_poll_interval) {
            return Err(invalid(
                "CLARI_MCP_EXPORT_POLL_MS",
                "must be between 10 and 60000 (milliseconds), or 10ms to 1m",
            ));
        }

        Ok(Self {
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
                let keys = split_keys(&text);
                let vault = Vault::new(&keys)
                    .with_context(|| format!("vault key file {}", path.display()))?;
                Ok((vault, false))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir_all(&self.data_dir).with_context(|| {
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

/// The process's `CLARI_MCP_*` variables.
fn process_env() -> HashMap<String, String> {
    std::env::vars()
        .filter(|(k, _)| k.starts_with(ENV_PREFIX))
        .collect()
}

/// A figment error in this module's words: the setting by its environment name, or the file.
fn from_figment(e: figment::Error, file: Option<&Path>) -> ConfigError {
    let from_file = e
        .metadata
        .as_ref()
        .is_some_and(|m| matches!(m.source, Some(figment::Source::File(_))));
    let reason = e.kind.to_string();
    match (e.path.first(), file) {
        (Some(key), Some(path)) if from_file => ConfigError::File {
            path: path.to_owned(),
            reason: format!("{key}: {reason}"),
        },
        (Some(key), _) => invalid(&env_name(key), reason),
        (None, Some(path)) => ConfigError::File {
            path: path.to_owned(),
            reason,
        },
        (None, None) => invalid("configuration", reason),
    }
}

fn split_keys(text: &str) -> Vec<SecretString> {
    text.split([',', '\n'])
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .map(|k| SecretString::from(k.to_owned()))
        .collect()
}

/// Creates a file readable only by its owner; fails if it already exists.
pub fn write_private_file(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    f.write_all(contents)?;
    f.sync_all()
}

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
mod tests {
    use super::*;

    #[test]
    fn danger_settings_are_named_when_on() {
        let off = Config::from_sources(None, &env(&[])).unwrap();
        assert!(off.danger_settings().is_empty());
        let on = Config::from_sources(
            None,
            &env(&[("CLARI_MCP_DANGER_CIMD_ALLOW_LOOPBACK", "true")]),
        )
        .unwrap();
        assert_eq!(
            on.danger_settings(),
            ["CLARI_MCP_DANGER_CIMD_ALLOW_LOOPBACK"]
        );
    }

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_need_no_configuration() {
        let c = Config::from_sources(None, &env(&[])).unwrap();
        assert_eq!(c.bind.to_string(), "127.0.0.1:8080");
        assert_eq!(c.public_url, "http://127.0.0.1:8080");
        assert_eq!(c.issuer, "http://127.0.0.1:8080");
        assert_eq!(c.mcp_url, "http://127.0.0.1:8080/mcp");
        assert_eq!(c.database_url, "sqlite://./data/clari-mcp.db");
        assert_eq!(c.clari_base_url, DEFAULT_CLARI_BASE_URL);
        assert!(c.vault_keys.is_none());
    }

    #[test]
    fn public_url_loses_trailing_slash_and_derives_issuer_and_mcp_url() {
        let c = Config::from_sources(
            None,
            &env(&[("CLARI_MCP_PUBLIC_URL", "https://mcp.example.com/")]),
        )
        .unwrap();
        assert_eq!(c.issuer, "https://mcp.example.com");
        assert_eq!(c.mcp_url, "https://mcp.example.com/mcp");
        assert!(c.is_https());
    }

    #[test]
    fn bad_settings_are_named() {
        for (name, value) in [
            ("CLARI_MCP_BIND", "nope"),
            ("CLARI_MCP_PUBLIC_URL", "ftp://x"),
            ("CLARI_MCP_PUBLIC_URL", "http://mcp.example.com"),
            ("CLARI_MCP_PUBLIC_URL", "https://x/?a=b"),
            ("CLARI_MCP_DATABASE_URL", "mysql://x"),
            ("CLARI_MCP_VAULT_KEYS", "short"),
            ("CLARI_MCP_LOG_FORMAT", "xml"),
            ("CLARI_MCP_CLARI_BASE_URL", "api.clari.com"),
        ] {
            let err = Config::from_sources(None, &env(&[(name, value)])).unwrap_err();
            assert!(err.to_string().starts_with(name), "{name}={value}: {err}");
        }
    }

    #[test]
    fn environment_wins_over_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "bind = \"127.0.0.1:9000\"\nlog_format = \"json\"\n").unwrap();
        let c = Config::from_sources(Some(&path), &env(&[("CLARI_MCP_BIND", "127.0.0.1:9100")]))
            .unwrap();
        assert_eq!(c.bind.port(), 9100);
        assert_eq!(c.log_format, LogFormat::Json);
        std::fs::write(&path, "bindd = 1\n").unwrap();
        let err = Config::from_sources(Some(&path), &env(&[])).unwrap_err();
        assert!(err.to_string().contains("bindd"), "{err}");
    }

    #[test]
    fn vault_key_file_is_created_once_with_private_mode() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let c = Config::from_sources(
            None,
            &env(&[("CLARI_MCP_DATA_DIR", data.to_str().unwrap())]),
        )
        .unwrap();
        let (v1, created) = c.open_vault().unwrap();
        assert!(created);
        let (v2, created_again) = c.open_vault().unwrap();
        assert!(!created_again);
        assert_eq!(v1.primary_key_id(), v2.primary_key_id());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(c.vault_key_file())
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn debug_never_prints_secrets() {
        let key = Vault::generate_key();
        let c = Config::from_sources(
            None,
            &env(&[
                ("CLARI_MCP_VAULT_KEYS", key.expose_secret()),
                ("CLARI_MCP_DATABASE_URL", "postgres://u:hunter2@db/x"),
            ]),
        )
        .unwrap();
        let dbg = format!("{c:?}");
        assert!(!dbg.contains(key.expose_secret()));
        assert!(!dbg.contains("hunter2"));
        // Every field is shown (redacted where secret), so an operator sees the whole picture.
        for field in [
            "allowed_origins",
            "export_poll_interval",
            "dcr_initial_access_token",
        ] {
            assert!(dbg.contains(field), "{field} missing from {dbg}");
        }
    }

    #[test]
    fn durations_are_humantime_everywhere_and_numbers_stay_numbers() {
        let c = Config::from_sources(
            None,
            &env(&[
                ("CLARI_MCP_ACCESS_TOKEN_TTL", "1h 30m"),
                ("CLARI_MCP_EXPORT_CACHE_TTL", "2m"),
                ("CLARI_MCP_EXPORT_POLL_MS", "250ms"),
                ("CLARI_MCP_DCR_RATE_LIMIT", "7"),
                ("CLARI_MCP_TRUST_FORWARDED_FOR", "yes"),
                (
                    "CLARI_MCP_ALLOWED_ORIGINS",
                    "https://a.example, https://b.example/",
                ),
            ]),
        )
        .unwrap();
        assert_eq!(c.access_token_ttl, 5_400);
        assert_eq!(c.export_cache_ttl, Duration::from_secs(120));
        assert_eq!(c.export_poll_interval, Duration::from_millis(250));
        assert_eq!(c.dcr_rate_limit, 7);
        assert!(c.trust_forwarded_for);
        assert_eq!(c.trusted_proxies, 1);
        assert_eq!(
            c.allowed_origins,
            ["https://a.example", "https://b.example"]
        );
        // The historical bare-milliseconds form of the poll interval still works.
        let c = Config::from_sources(None, &env(&[("CLARI_MCP_EXPORT_POLL_MS", "40")])).unwrap();
        assert_eq!(c.export_poll_interval, Duration::from_millis(40));
        for (name, value) in [
            ("CLARI_MCP_ACCESS_TOKEN_TTL", "900"),
            ("CLARI_MCP_REFRESH_TOKEN_TTL", "soon"),
            ("CLARI_MCP_DCR_RATE_LIMIT", "many"),
            ("CLARI_MCP_TRUSTED_PROXIES", "11"),
            ("CLARI_MCP_TRUST_FORWARDED_FOR", "maybe"),
            ("CLARI_MCP_EXPORT_POLL_MS", "5ms"),
        ] {
            let err = Config::from_sources(None, &env(&[(name, value)])).unwrap_err();
            assert!(err.to_string().starts_with(name), "{name}={value}: {err}");
        }
    }

    #[test]
    fn file_lists_and_durations_and_empty_variables() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(
            &path,
            "allowed_origins = [\"https://x.example\"]\nrefresh_token_ttl = \"7d\"\ndcr_rate_limit = 3\n",
        )
        .unwrap();
        let c =
            Config::from_sources(Some(&path), &env(&[("CLARI_MCP_DCR_RATE_LIMIT", " ")])).unwrap();
        assert_eq!(c.allowed_origins, ["https://x.example"]);
        assert_eq!(c.refresh_token_ttl, 7 * 86_400);
        assert_eq!(
            c.dcr_rate_limit, 3,
            "an empty variable does not hide the file's value"
        );
        std::fs::write(&path, "dcr_rate_limit = \"lots\"\n").unwrap();
        let err = Config::from_sources(Some(&path), &env(&[]))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("dcr_rate_limit") && err.contains("c.toml"),
            "{err}"
        );
        let missing = dir.path().join("missing.toml");
        assert!(matches!(
            Config::from_sources(Some(&missing), &env(&[])),
            Err(ConfigError::File { .. })
        ));
    }
}
