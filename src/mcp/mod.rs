//! The MCP resource server at `/mcp`: rmcp's Streamable HTTP service, stateless (no session
//! manager, JSON responses) so any replica answers any request, behind the bearer layer.

pub mod apps;
pub mod auth;
#[cfg(feature = "conformance")]
pub mod conformance;

pub mod envelope;

pub mod progress;

pub mod server;
pub mod tasks;
pub mod tools;

use std::sync::Arc;

use axum::Router;
use axum::response::IntoResponse;
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};

use crate::state::AppState;

/// The public URL's host, plus the other loopback names when it is a loopback host (a local
/// server answers `localhost`, `127.0.0.1` and `[::1]` alike).
fn public_hosts(state: &AppState) -> (Vec<String>, Option<u16>, String) {
    let Ok(u) = url::Url::parse(&state.config.public_url) else {
        return (Vec::new(), None, "http".into());
    };
    let host = u.host_str().unwrap_or_default().to_owned();
    let mut hosts = vec![host.clone()];
    if crate::net::is_loopback_host(&host) {
        for alias in ["localhost", "127.0.0.1", "[::1]"] {
            if !hosts.iter().any(|h| h == alias) {
                hosts.push(alias.to_owned());
            }
        }
    }
    (hosts, u.port(), u.scheme().to_owned())
}

/// Hosts the transport accepts: the public URL's authority (and loopback aliases) and the bound address.
fn allowed_hosts(state: &AppState) -> Vec<String> {
    let (names, port, _) = public_hosts(state);
    let mut hosts = Vec::new();
    for h in names {
        if let Some(p) = port {
            hosts.push(format!("{h}:{p}"));
        }
        hosts.push(h);
    }
    hosts.push(state.config.bind.to_string());
    hosts
}

/// Browser origins that may call `/mcp`: the public URL's and `CLARI_MCP_ALLOWED_ORIGINS`.
fn allowed_origins(state: &AppState) -> Vec<String> {
    let public_origin = url::Url::parse(&state.config.public_url)
        .map(|u| u.origin().ascii_serialization())
        .unwrap_or_default();
    let mut origins = vec![public_origin];
    origins.extend(state.config.allowed_origins.iter().cloned());
    origins
}

/// Whether a request's Host and Origin may reach `/mcp` (DNS rebinding and cross-site calls):
/// the Host must be one of ours, and an Origin, when sent, one we allow.
pub fn host_and_origin_allowed(
    headers: &axum::http::HeaderMap,
    hosts: &[String],
    origins: &[String],
) -> bool {
    let host_ok = headers
        .get(axum::http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .is_none_or(|h| hosts.iter().any(|a| a.eq_ignore_ascii_case(h)));
    let origin_ok = headers
        .get(axum::http::header::ORIGIN)
        .map(|o| {
            o.to_str()
                .is_ok_and(|o| origins.iter().any(|a| a.eq_ignore_ascii_case(o)))
        })
        .unwrap_or(true);
    host_ok && origin_ok
}

pub fn router(state: &AppState) -> Router<AppState> {
    let origins = allowed_origins(state);
    let config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(false)
        .with_json_response(true)
        .with_allowed_hosts(allowed_hosts(state))
        .with_allowed_origins(origins.clone())
        .enforce_origin_validation();
    let handler_state = state.clone();
    let service = Arc::new(StreamableHttpService::new(
        move || Ok(server::ClariMcp::new(handler_state.clone())),
        Arc::new(NeverSessionManager::default()),
        config,
    ));
    #[cfg(feature = "conformance")]
    if let Some(identity) = state.conformance_identity.get().cloned() {
        // Conformance build: a fixed test identity stands in for the bearer layer.
        let service = tower::service_fn(move |mut req: axum::extract::Request| {
            let service = Arc::clone(&service);
            req.extensions_mut().insert(identity.clone());
            async move { Ok::<_, std::convert::Infallible>(service.handle(req).await) }
        });
        return Router::new()
            .route_service("/mcp", service)
            .layer(cors(origins));
    }
    // One endpoint, shared: the router clones the service it routes to on every request, and
    // rmcp's own `call` clones it again, host and origin lists included; so the route holds an
    // `Arc` of it, called by reference. The Host and Origin check and authentication run in it
    // rather than as layers, which the router would clone and box for every request.
    let endpoint = Arc::new(Endpoint {
        state: state.clone(),
        hosts: allowed_hosts(state),
        origins: origins.clone(),
        transport: service,
    });
    let service = tower::service_fn(move |req: axum::extract::Request| {
        let endpoint = Arc::clone(&endpoint);
        async move { Ok::<_, std::convert::Infallible>(endpoint.serve(req).await) }
    });
    Router::new()
        .route_service("/mcp", service)
        .layer(cors(origins))
}

/// `/mcp`: what is checked before the transport sees a request, and the transport.
struct Endpoint {
    state: AppState,
    hosts: Vec<String>,
    origins: Vec<String>,
    transport: Arc<StreamableHttpService<server::ClariMcp, NeverSessionManager>>,
}

impl Endpoint {
    /// Host and Origin are checked before authentication: a foreign page gets 403 whether or
    /// not it carries a token, and never learns anything from a 401 challenge. Then
    /// authentication ([`auth::require_auth`]), then the transport.
    async fn serve(&self, req: axum::extract::Request) -> axum::response::Response {
        if !host_and_origin_allowed(req.headers(), &self.hosts, &self.origins) {
            return (
                axum::http::StatusCode::FORBIDDEN,
                "Forbidden: this Host or Origin may not call the MCP endpoint",
            )
                .into_response();
        }
        auth::require_auth(&self.state, req, |req| async move {
            self.transport.handle(req).await.map(axum::body::Body::new)
        })
        .await
    }
}

/// CORS for browser-based MCP clients of the allowed origins (the Fetch standard's CORS
/// protocol): a preflight is answered before authentication, so `CLARI_MCP_ALLOWED_ORIGINS`
/// works; the headers a client must read (`WWW-Authenticate` for the OAuth challenge of MCP
/// 2025-11-25 Authorization §Protected Resource Metadata Discovery, `Mcp-Session-Id`) are
/// exposed. Other origins get no CORS headers, and their requests 403 from the Origin check.
fn cors(origins: Vec<String>) -> tower_http::cors::CorsLayer {
    use axum::http::{HeaderName, Method, header};
    use tower_http::cors::{AllowOrigin, CorsLayer};
    CorsLayer::new()
        .allow_origin(AllowOrigin::predicate(move |origin, _| {
            origin
                .to_str()
                .is_ok_and(|o| origins.iter().any(|a| a.eq_ignore_ascii_case(o)))
        }))
        .allow_methods([Method::GET, Method::POST, Method::DELETE, Method::OPTIONS])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::ACCEPT,
            HeaderName::from_static("mcp-protocol-version"),
            HeaderName::from_static("mcp-session-id"),
            HeaderName::from_static("last-event-id"),
            crate::dpop::PROOF_HEADER,
        ])
        .expose_headers([
            header::WWW_AUTHENTICATE,
            header::RETRY_AFTER,
            HeaderName::from_static("mcp-session-id"),
            HeaderName::from_static("mcp-protocol-version"),
            crate::dpop::NONCE_HEADER,
        ])
        .max_age(std::time::Duration::from_secs(600))
}
