//! `/api/v1/service-clients`: the organisation's machine clients (client credentials). A
//! secret, when the client has one, is in the creation answer only; registered keys are public.

use axum::body::Bytes;
use axum::extract::Path;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};

use super::edge::{ApiError, json_body, ok, page, with_etag};
use super::{ApiQuery, ApiResult, Caller, PageQuery};
use crate::admin::service::{AdminError, MachineKeys, NewMachineClient};
use crate::clock::rfc3339;
use crate::scope::Scope;
use crate::store::ServiceClient;

/// A machine client as the API shows it.
#[derive(Serialize)]
struct MachineClientResponse {
    client_id: String,
    name: String,
    scopes: Vec<&'static str>,
    token_endpoint_auth_method: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    jwks: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    jwks_uri: Option<String>,
    created_at: String,
    last_used_at: Option<String>,
    revoked_at: Option<String>,
}

impl From<&ServiceClient> for MachineClientResponse {
    fn from(c: &ServiceClient) -> Self {
        Self {
            client_id: c.id.as_str().to_owned(),
            name: c.name.clone(),
            scopes: c.scopes.iter().map(Scope::as_str).collect(),
            token_endpoint_auth_method: c.auth_method.as_str(),
            jwks: c.jwks.as_deref().and_then(|j| serde_json::from_str(j).ok()),
            jwks_uri: c.jwks_uri.clone(),
            created_at: rfc3339(c.created_at),
            last_used_at: c.last_used_at.map(rfc3339),
            revoked_at: c.revoked_at.map(rfc3339),
        }
    }
}

/// The creation answer: the client and, for a secret client, its secret (shown once).
#[derive(Serialize)]
struct CreatedMachineClientResponse<'a> {
    #[serde(flatten)]
    client: MachineClientResponse,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_secret: Option<&'a str>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewClient {
    name: String,
    scopes: Vec<String>,
    /// `client_secret_basic` (a secret is made) or `private_key_jwt` (give `jwks` or `jwks_uri`).
    token_endpoint_auth_method: String,
    jwks: Option<serde_json::Value>,
    jwks_uri: Option<String>,
}

/// A revoked machine client is gone for the API (the console still shows it, with its dates).
fn live(clients: Vec<ServiceClient>) -> Vec<ServiceClient> {
    clients
        .into_iter()
        .filter(|c| c.revoked_at.is_none())
        .collect()
}

pub(super) async fn list(caller: Caller, ApiQuery(q): ApiQuery<PageQuery>) -> ApiResult {
    let admin = caller.admin().await?;
    page(
        live(admin.machine_clients().await?),
        |c| c.id.to_string(),
        |c| MachineClientResponse::from(c),
        &q,
    )
}

pub(super) async fn get_one(caller: Caller, Path(id): Path<String>) -> ApiResult {
    let admin = caller.admin().await?;
    let found = live(admin.machine_clients().await?)
        .into_iter()
        .find(|c| c.id.as_str() == id)
        .ok_or(AdminError::NotFound("machine client"))?;
    Ok(with_etag(MachineClientResponse::from(&found)))
}

pub(super) async fn create(caller: Caller, headers: HeaderMap, body: Bytes) -> ApiResult {
    let admin = caller.admin().await?;
    let new: NewClient = json_body(&headers, &body)?;
    if new.scopes.len() > Scope::ALL.len() - 1 {
        return Err(ApiError::bad("scopes: at most 7, each once"));
    }
    let scopes = super::scopes_of(&new.scopes)?;
    let keys = match (
        new.token_endpoint_auth_method.as_str(),
        new.jwks,
        new.jwks_uri,
    ) {
        ("client_secret_basic", None, None) => MachineKeys::Secret,
        ("client_secret_basic", _, _) => {
            return Err(ApiError::bad(
                "a client_secret_basic client has no jwks or jwks_uri",
            ));
        }
        ("private_key_jwt", Some(jwks), None) => MachineKeys::Jwks(jwks.to_string()),
        ("private_key_jwt", None, Some(uri)) => MachineKeys::JwksUri(uri),
        ("private_key_jwt", _, _) => {
            return Err(ApiError::bad(
                "a private_key_jwt client gives exactly one of jwks and jwks_uri",
            ));
        }
        _ => {
            return Err(ApiError::bad(
                "token_endpoint_auth_method must be private_key_jwt or client_secret_basic",
            ));
        }
    };
    let (client, secret) = admin
        .create_machine_client(NewMachineClient {
            name: new.name,
            scopes,
            keys,
        })
        .await?;
    let answer = CreatedMachineClientResponse {
        client: MachineClientResponse::from(&client),
        client_secret: secret.as_ref().map(|s| s.expose_secret()),
    };
    Ok(ok(StatusCode::CREATED, answer))
}

pub(super) async fn revoke(caller: Caller, Path(id): Path<String>) -> ApiResult {
    caller.admin().await?.revoke_machine_client(&id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
