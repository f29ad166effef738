//! The OAuth 2.1 authorization server: discovery (RFC 8414, RFC 9728), clients (RFC 7591/7592 and
//! Client ID Metadata Documents), the authorization endpoint with login and consent, the token
//! endpoint (code with PKCE S256, rotating refresh tokens), revocation (RFC 7009), introspection
//! (RFC 7662) and the JWKS.

pub mod authorize;
pub mod cimd;
pub mod client;
pub mod error;
pub mod introspect;
pub mod metadata;
pub mod pkce;
pub mod redirect;
pub mod register;
pub mod revoke;
pub mod token;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Method, header};
use axum::routing::{get, post};
use base64::Engine;
use tower_http::cors::{Any, CorsLayer};

use crate::app::AppState;
use crate::crypto::{constant_time_eq, sha256_hex};
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
        ])
        .expose_headers([header::WWW_AUTHENTICATE, header::RETRY_AFTER]);
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
            get(authorize::get_consent).post(authorize::post_consent),
        );
    discovery.merge(endpoints).merge(browser)
}

/// Reads a body up to `limit` bytes; larger bodies are an `invalid_request`.
pub async fn read_body(body: Body, limit: usize) -> Result<Bytes, OAuthError> {
    axum::body::to_bytes(body, limit).await.map_err(|_| {
        OAuthError::invalid_request(format!("the request body is larger than {limit} bytes"))
    })
}

/// Form parameters of a request: UTF-8 only, each at most once; empty values count as absent.
pub fn parse_form(bytes: &[u8]) -> Result<HashMap<String, String>, OAuthError> {
    if std::str::from_utf8(bytes).is_err() {
        return Err(OAuthError::invalid_request("the request body is not UTF-8"));
    }
    parse_pairs(url::form_urlencoded::parse(bytes))
}

pub fn parse_pairs<'a>(
    pairs: impl Iterator<Item = (std::borrow::Cow<'a, str>, std::borrow::Cow<'a, str>)>,
) -> Result<HashMap<String, String>, OAuthError> {
    let mut out = HashMap::new();
    for (k, v) in pairs {
        if k.contains('\u{FFFD}') || v.contains('\u{FFFD}') {
            return Err(OAuthError::invalid_request(
                "a parameter is not valid UTF-8",
            ));
        }
        if v.is_empty() {
            continue;
        }
        if out.insert(k.clone().into_owned(), v.into_owned()).is_some() {
            return Err(OAuthError::invalid_request(format!(
                "the parameter {k} is repeated"
            )));
        }
    }
    Ok(out)
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

/// The caller's IP: the socket peer, or, behind `CLARI_MCP_TRUSTED_PROXIES` proxies, the address
/// the outermost trusted proxy saw.
pub fn client_ip(state: &AppState, headers: &HeaderMap, peer: SocketAddr) -> IpAddr {
    let entries: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .collect();
    forwarded_client(&entries, state.config.trusted_proxies).unwrap_or(peer.ip())
}

/// The client behind `hops` trusted proxies: each appends the address it saw, so the client is the
/// `hops`-th entry from the right; anything further left is the client's own and proves nothing.
/// `None` (use the peer) with no trusted proxies, too few entries, or an unreadable entry.
pub fn forwarded_client(entries: &[&str], hops: u8) -> Option<IpAddr> {
    let hops = usize::from(hops);
    if hops == 0 || entries.len() < hops {
        return None;
    }
    let entry = entries[entries.len() - hops].trim();
    // Some proxies write `[v6]:port` or `v4:port`.
    entry
        .parse()
        .ok()
        .or_else(|| entry.parse::<SocketAddr>().ok().map(|a| a.ip()))
}

/// The throttle bucket of an address: IPv4 as is, IPv6 by its /64 (one customer's allocation, so
/// a client cannot walk through its own prefix for fresh buckets).
pub fn ip_bucket(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
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
    let client = client::load(state, &client_id).await?.ok_or_else(fail)?;
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
    fn the_forwarded_client_is_taken_from_the_right() {
        let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        // The client can write anything on the left; one proxy appends what it saw.
        let xff = ["6.6.6.6", " 203.0.113.9"];
        assert_eq!(forwarded_client(&xff, 1), ip("203.0.113.9"));
        assert_eq!(forwarded_client(&xff, 2), ip("6.6.6.6"));
        assert_eq!(
            forwarded_client(&xff, 0),
            None,
            "no trusted proxy: the peer"
        );
        assert_eq!(
            forwarded_client(&xff, 3),
            None,
            "fewer entries than proxies"
        );
        assert_eq!(forwarded_client(&["garbage"], 1), None);
        assert_eq!(
            forwarded_client(&["[2001:db8::1]:443"], 1),
            ip("2001:db8::1")
        );
        assert_eq!(
            forwarded_client(&["198.51.100.7:5000"], 1),
            ip("198.51.100.7")
        );
    }

    #[test]
    fn ipv6_addresses_share_a_bucket_per_64() {
        let b = |s: &str| ip_bucket(s.parse().unwrap());
        assert_eq!(b("2001:db8:1:2::1"), b("2001:db8:1:2:ffff::9"));
        assert_ne!(b("2001:db8:1:2::1"), b("2001:db8:1:3::1"));
        assert_eq!(b("::ffff:192.0.2.1"), "192.0.2.1");
        assert_eq!(b("192.0.2.1"), "192.0.2.1");
    }

    #[test]
    fn repeated_and_empty_parameters() {
        assert!(parse_form(b"code=a&code=b").is_err());
        let f = parse_form(b"a=1&b=&c=%20x").unwrap();
        assert_eq!(f.get("a").map(String::as_str), Some("1"));
        assert!(!f.contains_key("b"));
        assert_eq!(f.get("c").map(String::as_str), Some(" x"));
        assert!(parse_form(&[b'a', b'=', 0xff]).is_err());
        assert!(parse_form(b"a=%ff").is_err());
    }

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
