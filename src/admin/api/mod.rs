//! The admin REST API, `/api/v1`: what the admin pages do, for scripts. A caller presents an
//! access token or API key carrying the `admin` scope and must still be an active admin of the
//! token's organisation on every request. Errors are `{"code", "message"}` with a stable code;
//! lists page with an opaque `cursor`; updates need `If-Match` with the resource's `ETag`.

use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};

mod api_key;
mod audit;
mod client;
mod credential;
mod edge;
mod grant;
mod invitation;
mod kill_switch;
mod machines;
mod member;
mod organization;
mod scim_token;
mod sso;

pub use audit::{audit_filter, audit_json};
pub use edge::{ApiError, ApiQuery, ApiResult, Caller, PageQuery};

use crate::scope::{Scope, ScopeSet};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/api/v1/organization",
            get(organization::get_org).patch(organization::patch_org),
        )
        .route(
            "/api/v1/clari-credential",
            get(credential::get_credential).put(credential::put_credential),
        )
        .route(
            "/api/v1/clari-credential/test",
            post(credential::test_credential),
        )
        .route("/api/v1/members", get(member::list_members))
        .route(
            "/api/v1/invitations",
            get(invitation::list_invitations).post(invitation::create_invitation),
        )
        .route(
            "/api/v1/invitations/{id}",
            get(invitation::get_invitation).delete(invitation::withdraw_invitation),
        )
        .route(
            "/api/v1/scim-tokens",
            get(scim_token::list_scim_tokens).post(scim_token::create_scim_token),
        )
        .route(
            "/api/v1/scim-tokens/{id}",
            delete(scim_token::revoke_scim_token),
        )
        .route(
            "/api/v1/sso",
            get(sso::get_sso).put(sso::put_sso).delete(sso::delete_sso),
        )
        .route(
            "/api/v1/members/{user_id}",
            get(member::get_member)
                .patch(member::patch_member)
                .delete(member::remove_member),
        )
        .route(
            "/api/v1/api-keys",
            get(api_key::list_keys).post(api_key::create_key),
        )
        .route("/api/v1/api-keys/{key_id}", delete(api_key::revoke_key))
        .route("/api/v1/grants", get(grant::list_grants))
        .route("/api/v1/grants/{grant_id}", delete(grant::revoke_grant))
        .route("/api/v1/clients", get(client::list_clients))
        .route("/api/v1/clients/{client_id}", delete(client::revoke_client))
        .route("/api/v1/audit-events", get(audit::list_audit))
        .route("/api/v1/kill-switch", post(kill_switch::kill))
        .route(
            "/api/v1/service-clients",
            get(machines::list).post(machines::create),
        )
        .route(
            "/api/v1/service-clients/{client_id}",
            get(machines::get_one).delete(machines::revoke),
        )
}

/// An empty answer to a removal.
fn no_content() -> Response {
    let mut r = StatusCode::NO_CONTENT.into_response();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// The scopes of a request body, each a scope name (400 naming the first that is not).
fn scopes_of(names: &[String]) -> Result<ScopeSet, ApiError> {
    names
        .iter()
        .map(|s| Scope::parse(s))
        .collect::<Result<ScopeSet, _>>()
        .map_err(|e| ApiError::bad(format!("scopes: {e}")))
}
