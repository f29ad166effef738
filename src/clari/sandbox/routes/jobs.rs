//! `/export/jobs`: list, status, cancel and results of export jobs; `/admin/limits`.

use super::*;

pub(super) async fn list_jobs(State(s): St, caller: Caller) -> Response {
    let org = &s.dataset.orgs[caller.org];
    let now = s.instant_now();
    let jobs: Vec<Value> = s
        .jobs
        .list(caller.org, caller_user_id(org, caller))
        .iter()
        .map(|j| j.to_json(now, org.clari_org_id))
        .collect();
    Json(jobs).into_response()
}

pub(super) async fn get_job(State(s): St, caller: Caller, Path(job_id): Path<String>) -> Response {
    let org = &s.dataset.orgs[caller.org];
    let Some(job) = s.jobs.get(caller.org, caller_user_id(org, caller), &job_id) else {
        return sww(org.clari_org_id);
    };
    let body = job.to_json(s.instant_now(), org.clari_org_id);
    if s.knobs().wrap_job_envelope {
        Json(json!({"job": body})).into_response()
    } else {
        Json(body).into_response()
    }
}

pub(super) async fn cancel_job(
    State(s): St,
    caller: Caller,
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
        s.instant_now(),
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

pub(super) async fn job_results(
    State(s): St,
    caller: Caller,
    Path(job_id): Path<String>,
) -> Response {
    let org = &s.dataset.orgs[caller.org];
    let org_id = org.clari_org_id;
    let user = caller_user_id(org, caller);
    let file_type = s.jobs.get(caller.org, user, &job_id).map(|j| j.file_type);
    match s.jobs.download(caller.org, user, &job_id, s.instant_now()) {
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

pub(super) async fn admin_limits(State(s): St, caller: Caller) -> Response {
    let knobs = s.knobs();
    let usage = s.jobs.usage(caller.org, s.instant_now(), s.now_ms());
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
