//! The authorization endpoint (RFC 6749 §4.1 with PKCE S256, RFC 8707 resource, RFC 9207 `iss`).
//!
//! Order matters: the client and the exact redirect URI are validated first, and a failure there
//! is an HTML error page, never a redirect. Later errors go back to the validated redirect URI with
//! `error`, the caller's `state` byte for byte, and `iss`, but only for a signed-in user: before
//! sign-in they are an error page too, so an unauthenticated link cannot bounce a browser to a URI
//! that a freshly registered client chose (RFC 9700 §4.11.2). The rules themselves are the pure
//! [`super::request::validate_authorization_request`]. The request waits in the browser session (keyed by a random
//! `rid`) through sign-in and consent.

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use tower_sessions::Session;

use super::client::{self, Client};
use super::error::ErrorCode;
use super::request::{ValidRequest, validate_authorization_request};
use super::{core, redirect};
use crate::crypto::{random_token, sha256_hex};
use crate::http::parse_pairs;
use crate::scope::ScopeSet;
use crate::state::AppState;
use crate::store::{ClientId, CodeRecord, OrgId, UserId};
use crate::web::extract::ClientAddr;
use crate::web::{self, error_page, urlencode};

pub const CODE_TTL: i64 = 60;
pub(super) const PENDING_TTL: i64 = 600;
pub const MAX_STATE_BYTES: usize = 2048;

/// An authorization request that passed validation, waiting for sign-in and consent.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Pending {
    pub client_id: ClientId,
    pub client_name: String,
    pub redirect_uri: String,
    pub state: Option<String>,
    pub code_challenge: String,
    /// Parsed once, when the request was validated.
    pub scope: ScopeSet,
    pub resource: String,
    pub created_at: i64,
    pub force_consent: bool,
}

pub(super) fn pending_key(rid: &str) -> String {
    format!("authz:{rid}")
}

/// The authorization requests a session holds, oldest first: (rid, created_at).
const PENDING_INDEX: &str = "authz-index";
/// Authorization requests one browser session keeps waiting for sign-in and consent; a new one
/// beyond them drops the oldest. Each is at most a few KiB (`state` ≤ 2 KiB, the redirect URI
/// ≤ 2,000 characters, the name ≤ 200), so a session stays within its bound.
pub const MAX_PENDING_PER_SESSION: usize = 5;

/// Keeps `pending` as request `rid`, first dropping the session's expired requests and, beyond
/// the newest [`MAX_PENDING_PER_SESSION`] - 1, the oldest.
async fn remember_pending(
    session: &Session,
    rid: &str,
    pending: &Pending,
    now: i64,
) -> Result<(), tower_sessions::session::Error> {
    let mut index: Vec<(String, i64)> = session.get(PENDING_INDEX).await?.unwrap_or_default();
    let live = |created: i64| created + PENDING_TTL > now;
    let mut dropped: Vec<String> = Vec::new();
    index.retain(|(r, created)| {
        let keep = live(*created);
        if !keep {
            dropped.push(r.clone());
        }
        keep
    });
    while index.len() >= MAX_PENDING_PER_SESSION {
        dropped.push(index.remove(0).0);
    }
    for old in dropped {
        session.remove_value(&pending_key(&old)).await?;
        web::forget_sign_in_for(session, &old).await;
    }
    index.push((rid.to_owned(), pending.created_at));
    session.insert(PENDING_INDEX, &index).await?;
    session.insert(&pending_key(rid), pending).await
}

/// The authorization response: `redirect_uri` plus `params`, `state` and `iss`.
fn respond(
    state: &AppState,
    redirect_uri: &str,
    params: &[(&str, &str)],
    client_state: Option<&str>,
    see_other: bool,
) -> Response {
    let Ok(mut url) = url::Url::parse(redirect_uri) else {
        return web::internal_error_page(&"a validated redirect URI did not parse");
    };
    {
        let mut q = url.query_pairs_mut();
        for (k, v) in params {
            q.append_pair(k, v);
        }
        if let Some(s) = client_state {
            q.append_pair("state", s);
        }
        q.append_pair("iss", &state.config.issuer);
    }
    redirect_to(url.as_str(), see_other)
}

/// 302 Found answers a GET; 303 See Other answers a POST (never 307 after a form with credentials).
pub fn redirect_to(location: &str, see_other: bool) -> Response {
    let status = if see_other {
        StatusCode::SEE_OTHER
    } else {
        StatusCode::FOUND
    };
    let mut r = status.into_response();
    if let Ok(v) = axum::http::HeaderValue::from_str(location) {
        r.headers_mut().insert(axum::http::header::LOCATION, v);
    }
    r.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    r
}

pub(super) fn error_redirect(
    state: &AppState,
    p: &RedirectTarget,
    code: ErrorCode,
    description: &str,
    see_other: bool,
) -> Response {
    let d = super::error::sanitize(description);
    respond(
        state,
        &p.redirect_uri,
        &[("error", code.as_str()), ("error_description", &d)],
        p.state.as_deref(),
        see_other,
    )
}

pub(super) struct RedirectTarget {
    pub(super) redirect_uri: String,
    pub(super) state: Option<String>,
}

pub(super) fn bad_request_page(message: &str) -> Response {
    error_page(
        StatusCode::BAD_REQUEST,
        "This sign-in link is not valid",
        message,
        "Return to the application and start again. Nothing was shared.",
    )
}

pub async fn get_authorize(
    State(state): State<AppState>,
    ClientAddr(caller): ClientAddr,
    session: Session,
    RawQuery(raw): RawQuery,
) -> Response {
    let raw = raw.unwrap_or_default();
    let params = match parse_pairs(url::form_urlencoded::parse(raw.as_bytes())) {
        Ok(p) => p,
        Err(e) => return bad_request_page(&e.0),
    };
    let Some(client_id) = params.get("client_id") else {
        return bad_request_page("The request names no client (client_id is missing).");
    };
    let client = match client::load(&state, client_id, Some(caller)).await {
        Ok(Some(c)) => c,
        Ok(None) => {
            return bad_request_page("The application is not registered here (unknown client_id).");
        }
        Err(e) => return web::internal_error_page(&e),
    };
    let redirect_uri = match params.get("redirect_uri") {
        Some(r) => match redirect::find_match(&client.meta.redirect_uris, r) {
            Some(_) => r.clone(),
            None => {
                return bad_request_page("The redirect URI is not one the application registered.");
            }
        },
        None if client.meta.redirect_uris.len() == 1 => client.meta.redirect_uris[0].clone(),
        None => {
            return bad_request_page(
                "The request must name one of the application's redirect URIs.",
            );
        }
    };
    let client_state = params.get("state").cloned();
    if client_state
        .as_ref()
        .is_some_and(|s| s.len() > MAX_STATE_BYTES)
    {
        return bad_request_page("The state parameter is too long.");
    }
    let target = RedirectTarget {
        redirect_uri: redirect_uri.clone(),
        state: client_state.clone(),
    };

    // From here on, errors go back to the application, but only once the user has signed in: an
    // unauthenticated request must not turn this server into a redirector for whatever URI a
    // freshly registered client named (RFC 9700 §4.11.2).
    let user = web::current_user(&state, &session).await;
    let valid = match validate_authorization_request(
        &params,
        client.meta.scope.as_deref(),
        &state.config.mcp_url,
    ) {
        Ok(v) => v,
        Err(e) if user.is_some() => {
            return error_redirect(&state, &target, e.code, &e.description, false);
        }
        Err(e) => {
            return bad_request_page(&format!("The request is not valid: {}.", e.description));
        }
    };
    let ValidRequest {
        challenge,
        requested,
        resource,
        prompt,
    } = valid;
    let prompt = prompt.as_str();

    let pending = Pending {
        client_id: client.id.clone(),
        client_name: client.meta.client_name.clone(),
        redirect_uri,
        state: client_state,
        code_challenge: challenge,
        scope: requested.clone(),
        resource,
        created_at: state.now(),
        force_consent: prompt.split(' ').any(|p| p == "consent" || p == "login"),
    };
    if prompt.split(' ').any(|p| p == "none") {
        let Some((user, _)) = user else {
            return error_redirect(
                &state,
                &target,
                ErrorCode::LoginRequired,
                "the user is not signed in",
                false,
            );
        };
        return match remembered(&state, &user, &client, &pending).await {
            Some(org) => finish(&state, &user, &org, &pending, &requested, false).await,
            None => error_redirect(
                &state,
                &target,
                ErrorCode::ConsentRequired,
                "the user has not approved this application",
                false,
            ),
        };
    }
    let rid = random_token(16);
    if let Err(e) = remember_pending(&session, &rid, &pending, state.now()).await {
        return web::internal_error_page(&e);
    }
    // The sign-in page names the application the user is signing in for.
    let shown = format!(
        "{} ({})",
        pending.client_name,
        super::client::identifying_host(
            pending.client_id.as_str(),
            &pending.redirect_uri,
            state.config.danger_cimd_allow_loopback,
        )
    );
    web::sign_in_is_for(&session, &rid, &shown, pending.created_at + PENDING_TTL).await;
    web::expire_soon_if_anonymous(&session).await;
    if user.is_none() || prompt.split(' ').any(|p| p == "login") {
        return redirect_to(&format!("/login?rid={}", urlencode(&rid)), false);
    }
    redirect_to(
        &format!("/authorize/consent?rid={}", urlencode(&rid)),
        false,
    )
}

/// The organisation of a live grant that already covers this request, when the choice is unambiguous.
pub(super) async fn remembered(
    state: &AppState,
    user: &UserId,
    client: &Client,
    p: &Pending,
) -> Option<OrgId> {
    if p.force_consent {
        return None;
    }
    let requested = &p.scope;
    let orgs = core::selectable_orgs(&state.store.memberships(user).await.ok()?);
    // Remembered only when the organisation is not a choice to make.
    let org = core::chosen_org(&orgs, None)?;
    let org = &org;
    let grant = state
        .store
        .live_grant_for(org, user, &client.id)
        .await
        .ok()??;
    (grant.consent_remembered && grant.scope.covers(requested) && grant.resource == p.resource)
        .then(|| org.clone())
}

/// Records the grant, issues a code and sends the browser back to the application.
pub(super) async fn finish(
    state: &AppState,
    user: &UserId,
    org: &OrgId,
    p: &Pending,
    scopes: &ScopeSet,
    see_other: bool,
) -> Response {
    let target = RedirectTarget {
        redirect_uri: p.redirect_uri.clone(),
        state: p.state.clone(),
    };
    let now = state.now();
    // `admin` is granted only to the organisation's admins, whatever was asked or ticked.
    let is_admin = match state.store.memberships(user).await {
        Ok(ms) => super::core::is_admin_of(&ms, org),
        Err(_) => false,
    };
    let scopes = &scopes.grantable(is_admin);
    if scopes.is_empty() {
        return error_redirect(
            state,
            &target,
            ErrorCode::InvalidScope,
            "the admin scope is granted only to the organisation's administrators",
            see_other,
        );
    }
    let existing = state
        .store
        .live_grant_for(org, user, &p.client_id)
        .await
        .ok()
        .flatten();
    // A remembered grant keeps what was approved; a new approval records exactly what was approved.
    let grant = match existing {
        Some(g) if g.consent_remembered && g.scope.covers(scopes) && g.resource == p.resource => g,
        _ => match state
            .store
            .upsert_grant(org, user, &p.client_id, scopes, &p.resource, true, now)
            .await
        {
            Ok(g) => g,
            Err(_) => {
                return error_redirect(
                    state,
                    &target,
                    ErrorCode::ServerError,
                    "the grant could not be recorded",
                    see_other,
                );
            }
        },
    };
    let code = random_token(32);
    let record = CodeRecord {
        code_hash: sha256_hex(&code),
        grant_id: grant.id.clone(),
        organization_id: org.clone(),
        client_id: p.client_id.clone(),
        user_id: user.clone(),
        redirect_uri: p.redirect_uri.clone(),
        code_challenge: p.code_challenge.clone(),
        scope: scopes.clone(),
        resource: p.resource.clone(),
        created_at: now,
        expires_at: now + CODE_TTL,
        consumed_at: None,
    };
    if state.store.insert_code(&record).await.is_err() {
        return error_redirect(
            state,
            &target,
            ErrorCode::ServerError,
            "the authorization code could not be stored",
            see_other,
        );
    }
    tracing::info!(client_id = %p.client_id, org_id = %org, "authorization code issued");
    respond(
        state,
        &p.redirect_uri,
        &[("code", &code)],
        p.state.as_deref(),
        see_other,
    )
}
