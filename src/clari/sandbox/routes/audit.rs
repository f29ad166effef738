//! `GET /audit/events` (paged, 30 days retained) and `POST /export/audit/events`.

use super::*;

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
) -> impl Iterator<Item = &'a crate::clari::sandbox::data::AuditRec> + 'a {
    org.audit.iter().filter(move |e| {
        e.at_ms >= f.from_ms
            && e.at_ms <= f.to_ms
            && f.actor.as_ref().is_none_or(|a| &org.users[e.actor].id == a)
            && f.session_id.as_ref().is_none_or(|s| &e.session_id == s)
            && f.session_type.as_ref().is_none_or(|t| e.session_type == t)
            && f.event.as_ref().is_none_or(|ev| e.event == ev)
    })
}

pub(super) async fn audit_events(
    State(s): St,
    caller: Caller,
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

pub(super) async fn create_audit_export(State(s): St, caller: Caller, body: Bytes) -> Response {
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
