//! The step that makes a person replace a password somebody else chose (an admin, before
//! invitations existed) before anything else: right after the password is checked, and before
//! the second factor.

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use secrecy::{ExposeSecret, SecretString};
use tower_sessions::Session;

use super::extract::CsrfForm;
use super::login::{HalfSignedIn, complete_sign_in, continue_after_sign_in};
use super::{csrf_token, render, see_other};
use crate::audit::{Actor, Event};
use crate::crypto::Passwords;
use crate::state::AppState;
use crate::store::{Email, UserCredentials};

const PASSWORD_CHANGE_KEY: &str = "password-change";
/// How long the new-password form stays valid after the old password was proven.
const PASSWORD_CHANGE_TTL: i64 = 10 * 60;

#[derive(Template)]
#[template(path = "new_password.html")]
struct NewPasswordPage {
    csrf: String,
    email: String,
    error: Option<String>,
}

pub(super) async fn begin(
    state: &AppState,
    session: &Session,
    creds: &UserCredentials,
    rid: Option<String>,
    next: Option<String>,
) -> Response {
    let until = state.now() + PASSWORD_CHANGE_TTL;
    let key = PASSWORD_CHANGE_KEY;
    let pending = match HalfSignedIn::stash(session, key, creds, (rid, next), until).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    new_password_page(session, StatusCode::OK, &pending.email, None).await
}

async fn new_password_page(
    session: &Session,
    status: StatusCode,
    email: &str,
    error: Option<String>,
) -> Response {
    let csrf = csrf_token(session).await;
    render(
        status,
        &NewPasswordPage {
            csrf,
            email: email.to_owned(),
            error,
        },
    )
}

/// `POST /login/new-password`: the person replaces the password somebody else chose, then is
/// signed in; every other browser session of theirs is signed out.
pub async fn post_new_password(
    State(state): State<AppState>,
    session: Session,
    CsrfForm(mut form): CsrfForm,
) -> Response {
    let Some(pending) = HalfSignedIn::pending(&session, PASSWORD_CHANGE_KEY, state.now()).await
    else {
        return see_other("/login");
    };
    let new = SecretString::from(form.remove("new").unwrap_or_default());
    let confirm = SecretString::from(form.remove("confirm").unwrap_or_default());
    if new.expose_secret() != confirm.expose_secret() {
        let why = "The new password and its confirmation differ.".to_owned();
        return new_password_page(&session, StatusCode::BAD_REQUEST, &pending.email, Some(why))
            .await;
    }
    if let Err(e) = Passwords::check_policy(&new) {
        return new_password_page(
            &session,
            StatusCode::BAD_REQUEST,
            &pending.email,
            Some(format!("{e}.")),
        )
        .await;
    }
    let outcome = async {
        let email = Email::parse(&pending.email).map_err(|e| e.to_string())?;
        let creds = state
            .store
            .find_user_by_email(&email)
            .await
            .map_err(|e| e.to_string())?
            .filter(|c| {
                c.user.id.as_str() == pending.user_id
                    && c.session_epoch == pending.epoch
                    && !c.user.disabled
            })
            .ok_or("the account changed meanwhile")?;
        let hash = state.passwords.hash(new).await.map_err(|e| e.to_string())?;
        state
            .store
            .set_user_password(&creds.user.id, &hash, false)
            .await
            .map_err(|e| e.to_string())?;
        let epoch = state
            .store
            .bump_session_epoch(&creds.user.id)
            .await
            .map_err(|e| e.to_string())?;
        Ok::<_, String>(UserCredentials {
            session_epoch: epoch,
            must_change_password: false,
            ..creds
        })
    }
    .await;
    let creds = match outcome {
        Ok(c) => c,
        Err(_) => {
            let _ = session.remove_value(PASSWORD_CHANGE_KEY).await;
            return see_other("/login");
        }
    };
    let _ = session.remove_value(PASSWORD_CHANGE_KEY).await;
    if creds.mfa_enabled {
        return super::mfa::begin(&state, &session, &creds, pending.rid, pending.next).await;
    }
    if let Err(r) = complete_sign_in(&session, &creds).await {
        return r;
    }
    state.audit.record(
        Event::new(
            None,
            Actor::person(creds.user.id.as_str(), creds.user.email.clone()),
            "user.password_changed",
        )
        .detail("reason", "set by someone else"),
    );
    state.metrics.signin("success");
    continue_after_sign_in(pending.rid, pending.next)
}
