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
use crate::store::{self, Store};

#[derive(Clone)]
pub struct AppState(Arc<Inner>);

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
                ..ClientOptions::default()
            }),
            forecasts: ExportCache::new(ttl, clock.clone()),
            activities: ExportCache::new(ttl, clock.clone()),
            export_limits: LimitCache::default(),
            cimd,
            audit,
            redaction: Default::default(),
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

    pub fn now(&self) -> i64 {
        self.clock.now()
    }

    /// The access-token validator, bound to this server's issuer and MCP URL.
    pub fn access_tokens(&self) -> crate::signing::AccessTokens<'_> {
        crate::signing::AccessTokens {
            keys: &self.keys,
            store: self.store.as_ref(),
            vault: &self.vault,
            issuer: &self.config.issuer,
            audience: &self.config.mcp_url,
        }
    }
}
