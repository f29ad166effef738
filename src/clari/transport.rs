//! How clari-mcp talks to Clari, whatever the endpoint: one pooled reqwest client (TCP_NODELAY,
//! gzip, connect and request timeouts, no redirects), the organisation's key on every request, and
//! the mapping of Clari's error envelopes to [`ClariError`] (by [`super::response`]). It holds no
//! tenant state: every call receives the organisation's base URL and API key in a
//! [`ClariTarget`], dropped after the call.
//!
//! Retries: 429 honours `Retry-After`; 5xx and transport errors back off exponentially with jitter,
//! bounded in count and total time; other 4xx never retry. A request that creates an export job is
//! retried only when Clari certainly did not create one (429, or the connection never opened).

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use reqwest::Method;
use reqwest::header::{ACCEPT, HeaderValue};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::Instrument as _;

use super::error::ClariError;
use super::response::{Ctx, decode, map_error, parse_retry_after, redact_query, transport_error};

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
        let base = check_base_url(base_url).map_err(|e| ClariError::InvalidArgument {
            argument: "base url",
            reason: e.to_string(),
        })?;
        Ok(Self {
            base_url: base,
            api_key,
        })
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    pub(super) fn url(&self, path: &str) -> String {
        format!("{}/{}", self.base_url, path.trim_start_matches('/'))
    }

    pub(super) fn origin(&self) -> Option<String> {
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

/// The default of `CLARI_MCP_CLARI_MAX_RESPONSE_MB`.
pub const DEFAULT_MAX_RESPONSE_MB: u64 = 256;

#[derive(Debug, Clone)]
pub struct ClientOptions {
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
    pub retry: RetryPolicy,
    /// Opportunity batches in flight at once.
    pub batch_concurrency: usize,
    /// Where requests to Clari are counted (by endpoint template and status) and timed.
    pub metrics: Option<std::sync::Arc<crate::metrics::Metrics>>,
    /// The most bytes read of one answer, after decompression (`CLARI_MCP_CLARI_MAX_RESPONSE_MB`):
    /// the base URL is an organisation admin's choice, and a gzip body of a megabyte can
    /// inflate to gigabytes.
    pub max_response_bytes: u64,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
            retry: RetryPolicy::default(),
            batch_concurrency: 4,
            metrics: None,
            max_response_bytes: DEFAULT_MAX_RESPONSE_MB << 20,
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
}

impl ClariClient {
    pub(super) async fn call_json<T: DeserializeOwned, Q, B>(
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
    pub(super) async fn call<Q, B>(
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
    pub(super) async fn send<Q, B>(
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
            let sent = Instant::now();
            let observe = |status: &str| {
                if let Some(m) = &self.opts.metrics {
                    m.clari_request(
                        crate::metrics::clari_endpoint(call.path),
                        status,
                        sent.elapsed().as_secs_f64(),
                    );
                }
            };
            // One client span per attempt (OpenTelemetry HTTP client conventions), named by the
            // endpoint template so a job id never becomes a span name.
            let endpoint = crate::metrics::clari_endpoint(call.path);
            let span = tracing::info_span!(
                "clari",
                otel.name = %format!("{} {endpoint}", call.method),
                otel.kind = "client",
                http.request.method = %call.method,
                url.template = endpoint,
                server.address = url
                    .split("://")
                    .nth(1)
                    .and_then(|rest| rest.split(['/', ':']).next())
                    .unwrap_or_default(),
                http.request.resend_count = attempt,
                http.response.status_code = tracing::field::Empty,
                error.type = tracing::field::Empty,
            );
            let (err, outcome) = match rb.send().instrument(span.clone()).await {
                Ok(resp) => {
                    let status = resp.status();
                    observe(status.as_str());
                    span.record("http.response.status_code", status.as_u16());
                    if !status.is_success() {
                        span.record("error.type", status.as_str());
                    }
                    let retry_after = parse_retry_after(resp.headers());
                    match read_capped(resp, self.opts.max_response_bytes)
                        .instrument(span.clone())
                        .await
                    {
                        Ok(bytes) if status.is_success() => return Ok(bytes),
                        Ok(bytes) => (
                            map_error(status, &bytes, call.ctx, retry_after),
                            Attempt::Answered { retry_after },
                        ),
                        Err(Capped::TooLarge) => {
                            span.record("error.type", "response_too_large");
                            let err = ClariError::ResponseTooLarge {
                                limit_mb: self.opts.max_response_bytes >> 20,
                            };
                            tracing::warn!(error = %err, url = %redact_query(url), "Clari call failed");
                            return Err(err);
                        }
                        Err(Capped::Read(e)) => (transport_error(&e), Attempt::Lost),
                    }
                }
                Err(e) if e.is_connect() => {
                    observe("connect_error");
                    span.record("error.type", "connect_error");
                    (transport_error(&e), Attempt::NeverSent)
                }
                Err(e) => {
                    let kind = if e.is_timeout() {
                        "timeout"
                    } else {
                        "network_error"
                    };
                    observe(kind);
                    span.record("error.type", kind);
                    (transport_error(&e), Attempt::Lost)
                }
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

/// Why an answer was not read whole.
enum Capped {
    TooLarge,
    Read(reqwest::Error),
}

/// The body of `resp`, decompressed, refused once it passes `limit` bytes: by its declared
/// length before anything is read, else as the chunks arrive. The buffer grows as data comes
/// (a declared length reserves at most 1 MiB up front), so it holds at most about twice the
/// limit while reading.
async fn read_capped(mut resp: reqwest::Response, limit: u64) -> Result<Bytes, Capped> {
    if resp.content_length().is_some_and(|n| n > limit) {
        return Err(Capped::TooLarge);
    }
    let mut body = Vec::with_capacity(resp.content_length().unwrap_or(0).min(1 << 20) as usize);
    while let Some(chunk) = resp.chunk().await.map_err(Capped::Read)? {
        if (body.len() + chunk.len()) as u64 > limit {
            return Err(Capped::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(body))
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
pub(super) struct Call<'a, Q: ?Sized = (), B: ?Sized = ()> {
    method: Method,
    path: &'a str,
    query: Option<&'a Q>,
    body: Option<&'a B>,
    class: Class,
    ctx: Ctx<'a>,
}

impl<'a> Call<'a> {
    /// A read: retried on 429, 5xx and transport errors.
    pub(super) fn get(path: &'a str) -> Self {
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
    pub(super) fn write(method: Method, path: &'a str) -> Self {
        Self {
            class: Class::Unsafe,
            method,
            ..Self::get(path)
        }
    }
}

impl<'a, Q: ?Sized, B: ?Sized> Call<'a, Q, B> {
    pub(super) fn query<Q2: ?Sized>(self, query: &'a Q2) -> Call<'a, Q2, B> {
        Call {
            method: self.method,
            path: self.path,
            query: Some(query),
            body: self.body,
            class: self.class,
            ctx: self.ctx,
        }
    }

    pub(super) fn body<B2: ?Sized>(self, body: &'a B2) -> Call<'a, Q, B2> {
        Call {
            method: self.method,
            path: self.path,
            query: self.query,
            body: Some(body),
            class: self.class,
            ctx: self.ctx,
        }
    }

    pub(super) fn about(self, ctx: Ctx<'a>) -> Self {
        Self { ctx, ..self }
    }
}

/// Why a URL cannot be a Clari base URL (each quotes it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BaseUrlError {
    #[error("'{0}' is not a URL")]
    NotAUrl(String),
    #[error("'{0}' is not an http(s) URL with a host")]
    NotHttp(String),
    #[error("'{0}' must not carry credentials")]
    Credentials(String),
    #[error(
        "'{0}' uses plain http to a non-loopback host, which would send the API key in clear text; use https"
    )]
    PlainHttp(String),
}

/// A Clari base URL the API key may be sent to: https, or http only to a loopback host (the
/// sandbox, a local proxy), with a host and no credentials. Returns it without a trailing slash.
pub fn check_base_url(text: &str) -> Result<String, BaseUrlError> {
    let base = text.trim().trim_end_matches('/');
    let url = url::Url::parse(base).map_err(|_| BaseUrlError::NotAUrl(base.to_owned()))?;
    let host = url.host_str().unwrap_or_default();
    if !matches!(url.scheme(), "http" | "https") || host.is_empty() {
        return Err(BaseUrlError::NotHttp(base.to_owned()));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(BaseUrlError::Credentials(base.to_owned()));
    }
    if url.scheme() == "http" && !crate::net::is_loopback_host(host) {
        return Err(BaseUrlError::PlainHttp(base.to_owned()));
    }
    Ok(base.to_owned())
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
}
