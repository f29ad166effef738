//! The token endpoint.
//!
//! `authorization_code`: the code is read first and checked against the presenting client, its
//! 60 s lifetime, the exact redirect URI, the PKCE verifier and the resource; only then is it
//! consumed with one conditional update, so exactly one of two concurrent redemptions succeeds. A
//! code presented again by its own client revokes the grant, and with it every token issued
//! from the code.
//!
//! `refresh_token` (rotation policy): every use rotates the token. Presenting a rotated token again
//! revokes the whole grant (replay), with one exception for a client's legitimate retry after a
//! lost response: within 10 seconds of the rotation, and only while the token it was rotated into
//! has not been used, the retry is answered with a fresh pair and that unused successor is revoked
//! (presenting it later is a replay too). Two refreshes with the same token at the same moment are
//! answered the same way: the one that loses the rotation race is a retry, not a replay, and the
//! answer that came last holds the live token (see `retry_within_grace`). There is never more
//! than one live refresh token per grant. Refresh may narrow the scope of the
//! access token, never widen it; the refresh token keeps its scope (RFC 6749 §6). Refresh tokens
//! expire after `refresh_token_ttl` without use.

use axum::Json;
use axum::body::Body;
use std::net::SocketAddr;

use axum::extract::{ConnectInfo, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::client::Client;
use super::error::{ErrorCode, OAuthError, no_store};
use super::request::resource_matches;
use super::{MAX_FORM_BYTES, authenticate_client, core, require_form};
use crate::audit::{Actor, Event};
use crate::crypto::{random_token, sha256_hex};
use crate::http::{RequestMeta, parse_form, read_body};
use crate::scope::ScopeSet;
use crate::signing::AccessClaims;
use crate::state::AppState;
use crate::store::{CodeRedemption, Grant, RefreshRecord};

pub use super::core::ROTATION_GRACE_SECS;

#[derive(Serialize)]
struct TokenResponse {
    access_token: String,
    token_type: &'static str,
    expires_in: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    refresh_token: Option<String>,
    scope: String,
}

#[tracing::instrument(skip_all, fields(client_id, grant_type))]
pub async fn post_token(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let mut grant_type = String::new();
    match token(&state, peer, &headers, body, &mut grant_type).await {
        Ok(r) => {
            state.metrics.token_request(&grant_type, "ok");
            r
        }
        Err(e) => {
            tracing::info!(error = e.code.as_str(), "token request refused");
            state.metrics.token_request(&grant_type, e.code.as_str());
            e.into_response()
        }
    }
}

async fn token(
    state: &AppState,
    peer: SocketAddr,
    headers: &HeaderMap,
    body: Body,
    seen_grant_type: &mut String,
) -> Result<Response, OAuthError> {
    require_form(headers)?;
    let bytes = read_body(body, MAX_FORM_BYTES).await?;
    let form = parse_form(&bytes)?;
    let grant_type = form
        .get("grant_type")
        .ok_or_else(|| OAuthError::invalid_request("grant_type is required"))?
        .clone();
    tracing::Span::current().record("grant_type", grant_type.as_str());
    seen_grant_type.clone_from(&grant_type);
    if grant_type != "authorization_code" && grant_type != "refresh_token" {
        return Err(OAuthError::new(
            ErrorCode::UnsupportedGrantType,
            "grant_type must be authorization_code or refresh_token",
        ));
    }
    let meta = RequestMeta::new(headers, Some(peer), state.config.trusted_proxies);
    let client = authenticate_client(state, peer, headers, &form).await?;
    tracing::Span::current().record("client_id", client.id.as_str());
    if !client.meta.grant_types.contains(&grant_type) {
        return Err(OAuthError::new(
            ErrorCode::UnauthorizedClient,
            format!("this client is not registered for the {grant_type} grant"),
        ));
    }
    let get = |k: &str| form.get(k).map(String::as_str);
    if grant_type == "authorization_code" {
        code_grant(
            state,
            &client,
            &meta,
            get("code"),
            get("redirect_uri"),
            get("code_verifier"),
            get("resource"),
        )
        .await
    } else {
        refresh_grant(
            state,
            &client,
            &meta,
            get("refresh_token"),
            get("scope"),
            get("resource"),
        )
        .await
    }
}

fn check_resource(requested: Option<&str>, bound: &str, canonical: &str) -> Result<(), OAuthError> {
    match requested {
        Some(r) if !(resource_matches(r, canonical) && bound == canonical) => Err(OAuthError::new(
            ErrorCode::InvalidTarget,
            "resource must be this server's MCP URL, as in the authorization request",
        )),
        _ => Ok(()),
    }
}

async fn code_grant(
    state: &AppState,
    client: &Client,
    meta: &RequestMeta,
    code: Option<&str>,
    redirect_uri: Option<&str>,
    verifier: Option<&str>,
    resource: Option<&str>,
) -> Result<Response, OAuthError> {
    let code = code.ok_or_else(|| OAuthError::invalid_request("code is required"))?;
    let hash = sha256_hex(code);
    let now = state.now();
    let record = state
        .store
        .find_code(&hash)
        .await?
        .ok_or_else(|| OAuthError::invalid_grant("the authorization code is invalid"))?;
    let redemption = core::Redemption {
        client_id: &client.id,
        redirect_uri,
        verifier,
    };
    // A used code, however this redemption learned it: the grant and its tokens go.
    let replayed = || {
        replay_detected(
            state,
            client,
            meta,
            (&record.organization_id, &record.grant_id),
            Presented::Code,
        )
    };
    match core::check_code_redemption(&record, &redemption, now) {
        Ok(()) => {}
        Err(core::CodeRefusal::Replayed) => {
            return Err(replayed().await?);
        }
        Err(core::CodeRefusal::Invalid(why)) => return Err(OAuthError::invalid_grant(why)),
    }
    check_resource(resource, &record.resource, &state.config.mcp_url)?;
    let Some(grant) = state
        .store
        .live_grant(&record.organization_id, &record.grant_id)
        .await?
    else {
        // The grant went while this redemption was under way. If the code was redeemed
        // meanwhile, another redemption won and a third one's replay revoked the grant: this one
        // presented a used code too, and is recorded as the same replay (RFC 6749 §4.1.2).
        let redeemed_meanwhile = state
            .store
            .find_code(&hash)
            .await?
            .is_some_and(|r| r.consumed_at.is_some());
        if redeemed_meanwhile {
            return Err(replayed().await?);
        }
        return Err(OAuthError::invalid_grant(
            "the grant was revoked, or the user, organisation or client is disabled",
        ));
    };
    match state.store.redeem_code(&hash, now).await? {
        CodeRedemption::Redeemed(_) => {}
        // Two redemptions raced and this one lost: the same replay, recorded the same way.
        CodeRedemption::Replayed(_) => {
            return Err(replayed().await?);
        }
        CodeRedemption::Unknown => {
            return Err(OAuthError::invalid_grant(
                "the authorization code is invalid",
            ));
        }
    }
    let refresh = if client.allows_refresh() {
        Some(new_refresh(state, &grant, &record.scope, now).await?)
    } else {
        None
    };
    issue(
        state,
        client,
        meta,
        "token.issued",
        &grant,
        &record.scope,
        refresh,
    )
    .await
}

async fn new_refresh(
    state: &AppState,
    grant: &Grant,
    scope: &ScopeSet,
    now: i64,
) -> Result<String, OAuthError> {
    let token = random_token(32);
    let record = refresh_record(state, grant, scope, &token, now);
    state.store.insert_refresh(&record).await?;
    Ok(token)
}

fn refresh_record(
    state: &AppState,
    grant: &Grant,
    scope: &ScopeSet,
    token: &str,
    now: i64,
) -> RefreshRecord {
    RefreshRecord {
        token_hash: sha256_hex(token),
        grant_id: grant.id.clone(),
        organization_id: grant.organization_id.clone(),
        client_id: grant.client_id.clone(),
        scope: scope.clone(),
        resource: grant.resource.clone(),
        created_at: now,
        expires_at: now + state.config.refresh_token_ttl,
        rotated_at: None,
        replaced_by: None,
        revoked_at: None,
    }
}

async fn refresh_grant(
    state: &AppState,
    client: &Client,
    meta: &RequestMeta,
    token: Option<&str>,
    scope: Option<&str>,
    resource: Option<&str>,
) -> Result<Response, OAuthError> {
    let token = token.ok_or_else(|| OAuthError::invalid_request("refresh_token is required"))?;
    let hash = sha256_hex(token);
    let now = state.now();
    let invalid = || OAuthError::invalid_grant("the refresh token is invalid, expired or revoked");
    let rt = state.store.refresh(&hash).await?.ok_or_else(invalid)?;
    if rt.client_id != client.id {
        return Err(OAuthError::invalid_grant(
            "the refresh token was issued to another client",
        ));
    }
    let decision = core::decide_refresh(rt.rotated_at, rt.revoked_at, rt.expires_at, now);
    match decision {
        core::RefreshDecision::Expired => return Err(invalid()),
        // A revoked token coming back (e.g. the successor superseded by a retry) means two
        // parties hold tokens of this family: end the whole sign-in.
        core::RefreshDecision::Replay if rt.revoked_at.is_some() => {
            state
                .store
                .revoke_grant(&rt.organization_id, &rt.grant_id, now)
                .await?;
            return Err(invalid());
        }
        _ => {}
    }
    let Some(grant) = state
        .store
        .live_grant(&rt.organization_id, &rt.grant_id)
        .await?
    else {
        return Err(OAuthError::invalid_grant(
            "the grant was revoked, or the user, organisation or client is disabled",
        ));
    };
    let at_scope = core::narrow_scope(&rt.scope, scope)?;
    check_resource(resource, &rt.resource, &state.config.mcp_url)?;

    let new_token = random_token(32);
    let successor = refresh_record(state, &grant, &rt.scope, &new_token, now);
    let rotated = match decision {
        core::RefreshDecision::Rotate => {
            state.store.rotate_refresh(&hash, &successor, now).await?
                || retry_within_grace(state, &hash, &successor, now).await?
        }
        core::RefreshDecision::GraceRetry => {
            retry_within_grace(state, &hash, &successor, now).await?
        }
        core::RefreshDecision::Replay | core::RefreshDecision::Expired => false,
    };
    if !rotated {
        return Err(replay_detected(
            state,
            client,
            meta,
            (&rt.organization_id, &rt.grant_id),
            Presented::RefreshToken,
        )
        .await?);
    }
    issue(
        state,
        client,
        meta,
        "token.refreshed",
        &grant,
        &at_scope,
        Some(new_token),
    )
    .await
}

/// A rotated token presented again within the grace window: a client's retry after a lost
/// response, or the loser of two refreshes sent at the same moment. Either way it is answered
/// with a fresh pair and the unused successor it supersedes is revoked, so one refresh token stays
/// live. Concurrent retries serialise on the old token's row; each one that finds the successor
/// swapped under it reads again (a few times at most). `false` means a replay: outside the
/// window, or the successor was already used.
async fn retry_within_grace(
    state: &AppState,
    hash: &str,
    successor: &crate::store::RefreshRecord,
    now: i64,
) -> Result<bool, OAuthError> {
    for _ in 0..8 {
        let Some(current) = state.store.refresh(hash).await? else {
            return Ok(false);
        };
        let (Some(at), Some(previous), None) =
            (current.rotated_at, &current.replaced_by, current.revoked_at)
        else {
            return Ok(false);
        };
        if !core::within_grace(at, now) {
            return Ok(false);
        }
        if state
            .store
            .retry_rotation(hash, previous, successor, now)
            .await?
        {
            return Ok(true);
        }
        // Either another retry swapped the successor first (read again), or the successor was
        // used: then the next read finds it rotated and `retry_rotation` refuses again.
        let Some(prev) = state.store.refresh(previous).await? else {
            return Ok(false);
        };
        if prev.rotated_at.is_some() {
            return Ok(false);
        }
    }
    Ok(false)
}

async fn issue(
    state: &AppState,
    client: &Client,
    meta: &RequestMeta,
    action: &'static str,
    grant: &Grant,
    scope: &ScopeSet,
    refresh: Option<String>,
) -> Result<Response, OAuthError> {
    let now = state.now();
    let claims = AccessClaims {
        iss: state.config.issuer.clone(),
        sub: grant.user_id.to_string(),
        aud: grant.resource.clone(),
        client_id: client.id.to_string(),
        scope: scope.to_string(),
        org: grant.organization_id.to_string(),
        gid: grant.id.to_string(),
        jti: random_token(16),
        iat: now,
        exp: now + state.config.access_token_ttl,
    };
    let access_token = state.keys.sign(&claims).await.map_err(|e| {
        tracing::error!(error = %e, "signing failed");
        OAuthError::server_error()
    })?;
    state
        .store
        .touch_grant(&grant.organization_id, &grant.id, now)
        .await?;
    let expiry =
        (client.kind == crate::store::ClientKind::Dcr).then_some(now + state.config.dcr_client_ttl);
    state.store.touch_client(&client.id, now, expiry).await?;
    state.audit.record(
        client_event(client, meta, Some(&grant.organization_id), action)
            .target(grant.id.as_str())
            .detail("user_id", grant.user_id.as_str())
            .detail("scope", scope.to_string())
            .detail("jti", claims.jti.as_str())
            .detail("refresh_token", refresh.is_some()),
    );
    Ok(no_store(
        Json(TokenResponse {
            access_token,
            token_type: "Bearer",
            expires_in: state.config.access_token_ttl,
            refresh_token: refresh,
            scope: scope.to_string(),
        })
        .into_response(),
    ))
}

/// An audit event done by an OAuth client, from this request.
/// What was presented a second time.
#[derive(Clone, Copy)]
enum Presented {
    Code,
    RefreshToken,
}

/// A replayed authorization code or rotated refresh token, on any path (found used on reading,
/// or losing the race to redeem it): the grant and every token issued from it are revoked
/// (RFC 9700 §4.14, §2.2.2; OAuth 2.1 §4.1.3), and the same warning and audit event are
/// recorded every time. Returns the error to send.
async fn replay_detected(
    state: &AppState,
    client: &Client,
    meta: &RequestMeta,
    (org, grant): (&crate::store::OrgId, &crate::store::GrantId),
    presented: Presented,
) -> Result<OAuthError, OAuthError> {
    state.store.revoke_grant(org, grant, state.now()).await?;
    let (what, answer) = match presented {
        Presented::Code => (
            "authorization_code",
            "the authorization code was already used; every token issued from it is revoked",
        ),
        Presented::RefreshToken => (
            "refresh_token",
            "the refresh token was already used; this sign-in has been revoked",
        ),
    };
    tracing::warn!(client_id = %client.id, presented = what, "replay detected; grant revoked");
    state.audit.record(
        client_event(client, meta, Some(org), "token.replay_detected")
            .target(grant.as_str())
            .outcome("denied")
            .detail("presented", what)
            .detail("grant_revoked", true),
    );
    Ok(OAuthError::invalid_grant(answer))
}

pub(super) fn client_event(
    client: &Client,
    meta: &RequestMeta,
    org: Option<&crate::store::OrgId>,
    action: &'static str,
) -> Event {
    let (request_id, client_ip) = meta.parts();
    Event::new(
        org,
        Actor::new(
            "client",
            client.id.as_str(),
            Some(client.meta.client_name.clone()),
        ),
        action,
    )
    .from_request(request_id, client_ip)
}
