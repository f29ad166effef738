//! `AppState`: everything a request needs, cheap to clone (one `Arc` inside). It sits below the
//! handlers (mcp, oauth, web) and above the services it holds, so nothing it holds imports it.

use std::sync::Arc;

use anyhow::Context;

use crate::clari::types::ActivityResults;
use crate::clari::{ClariClient, ClientOptions};
use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::crypto::{Passwords, Vault};
use crate::exports::cache::ExportCache;
use crate::exports::limits::LimitCache;
use crate::exports::view::Forecast;
use crate::signing::Keys;
use crate::store::changes::OrgCache;
use crate::store::{self, Store};

#[derive(Clone)]
pub struct AppState(Arc<Inner>);

/// At most this many principals (API keys; grants and machine clients) are kept, each kind.
const CACHED_PRINCIPALS: usize = 100_000;
/// At most this many organisations' settings are kept.
const CACHED_ORGS: usize = 100_000;

/// The store's answers on the path of every call, per organisation, each dropped when its
/// organisation changes (on any replica or process) and at its expiry.
pub struct Cached {
    /// API keys by the digest of the key.
    pub api_keys: OrgCache<String, crate::store::ApiKeyPrincipal>,
    /// What stands behind access tokens, by grant or machine client id.
    pub behind: OrgCache<String, crate::signing::Behind>,
    /// Each organisation's redaction policy as stored (`None`: the server's default).
    pub redaction: OrgCache<crate::store::OrgId, Option<String>>,
    /// Each organisation's time zone as stored (`None`: UTC).
    pub time_zones: OrgCache<crate::store::OrgId, Option<String>>,
}

/// An organisation's setting kept in [`Cached`].
#[derive(Debug, Clone, Copy)]
pub enum OrgSetting {
    Redaction,
    TimeZone,
}

impl Default for Cached {
    fn default() -> Self {
        Self {
            api_keys: OrgCache::new(CACHED_PRINCIPALS),
            behind: OrgCache::new(CACHED_PRINCIPALS),
            redaction: OrgCache::new(CACHED_ORGS),
            time_zones: OrgCache::new(CACHED_ORGS),
        }
    }
}

pub struct Inner {
    pub config: Config,
    pub store: Arc<dyn Store>,
    pub vault: Arc<Vault>,
    pub passwords: Passwords,
    pub clock: Arc<dyn Clock>,
    pub keys: Arc<Keys>,
    /// One pooled Clari client for every organisation.
    pub clari: ClariClient,
    /// Forecast exports, as views built once per export.
    pub forecasts: ExportCache<Forecast>,
    pub activities: ExportCache<ActivityResults>,
    /// Each organisation's Clari concurrency limit, read from `/admin/limits`.
    pub export_limits: LimitCache,
    /// The audit trail.
    pub audit: crate::audit::AuditLog,
    /// Each organisation's compiled redaction policy, briefly cached.
    pub redaction: crate::redact::RedactionCache,
    /// What the store said of each organisation's principals and settings, kept while it
    /// stays true (`store::changes`).
    pub cached: Cached,
    /// Prometheus metrics of this process.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// The one guarded, bounded client for Client ID Metadata Documents.
    pub cimd: crate::oauth::cimd::CimdFetcher,
    /// Public key sets of identity providers (ID-JAG) and machine clients (`jwks_uri`).
    pub key_sets: crate::jose::KeySets,
    /// Sends invitations when `CLARI_MCP_SMTP_URL` is set.
    pub mailer: Option<crate::mail::Mailer>,
    /// Conformance build only: the fixed identity that replaces the bearer layer on `/mcp`.
    #[cfg(feature = "conformance")]
    pub conformance_identity: std::sync::OnceLock<crate::principal::AuthContext>,
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl AppState {
    /// Assembles the state, loading the signing keys (and creating the first one on a new database).
    pub async fn build(
        config: Config,
        store: Arc<dyn Store>,
        vault: Arc<Vault>,
        clock: Arc<dyn Clock>,
    ) -> anyhow::Result<Self> {
        // Retired keys stay published until every token they signed has expired.
        let publish_retired_for = config.access_token_ttl + crate::signing::PUBLICATION_MARGIN;
        let keys = Keys::load(store.as_ref(), &vault, clock.now(), publish_retired_for)
            .await
            .context("loading signing keys")?;
        for setting in config.danger_settings() {
            tracing::warn!(
                setting,
                "a DANGER setting is on: a protection is weakened; never use it in production"
            );
        }
        let metrics = crate::metrics::Metrics::shared();
        let audit = crate::audit::AuditLog::start(
            store.clone(),
            &vault,
            clock.clone(),
            config.audit.clone(),
            metrics.clone(),
        )
        .await
        .context("loading the audit keys")?;
        let ttl = config.export_cache_ttl;
        let entries = crate::exports::cache::Capacity {
            entries: config.export_cache_entries,
            bytes: (config.export_cache_mb as usize) << 20,
        };
        let max_response_bytes = u64::from(config.clari_max_response_mb) << 20;
        let cimd = crate::oauth::cimd::CimdFetcher::new(config.danger_cimd_allow_loopback);
        let mailer = crate::mail::Mailer::from_config(config.smtp_url.as_ref(), &config.smtp_from)
            .map_err(|e| anyhow::anyhow!("CLARI_MCP_SMTP_URL: {e}"))?;
        let key_sets = crate::jose::KeySets::new(config.danger_sso_allow_loopback);
        Ok(Self(Arc::new(Inner {
            mailer,
            key_sets,
            config,
            store,
            vault,
            passwords: Passwords::default(),
            keys: Arc::new(keys),
            clari: ClariClient::new(ClientOptions {
                metrics: Some(metrics.clone()),
                max_response_bytes,
                ..ClientOptions::default()
            }),
            forecasts: ExportCache::new(ttl, clock.clone(), entries),
            activities: ExportCache::new(ttl, clock.clone(), entries),
            export_limits: LimitCache::default(),
            cimd,
            audit,
            redaction: Default::default(),
            cached: Cached::default(),
            metrics,
            clock,
            #[cfg(feature = "conformance")]
            conformance_identity: std::sync::OnceLock::new(),
        })))
    }

    /// Opens the vault (creating the key file on first start) and the database (applying
    /// migrations), as every subcommand does.
    pub async fn from_config(config: Config) -> anyhow::Result<Self> {
        let (vault, created) = config.open_vault()?;
        if created {
            tracing::warn!(
                path = %config.vault_key_file().display(),
                key_id = vault.primary_key_id(),
                "generated a new vault key file; back it up: stored Clari keys cannot be decrypted without it"
            );
        }
        let store = store::connect(&config.database_url)
            .await
            .with_context(|| {
                format!(
                    "opening the database {}",
                    crate::config::redact_url(&config.database_url)
                )
            })?;
        Self::build(config, store, Arc::new(vault), Arc::new(SystemClock)).await
    }

    /// Drops what this process keeps for an organisation: cached export results and its
    /// concurrency limit (after a new Clari key, or the kill switch).
    pub fn forget_org_exports(&self, org: &crate::store::OrgId) {
        self.forecasts.forget_org(org);
        self.activities.forget_org(org);
        self.export_limits.forget(org);
    }

    /// One of the organisation's settings as stored: from memory while the organisation has
    /// not changed on any replica or process (`store::changes`), else read and kept.
    pub async fn org_setting(
        &self,
        org: &crate::store::OrgId,
        which: OrgSetting,
    ) -> Result<Option<String>, crate::store::StoreError> {
        self.org_setting_checked(org, which, None).await
    }

    /// [`AppState::org_setting`] for a request that has read the change feed already.
    pub async fn org_setting_checked(
        &self,
        org: &crate::store::OrgId,
        which: OrgSetting,
        checked: Option<crate::store::changes::Checked>,
    ) -> Result<Option<String>, crate::store::StoreError> {
        let cache = match which {
            OrgSetting::Redaction => &self.cached.redaction,
            OrgSetting::TimeZone => &self.cached.time_zones,
        };
        let (changes, now) = (self.store.changes(), self.now());
        if let Some(v) = cache.get_checked(changes, checked, org, now) {
            return Ok(v);
        }
        let ticket = changes.ticket();
        let v = match which {
            OrgSetting::Redaction => self.store.org_redaction(org).await?,
            OrgSetting::TimeZone => self.store.org_time_zone(org).await?,
        };
        let until = now + crate::store::changes::CACHED_FOR;
        cache.put(changes, ticket, org.clone(), org, v.clone(), until);
        Ok(v)
    }

    pub fn now(&self) -> i64 {
        self.clock.now()
    }

    /// The access-token validator, bound to this server's issuer and MCP URL.
    pub fn access_tokens(&self) -> crate::signing::AccessTokens<'_> {
        crate::signing::AccessTokens {
            keys: &self.keys,
            store: self.store.as_ref(),
            live: &self.cached.behind,
            vault: &self.vault,
            issuer: &self.config.issuer,
            audience: &self.config.mcp_url,
            checked: None,
        }
    }
}
