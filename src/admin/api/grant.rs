//! `/api/v1/grants`: what each person consented to each client.

use axum::extract::Path;
use serde::Serialize;

use super::edge::page;
use super::{ApiQuery, ApiResult, Caller, PageQuery, no_content};
use crate::clock::rfc3339;
use crate::scope::Scope;
use crate::store::GrantView;

/// A grant as the API shows it, with the names a person recognises.
#[derive(Serialize)]
struct GrantResponse {
    id: String,
    client_id: String,
    client_name: String,
    redirect_host: String,
    user_id: String,
    user_email: String,
    scopes: Vec<&'static str>,
    created_at: String,
    /// When a token was last issued on the grant.
    last_used_at: Option<String>,
}

impl From<&GrantView> for GrantResponse {
    fn from(g: &GrantView) -> Self {
        Self {
            id: g.grant.id.as_str().to_owned(),
            client_id: g.grant.client_id.as_str().to_owned(),
            client_name: g.client_name.clone(),
            redirect_host: g.redirect_host.clone(),
            user_id: g.grant.user_id.as_str().to_owned(),
            user_email: g.user_email.clone(),
            scopes: g.grant.scope.iter().map(Scope::as_str).collect(),
            created_at: rfc3339(g.grant.created_at),
            last_used_at: g.last_used_at.map(rfc3339),
        }
    }
}

pub(super) async fn list_grants(caller: Caller, ApiQuery(q): ApiQuery<PageQuery>) -> ApiResult {
    let admin = caller.admin().await?;
    page(
        admin.grants().await?,
        |g| g.grant.id.to_string(),
        |g| GrantResponse::from(g),
        &q,
    )
}

pub(super) async fn revoke_grant(caller: Caller, Path(grant_id): Path<String>) -> ApiResult {
    caller.admin().await?.revoke_grant(&grant_id).await?;
    Ok(no_content())
}
