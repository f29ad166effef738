//! The Clari Revenue API endpoints clari-mcp uses (§3 of the API reference), each validating its
//! arguments before any upstream call; how requests travel is [`super::transport`]'s business.

use axum::body::Bytes;
use futures_util::StreamExt;
use reqwest::Method;

use super::error::{ClariError, clean};
use super::response::{Ctx, compact_len, decode};
use super::transport::Call;
pub use super::transport::{ClariClient, ClariTarget, ClientOptions, RetryPolicy, check_base_url};
use super::types::*;

/// Clari keeps audit events for this long.
pub const AUDIT_RETENTION_SECS: i64 = 30 * 86_400;
/// `GET /opportunity` takes at most this many ids.
pub const OPPORTUNITY_BATCH: usize = 100;
/// The most opportunity ids one call of ours accepts: at most ten `GET /opportunity` requests.
pub const MAX_OPPORTUNITY_IDS: usize = 1_000;

/// The ids to ask Clari for: one per record, the first form given, in input order.
pub fn unique_records(ids: &[OpportunityId]) -> Vec<&str> {
    let mut seen = std::collections::HashSet::with_capacity(ids.len());
    ids.iter()
        .filter(|id| seen.insert(id.record()))
        .map(OpportunityId::as_str)
        .collect()
}

/// How many `GET /opportunity` requests asking for these ids takes.
pub fn opportunity_requests(ids: &[OpportunityId]) -> u64 {
    unique_records(ids).len().div_ceil(OPPORTUNITY_BATCH) as u64
}

impl ClariClient {
    // --- exports --------------------------------------------------------------------------

    /// `POST /export/forecast/{forecastId}`: queues a forecast export and returns its job id.
    #[tracing::instrument(skip_all, fields(forecast_id = %forecast_id))]
    pub async fn create_forecast_export(
        &self,
        target: &ClariTarget,
        forecast_id: &ForecastId,
        req: &ForecastExportRequest,
    ) -> Result<JobId, ClariError> {
        validate_export_request(req)?;
        let ctx = Ctx {
            forecast_id: Some(forecast_id.as_str()),
            job_id: None,
        };
        let path = format!("export/forecast/{forecast_id}");
        let created: JobCreated = self
            .call_json(
                target,
                Call::write(Method::POST, &path).body(req).about(ctx),
            )
            .await?;
        Ok(created.job_id)
    }

    /// `POST /export/audit/events`: queues an audit export.
    pub async fn create_audit_export(
        &self,
        target: &ClariTarget,
        query: &AuditQuery,
        now: i64,
    ) -> Result<JobId, ClariError> {
        validate_audit_query(query, now)?;
        let mut body = query.clone();
        body.limit = None;
        let created: JobCreated = self
            .call_json(
                target,
                Call::write(Method::POST, "export/audit/events").body(&body),
            )
            .await?;
        Ok(created.job_id)
    }

    /// `POST /export/activity`: queues an activity export.
    pub async fn create_activity_export(
        &self,
        target: &ClariTarget,
        req: &ActivityExportRequest,
    ) -> Result<JobId, ClariError> {
        validate_activity_request(req)?;
        let created: JobCreated = self
            .call_json(
                target,
                Call::write(Method::POST, "export/activity").body(req),
            )
            .await?;
        Ok(created.job_id)
    }

    /// `GET /export/jobs/{jobId}`.
    pub async fn job(&self, target: &ClariTarget, job_id: &JobId) -> Result<Job, ClariError> {
        let env: JobEnvelope = self
            .call_json(
                target,
                Call::get(&format!("export/jobs/{job_id}")).about(Ctx {
                    job_id: Some(job_id.as_str()),
                    ..Ctx::default()
                }),
            )
            .await?;
        Ok(env.into_job())
    }

    /// `GET /export/jobs`: the jobs started by the API key's user.
    pub async fn list_jobs(&self, target: &ClariTarget) -> Result<Vec<Job>, ClariError> {
        let env: JobListEnvelope = self.call_json(target, Call::get("export/jobs")).await?;
        Ok(env.into_jobs())
    }

    /// `PATCH /export/jobs/{jobId}` with `{"type":"CANCEL"}`.
    pub async fn cancel_job(
        &self,
        target: &ClariTarget,
        job_id: &JobId,
    ) -> Result<CancelResponse, ClariError> {
        let body = serde_json::json!({"type": "CANCEL"});
        self.call_json(
            target,
            Call::write(Method::PATCH, &format!("export/jobs/{job_id}"))
                .body(&body)
                .about(Ctx {
                    job_id: Some(job_id.as_str()),
                    ..Ctx::default()
                }),
        )
        .await
    }

    /// `GET /export/jobs/{jobId}/results` as raw bytes (JSON or CSV, per the export's format).
    pub async fn results_raw(
        &self,
        target: &ClariTarget,
        job_id: &JobId,
    ) -> Result<Bytes, ClariError> {
        let ctx = Ctx {
            job_id: Some(job_id.as_str()),
            ..Ctx::default()
        };
        self.call(
            target,
            Call::get(&format!("export/jobs/{job_id}/results")).about(ctx),
        )
        .await
    }

    pub async fn forecast_results(
        &self,
        target: &ClariTarget,
        job_id: &JobId,
    ) -> Result<ForecastResults, ClariError> {
        let results: ForecastResults = decode(&self.results_raw(target, job_id).await?)?;
        Ok(ForecastResults {
            content_bytes: compact_len(&results),
            ..results
        })
    }

    pub async fn audit_results(
        &self,
        target: &ClariTarget,
        job_id: &JobId,
    ) -> Result<AuditPage, ClariError> {
        decode(&self.results_raw(target, job_id).await?)
    }

    pub async fn activity_results(
        &self,
        target: &ClariTarget,
        job_id: &JobId,
    ) -> Result<ActivityResults, ClariError> {
        let results: ActivityResults = decode(&self.results_raw(target, job_id).await?)?;
        Ok(ActivityResults {
            content_bytes: compact_len(&results),
            ..results
        })
    }

    /// `GET /admin/limits`.
    pub async fn admin_limits(&self, target: &ClariTarget) -> Result<Limits, ClariError> {
        // Straight to `send`: `call` itself asks for the limits when a quota error arrives.
        let url = target.url("admin/limits");
        let bytes = self.send(target, &url, &Call::get("admin/limits")).await?;
        decode(&bytes)
    }

    // --- audit ----------------------------------------------------------------------------

    /// `GET /audit/events`: the first page.
    pub async fn audit_events(
        &self,
        target: &ClariTarget,
        query: &AuditQuery,
        now: i64,
    ) -> Result<AuditPage, ClariError> {
        validate_audit_query(query, now)?;
        self.call_json(target, Call::get("audit/events").query(query))
            .await
    }

    /// Follows a `nextLink`. The link must point at the same origin as the organisation's base
    /// URL, so a tampered link can never carry the API key elsewhere.
    pub async fn audit_next(
        &self,
        target: &ClariTarget,
        next_link: &str,
    ) -> Result<AuditPage, ClariError> {
        let link = url::Url::parse(next_link).map_err(|_| {
            ClariError::UnexpectedResponse("the audit nextLink is not a URL".into())
        })?;
        if Some(link.origin().ascii_serialization()) != target.origin() {
            return Err(ClariError::UnexpectedResponse(
                "the audit nextLink points at another host; not following it".into(),
            ));
        }
        let bytes = self
            // The link is a whole URL already checked above; the path is not used.
            .send(target, link.as_str(), &Call::get(""))
            .await?;
        decode(&bytes)
    }

    /// Reads pages until there are none left, `max_items` events are collected or
    /// [`MAX_AUDIT_PAGES`] pages are read; `next_link`
    /// of the result is set when more remain. Actors are merged without duplicates.
    pub async fn audit_events_all(
        &self,
        target: &ClariTarget,
        query: &AuditQuery,
        now: i64,
        max_items: usize,
    ) -> Result<AuditPage, ClariError> {
        let mut page = self.audit_events(target, query, now).await?;
        let mut out = AuditPage::default();
        let mut pages = 1;
        loop {
            out.items.append(&mut page.items);
            for a in page.actors.drain(..) {
                if !out.actors.iter().any(|b| b.actor_id == a.actor_id) {
                    out.actors.push(a);
                }
            }
            match page.next_link.take() {
                // Bounded in pages too: an upstream answering empty pages with a nextLink
                // must not keep us reading forever.
                Some(link) if out.items.len() < max_items && pages < MAX_AUDIT_PAGES => {
                    page = self.audit_next(target, &link).await?;
                    pages += 1;
                }
                rest => {
                    out.next_link = rest;
                    break;
                }
            }
        }
        if out.items.len() > max_items {
            out.items.truncate(max_items);
        }
        Ok(out)
    }

    // --- opportunities ----------------------------------------------------------------------

    /// `GET /opportunity` for up to [`MAX_OPPORTUNITY_IDS`] ids: split into batches of 100 run
    /// concurrently within a small limit, merged in input order. Each record is asked once,
    /// whether it is given once or many times, in its 15- or its 18-character form.
    pub async fn opportunities(
        &self,
        target: &ClariTarget,
        ids: &[OpportunityId],
    ) -> Result<Vec<Opportunity>, ClariError> {
        if ids.is_empty() {
            return Err(ClariError::InvalidArgument {
                argument: "opportunity_ids",
                reason: "give at least one opportunity id".into(),
            });
        }
        if ids.len() > MAX_OPPORTUNITY_IDS {
            return Err(ClariError::InvalidArgument {
                argument: "opportunity_ids",
                reason: format!(
                    "{} ids given; at most {MAX_OPPORTUNITY_IDS} per call",
                    ids.len()
                ),
            });
        }
        let unique = unique_records(ids);
        // Owned batches: borrowed ones trip the higher-ranked lifetime check of `buffered`
        // streams inside `Send` futures.
        let batches: Vec<Vec<String>> = unique
            .chunks(OPPORTUNITY_BATCH)
            .map(|c| c.iter().map(|s| (*s).to_owned()).collect())
            .collect();
        let results: Vec<Result<Vec<Opportunity>, ClariError>> =
            futures_util::stream::iter(batches)
                .map(|batch| self.opportunity_batch(target, batch))
                .buffered(self.options().batch_concurrency.max(1))
                .collect()
                .await;
        let mut by_record = std::collections::HashMap::new();
        for r in results {
            for o in r? {
                let record = o.id.get(..15).unwrap_or(&o.id).to_owned();
                by_record.insert(record, o);
            }
        }
        Ok(unique
            .iter()
            .filter_map(|id| by_record.remove(&id[..15]))
            .collect())
    }

    async fn opportunity_batch(
        &self,
        target: &ClariTarget,
        ids: Vec<String>,
    ) -> Result<Vec<Opportunity>, ClariError> {
        let mut query: Vec<(&str, &str)> = ids.iter().map(|id| ("oppId", id.as_str())).collect();
        query.push(("mode", "OPPORTUNITY_MODE_ID"));
        self.call_json(target, Call::get("opportunity").query(&query))
            .await
    }
}

// --- validation before any upstream call --------------------------------------------------------

fn invalid(argument: &'static str, reason: impl Into<String>) -> ClariError {
    ClariError::InvalidArgument {
        argument,
        reason: reason.into(),
    }
}

/// The most audit pages one call reads.
pub const MAX_AUDIT_PAGES: usize = 50;

fn validate_export_request(req: &ForecastExportRequest) -> Result<(), ClariError> {
    if let Some(c) = &req.currency
        && !(c.len() == 3 && c.bytes().all(|b| b.is_ascii_uppercase()))
    {
        return Err(invalid(
            "currency",
            format!("'{}' is not an ISO 4217 code such as USD", clean(c)),
        ));
    }
    if let Some(s) = &req.scope_id
        && (s.is_empty() || s.len() > 64 || s.chars().any(|c| c.is_whitespace() || c.is_control()))
    {
        return Err(invalid(
            "scope_id",
            format!("'{}' is not a Clari scope id such as 1905::MGR", clean(s)),
        ));
    }
    Ok(())
}

/// Parses `YYYY-MM-DD` or RFC 3339 into Unix seconds.
pub fn parse_date(text: &str) -> Option<i64> {
    use time::format_description::well_known::Rfc3339;
    if let Ok(t) = time::OffsetDateTime::parse(text, &Rfc3339) {
        return Some(t.unix_timestamp());
    }
    let d = time::Date::parse(
        text,
        time::macros::format_description!("[year]-[month]-[day]"),
    )
    .ok()?;
    Some(d.midnight().assume_utc().unix_timestamp())
}

pub fn validate_audit_query(q: &AuditQuery, now: i64) -> Result<(), ClariError> {
    if let Some(limit) = q.limit
        && !(1..=1000).contains(&limit)
    {
        return Err(invalid("limit", format!("{limit} is outside 1 to 1000")));
    }
    let from = match &q.date_from {
        Some(t) => Some(parse_date(t).ok_or_else(|| {
            invalid(
                "date_from",
                format!("'{}' is not a date (YYYY-MM-DD) or RFC 3339 time", clean(t)),
            )
        })?),
        None => None,
    };
    let to = match &q.date_to {
        Some(t) => Some(parse_date(t).ok_or_else(|| {
            invalid(
                "date_to",
                format!("'{}' is not a date (YYYY-MM-DD) or RFC 3339 time", clean(t)),
            )
        })?),
        None => None,
    };
    if let (Some(f), Some(t)) = (from, to)
        && f > t
    {
        return Err(invalid("date_from", "date_from is after date_to"));
    }
    // A day of slack: a date-only bound means midnight UTC.
    if let Some(f) = from
        && f < now - AUDIT_RETENTION_SECS - 86_400
    {
        return Err(invalid(
            "date_from",
            format!(
                "Clari keeps audit events for 30 days; {} is older than that",
                crate::clock::rfc3339(f)
            ),
        ));
    }
    if let Some(s) = &q.session_id
        && (s.is_empty() || s.len() > 36)
    {
        return Err(invalid(
            "session_id",
            "a session id is a UUID of at most 36 characters",
        ));
    }
    Ok(())
}

fn validate_activity_request(req: &ActivityExportRequest) -> Result<(), ClariError> {
    if req.activity_types.is_empty() {
        return Err(invalid("activity_types", "name at least one activity type"));
    }
    let start = parse_date(&req.start_date).ok_or_else(|| {
        invalid(
            "start_date",
            format!("'{}' is not a date", clean(&req.start_date)),
        )
    })?;
    let end = parse_date(&req.end_date).ok_or_else(|| {
        invalid(
            "end_date",
            format!("'{}' is not a date", clean(&req.end_date)),
        )
    })?;
    if start > end {
        return Err(invalid("start_date", "start_date is after end_date"));
    }
    if req.export_format != ExportFormat::Json {
        return Err(invalid("export_format", "activity exports are JSON only"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audit_validation_catches_order_retention_and_format() {
        let now = 1_790_000_000;
        let q = |from: &str, to: &str| AuditQuery {
            date_from: Some(from.into()),
            date_to: Some(to.into()),
            ..Default::default()
        };
        assert!(validate_audit_query(&q("2026-09-10", "2026-09-01"), now).is_err());
        let old = validate_audit_query(&q("2025-01-01", "2025-01-02"), now).unwrap_err();
        assert!(old.to_string().contains("30 days"), "{old}");
        assert!(validate_audit_query(&q("yesterday", "2026-09-01"), now).is_err());
        let recent = crate::clock::rfc3339(now - 86_400);
        assert!(validate_audit_query(&q(&recent, &crate::clock::rfc3339(now)), now).is_ok());
        assert!(
            validate_audit_query(
                &AuditQuery {
                    limit: Some(0),
                    ..Default::default()
                },
                now
            )
            .is_err()
        );
    }
}
