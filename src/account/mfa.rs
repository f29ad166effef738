//! `/account/mfa`: a person turns two-step sign-in (TOTP, RFC 6238) on or off for their own
//! account. Turning it on shows a new secret for their authenticator app, proves it with a
//! code, and shows ten recovery codes once; turning it off needs a current code.

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use tower_sessions::Session;

use crate::audit::{Actor, Event};
use crate::crypto::totp;
use crate::state::AppState;
use crate::web::console::{Console, Enrolling, Nav};
use crate::web::extract::Posted;
use crate::web::{self, internal_error_page, render, see_other};

const ENROL_KEY: &str = "totp-enrolment";
/// How long a secret shown for enrolment can be confirmed.
const ENROL_TTL: i64 = 15 * 60;

/// A secret shown but not yet confirmed (hex, in the server-side session only).
#[derive(serde::Serialize, serde::Deserialize)]
struct Enrolment {
    secret_hex: String,
    until: i64,
}

fn hex_decode(text: &str) -> Option<zeroize::Zeroizing<Vec<u8>>> {
    text.len().is_multiple_of(2).then_some(())?;
    let bytes: Option<Vec<u8>> = (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect();
    bytes.map(zeroize::Zeroizing::new)
}

#[derive(Template)]
#[template(path = "mfa.html")]
struct MfaPage {
    nav: Nav,
    enabled: bool,
    codes_left: i64,
    secret: String,
    uri: String,
    required_here: bool,
}

#[derive(Template)]
#[template(path = "mfa_codes.html")]
struct CodesPage {
    nav: Nav,
    codes: Vec<String>,
}

pub async fn page(
    State(state): State<AppState>,
    session: Session,
    Enrolling(c): Enrolling,
) -> Response {
    let (record, required_here) = match (
        state.store.totp_of(&c.user).await,
        state.store.require_admin_mfa(&c.org.id).await,
    ) {
        (Ok(r), Ok(q)) => (r, q),
        (Err(e), _) | (_, Err(e)) => return internal_error_page(&e),
    };
    let nav = c.nav(&session, "account", "/account").await;
    if record.is_some() {
        let left = match state.store.recovery_codes_left(&c.user).await {
            Ok(n) => n,
            Err(e) => return internal_error_page(&e),
        };
        return render(
            StatusCode::OK,
            &MfaPage {
                nav,
                enabled: true,
                codes_left: left,
                secret: String::new(),
                uri: String::new(),
                required_here,
            },
        );
    }
    // The same secret until it is confirmed or expires, so a reload does not break the app's
    // pairing.
    let now = state.now();
    let kept: Option<Enrolment> = session.get(ENROL_KEY).await.ok().flatten();
    let secret = match kept
        .filter(|e| e.until > now)
        .and_then(|e| hex_decode(&e.secret_hex))
    {
        Some(s) => s,
        None => {
            let s = totp::new_secret();
            let e = Enrolment {
                secret_hex: crate::crypto::token::hex(&s),
                until: now + ENROL_TTL,
            };
            if session.insert(ENROL_KEY, &e).await.is_err() {
                return internal_error_page(&"the session could not be updated");
            }
            s
        }
    };
    render(
        StatusCode::OK,
        &MfaPage {
            nav,
            enabled: false,
            codes_left: 0,
            secret: totp::base32(&secret),
            uri: totp::otpauth_uri(&secret, "clari-mcp", &c.email),
            required_here,
        },
    )
}

fn audit(state: &AppState, c: &Console, action: &'static str) {
    state.audit.record(Event::new(
        None,
        Actor::person(c.user.as_str(), c.email.clone()),
        action,
    ));
}

/// `POST /account/mfa`: the account's password and a code from the app for the shown secret
/// turn the factor on; the recovery codes are shown once. A factor already on is not replaced
/// here (turn it off first, with a code of it).
pub async fn enable(
    State(state): State<AppState>,
    session: Session,
    Posted {
        by: Enrolling(c),
        form: mut f,
    }: Posted<Enrolling>,
) -> Response {
    let now = state.now();
    match state.store.totp_of(&c.user).await {
        Ok(None) => {}
        Ok(Some(_)) => {
            web::flash(&session, true, "Two-step sign-in is already on.").await;
            return see_other("/account/mfa");
        }
        Err(e) => return internal_error_page(&e),
    }
    // A session alone does not change how the account signs in: the password too.
    let password = secrecy::SecretString::from(f.remove("password").unwrap_or_default());
    let hash = match state.store.find_user_by_id(&c.user).await {
        Ok(Some(u)) => u.password_hash,
        Ok(None) => return see_other("/login"),
        Err(e) => return internal_error_page(&e),
    };
    if !state
        .passwords
        .verify(password, Some(hash))
        .await
        .unwrap_or(false)
    {
        web::flash(&session, true, "The password is not right.").await;
        return see_other("/account/mfa");
    }
    let kept: Option<Enrolment> = session.get(ENROL_KEY).await.ok().flatten();
    let Some(secret) = kept
        .filter(|e| e.until > now)
        .and_then(|e| hex_decode(&e.secret_hex))
    else {
        web::flash(
            &session,
            true,
            "The setup expired: scan the new secret and try again.",
        )
        .await;
        return see_other("/account/mfa");
    };
    let code = f.get("code").map(String::as_str).unwrap_or_default();
    let Some(step) = totp::matching_step(&secret, code, now) else {
        web::flash(
            &session,
            true,
            "That code does not match: check the app's clock and enter the current code.",
        )
        .await;
        return see_other("/account/mfa");
    };
    let codes = totp::new_recovery_codes();
    let digests: Vec<String> = codes.iter().map(|c| totp::recovery_digest(c)).collect();
    let sealed = state.vault.seal(&secret);
    if let Err(e) = state
        .store
        .enable_totp(
            &c.user,
            (&sealed.ciphertext, &sealed.key_id),
            step,
            &digests,
            now,
        )
        .await
    {
        return internal_error_page(&e);
    }
    let _ = session.remove_value(ENROL_KEY).await;
    audit(&state, &c, "user.mfa_enabled");
    let nav = c.nav(&session, "account", "/account").await;
    render(StatusCode::OK, &CodesPage { nav, codes })
}

/// `POST /account/mfa/disable`: needs a current code (or a recovery code).
pub async fn disable(
    State(state): State<AppState>,
    session: Session,
    Posted {
        by: Enrolling(c),
        form: f,
    }: Posted<Enrolling>,
) -> Response {
    match web::mfa::spend_code_try(&state, &c.user, state.now()).await {
        Ok(true) => {}
        Ok(false) => {
            web::flash(
                &session,
                true,
                "Too many codes for this account; try again in 15 minutes.",
            )
            .await;
            return see_other("/account/mfa");
        }
        Err(e) => return internal_error_page(&e),
    }
    let code = f.get("code").map(String::as_str).unwrap_or_default();
    match web::mfa::verify_second_factor(&state, &c.user, code, state.now()).await {
        Ok(Ok(_)) => {}
        Ok(Err(_)) => {
            web::flash(
                &session,
                true,
                "That code is not right; two-step sign-in stays on.",
            )
            .await;
            return see_other("/account/mfa");
        }
        Err(e) => return internal_error_page(&e),
    }
    if let Err(e) = state.store.disable_totp(&c.user).await {
        return internal_error_page(&e);
    }
    audit(&state, &c, "user.mfa_disabled");
    web::flash(&session, false, "Two-step sign-in is off.").await;
    see_other("/account/mfa")
}
