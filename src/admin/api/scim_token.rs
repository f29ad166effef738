//! `/api/v1/scim-tokens`: the tokens the organisation's identity provider uses for SCIM.

use axum::body::Bytes;
use axum::extract::Path;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};

use super::edge::{json_body, ok, page};
use super::{ApiQuery, ApiResult, Caller, PageQuery};
use crate::admin::OrgAdmin;
use crate::clock::rfc3339;
use crate::store::ScimToken;

/// A SCIM token as the API shows it (never the token).
#[derive(Serialize)]
struct ScimTokenResponse {
    id: String,
    name: String,
    scim_base_url: String,
    created_at: String,
    last_used_at: Option<String>,
}

impl ScimTokenResponse {
    fn new(t: &ScimToken, scim_base_url: &str) -> Self {
        Self {
            id: t.id.clone(),
            name: t.name.clone(),
            scim_base_url: scim_base_url.to_owned(),
            created_at: rfc3339(t.created_at),
            last_used_at: t.last_used_at.map(rfc3339),
        }
    }
}

/// The creation answer: the token's description and the token itself, in this answer only.
#[derive(Serialize)]
struct CreatedScimTokenResponse<'a> {
    #[serde(flatten)]
    scim_token: ScimTokenResponse,
    token: &'a str,
}

fn scim_base(admin: &OrgAdmin<'_>) -> String {
    format!(
        "{}/scim/v2/{}",
        admin.state.config.public_url, admin.org.slug
    )
}

pub(super) async fn list_scim_tokens(
    caller: Caller,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> ApiResult {
    let admin = caller.admin().await?;
    let base = scim_base(&admin);
    page(
        admin.scim_tokens().await?,
        |t| t.id.clone(),
        |t| ScimTokenResponse::new(t, &base),
        &q,
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewScimToken {
    name: String,
}

/// Makes a SCIM token for the organisation's identity provider: `token` is in this answer
/// only; `scim_base_url` is what to configure as the SCIM connector's base URL.
pub(super) async fn create_scim_token(
    caller: Caller,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    let admin = caller.admin().await?;
    let new: NewScimToken = json_body(&headers, &body)?;
    let (secret, token) = admin.create_scim_token(&new.name).await?;
    let created = CreatedScimTokenResponse {
        scim_token: ScimTokenResponse::new(&token, &scim_base(&admin)),
        token: secret.expose_secret(),
    };
    Ok(ok(StatusCode::CREATED, created))
}

pub(super) async fn revoke_scim_token(caller: Caller, Path(id): Path<String>) -> ApiResult {
    caller.admin().await?.revoke_scim_token(&id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
