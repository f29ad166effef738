//! The Clari Revenue API client. Cheap to clone (one pooled reqwest client inside, TCP_NODELAY,
//! gzip, connect and request timeouts); it holds no tenant state: every call receives the
//! organisation's base URL and API key in a [`ClariTarget`], which is dropped after the call.
//!
//! Retries: 429 honours `Retry-After`; 5xx and transport errors back off exponentially with jitter,
//! bounded in count and total time; other 4xx never retry. A request that creates an export job is
//! retried only when Clari certainly did not create one (429, or the connection never opened).

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use futures_util::StreamExt;
use reqwest::header::{ACCEPT, HeaderMap, HeaderValue, RETRY_AFTER};
use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::error::{ClariError, clean, parse_envelope};
use super::types::*;

/// Clari keeps audit events for this long.
pub const AUDIT_RETENTION_SECS: i64 = 30 * 86_400;
/// `GET /opportunity` takes at most this many ids.
pub const OPPORTUNITY_BATCH: usize = 100;
/// The most opportunity ids one call of ours accepts.
pub const MAX_OPPORTUNITY_IDS: usize = 10_000;

/// Where and as whom to call Clari: one organisation's base URL and API key.
pub struct ClariTarget {
    base_url: String,
    api_key: SecretString,
}

impl std::fmt::Debug for ClariTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClariTarget")
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

impl ClariTarget {
    pub fn new(base_url: &str, api_key: SecretString) -> Result<Self, ClariError> {
        let key = api_key.expose_secret();
        if key.is_empty() || key.chars().any(|c| !c.is_ascii_graphic()) {
            return Err(ClariError::InvalidArgument {
                argument: "api key",
                reason: "the stored Clari API key is empty or malformed".into(),
            });
        }
        let base = check_base_url(base_url).map_err(|reason| ClariError::InvalidArgument {
            argument: "base url",
            reason,
        })?;
        Ok(Self {
            base_url: base,
            api_key,
        })
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    fn url(&self, path: &str) -> String {
        format!("{}/{}", self.base_url, path.trim_start_matches('/'))
    }

    fn origin(&self) -> Option<String> {
        url::Url::parse(&self.base_url)
            .ok()
            .map(|u| u.origin().ascii_serialization())
    }
}

#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Retries after the first attempt.
    pub max_retries: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
    /// No retry starts once this much time has passed since the first attempt.
    pub max_total: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_retries: 3,
            base_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(4),
            max_total: Duration::from_secs(20),
        }
    }
}

impl RetryPolicy {
    /// Exponential backoff with "equal jitter": half fixed, half random.
    fn backoff(&self, attempt: u32) -> Duration {
        let exp = self
            .base_delay
            .saturating_mul(2u32.saturating_pow(attempt))
            .min(self.max_delay);
        let half = exp / 2;
        half + half.mul_f64(rand::random::<f64>())
    }
}

#[derive(Debug, Clone)]
pub struct ClientOptions {
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
    pub retry: RetryPolicy,
    /// Opportunity batches in flight at once.
    pub batch_concurrency: usize,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
            retry: RetryPolicy::default(),
            batch_concurrency: 4,
        }
    }
}

#[derive(Clone)]
pub struct ClariClient {
    http: reqwest::Client,
    opts: Arc<ClientOptions>,
}

impl std::fmt::Debug for ClariClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClariClient")
            .field("opts", &self.opts)
            .finish()
    }
}

/// How a request may be retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    /// Reads: retry on 429, 5xx and transport errors.
    Safe,
    /// Creates a job or changes one: retry only when Clari certainly did nothing.
    Unsafe,
}

/// What a failing call was about, so errors can name the forecast or job.
#[derive(Debug, Default, Clone, Copy)]
struct Ctx<'a> {
    forecast_id: Option<&'a str>,
    job_id: Option<&'a str>,
}

impl ClariClient {
    pub fn new(opts: ClientOptions) -> Self {
        crate::init_crypto();
        let http = reqwest::Client::builder()
            // Never follow a redirect: the `apikey` header would go with it to wherever it
            // points (reqwest strips only Authorization and Cookie on a cross-host hop).
            .redirect(reqwest::redirect::Policy::none())
            .tcp_nodelay(true)
            .connect_timeout(opts.connect_timeout)
            .timeout(opts.request_timeout)
            .pool_idle_timeout(Duration::from_secs(90))
            .user_agent(concat!("clari-mcp/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("the HTTP client configuration is valid");
        Self {
            http,
            opts: Arc::new(opts),
        }
    }

    pub fn options(&self) -> &ClientOptions {
        &self.opts
    }

    // --- exports --------------------------------------------------------------------------

    /// `POST /export/forecast/{forecastId}`: queues a forecast export and returns its job id.
    #[tracing::instrument(skip_all, fields(forecast_id = forecast_id))]
    pub async fn create_forecast_export(
        &self,
        target: &ClariTarget,
        forecast_id: &str,
        req: &ForecastExportRequest,
    ) -> Result<String, ClariError> {
        validate_forecast_id(forecast_id)?;
        validate_export_request(req)?;
        let ctx = Ctx {
            forecast_id: Some(forecast_id),
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
    ) -> Result<String, ClariError> {
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
    ) -> Result<String, ClariError> {
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
    pub async fn job(&self, target: &ClariTarget, job_id: &str) -> Result<Job, ClariError> {
        validate_job_id(job_id)?;
        let env: JobEnvelope = self
            .call_json(
                target,
                Call::get(&format!("export/jobs/{job_id}")).about(Ctx {
                    job_id: Some(job_id),
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
        job_id: &str,
    ) -> Result<CancelResponse, ClariError> {
        validate_job_id(job_id)?;
        let body = serde_json::json!({"type": "CANCEL"});
        self.call_json(
            target,
            Call::write(Method::PATCH, &format!("export/jobs/{job_id}"))
                .body(&body)
                .about(Ctx {
                    job_id: Some(job_id),
                    ..Ctx::default()
                }),
        )
        .await
    }

    /// `GET /export/jobs/{jobId}/results` as raw bytes (JSON or CSV, per the export's format).
    pub async fn results_raw(
        &self,
        target: &ClariTarget,
        job_id: &str,
    ) -> Result<Bytes, ClariError> {
        validate_job_id(job_id)?;
        let ctx = Ctx {
            job_id: Some(job_id),
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
        job_id: &str,
    ) -> Result<ForecastResults, ClariError> {
        decode(&self.results_raw(target, job_id).await?)
    }

    pub async fn audit_results(
        &self,
        target: &ClariTarget,
        job_id: &str,
    ) -> Result<AuditPage, ClariError> {
        decode(&self.results_raw(target, job_id).await?)
    }

    pub async fn activity_results(
        &self,
        target: &ClariTarget,
        job_id: &str,
    ) -> Result<ActivityResults, ClariError> {
        decode(&self.results_raw(target, job_id).await?)
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

    /// `GET /opportunity` for any number of ids (up to 10,000): split into batches of 100 run
    /// concurrently within a small limit, merged in input order (duplicates asked once).
    pub async fn opportunities(
        &self,
        target: &ClariTarget,
        ids: &[String],
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
        let mut unique: Vec<&str> = Vec::with_capacity(ids.len());
        let mut seen = std::collections::HashSet::with_capacity(ids.len());
        for id in ids {
            let id = id.trim();
            validate_opportunity_id(id)?;
            if seen.insert(id) {
                unique.push(id);
            }
        }
        // Owned batches: borrowed ones trip the higher-ranked lifetime check of `buffered`
        // streams inside `Send` futures.
        let batches: Vec<Vec<String>> = unique
            .chunks(OPPORTUNITY_BATCH)
            .map(|c| c.iter().map(|s| (*s).to_owned()).collect())
            .collect();
        let results: Vec<Result<Vec<Opportunity>, ClariError>> =
            futures_util::stream::iter(batches)
                .map(|batch| self.opportunity_batch(target, batch))
                .buffered(self.opts.batch_concurrency.max(1))
                .collect()
                .await;
        let mut by_id = std::collections::HashMap::new();
        for r in results {
            for o in r? {
                by_id.insert(o.id.clone(), o);
            }
        }
        Ok(unique.iter().filter_map(|id| by_id.remove(*id)).collect())
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

    // --- transport ----------------------------------------------------------------------------

    async fn call_json<T: DeserializeOwned, Q, B>(
        &self,
        target: &ClariTarget,
        call: Call<'_, Q, B>,
    ) -> Result<T, ClariError>
    where
        Q: Serialize + ?Sized,
        B: Serialize + ?Sized,
    {
        decode(&self.call(target, call).await?)
    }

    /// Sends `call` to the organisation's Clari; a quota refusal names the numbers when Clari
    /// will tell them.
    async fn call<Q, B>(
        &self,
        target: &ClariTarget,
        call: Call<'_, Q, B>,
    ) -> Result<Bytes, ClariError>
    where
        Q: Serialize + ?Sized,
        B: Serialize + ?Sized,
    {
        let url = target.url(call.path);
        match self.send(target, &url, &call).await {
            Err(ClariError::QuotaReached {
                message,
                limits: None,
            }) => {
                let limits = self.admin_limits(target).await.ok();
                Err(ClariError::QuotaReached { message, limits })
            }
            other => other,
        }
    }

    /// Sends `call` to `url` (its path already resolved) with the organisation's key, retrying
    /// what its class allows.
    async fn send<Q, B>(
        &self,
        target: &ClariTarget,
        url: &str,
        call: &Call<'_, Q, B>,
    ) -> Result<Bytes, ClariError>
    where
        Q: Serialize + ?Sized,
        B: Serialize + ?Sized,
    {
        let mut key = HeaderValue::from_str(target.api_key.expose_secret()).map_err(|_| {
            ClariError::InvalidArgument {
                argument: "api key",
                reason: "the stored Clari API key has characters a header cannot carry".into(),
            }
        })?;
        key.set_sensitive(true);
        let policy = &self.opts.retry;
        let started = Instant::now();
        let mut attempt: u32 = 0;
        loop {
            let mut rb = self
                .http
                .request(call.method.clone(), url)
                .header("apikey", key.clone())
                .header(ACCEPT, "application/json");
            if let Some(q) = call.query {
                rb = rb.query(q);
            }
            if let Some(b) = call.body {
                rb = rb.json(b);
            }
            let (err, outcome) = match rb.send().await {
                Ok(resp) => {
                    let status = resp.status();
                    let retry_after = parse_retry_after(resp.headers());
                    match resp.bytes().await {
                        Ok(bytes) if status.is_success() => return Ok(bytes),
                        Ok(bytes) => (
                            map_error(status, &bytes, call.ctx, retry_after),
                            Attempt::Answered { retry_after },
                        ),
                        Err(e) => (transport_error(&e), Attempt::Lost),
                    }
                }
                Err(e) if e.is_connect() => (transport_error(&e), Attempt::NeverSent),
                Err(e) => (transport_error(&e), Attempt::Lost),
            };
            let retryable = match (&err, call.class) {
                (ClariError::RateLimited { .. }, _) => true,
                (ClariError::Network(_), Class::Unsafe) => outcome == Attempt::NeverSent,
                (
                    ClariError::Unavailable { .. } | ClariError::Timeout | ClariError::Network(_),
                    Class::Safe,
                ) => true,
                _ => false,
            };
            let delay = match outcome {
                Attempt::Answered {
                    retry_after: Some(d),
                } => d,
                _ => policy.backoff(attempt),
            };
            if !retryable
                || attempt >= policy.max_retries
                || started.elapsed() + delay > policy.max_total
            {
                tracing::warn!(error = %err, attempt, url = %redact_query(url), "Clari call failed");
                return Err(err);
            }
            tracing::debug!(error = %err, attempt, delay_ms = delay.as_millis() as u64, "retrying Clari call");
            tokio::time::sleep(delay).await;
            attempt += 1;
        }
    }
}

/// How one attempt went, for the retry decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Attempt {
    /// Clari answered (with an error status), perhaps saying when to come back.
    Answered { retry_after: Option<Duration> },
    /// The connection was never made: Clari certainly did nothing.
    NeverSent,
    /// Sent, but the answer was lost: Clari may have acted.
    Lost,
}

/// One request to Clari: method, path under the organisation's base URL, optional query and
/// JSON body, whether it may be retried, and what it is about (for error messages).
struct Call<'a, Q: ?Sized = (), B: ?Sized = ()> {
    method: Method,
    path: &'a str,
    query: Option<&'a Q>,
    body: Option<&'a B>,
    class: Class,
    ctx: Ctx<'a>,
}

impl<'a> Call<'a> {
    /// A read: retried on 429, 5xx and transport errors.
    fn get(path: &'a str) -> Self {
        Self {
            method: Method::GET,
            path,
            query: None,
            body: None,
            class: Class::Safe,
            ctx: Ctx::default(),
        }
    }

    /// A write (creates or changes a job): retried only when Clari certainly did nothing.
    fn write(method: Method, path: &'a str) -> Self {
        Self {
            class: Class::Unsafe,
            method,
            ..Self::get(path)
        }
    }
}

impl<'a, Q: ?Sized, B: ?Sized> Call<'a, Q, B> {
    fn query<Q2: ?Sized>(self, query: &'a Q2) -> Call<'a, Q2, B> {
        Call {
            method: self.method,
            path: self.path,
            query: Some(query),
            body: self.body,
            class: self.class,
            ctx: self.ctx,
        }
    }

    fn body<B2: ?Sized>(self, body: &'a B2) -> Call<'a, Q, B2> {
        Call {
            method: self.method,
            path: self.path,
            query: self.query,
            body: Some(body),
            class: self.class,
            ctx: self.ctx,
        }
    }

    fn about(self, ctx: Ctx<'a>) -> Self {
        Self { ctx, ..self }
    }
}

fn redact_query(url: &str) -> &str {
    url.split('?').next().unwrap_or(url)
}

fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ClariError> {
    serde_json::from_slice(bytes).map_err(|e| {
        tracing::warn!(error = %e, "unreadable Clari response");
        ClariError::UnexpectedResponse(format!("the JSON did not match the documented shape ({e})"))
    })
}

fn transport_error(e: &reqwest::Error) -> ClariError {
    if e.is_timeout() {
        ClariError::Timeout
    } else {
        // reqwest errors carry the URL, never headers; keep the message short.
        let mut msg = e.to_string();
        if let Some(u) = e.url() {
            msg = msg.replace(u.as_str(), redact_query(u.as_str()));
        }
        ClariError::Network(clean(&msg))
    }
}

/// `Retry-After` in seconds or as an HTTP date.
fn parse_retry_after(headers: &HeaderMap) -> Option<Duration> {
    let v = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs.min(3_600)));
    }
    let at = time::OffsetDateTime::parse(v, &time::format_description::well_known::Rfc2822).ok()?;
    let secs = (at - time::OffsetDateTime::now_utc())
        .whole_seconds()
        .max(0) as u64;
    Some(Duration::from_secs(secs.min(3_600)))
}

fn map_error(
    status: StatusCode,
    body: &[u8],
    ctx: Ctx<'_>,
    retry_after: Option<Duration>,
) -> ClariError {
    let env = parse_envelope(body);
    let code = env.code.as_deref().unwrap_or("");
    let message = clean(&env.message);
    let message_or_status = || {
        if message.is_empty() {
            format!("HTTP {}", status.as_u16())
        } else {
            message.clone()
        }
    };
    let job_id = || ctx.job_id.unwrap_or_default().to_owned();
    match (status.as_u16(), code) {
        (300..=399, _) => ClariError::UnexpectedResponse(format!(
            "Clari answered with a redirect (HTTP {}), which is not followed so that the API key never goes elsewhere",
            status.as_u16()
        )),
        (_, "no_optin") => ClariError::NoOptIn {
            message: message_or_status(),
        },
        (401, _) => ClariError::InvalidApiKey,
        (_, "export_monthly_quota_reached") => ClariError::QuotaReached {
            message: message_or_status(),
            limits: None,
        },
        (_, "no_such_forecast_config") | (404, "") if ctx.forecast_id.is_some() => {
            ClariError::UnknownForecast {
                forecast_id: ctx.forecast_id.unwrap_or_default().to_owned(),
            }
        }
        (_, "type_not_supported") => ClariError::TypeNotSupported {
            message: message_or_status(),
        },
        (_, "invalid_jobId") => ClariError::JobNotFinished { job_id: job_id() },
        (_, "export_failed_to_cancel") => ClariError::JobAlreadyFinished { job_id: job_id() },
        (400 | 403 | 404, "SWW" | "") if ctx.job_id.is_some() => {
            ClariError::JobNotFound { job_id: job_id() }
        }
        (403, _) => ClariError::InvalidApiKey,
        (429, _) => ClariError::RateLimited { retry_after },
        (500..=599, _) => ClariError::Unavailable {
            status: status.as_u16(),
        },
        _ => ClariError::BadRequest {
            message: message_or_status(),
        },
    }
}

// --- validation before any upstream call --------------------------------------------------------

fn invalid(argument: &'static str, reason: impl Into<String>) -> ClariError {
    ClariError::InvalidArgument {
        argument,
        reason: reason.into(),
    }
}

fn is_slug(s: &str, max: usize) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// A Clari base URL the API key may be sent to: https, or http only to a loopback host (the
/// sandbox, a local proxy), with a host and no credentials. Returns it without a trailing slash.
pub fn check_base_url(text: &str) -> Result<String, String> {
    let base = text.trim().trim_end_matches('/');
    let url = url::Url::parse(base).map_err(|_| format!("'{base}' is not a URL"))?;
    let host = url.host_str().unwrap_or_default();
    if !matches!(url.scheme(), "http" | "https") || host.is_empty() {
        return Err(format!("'{base}' is not an http(s) URL with a host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!("'{base}' must not carry credentials"));
    }
    if url.scheme() == "http" && !crate::net::is_loopback_host(host) {
        return Err(format!(
            "'{base}' uses plain http to a non-loopback host, which would send the API key in clear text; use https"
        ));
    }
    Ok(base.to_owned())
}

/// The most audit pages one call reads.
pub const MAX_AUDIT_PAGES: usize = 50;

pub fn validate_forecast_id(id: &str) -> Result<(), ClariError> {
    if is_slug(id, 100) {
        Ok(())
    } else {
        Err(invalid(
            "forecast_id",
            format!(
                "'{}' is not a forecast tab id (letters, digits, '_' or '-', as in app.clari.com/forecast/<forecastId>)",
                clean(id)
            ),
        ))
    }
}

pub fn validate_job_id(id: &str) -> Result<(), ClariError> {
    if is_slug(id, 64) {
        Ok(())
    } else {
        Err(invalid(
            "job_id",
            format!("'{}' is not an export job id", clean(id)),
        ))
    }
}

/// Salesforce ids: 15 or 18 letters and digits.
pub fn validate_opportunity_id(id: &str) -> Result<(), ClariError> {
    if (id.len() == 15 || id.len() == 18) && id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        Ok(())
    } else {
        Err(invalid(
            "opportunity_ids",
            format!(
                "'{}' is not a Salesforce opportunity id (15 or 18 letters and digits)",
                clean(id)
            ),
        ))
    }
}

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
    fn backoff_grows_and_stays_bounded() {
        let p = RetryPolicy {
            max_retries: 5,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
            max_total: Duration::from_secs(10),
        };
        for attempt in 0..10 {
            let d = p.backoff(attempt);
            let cap =
                Duration::from_millis(100 * 2u64.pow(attempt.min(20))).min(Duration::from_secs(1));
            assert!(d >= cap / 2 && d <= cap, "attempt {attempt}: {d:?}");
        }
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, HeaderValue::from_static("7"));
        assert_eq!(parse_retry_after(&h), Some(Duration::from_secs(7)));
        h.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(parse_retry_after(&h), Some(Duration::ZERO));
        h.insert(RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(parse_retry_after(&h), None);
    }

    #[test]
    fn errors_map_to_words() {
        let f = Ctx {
            forecast_id: Some("deal_owner"),
            job_id: None,
        };
        let j = Ctx {
            forecast_id: None,
            job_id: Some("abc"),
        };
        let none = Ctx::default();
        let m = |s: u16, body: &str, ctx| {
            map_error(StatusCode::from_u16(s).unwrap(), body.as_bytes(), ctx, None)
        };
        assert_eq!(
            m(
                401,
                r#"{"message":"Invalid authentication credentials"}"#,
                none
            ),
            ClariError::InvalidApiKey
        );
        assert!(matches!(
            m(
                401,
                r#"{"code":"no_optin","namespace":"fcw","message":"No optins for scope 1::MGR"}"#,
                f
            ),
            ClariError::NoOptIn { .. }
        ));
        assert_eq!(
            m(
                400,
                r#"{"code":"no_such_forecast_config","message":"x"}"#,
                f
            ),
            ClariError::UnknownForecast {
                forecast_id: "deal_owner".into()
            }
        );
        assert_eq!(
            m(404, "", f),
            ClariError::UnknownForecast {
                forecast_id: "deal_owner".into()
            }
        );
        assert!(matches!(
            m(
                400,
                r#"{"code":"export_monthly_quota_reached","message":"limit"}"#,
                f
            ),
            ClariError::QuotaReached { .. }
        ));
        assert_eq!(
            m(400, r#"{"code":"invalid_jobId"}"#, j),
            ClariError::JobNotFinished {
                job_id: "abc".into()
            }
        );
        assert_eq!(
            m(400, r#"{"code":"SWW","message":"Something went wrong"}"#, j),
            ClariError::JobNotFound {
                job_id: "abc".into()
            }
        );
        assert_eq!(
            m(503, "<html>", none),
            ClariError::Unavailable { status: 503 }
        );
        assert!(
            matches!(m(400, r#"[{"statusCode":400,"reaspnPhrase":"Bad Request","details":"oppId is required"}]"#, none), ClariError::BadRequest { message } if message == "oppId is required")
        );
    }

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

    #[test]
    fn ids_are_validated() {
        assert!(validate_opportunity_id("0063x00000AbCdEAAA").is_ok());
        assert!(validate_opportunity_id("006A").is_err());
        assert!(validate_forecast_id("net_arr").is_ok());
        assert!(validate_forecast_id("../admin").is_err());
        assert!(validate_job_id("6073683781a6da229df71e00").is_ok());
        assert!(validate_job_id("a/b").is_err());
    }
}
