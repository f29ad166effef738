//! RFC 7662 introspection, for confidential clients about their own tokens. Anything expired,
//! revoked, unknown or belonging to another client is `{"active": false}`.

use axum::Json;
use axum::body::Body;
use std::net::IpAddr;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::error::{OAuthError, no_store};
use super::{MAX_FORM_BYTES, authenticate_client, require_form};
use crate::crypto::sha256_hex;
use crate::http::{parse_form, read_body};
use crate::state::AppState;
use crate::web::extract::ClientAddr;

pub async fn introspect_token(
    State(state): State<AppState>,
    ClientAddr(ip): ClientAddr,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match introspect(&state, ip, &headers, body).await {
        Ok(v) => no_store(Json(v).into_response()),
        Err(e) => e.into_response(),
    }
}

async fn introspect(
    state: &AppState,
    ip: IpAddr,
    headers: &HeaderMap,
    body: Body,
) -> Result<serde_json::Value, OAuthError> {
    require_form(headers)?;
    let form = parse_form(&read_body(body, MAX_FORM_BYTES).await?)?;
    let client = authenticate_client(state, ip, headers, &form).await?;
    if client.is_public() {
        return Err(
            OAuthError::invalid_client("introspection requires a confidential client")
                .with_basic_challenge(true),
        );
    }
    let token = form
        .get("token")
        .ok_or_else(|| OAuthError::invalid_request("token is required"))?;
    let now = state.now();
    let inactive = json!({"active": false});
    if let Some(rt) = state.store.refresh(&sha256_hex(token)).await? {
        let usable = super::core::decide_refresh(rt.rotated_at, rt.revoked_at, rt.expires_at, now)
            == super::core::RefreshDecision::Rotate;
        if rt.client_id != client.id || !usable {
            return Ok(inactive);
        }
        let Some(grant) = state
            .store
            .live_grant(&rt.organization_id, &rt.grant_id)
            .await?
        else {
            return Ok(inactive);
        };
        return Ok(json!({
            "active": true, "token_type": "refresh_token", "client_id": rt.client_id, "scope": rt.scope.to_string(),
            "sub": grant.user_id.as_str(), "aud": rt.resource, "iss": state.config.issuer, "iat": rt.created_at, "exp": rt.expires_at,
            "org": rt.organization_id.as_str(),
        }));
    }
    let claims = match state.access_tokens().validate(token, now).await {
        Ok(valid) if valid.claims.client_id == client.id.as_str() && valid.claims.exp > now => {
            valid.claims
        }
        Err(crate::signing::TokenError::Unavailable) => {
            return Err(OAuthError::server_error());
        }
        _ => return Ok(inactive),
    };
    let mut answer = json!({
        "active": true, "token_type": "Bearer", "client_id": claims.client_id, "scope": claims.scope, "sub": claims.sub,
        "aud": claims.aud, "iss": claims.iss, "iat": claims.iat, "exp": claims.exp, "jti": claims.jti, "org": claims.org,
    });
    // RFC 9449 §6.2: a bound token's key, and token_type DPoP.
    if let Some(cnf) = &claims.cnf {
        answer["token_type"] = json!("DPoP");
        answer["cnf"] = json!({"jkt": cnf.jkt});
    }
    Ok(answer)
}
