//! What the parts of a warm tool call cost that are not the protocol's: the audit trail, the
//! metrics, redaction and the credential check, each alone, on one core:
//! `cargo run --release --example hotpath [forecast-result.json] [--quick]`. `bench/run.sh` runs it with
//! the `get_forecast` answer it measured the servers with.
//!
//! - **audit**: recording a `tool.call` event as a call does, and the writer's share (hashing
//!   it into the chain and appending it to SQLite), as CPU time of the whole process per event;
//! - **metrics**: counting the call, its latency, bytes and tokens;
//! - **redaction**: the organisation's policy over the answer's JSON tree and its text, with the
//!   server's default (off) and with every kind on;
//! - **credential**: an API key found in memory (`state::Cached`), and the store lookup it
//!   replaces on a warm call.

use std::sync::Arc;
use std::time::Instant;

use clari_mcp::audit::{Actor, AuditLog, Event};
use clari_mcp::clock::{Clock, SystemClock};
use clari_mcp::crypto::{Vault, sha256_hex};
use clari_mcp::metrics::Metrics;
use clari_mcp::redact::{KINDS, RedactionPolicy, Redactor};
use clari_mcp::store::changes::OrgCache;
use clari_mcp::store::{self, NewApiKey, Store};

/// The server's own allocator, so the comparison is of the code, not of the allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// CPU seconds (user + system) of this process so far.
fn cpu() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

/// Runs `f` `n` times; µs of CPU per run (or of wall time for short loops, which the clock
/// ticks of /proc are too coarse for).
fn per_call(n: u32, mut f: impl FnMut()) -> f64 {
    let t = Instant::now();
    for _ in 0..n {
        f();
    }
    t.elapsed().as_secs_f64() * 1e6 / f64::from(n)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    // `--quick` (the smoke test on a debug build): a tenth of the rounds.
    let scale = if std::env::args().any(|a| a == "--quick") {
        10
    } else {
        1
    };
    let answer: serde_json::Value = match std::env::args().nth(1).filter(|a| a != "--quick") {
        Some(path) => serde_json::from_str(&std::fs::read_to_string(path)?)?,
        None => serde_json::json!({"structuredContent": {"status": "ready", "total": {
            "user_id": "1001", "name": "Ava Chen", "commit": 1_250_000.0}}, "content": []}),
    };
    let structured = answer.get("structuredContent").cloned().unwrap_or_default();
    let text = serde_json::to_string_pretty(&structured)?;
    println!(
        "answer: {} bytes of JSON, {} of text",
        structured.to_string().len(),
        text.len()
    );

    // Metrics.
    let metrics = Metrics::shared();
    let us = per_call(200_000 / scale, || {
        metrics.tool_call("get_forecast", None, 0.000_4, 2_000);
    });
    println!("metrics: {us:.2} µs per call");

    // Redaction.
    let pseudonym = |v: &str| sha256_hex(v)[..4].to_owned();
    for (label, kinds) in [
        ("redaction, server default (off)", Vec::new()),
        (
            "redaction, every kind on",
            KINDS.iter().map(|k| (*k).to_owned()).collect(),
        ),
    ] {
        let r = Redactor::new(&RedactionPolicy {
            kinds,
            custom: Vec::new(),
        })?;
        let us = per_call(5_000 / scale, || {
            let mut tree = structured.clone();
            r.json(&mut tree, &pseudonym);
            let _ = r.text(&text, &pseudonym);
        });
        let clone = per_call(5_000 / scale, || {
            let _ = structured.clone();
        });
        println!("{label}: {:.2} µs per call", (us - clone).max(0.0));
    }

    // The store, the credential check and the audit trail, on SQLite.
    let dir = tempfile::tempdir()?;
    let url = format!("sqlite://{}/hotpath.db", dir.path().display());
    let store: Arc<dyn Store> = store::connect(&url).await?;
    let vault = Vault::new(&[Vault::generate_key()])?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let now = clock.now();
    let org = store
        .create_org(&clari_mcp::orgname::OrgName::parse("Hot Path")?, now)
        .await?;
    let user = store
        .create_user(
            &org.id,
            &clari_mcp::store::Email::parse("ava@hotpath.example")?,
            "not a hash",
            clari_mcp::store::Role::Member,
            now,
        )
        .await?;
    let key = "cmk_hotpath";
    store
        .create_api_key(&NewApiKey {
            id: clari_mcp::store::ApiKeyId::new_random(),
            organization_id: org.id.clone(),
            user_id: user.id.clone(),
            name: "bench".into(),
            key_hash: sha256_hex(key),
            key_hint: "path".into(),
            scopes: clari_mcp::scope::ScopeSet::parse("clari:read")?,
            expires_at: None,
            created_at: now,
        })
        .await?;
    let digest = sha256_hex(key);
    let n = 20_000 / scale;
    let t = Instant::now();
    for _ in 0..n {
        store.authenticate_api_key(&digest, now).await?;
    }
    let lookup = t.elapsed().as_secs_f64() * 1e6 / f64::from(n);
    println!("credential, store lookup (SQLite): {lookup:.2} µs per call");
    let cache = OrgCache::new(100_000);
    let changes = store.changes();
    let principal = store.authenticate_api_key(&digest, now).await?.unwrap();
    cache.put(
        changes,
        changes.ticket(),
        digest.clone(),
        &org.id,
        principal,
        now + 60,
    );
    let us = per_call(500_000 / scale, || {
        assert!(cache.get(changes, &digest, now).is_some());
    });
    println!("credential, kept in memory (change file checked): {us:.2} µs per call");

    let audit = AuditLog::start(
        store.clone(),
        &vault,
        clock.clone(),
        Default::default(),
        metrics.clone(),
    )
    .await?;
    let events = 20_000 / scale;
    let (cpu0, t) = (cpu(), Instant::now());
    for i in 0..events {
        audit.record(
            Event::new(
                Some(&org.id),
                Actor::person(user.id.as_str(), "ava@hotpath.example"),
                "tool.call",
            )
            .target("get_forecast")
            .outcome("success")
            .from_request(Some(format!("req-{i}")), Some("127.0.0.1".into()))
            .detail("tool", "get_forecast")
            .detail("args_digest", sha256_hex("{}"))
            .detail("latency_ms", 1)
            .detail("result_bytes", 2_000)
            .detail("estimated_tokens", 500)
            .detail("cache", "hit"),
        );
        if i % 1_000 == 999 {
            audit.flush().await;
        }
    }
    audit.flush().await;
    let wall = t.elapsed().as_secs_f64() * 1e6 / f64::from(events);
    let cpu_us = (cpu() - cpu0) * 1e6 / f64::from(events);
    println!("audit: {cpu_us:.1} µs of CPU per event, recorded and written ({wall:.1} µs wall)");
    Ok(())
}
