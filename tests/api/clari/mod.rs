//! The Clari client against the sandbox on port 0: every endpoint, every error path, retries and
//! backoff, batching, the job lifecycle, and the limits.

mod errors;
mod exports;
mod jobs;
mod reads;
mod transport;

use std::time::{Duration, Instant};

use clari_mcp::clari::client::{ClariClient, ClariTarget, ClientOptions, RetryPolicy};
use clari_mcp::clari::sandbox::{self, Failure, Knobs, SandboxConfig, SandboxHandle};
use clari_mcp::clari::types::*;
use clari_mcp::clari::{ClariError, ExportState, ForecastId, JobId, OpportunityId, WaitPolicy};
use secrecy::SecretString;

async fn sandbox_with(knobs: Knobs) -> SandboxHandle {
    sandbox::start(SandboxConfig {
        knobs,
        ..SandboxConfig::default()
    })
    .await
    .unwrap()
}

fn fast_knobs() -> Knobs {
    Knobs {
        job_latency_ms: 80,
        retry_after_secs: 1,
        ..Knobs::default()
    }
}

fn client() -> ClariClient {
    ClariClient::new(ClientOptions {
        connect_timeout: Duration::from_secs(2),
        request_timeout: Duration::from_secs(5),
        retry: RetryPolicy {
            max_retries: 3,
            base_delay: Duration::from_millis(20),
            max_delay: Duration::from_millis(100),
            max_total: Duration::from_secs(10),
        },
        batch_concurrency: 4,
        ..ClientOptions::default()
    })
}

fn target(sb: &SandboxHandle, org: usize) -> ClariTarget {
    ClariTarget::new(
        &sb.base_url,
        SecretString::from(sb.orgs()[org].api_key.clone()),
    )
    .unwrap()
}

fn manager_target(sb: &SandboxHandle, org: usize) -> ClariTarget {
    ClariTarget::new(
        &sb.base_url,
        SecretString::from(sb.orgs()[org].manager_api_key.clone()),
    )
    .unwrap()
}

fn quick_wait() -> WaitPolicy {
    WaitPolicy {
        poll_interval: Duration::from_millis(30),
        deadline: Duration::from_secs(10),
        still_wanted: None,
    }
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

fn fid(id: &str) -> ForecastId {
    ForecastId::parse(id).unwrap()
}

fn opp_ids(ids: &[String]) -> Vec<OpportunityId> {
    ids.iter()
        .map(|id| OpportunityId::parse(id).unwrap())
        .collect()
}

fn period(p: &str) -> TimePeriod {
    TimePeriod::parse(p).unwrap()
}
