//! The OAuth 2.1 authorization server: discovery (RFC 8414, RFC 9728), clients (RFC 7591/7592 and
//! Client ID Metadata Documents), the authorization endpoint with login and consent, the token
//! endpoint (code with PKCE S256, rotating refresh tokens; client credentials for machine
//! clients; ID-JAG identity assertions; DPoP-bound tokens), revocation (RFC 7009), introspection
//! (RFC 7662) and the JWKS.

pub mod authorize;
pub mod cimd;
pub mod client;
pub mod consent;
pub mod core;
pub mod dpop;
pub mod error;
pub mod grants;
pub mod idjag;
pub mod introspect;
pub mod issue;
pub mod metadata;
pub mod pkce;
pub mod redirect;
pub mod register;
pub mod request;
pub mod revoke;
pub mod service;
pub mod token;

use std::collections::HashMap;

use axum::Router;
use axum::http::{HeaderMap, Method, header};
use axum::routing::{get, post};
use base64::Engine;
use tower_http::cors::{Any, CorsLayer};

use crate::crypto::{constant_time_eq, sha256_hex};
use crate::state::AppState;
use client::Client;
use error::OAuthError;

/// Bodies of OAuth requests are small; anything larger is refused before parsing.
pub const MAX_FORM_BYTES: usize = 64 * 1024;

pub fn router() -> Router<AppState> {
    let open_get = CorsLayer::new()
        .allow_origin(Any)
        .allow_methods([Method::GET, Method::OPTIONS])
        .allow_headers([
            header::HeaderName::from_static("mcp-protocol-version"),
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
        ]);
    let api = CorsLayer::new()
        .allow_origin(Any)
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::DELETE,
            Method::OPTIONS,
        ])
        .allow_headers([
            header::HeaderName::from_static("mcp-protocol-version"),
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            dpop::PROOF_HEADER,
        ])
        .expose_headers([
            header::WWW_AUTHENTICATE,
            header::RETRY_AFTER,
            dpop::NONCE_HEADER,
        ]);
    let discovery = Router::new()
        .route(
            "/.well-known/oauth-authorization-server",
            get(metadata::authorization_server),
        )
        .route(
            "/.well-known/openid-configuration",
            get(metadata::authorization_server),
        )
        .route(
            "/.well-known/oauth-protected-resource",
            get(metadata::protected_resource),
        )
        .route(
            "/.well-known/oauth-protected-resource/mcp",
            get(metadata::protected_resource),
        )
        .route("/jwks.json", get(metadata::jwks))
        .layer(open_get);
    let endpoints = Router::new()
        .route("/register", post(register::register_client))
        .route(
            "/register/{client_id}",
            get(register::read_client)
                .put(register::update_client)
                .delete(register::delete_client),
        )
        .route("/token", post(token::post_token))
        .route("/revoke", post(revoke::revoke_token))
        .route("/introspect", post(introspect::introspect_token))
        .layer(api);
    // The authorization endpoint is for browsers only: no CORS.
    let browser = Router::new()
        .route("/authorize", get(authorize::get_authorize))
        .route(
            "/authorize/consent",
            get(consent::get_consent).post(consent::post_consent),
        );
    discovery.merge(endpoints).merge(browser)
}

/// Requires `application/x-www-form-urlencoded`.
pub fn require_form(headers: &HeaderMap) -> Result<(), OAuthError> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let mime = ct.split(';').next().unwrap_or_default().trim();
    if mime.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
        Ok(())
    } else {
        Err(OAuthError::invalid_request(
            "the request must be application/x-www-form-urlencoded",
        ))
    }
}

/// A Basic authorization header that cannot be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MalformedBasic;

/// `Authorization: Basic` credentials (each part form-urlencoded, RFC 6749 §2.3.1).
/// `Ok(None)` when there is no Basic header; `Err` when one is present but malformed.
pub fn parse_basic_auth(headers: &HeaderMap) -> Result<Option<(String, String)>, MalformedBasic> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let text = value.to_str().map_err(|_| MalformedBasic)?;
    let Some((scheme, rest)) = text.split_once(' ') else {
        return Ok(None);
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return Ok(None);
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(rest.trim())
        .map_err(|_| MalformedBasic)?;
    let decoded = String::from_utf8(decoded).map_err(|_| MalformedBasic)?;
    let (id, secret) = decoded.split_once(':').ok_or(MalformedBasic)?;
    let dec = |s: &str| {
        url::form_urlencoded::parse(format!("x={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    let (id, secret) = (dec(id), dec(secret));
    if id.is_empty() {
        return Err(MalformedBasic);
    }
    Ok(Some((id, secret)))
}

/// Authenticates the client of a token, revocation or introspection request: `none` (client_id
/// only), `client_secret_basic` or `client_secret_post`. Failures are 401 `invalid_client`.
pub async fn authenticate_client(
    state: &AppState,
    caller: std::net::IpAddr,
    headers: &HeaderMap,
    form: &HashMap<String, String>,
) -> Result<Client, OAuthError> {
    let basic = parse_basic_auth(headers).map_err(|_| {
        OAuthError::invalid_client("the Basic authorization header is malformed")
            .with_basic_challenge(true)
    })?;
    let used_basic = basic.is_some();
    let body_id = form.get("client_id");
    let body_secret = form.get("client_secret");
    if used_basic && body_secret.is_some() {
        return Err(OAuthError::invalid_request(
            "use one client authentication method, not Basic and client_secret together",
        ));
    }
    let (client_id, secret) = match (&basic, body_id) {
        (Some((id, _)), Some(other)) if id != other => {
            return Err(OAuthError::invalid_request(
                "client_id differs from the Basic credentials",
            ));
        }
        (Some((id, s)), _) => (id.clone(), Some(s.clone())),
        (None, Some(id)) => (id.clone(), body_secret.cloned()),
        (None, None) => {
            return Err(
                OAuthError::invalid_client("client authentication is required")
                    .with_basic_challenge(true),
            );
        }
    };
    let fail = || {
        OAuthError::invalid_client("client authentication failed").with_basic_challenge(used_basic)
    };
    let client = client::load(state, &client_id, Some(caller))
        .await?
        .ok_or_else(fail)?;
    if client.is_public() {
        if secret.is_some() {
            return Err(OAuthError::invalid_client(
                "this is a public client; it must not send a client secret",
            )
            .with_basic_challenge(used_basic));
        }
        return Ok(client);
    }
    let (Some(secret), Some(hash)) = (secret, &client.secret_hash) else {
        return Err(fail());
    };
    if !constant_time_eq(sha256_hex(&secret).as_bytes(), hash.as_bytes()) {
        return Err(fail());
    }
    Ok(client)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_auth_parsing() {
        let mut h = HeaderMap::new();
        assert_eq!(parse_basic_auth(&h), Ok(None));
        h.insert(
            header::AUTHORIZATION,
            "Basic Y2xpZW50OnMlM0FjcmV0".parse().unwrap(),
        ); // client:s%3Acret
        assert_eq!(
            parse_basic_auth(&h),
            Ok(Some(("client".into(), "s:cret".into())))
        );
        h.insert(header::AUTHORIZATION, "Basic !!!".parse().unwrap());
        assert!(parse_basic_auth(&h).is_err());
        h.insert(header::AUTHORIZATION, "Basic bm9jb2xvbg==".parse().unwrap()); // nocolon
        assert!(parse_basic_auth(&h).is_err());
        h.insert(header::AUTHORIZATION, "Bearer abc".parse().unwrap());
        assert_eq!(parse_basic_auth(&h), Ok(None));
    }
}
