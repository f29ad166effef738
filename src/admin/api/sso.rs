//! `/api/v1/sso`: the organisation's OpenID Connect connection. Its answer is the service's
//! [`SsoSettings`](crate::admin::service::SsoSettings), which is already the wire shape.

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use serde::Deserialize;

use super::edge::{json_body, with_etag};
use super::{ApiResult, Caller};
use crate::admin::service::AdminError;

/// The organisation's OpenID Connect connection (never its client secret); 404 when none.
pub(super) async fn get_sso(caller: Caller) -> ApiResult {
    let admin = caller.admin().await?;
    let settings = admin
        .sso()
        .await?
        .ok_or(AdminError::NotFound("single sign-on connection"))?;
    Ok(with_etag(settings))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SsoPut {
    issuer: String,
    client_id: String,
    client_secret: Option<String>,
    domains: Vec<String>,
    groups_claim: Option<String>,
    admin_group: Option<String>,
    member_group: Option<String>,
    #[serde(default)]
    required: bool,
}

/// Creates or replaces the connection; `client_secret` is write-only and may be left out to
/// keep the stored one.
pub(super) async fn put_sso(caller: Caller, headers: HeaderMap, body: Bytes) -> ApiResult {
    let admin = caller.admin().await?;
    let put: SsoPut = json_body(&headers, &body)?;
    let settings = admin
        .set_sso(crate::admin::service::SsoChange {
            issuer: put.issuer,
            client_id: put.client_id,
            client_secret: put.client_secret.map(secrecy::SecretString::from),
            domains: put.domains,
            groups_claim: put.groups_claim,
            admin_group: put.admin_group,
            member_group: put.member_group,
            required: put.required,
        })
        .await?;
    Ok(with_etag(settings))
}

pub(super) async fn delete_sso(caller: Caller) -> ApiResult {
    caller.admin().await?.delete_sso().await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
