//! `POST /export/forecast/{forecastId}`: forecast exports, with Clari's checks of the request.

use super::*;

pub(super) async fn missing_forecast_id(State(s): St, caller: Caller) -> Response {
    let org_id = s.dataset.orgs[caller.org].clari_org_id;
    fcw(
        StatusCode::BAD_REQUEST,
        "missing_forecast_id",
        "fcw",
        "The forecastId query parameter is required.",
        org_id,
    )
}

pub(super) async fn create_forecast_export(
    State(s): St,
    caller: Caller,
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
