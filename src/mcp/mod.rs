//! The MCP resource server at `/mcp`: rmcp's Streamable HTTP service, stateless (no session
//! manager, JSON responses) so any replica answers any request, behind the bearer layer.

pub mod auth;
pub mod cache;
pub mod data;
pub mod server;
pub mod tools;

use std::sync::Arc;

use axum::Router;
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};

use crate::app::AppState;

/// Hosts the transport accepts: the public URL's authority and the bound address.
fn allowed_hosts(state: &AppState) -> Vec<String> {
    let mut hosts = Vec::new();
    if let Ok(u) = url::Url::parse(&state.config.public_url)
        && let Some(h) = u.host_str()
    {
        hosts.push(match u.port() {
            Some(p) => format!("{h}:{p}"),
            None => h.to_owned(),
        });
        hosts.push(h.to_owned());
    }
    hosts.push(state.config.bind.to_string());
    hosts
}

pub fn router(state: &AppState) -> Router<AppState> {
    let public_origin = url::Url::parse(&state.config.public_url)
        .map(|u| u.origin().ascii_serialization())
        .unwrap_or_default();
    let mut origins = vec![public_origin];
    origins.extend(state.config.allowed_origins.iter().cloned());
    let config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(false)
        .with_json_response(true)
        .with_allowed_hosts(allowed_hosts(state))
        .with_allowed_origins(origins)
        .enforce_origin_validation();
    let handler_state = state.clone();
    let service = StreamableHttpService::new(
        move || Ok(server::ClariMcp::new(handler_state.clone())),
        Arc::new(NeverSessionManager::default()),
        config,
    );
    Router::new()
        .nest_service("/mcp", service)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_auth,
        ))
}
