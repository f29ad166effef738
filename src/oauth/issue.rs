//! Issuing an access token (RFC 9068, DPoP-bound when asked) and the token response (RFC 6749
//! §5.1), for every grant type; and the audit event of a client's token request.

use axum::Json;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::client::Client;
use super::dpop;
use super::error::{OAuthError, no_store};
use crate::audit::{Actor, Event};
use crate::crypto::random_token;
use crate::http::RequestMeta;
use crate::scope::ScopeSet;
use crate::signing::AccessClaims;
use crate::state::AppState;
use crate::store::Grant;

#[derive(Serialize)]
struct TokenResponse {
    access_token: String,
    token_type: &'static str,
    expires_in: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    refresh_token: Option<String>,
    scope: String,
}

/// What a grant issued: the signed access token, its scope, and a refresh token when the grant
/// made one. The token endpoint renders it with [`answer`].
pub(super) struct Issued {
    pub signed: Signed,
    pub scope: ScopeSet,
    pub refresh: Option<String>,
}

/// Issues an access token on a person's grant, with the refresh token already made, and
/// records it.
#[allow(clippy::too_many_arguments)]
pub(super) async fn issue(
    state: &AppState,
    client: &Client,
    meta: &RequestMeta,
    action: &'static str,
    grant: &Grant,
    scope: &ScopeSet,
    refresh: Option<String>,
    jkt: Option<&str>,
) -> Result<Issued, OAuthError> {
    let now = state.now();
    let signed = sign(
        state,
        Subject {
            sub: grant.user_id.as_str(),
            gid: grant.id.as_str(),
            org: &grant.organization_id,
            client_id: client.id.as_str(),
            resource: &grant.resource,
        },
        scope,
        jkt,
    )
    .await?;
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
            .detail("jti", signed.jti.as_str())
            .detail("dpop_bound", jkt.is_some())
            .detail("refresh_token", refresh.is_some()),
    );
    Ok(Issued {
        signed,
        scope: scope.clone(),
        refresh,
    })
}

/// Who an access token is for.
pub(super) struct Subject<'a> {
    /// The person, or the machine client itself.
    pub sub: &'a str,
    /// The grant, or the machine client: what revocation reaches.
    pub gid: &'a str,
    pub org: &'a crate::store::OrgId,
    pub client_id: &'a str,
    pub resource: &'a str,
}

/// A signed access token.
pub(super) struct Signed {
    pub access_token: String,
    pub jti: String,
    pub dpop_bound: bool,
}

/// Signs an RFC 9068 access token, DPoP-bound (`cnf.jkt`, RFC 9449 §6.1) when `jkt` is given.
pub(super) async fn sign(
    state: &AppState,
    subject: Subject<'_>,
    scope: &ScopeSet,
    jkt: Option<&str>,
) -> Result<Signed, OAuthError> {
    let now = state.now();
    let claims = AccessClaims {
        iss: state.config.issuer.clone(),
        sub: subject.sub.to_owned(),
        aud: subject.resource.to_owned(),
        client_id: subject.client_id.to_owned(),
        scope: scope.to_string(),
        org: subject.org.to_string(),
        gid: subject.gid.to_owned(),
        jti: random_token(16),
        iat: now,
        exp: now + state.config.access_token_ttl,
        cnf: jkt.map(|j| crate::signing::Confirmation { jkt: j.to_owned() }),
    };
    let access_token = state.keys.sign(&claims).await.map_err(|e| {
        tracing::error!(error = %e, "signing failed");
        OAuthError::server_error()
    })?;
    Ok(Signed {
        access_token,
        jti: claims.jti,
        dpop_bound: jkt.is_some(),
    })
}

/// The token response (RFC 6749 §5.1): `token_type` `DPoP` for a bound token (RFC 9449 §5),
/// with a fresh nonce for the next proof (§8.2).
pub(super) fn answer(state: &AppState, issued: Issued) -> Response {
    let Issued {
        signed,
        scope,
        refresh,
    } = issued;
    let mut r = no_store(
        Json(TokenResponse {
            access_token: signed.access_token,
            token_type: if signed.dpop_bound { "DPoP" } else { "Bearer" },
            expires_in: state.config.access_token_ttl,
            refresh_token: refresh,
            scope: scope.to_string(),
        })
        .into_response(),
    );
    if signed.dpop_bound
        && let Ok(v) =
            axum::http::HeaderValue::from_str(&dpop::new_nonce(&state.vault, state.now()))
    {
        r.headers_mut().insert(dpop::NONCE_HEADER, v);
    }
    r
}

/// An audit event done by an OAuth client, from this request.
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
