//! `AppState` (cheap to clone, everything behind one `Arc`) and `Application`, which binds the
//! listener (port 0 in tests) and serves the router until told to stop.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::serve::ListenerExt;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use crate::clari::types::ActivityResults;
use crate::clari::{ClariClient, ClientOptions};
use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::crypto::keys::Keys;
use crate::crypto::{Passwords, Vault};
use crate::mcp::cache::ExportCache;
use crate::mcp::data::Forecast;
use crate::mcp::queue::LimitCache;
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
    /// The one guarded, bounded client for Client ID Metadata Documents.
    pub cimd: crate::oauth::cimd::CimdFetcher,
    /// Conformance build only: the fixed identity that replaces the bearer layer on `/mcp`.
    #[cfg(feature = "conformance")]
    pub conformance_identity: std::sync::OnceLock<crate::mcp::auth::AuthContext>,
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
        let publish_retired_for = config.access_token_ttl + 300;
        let keys = Keys::load(store.as_ref(), &vault, clock.now(), publish_retired_for)
            .await
            .context("loading signing keys")?;
        let ttl = config.export_cache_ttl;
        let cimd = crate::oauth::cimd::CimdFetcher::new(config.danger_cimd_allow_loopback);
        Ok(Self(Arc::new(Inner {
            config,
            store,
            vault,
            passwords: Passwords::default(),
            keys: Arc::new(keys),
            clari: ClariClient::new(ClientOptions::default()),
            forecasts: ExportCache::new(ttl, clock.clone()),
            activities: ExportCache::new(ttl, clock.clone()),
            export_limits: LimitCache::default(),
            cimd,
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

    pub fn now(&self) -> i64 {
        self.clock.now()
    }
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .merge(crate::oauth::router())
        .merge(crate::mcp::router(&state))
        .merge(crate::web::router())
        .layer(crate::web::session::layer(&state))
        .with_state(state)
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(TraceLayer::new_for_http())
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
}

async fn healthz() -> &'static str {
    "ok"
}

/// Ready when the database answers.
async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    match state.store.ping().await {
        Ok(()) => (StatusCode::OK, "ready"),
        Err(e) => {
            tracing::error!(error = %e, "readiness check failed");
            (StatusCode::SERVICE_UNAVAILABLE, "database unavailable")
        }
    }
}

pub struct Application {
    listener: tokio::net::TcpListener,
    addr: SocketAddr,
    router: Router,
}

impl Application {
    /// Binds `config.bind` (use port 0 for an ephemeral port) and prepares the router.
    pub async fn build(state: AppState) -> anyhow::Result<Self> {
        let bind = state.config.bind;
        let listener = tokio::net::TcpListener::bind(bind)
            .await
            .with_context(|| format!("binding {bind}"))?;
        Self::from_listener(state, listener)
    }

    /// Serves on an already bound listener (tests bind port 0 first, so the public URL can name
    /// the real port).
    pub fn from_listener(
        state: AppState,
        listener: tokio::net::TcpListener,
    ) -> anyhow::Result<Self> {
        let addr = listener.local_addr()?;
        Ok(Self {
            listener,
            addr,
            router: router(state),
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Serves until `shutdown` completes, then drains in-flight requests.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let listener = self.listener.tap_io(|tcp| {
            if let Err(e) = tcp.set_nodelay(true) {
                tracing::debug!(error = %e, "could not set TCP_NODELAY");
            }
        });
        axum::serve(
            listener,
            self.router
                .into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(shutdown)
        .await
    }
}

/// Hourly housekeeping: expired dynamic clients without live grants, old rate-limit windows, and
/// signing keys whose tokens have all expired. Every replica may run it; each step is idempotent.
/// Revoked grants (and their tokens) are kept this long for the account page's history.
const KEEP_REVOKED_GRANTS: i64 = 30 * 86_400;

/// What one housekeeping pass removed.
#[derive(Debug, Default)]
pub struct Housekeeping {
    pub clients: u64,
    pub rate_windows: u64,
    pub export_rows: u64,
    pub signing_keys: u64,
    pub purged: crate::store::Purged,
}

/// One pass of housekeeping: everything an outsider can make us hold is dropped once it expires.
pub async fn housekeeping(state: &AppState) -> Result<Housekeeping, crate::store::StoreError> {
    let now = state.now();
    state.forecasts.sweep();
    state.activities.sweep();
    let store = &state.store;
    Ok(Housekeeping {
        clients: store.purge_unused_clients(now).await?,
        rate_windows: store.purge_rate_limits(now - 86_400).await?,
        // Finished export rows are kept a day past their freshness, then go.
        export_rows: store
            .purge_export_jobs(now - state.config.export_cache_ttl.as_secs() as i64 - 86_400)
            .await?,
        signing_keys: store
            .purge_signing_keys(now - state.config.access_token_ttl - 300)
            .await?,
        purged: store.purge_expired(now, now - KEEP_REVOKED_GRANTS).await?,
    })
}

pub fn spawn_maintenance(state: AppState) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(900));
        loop {
            tick.tick().await;
            match housekeeping(&state).await {
                Ok(done) => tracing::info!(?done, "housekeeping done"),
                Err(e) => {
                    tracing::warn!(error = %e, "housekeeping failed; trying again at the next tick")
                }
            }
        }
    })
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down");
}
