//! The layer in front of `/mcp`: the JSON-RPC envelope and the scope check around the credential
//! check of [`crate::bearer`]. Every request carries a token: a JWT access token from our
//! authorization server (signature, `typ`, `iss`, `aud` = the MCP URL, `exp`, a live grant or
//! machine client, and a DPoP proof when it is bound) or an API key (`cmk_…`). Anything else is
//! 401 with
//! a `WWW-Authenticate` challenge naming the protected-resource metadata and the scopes a full agent
//! needs. A `tools/call` for a tool the token's scopes do not cover is 403 `insufficient_scope` with
//! the scopes to ask for, so clients can step up. The checks run on every request, so a revocation
//! or a disabled organisation takes effect on the very next call.
//!
//! The layer puts an [`AuthContext`] into the request extensions; rmcp hands the request parts to
//! the tools, which read it from there. The caller's token never leaves this process.

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::envelope::{Shallow, envelope_error, params_error, tool_call};
use super::tools::required_scope;
use crate::bearer::{
    AuthFailure, Presented, Scheme, add_dpop_nonce, authenticate_request, credentials,
    dpop_challenge, public_url, quoted, resource_metadata_url,
};
use crate::scope::{Scope, ScopeSet};
use crate::state::AppState;

/// Largest JSON-RPC body `/mcp` accepts (413 above it, before anything is parsed). The largest
/// message the tools take is `get_deal_risk` with its 1,000 ids, about 25 KiB; rmcp is given the
/// same cap. The gate reads only the envelope ([`super::envelope`]); rmcp's one parse of the
/// body is what costs memory, about 16 times the body for the worst shape (`bench/bounds.py`).
pub const MAX_MCP_BODY: usize = 64 * 1024;

pub use crate::principal::{AuthContext, Subject};

/// The scopes a full agent needs; what clients should ask for on first contact.
pub fn challenge_scopes() -> String {
    ScopeSet::new(Scope::NARROW).to_string()
}

fn jsonrpc_error(id: Value, code: i64, message: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}})
}

/// 401: no token, or one that is not valid here.
pub fn unauthorized(state: &AppState, invalid: Option<&str>) -> Response {
    challenge_response(state, invalid, None)
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
pub async fn require_auth<F, Fut>(state: &AppState, req: Request, transport: F) -> Response
where
    F: FnOnce(Request) -> Fut,
    Fut: std::future::Future<Output = Response>,
{
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_MCP_BODY as u64) {
        return too_large();
    }
    if credentials(req.headers()).is_none() {
        return unauthorized(state, None);
    }
    let url = public_url(state, req.uri());
    let uses_dpop = matches!(credentials(req.headers()), Some((Scheme::Dpop, _)));
    let ctx = match authenticate_request(state, Presented::new(req.headers(), req.method(), &url))
        .await
    {
        Ok(ctx) => ctx,
        Err(AuthFailure::Unavailable) => return service_unavailable(),
        Err(failure) => {
            tracing::info!(?failure, "MCP request refused");
            return refused(state, &failure, true);
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
            return insufficient_scope(state, id, &ctx.scopes, needed, &tool);
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
    let mut answer = transport(Request::from_parts(parts, Body::from(bytes))).await;
    if uses_dpop {
        add_dpop_nonce(state, &mut answer);
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
