//! The admin pages (`/admin/…`): server-rendered (no JavaScript) in the console every signed-in
//! person works in (`web::console`). They share the consent pages' security bar: a per-session
//! CSRF token on every form, a CSP with `frame-ancestors 'none'`, `no-store`. An admin page
//! answers 403 to a member and 404 for anything outside the current organisation.

mod audit;
pub mod keys;
mod machines;
mod org;
mod signin;

use std::collections::HashMap;

use axum::Router;
use axum::extract::{FromRequest, Path, Request, State};
use axum::response::Response;
use axum::routing::{MethodRouter, get, post};
use tower_sessions::Session;

use super::service::{AdminError, OrgAdmin};
use crate::audit::Actor;
use crate::http::RequestMeta;
use crate::state::AppState;
use crate::web::console::{AdminConsole, Console};
use crate::web::extract::{Posted, session_of};
use crate::web::{self, internal_error_page, see_other};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin", get(org::clari_page))
        .route("/admin/clari-key", post(org::set_clari_key))
        .route("/admin/clari-key/test", post(org::test_clari_key))
        .route(
            "/admin/members",
            get(org::members_page).post(org::invite_member),
        )
        .route("/admin/members/{id}", post(org::change_member))
        .route(
            "/admin/invitations/{id}/withdraw",
            Ending::Invitation.route(),
        )
        .route("/admin/sign-in", get(signin::page))
        .route("/admin/sign-in/sso", post(signin::set_sso))
        .route("/admin/sign-in/sso/delete", post(signin::delete_sso))
        .route("/admin/sign-in/two-step", post(signin::set_two_step))
        .route("/admin/sign-in/dpop", post(signin::set_dpop))
        .route(
            "/admin/sign-in/scim-tokens",
            post(signin::create_scim_token),
        )
        .route(
            "/admin/sign-in/scim-tokens/{id}/revoke",
            Ending::ScimToken.route(),
        )
        .route("/admin/access", get(org::access_page))
        .route(
            "/admin/machines",
            get(machines::page).post(machines::create),
        )
        .route("/admin/machines/{id}/revoke", Ending::MachineClient.route())
        .route("/admin/grants/{id}/revoke", Ending::Grant.route())
        .route("/admin/api-keys", post(org::create_key))
        .route("/admin/api-keys/{id}/revoke", Ending::ApiKey.route())
        .route("/admin/kill", get(org::kill_page).post(org::kill))
        .route("/admin/audit", get(audit::audit_page))
        .route("/admin/audit.jsonl", get(audit::audit_download))
        .route("/admin/activity", get(audit::activity_page))
}

/// What every admin form handler starts from: the form, checked for CSRF first, posted by an
/// admin of the current organisation (`c`); the request's metadata for the audit trail; the
/// session the outcome is reported in.
pub struct AdminPost {
    pub c: Console,
    pub form: HashMap<String, String>,
    pub meta: RequestMeta,
    pub session: Session,
}

impl FromRequest<AppState> for AdminPost {
    type Rejection = Response;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Response> {
        let (mut parts, body) = req.into_parts();
        let meta = RequestMeta::from_parts(&parts, state.config.trusted_proxies);
        let session = session_of(&mut parts, state).await?;
        let Posted {
            by: AdminConsole(c),
            form,
        } = Posted::<AdminConsole>::from_request(Request::from_parts(parts, body), state).await?;
        Ok(AdminPost {
            c,
            form,
            meta,
            session,
        })
    }
}

impl AdminPost {
    /// The admin service acting for the sender, recording this request.
    pub fn admin<'s>(&self, state: &'s AppState) -> OrgAdmin<'s> {
        acting(state, &self.c, self.meta.clone())
    }

    /// Back to `back`, saying `said` when `outcome` is done, or what went wrong ([`after`]).
    pub async fn ended(self, back: &str, outcome: Result<(), AdminError>, said: &str) -> Response {
        after(&self.session, back, outcome.map(|()| said.to_owned())).await
    }
}

/// What an admin ends by its id from a row of a page: the page goes back to where the row was and
/// says what ending it did.
#[derive(Clone, Copy)]
enum Ending {
    Invitation,
    Grant,
    ApiKey,
    MachineClient,
    ScimToken,
}

impl Ending {
    /// `POST` of the row's form (`/{id}` in the path).
    fn route(self) -> MethodRouter<AppState> {
        post(
            move |State(state): State<AppState>, Path(id): Path<String>, p: AdminPost| async move {
                self.end(&state, &id, p).await
            },
        )
    }

    async fn end(self, state: &AppState, id: &str, p: AdminPost) -> Response {
        let admin = p.admin(state);
        let (outcome, back, said) = match self {
            Ending::Invitation => (
                admin.revoke_invitation(id).await,
                "/admin/members",
                "Invitation withdrawn: its link no longer works.",
            ),
            Ending::Grant => (
                admin.revoke_grant(id).await,
                "/admin/access",
                "Access revoked; the application's tokens stop working now.",
            ),
            Ending::ApiKey => (
                admin.revoke_api_key(id).await,
                "/admin/access",
                "API key revoked; it stops working now.",
            ),
            Ending::MachineClient => (
                admin.revoke_machine_client(id).await,
                "/admin/machines",
                "Machine client revoked: its tokens stop working on their next call.",
            ),
            Ending::ScimToken => (
                admin.revoke_scim_token(id).await,
                "/admin/sign-in",
                "SCIM token revoked: the directory can no longer provision with it.",
            ),
        };
        p.ended(back, outcome, said).await
    }
}

/// The admin service acting for the console's person on its current organisation.
pub fn acting<'a>(state: &'a AppState, c: &Console, meta: RequestMeta) -> OrgAdmin<'a> {
    OrgAdmin {
        state,
        org: c.org.clone(),
        actor: Actor::person(c.user.as_str(), c.email.clone()),
        meta,
    }
}

/// After a form: back to `to` with what happened. Not found is a 404 page (nothing outside the
/// current organisation exists here); a failure of ours is a 500 page.
pub async fn after(session: &Session, to: &str, outcome: Result<String, AdminError>) -> Response {
    match outcome {
        Ok(done) => {
            web::flash(session, false, done).await;
            see_other(to)
        }
        Err(AdminError::NotFound(what)) => not_found(what),
        Err(AdminError::Store(e)) => internal_error_page(&e),
        Err(e) => {
            web::flash(session, true, e.to_string()).await;
            see_other(to)
        }
    }
}

pub use crate::web::console::not_found;
pub use crate::web::when;
