//! Running an organisation without shell access: `/api/v1` and the account and admin pages.

mod api;
mod consent;
mod pages;

use clari_mcp::store::{Email, Role, UserId};
use reqwest::Method;
use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::{TestApp, TestDb};
use crate::mcp_helpers::{call_tool, mcp_env, rpc};
use crate::oauth_helpers::PASSWORD;

/// One `/api/v1` call with a bearer token and an optional JSON body: status and JSON answer.
async fn api(
    app: &TestApp,
    token: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = app.http.request(method, app.url(path)).bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}
