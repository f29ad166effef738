//! Answers every MCP host can use: each tool's `structuredContent` validates against the tool's own
//! advertised `outputSchema` (JSON Schema 2020-12) in every state it can answer in, the text
//! content carries the same data, error results carry no structure, and an agent's burst of
//! export-backed calls is shared and queued behind Clari's concurrency limit instead of failing.

use std::collections::HashMap;

use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::TestDb;
use crate::helpers::mcp::*;

both_backends!(
    every_answer_validates_against_its_output_schema_in_every_state,
    a_burst_of_export_tools_shares_exports_and_stays_within_the_limit,
    exports_beyond_the_concurrency_limit_are_queued_and_then_run,
);

/// The advertised output schemas, compiled, by tool name.
pub(crate) struct Schemas(HashMap<String, jsonschema::Validator>);

impl Schemas {
    pub(crate) async fn load(env: &McpEnv, key: &str) -> Self {
        let list = rpc(&env.app, Some(key), "tools/list", json!({})).await;
        let mut map = HashMap::new();
        for t in list.body["result"]["tools"].as_array().unwrap() {
            let schema = &t["outputSchema"];
            let validator = jsonschema::draft202012::new(schema)
                .unwrap_or_else(|e| panic!("{}: schema does not compile: {e}", t["name"]));
            map.insert(t["name"].as_str().unwrap().to_owned(), validator);
        }
        assert!(!map.is_empty());
        Self(map)
    }

    /// Checks one `tools/call` result the way the official SDK clients do, and more.
    pub(crate) fn check(&self, tool: &str, result: &Value) {
        let text = result["content"][0]["text"].as_str().unwrap_or_default();
        if result["isError"] == true {
            assert!(
                result.get("structuredContent").is_none_or(Value::is_null),
                "{tool}: an error result carries structured content: {result}"
            );
            return;
        }
        let structured = &result["structuredContent"];
        let validator = &self.0[tool];
        let errors: Vec<String> = validator
            .iter_errors(structured)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(
            errors.is_empty(),
            "{tool}: structuredContent does not match its outputSchema: {errors:?}\n{structured}"
        );
        // The text: a summary line for people, then the very same object.
        let (summary, json_line) = text
            .split_once('\n')
            .unwrap_or_else(|| panic!("{tool}: text has no data line: {text}"));
        assert!(
            !summary.trim().is_empty() && !summary.starts_with('{'),
            "{tool}: {text}"
        );
        let from_text: Value = serde_json::from_str(json_line)
            .unwrap_or_else(|e| panic!("{tool}: the data line is not JSON ({e}): {json_line}"));
        assert_eq!(&from_text, structured, "{tool}: text and structure differ");
        // And every leaf value can be read in the text as written.
        for leaf in leaves(structured) {
            assert!(
                text.contains(&leaf),
                "{tool}: {leaf} is missing from the text"
            );
        }
    }
}

fn leaves(v: &Value) -> Vec<String> {
    match v {
        Value::Object(m) => m.values().flat_map(leaves).collect(),
        Value::Array(a) => a.iter().flat_map(leaves).collect(),
        Value::Null => Vec::new(),
        other => vec![other.to_string()],
    }
}

async fn call_checked(env: &McpEnv, s: &Schemas, key: &str, tool: &str, args: Value) -> Value {
    let r = call_tool(&env.app, key, tool, args.clone()).await;
    s.check(tool, &r);
    r
}

fn status(r: &Value) -> &str {
    r["structuredContent"]["status"].as_str().unwrap_or("")
}

async fn every_answer_validates_against_its_output_schema_in_every_state(db: &TestDb) {
    let env = mcp_env(db).await;
    let key = env.api_key("clari:read").await;
    let s = Schemas::load(&env, &key).await;
    let data = &env.sandbox.dataset().orgs[0];
    let opp = data.opps[0].id.clone();
    let now = env.app.state.now();
    let day = |t: i64| clari_mcp::clock::rfc3339(t)[..10].to_owned();

    // Ready, with default arguments.
    let ready: Vec<(&str, Value)> = vec![
        ("get_forecast", json!({})),
        (
            "list_forecast_submissions",
            json!({"since": day(now - 30 * 86_400)}),
        ),
        ("list_time_periods", json!({})),
        ("list_users", json!({})),
        (
            "get_deal_risk",
            json!({"opportunity_ids": [opp.clone(), "006000000000000AAA"]}),
        ),
        ("get_opportunity", json!({"opportunity_id": opp.clone()})),
        ("list_opportunities", json!({})),
        ("list_accounts", json!({})),
        (
            "get_pipeline_changes",
            json!({"since": day(now - 30 * 86_400)}),
        ),
        ("list_audit_events", json!({})),
        ("list_export_jobs", json!({})),
        ("get_admin_limits", json!({})),
    ];
    for (tool, args) in &ready {
        let r = call_checked(&env, &s, &key, tool, args.clone()).await;
        assert_eq!(r["isError"], false, "{tool}: {r}");
        assert!(
            status(&r) == "ready" || status(&r).is_empty(),
            "{tool}: {r}"
        );
    }
    let jobs = call_tool(&env.app, &key, "list_export_jobs", json!({})).await;
    let job_id = jobs["structuredContent"]["jobs"][0]["job_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = call_checked(&env, &s, &key, "get_export_job", json!({"job_id": job_id})).await;
    assert_eq!(r["isError"], false, "{r}");

    // Truncated pages and narrowed fields.
    let r = call_checked(&env, &s, &key, "list_users", json!({"limit": 2})).await;
    assert_eq!(r["structuredContent"]["next_cursor"], "2");
    let next = call_checked(
        &env,
        &s,
        &key,
        "list_users",
        json!({"limit": 2, "cursor": "2"}),
    )
    .await;
    assert_ne!(
        next["structuredContent"]["users"][0],
        r["structuredContent"]["users"][0]
    );
    let r = call_checked(
        &env,
        &s,
        &key,
        "get_forecast",
        json!({"limit": 1, "fields": ["commit"]}),
    )
    .await;
    assert_eq!(r["structuredContent"]["truncated"], true, "{r}");
    let r = call_checked(&env, &s, &key, "list_opportunities", json!({"limit": 1})).await;
    assert!(r["structuredContent"]["next_cursor"].is_string(), "{r}");
    let r = call_checked(&env, &s, &key, "list_audit_events", json!({"limit": 1})).await;
    assert!(r["structuredContent"]["next_cursor"].is_string(), "{r}");

    // Empty windows (days with no activity, submissions or changes).
    let (from, to) = (day(now + 10 * 86_400), day(now + 20 * 86_400));
    for tool in [
        "list_opportunities",
        "list_accounts",
        "get_pipeline_changes",
        "list_forecast_submissions",
    ] {
        let r = call_checked(&env, &s, &key, tool, json!({"since": from, "until": to})).await;
        assert_eq!(r["isError"], false, "{tool}: {r}");
        assert_eq!(status(&r), "ready", "{tool}: {r}");
    }

    // A manager's key in Clari sees only that team: still valid answers.
    let st = &env.app.state;
    let team = st
        .store
        .create_org(&crate::helpers::org_name("Team"), st.now())
        .await
        .unwrap();
    let sealed = st
        .vault
        .seal(env.sandbox.orgs()[0].manager_api_key.as_bytes());
    st.store
        .put_clari_credential(&team.id, &sealed, "mmmm", None, st.now())
        .await
        .unwrap();
    st.store
        .add_membership(
            &team.id,
            &env.user,
            clari_mcp::store::Role::Member,
            st.now(),
        )
        .await
        .unwrap();
    let manager_key = env.api_key_for(&team.id, &env.user, "clari:read").await;
    for tool in ["get_forecast", "list_users", "list_time_periods"] {
        let r = call_checked(&env, &s, &manager_key, tool, json!({})).await;
        assert_eq!(r["isError"], false, "{tool}: {r}");
    }

    // Errors carry no structured content.
    for (tool, args) in [
        ("get_forecast", json!({"time_period": "2024-Q5"})),
        ("list_users", json!({"cursor": "99999"})),
        ("list_audit_events", json!({"cursor": "not-ours"})),
    ] {
        let r = call_checked(&env, &s, &key, tool, args).await;
        assert_eq!(r["isError"], true, "{tool}: {r}");
    }

    // Running: exports that take longer than the caller waits.
    env.sandbox.set_knobs(|k| k.job_latency_ms = 30_000);
    let jobs_before = env.sandbox.jobs_created();
    let old_quarter = data.periods[data.current_period() - 1].id.clone();
    let (old_from, old_to) = (day(now - 200 * 86_400), day(now - 150 * 86_400));
    let slow: Vec<(&str, Value)> = vec![
        (
            "get_forecast",
            json!({"time_period": old_quarter, "wait_seconds": 0}),
        ),
        (
            "list_forecast_submissions",
            json!({"time_period": old_quarter, "wait_seconds": 0}),
        ),
        (
            "list_time_periods",
            json!({"time_period": old_quarter, "wait_seconds": 0}),
        ),
        (
            "list_users",
            json!({"forecast_id": "renewals", "wait_seconds": 0}),
        ),
        (
            "list_opportunities",
            json!({"since": old_from, "until": old_to, "wait_seconds": 0}),
        ),
        (
            "list_accounts",
            json!({"since": old_from, "until": old_to, "wait_seconds": 0}),
        ),
        (
            "get_pipeline_changes",
            json!({"since": old_from, "until": old_to, "wait_seconds": 0}),
        ),
    ];
    for (tool, args) in &slow {
        let r = call_checked(&env, &s, &key, tool, args.clone()).await;
        assert_eq!(r["isError"], false, "{tool}: {r}");
        assert!(["running", "queued"].contains(&status(&r)), "{tool}: {r}");
    }
    // Queued: once the organisation's three slots are busy with the exports above.
    for _ in 0..500 {
        if env.sandbox.jobs_created() >= jobs_before + 3 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(
        env.sandbox.jobs_created(),
        jobs_before + 3,
        "three exports started"
    );
    let r = call_checked(
        &env,
        &s,
        &key,
        "get_forecast",
        json!({"forecast_id": "renewals", "time_period": old_quarter, "wait_seconds": 1}),
    )
    .await;
    assert_eq!(status(&r), "queued", "{r}");
    assert!(r["structuredContent"]["position"].as_u64().unwrap() >= 1);
    assert!(env.sandbox.peak_running_jobs() <= 3);
}

async fn a_burst_of_export_tools_shares_exports_and_stays_within_the_limit(db: &TestDb) {
    let env = mcp_env(db).await;
    env.sandbox.set_knobs(|k| k.job_latency_ms = 8_000);
    let key = env.api_key("clari:read").await;
    let s = Schemas::load(&env, &key).await;
    let tools = [
        "get_forecast",
        "list_forecast_submissions",
        "list_time_periods",
        "list_users",
        "list_opportunities",
        "list_accounts",
        "get_pipeline_changes",
    ];
    for tool in tools {
        let r = call_checked(&env, &s, &key, tool, json!({"wait_seconds": 1})).await;
        assert_eq!(r["isError"], false, "{tool} answered an error: {r}");
        assert!(["running", "queued"].contains(&status(&r)), "{tool}: {r}");
    }
    assert!(
        env.sandbox.peak_running_jobs() <= 3,
        "never more jobs than Clari's limit"
    );
    assert_eq!(
        env.sandbox.jobs_created(),
        2,
        "one forecast export and one activity export serve all seven tools"
    );
    for tool in tools {
        let r = call_checked(&env, &s, &key, tool, json!({"wait_seconds": 30})).await;
        assert_eq!(status(&r), "ready", "{tool}: {r}");
    }
    assert_eq!(env.sandbox.jobs_created(), 2);
}

async fn exports_beyond_the_concurrency_limit_are_queued_and_then_run(db: &TestDb) {
    let env = mcp_env(db).await;
    env.sandbox.set_knobs(|k| {
        k.concurrent_limit = 1;
        k.job_latency_ms = 1_000;
    });
    let key = env.api_key("forecasts:read").await;
    let s = Schemas::load(&env, &key).await;
    let data = &env.sandbox.dataset().orgs[0];
    let quarters: Vec<String> = data
        .periods
        .iter()
        .rev()
        .take(3)
        .map(|p| p.id.clone())
        .collect();
    let mut first = Vec::new();
    for q in &quarters {
        let r = call_checked(
            &env,
            &s,
            &key,
            "get_forecast",
            json!({"time_period": q, "wait_seconds": 0}),
        )
        .await;
        assert_eq!(r["isError"], false, "{r}");
        first.push(status(&r).to_owned());
    }
    assert!(
        first.iter().all(|st| st == "running" || st == "queued"),
        "{first:?}"
    );
    // Every one is answered, one upstream job at a time.
    for q in &quarters {
        let r = call_checked(
            &env,
            &s,
            &key,
            "get_forecast",
            json!({"time_period": q, "wait_seconds": 30}),
        )
        .await;
        assert_eq!(status(&r), "ready", "{q}: {r}");
        assert_eq!(r["structuredContent"]["time_period"], q.as_str());
    }
    assert_eq!(env.sandbox.jobs_created(), 3);
    assert_eq!(env.sandbox.peak_running_jobs(), 1, "never two jobs at once");

    // A slot held by another client of the same Clari key: queued, then run, never an error.
    let http = reqwest::Client::new();
    let created = http
        .post(format!("{}/export/forecast/renewals", env.sandbox.base_url))
        .header("apikey", &env.sandbox.orgs()[0].api_key)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert!(created.status().is_success(), "{}", created.status());
    let r = call_checked(
        &env,
        &s,
        &key,
        "list_time_periods",
        json!({"forecast_id": "renewals", "wait_seconds": 0}),
    )
    .await;
    assert!(["running", "queued"].contains(&status(&r)), "{r}");
    let r = call_checked(
        &env,
        &s,
        &key,
        "list_time_periods",
        json!({"forecast_id": "renewals", "wait_seconds": 30}),
    )
    .await;
    assert_eq!(status(&r), "ready", "{r}");
    assert_eq!(env.sandbox.peak_running_jobs(), 1);

    // Only an exhausted monthly quota is an error.
    env.sandbox.set_knobs(|k| k.quota_exhausted = true);
    let r = call_checked(
        &env,
        &s,
        &key,
        "get_forecast",
        json!({"forecast_id": "renewals", "time_period": quarters[1], "wait_seconds": 10}),
    )
    .await;
    assert_eq!(r["isError"], true, "{r}");
    assert!(
        r["content"][0]["text"]
            .as_str()
            .unwrap()
            .contains("monthly quota"),
        "{r}"
    );
}

#[tokio::test]
async fn two_replicas_share_one_queue_over_postgres() {
    let Some(db) = TestDb::new(crate::helpers::Backend::Postgres).await else {
        crate::helpers::announce_skip("mcp_answers::two_replicas_share_one_queue_over_postgres");
        return;
    };
    let (env, b) = mcp_env_with_replica(&db).await;
    env.sandbox.set_knobs(|k| {
        k.concurrent_limit = 1;
        k.job_latency_ms = 800;
    });
    let key = env.api_key("forecasts:read").await;
    let data = &env.sandbox.dataset().orgs[0];
    let quarters: Vec<String> = data
        .periods
        .iter()
        .rev()
        .take(4)
        .map(|p| p.id.clone())
        .collect();
    // Four different exports, alternately on each replica, all at once.
    let calls = quarters.iter().enumerate().map(|(i, q)| {
        let app = if i % 2 == 0 { &env.app } else { &b };
        call_tool(
            app,
            &key,
            "get_forecast",
            json!({"time_period": q, "wait_seconds": 40}),
        )
    });
    for r in futures_util::future::join_all(calls).await {
        assert_eq!(r["structuredContent"]["status"], "ready", "{r}");
    }
    assert_eq!(env.sandbox.jobs_created(), 4);
    assert_eq!(
        env.sandbox.peak_running_jobs(),
        1,
        "one slot, shared by both replicas"
    );
    db.cleanup().await;
}

#[tokio::test]
async fn default_answers_fit_the_token_budget() {
    let db = TestDb::new(crate::helpers::Backend::Sqlite).await.unwrap();
    let env = mcp_env(&db).await;
    let key = env.api_key("clari:read").await;
    let now = env.app.state.now();
    let day = |t: i64| clari_mcp::clock::rfc3339(t)[..10].to_owned();
    let opps: Vec<String> = env.sandbox.dataset().orgs[0]
        .opps
        .iter()
        .take(40)
        .map(|o| o.id.clone())
        .collect();
    let cases: Vec<(&str, Value, usize)> = vec![
        ("get_forecast", json!({}), 1_000),
        (
            "list_forecast_submissions",
            json!({"since": day(now - 30 * 86_400)}),
            4_000,
        ),
        ("list_time_periods", json!({}), 4_000),
        ("list_users", json!({}), 4_000),
        ("get_deal_risk", json!({"opportunity_ids": opps}), 4_000),
        ("list_opportunities", json!({}), 4_000),
        ("list_accounts", json!({}), 4_000),
        (
            "get_pipeline_changes",
            json!({"since": day(now - 30 * 86_400)}),
            4_000,
        ),
        ("list_audit_events", json!({}), 4_000),
        ("list_export_jobs", json!({}), 4_000),
    ];
    let mut report = Vec::new();
    for (tool, args, budget) in cases {
        let r = call_tool(&env.app, &key, tool, args).await;
        assert_eq!(r["isError"], false, "{tool}: {r}");
        let chars = r["content"][0]["text"].as_str().unwrap().chars().count();
        let tokens = chars / 4;
        report.push(format!(
            "{tool}: {chars} chars ≈ {tokens} tokens (budget {budget})"
        ));
        assert!(
            tokens <= budget,
            "{tool}: {tokens} tokens over the budget of {budget}"
        );
    }
    eprintln!("token budget:\n  {}", report.join("\n  "));
}
