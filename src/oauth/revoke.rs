//! RFC 7009 revocation. The client must authenticate (public clients by client_id). Revoking a
//! refresh token or an access token revokes its grant, so every token of that sign-in stops
//! working (access tokens are checked against the grant on each MCP request). Unknown tokens and
//! other clients' tokens are answered 200 with nothing revoked, as the RFC asks.

use super::issue::client_event;
use axum::body::Body;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::error::{OAuthError, no_store};
use super::{MAX_FORM_BYTES, authenticate_client, require_form};
use crate::crypto::sha256_hex;
use crate::http::{parse_form, read_body};
use crate::state::AppState;
use crate::web::extract::Origin;

pub async fn revoke_token(
    State(state): State<AppState>,
    origin: Origin,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match revoke(&state, origin, &headers, body).await {
        Ok(()) => no_store(StatusCode::OK.into_response()),
        Err(e) => e.into_response(),
    }
}

async fn revoke(
    state: &AppState,
    Origin { ip, meta }: Origin,
    headers: &HeaderMap,
    body: Body,
) -> Result<(), OAuthError> {
    require_form(headers)?;
    let form = parse_form(&read_body(body, MAX_FORM_BYTES).await?)?;
    let client = authenticate_client(state, ip, headers, &form).await?;
    let token = form
        .get("token")
        .ok_or_else(|| OAuthError::invalid_request("token is required"))?;
    let now = state.now();
    if let Some(rt) = state.store.refresh(&sha256_hex(token)).await? {
        if rt.client_id == client.id {
            state
                .store
                .revoke_grant(&rt.organization_id, &rt.grant_id, now)
                .await?;
            tracing::info!(client_id = %client.id, "refresh token revoked");
            state.audit.record(
                client_event(&client, &meta, Some(&rt.organization_id), "token.revoked")
                    .target(rt.grant_id.as_str())
                    .detail("token_type", "refresh_token"),
            );
        }
        return Ok(());
    }
    // A machine client's token names no OAuth client that could authenticate here; a grant's
    // token may be revoked by its own client.
    if let Ok(crate::signing::ValidToken {
        claims,
        behind: crate::signing::Behind::Grant(grant),
    }) = state.access_tokens().validate(token, now).await
        && claims.client_id == client.id.as_str()
    {
        state
            .store
            .revoke_grant(&grant.organization_id, &grant.id, now)
            .await?;
        tracing::info!(client_id = %client.id, "access token revoked");
        state.audit.record(
            client_event(
                &client,
                &meta,
                Some(&grant.organization_id),
                "token.revoked",
            )
            .target(grant.id.as_str())
            .detail("token_type", "access_token"),
        );
    }
    Ok(())
}
