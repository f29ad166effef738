//! Running an organisation without shell access: the account pages every signed-in person has,
//! the admin pages (`/admin`), the admin REST API (`/api/v1`) and the activity dashboard. All of
//! them act through [`service::OrgAdmin`], so each rule holds whichever door was used.

pub mod activity;
pub mod api;
pub mod pages;
pub mod service;

pub use service::{AdminError, OrgAdmin};

use axum::Router;

use crate::state::AppState;

/// Every route of this module.
pub fn router() -> Router<AppState> {
    Router::new().merge(api::router()).merge(pages::router())
}
