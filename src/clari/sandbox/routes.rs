//! The sandbox's HTTP surface: Clari's `/v4` endpoints behind a gateway layer that checks the
//! `apikey` header and injects latency and failures, plus `/_sandbox/*` for knobs.

// Helpers answer early with a ready-made Clari error `Response`; it is large, but these are the
// simulator's cold paths and a plain `Response` keeps every handler readable.
#![allow(clippy::result_large_err)]

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, Request, State};
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

#[derive(Debug, Clone, Copy)]
struct Caller {
    org: usize,
    key: usize,
}

pub(super) fn router(state: Arc<SandboxState>) -> Router {
    let v4 = Router::new()
        .route(
            "/export/forecast/{forecast_id}",
            post(create_forecast_export),
        )
        .route("/export/forecast", post(missing_forecast_id))
        .route("/export/jobs", get(list_jobs))
        .route("/export/jobs/{job_id}", get(get_job).patch(cancel_job))
        .route("/export/jobs/{job_id}/results", get(job_results))
        .route("/admin/limits", get(admin_limits))
        .route("/export/audit/events", post(create_audit_export))
        .route("/audit/events", get(audit_events))
        .route("/opportunity", get(opportunities))
        .route("/export/activity", post(create_activity_export))
        .route_layer(middleware::from_fn_with_state(state.clone(), gateway));
    Router::new()
        .nest("/v4", v4)
        .route("/_sandbox/knobs", get(get_knobs).put(put_knobs))
        .route("/_sandbox/describe", get(describe))
        .fallback(no_route)
        .with_state(state)
}

// --- the sandbox's own clock: the dataset's "now" moving with real time ----------------------

impl SandboxState {
    fn now_ms(&self) -> i64 {
        (self.dataset.now.unix_timestamp_nanos() / 1_000_000) as i64
            + self.started.elapsed().as_millis() as i64
    }
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
            Instant::now(),
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

// --- forecast export ----------------------------------------------------------------------------

async fn missing_forecast_id(State(s): St, Extension(caller): Extension<Caller>) -> Response {
    let org_id = s.dataset.orgs[caller.org].clari_org_id;
    fcw(
        StatusCode::BAD_REQUEST,
        "missing_forecast_id",
        "fcw",
        "The forecastId query parameter is required.",
        org_id,
    )
}

async fn create_forecast_export(
    State(s): St,
    Extension(caller): Extension<Caller>,
    Path(forecast_id): Path<String>,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Response {
    let org = &s.dataset.orgs[caller.org];
    let org_id = org.clari_org_id;
    let knobs = s.knobs();
    let bad = |m: String| fcw(StatusCode::BAD_REQUEST, "bad_request", "fcw", m, org_id);
    let body = match body_object(&body) {
        Ok(b) => b,
        Err(text) => return bad(format!("The request body was malformed: {text}")),
    };
    let query = query_map(&raw);
    let param = |k: &str| {
        body.get(k)
            .cloned()
            .or_else(|| query.get(k).map(|v| Value::String(v.clone())))
    };

    let Some(forecast) = org.forecast(&forecast_id) else {
        return fcw(
            StatusCode::BAD_REQUEST,
            "no_such_forecast_config",
            "fcw",
            format!("Forecast {forecast_id} does not exist in the ForecastTemplate."),
            org_id,
        );
    };

    let requested_types: Vec<String> = match param("typesToExport") {
        None | Some(Value::Null) => vec!["forecast".into(), "forecast_updated".into()],
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| as_text(v).unwrap_or_else(|| v.to_string()))
            .collect(),
        Some(Value::String(s)) => s
            .split(',')
            .map(|t| t.trim().to_owned())
            .filter(|t| !t.is_empty())
            .collect(),
        Some(other) => vec![other.to_string()],
    };
    let invalid: Vec<&String> = requested_types
        .iter()
        .filter(|t| ExportType::parse(t).is_none())
        .collect();
    if !invalid.is_empty() {
        return bad(format!(
            "The following typesToExport values are invalid: {}",
            serde_json::to_string(&invalid).unwrap()
        ));
    }
    let types: BTreeSet<ExportTypeKey> = requested_types
        .iter()
        .filter_map(|t| ExportType::parse(t))
        .map(Into::into)
        .collect();
    if !knobs.crm_types_supported
        && requested_types
            .iter()
            .any(|t| t == "crm_total" || t == "crm_closed")
    {
        return fcw(
            StatusCode::BAD_REQUEST,
            "type_not_supported",
            "fcw",
            "CRM Totals and CRM Closed are not supported typeToExport values for Export API. Please refer to the Forecast API documentation.",
            org_id,
        );
    }

    let currency = match param("currency").as_ref().and_then(as_text) {
        None => CURRENCIES[0],
        Some(c) => match CURRENCIES.iter().find(|(code, _, _)| *code == c) {
            Some(found) => *found,
            None => return bad("The currency parameter is invalid.".into()),
        },
    };
    let format = match param("exportFormat").as_ref().and_then(as_text).as_deref() {
        None | Some("JSON") => ExportFormat::Json,
        Some("CSV") => ExportFormat::Csv,
        Some(other) => return bad(format!("The exportFormat parameter is invalid: {other}")),
    };
    match param("schedule").as_ref().and_then(as_text).as_deref() {
        None | Some("NONE" | "ONCE" | "MAX") => {}
        Some(other) => return bad(format!("The schedule parameter is invalid: {other}")),
    }
    let historical = match param("includeHistorical") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => b,
        Some(Value::String(s)) if s == "true" || s == "false" => s == "true",
        Some(other) => {
            return bad(format!(
                "The includeHistorical parameter is invalid: {other}"
            ));
        }
    };

    let visible = org.keys[caller.key].user;
    let root = match param("scopeId").as_ref().and_then(as_text) {
        None => visible,
        Some(scope) => match org.user_by_scope(&scope) {
            Some(u) if org.is_within(u, visible) => u,
            _ => {
                return fcw(
                    StatusCode::UNAUTHORIZED,
                    "no_optin",
                    "fcw",
                    format!("No optins for scope {scope} for forecast '{forecast_id}'."),
                    org_id,
                );
            }
        },
    };
    // Quirk kept on purpose: an unknown or empty period silently means the current quarter.
    let period = param("timePeriod")
        .as_ref()
        .and_then(as_text)
        .and_then(|p| org.period(&p))
        .unwrap_or_else(|| org.current_period());

    let slice = ForecastSlice {
        org,
        forecast,
        period,
        root,
        types,
        historical,
        currency,
        format,
    };
    let result = slice.render();
    let now_ms = s.now_ms();
    let (ext, file_type) = if format == ExportFormat::Csv {
        ("csv", "CSV")
    } else {
        ("json", "JSON")
    };
    let file_name = format!(
        "clari_export_{forecast_id}_{}{}_{}.{ext}",
        org.periods[period].id,
        org.users[root].id,
        stamp(now_ms)
    );
    match create_job(
        &s,
        &knobs,
        caller,
        JobSpec {
            module: Module::Forecast,
            file_name,
            file_type,
            currency: Some(currency.0.to_owned()),
            result,
        },
    ) {
        Ok(job_id) => (StatusCode::OK, Json(json!({"jobId": job_id}))).into_response(),
        Err(r) => r,
    }
}

// --- jobs ---------------------------------------------------------------------------------------

async fn list_jobs(State(s): St, Extension(caller): Extension<Caller>) -> Response {
    let org = &s.dataset.orgs[caller.org];
    let now = Instant::now();
    let jobs: Vec<Value> = s
        .jobs
        .list(caller.org, caller_user_id(org, caller))
        .iter()
        .map(|j| j.to_json(now, org.clari_org_id))
        .collect();
    Json(jobs).into_response()
}

async fn get_job(
    State(s): St,
    Extension(caller): Extension<Caller>,
    Path(job_id): Path<String>,
) -> Response {
    let org = &s.dataset.orgs[caller.org];
    let Some(job) = s.jobs.get(caller.org, caller_user_id(org, caller), &job_id) else {
        return sww(org.clari_org_id);
    };
    let body = job.to_json(Instant::now(), org.clari_org_id);
    if s.knobs().wrap_job_envelope {
        Json(json!({"job": body})).into_response()
    } else {
        Json(body).into_response()
    }
}

async fn cancel_job(
    State(s): St,
    Extension(caller): Extension<Caller>,
    Path(job_id): Path<String>,
    body: Bytes,
) -> Response {
    let org = &s.dataset.orgs[caller.org];
    let org_id = org.clari_org_id;
    match body_object(&body) {
        Ok(b) if b.get("type").and_then(Value::as_str) == Some("CANCEL") => {}
        _ => {
            return fcw(
                StatusCode::BAD_REQUEST,
                "bad_request",
                "exports",
                "The request body must be {\"type\":\"CANCEL\"}.",
                org_id,
            );
        }
    }
    match s.jobs.cancel(
        caller.org,
        caller_user_id(org, caller),
        &job_id,
        Instant::now(),
        s.now_ms(),
    ) {
        None => sww(org_id),
        Some(Ok(status)) => {
            Json(json!({"status": status.as_str(), "successful": true})).into_response()
        }
        Some(Err(_)) => fcw(
            StatusCode::BAD_REQUEST,
            "export_failed_to_cancel",
            "exports",
            "Cannot cancel the job because it already finished executing.",
            org_id,
        ),
    }
}

async fn job_results(
    State(s): St,
    Extension(caller): Extension<Caller>,
    Path(job_id): Path<String>,
) -> Response {
    let org = &s.dataset.orgs[caller.org];
    let org_id = org.clari_org_id;
    let user = caller_user_id(org, caller);
    let file_type = s.jobs.get(caller.org, user, &job_id).map(|j| j.file_type);
    match s.jobs.download(caller.org, user, &job_id, Instant::now()) {
        None => sww(org_id),
        Some(Ok(bytes)) => {
            let ct = if file_type == Some("CSV") {
                "text/csv; charset=utf-8"
            } else {
                "application/json"
            };
            ([(header::CONTENT_TYPE, ct)], bytes).into_response()
        }
        Some(Err(JobStatus::Failed | JobStatus::Cancelled | JobStatus::Aborted)) => fcw(
            StatusCode::BAD_REQUEST,
            "invalid_jobId",
            "exports",
            "Cannot retrieve data for job because it did not complete.",
            org_id,
        ),
        Some(Err(_)) => fcw(
            StatusCode::BAD_REQUEST,
            "invalid_jobId",
            "exports",
            "Cannot retrieve data for job because it has not finished executing.",
            org_id,
        ),
    }
}

async fn admin_limits(State(s): St, Extension(caller): Extension<Caller>) -> Response {
    let knobs = s.knobs();
    let usage = s.jobs.usage(caller.org, Instant::now(), s.now_ms());
    let mut jobs = json!({
        "concurrentLimit": knobs.concurrent_limit,
        "availableConcurrentLimit": i64::from(knobs.concurrent_limit) - usage.running.len() as i64,
        "monthlyQuota": knobs.monthly_quota,
        // An exhausted quota (the knob) reads as none left, as Clari's own counters would.
        "availableMonthlyQuota": if knobs.quota_exhausted {
            0
        } else {
            i64::from(knobs.monthly_quota) - usage.submitted.len() as i64
        },
        "submittedJobIds": usage.submitted,
    });
    if !usage.running.is_empty() {
        jobs["runningJobIds"] = json!(usage.running);
    }
    Json(json!({"jobs": jobs})).into_response()
}

// --- audit --------------------------------------------------------------------------------------

struct AuditFilter {
    from_ms: i64,
    to_ms: i64,
    actor: Option<String>,
    session_id: Option<String>,
    session_type: Option<String>,
    event: Option<String>,
}

const RETENTION_MS: i64 = 30 * 86_400_000;

fn audit_filter(
    get: impl Fn(&str) -> Option<String>,
    now_ms: i64,
) -> Result<AuditFilter, Response> {
    let int = |k: &str| -> Result<Option<i64>, Response> {
        get(k)
            .map(|v| {
                v.parse::<i64>()
                    .map_err(|_| audit_error(k, format!("{k} must be an integer")))
            })
            .transpose()
    };
    let actor = int("actorId")?.map(|a| a.to_string());
    int("impersonatingActorId")?;
    let session_type = get("sessionType");
    if let Some(t) = &session_type
        && !["WEB", "IOS", "ANDROID"].contains(&t.as_str())
    {
        return Err(audit_error(
            "sessionType",
            "sessionType must be one of WEB, IOS, ANDROID",
        ));
    }
    let date = |k: &str, default: i64| -> Result<i64, Response> {
        match get(k) {
            None => Ok(default),
            Some(v) => date_ms(&v).ok_or_else(|| {
                audit_error(k, format!("{k} must be an RFC 3339 date-time or a date"))
            }),
        }
    };
    let from_ms = date("dateFrom", now_ms - RETENTION_MS)?;
    let to_ms = date("dateTo", now_ms)?;
    if from_ms > to_ms {
        return Err(audit_error("dateFrom", "dateFrom must not be after dateTo"));
    }
    Ok(AuditFilter {
        // Older events are gone: Clari keeps 30 days.
        from_ms: from_ms.max(now_ms - RETENTION_MS),
        to_ms,
        actor,
        session_id: get("sessionId"),
        session_type,
        event: get("event"),
    })
}

fn audit_matches<'a>(
    org: &'a OrgData,
    f: &'a AuditFilter,
) -> impl Iterator<Item = &'a super::data::AuditRec> + 'a {
    org.audit.iter().filter(move |e| {
        e.at_ms >= f.from_ms
            && e.at_ms <= f.to_ms
            && f.actor.as_ref().is_none_or(|a| &org.users[e.actor].id == a)
            && f.session_id.as_ref().is_none_or(|s| &e.session_id == s)
            && f.session_type.as_ref().is_none_or(|t| e.session_type == t)
            && f.event.as_ref().is_none_or(|ev| e.event == ev)
    })
}

async fn audit_events(
    State(s): St,
    Extension(caller): Extension<Caller>,
    RawQuery(raw): RawQuery,
) -> Response {
    let org = &s.dataset.orgs[caller.org];
    let query = query_map(&raw);
    let limit = match query.get("limit").map(|l| l.parse::<usize>()) {
        None => 100,
        Some(Ok(l)) if (1..=1000).contains(&l) => l,
        Some(_) => return audit_error("limit", "limit must be between 1 and 1000"),
    };
    let cursor = query
        .get("cursor")
        .and_then(|c| c.parse::<usize>().ok())
        .unwrap_or(0);
    let filter = match audit_filter(|k| query.get(k).cloned(), s.now_ms()) {
        Ok(f) => f,
        Err(r) => return r,
    };
    let matching: Vec<_> = audit_matches(org, &filter).collect();
    let page: Vec<_> = matching.iter().skip(cursor).take(limit).copied().collect();
    let knobs = s.knobs();
    let as_instant = knobs.timestamps_as_instant;
    let page = if knobs.audit_empty_pages {
        Vec::new()
    } else {
        page
    };
    let mut body = json!({
        "items": page.iter().map(|e| render::audit_item(org, e, as_instant)).collect::<Vec<_>>(),
        "actors": render::audit_actors(org, page.iter().copied()),
    });
    if cursor + limit < matching.len() || knobs.audit_empty_pages {
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        let mut keys: Vec<_> = query
            .iter()
            .filter(|(k, _)| k.as_str() != "cursor")
            .collect();
        keys.sort();
        for (k, v) in keys {
            q.append_pair(k, v);
        }
        q.append_pair("cursor", &(cursor + limit).to_string());
        body["nextLink"] = json!(format!("{}/audit/events?{}", s.base_url, q.finish()));
    }
    Json(body).into_response()
}

async fn create_audit_export(
    State(s): St,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> Response {
    let org = &s.dataset.orgs[caller.org];
    let knobs = s.knobs();
    let body = match body_object(&body) {
        Ok(b) => b,
        Err(text) => return audit_error("body", format!("The request body was malformed: {text}")),
    };
    let filter = match audit_filter(|k| body.get(k).and_then(as_text), s.now_ms()) {
        Ok(f) => f,
        Err(r) => return r,
    };
    let events: Vec<_> = audit_matches(org, &filter).collect();
    let as_instant = knobs.timestamps_as_instant;
    let result = json!({
        "items": events.iter().map(|e| render::audit_item(org, e, as_instant)).collect::<Vec<_>>(),
        "actors": render::audit_actors(org, events.iter().copied()),
    });
    let file_name = format!("clari_export_audit_events_{}.json", stamp(s.now_ms()));
    match create_job(
        &s,
        &knobs,
        caller,
        JobSpec {
            module: Module::Audit,
            file_name,
            file_type: "JSON",
            currency: None,
            result: serde_json::to_vec(&result).unwrap(),
        },
    ) {
        Ok(job_id) => (StatusCode::ACCEPTED, Json(json!({"jobId": job_id}))).into_response(),
        Err(r) => r,
    }
}

// --- opportunity --------------------------------------------------------------------------------

async fn opportunities(
    State(s): St,
    Extension(caller): Extension<Caller>,
    RawQuery(raw): RawQuery,
) -> Response {
    let org = &s.dataset.orgs[caller.org];
    let pairs: Vec<(String, String)> =
        url::form_urlencoded::parse(raw.as_deref().unwrap_or_default().as_bytes())
            .into_owned()
            .collect();
    let ids: Vec<&str> = pairs
        .iter()
        .filter(|(k, _)| k == "oppId")
        .map(|(_, v)| v.as_str())
        .collect();
    if ids.is_empty() {
        return opportunity_error("oppId is required");
    }
    if ids.len() > 100 {
        return opportunity_error("oppId must contain between 1 and 100 values");
    }
    if let Some((_, mode)) = pairs.iter().find(|(k, _)| k == "mode")
        && mode != "OPPORTUNITY_MODE_ID"
    {
        return opportunity_error("mode must be OPPORTUNITY_MODE_ID");
    }
    let out: Vec<Value> = ids
        .iter()
        .filter_map(|id| {
            let key = id.get(..15)?;
            let i = org.opps.iter().position(|o| &o.id[..15] == key)?;
            Some(render::opportunity(org, i, id))
        })
        .collect();
    Json(out).into_response()
}

// --- activity -----------------------------------------------------------------------------------

async fn create_activity_export(
    State(s): St,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> Response {
    let org = &s.dataset.orgs[caller.org];
    let knobs = s.knobs();
    let body = match body_object(&body) {
        Ok(b) if !b.is_empty() => b,
        _ => return activity_error(org, caller, "The request body is required."),
    };
    const KINDS: [&str; 5] = [
        "MEETING",
        "EMAIL_SENT",
        "EMAIL_RECEIVED",
        "ATTACHMENT_SENT",
        "ATTACHMENT_RECEIVED",
    ];
    let types: Vec<String> = match body.get("activityTypes") {
        Some(Value::Array(items)) if !items.is_empty() => items
            .iter()
            .map(|v| as_text(v).unwrap_or_default())
            .collect(),
        _ => return activity_error(org, caller, "activityTypes is required."),
    };
    if let Some(bad) = types.iter().find(|t| !KINDS.contains(&t.as_str())) {
        return activity_error(org, caller, format!("Invalid activity type: {bad}"));
    }
    // Only the date (and zone) of the bounds count; the time is ignored.
    let day = |k: &str| {
        body.get(k)
            .and_then(as_text)
            .and_then(|v| v.get(..10).and_then(date_ms))
    };
    let Some(start) = day("startDate") else {
        return activity_error(org, caller, "startDate is required and must be ISO-8601.");
    };
    let end = match body.get("endDate") {
        None => s.now_ms(),
        Some(_) => match day("endDate") {
            Some(e) => e + 86_400_000 - 1,
            None => return activity_error(org, caller, "endDate must be ISO-8601."),
        },
    };
    if let Some(f) = body.get("exportFormat").and_then(as_text)
        && f != "JSON"
    {
        return activity_error(org, caller, "Only the JSON exportFormat is supported.");
    }
    let activities: Vec<Value> = (0..org.activities.len())
        .filter(|&i| {
            let a = &org.activities[i];
            a.at_ms >= start && a.at_ms <= end && types.iter().any(|t| t == a.kind)
        })
        .map(|i| render::activity(org, i))
        .collect();
    let result = serde_json::to_vec(&json!({"activities": activities})).unwrap();
    let file_name = format!("clari_export_activity_{}.json", stamp(s.now_ms()));
    match create_job(
        &s,
        &knobs,
        caller,
        JobSpec {
            module: Module::Activity,
            file_name,
            file_type: "JSON",
            currency: None,
            result,
        },
    ) {
        Ok(job_id) => (StatusCode::ACCEPTED, Json(json!({"jobId": job_id}))).into_response(),
        Err(r) => r,
    }
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
