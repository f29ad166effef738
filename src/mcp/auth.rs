//! The bearer layer in front of `/mcp`. Every request carries a token: a JWT access token from our
//! authorization server (signature, `typ`, `iss`, `aud` = the MCP URL, `exp`, and a live grant:
//! not revoked, client, user, membership and organisation all enabled) or an API key (`cmk_…`,
//! SHA-256 lookup, not revoked or expired, user and organisation enabled). Anything else is 401 with
//! a `WWW-Authenticate` challenge naming the protected-resource metadata and the scopes a full agent
//! needs. A `tools/call` for a tool the token's scopes do not cover is 403 `insufficient_scope` with
//! the scopes to ask for, so clients can step up. The checks run on every request, so a revocation
//! or a disabled organisation takes effect on the very next call.
//!
//! The layer puts an [`AuthContext`] into the request extensions; rmcp hands the request parts to
//! the tools, which read it from there. The caller's token never leaves this process.

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::envelope::{Shallow, envelope_error, params_error, tool_call};
use super::tools::required_scope;
use crate::crypto::sha256_hex;
use crate::scope::{Scope, ScopeSet};
use crate::state::AppState;

/// Largest JSON-RPC body `/mcp` accepts (413 above it, before anything is parsed). The largest
/// message the tools take is `get_deal_risk` with its 1,000 ids, about 25 KiB; rmcp is given the
/// same cap. The gate reads only the envelope ([`super::envelope`]); rmcp's one parse of the
/// body is what costs memory, about 16 times the body for the worst shape (`bench/bounds.py`).
pub const MAX_MCP_BODY: usize = 64 * 1024;

pub use crate::principal::{AuthContext, Subject};

/// Where the protected-resource metadata is, for `WWW-Authenticate` challenges.
pub fn resource_metadata_url(state: &AppState) -> String {
    format!(
        "{}/.well-known/oauth-protected-resource/mcp",
        state.config.issuer
    )
}

/// The scopes a full agent needs; what clients should ask for on first contact.
pub fn challenge_scopes() -> String {
    ScopeSet::new(Scope::NARROW).to_string()
}

/// Text safe inside a quoted `WWW-Authenticate` parameter.
pub fn quoted(s: &str) -> String {
    s.chars()
        .filter(|c| *c != '"' && *c != '\\' && !c.is_control())
        .collect()
}

fn jsonrpc_error(id: Value, code: i64, message: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}})
}

/// 401: no token, or one that is not valid here.
pub fn unauthorized(state: &AppState, invalid: Option<&str>) -> Response {
    challenge_response(state, invalid, None)
}

/// The `DPoP` challenge parameters (RFC 9449 §7.1): the accepted algorithms, and the error.
pub fn dpop_challenge(error: Option<(&str, &str)>) -> String {
    let mut c = format!("DPoP algs=\"{}\"", crate::jose::algorithm_names().join(" "));
    if let Some((code, why)) = error {
        c.push_str(&format!(
            ", error=\"{code}\", error_description=\"{}\"",
            quoted(why)
        ));
    }
    c
}

/// The 401 of a refused credential (`with_error`: say why; without, the first contact of a
/// client that sent nothing usable).
pub fn refused(state: &AppState, failure: &AuthFailure, with_error: bool) -> Response {
    match failure {
        AuthFailure::Dpop { error, reason } => {
            challenge_response(state, None, Some((error, reason)))
        }
        AuthFailure::Refused(reason) if with_error => challenge_response(state, Some(reason), None),
        _ => challenge_response(state, None, None),
    }
}

/// A 401 with a `Bearer` challenge naming the protected-resource metadata and the scopes a
/// full agent needs, and a `DPoP` challenge with the algorithms this server accepts (RFC 9449
/// §7.1); the error goes on the challenge of the scheme that failed. A `DPoP-Nonce` always
/// comes with it, so a DPoP client's next proof can carry one (RFC 9449 §9).
fn challenge_response(
    state: &AppState,
    bearer_error: Option<&str>,
    dpop_error: Option<(&str, &str)>,
) -> Response {
    let mut bearer = format!(
        "Bearer resource_metadata=\"{}\", scope=\"{}\"",
        resource_metadata_url(state),
        challenge_scopes()
    );
    if let Some(reason) = bearer_error {
        bearer.push_str(&format!(
            ", error=\"invalid_token\", error_description=\"{}\"",
            quoted(reason)
        ));
    }
    let message = bearer_error
        .or(dpop_error.map(|(_, why)| why))
        .unwrap_or("Authentication required: send Authorization: Bearer <token>");
    state.metrics.auth_refused(401);
    let mut r = (
        StatusCode::UNAUTHORIZED,
        axum::Json(jsonrpc_error(Value::Null, -32001, message)),
    )
        .into_response();
    for c in [bearer, dpop_challenge(dpop_error)] {
        if let Ok(v) = HeaderValue::from_str(&c) {
            r.headers_mut().append(header::WWW_AUTHENTICATE, v);
        }
    }
    add_dpop_nonce(state, &mut r);
    r
}

/// A fresh `DPoP-Nonce` on a response (RFC 9449 §8.2, §9).
pub fn add_dpop_nonce(state: &AppState, r: &mut Response) {
    let nonce = crate::dpop::new_nonce(&state.vault, state.now());
    if let Ok(v) = HeaderValue::from_str(&nonce) {
        r.headers_mut().insert(crate::dpop::NONCE_HEADER, v);
    }
}

/// 403: the token is fine but lacks the scope this tool needs.
fn insufficient_scope(
    state: &AppState,
    id: Value,
    held: &ScopeSet,
    needed: Scope,
    tool: &str,
) -> Response {
    state.metrics.auth_refused(403);
    // Ask for everything at once: what the token has plus what this call needs.
    let wanted: ScopeSet = held.iter().chain([needed]).collect();
    let description = format!("The tool {tool} needs the {needed} scope");
    let challenge = format!(
        "Bearer error=\"insufficient_scope\", scope=\"{}\", resource_metadata=\"{}\", error_description=\"{}\"",
        wanted,
        resource_metadata_url(state),
        quoted(&description)
    );
    let mut r = (
        StatusCode::FORBIDDEN,
        axum::Json(jsonrpc_error(id, -32003, &description)),
    )
        .into_response();
    if let Ok(v) = HeaderValue::from_str(&challenge) {
        r.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    r
}

/// 400 with a JSON-RPC error: the body is not a JSON-RPC message.
fn bad_message(code: i64, message: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        axum::Json(jsonrpc_error(Value::Null, code, message)),
    )
        .into_response()
}

/// 503 with `Retry-After`: the credential could not be checked, which says nothing about it.
fn service_unavailable() -> Response {
    let mut r = (
        StatusCode::SERVICE_UNAVAILABLE,
        axum::Json(jsonrpc_error(
            Value::Null,
            -32603,
            "The server cannot check credentials right now; try again shortly",
        )),
    )
        .into_response();
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
    r
}

/// How a token is presented: `Authorization: Bearer` (RFC 6750) or `Authorization: DPoP` with
/// a proof (RFC 9449 §7.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Bearer,
    Dpop,
}

/// The scheme and token of the `Authorization` header, if it carries one we read.
pub fn credentials(headers: &axum::http::HeaderMap) -> Option<(Scheme, &str)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    if token.is_empty() {
        return None;
    }
    // Schemes are case-insensitive (RFC 9110 §11.1).
    if scheme.eq_ignore_ascii_case("bearer") {
        Some((Scheme::Bearer, token))
    } else if scheme.eq_ignore_ascii_case("dpop") {
        Some((Scheme::Dpop, token))
    } else {
        None
    }
}

/// The token of `Authorization: Bearer <token>`, if there is one.
pub fn bearer_token(headers: &axum::http::HeaderMap) -> Option<&str> {
    match credentials(headers)? {
        (Scheme::Bearer, token) => Some(token),
        (Scheme::Dpop, _) => None,
    }
}

/// Why a presented token does not authenticate a caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthFailure {
    /// The token is refused (401 with `invalid_token`): it is wrong, expired or revoked.
    Refused(&'static str),
    /// A DPoP rule is broken (401 with a `DPoP` challenge): `error` is `invalid_token`,
    /// `invalid_dpop_proof` or `use_dpop_nonce` (RFC 9449 §7.1, §9).
    Dpop {
        error: &'static str,
        reason: &'static str,
    },
    /// It could not be checked (the database is failing): 503, so clients keep good tokens.
    Unavailable,
}

impl From<&'static str> for AuthFailure {
    fn from(reason: &'static str) -> Self {
        Self::Refused(reason)
    }
}

fn unavailable(e: impl std::fmt::Display) -> AuthFailure {
    tracing::error!(error = %e, "checking an MCP credential failed");
    AuthFailure::Unavailable
}

fn dpop_failure(error: &'static str, reason: &'static str) -> AuthFailure {
    AuthFailure::Dpop { error, reason }
}

/// Resolves a bare token (an API key, or an access token that is not DPoP-bound) to a live
/// caller, as if it came as `Authorization: Bearer` to the MCP URL.
pub async fn authenticate(state: &AppState, token: &str) -> Result<AuthContext, AuthFailure> {
    let mut headers = axum::http::HeaderMap::new();
    let value = HeaderValue::from_str(&format!("Bearer {token}"))
        .map_err(|_| AuthFailure::Refused("the token is not valid here"))?;
    headers.insert(header::AUTHORIZATION, value);
    let url = state.config.mcp_url.clone();
    authenticate_request(
        state,
        Presented::new(&headers, &axum::http::Method::POST, &url),
    )
    .await
}

/// A request as the credential check sees it: its headers, method and public URL.
#[derive(Debug, Clone, Copy)]
pub struct Presented<'a> {
    pub headers: &'a axum::http::HeaderMap,
    pub method: &'a str,
    /// The URL the client addressed (this server's public origin and the request's path).
    pub url: &'a str,
}

impl<'a> Presented<'a> {
    /// The request of `parts`, addressed at `url`.
    pub fn new(
        headers: &'a axum::http::HeaderMap,
        method: &'a axum::http::Method,
        url: &'a str,
    ) -> Self {
        Self {
            headers,
            method: method.as_str(),
            url,
        }
    }
}

/// The public URL of a request: the configured issuer's origin and the request's path (never
/// the Host header, which the client controls).
pub fn public_url(state: &AppState, uri: &axum::http::Uri) -> String {
    let origin = url::Url::parse(&state.config.issuer)
        .map(|u| u.origin().ascii_serialization())
        .unwrap_or_else(|_| state.config.issuer.clone());
    format!("{origin}{}", uri.path())
}

/// Resolves a request's credential to a live caller, or says why not: an API key or access
/// token under `Bearer`, or a DPoP-bound access token under `DPoP` with a valid proof.
///
/// RFC 9449 §7.2: "such a protected resource MUST reject a DPoP-bound access token received as
/// a bearer token"; §4.3 (12) the proof's `ath` is the token's hash and its key is the one the
/// token is bound to (`cnf.jkt`); §11.1 each proof's `jti` is accepted once, on every replica.
/// An organisation that requires DPoP refuses its tokens that are not bound.
pub async fn authenticate_request(
    state: &AppState,
    request: Presented<'_>,
) -> Result<AuthContext, AuthFailure> {
    let Some((scheme, token)) = credentials(request.headers) else {
        return Err(AuthFailure::Refused(
            "Authentication required: send Authorization: Bearer <token>",
        ));
    };
    let proof = crate::dpop::proof_header(request.headers).map_err(|e| match e {
        crate::dpop::DpopError::Invalid(why) => dpop_failure("invalid_dpop_proof", why),
        _ => dpop_failure("invalid_dpop_proof", "the DPoP header is not usable"),
    })?;
    let now = state.now();
    if crate::apikeys::is_api_key(token) {
        if scheme == Scheme::Dpop {
            return Err(dpop_failure(
                "invalid_token",
                "an API key is not DPoP-bound; send it as Bearer",
            ));
        }
        let principal = state
            .store
            .authenticate_api_key(&sha256_hex(token), now)
            .await
            .map_err(unavailable)?
            .ok_or("the API key is unknown, revoked or expired, or its user or organisation is disabled")?;
        return Ok(AuthContext {
            org_id: principal.organization_id,
            user_id: Some(principal.user_id),
            subject: Subject::ApiKey {
                key_id: principal.key_id,
            },
            scopes: principal.scopes,
        });
    }
    let crate::signing::ValidToken { claims, behind } = state
        .access_tokens()
        .validate(token, now)
        .await
        .map_err(|e| match e {
            crate::signing::TokenError::Expired => "the access token has expired".into(),
            crate::signing::TokenError::WrongAudience => {
                "the access token was issued for another resource".into()
            }
            crate::signing::TokenError::Revoked => {
                "the sign-in behind this token was revoked, or its user, organisation or client is disabled".into()
            }
            crate::signing::TokenError::Unavailable => AuthFailure::Unavailable,
            _ => "the access token is not valid here".into(),
        })?;
    let org_requires_dpop = match &behind {
        crate::signing::Behind::Grant(g) => g.org_requires_dpop,
        crate::signing::Behind::Service(c) => c.org_requires_dpop,
    };
    match (&claims.cnf, scheme) {
        (Some(_), Scheme::Bearer) => {
            return Err(dpop_failure(
                "invalid_token",
                "this access token is DPoP-bound: send it as Authorization: DPoP with a proof",
            ));
        }
        (None, Scheme::Dpop) => {
            return Err(dpop_failure(
                "invalid_token",
                "this access token is not DPoP-bound; send it as Bearer",
            ));
        }
        (None, Scheme::Bearer) if org_requires_dpop => {
            return Err(dpop_failure(
                "invalid_token",
                "this organisation requires DPoP-bound tokens: get a new token with a DPoP proof",
            ));
        }
        (None, Scheme::Bearer) => {}
        (Some(cnf), Scheme::Dpop) => {
            let proof = proof.ok_or_else(|| {
                dpop_failure(
                    "invalid_dpop_proof",
                    "a DPoP-bound token needs a DPoP proof header",
                )
            })?;
            let checked = crate::dpop::check(
                proof,
                crate::dpop::Request {
                    method: request.method,
                    url: request.url,
                    access_token: Some(token),
                },
                &state.vault,
                now,
            )
            .map_err(|e| match e {
                crate::dpop::DpopError::Invalid(why) => dpop_failure("invalid_dpop_proof", why),
                crate::dpop::DpopError::UseNonce => dpop_failure(
                    "use_dpop_nonce",
                    "send the proof again with the nonce of the DPoP-Nonce header",
                ),
                crate::dpop::DpopError::Unavailable => AuthFailure::Unavailable,
            })?;
            if checked.jkt != cnf.jkt {
                return Err(dpop_failure(
                    "invalid_token",
                    "the DPoP proof is signed by another key than the one the token is bound to",
                ));
            }
            let (digest, until) = checked.replay_key();
            if !state
                .store
                .remember_jti(&digest, until)
                .await
                .map_err(unavailable)?
            {
                return Err(dpop_failure(
                    "invalid_dpop_proof",
                    "this DPoP proof was used before; make a new one for every request",
                ));
            }
        }
    }
    // The token's scope, never more than the grant or machine client still allows.
    let parsed = ScopeSet::parse(&claims.scope).unwrap_or_default();
    Ok(match behind {
        crate::signing::Behind::Grant(grant) => AuthContext {
            org_id: grant.organization_id.clone(),
            user_id: Some(grant.user_id),
            subject: Subject::Grant {
                grant_id: grant.id,
                client_id: grant.client_id,
            },
            scopes: parsed.intersect(&grant.scope),
        },
        crate::signing::Behind::Service(client) => AuthContext {
            org_id: client.organization_id.clone(),
            user_id: None,
            scopes: parsed.intersect(&client.scopes),
            subject: Subject::Service {
                client_id: client.id,
                name: client.name,
            },
        },
    })
}

/// Whether an Accept header admits any type without naming JSON: absent, `*/*` or
/// `application/*` (with a non-zero quality).
fn accepts_anything(accept: Option<&HeaderValue>) -> bool {
    let Some(text) = accept.and_then(|v| v.to_str().ok()) else {
        return accept.is_none();
    };
    let ranges: Vec<(&str, bool)> = text
        .split(',')
        .map(|r| {
            let mut parts = r.split(';').map(str::trim);
            let range = parts.next().unwrap_or_default();
            let zero = parts.any(|p| {
                p.strip_prefix("q=")
                    .and_then(|q| q.parse::<f32>().ok())
                    .is_some_and(|q| q == 0.0)
            });
            (range, !zero)
        })
        .collect();
    let names_json = ranges
        .iter()
        .any(|(r, _)| r.eq_ignore_ascii_case("application/json"));
    !names_json
        && ranges
            .iter()
            .any(|(r, ok)| *ok && (*r == "*/*" || r.eq_ignore_ascii_case("application/*")))
}

fn too_large() -> Response {
    (
        StatusCode::PAYLOAD_TOO_LARGE,
        axum::Json(jsonrpc_error(
            Value::Null,
            -32600,
            &format!(
                "The request body is larger than {} KiB: MCP messages here are small",
                MAX_MCP_BODY / 1024
            ),
        )),
    )
        .into_response()
}

/// Whether the request says it is JSON (`application/json`, any parameters).
fn is_json(headers: &axum::http::HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"))
}

/// Authenticates an `/mcp` request and reads its body within [`MAX_MCP_BODY`]. A declared
/// length over the cap is refused before the credential is even looked up; a body that grows
/// past it while being read is refused without reading the rest.
///
/// A body that is JSON but not a usable JSON-RPC 2.0 message gets 400 with a JSON-RPC error
/// (JSON-RPC 2.0 §5.1, -32700 / -32600), never the transport's 415, which is kept for bodies
/// that are not JSON at all (MCP 2025-11-25 Transports, "Sending Messages to the Server").
pub async fn require_auth(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_MCP_BODY as u64) {
        return too_large();
    }
    if credentials(req.headers()).is_none() {
        return unauthorized(&state, None);
    }
    let url = public_url(&state, req.uri());
    let uses_dpop = matches!(credentials(req.headers()), Some((Scheme::Dpop, _)));
    let ctx = match authenticate_request(&state, Presented::new(req.headers(), req.method(), &url))
        .await
    {
        Ok(ctx) => ctx,
        Err(AuthFailure::Unavailable) => return service_unavailable(),
        Err(failure) => {
            tracing::info!(?failure, "MCP request refused");
            return refused(&state, &failure, true);
        }
    };
    let (mut parts, body) = req.into_parts();
    let bytes: Bytes = match crate::http::read_body_checked(body, MAX_MCP_BODY).await {
        Ok(b) => b,
        Err(crate::http::BodyError::TooLarge(_)) => return too_large(),
        Err(e) => {
            return (
                StatusCode::REQUEST_TIMEOUT,
                axum::Json(jsonrpc_error(Value::Null, -32600, &e.to_string())),
            )
                .into_response();
        }
    };
    // Only POST carries a JSON-RPC message; other methods go on to the transport's 405 whatever
    // their body. Only the envelope is read here (rmcp parses the body itself): to refuse what
    // is not JSON-RPC with 400, and to find the tool called.
    if parts.method == axum::http::Method::POST {
        let Some(message) = Shallow::parse(&bytes) else {
            return bad_message(-32700, "Parse error: the body is not JSON");
        };
        if let Some(why) = envelope_error(&message) {
            return bad_message(-32600, &format!("Invalid Request: {why}"));
        }
        if let Some(why) = params_error(&message) {
            return bad_message(-32602, &format!("Invalid params: {why}"));
        }
        if let Some((id, tool)) = tool_call(&message)
            && let Some(needed) = required_scope(&tool)
            && !ctx.scopes.allows(needed)
        {
            return insufficient_scope(&state, id, &ctx.scopes, needed, &tool);
        }
    }
    tracing::debug!(org_id = %ctx.org_id, "MCP request authenticated");
    parts.extensions.insert(ctx);
    // No Accept header, or `*/*`, means any media type is acceptable (RFC 9110 §12.5.1); say so
    // in the form the transport checks for. An Accept that excludes JSON still gets 406.
    if accepts_anything(parts.headers.get(header::ACCEPT)) {
        parts.headers.insert(
            header::ACCEPT,
            HeaderValue::from_static("application/json, text/event-stream"),
        );
    }
    let json = is_json(&parts.headers);
    let mut answer = next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await;
    if uses_dpop {
        add_dpop_nonce(&state, &mut answer);
    }
    // The transport answers 415 to any message it cannot deserialize, such as a known method
    // with ill-typed params; a JSON body is a bad request, not a wrong media type.
    if json && answer.status() == StatusCode::UNSUPPORTED_MEDIA_TYPE {
        return bad_message(
            -32600,
            "Invalid Request: the message is JSON but not a request, notification or response MCP defines",
        );
    }
    answer
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_or_missing_accept_admits_json() {
        let h = |s: &'static str| Some(HeaderValue::from_static(s));
        assert!(accepts_anything(None));
        assert!(accepts_anything(h("*/*").as_ref()));
        assert!(accepts_anything(
            h("text/html, application/*;q=0.5").as_ref()
        ));
        assert!(!accepts_anything(h("text/html").as_ref()));
        assert!(!accepts_anything(h("*/*;q=0").as_ref()));
        assert!(!accepts_anything(h("application/json").as_ref()));
    }
}
