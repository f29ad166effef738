//! The console every signed-in person works in (`/account`, and `/admin/…` for an organisation's
//! admins): who is signed in, the organisation they work in (one at a time, switched explicitly
//! and always shown), and what the top of every console page shows. Handlers take it as an
//! extractor: [`Console`] for any signed-in person, [`Enrolling`] for the two-step enrolment page
//! itself, [`AdminConsole`] for the current organisation's admins.

use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::Response;
use tower_sessions::Session;

use super::extract::session_of;
use super::{Flash, error_page, internal_error_page, see_other};
use crate::state::AppState;
use crate::store::{Membership, Organization, Role, UserId};
use crate::web;

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

pub const ORG_KEY: &str = "org";

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
}

/// The signed-in person ([`Console::load`]) as an extractor; the rejection is the page to send
/// instead.
impl FromRequestParts<AppState> for Console {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let session = session_of(parts, state).await?;
        Console::load(state, &session).await
    }
}

/// The signed-in person on the two-step enrolment page ([`Console::load_for_enrolment`]).
pub struct Enrolling(pub Console);

impl FromRequestParts<AppState> for Enrolling {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let session = session_of(parts, state).await?;
        Console::load_for_enrolment(state, &session)
            .await
            .map(Enrolling)
    }
}

/// An admin of the current organisation ([`Console::load_admin`]); anyone else gets 403.
pub struct AdminConsole(pub Console);

impl FromRequestParts<AppState> for AdminConsole {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let session = session_of(parts, state).await?;
        Console::load_admin(state, &session).await.map(AdminConsole)
    }
}

/// Anything outside the current organisation does not exist here.
pub fn not_found(what: &str) -> Response {
    error_page(
        StatusCode::NOT_FOUND,
        "Not found",
        &format!("There is no such {what} in this organisation."),
        "Go back to the list and pick one from there.",
    )
}
