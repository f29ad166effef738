//! The Clari sandbox: a simulator of the Clari Revenue API that speaks the same wire format as the
//! real one for every endpoint the client uses, over a deterministic dataset. Started in-process on
//! port 0 by tests, the demo and benchmarks, or alone by `clari-mcp sandbox`.
//!
//! Knobs (job latency, request latency, injected failures, limits, envelope variants) can be set at
//! start, per test through [`SandboxHandle`], or at run time with `PUT /_sandbox/knobs`.

mod data;
mod jobs;
mod render;
mod routes;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

pub use data::{Dataset, FIELDS, Level, OrgData, Period, Rng};

/// A failure the gateway injects instead of answering.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Failure {
    /// 429 with `Retry-After`.
    RateLimited,
    /// 500 with the exports error envelope.
    ServerError,
    /// 503 from the gateway.
    Unavailable,
    /// Holds the request for `timeout_delay_ms`, then 504.
    Timeout,
}

impl Failure {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "429" | "rate_limited" => Some(Self::RateLimited),
            "500" | "server_error" => Some(Self::ServerError),
            "503" | "unavailable" => Some(Self::Unavailable),
            "timeout" => Some(Self::Timeout),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Knobs {
    /// How long an export job takes from creation to DONE.
    pub job_latency_ms: u64,
    /// Added to every request.
    pub request_latency_ms: u64,
    pub concurrent_limit: u32,
    pub monthly_quota: u32,
    /// Every Nth request fails with `failure` (0 = never).
    pub fail_every: u32,
    pub failure: Failure,
    pub retry_after_secs: u64,
    pub timeout_delay_ms: u64,
    /// Export creation answers `export_monthly_quota_reached` regardless of counts.
    pub quota_exhausted: bool,
    /// New export jobs end FAILED instead of DONE.
    pub fail_jobs: bool,
    /// Accept `crm_total` / `crm_closed` (the spec's example rejects them).
    pub crm_types_supported: bool,
    /// `GET /export/jobs/{id}` wraps the job as `{"job": …}` (as production does).
    pub wrap_job_envelope: bool,
    /// Audit `eventTimestamp` as `{epochSecond, nano}` instead of an RFC 3339 string.
    pub timestamps_as_instant: bool,
    /// Keys answered with 401 as if revoked in Clari.
    pub revoked_keys: Vec<String>,
    /// `GET /audit/events` answers empty pages that always link to a next one (a broken upstream).
    pub audit_empty_pages: bool,
}

impl Default for Knobs {
    fn default() -> Self {
        Self {
            job_latency_ms: 1_500,
            request_latency_ms: 0,
            concurrent_limit: 3,
            monthly_quota: 1_000,
            fail_every: 0,
            failure: Failure::ServerError,
            retry_after_secs: 1,
            timeout_delay_ms: 60_000,
            quota_exhausted: false,
            fail_jobs: false,
            crm_types_supported: false,
            wrap_job_envelope: true,
            timestamps_as_instant: false,
            revoked_keys: Vec::new(),
            audit_empty_pages: false,
        }
    }
}

pub(crate) struct SandboxState {
    pub dataset: Dataset,
    pub base_url: String,
    pub knobs: Mutex<Knobs>,
    pub fail_next: Mutex<VecDeque<Failure>>,
    pub requests: std::sync::atomic::AtomicU64,
    pub jobs: jobs::JobEngine,
    /// When the sandbox started; its clock is the dataset's "now" plus the time since, plus
    /// however far a test moved it (`advanced_ms`).
    pub started: std::time::Instant,
    pub advanced_ms: std::sync::atomic::AtomicU64,
}

impl SandboxState {
    pub fn knobs(&self) -> Knobs {
        self.knobs.lock().unwrap().clone()
    }

    /// How far the sandbox's clock has been moved ahead of the wall clock.
    fn advanced(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.advanced_ms.load(std::sync::atomic::Ordering::SeqCst))
    }

    /// The sandbox's monotonic "now": job ages are measured with it.
    pub fn instant_now(&self) -> std::time::Instant {
        std::time::Instant::now() + self.advanced()
    }

    /// The sandbox's wall clock in Unix milliseconds: the dataset's "now" moving with real time.
    pub fn now_ms(&self) -> i64 {
        (self.dataset.now.unix_timestamp_nanos() / 1_000_000) as i64
            + (self.started.elapsed() + self.advanced()).as_millis() as i64
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct SandboxOrgInfo {
    pub name: String,
    /// The admin key: full visibility of the forecast hierarchy.
    pub api_key: String,
    /// A second key whose user is a first-line manager (sees only that team).
    pub manager_api_key: String,
}

pub struct SandboxConfig {
    pub addr: SocketAddr,
    pub seed: u64,
    pub knobs: Knobs,
    /// "Now" for the dataset (the current quarter and relative dates).
    pub now: OffsetDateTime,
    /// Personal data in hard-to-recognise forms in the first organisation
    /// ([`Dataset::seed_hard_pii`]).
    pub hard_pii: bool,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            seed: 42,
            knobs: Knobs::default(),
            now: OffsetDateTime::now_utc(),
            hard_pii: false,
        }
    }
}

/// A running sandbox; stops when dropped.
pub struct SandboxHandle {
    /// Base URL ending in `/v4`, like the real API's.
    pub base_url: String,
    pub addr: SocketAddr,
    state: Arc<SandboxState>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl SandboxHandle {
    pub fn orgs(&self) -> Vec<SandboxOrgInfo> {
        describe_orgs(&self.state.dataset)
    }

    pub fn dataset(&self) -> &Dataset {
        &self.state.dataset
    }

    pub fn knobs(&self) -> Knobs {
        self.state.knobs()
    }

    pub fn set_knobs(&self, f: impl FnOnce(&mut Knobs)) {
        f(&mut self.state.knobs.lock().unwrap());
    }

    /// The next `n` requests fail with `failure`.
    pub fn fail_next(&self, failure: Failure, n: usize) {
        let mut q = self.state.fail_next.lock().unwrap();
        q.extend(std::iter::repeat_n(failure, n));
    }

    /// Requests the gateway has seen (including failed ones).
    pub fn request_count(&self) -> u64 {
        self.state
            .requests
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Moves the sandbox's clock ahead, so export jobs progress (and timestamps move) as if that
    /// much time had passed, without waiting for it.
    pub fn advance(&self, by: std::time::Duration) {
        self.state
            .advanced_ms
            .fetch_add(by.as_millis() as u64, std::sync::atomic::Ordering::SeqCst);
    }

    /// Export jobs created so far, in every organisation.
    pub fn jobs_created(&self) -> usize {
        self.state.jobs.count()
    }

    /// Export jobs a client cancelled (before they started) or aborted (while running).
    pub fn jobs_cancelled(&self) -> usize {
        self.state.jobs.cancelled()
    }

    /// The most export jobs that were ever running at once in one organisation.
    pub fn peak_running_jobs(&self) -> usize {
        self.state.jobs.peak_running()
    }

    /// `{"base_url", "orgs": [{"name", "api_key", "manager_api_key"}]}`.
    pub fn describe(&self) -> serde_json::Value {
        serde_json::json!({"base_url": self.base_url, "orgs": self.orgs()})
    }
}

impl Drop for SandboxHandle {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

pub fn describe_orgs(dataset: &Dataset) -> Vec<SandboxOrgInfo> {
    dataset
        .orgs
        .iter()
        .map(|o| SandboxOrgInfo {
            name: o.name.clone(),
            api_key: o.keys[0].key.clone(),
            manager_api_key: o.keys[1].key.clone(),
        })
        .collect()
}

/// Binds `config.addr` and serves until the handle is dropped.
pub async fn start(config: SandboxConfig) -> std::io::Result<SandboxHandle> {
    let listener = tokio::net::TcpListener::bind(config.addr).await?;
    let addr = listener.local_addr()?;
    let base_url = format!("http://{addr}/v4");
    let state = Arc::new(SandboxState {
        dataset: {
            let mut d = Dataset::generate(config.seed, config.now);
            if config.hard_pii {
                d.seed_hard_pii();
            }
            d
        },
        base_url: base_url.clone(),
        knobs: Mutex::new(config.knobs),
        fail_next: Mutex::new(VecDeque::new()),
        requests: Default::default(),
        jobs: jobs::JobEngine::default(),
        started: std::time::Instant::now(),
        advanced_ms: Default::default(),
    });
    let app = routes::router(state.clone());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        // The same listener rules as the server's own; many clients share one address here.
        let limits = crate::serve::ListenerLimits {
            max_connections_per_address: 0,
            ..Default::default()
        };
        let _ = crate::serve::serve(listener, app, limits, None, async {
            let _ = rx.await;
        })
        .await;
    });
    Ok(SandboxHandle {
        base_url,
        addr,
        state,
        stop: Some(tx),
    })
}
