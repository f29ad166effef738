//! Where settings come from: a TOML file under the `CLARI_MCP_*` environment, merged by figment
//! into one [`RawConfig`] of untyped-but-parsed values. What the values mean is `Config::validate`'s
//! business; errors name the variable (or the file and key).

use std::collections::HashMap;
use std::path::Path;

use figment::Figment;
use figment::providers::{Format, Serialized, Toml};
use serde::Deserialize;

use super::{ConfigError, ENV_PREFIX, invalid};

/// Reads the file (when given) with the environment merged over it; empty variables count as unset.
pub(super) fn read(
    file: Option<&Path>,
    env: &HashMap<String, String>,
) -> Result<RawConfig, ConfigError> {
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
    figment.extract_lossy().map_err(|e| from_figment(e, file))
}

/// The keys a configuration file sets (none without a file).
pub(super) fn keys_in_file(file: Option<&Path>) -> Result<Vec<String>, ConfigError> {
    let Some(path) = file else {
        return Ok(Vec::new());
    };
    std::fs::metadata(path).map_err(|e| ConfigError::File {
        path: path.to_owned(),
        reason: e.to_string(),
    })?;
    let dict: figment::value::Dict = Figment::new()
        .merge(Toml::file_exact(path))
        .extract()
        .map_err(|e| from_figment(e, file))?;
    Ok(dict.into_keys().collect())
}

/// The environment variable of a file key: `bind` → `CLARI_MCP_BIND`.
pub(super) fn env_name(key: &str) -> String {
    format!("{ENV_PREFIX}{}", key.to_ascii_uppercase())
}

/// The settings as both sources spell them, before validation. Unknown keys in the file are an
/// error (a typo must not silently fall back to a default).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    pub(super) bind: Option<Text>,
    pub(super) public_url: Option<Text>,
    pub(super) data_dir: Option<Text>,
    pub(super) database_url: Option<Text>,
    pub(super) vault_keys: Option<List>,
    pub(super) clari_base_url: Option<Text>,
    pub(super) log_format: Option<Text>,
    pub(super) access_token_ttl: Option<Text>,
    pub(super) refresh_token_ttl: Option<Text>,
    pub(super) dcr_rate_limit: Option<u32>,
    pub(super) dcr_client_ttl: Option<Text>,
    pub(super) dcr_initial_access_token: Option<Text>,
    pub(super) trust_forwarded_for: Option<bool>,
    pub(super) trusted_proxies: Option<u8>,
    pub(super) danger_cimd_allow_loopback: Option<bool>,
    pub(super) allowed_origins: Option<List>,
    pub(super) export_cache_ttl: Option<Text>,
    pub(super) export_cache_entries: Option<u32>,
    pub(super) export_cache_mb: Option<u32>,
    pub(super) clari_max_response_mb: Option<u32>,
    pub(super) metrics_orgs: Option<u32>,
    /// Milliseconds as a bare number (the historical form) or a humantime string (`250ms`).
    pub(super) export_poll_ms: Option<Text>,
    pub(super) audit_retention: Option<Text>,
    pub(super) audit_fail_closed: Option<bool>,
    pub(super) audit_checkpoint_every: Option<u32>,
    pub(super) audit_checkpoint_interval: Option<Text>,
    pub(super) metrics_bind: Option<Text>,
    pub(super) metrics_token: Option<Text>,
    pub(super) redact: Option<Text>,
    pub(super) prewarm: Option<List>,
    pub(super) prewarm_daily_budget: Option<u32>,
    pub(super) smtp_url: Option<Text>,
    pub(super) smtp_from: Option<Text>,
    pub(super) invitation_ttl: Option<Text>,
    pub(super) danger_sso_allow_loopback: Option<bool>,
    pub(super) header_read_timeout: Option<Text>,
    pub(super) body_read_timeout: Option<Text>,
    pub(super) max_connections_per_address: Option<u32>,
    pub(super) shutdown_grace: Option<Text>,
    pub(super) otlp_endpoint: Option<Text>,
    pub(super) clari_requests_per_minute: Option<u32>,
}

/// The keys [`RawConfig`] knows; other `CLARI_MCP_*` variables (e.g. the test suite's) are ignored.
pub(super) const KEYS: &[&str] = &[
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
    "export_cache_entries",
    "export_cache_mb",
    "clari_max_response_mb",
    "export_poll_ms",
    "audit_retention",
    "audit_fail_closed",
    "audit_checkpoint_every",
    "audit_checkpoint_interval",
    "metrics_bind",
    "metrics_token",
    "metrics_orgs",
    "redact",
    "prewarm",
    "prewarm_daily_budget",
    "smtp_url",
    "smtp_from",
    "invitation_ttl",
    "danger_sso_allow_loopback",
    "header_read_timeout",
    "body_read_timeout",
    "max_connections_per_address",
    "shutdown_grace",
    "clari_requests_per_minute",
    "otlp_endpoint",
];

/// A text setting that also accepts a bare number or boolean (`CLARI_MCP_DATA_DIR=2024` is a
/// path, not an integer).
#[derive(Debug)]
pub(super) struct Text(pub(super) String);

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
pub(super) struct List(pub(super) Vec<String>);

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

/// The process's `CLARI_MCP_*` variables.
pub(super) fn process_env() -> HashMap<String, String> {
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
