//! The I/O of a person's grants at the token endpoint: redeeming an authorization code and
//! refreshing. Each reads the store, asks the rules of `core` what to do, does it and returns
//! what was issued, or the `OAuthError` to answer with; `token` reads the request and renders.
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
//!
//! Every replay, of a code or of a refresh token, goes through [`replay_detected`].

use super::client::Client;
use super::core;
use super::dpop;
use super::error::{ErrorCode, OAuthError};
use super::issue::{Issued, client_event, issue};
use super::request::resource_matches;
use crate::crypto::{random_token, sha256_hex};
use crate::http::RequestMeta;
use crate::scope::ScopeSet;
use crate::state::AppState;
use crate::store::{CodeRedemption, Grant, GrantId, OrgId, RefreshRecord};

/// What an authorization code is exchanged with (RFC 6749 §4.1.3, with PKCE and RFC 8707).
pub struct CodeExchange<'a> {
    pub code: Option<&'a str>,
    pub redirect_uri: Option<&'a str>,
    pub verifier: Option<&'a str>,
    pub resource: Option<&'a str>,
}

/// What a refresh token is exchanged with (RFC 6749 §6, with RFC 8707).
pub struct RefreshExchange<'a> {
    pub refresh_token: Option<&'a str>,
    pub scope: Option<&'a str>,
    pub resource: Option<&'a str>,
}

/// The answer to a refresh token that is unknown, expired or revoked.
const INVALID_REFRESH: &str = "the refresh token is invalid, expired or revoked";

fn check_resource(requested: Option<&str>, bound: &str, canonical: &str) -> Result<(), OAuthError> {
    match requested {
        Some(r) if !(resource_matches(r, canonical) && bound == canonical) => Err(OAuthError::new(
            ErrorCode::InvalidTarget,
            "resource must be this server's MCP URL, as in the authorization request",
        )),
        _ => Ok(()),
    }
}

/// The `authorization_code` grant (RFC 6749 §4.1.3; OAuth 2.1 §4.1.3: a code is used once):
/// the checks of `core::check_code_redemption`, the resource, a live grant and the DPoP
/// binding, then the code is consumed with one conditional update and the tokens issued.
pub(super) async fn redeem_code(
    state: &AppState,
    client: &Client,
    meta: &RequestMeta,
    exchange: CodeExchange<'_>,
    proof: Option<&dpop::Proof>,
) -> Result<Issued, OAuthError> {
    let CodeExchange {
        code,
        redirect_uri,
        verifier,
        resource,
    } = exchange;
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
    // Checked before the code is used, so the client can try again with a proof.
    let jkt = dpop::binding(proof, grant.org_requires_dpop)?;
    dpop::record(state, proof).await?;
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
        let bound = refresh_binding(client, jkt.as_deref());
        Some(new_refresh(state, &grant, &record.scope, now, bound).await?)
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
        jkt.as_deref(),
    )
    .await
}

/// The key a refresh token is bound to: a public client's DPoP key (RFC 9449 §5); a
/// confidential client's refresh token is bound to its authentication instead.
fn refresh_binding<'a>(client: &Client, jkt: Option<&'a str>) -> Option<&'a str> {
    jkt.filter(|_| client.is_public())
}

/// Makes and stores a refresh token on `grant` (bound to `jkt` when given); returns the token,
/// shown once. Also how the scale model (`bench/scale.rs`) gives its people theirs.
pub async fn new_refresh(
    state: &AppState,
    grant: &Grant,
    scope: &ScopeSet,
    now: i64,
    jkt: Option<&str>,
) -> Result<String, OAuthError> {
    let token = random_token(32);
    let mut record = refresh_record(state, grant, scope, &token, now);
    record.jkt = jkt.map(str::to_owned);
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
        jkt: None,
    }
}

/// The `refresh_token` grant (RFC 6749 §6): the token's client and DPoP binding (RFC 9449 §5),
/// then `core::decide_refresh` (rotation, a retry within the grace window, replay, expiry:
/// RFC 9700 §4.14), the scope narrowed never widened, and one rotation into a successor.
pub(super) async fn refresh(
    state: &AppState,
    client: &Client,
    meta: &RequestMeta,
    exchange: RefreshExchange<'_>,
    proof: Option<&dpop::Proof>,
) -> Result<Issued, OAuthError> {
    let RefreshExchange {
        refresh_token: token,
        scope,
        resource,
    } = exchange;
    let token = token.ok_or_else(|| OAuthError::invalid_request("refresh_token is required"))?;
    let hash = sha256_hex(token);
    let now = state.now();
    let invalid = || OAuthError::invalid_grant(INVALID_REFRESH);
    let rt = state.store.refresh(&hash).await?.ok_or_else(invalid)?;
    if rt.client_id != client.id {
        return Err(OAuthError::invalid_grant(
            "the refresh token was issued to another client",
        ));
    }
    // RFC 9449 §5: "The binding MUST be validated when the refresh token is later presented".
    if let Some(bound) = &rt.jkt
        && proof.is_none_or(|p| &p.jkt != bound)
    {
        return Err(OAuthError::new(
            ErrorCode::InvalidDpopProof,
            "this refresh token is DPoP-bound: send a DPoP proof signed by its key",
        ));
    }
    let replayed = |presented| {
        replay_detected(
            state,
            client,
            meta,
            (&rt.organization_id, &rt.grant_id),
            presented,
        )
    };
    let decision = core::decide_refresh(rt.rotated_at, rt.revoked_at, rt.expires_at, now);
    match decision {
        core::RefreshDecision::Expired => return Err(invalid()),
        core::RefreshDecision::Replay if rt.revoked_at.is_some() => {
            return Err(replayed(Presented::RevokedRefreshToken).await?);
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
    let jkt = dpop::binding(proof, grant.org_requires_dpop)?;
    dpop::record(state, proof).await?;

    let new_token = random_token(32);
    let mut successor = refresh_record(state, &grant, &rt.scope, &new_token, now);
    successor.jkt = rt
        .jkt
        .clone()
        .or_else(|| refresh_binding(client, jkt.as_deref()).map(str::to_owned));
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
        return Err(replayed(Presented::RefreshToken).await?);
    }
    issue(
        state,
        client,
        meta,
        "token.refreshed",
        &grant,
        &at_scope,
        Some(new_token),
        jkt.as_deref(),
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
    successor: &RefreshRecord,
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

/// What was presented a second time.
#[derive(Clone, Copy)]
enum Presented {
    Code,
    /// A rotated refresh token, outside the grace window or after its successor was used.
    RefreshToken,
    /// A revoked refresh token (e.g. the successor superseded by a retry): two parties hold
    /// tokens of this family. The grant goes as for any replay, but the answer is that of any
    /// invalid refresh token, with no warning or audit event.
    RevokedRefreshToken,
}

/// A replayed authorization code or rotated refresh token, on any path (found used on reading,
/// or losing the race to redeem it): the grant and every token issued from it are revoked
/// (RFC 9700 §4.14, §2.2.2; OAuth 2.1 §4.1.3), and the same warning and audit event are
/// recorded every time. Returns the error to send.
async fn replay_detected(
    state: &AppState,
    client: &Client,
    meta: &RequestMeta,
    (org, grant): (&OrgId, &GrantId),
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
        Presented::RevokedRefreshToken => return Ok(OAuthError::invalid_grant(INVALID_REFRESH)),
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
