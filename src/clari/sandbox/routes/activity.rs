//! `POST /export/activity`: activity exports by type and date range.

use super::*;

pub(super) async fn create_activity_export(State(s): St, caller: Caller, body: Bytes) -> Response {
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
