//! How an organisation's people sign in, as its admins set it from the console: the single
//! sign-on connection to the company's OpenID provider, the two-step rule for admins, and the
//! SCIM tokens its directory provisions with. The same service the API and the CLI use.

use std::collections::HashMap;

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use secrecy::{ExposeSecret, SecretString};
use tower_sessions::Session;

use super::{AdminPost, acting, after, when};
use crate::admin::service::{SettingsChange, SsoChange, SsoSettings};
use crate::state::AppState;
use crate::web::console::{AdminConsole, Nav};
use crate::web::{internal_error_page, render};

const BACK: &str = "/admin/sign-in";

struct ScimRow {
    id: String,
    name: String,
    created: String,
    last_used: String,
}

#[derive(Template)]
#[template(path = "admin_signin.html")]
struct SignInPage {
    nav: Nav,
    sso: Option<SsoSettings>,
    /// What to register at the provider before a connection exists.
    redirect_uri: String,
    domains: String,
    require_admin_mfa: bool,
    require_dpop: bool,
    scim_base_url: String,
    scim_tokens: Vec<ScimRow>,
}

/// `GET /admin/sign-in`.
pub async fn page(
    State(state): State<AppState>,
    session: Session,
    AdminConsole(c): AdminConsole,
) -> Response {
    let admin = acting(&state, &c, Default::default());
    let (sso, settings, tokens) =
        match tokio::try_join!(admin.sso(), admin.settings(), admin.scim_tokens()) {
            Ok(all) => all,
            Err(e) => return internal_error_page(&e),
        };
    let scim_tokens = tokens
        .into_iter()
        .map(|t| ScimRow {
            id: t.id,
            name: t.name,
            created: when(t.created_at),
            last_used: t.last_used_at.map_or_else(|| "never".to_owned(), when),
        })
        .collect();
    let nav = c.nav(&session, "sign-in", BACK).await;
    render(
        StatusCode::OK,
        &SignInPage {
            nav,
            domains: sso
                .as_ref()
                .map(|s| s.domains.join(", "))
                .unwrap_or_default(),
            sso,
            redirect_uri: format!("{}{}", state.config.public_url, crate::sso::CALLBACK_PATH),
            require_admin_mfa: settings.require_admin_mfa,
            require_dpop: settings.require_dpop,
            scim_base_url: format!("{}/scim/v2/{}", state.config.public_url, c.org.slug),
            scim_tokens,
        },
    )
}

/// The text of an optional field: `None` when absent or blank.
fn field(f: &HashMap<String, String>, name: &str) -> Option<String> {
    f.get(name)
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

/// `POST /admin/sign-in/sso`: creates or replaces the connection. A blank secret keeps the
/// stored one (the field is write-only and never filled in).
pub async fn set_sso(State(state): State<AppState>, mut p: AdminPost) -> Response {
    let client_secret = p
        .form
        .remove("client_secret")
        .filter(|s| !s.is_empty())
        .map(SecretString::from);
    let f = &p.form;
    let domains = f
        .get("domains")
        .map(|d| {
            d.split(|c: char| c == ',' || c.is_whitespace())
                .filter(|d| !d.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    let change = SsoChange {
        issuer: field(f, "issuer").unwrap_or_default(),
        client_id: field(f, "client_id").unwrap_or_default(),
        client_secret,
        domains,
        groups_claim: field(f, "groups_claim"),
        admin_group: field(f, "admin_group"),
        member_group: field(f, "member_group"),
        required: f.get("required").is_some_and(|v| v == "on"),
    };
    let outcome = p.admin(&state).set_sso(change).await.map(|s| {
        format!(
            "Single sign-on saved: people of {} sign in with {}{}.",
            s.domains.join(", "),
            s.issuer,
            if s.required {
                ", and only that way"
            } else {
                ""
            }
        )
    });
    after(&p.session, BACK, outcome).await
}

/// `POST /admin/sign-in/sso/delete`: people go back to passwords (and invitations).
pub async fn delete_sso(State(state): State<AppState>, p: AdminPost) -> Response {
    let outcome = p.admin(&state).delete_sso().await;
    let said = "Single sign-on removed: members sign in with a password again.";
    p.ended(BACK, outcome, said).await
}

/// A switch of the organisation's sign-in rules, as one checkbox of the Sign-in page.
#[derive(Clone, Copy)]
enum Switch {
    /// Admins must use a second factor.
    AdminMfa,
    /// Every token of the organisation's clients must be DPoP-bound (RFC 9449).
    Dpop,
}

impl Switch {
    fn field(self) -> &'static str {
        match self {
            Self::AdminMfa => "require_admin_mfa",
            Self::Dpop => "require_dpop",
        }
    }

    fn change(self, on: bool) -> SettingsChange {
        match self {
            Self::AdminMfa => SettingsChange {
                require_admin_mfa: Some(on),
                ..SettingsChange::default()
            },
            Self::Dpop => SettingsChange {
                require_dpop: Some(on),
                ..SettingsChange::default()
            },
        }
    }

    fn said(self, on: bool) -> &'static str {
        match (self, on) {
            (Self::AdminMfa, true) => {
                "Admins now need two-step sign-in: those without it are sent to set it up."
            }
            (Self::AdminMfa, false) => "Two-step sign-in is now each admin's choice.",
            (Self::Dpop, true) => {
                "Every token of this organisation's clients must now be DPoP-bound: tokens without a key stop on their next call."
            }
            (Self::Dpop, false) => "DPoP is now each client's choice.",
        }
    }
}

/// Sets one switch from the posted checkbox.
async fn set_switch(state: AppState, p: AdminPost, switch: Switch) -> Response {
    let on = p.form.get(switch.field()).is_some_and(|v| v == "on");
    let admin = p.admin(&state);
    let outcome = match admin.settings().await {
        Ok(seen) => admin
            .update_settings(&seen, switch.change(on))
            .await
            .map(|_| switch.said(on).to_owned()),
        Err(e) => Err(e),
    };
    after(&p.session, BACK, outcome).await
}

/// `POST /admin/sign-in/two-step`: whether the organisation's admins must use a second factor.
pub async fn set_two_step(State(state): State<AppState>, p: AdminPost) -> Response {
    set_switch(state, p, Switch::AdminMfa).await
}

/// `POST /admin/sign-in/dpop`: whether every token of the organisation's clients must be
/// DPoP-bound (RFC 9449).
pub async fn set_dpop(State(state): State<AppState>, p: AdminPost) -> Response {
    set_switch(state, p, Switch::Dpop).await
}

#[derive(Template)]
#[template(path = "scim_token_created.html")]
struct ScimTokenCreatedPage {
    nav: Nav,
    name: String,
    token: String,
    base_url: String,
}

/// `POST /admin/sign-in/scim-tokens`: the token is on this answer only.
pub async fn create_scim_token(State(state): State<AppState>, p: AdminPost) -> Response {
    let name = p.form.get("name").map(String::as_str).unwrap_or_default();
    match p.admin(&state).create_scim_token(name).await {
        Ok((secret, token)) => {
            let nav = p.c.nav(&p.session, "sign-in", BACK).await;
            render(
                StatusCode::CREATED,
                &ScimTokenCreatedPage {
                    nav,
                    name: token.name,
                    token: secret.expose_secret().to_owned(),
                    base_url: format!("{}/scim/v2/{}", state.config.public_url, p.c.org.slug),
                },
            )
        }
        Err(e) => after(&p.session, BACK, Err(e)).await,
    }
}
