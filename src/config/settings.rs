//! Every setting the server reads, with its default and meaning: the one list the book's
//! settings page is generated from (`tests/api/docs.rs`), and which a test holds equal to the
//! keys the configuration accepts.

/// One setting: its key (the variable is `CLARI_MCP_` and the key in capitals; the TOML file
/// takes the key as it is), its default in words, and what it does.
#[derive(Debug, Clone, Copy)]
pub struct Setting {
    pub key: &'static str,
    pub default: &'static str,
    pub meaning: &'static str,
}

impl Setting {
    /// The environment variable: `CLARI_MCP_` and the key in capitals.
    pub fn variable(&self) -> String {
        format!("CLARI_MCP_{}", self.key.to_ascii_uppercase())
    }
}

pub const SETTINGS: &[Setting] = &[
    Setting {
        key: "bind",
        default: "`127.0.0.1:8080`",
        meaning: "listen address",
    },
    Setting {
        key: "public_url",
        default: "`http://<bind>`",
        meaning: "public base URL; the OAuth issuer, and `<url>/mcp` the MCP resource. https is required unless the host is loopback",
    },
    Setting {
        key: "data_dir",
        default: "`./data`",
        meaning: "data directory (SQLite file, vault key file)",
    },
    Setting {
        key: "database_url",
        default: "`sqlite://<data dir>/clari-mcp.db`",
        meaning: "`sqlite://…` or `postgres://…`",
    },
    Setting {
        key: "vault_keys",
        default: "key file `<data dir>/vault.key`",
        meaning: "comma-separated Fernet keys (a TOML array in the file); the first encrypts, all decrypt",
    },
    Setting {
        key: "clari_base_url",
        default: "`https://api.clari.com/v4`",
        meaning: "Clari API base URL: https, or http only to a loopback host (the sandbox)",
    },
    Setting {
        key: "log_format",
        default: "`text`",
        meaning: "`text` or `json` (level from `RUST_LOG`)",
    },
    Setting {
        key: "access_token_ttl",
        default: "`15m`",
        meaning: "lifetime of access tokens, 1m to 24h",
    },
    Setting {
        key: "refresh_token_ttl",
        default: "`30d`",
        meaning: "refresh tokens expire after this long without use",
    },
    Setting {
        key: "dcr_rate_limit",
        default: "`20`",
        meaning: "dynamic client registrations per client address per hour",
    },
    Setting {
        key: "dcr_client_ttl",
        default: "`90d`",
        meaning: "unused dynamically registered clients are deleted after this long",
    },
    Setting {
        key: "dcr_initial_access_token",
        default: "unset (open registration)",
        meaning: "when set, `/register` needs `Authorization: Bearer <this token>`",
    },
    Setting {
        key: "trust_forwarded_for",
        default: "`false`",
        meaning: "behind a reverse proxy: take the client address from `X-Forwarded-For` (one trusted hop)",
    },
    Setting {
        key: "trusted_proxies",
        default: "`1` with the above, else `0`",
        meaning: "how many proxies (0–10) in front append to `X-Forwarded-For`; the client is that many entries from the right",
    },
    Setting {
        key: "danger_cimd_allow_loopback",
        default: "`false`",
        meaning: "tests only: allow Client ID Metadata Documents on http loopback URLs",
    },
    Setting {
        key: "allowed_origins",
        default: "none",
        meaning: "comma-separated browser origins allowed to call `/mcp` besides the public URL's",
    },
    Setting {
        key: "export_cache_ttl",
        default: "`5m`",
        meaning: "how long a finished Clari export answers from memory",
    },
    Setting {
        key: "export_cache_entries",
        default: "`1000`",
        meaning: "finished Clari exports each replica keeps in memory, of each kind (forecasts, activity); about 0.8 MB each with the sandbox's data, so size it to the replica's memory (10 to 1000000)",
    },
    Setting {
        key: "export_cache_mb",
        default: "`256`",
        meaning: "megabytes of finished exports each replica keeps, of each kind, weighed as their content's compact JSON (whitespace in Clari's answer weighs nothing); those closest to expiry go first when either this or the number of exports is reached, and an export that alone outweighs it is not kept. In memory an export takes about 4.7 times its weight with the sandbox's data, up to about 10 times for answers of many tiny records, so size it to the replica's memory (1 to 1048576)",
    },
    Setting {
        key: "clari_max_response_mb",
        default: "`256`",
        meaning: "the most megabytes read of one Clari answer, after decompression; a larger one fails the call with `clari_data` (1 to 16384)",
    },
    Setting {
        key: "export_poll_ms",
        default: "`1000`",
        meaning: "pause between export status checks: milliseconds, or a duration from `10ms` to `1m`",
    },
    Setting {
        key: "audit_retention",
        default: "`400d`",
        meaning: "audit events older than this are pruned, behind a signed checkpoint at the cut",
    },
    Setting {
        key: "audit_fail_closed",
        default: "`true`",
        meaning: "refuse tool calls while the audit trail cannot record them",
    },
    Setting {
        key: "audit_checkpoint_every",
        default: "`1000`",
        meaning: "sign a checkpoint after this many new events in a chain…",
    },
    Setting {
        key: "audit_checkpoint_interval",
        default: "`5m`",
        meaning: "…or this long after the last one, when there are new events",
    },
    Setting {
        key: "metrics_bind",
        default: "unset",
        meaning: "serve `/metrics` (no token) on a separate listener, e.g. `127.0.0.1:9464`",
    },
    Setting {
        key: "metrics_token",
        default: "unset",
        meaning: "serve `/metrics` on the main listener to this bearer token (16+ characters)",
    },
    Setting {
        key: "metrics_orgs",
        default: "`20`",
        meaning: "organisations with series of their own in `clari_mcp_active_grants`, `_clients` and `_api_keys`: those with the most live grants and API keys; `clari_mcp_live_credentials` counts every organisation together (0 to 1000)",
    },
    Setting {
        key: "redact",
        default: "none",
        meaning: "default redaction of tool answers: `emails`, `phones`, `cards`, `ssns`, `ibans` (comma-separated), `all` or `none`; `org set --redact` overrides per organisation",
    },
    Setting {
        key: "prewarm",
        default: "none",
        meaning: "forecast tabs whose current-quarter export is kept warm (comma-separated); `org set --prewarm` overrides per organisation",
    },
    Setting {
        key: "prewarm_daily_budget",
        default: "`24`",
        meaning: "Clari exports each organisation may spend on pre-warming per UTC day; `0` turns pre-warming off",
    },
    Setting {
        key: "smtp_url",
        default: "none",
        meaning: "where invitations are sent: `smtp://host:25`, `smtp://user:pass@host:587?tls=required` (STARTTLS), `smtps://host:465`; unset, the link is shown to the admin only",
    },
    Setting {
        key: "smtp_from",
        default: "`clari-mcp <clari-mcp@PUBLIC-HOST>`",
        meaning: "the sender of invitation mail",
    },
    Setting {
        key: "invitation_ttl",
        default: "`7d`",
        meaning: "how long an invitation link works (10m to 30d)",
    },
    Setting {
        key: "danger_sso_allow_loopback",
        default: "`false`",
        meaning: "tests only: allow an OpenID provider, and a machine client's JWKS URL, on an http loopback URL",
    },
    Setting {
        key: "header_read_timeout",
        default: "`10s`",
        meaning: "the whole request head must arrive within this (1s to 5m); also how long an idle keep-alive connection stays open",
    },
    Setting {
        key: "body_read_timeout",
        default: "`30s`",
        meaning: "the whole request body must arrive within this of the request's start (1s to 10m)",
    },
    Setting {
        key: "max_connections_per_address",
        default: "`64`, or `0` behind trusted proxies",
        meaning: "open connections per client address; more are closed at accept (`0` for no limit)",
    },
    Setting {
        key: "shutdown_grace",
        default: "`20s`",
        meaning: "on SIGTERM or Ctrl-C: stop accepting, let requests in flight finish for at most this long (0s to 1h), write the queued audit events, exit 0",
    },
    Setting {
        key: "clari_requests_per_minute",
        default: "`60`",
        meaning: "requests to Clari each application or API key may cause per minute, counted on every replica",
    },
    Setting {
        key: "otlp_endpoint",
        default: "unset (no traces)",
        meaning: "send OpenTelemetry traces over OTLP/HTTP (protobuf) to this collector base URL, e.g. `http://otel-collector:4318` (spans go to `<url>/v1/traces`)",
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_the_configuration_accepts_is_documented_once() {
        let documented: Vec<&str> = SETTINGS.iter().map(|s| s.key).collect();
        assert_eq!(
            documented,
            super::super::sources::KEYS,
            "SETTINGS follows KEYS, in order"
        );
        for s in SETTINGS {
            assert!(!s.default.is_empty() && !s.meaning.is_empty(), "{}", s.key);
        }
    }
}
