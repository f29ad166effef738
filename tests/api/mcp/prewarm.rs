//! Pre-warmed forecasts, driven pass by pass with the injected clock: the first question answers
//! from cache, refreshes come ahead of expiry, the daily budget and the last concurrency slot
//! hold, and two replicas start one export between them.

use clari_mcp::exports::prewarm::{self, PrewarmPass};

use super::*;
use crate::helpers::mcp::mcp_env_with_replica_and;

both_backends!(
    the_first_question_of_the_day_answers_from_the_prewarmed_cache,
    the_daily_budget_stops_refreshes_until_the_next_utc_day,
    prewarming_never_takes_the_last_concurrency_slot,
    two_replicas_prewarming_at_once_start_one_export,
);

const PREWARM: (&str, &str) = ("CLARI_MCP_PREWARM", "forecast");

async fn the_first_question_of_the_day_answers_from_the_prewarmed_cache(db: &TestDb) {
    let env = mcp_env_with(db, &[PREWARM]).await;
    let state = &env.app.state;
    // The pass at start exports the forecast once, with nobody asking.
    let pass = prewarm::run_pass(state).await;
    assert_eq!(pass.started, 1, "{pass:?}");
    assert_eq!(env.sandbox.jobs_created(), 1);

    let key = env.api_key("forecasts:read").await;
    let first = call_tool(&env.app, &key, "get_forecast", json!({"wait_seconds": 0})).await;
    assert_eq!(first["structuredContent"]["status"], "ready", "{first}");
    assert_eq!(state.metrics.prewarm_hits.get(), 1);
    assert_eq!(env.sandbox.jobs_created(), 1, "answered from the cache");

    // Nothing is due until an hour has passed (a 5 min TTL on 24 exports a day: hourly).
    assert_eq!(prewarm::run_pass(state).await.fresh, 1);
    env.app.clock.advance(3_599);
    assert_eq!(prewarm::run_pass(state).await.fresh, 1);
    // Long past the interactive TTL, the pre-warmed entry is still served.
    let later = call_tool(&env.app, &key, "get_forecast", json!({"wait_seconds": 0})).await;
    assert_eq!(later["structuredContent"]["status"], "ready");
    assert_eq!(env.sandbox.jobs_created(), 1);
    // Then the refresh lands before the entry expires, and answers keep coming from memory.
    env.app.clock.advance(1);
    assert_eq!(prewarm::run_pass(state).await.started, 1);
    assert_eq!(env.sandbox.jobs_created(), 2);
    env.app.clock.advance(120);
    let after = call_tool(&env.app, &key, "get_forecast", json!({"wait_seconds": 0})).await;
    assert_eq!(after["structuredContent"]["status"], "ready");
    assert_eq!(state.metrics.prewarm_hits.get(), 3);
    assert_eq!(env.sandbox.jobs_created(), 2);
    // The refresh is in the organisation's audit trail, as the system's doing.
    state.audit.flush().await;
    let events = state
        .store
        .find_audit_events(
            env.org.as_str(),
            &clari_mcp::store::AuditFilter {
                action: Some("export.prewarm".into()),
                ..Default::default()
            },
            None,
            10,
        )
        .await
        .unwrap();
    assert_eq!(events.len(), 2);
    assert_eq!(events[0].actor_kind, "system");
}

async fn the_daily_budget_stops_refreshes_until_the_next_utc_day(db: &TestDb) {
    let env = mcp_env_with(db, &[("CLARI_MCP_PREWARM_DAILY_BUDGET", "1")]).await;
    let state = &env.app.state;
    // Plenty of Clari slots: only the budget limits.
    env.sandbox.set_knobs(|k| k.concurrent_limit = 10);
    clari_mcp::store::PrewarmStore::set_org_prewarm(
        state.store.as_ref(),
        &env.org,
        Some("forecast,renewals"),
    )
    .await
    .unwrap();
    // Both tabs are due; the one export of the day goes to whichever spends it first.
    let pass = prewarm::run_pass(state).await;
    assert_eq!((pass.started, pass.skipped), (1, 1), "{pass:?}");
    assert_eq!(env.sandbox.jobs_created(), 1);
    // The other stays cold for the rest of the day, however often we look.
    env.app.clock.advance(600);
    let pass = prewarm::run_pass(state).await;
    assert_eq!(
        (pass.started, pass.skipped, pass.fresh),
        (0, 1, 1),
        "{pass:?}"
    );
    assert_eq!(env.sandbox.jobs_created(), 1);
    // A new UTC day brings a new budget.
    let now = state.now();
    env.app.clock.advance(86_400 - now.rem_euclid(86_400) + 1);
    let pass = prewarm::run_pass(state).await;
    assert_eq!(pass.started, 1, "{pass:?}");
    assert_eq!(env.sandbox.jobs_created(), 2);
}

async fn prewarming_never_takes_the_last_concurrency_slot(db: &TestDb) {
    let env = mcp_env_with(db, &[PREWARM]).await;
    let state = &env.app.state;
    // One slot: it is the interactive callers'.
    env.sandbox.set_knobs(|k| k.concurrent_limit = 1);
    let pass = prewarm::run_pass(state).await;
    assert_eq!(pass.skipped, 1, "{pass:?}");
    assert_eq!(env.sandbox.jobs_created(), 0);
    // Two slots, one held by another client of the same Clari key: Clari's count says so.
    env.sandbox.set_knobs(|k| {
        k.concurrent_limit = 2;
        k.job_latency_ms = 1_500;
    });
    let other_client = reqwest::Client::new()
        .post(format!("{}/export/forecast/renewals", env.sandbox.base_url))
        .header("apikey", &env.sandbox.orgs()[0].api_key)
        .json(&json!({"typesToExport": ["forecast"]}))
        .send()
        .await
        .unwrap();
    assert!(
        other_client.status().is_success(),
        "{}",
        other_client.status()
    );
    let pass = prewarm::run_pass(state).await;
    assert_eq!(pass.skipped, 1, "{pass:?}");
    assert_eq!(env.sandbox.jobs_created(), 1, "only the other client's");
    wait_until_idle(&env).await;
    // Two slots, one held by an interactive export: still the last one.
    let key = env.api_key("forecasts:read").await;
    let asked = call_tool(
        &env.app,
        &key,
        "get_forecast",
        json!({"forecast_id": "renewals", "wait_seconds": 0}),
    )
    .await;
    assert_eq!(asked["structuredContent"]["status"], "running", "{asked}");
    wait_for_jobs(&env, 2).await;
    let pass = prewarm::run_pass(state).await;
    assert_eq!(pass.skipped, 1, "{pass:?}");
    assert_eq!(env.sandbox.jobs_created(), 2);
    // Once it finished, the pre-warm goes ahead with one slot to spare.
    let done = call_tool(
        &env.app,
        &key,
        "get_forecast",
        json!({"forecast_id": "renewals", "wait_seconds": 30}),
    )
    .await;
    assert_eq!(done["structuredContent"]["status"], "ready");
    assert_eq!(prewarm::run_pass(state).await.started, 1);
    assert_eq!(env.sandbox.jobs_created(), 3);
}

/// Waits (polling the sandbox's limits, not a fixed sleep) until no export job runs.
async fn wait_until_idle(env: &McpEnv) {
    let http = reqwest::Client::new();
    for _ in 0..1_000 {
        let limits: Value = http
            .get(format!("{}/admin/limits", env.sandbox.base_url))
            .header("apikey", &env.sandbox.orgs()[0].api_key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if limits["jobs"]["availableConcurrentLimit"] == limits["jobs"]["concurrentLimit"] {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("the sandbox's jobs never finished");
}

/// Waits (by polling, not a fixed sleep) until the sandbox has created `n` jobs.
async fn wait_for_jobs(env: &McpEnv, n: usize) {
    for _ in 0..500 {
        if env.sandbox.jobs_created() >= n {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("the sandbox never saw {n} jobs");
}

async fn two_replicas_prewarming_at_once_start_one_export(db: &TestDb) {
    let (env, b) = mcp_env_with_replica_and(db, &[PREWARM]).await;
    env.sandbox.set_knobs(|k| k.job_latency_ms = 500);
    let (on_a, on_b): (PrewarmPass, PrewarmPass) = tokio::join!(
        prewarm::run_pass(&env.app.state),
        prewarm::run_pass(&b.state)
    );
    assert_eq!(on_a.started + on_b.started, 1, "{on_a:?} {on_b:?}");
    assert_eq!(env.sandbox.jobs_created(), 1);
    // The replica that did not export gets the result without another export: it followed the
    // job, or follows it now that it is done.
    let key = env.api_key("forecasts:read").await;
    for app in [&env.app, &b] {
        let got = call_tool(app, &key, "get_forecast", json!({"wait_seconds": 10})).await;
        assert_eq!(got["structuredContent"]["status"], "ready", "{got}");
    }
    let again = prewarm::run_pass(&b.state).await;
    assert_eq!(again.started, 0, "{again:?}");
    assert_eq!(env.sandbox.jobs_created(), 1);
}
