//! `clari-mcp sandbox`: the Clari API simulator on its own, with its knobs as flags.

use anyhow::Context;
use clap::Args;

use crate::app::shutdown_signal;

#[derive(Debug, Args)]
pub struct SandboxArgs {
    #[arg(long, env = "CLARI_SANDBOX_PORT", default_value_t = 8089)]
    pub port: u16,
    #[arg(long, env = "CLARI_SANDBOX_HOST", default_value = "127.0.0.1")]
    pub host: std::net::IpAddr,
    /// Seed of the synthetic dataset (same seed, same keys and data).
    #[arg(long, env = "CLARI_SANDBOX_SEED", default_value_t = 42)]
    pub seed: u64,
    /// Print `{"base_url", "orgs": [{"name", "api_key", …}]}` as JSON and exit.
    #[arg(long)]
    pub describe: bool,
    /// How long an export job takes to finish.
    #[arg(long, env = "CLARI_SANDBOX_JOB_LATENCY_MS")]
    pub job_latency_ms: Option<u64>,
    /// Delay added to every request.
    #[arg(long, env = "CLARI_SANDBOX_REQUEST_LATENCY_MS")]
    pub request_latency_ms: Option<u64>,
    #[arg(long, env = "CLARI_SANDBOX_CONCURRENT_LIMIT")]
    pub concurrent_limit: Option<u32>,
    #[arg(long, env = "CLARI_SANDBOX_MONTHLY_QUOTA")]
    pub monthly_quota: Option<u32>,
    /// Make every Nth request fail with --failure.
    #[arg(long, env = "CLARI_SANDBOX_FAIL_EVERY")]
    pub fail_every: Option<u32>,
    /// The injected failure: 429, 500, 503 or timeout.
    #[arg(long, env = "CLARI_SANDBOX_FAILURE", value_parser = parse_failure)]
    pub failure: Option<crate::clari::sandbox::Failure>,
    /// Answer 401 for this key as if it were revoked in Clari (repeatable).
    #[arg(long, value_name = "KEY")]
    pub revoke_key: Vec<String>,
}

fn parse_failure(text: &str) -> Result<crate::clari::sandbox::Failure, String> {
    crate::clari::sandbox::Failure::parse(text)
        .ok_or_else(|| format!("'{text}' is not one of 429, 500, 503, timeout"))
}

pub(super) async fn run(args: SandboxArgs) -> anyhow::Result<()> {
    use crate::clari::sandbox::{self, Knobs, SandboxConfig};
    let defaults = Knobs::default();
    let knobs = Knobs {
        job_latency_ms: args.job_latency_ms.unwrap_or(defaults.job_latency_ms),
        request_latency_ms: args
            .request_latency_ms
            .unwrap_or(defaults.request_latency_ms),
        concurrent_limit: args.concurrent_limit.unwrap_or(defaults.concurrent_limit),
        monthly_quota: args.monthly_quota.unwrap_or(defaults.monthly_quota),
        fail_every: args.fail_every.unwrap_or(defaults.fail_every),
        failure: args.failure.unwrap_or(defaults.failure),
        revoked_keys: args.revoke_key.clone(),
        ..defaults
    };
    let addr = std::net::SocketAddr::new(args.host, args.port);
    if args.describe {
        let data = sandbox::Dataset::generate(args.seed, time::OffsetDateTime::now_utc());
        let out = serde_json::json!({"base_url": format!("http://{addr}/v4"), "orgs": sandbox::describe_orgs(&data)});
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    let handle = sandbox::start(SandboxConfig {
        addr,
        seed: args.seed,
        knobs,
        ..SandboxConfig::default()
    })
    .await
    .with_context(|| format!("binding {addr}"))?;
    println!("Clari sandbox listening on {}", handle.base_url);
    for org in handle.orgs() {
        println!(
            "  {:<22} api key: {}   manager key: {}",
            org.name, org.api_key, org.manager_api_key
        );
    }
    let first = &handle.orgs()[0];
    println!(
        "Try:  curl -s -H 'apikey: {}' {}/admin/limits",
        first.api_key, handle.base_url
    );
    println!(
        "      curl -s -X POST -H 'apikey: {}' {}/export/forecast/forecast",
        first.api_key, handle.base_url
    );
    println!(
        "Knobs: GET/PUT {}/_sandbox/knobs",
        handle.base_url.trim_end_matches("/v4")
    );
    shutdown_signal().await;
    Ok(())
}
