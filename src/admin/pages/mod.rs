//! The console: server-rendered pages (no JavaScript) for every signed-in person (`/account`)
//! and for an organisation's admins (`/admin/…`). They share the consent pages' security bar:
//! a per-session CSRF token on every form, a CSP with `frame-ancestors 'none'`, `no-store`.
//! A person in several organisations works in one at a time, switched explicitly and always shown.
//! An admin page answers 403 to a member and 404 for anything outside the current organisation.

mod account;
mod audit;
mod machines;
mod mfa;
mod org;
mod signin;

use std::collections::HashMap;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use tower_sessions::Session;

use super::service::{AdminError, OrgAdmin};
use crate::audit::Actor;
use crate::http::{RequestMeta, parse_form, read_body};
use crate::state::AppState;
use crate::store::{Membership, Organization, Role, UserId};
use crate::web::{self, Flash, error_page, internal_error_page, see_other};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/account", get(account::page))
        .route("/account/org", post(account::switch_org))
        .route("/account/grants/{id}/revoke", post(account::revoke_grant))
        .route("/account/api-keys", post(account::create_key))
        .route("/account/api-keys/{id}/revoke", post(account::revoke_key))
        .route("/account/password", post(account::change_password))
        .route("/account/mfa", get(mfa::page).post(mfa::enable))
        .route("/account/mfa/disable", post(mfa::disable))
        .route(
            "/account/sign-out-everywhere",
            post(account::sign_out_everywhere),
        )
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
            post(org::withdraw_invitation),
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
            post(signin::revoke_scim_token),
        )
        .route("/admin/access", get(org::access_page))
        .route(
            "/admin/machines",
            get(machines::page).post(machines::create),
        )
        .route("/admin/machines/{id}/revoke", post(machines::revoke))
        .route("/admin/grants/{id}/revoke", post(org::revoke_grant))
        .route("/admin/api-keys", post(org::create_key))
        .route("/admin/api-keys/{id}/revoke", post(org::revoke_key))
        .route("/admin/kill", get(org::kill_page).post(org::kill))
        .route("/admin/audit", get(audit::audit_page))
        .route("/admin/audit.jsonl", get(audit::audit_download))
        .route("/admin/activity", get(audit::activity_page))
}

/// What every console page shows at the top.
pub struct Nav {
    pub email: String,
    pub orgs: Vec<(String, String)>,
    pub org_id: String,
    pub org_name: String,
    pub is_admin: bool,
    pub csrf: String,
    pub section: &'static str,
    pub back: &'static str,
    pub flash: Option<Flash>,
}

const ORG_KEY: &str = "org";

/// The signed-in person and the organisation they are working in.
pub struct Console {
    pub user: UserId,
    pub email: String,
    pub memberships: Vec<Membership>,
    pub org: Organization,
    pub role: Role,
    pub csrf: String,
}

impl Console {
    /// The signed-in person, or the answer to send instead (to sign-in, "no organisation", or the
    /// two-step enrolment page for an admin whose organisation requires it and who has none).
    pub async fn load(state: &AppState, session: &Session) -> Result<Console, Response> {
        let c = Self::load_for_enrolment(state, session).await?;
        if c.role == Role::Admin
            && c.must_enrol(state)
                .await
                .map_err(|e| internal_error_page(&e))?
        {
            web::flash(
                session,
                true,
                format!(
                    "{} requires its admins to use two-step sign-in. Set it up to continue.",
                    c.org.name
                ),
            )
            .await;
            return Err(see_other("/account/mfa"));
        }
        Ok(c)
    }

    /// Whether the current organisation requires a second factor of its admins and this person
    /// has none.
    pub async fn must_enrol(&self, state: &AppState) -> Result<bool, crate::store::StoreError> {
        Ok(state.store.require_admin_mfa(&self.org.id).await?
            && state.store.totp_of(&self.user).await?.is_none())
    }

    /// As [`Console::load`], without the two-step rule: the enrolment page itself.
    pub async fn load_for_enrolment(
        state: &AppState,
        session: &Session,
    ) -> Result<Console, Response> {
        let Some((user, email)) = web::current_user(state, session).await else {
            return Err(see_other("/login"));
        };
        let memberships = state
            .store
            .memberships(&user)
            .await
            .map_err(|e| internal_error_page(&e))?;
        let usable: Vec<&Membership> = memberships
            .iter()
            .filter(|m| !m.organization.disabled && !m.suspended)
            .collect();
        let chosen: Option<String> = session.get(ORG_KEY).await.ok().flatten();
        let current = chosen
            .and_then(|c| usable.iter().find(|m| m.organization.id.as_str() == c))
            .or(usable.first())
            .map(|m| (m.organization.clone(), m.role));
        let Some((org, role)) = current else {
            return Err(error_page(
                StatusCode::FORBIDDEN,
                "No organisation",
                "Your account does not belong to an active organisation.",
                "Ask an administrator to add you to one.",
            ));
        };
        let csrf = web::csrf_token(session).await;
        Ok(Console {
            user,
            email,
            memberships,
            org,
            role,
            csrf,
        })
    }

    /// As [`Console::load`], and the person must administer the current organisation (else 403).
    pub async fn load_admin(state: &AppState, session: &Session) -> Result<Console, Response> {
        let c = Self::load(state, session).await?;
        if c.role != Role::Admin {
            return Err(error_page(
                StatusCode::FORBIDDEN,
                "Only for administrators",
                &format!(
                    "This page is for the administrators of {}; your role there is member.",
                    c.org.name
                ),
                "Ask one of them, or switch to an organisation you administer.",
            ));
        }
        Ok(c)
    }

    pub async fn nav(&self, session: &Session, section: &'static str, back: &'static str) -> Nav {
        Nav {
            email: self.email.clone(),
            orgs: self
                .memberships
                .iter()
                .filter(|m| !m.organization.disabled && !m.suspended)
                .map(|m| (m.organization.id.to_string(), m.organization.name.clone()))
                .collect(),
            org_id: self.org.id.to_string(),
            org_name: self.org.name.clone(),
            is_admin: self.role == Role::Admin,
            csrf: self.csrf.clone(),
            section,
            back,
            flash: web::take_flash(session).await,
        }
    }

    /// The admin service acting for this person on the current organisation.
    pub fn admin<'a>(&self, state: &'a AppState, meta: RequestMeta) -> OrgAdmin<'a> {
        OrgAdmin {
            state,
            org: self.org.clone(),
            actor: Actor::new("user", self.user.as_str(), Some(self.email.clone())),
            meta,
        }
    }
}

/// A posted form with a valid CSRF token, or the answer to send instead.
pub async fn form(session: &Session, body: Body) -> Result<HashMap<String, String>, Response> {
    // Forms carry passwords and Clari keys: the raw body is wiped when dropped, and handlers
    // move secret fields out of the map into `SecretString`s.
    let form = read_body(body, 16 * 1024)
        .await
        .map(|b| zeroize::Zeroizing::new(Vec::from(b)))
        .and_then(|b| parse_form(&b))
        .map_err(|e| {
            error_page(
                StatusCode::BAD_REQUEST,
                "The form is malformed",
                &e.0,
                "Go back, reload the page and try again.",
            )
        })?;
    if !web::check_csrf(session, form.get("csrf")).await {
        return Err(web::csrf_failure());
    }
    Ok(form)
}

pub fn meta(state: &AppState, headers: &HeaderMap, peer: std::net::SocketAddr) -> RequestMeta {
    RequestMeta::new(headers, Some(peer), state.config.trusted_proxies)
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

pub fn not_found(what: &str) -> Response {
    error_page(
        StatusCode::NOT_FOUND,
        "Not found",
        &format!("There is no such {what} in this organisation."),
        "Go back to the list and pick one from there.",
    )
}

pub use crate::web::when;
