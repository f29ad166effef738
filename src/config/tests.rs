//! The configuration's rules, one test each: defaults, precedence, humantime durations, errors
//! that name the setting, secrets kept out of `Debug`.

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
    assert!(c.prewarm.is_empty());
    assert_eq!(c.prewarm_daily_budget, 24);
    assert_eq!(c.export_cache_entries, 1_000);
    assert_eq!((c.export_cache_mb, c.clari_max_response_mb), (256, 256));
    assert_eq!(c.metrics_orgs, 20);
    let c =
        Config::from_sources(None, &env(&[("CLARI_MCP_PREWARM", "forecast, renewals")])).unwrap();
    let tabs: Vec<&str> = c.prewarm.iter().map(|f| f.as_str()).collect();
    assert_eq!(tabs, ["forecast", "renewals"]);
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
        ("CLARI_MCP_PREWARM", "forecast,no/slash"),
        ("CLARI_MCP_PREWARM_DAILY_BUDGET", "-1"),
        ("CLARI_MCP_PREWARM_DAILY_BUDGET", "10001"),
        ("CLARI_MCP_EXPORT_CACHE_ENTRIES", "9"),
        ("CLARI_MCP_EXPORT_CACHE_ENTRIES", "1000001"),
        ("CLARI_MCP_EXPORT_CACHE_MB", "0"),
        ("CLARI_MCP_EXPORT_CACHE_MB", "1048577"),
        ("CLARI_MCP_EXPORT_CACHE_MB", "1GB"),
        ("CLARI_MCP_CLARI_MAX_RESPONSE_MB", "0"),
        ("CLARI_MCP_CLARI_MAX_RESPONSE_MB", "16385"),
        ("CLARI_MCP_METRICS_ORGS", "1001"),
        ("CLARI_MCP_METRICS_ORGS", "-1"),
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
    let c =
        Config::from_sources(Some(&path), &env(&[("CLARI_MCP_BIND", "127.0.0.1:9100")])).unwrap();
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
            ("CLARI_MCP_EXPORT_CACHE_ENTRIES", "5000"),
            ("CLARI_MCP_EXPORT_CACHE_MB", "4096"),
            ("CLARI_MCP_CLARI_MAX_RESPONSE_MB", "64"),
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
    assert_eq!(c.export_cache_entries, 5_000);
    assert_eq!((c.export_cache_mb, c.clari_max_response_mb), (4_096, 64));
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
    let c = Config::from_sources(Some(&path), &env(&[("CLARI_MCP_DCR_RATE_LIMIT", " ")])).unwrap();
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
