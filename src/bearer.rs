//! Who presents a credential, for both doors (`/mcp` and `/api/v1`): the `Authorization` header
//! (`Bearer`, RFC 6750 §2.1; `DPoP`, RFC 9449 §7.1), the credential it carries (an API key, or an
//! access token of ours with its DPoP proof) resolved to a live caller, and the parts of a
//! challenge both doors send. What each door answers around it (JSON-RPC errors, the admin API's
//! error body, scope checks) stays with the door.

use axum::http::{HeaderValue, header};
use axum::response::Response;

use crate::crypto::sha256_hex;
use crate::principal::{AuthContext, Subject};
use crate::scope::ScopeSet;
use crate::state::AppState;
use crate::store::changes::Checked;

/// Where the protected-resource metadata is, for `WWW-Authenticate` challenges.
pub fn resource_metadata_url(state: &AppState) -> String {
    format!(
        "{}/.well-known/oauth-protected-resource/mcp",
        state.config.issuer
    )
}

/// Text safe inside a quoted `WWW-Authenticate` parameter.
pub fn quoted(s: &str) -> String {
    s.chars()
        .filter(|c| *c != '"' && *c != '\\' && !c.is_control())
        .collect()
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

/// A fresh `DPoP-Nonce` on a response (RFC 9449 §8.2, §9).
pub fn add_dpop_nonce(state: &AppState, r: &mut Response) {
    let nonce = crate::dpop::new_nonce(&state.vault, state.now());
    if let Ok(v) = HeaderValue::from_str(&nonce) {
        r.headers_mut().insert(crate::dpop::NONCE_HEADER, v);
    }
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

/// The public URL of a request: the configured issuer (the public URL, with any path a proxy
/// mounts the server under) and the request's path. Never the Host header, which the client
/// controls.
pub fn public_url(state: &AppState, uri: &axum::http::Uri) -> String {
    format!(
        "{}{}",
        state.config.issuer.trim_end_matches('/'),
        uri.path()
    )
}

/// The live API key of this digest: from memory while its organisation has not changed (and
/// for at most [`crate::store::LAST_USED_GRANULARITY`], so its last use is still recorded),
/// else from the store.
async fn api_key(
    state: &AppState,
    digest: &str,
    now: crate::clock::UnixTime,
    checked: Checked,
) -> Result<Option<crate::store::ApiKeyPrincipal>, AuthFailure> {
    let (cache, changes) = (&state.cached.api_keys, state.store.changes());
    if let Some(p) = cache.get_checked(changes, Some(checked), digest, now)
        && p.expires_at.is_none_or(|at| at > now)
    {
        return Ok(Some(p));
    }
    let ticket = changes.ticket();
    let found = state
        .store
        .authenticate_api_key(digest, now)
        .await
        .map_err(unavailable)?;
    if let Some(p) = &found {
        let until = now + crate::store::LAST_USED_GRANULARITY;
        let until = p.expires_at.map_or(until, |at| at.min(until));
        cache.put(
            changes,
            ticket,
            digest.to_owned(),
            &p.organization_id,
            p.clone(),
            until,
        );
    }
    Ok(found)
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
    // The change feed is read once here; the cached lookups of this request go by it.
    let checked = state.store.changes().check();
    if crate::apikeys::is_api_key(token) {
        if scheme == Scheme::Dpop {
            return Err(dpop_failure(
                "invalid_token",
                "an API key is not DPoP-bound; send it as Bearer",
            ));
        }
        let principal = api_key(state, &sha256_hex(token), now, checked)
            .await?
            .ok_or(
            "the API key is unknown, revoked or expired, or its user or organisation is disabled",
        )?;
        return Ok(AuthContext {
            org_id: principal.organization_id,
            user_id: Some(principal.user_id),
            subject: Subject::ApiKey {
                key_id: principal.key_id,
            },
            scopes: principal.scopes,
            checked: Some(checked),
        });
    }
    let crate::signing::ValidToken { claims, behind } = state
        .access_tokens()
        .checked(checked)
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
            checked: Some(checked),
        },
        crate::signing::Behind::Service(client) => AuthContext {
            org_id: client.organization_id.clone(),
            user_id: None,
            scopes: parsed.intersect(&client.scopes),
            checked: Some(checked),
            subject: Subject::Service {
                client_id: client.id,
                name: client.name,
            },
        },
    })
}
