//! The application: the router composed of every feature's routes, `Application` (binds the
//! listener, port 0 in tests, and serves until told to stop) and housekeeping. The shared state
//! lives below the handlers, in [`crate::state`].

use std::future::Future;
use std::net::SocketAddr;

use anyhow::Context;

pub use crate::state::AppState;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use secrecy::ExposeSecret;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

pub fn router(state: AppState) -> Router {
    let https = state.config.is_https();
    let body_timeout = state.config.listener.body_read_timeout;
    let router = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/.well-known/audit-keys.json", get(audit_keys))
        .route("/metrics", get(metrics))
        .merge(crate::oauth::router())
        .merge(crate::web::router())
        .merge(crate::admin::router())
        .merge(crate::account::router())
        .merge(crate::scim::router())
        .merge(crate::sso::router())
        .layer(crate::web::session::layer(&state))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::web::session::owned_by_client,
        ))
        // Merged after the session layers, which it never uses: an MCP call carries a bearer
        // credential, not a cookie, and parsing cookies and scoping the caller's address for
        // sessions it cannot make was a measurable share of every warm call.
        .merge(crate::mcp::router(&state))
        .fallback(crate::scim::unknown_path)
        .with_state(state);
    // The layers every request passes wrap the router once, as one service. Given to
    // `Router::layer` instead, each would wrap every route on its own, and a request would clone
    // and box each of them again on its way in (a measurable share of a warm MCP call).
    // Outermost first.
    let layered = tower::ServiceBuilder::new()
        // RFC 6797: browsers that reached us over https keep to https for two years.
        .option_layer(https.then(|| {
            tower_http::set_header::SetResponseHeaderLayer::if_not_present(
                axum::http::header::STRICT_TRANSPORT_SECURITY,
                axum::http::HeaderValue::from_static("max-age=63072000; includeSubDomains"),
            )
        }))
        .map_request(move |req| crate::serve::with_body_deadline(body_timeout, req))
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        // Every log line of a request carries its id (the client's X-Request-Id, or one minted
        // by the layer above), which every response also returns.
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(request_span)
                .on_response(
                    |res: &axum::http::Response<_>,
                     _latency: std::time::Duration,
                     span: &tracing::Span| {
                        span.record("http.response.status_code", res.status().as_u16());
                    },
                ),
        )
        .layer(PropagateRequestIdLayer::x_request_id())
        // The request's span goes with the request, for handlers that run in tasks of their own
        // (the MCP handler makes its span a child of it). Inside the trace layer, so it is current.
        .map_request(|mut req: axum::extract::Request| {
            req.extensions_mut()
                .insert(crate::http::RequestSpan(tracing::Span::current()));
            req
        })
        .service(router);
    Router::new().fallback_service(layered)
}

/// The span of one HTTP request: its log lines carry the request id (the client's `X-Request-Id`,
/// or one minted by the outermost layer, which every response also returns) and, with tracing
/// on, the trace id. As an OpenTelemetry server span it is named `{method} {route}` and continues
/// the trace of a W3C `traceparent` header (OpenTelemetry HTTP semantic conventions).
fn request_span(req: &axum::http::Request<axum::body::Body>) -> tracing::Span {
    let id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-");
    let path = route_of(req.uri().path());
    let span = tracing::info_span!(
        "request",
        method = %req.method(),
        path = %path,
        request_id = %id,
        trace_id = tracing::field::Empty,
        otel.name = %format!("{} {path}", req.method()),
        otel.kind = "server",
        http.request.method = %req.method(),
        url.path = %path,
        http.response.status_code = tracing::field::Empty,
    );
    crate::telemetry::continue_from_headers(&span, req.headers());
    span
}

/// A path as logs and span names may show it: a segment that holds a digit (an id, a token) is
/// replaced by `{id}`, so an invitation link's secret never reaches a log and span names stay few.
fn route_of(path: &str) -> String {
    if path.starts_with("/invitations/") {
        return "/invitations/{token}".into();
    }
    path.split('/')
        .map(|seg| {
            if seg.chars().any(|c| c.is_ascii_digit()) {
                "{id}"
            } else {
                seg
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

async fn healthz() -> &'static str {
    "ok"
}

/// The public keys that verify the audit trail's checkpoint signatures.
async fn audit_keys(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(axum::http::header::CACHE_CONTROL, "public, max-age=3600")],
        axum::Json(state.audit.keys().public_keys()),
    )
}

/// The Prometheus exposition, on the main listener only with `CLARI_MCP_METRICS_TOKEN` (and that
/// bearer token); otherwise it is not here (404).
async fn metrics(State(state): State<AppState>, headers: axum::http::HeaderMap) -> Response {
    let Some(expected) = &state.config.metrics_token else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let presented = crate::bearer::bearer_token(&headers).unwrap_or_default();
    if !crate::crypto::constant_time_eq(presented.as_bytes(), expected.expose_secret().as_bytes()) {
        return (
            StatusCode::UNAUTHORIZED,
            [(axum::http::header::WWW_AUTHENTICATE, "Bearer")],
        )
            .into_response();
    }
    exposition(&state, &headers)
}

/// OpenMetrics when the scraper asks for it, else the classic Prometheus text format. The audit
/// queue, the cache lookups and the change feed are read at the scrape, so they are never a
/// minute stale.
fn exposition(state: &AppState, headers: &axum::http::HeaderMap) -> Response {
    let m = &state.metrics;
    m.audit_queue_depth
        .set(i64::try_from(state.audit.queued()).unwrap_or(i64::MAX));
    m.audit_accepting.set(i64::from(state.audit.accepting()));
    let (cached, changes) = (&state.cached, state.store.changes());
    m.sync_counts(
        &[
            ("api_key", cached.api_keys.lookups()),
            ("token", cached.behind.lookups()),
            ("redaction", cached.redaction.lookups()),
            ("time_zone", cached.time_zones.lookups()),
        ],
        changes.trusted(),
        (changes.listener_losses(), changes.unacknowledged_changes()),
    );
    let open_metrics = headers
        .get(axum::http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("application/openmetrics-text"));
    let (content_type, body) = if open_metrics {
        (
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            state.metrics.render(),
        )
    } else {
        (
            "text/plain; version=0.0.4; charset=utf-8",
            state.metrics.render_text(),
        )
    };
    ([(axum::http::header::CONTENT_TYPE, content_type)], body).into_response()
}

/// Serves `/metrics` alone on `CLARI_MCP_METRICS_BIND` (an address only the monitoring network
/// reaches), without a token.
pub async fn spawn_metrics_listener(state: AppState) -> anyhow::Result<()> {
    let Some(bind) = state.config.metrics_bind else {
        return Ok(());
    };
    let listener = tokio::net::TcpListener::bind(bind)
        .await
        .with_context(|| format!("binding the metrics listener {bind}"))?;
    let app =
        Router::new()
            .route(
                "/metrics",
                get(
                    |State(s): State<AppState>, h: axum::http::HeaderMap| async move {
                        exposition(&s, &h)
                    },
                ),
            )
            .with_state(state.clone());
    tracing::info!(addr = %bind, "metrics listening");
    let limits = state.config.listener;
    let metrics = state.metrics.clone();
    tokio::spawn(async move {
        let forever = std::future::pending::<()>();
        if let Err(e) = crate::serve::serve(listener, app, limits, Some(metrics), forever).await {
            tracing::error!(error = %e, "the metrics listener stopped");
        }
    });
    Ok(())
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
    limits: crate::serve::ListenerLimits,
    metrics: std::sync::Arc<crate::metrics::Metrics>,
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
            limits: state.config.listener,
            metrics: state.metrics.clone(),
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
        crate::serve::serve(
            self.listener,
            self.router,
            self.limits,
            Some(self.metrics),
            shutdown,
        )
        .await
    }
}

/// What `serve` and `demo` both run: housekeeping, the metrics listener when
/// `CLARI_MCP_METRICS_BIND` is set, the server until `shutdown`, then every audit event queued
/// before the stop written.
pub async fn serve_until_stopped(
    state: AppState,
    app: Application,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    spawn_maintenance(state.clone());
    spawn_metrics_listener(state.clone()).await?;
    tracing::info!(
        addr = %app.local_addr(),
        public_url = %state.config.public_url,
        mcp_url = %state.config.mcp_url,
        backend = ?state.store.backend(),
        "clari-mcp listening"
    );
    app.run_until_stopped(shutdown).await?;
    state.audit.flush().await;
    Ok(())
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
    /// Audit events past the retention (cut behind a signed checkpoint).
    pub audit_events: u64,
    /// MCP tasks past their time to live.
    pub tasks: u64,
    /// Pre-warm budget counters of past days.
    pub prewarm_days: u64,
    /// Summary events written for closed windows of refused requests.
    pub refusals_summarised: u64,
}

/// How often every replica runs [`housekeeping`].
pub const HOUSEKEEPING_EVERY: std::time::Duration = std::time::Duration::from_secs(15 * 60);

/// How often the gauges read from the store are refreshed.
const GAUGES_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

/// One pass of housekeeping: everything an outsider can make us hold is dropped once it expires.
pub async fn housekeeping(state: &AppState) -> Result<Housekeeping, crate::store::StoreError> {
    let now = state.now();
    state.forecasts.sweep();
    state.activities.sweep();
    let store = &state.store;
    // Killed or disabled organisations: no request of theirs gets through, so their cached
    // results can only be memory; drop them.
    for org in store.list_orgs().await?.into_iter().filter(|o| o.disabled) {
        state.forecasts.forget_org(&org.id);
        state.activities.forget_org(&org.id);
    }
    let refusals_summarised =
        crate::audit::refusals::summarise(store.as_ref(), &state.audit, now).await?;
    state.audit.flush().await;
    let audit_events = crate::audit::prune(
        store.as_ref(),
        state.audit.keys(),
        now,
        state.config.audit.retention,
    )
    .await?;
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
        audit_events,
        tasks: store.purge_tasks(now).await?,
        prewarm_days: store
            .purge_prewarm_budget(crate::exports::prewarm::budget_day(now) - 1)
            .await?,
        refusals_summarised,
    })
}

/// Refreshes the gauges read from the database: live grants, clients and API keys (in all, and
/// of the organisations with the most), the export queue, and the age of the access-token
/// signing key.
pub async fn refresh_gauges(state: &AppState) -> Result<(), crate::store::StoreError> {
    let now = state.now();
    let activity = state
        .store
        .org_activity(now, state.config.metrics_orgs)
        .await?;
    state.metrics.set_org_gauges(
        (
            activity.organisations,
            activity.grants,
            activity.clients,
            activity.api_keys,
        ),
        &activity.top,
    );
    let queue: Vec<_> = state
        .store
        .export_queue_summary()
        .await?
        .into_iter()
        .map(|r| (r.status, r.n, r.oldest_created, r.oldest_updated))
        .collect();
    state.metrics.set_export_queue(&queue, now);
    let newest = state
        .store
        .signing_keys()
        .await?
        .into_iter()
        .filter(|k| k.retired_at.is_none())
        .map(|k| k.created_at)
        .max();
    if let Some(created) = newest {
        state
            .metrics
            .signing_key_age_seconds
            .set((now - created).max(0));
    }
    Ok(())
}

pub fn spawn_maintenance(state: AppState) -> tokio::task::JoinHandle<()> {
    let gauges = state.clone();
    let prewarm = state.clone();
    tokio::spawn(async move {
        // The first pass runs at start; a pass ends when its refreshes have.
        let mut tick = tokio::time::interval(crate::exports::prewarm::TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let pass = crate::exports::prewarm::run_pass(&prewarm).await;
            if pass.started + pass.followed + pass.failed > 0 {
                tracing::info!(?pass, "pre-warm pass done");
            }
        }
    });
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(GAUGES_EVERY);
        loop {
            tick.tick().await;
            if let Err(e) = refresh_gauges(&gauges).await {
                tracing::warn!(error = %e, "refreshing the metrics gauges failed");
            }
        }
    });
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(HOUSEKEEPING_EVERY);
        loop {
            tick.tick().await;
            let started = std::time::Instant::now();
            match housekeeping(&state).await {
                Ok(done) => tracing::info!(
                    ?done,
                    took_ms = started.elapsed().as_millis() as u64,
                    "housekeeping done"
                ),
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
