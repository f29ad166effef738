//! `/api/v1/clients`: the connected applications, one client's live grants each.

use axum::extract::Path;
use serde::Serialize;

use super::edge::page;
use super::{ApiQuery, ApiResult, Caller, PageQuery, no_content};
use crate::admin::service::ConnectedClient;
use crate::clock::rfc3339;

/// A connected application as the API shows it: the service's [`ConnectedClient`] with its
/// times as RFC 3339.
#[derive(Serialize)]
struct ConnectedClientResponse {
    client_id: String,
    client_name: String,
    redirect_host: String,
    grants: usize,
    users: Vec<String>,
    first_granted_at: String,
    last_used_at: Option<String>,
}

impl From<&ConnectedClient> for ConnectedClientResponse {
    fn from(c: &ConnectedClient) -> Self {
        Self {
            client_id: c.client_id.clone(),
            client_name: c.client_name.clone(),
            redirect_host: c.redirect_host.clone(),
            grants: c.grants,
            users: c.users.clone(),
            first_granted_at: rfc3339(c.first_granted_at),
            last_used_at: c.last_used_at.map(rfc3339),
        }
    }
}

pub(super) async fn list_clients(caller: Caller, ApiQuery(q): ApiQuery<PageQuery>) -> ApiResult {
    let admin = caller.admin().await?;
    page(
        admin.clients().await?,
        |c| c.client_id.clone(),
        |c| ConnectedClientResponse::from(c),
        &q,
    )
}

pub(super) async fn revoke_client(caller: Caller, Path(client_id): Path<String>) -> ApiResult {
    caller.admin().await?.revoke_client(&client_id).await?;
    Ok(no_content())
}
