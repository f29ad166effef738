//! Discovery: RFC 8414 authorization server metadata (also served at the OpenID discovery path),
//! RFC 9728 protected resource metadata, and the JWKS. Every URL is built from the configured
//! issuer, never from request headers.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::scope::Scope;
use crate::state::AppState;

fn cacheable(body: serde_json::Value) -> Response {
    let mut r = Json(body).into_response();
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    r
}

pub fn authorization_server_document(state: &AppState) -> serde_json::Value {
    let iss = &state.config.issuer;
    json!({
        "issuer": iss,
        "authorization_endpoint": format!("{iss}/authorize"),
        "token_endpoint": format!("{iss}/token"),
        "registration_endpoint": format!("{iss}/register"),
        "revocation_endpoint": format!("{iss}/revoke"),
        "introspection_endpoint": format!("{iss}/introspect"),
        "jwks_uri": format!("{iss}/jwks.json"),
        "scopes_supported": Scope::names(),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": super::token::GrantType::ALL.map(super::token::GrantType::as_str),
        // The ID-JAG draft, "Resource Authorization Server Metadata"; no issuer allow-list.
        "authorization_grant_profiles_supported": [super::idjag::PROFILE],
        "code_challenge_methods_supported": ["S256"],
        // private_key_jwt is for machine clients (the client credentials extension).
        "token_endpoint_auth_methods_supported": ["none", "client_secret_basic", "client_secret_post", "private_key_jwt"],
        "token_endpoint_auth_signing_alg_values_supported": crate::jose::algorithm_names(),
        // RFC 9449 §5.1.
        "dpop_signing_alg_values_supported": crate::jose::algorithm_names(),
        "revocation_endpoint_auth_methods_supported": ["none", "client_secret_basic", "client_secret_post"],
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "authorization_response_iss_parameter_supported": true,
        "client_id_metadata_document_supported": true,
        "service_documentation": format!("{iss}/"),
    })
}

pub async fn authorization_server(State(state): State<AppState>) -> Response {
    cacheable(authorization_server_document(&state))
}

/// The scopes an agent needs for every tool; `offline_access` is deliberately absent.
pub fn resource_scopes() -> Vec<&'static str> {
    Scope::NARROW.iter().map(|s| s.as_str()).collect()
}

pub async fn protected_resource(State(state): State<AppState>) -> Response {
    cacheable(json!({
        "resource": state.config.mcp_url,
        "authorization_servers": [state.config.issuer],
        "scopes_supported": resource_scopes(),
        "bearer_methods_supported": ["header"],
        // RFC 9449 §5.2 / RFC 9728 §2: DPoP is accepted; an organisation may require it.
        "dpop_signing_alg_values_supported": crate::jose::algorithm_names(),
        "dpop_bound_access_tokens_required": false,
        "resource_name": "clari-mcp",
        "resource_documentation": format!("{}/", state.config.issuer),
    }))
}

pub async fn jwks(State(state): State<AppState>) -> Response {
    cacheable(state.keys.jwks().await)
}
