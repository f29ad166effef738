//! The sandbox's HTTP surface: Clari's `/v4` endpoints behind a gateway layer that checks the
//! `apikey` header and injects latency and failures, plus `/_sandbox/*` for knobs.

// Helpers answer early with a ready-made Clari error `Response`; it is large, but these are the
// simulator's cold paths and a plain `Response` keeps every handler readable.
#![allow(clippy::result_large_err)]

mod activity;
mod audit;
mod forecast;
mod jobs;
mod opportunity;

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{FromRequestParts, Path, RawQuery, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde_json::{Value, json};

use super::data::OrgData;
use super::jobs::{Module, Refusal};
use super::render::{self, CURRENCIES, ExportTypeKey, ForecastSlice};
use super::{Failure, Knobs, SandboxState};
use crate::clari::types::{ExportFormat, ExportType, JobStatus};

type St = State<Arc<SandboxState>>;

/// The organisation and key of a request's `apikey`, as the gateway layer found them.
#[derive(Debug, Clone, Copy)]
struct Caller {
    org: usize,
    key: usize,
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = <Extension<Caller> as FromRequestParts<S>>::Rejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Extension(caller) = Extension::from_request_parts(parts, state).await?;
        Ok(caller)
    }
}

pub(super) fn router(state: Arc<SandboxState>) -> Router {
    let v4 = Router::new()
        .route(
            "/export/forecast/{forecast_id}",
            post(forecast::create_forecast_export),
        )
        .route("/export/forecast", post(forecast::missing_forecast_id))
        .route("/export/jobs", get(jobs::list_jobs))
        .route(
            "/export/jobs/{job_id}",
            get(jobs::get_job).patch(jobs::cancel_job),
        )
        .route("/export/jobs/{job_id}/results", get(jobs::job_results))
        .route("/admin/limits", get(jobs::admin_limits))
        .route("/export/audit/events", post(audit::create_audit_export))
        .route("/audit/events", get(audit::audit_events))
        .route("/opportunity", get(opportunity::opportunities))
        .route("/export/activity", post(activity::create_activity_export))
        .route_layer(middleware::from_fn_with_state(state.clone(), gateway));
    Router::new()
        .nest("/v4", v4)
        .route("/_sandbox/knobs", get(get_knobs).put(put_knobs))
        .route("/_sandbox/describe", get(describe))
        .route("/_sandbox/stats", get(stats))
        .fallback(no_route)
        .with_state(state)
}

// --- error envelopes --------------------------------------------------------------------------

fn request_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

fn gateway_error(status: StatusCode, message: &str) -> Response {
    (
        status,
        Json(json!({"message": message, "request_id": request_id()})),
    )
        .into_response()
}

fn fcw(
    status: StatusCode,
    code: &str,
    namespace: &str,
    message: impl Into<String>,
    org_id: i64,
) -> Response {
    let mut body = json!({
        "code": code, "namespace": namespace, "errorId": uuid::Uuid::new_v4().to_string(),
        "message": message.into(), "orgId": org_id,
    });
    if code == "export_monthly_quota_reached" {
        body["source"] = json!("Export");
    }
    (status, Json(body)).into_response()
}

fn audit_error(target: &str, message: impl Into<String>) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({"errors": [{"code": "invalid_parameter", "message": message.into(), "target": target, "status": "400", "details": []}]})),
    )
        .into_response()
}

fn opportunity_error(details: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!([{"statusCode": 400, "reaspnPhrase": "Bad Request", "description": "invalid query parameter", "details": details}])),
    )
        .into_response()
}

fn activity_error(org: &OrgData, caller: Caller, message: impl Into<String>) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({
            "code": "Bad request", "namespace": "activity", "errorId": uuid::Uuid::new_v4().simple().to_string(),
            "message": message.into(), "userId": org.users[org.keys[caller.key].user].id, "orgId": org.clari_org_id.to_string(),
        })),
    )
        .into_response()
}

fn sww(org_id: i64) -> Response {
    fcw(
        StatusCode::BAD_REQUEST,
        "SWW",
        "exports",
        "Something went wrong",
        org_id,
    )
}

fn quota_error(knobs: &Knobs, org_id: i64) -> Response {
    fcw(
        StatusCode::BAD_REQUEST,
        "export_monthly_quota_reached",
        "exports",
        format!(
            "The monthly quota limit of {} or concurrent limit of {} has been reached.",
            knobs.monthly_quota, knobs.concurrent_limit
        ),
        org_id,
    )
}

async fn no_route() -> Response {
    gateway_error(StatusCode::NOT_FOUND, "no Route matched with those values")
}

// --- gateway ------------------------------------------------------------------------------------

async fn gateway(State(s): St, mut req: Request, next: Next) -> Response {
    let n = s.requests.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
    let knobs = s.knobs();
    if knobs.request_latency_ms > 0 {
        tokio::time::sleep(Duration::from_millis(knobs.request_latency_ms)).await;
    }
    let injected = s.fail_next.lock().unwrap().pop_front().or_else(|| {
        (knobs.fail_every > 0 && n % u64::from(knobs.fail_every) == 0).then_some(knobs.failure)
    });
    if let Some(f) = injected {
        return match f {
            Failure::RateLimited => {
                let mut r = gateway_error(StatusCode::TOO_MANY_REQUESTS, "API rate limit exceeded");
                r.headers_mut().insert(
                    header::RETRY_AFTER,
                    HeaderValue::from(knobs.retry_after_secs),
                );
                r
            }
            Failure::ServerError => fcw(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal_server_error",
                "exports",
                "An unexpected error occurred.",
                0,
            ),
            Failure::Unavailable => gateway_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "failure to get a peer from the ring-balancer",
            ),
            Failure::Timeout => {
                tokio::time::sleep(Duration::from_millis(knobs.timeout_delay_ms)).await;
                gateway_error(
                    StatusCode::GATEWAY_TIMEOUT,
                    "The upstream server is timing out",
                )
            }
        };
    }
    let Some(key) = req
        .headers()
        .get("apikey")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
    else {
        return gateway_error(StatusCode::UNAUTHORIZED, "No API key found in request");
    };
    if knobs.revoked_keys.iter().any(|k| k == &key) {
        return gateway_error(
            StatusCode::UNAUTHORIZED,
            "Invalid authentication credentials",
        );
    }
    let Some((org, key)) = s.dataset.find_key(&key) else {
        return gateway_error(
            StatusCode::UNAUTHORIZED,
            "Invalid authentication credentials",
        );
    };
    req.extensions_mut().insert(Caller { org, key });
    next.run(req).await
}

// --- helpers ------------------------------------------------------------------------------------

fn query_map(raw: &Option<String>) -> HashMap<String, String> {
    url::form_urlencoded::parse(raw.as_deref().unwrap_or_default().as_bytes())
        .into_owned()
        .collect()
}

fn body_object(body: &Bytes) -> Result<serde_json::Map<String, Value>, String> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Default::default());
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned()),
    }
}

fn as_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn caller_user_id(org: &OrgData, caller: Caller) -> i64 {
    org.users[org.keys[caller.key].user].id.parse().unwrap_or(0)
}

fn date_ms(text: &str) -> Option<i64> {
    crate::clari::client::parse_date(text).map(|s| s * 1000)
}

/// What a new export job will be.
struct JobSpec {
    module: Module,
    file_name: String,
    file_type: &'static str,
    currency: Option<String>,
    result: Vec<u8>,
}

fn create_job(
    s: &SandboxState,
    knobs: &Knobs,
    caller: Caller,
    spec: JobSpec,
) -> Result<String, Response> {
    let org = &s.dataset.orgs[caller.org];
    if knobs.quota_exhausted {
        return Err(quota_error(knobs, org.clari_org_id));
    }
    s.jobs
        .create(
            caller.org,
            caller_user_id(org, caller),
            spec.module,
            spec.file_name,
            spec.file_type,
            spec.currency,
            Duration::from_millis(knobs.job_latency_ms),
            knobs.fail_jobs,
            Bytes::from(spec.result),
            (knobs.concurrent_limit, knobs.monthly_quota),
            s.instant_now(),
            s.now_ms(),
        )
        .map_err(|Refusal::Limit| quota_error(knobs, org.clari_org_id))
}

fn stamp(ms: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp(ms / 1000).unwrap();
    format!(
        "{:04}{:02}{:02}_{:02}{:02}{:02}",
        t.year(),
        t.month() as u8,
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

// --- sandbox controls ---------------------------------------------------------------------------

async fn get_knobs(State(s): St) -> Json<Knobs> {
    Json(s.knobs())
}

/// Merges a partial knobs object onto the current knobs.
async fn put_knobs(State(s): St, body: Bytes) -> Response {
    let patch: Value = match serde_json::from_slice(&body) {
        Ok(v @ Value::Object(_)) => v,
        _ => {
            return (
                StatusCode::BAD_REQUEST,
                Json(json!({"message": "send a JSON object of knobs"})),
            )
                .into_response();
        }
    };
    let mut current = serde_json::to_value(s.knobs()).unwrap();
    for (k, v) in patch.as_object().unwrap() {
        if current.get(k).is_none() {
            return (
                StatusCode::BAD_REQUEST,
                Json(json!({"message": format!("unknown knob '{k}'")})),
            )
                .into_response();
        }
        current[k] = v.clone();
    }
    match serde_json::from_value::<Knobs>(current) {
        Ok(k) => {
            *s.knobs.lock().unwrap() = k.clone();
            Json(k).into_response()
        }
        Err(e) => (
            StatusCode::BAD_REQUEST,
            Json(json!({"message": e.to_string()})),
        )
            .into_response(),
    }
}

async fn describe(State(s): St) -> Json<Value> {
    Json(json!({"base_url": s.base_url, "orgs": super::describe_orgs(&s.dataset)}))
}

/// What the sandbox has served so far, for tests and benchmarks run from outside the process.
async fn stats(State(s): St) -> Json<Value> {
    Json(json!({
        "requests": s.requests.load(std::sync::atomic::Ordering::SeqCst),
        "jobs_created": s.jobs.count(),
        "jobs_cancelled": s.jobs.cancelled(),
        "peak_running_jobs": s.jobs.peak_running(),
    }))
}
