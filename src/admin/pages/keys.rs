//! What the account page and the organisation's access page share: the rows of connected
//! applications and API keys they list, and the pieces of the API-key form (the ticked scopes,
//! the expiry in days, and the page that shows a new key once).

use std::collections::HashMap;

use askama::Template;
use axum::http::StatusCode;
use axum::response::Response;
use secrecy::{ExposeSecret, SecretString};

use crate::admin::service::AdminError;
use crate::scope::{Scope, ScopeSet};
use crate::store::{ApiKey, GrantView};
use crate::web::console::Nav;
use crate::web::{render, when};

/// A connected application as a row: `whose` is its organisation on the account page and its
/// member on the access page.
pub struct GrantRow {
    pub id: String,
    pub client_name: String,
    pub redirect_host: String,
    pub whose: String,
    pub scope: String,
    pub since: String,
    pub last_used: String,
}

impl GrantRow {
    pub fn new(g: &GrantView, whose: &str) -> Self {
        GrantRow {
            id: g.grant.id.to_string(),
            client_name: g.client_name.clone(),
            redirect_host: g.redirect_host.clone(),
            whose: whose.to_owned(),
            scope: g.grant.scope.to_string(),
            since: when(g.grant.created_at),
            last_used: g.last_used_at.map(when).unwrap_or_else(never),
        }
    }
}

/// An API key as a row: `whose` is its organisation on the account page and its member on the
/// access page.
pub struct KeyRow {
    pub id: String,
    pub name: String,
    pub whose: String,
    pub hint: String,
    pub scope: String,
    pub created: String,
    pub expires: String,
    pub last_used: String,
}

impl KeyRow {
    pub fn new(k: &ApiKey, whose: &str) -> Self {
        KeyRow {
            id: k.id.to_string(),
            name: k.name.clone(),
            whose: whose.to_owned(),
            hint: format!("cmk_…{}", k.key_hint),
            scope: k.scopes.to_string(),
            created: when(k.created_at),
            expires: k.expires_at.map(when).unwrap_or_else(never),
            last_used: k.last_used_at.map(when).unwrap_or_else(never),
        }
    }
}

fn never() -> String {
    "never".to_owned()
}

#[derive(Template)]
#[template(path = "key_created.html")]
struct KeyCreatedPage {
    nav: Nav,
    key: String,
    name: String,
    organization_name: String,
    scope: String,
    back: &'static str,
}

/// The page that shows a new key, once.
pub fn key_created(
    nav: Nav,
    secret: &SecretString,
    key: &ApiKey,
    organization_name: &str,
    back: &'static str,
) -> Response {
    render(
        StatusCode::CREATED,
        &KeyCreatedPage {
            nav,
            key: secret.expose_secret().to_owned(),
            name: key.name.clone(),
            organization_name: organization_name.to_owned(),
            scope: key.scopes.to_string(),
            back,
        },
    )
}

/// Checked scope boxes (`scope_<name>`) of a form.
pub fn ticked_scopes(f: &HashMap<String, String>) -> ScopeSet {
    Scope::ALL
        .into_iter()
        .filter(|s| f.contains_key(&format!("scope_{}", s.as_str())))
        .collect()
}

/// `expires_days` of a form: empty for never, else 1 to 3650 days from now.
pub fn expiry(f: &HashMap<String, String>, now: i64) -> Result<Option<i64>, AdminError> {
    match f
        .get("expires_days")
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
    {
        None => Ok(None),
        Some(d) => match d.parse::<i64>() {
            Ok(n) if (1..=3650).contains(&n) => Ok(Some(now + n * 86_400)),
            _ => Err(AdminError::invalid(
                "expires_days",
                "the expiry must be a whole number of days from 1 to 3650, or empty for never",
            )),
        },
    }
}
