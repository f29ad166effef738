//! `/api/v1/kill-switch`: disable the organisation and revoke everything it handed out, at once. The
//! answer is the [`KillReport`](crate::governance::KillReport), which is already the wire shape.

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use serde::Deserialize;

use super::edge::{json_body, ok};
use super::{ApiResult, Caller};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KillRequest {
    reason: String,
    confirm: String,
}

pub(super) async fn kill(caller: Caller, headers: HeaderMap, body: Bytes) -> ApiResult {
    let admin = caller.admin().await?;
    let req: KillRequest = json_body(&headers, &body)?;
    let report = admin.kill(&req.reason, &req.confirm).await?;
    Ok(ok(StatusCode::OK, report))
}
