//! Accepting an invitation: the person the link was made for joins the organisation with their
//! own account (signed in as the invited address) or creates one with a password only they know.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use secrecy::{ExposeSecret, SecretString};
use tower_sessions::Session;

use super::extract::CsrfForm;
use super::login::complete_sign_in;
use super::{
    csrf_token, current_user, error_page, internal_error_page, render, see_other, urlencode,
};
use crate::audit::{Actor, Event};
use crate::crypto::{Passwords, sha256_hex};
use crate::state::AppState;
use crate::store::{AcceptError, Email, InvitationOffer, UserId};

#[derive(Template)]
#[template(path = "invitation.html")]
struct InvitationPage {
    csrf: String,
    path: String,
    org_name: String,
    org_slug: String,
    role: &'static str,
    email: String,
    expires: String,
    /// The signed-in person's e-mail, if anyone is signed in.
    signed_in_as: Option<String>,
    error: Option<String>,
}

fn gone() -> Response {
    error_page(
        StatusCode::NOT_FOUND,
        "This invitation cannot be used",
        "The link is unknown, was already used, was withdrawn, or has expired.",
        "Ask an administrator of the organisation to invite you again.",
    )
}

/// Tokens are base64url; anything else is not one of ours.
fn token_hash(token: &str) -> Option<String> {
    (token.len() <= 64
        && token
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'))
    .then(|| sha256_hex(token))
}

async fn offer(state: &AppState, token: &str) -> Result<InvitationOffer, Response> {
    let hash = token_hash(token).ok_or_else(gone)?;
    match state.store.invitation_by_token(&hash, state.now()).await {
        Ok(Some(o)) if !o.org_disabled => Ok(o),
        Ok(_) => Err(gone()),
        Err(e) => Err(internal_error_page(&e)),
    }
}

async fn page(
    state: &AppState,
    session: &Session,
    token: &str,
    o: &InvitationOffer,
    status: StatusCode,
    error: Option<String>,
) -> Response {
    let signed_in_as = current_user(state, session).await.map(|(_, email)| email);
    let csrf = csrf_token(session).await;
    render(
        status,
        &InvitationPage {
            csrf,
            path: format!("/invitations/{token}"),
            org_name: o.org_name.clone(),
            org_slug: o.org_slug.clone(),
            role: o.invitation.role.as_str(),
            email: o.invitation.email.clone(),
            expires: super::when(o.invitation.expires_at),
            signed_in_as,
            error,
        },
    )
}

/// `GET /invitations/{token}`: what the invitation is for, and how to accept it.
pub async fn get_invitation(
    State(state): State<AppState>,
    session: Session,
    Path(token): Path<String>,
) -> Response {
    match offer(&state, &token).await {
        Ok(o) => page(&state, &session, &token, &o, StatusCode::OK, None).await,
        Err(r) => r,
    }
}

/// `POST /invitations/{token}`: `action=accept` (signed in as the invited address) or
/// `action=create` (a new account with the password in `new`, confirmed in `confirm`).
pub async fn post_invitation(
    State(state): State<AppState>,
    session: Session,
    Path(token): Path<String>,
    CsrfForm(mut form): CsrfForm,
) -> Response {
    let o = match offer(&state, &token).await {
        Ok(o) => o,
        Err(r) => return r,
    };
    let Some(hash) = token_hash(&token) else {
        return gone();
    };
    let now = state.now();
    let refuse = |status, why: String| {
        let (state, session, token, o) = (&state, &session, &token, &o);
        async move { page(state, session, token, o, status, Some(why)).await }
    };
    match form.get("action").map(String::as_str) {
        Some("accept") => {
            let Some((user, email)) = current_user(&state, &session).await else {
                return see_other(&format!(
                    "/login?next={}&email={}",
                    urlencode(&format!("/invitations/{token}")),
                    urlencode(&o.invitation.email)
                ));
            };
            if email != o.invitation.email {
                return refuse(
                    StatusCode::FORBIDDEN,
                    format!(
                        "This invitation is for {}, and you are signed in as {email}. Sign out, then sign in as {}.",
                        o.invitation.email, o.invitation.email
                    ),
                )
                .await;
            }
            match state.store.accept_invitation(&hash, &user, now).await {
                Ok(_) => joined(&state, &o, &user, &email, false),
                Err(AcceptError::Store(e)) => internal_error_page(&e),
                Err(e) => refuse(StatusCode::CONFLICT, format!("{e}.")).await,
            }
        }
        Some("create") => {
            let new = SecretString::from(form.remove("new").unwrap_or_default());
            let confirm = SecretString::from(form.remove("confirm").unwrap_or_default());
            if new.expose_secret() != confirm.expose_secret() {
                return refuse(
                    StatusCode::BAD_REQUEST,
                    "The password and its confirmation differ.".into(),
                )
                .await;
            }
            if let Err(e) = Passwords::check_policy(&new) {
                return refuse(StatusCode::BAD_REQUEST, format!("{e}.")).await;
            }
            let hash_pw = match state.passwords.hash(new).await {
                Ok(h) => h,
                Err(e) => return internal_error_page(&e),
            };
            match state
                .store
                .accept_invitation_as_new_user(&hash, &hash_pw, now)
                .await
            {
                Ok((_, user)) => {
                    let creds = match Email::parse(&user.email) {
                        Ok(e) => state.store.find_user_by_email(&e).await,
                        Err(_) => return internal_error_page(&"stored e-mail does not parse"),
                    };
                    let Ok(Some(creds)) = creds else {
                        return internal_error_page(&"the new account cannot be read back");
                    };
                    if let Err(r) = complete_sign_in(&session, &creds).await {
                        return r;
                    }
                    joined(&state, &o, &creds.user.id, &creds.user.email, true)
                }
                Err(AcceptError::Store(e)) => internal_error_page(&e),
                Err(AcceptError::AccountExists) => {
                    refuse(
                        StatusCode::CONFLICT,
                        "An account with this e-mail address already exists: sign in with it to accept."
                            .into(),
                    )
                    .await
                }
                Err(e) => refuse(StatusCode::CONFLICT, format!("{e}.")).await,
            }
        }
        _ => refuse(StatusCode::BAD_REQUEST, "Choose how to accept.".into()).await,
    }
}

fn joined(
    state: &AppState,
    o: &InvitationOffer,
    user: &UserId,
    email: &str,
    new_account: bool,
) -> Response {
    let org = &o.invitation.organization_id;
    state.audit.record(
        Event::new(
            Some(org),
            Actor::person(user.as_str(), email.to_owned()),
            "member.joined",
        )
        .target(o.invitation.id.as_str())
        .detail("role", o.invitation.role.as_str())
        .detail("new_account", new_account),
    );
    see_other("/account")
}
