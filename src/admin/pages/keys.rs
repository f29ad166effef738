//! The pieces of an API-key form that the account page and the organisation's access page share:
//! the ticked scopes, the expiry in days, and the page that shows a new key once.

use std::collections::HashMap;

use askama::Template;
use axum::http::StatusCode;
use axum::response::Response;
use secrecy::{ExposeSecret, SecretString};

use crate::admin::service::AdminError;
use crate::scope::{Scope, ScopeSet};
use crate::store::ApiKey;
use crate::web::console::Nav;
use crate::web::render;

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
