//! `Config::validate`: each setting read, defaulted and checked by a small function of its own,
//! each error naming the setting and what is wrong with its value.

use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

use super::sources::{RawConfig, Text};
use super::{
    AuditSettings, Config, ConfigError, DEFAULT_BIND, DEFAULT_CLARI_BASE_URL, LogFormat, invalid,
    redact_url,
};
use crate::clock::{parse_duration, parse_std_duration};
use crate::crypto::Vault;

/// A setting's text, `None` when absent or empty.
fn text(v: Option<Text>) -> Option<String> {
    v.map(|t| t.0).filter(|t| !t.is_empty())
}

/// A duration setting in seconds: `default` when absent, else within `range` (`words` says the
/// range as people write it).
fn seconds_within(
    setting: &str,
    value: Option<Text>,
    default: i64,
    range: RangeInclusive<i64>,
    words: &str,
) -> Result<i64, ConfigError> {
    let secs = match text(value) {
        None => default,
        Some(v) => parse_duration(&v).map_err(|e| invalid(setting, e.to_string()))?,
    };
    if range.contains(&secs) {
        Ok(secs)
    } else {
        Err(invalid(setting, format!("must be {words}")))
    }
}

/// A whole-number setting: `default` when absent, else within `range`.
fn number_within<T: PartialOrd + Copy>(
    setting: &str,
    value: Option<T>,
    default: T,
    range: RangeInclusive<T>,
    words: &str,
) -> Result<T, ConfigError> {
    let n = value.unwrap_or(default);
    if range.contains(&n) {
        Ok(n)
    } else {
        Err(invalid(setting, format!("must be {words}")))
    }
}

fn socket_address(setting: &str, text: &str, example: &str) -> Result<SocketAddr, ConfigError> {
    text.parse().map_err(|_| {
        invalid(
            setting,
            format!("'{text}' is not an address:port such as {example}"),
        )
    })
}

fn database_url(value: Option<Text>, data_dir: &std::path::Path) -> Result<String, ConfigError> {
    let url =
        text(value).unwrap_or_else(|| format!("sqlite://{}/clari-mcp.db", data_dir.display()));
    if url.starts_with("sqlite:")
        || url.starts_with("postgres://")
        || url.starts_with("postgresql://")
    {
        Ok(url)
    } else {
        Err(invalid(
            "CLARI_MCP_DATABASE_URL",
            format!(
                "'{}' is neither sqlite://PATH nor postgres://…",
                redact_url(&url)
            ),
        ))
    }
}

fn vault_keys(
    value: Option<super::sources::List>,
) -> Result<Option<Vec<SecretString>>, ConfigError> {
    let keys = value.map(|keys| {
        keys.0
            .into_iter()
            .map(SecretString::from)
            .collect::<Vec<_>>()
    });
    if let Some(keys) = &keys {
        Vault::new(keys).map_err(|e| invalid("CLARI_MCP_VAULT_KEYS", e.to_string()))?;
    }
    Ok(keys)
}

fn log_format(value: Option<Text>) -> Result<LogFormat, ConfigError> {
    match text(value).as_deref() {
        None | Some("text") => Ok(LogFormat::Text),
        Some("json") => Ok(LogFormat::Json),
        Some(other) => Err(invalid(
            "CLARI_MCP_LOG_FORMAT",
            format!("'{other}' is not one of: text, json"),
        )),
    }
}

fn allowed_origins(value: Option<super::sources::List>) -> Result<Vec<String>, ConfigError> {
    let origins: Vec<String> = value
        .map(|l| {
            l.0.into_iter()
                .map(|o| o.trim_end_matches('/').to_owned())
                .collect()
        })
        .unwrap_or_default();
    match origins
        .iter()
        .find(|o| !(o.starts_with("http://") || o.starts_with("https://")))
    {
        Some(o) => Err(invalid(
            "CLARI_MCP_ALLOWED_ORIGINS",
            format!("'{o}' must be an origin such as https://app.example.com"),
        )),
        None => Ok(origins),
    }
}

/// Milliseconds as a bare number, or a humantime duration; 10 ms to 1 min.
fn export_poll_interval(value: Option<Text>) -> Result<Duration, ConfigError> {
    const SETTING: &str = "CLARI_MCP_EXPORT_POLL_MS";
    let interval = match text(value) {
        None => Duration::from_secs(1),
        Some(v) => match v.parse::<u64>() {
            Ok(ms) => Duration::from_millis(ms),
            Err(_) => parse_std_duration(&v).map_err(|e| invalid(SETTING, e.to_string()))?,
        },
    };
    if (Duration::from_millis(10)..=Duration::from_secs(60)).contains(&interval) {
        Ok(interval)
    } else {
        Err(invalid(
            SETTING,
            "must be between 10 and 60000 (milliseconds), or 10ms to 1m",
        ))
    }
}

fn audit(raw: &mut RawConfig) -> Result<AuditSettings, ConfigError> {
    let retention = seconds_within(
        "CLARI_MCP_AUDIT_RETENTION",
        raw.audit_retention.take(),
        400 * 86_400,
        86_400..=i64::MAX,
        "at least 1d",
    )?;
    let checkpoint_interval = seconds_within(
        "CLARI_MCP_AUDIT_CHECKPOINT_INTERVAL",
        raw.audit_checkpoint_interval.take(),
        300,
        i64::MIN..=i64::MAX,
        "a duration",
    )?;
    let checkpoint_every = number_within(
        "CLARI_MCP_AUDIT_CHECKPOINT_EVERY",
        raw.audit_checkpoint_every,
        1_000,
        1..=u32::MAX,
        "at least 1",
    )?;
    Ok(AuditSettings {
        fail_closed: raw.audit_fail_closed.unwrap_or(true),
        checkpoint_every: i64::from(checkpoint_every),
        checkpoint_interval: Duration::from_secs(checkpoint_interval as u64),
        retention: Duration::from_secs(retention as u64),
    })
}

fn metrics_token(value: Option<Text>) -> Result<Option<SecretString>, ConfigError> {
    let token = text(value).map(SecretString::from);
    if token.as_ref().is_some_and(|t| t.expose_secret().len() < 16) {
        return Err(invalid(
            "CLARI_MCP_METRICS_TOKEN",
            "must be at least 16 characters",
        ));
    }
    Ok(token)
}

/// The SMTP URL (checked), and the sender (by default at the public URL's host).
fn mail(
    raw: &mut RawConfig,
    public_url: &str,
) -> Result<(Option<SecretString>, String), ConfigError> {
    let smtp_url = text(raw.smtp_url.take()).map(SecretString::from);
    if let Some(url) = &smtp_url {
        crate::mail::check_smtp_url(url.expose_secret())
            .map_err(|e| invalid("CLARI_MCP_SMTP_URL", e))?;
    }
    let smtp_from = text(raw.smtp_from.take()).unwrap_or_else(|| {
        let host = url::Url::parse(public_url)
            .ok()
            .and_then(|u| u.host_str().map(str::to_owned))
            .unwrap_or_else(|| "localhost".to_owned());
        format!("clari-mcp <clari-mcp@{host}>")
    });
    crate::mail::check_sender(&smtp_from).map_err(|e| invalid("CLARI_MCP_SMTP_FROM", e))?;
    Ok((smtp_url, smtp_from))
}

fn listener(
    raw: &mut RawConfig,
    trusted_proxies: u8,
) -> Result<crate::serve::ListenerLimits, ConfigError> {
    let header_read_timeout = seconds_within(
        "CLARI_MCP_HEADER_READ_TIMEOUT",
        raw.header_read_timeout.take(),
        10,
        1..=300,
        "between 1s and 5m",
    )?;
    let body_read_timeout = seconds_within(
        "CLARI_MCP_BODY_READ_TIMEOUT",
        raw.body_read_timeout.take(),
        30,
        1..=600,
        "between 1s and 10m",
    )?;
    // Behind trusted proxies every connection comes from one of them: no limit by default.
    let max_connections_per_address = number_within(
        "CLARI_MCP_MAX_CONNECTIONS_PER_ADDRESS",
        raw.max_connections_per_address,
        if trusted_proxies > 0 { 0 } else { 64 },
        0..=100_000,
        "at most 100000 (0 for no limit)",
    )?;
    let shutdown_grace = seconds_within(
        "CLARI_MCP_SHUTDOWN_GRACE",
        raw.shutdown_grace.take(),
        20,
        0..=3_600,
        "between 0s and 1h",
    )?;
    Ok(crate::serve::ListenerLimits {
        header_read_timeout: Duration::from_secs(header_read_timeout as u64),
        body_read_timeout: Duration::from_secs(body_read_timeout as u64),
        max_connections_per_address: max_connections_per_address as usize,
        shutdown_grace: Duration::from_secs(shutdown_grace as u64),
    })
}

fn otlp_endpoint(value: Option<Text>) -> Result<Option<String>, ConfigError> {
    let Some(e) = text(value) else {
        return Ok(None);
    };
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
    Ok(Some(e.trim_end_matches('/').to_owned()))
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

impl Config {
    /// Reads every setting in the order the settings page lists them, stopping at the first that
    /// is wrong.
    pub(super) fn validate(mut raw: RawConfig) -> Result<Self, ConfigError> {
        let bind_text = text(raw.bind.take()).unwrap_or_else(|| DEFAULT_BIND.to_owned());
        let bind = socket_address("CLARI_MCP_BIND", &bind_text, "127.0.0.1:8080")?;
        let public_url = validate_public_url(
            &text(raw.public_url.take()).unwrap_or_else(|| format!("http://{bind}")),
        )?;
        let data_dir = text(raw.data_dir.take())
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("./data"));
        let database_url = database_url(raw.database_url.take(), &data_dir)?;
        let vault_keys = vault_keys(raw.vault_keys.take())?;
        let clari_text =
            text(raw.clari_base_url.take()).unwrap_or_else(|| DEFAULT_CLARI_BASE_URL.to_owned());
        let clari_base_url = crate::clari::client::check_base_url(&clari_text)
            .map_err(|e| invalid("CLARI_MCP_CLARI_BASE_URL", e.to_string()))?;
        let log_format = log_format(raw.log_format.take())?;
        let access_token_ttl = seconds_within(
            "CLARI_MCP_ACCESS_TOKEN_TTL",
            raw.access_token_ttl.take(),
            15 * 60,
            60..=86_400,
            "between 1m and 24h",
        )?;
        let any = i64::MIN..=i64::MAX;
        let refresh_token_ttl = seconds_within(
            "CLARI_MCP_REFRESH_TOKEN_TTL",
            raw.refresh_token_ttl.take(),
            30 * 86_400,
            any.clone(),
            "a duration",
        )?;
        let dcr_client_ttl = seconds_within(
            "CLARI_MCP_DCR_CLIENT_TTL",
            raw.dcr_client_ttl.take(),
            90 * 86_400,
            any.clone(),
            "a duration",
        )?;
        let trust_forwarded_for = raw.trust_forwarded_for.unwrap_or(false);
        let trusted_proxies = raw.trusted_proxies.unwrap_or(u8::from(trust_forwarded_for));
        if trusted_proxies > 10 {
            return Err(invalid(
                "CLARI_MCP_TRUSTED_PROXIES",
                format!("'{trusted_proxies}' is not a number of proxies from 0 to 10"),
            ));
        }
        let export_cache_ttl = seconds_within(
            "CLARI_MCP_EXPORT_CACHE_TTL",
            raw.export_cache_ttl.take(),
            300,
            any,
            "a duration",
        )?;
        let metrics_bind = text(raw.metrics_bind.take())
            .map(|b| socket_address("CLARI_MCP_METRICS_BIND", &b, "127.0.0.1:9464"))
            .transpose()?;
        let redact = match text(raw.redact.take()) {
            None => Vec::new(),
            Some(r) => crate::redact::RedactionPolicy::parse_kinds(&r)
                .map_err(|e| invalid("CLARI_MCP_REDACT", e.to_string()))?,
        };
        let prewarm = crate::clari::ForecastId::parse_list(
            &raw.prewarm
                .take()
                .map(|l| l.0.join(","))
                .unwrap_or_default(),
        )
        .map_err(|e| invalid("CLARI_MCP_PREWARM", e.reason))?;
        let (smtp_url, smtp_from) = mail(&mut raw, &public_url)?;
        Ok(Self {
            export_poll_interval: export_poll_interval(raw.export_poll_ms.take())?,
            audit: audit(&mut raw)?,
            metrics_token: metrics_token(raw.metrics_token.take())?,
            prewarm_daily_budget: number_within(
                "CLARI_MCP_PREWARM_DAILY_BUDGET",
                raw.prewarm_daily_budget,
                24,
                0..=10_000,
                "at most 10000 exports a day",
            )?,
            invitation_ttl: seconds_within(
                "CLARI_MCP_INVITATION_TTL",
                raw.invitation_ttl.take(),
                7 * 86_400,
                600..=30 * 86_400,
                "between 10m and 30d",
            )?,
            listener: listener(&mut raw, trusted_proxies)?,
            clari_requests_per_minute: number_within(
                "CLARI_MCP_CLARI_REQUESTS_PER_MINUTE",
                raw.clari_requests_per_minute,
                60,
                1..=100_000,
                "between 1 and 100000",
            )?,
            otlp_endpoint: otlp_endpoint(raw.otlp_endpoint.take())?,
            allowed_origins: allowed_origins(raw.allowed_origins.take())?,
            danger_sso_allow_loopback: raw.danger_sso_allow_loopback.unwrap_or(false),
            smtp_url,
            smtp_from,
            prewarm,
            redact,
            metrics_bind,
            export_cache_ttl: Duration::from_secs(export_cache_ttl as u64),
            export_cache_entries: number_within(
                "CLARI_MCP_EXPORT_CACHE_ENTRIES",
                raw.export_cache_entries,
                1_000,
                10..=1_000_000,
                "from 10 to 1000000 exports",
            )? as usize,
            export_cache_mb: number_within(
                "CLARI_MCP_EXPORT_CACHE_MB",
                raw.export_cache_mb,
                256,
                1..=1_048_576,
                "from 1 to 1048576 megabytes",
            )?,
            clari_max_response_mb: number_within(
                "CLARI_MCP_CLARI_MAX_RESPONSE_MB",
                raw.clari_max_response_mb,
                crate::clari::transport::DEFAULT_MAX_RESPONSE_MB as u32,
                1..=16_384,
                "from 1 to 16384 megabytes",
            )?,
            metrics_orgs: number_within(
                "CLARI_MCP_METRICS_ORGS",
                raw.metrics_orgs,
                20,
                0..=1_000,
                "from 0 to 1000 organisations",
            )?,
            access_token_ttl,
            refresh_token_ttl,
            dcr_rate_limit: raw.dcr_rate_limit.unwrap_or(20),
            dcr_client_ttl,
            dcr_initial_access_token: text(raw.dcr_initial_access_token.take())
                .map(SecretString::from),
            trust_forwarded_for,
            trusted_proxies,
            danger_cimd_allow_loopback: raw.danger_cimd_allow_loopback.unwrap_or(false),
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
}
