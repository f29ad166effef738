//! The Tasks extension over protocol 2026-07-28: a slow export answered with a task handle,
//! polled to completion (also from another replica), cancelled upstream, owned by its caller;
//! a caller without the extension still gets `running`.

use std::time::Duration;

use super::*;
use crate::helpers::TestApp;
use crate::helpers::mcp::{McpEnv, mcp_env_with_replica};

both_backends!(
    a_slow_export_becomes_a_task_that_completes_with_the_direct_answer,
    a_task_made_on_one_replica_is_polled_and_finished_on_the_other,
    a_cancelled_task_cancels_its_clari_export_once,
    a_task_belongs_to_its_caller_only,
    a_cancel_never_stops_an_export_another_caller_waits_for,
    upstream_cancels_are_bounded_per_caller,
);

const V2026: &str = "2026-07-28";
const TASKS: &str = "io.modelcontextprotocol/tasks";

/// One 2026-07-28 request (stateless: protocol and capabilities in `_meta`, the SEP-2243
/// headers), declaring the tasks extension when `tasks` is set. Returns (status, body).
async fn call26(
    app: &TestApp,
    token: &str,
    method: &str,
    params: Value,
    tasks: bool,
) -> (u16, Value) {
    let mut params = params;
    let caps = if tasks {
        json!({"extensions": {TASKS: {}}})
    } else {
        json!({})
    };
    params["_meta"] = json!({
        "io.modelcontextprotocol/protocolVersion": V2026,
        "io.modelcontextprotocol/clientCapabilities": caps,
        "io.modelcontextprotocol/clientInfo": {"name": "tasks-test", "version": "1"},
    });
    let name = params
        .get("name")
        .or_else(|| params.get("taskId"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    let mut req = app
        .http
        .post(app.url("/mcp"))
        .bearer_auth(token)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", V2026)
        .header("mcp-method", method)
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}));
    if let Some(n) = name {
        req = req.header("mcp-name", n);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, body)
}

async fn start_task(env: &McpEnv, app: &TestApp, key: &str) -> String {
    start_task_with(env, app, key, json!({})).await
}

async fn start_task_with(env: &McpEnv, app: &TestApp, key: &str, arguments: Value) -> String {
    env.sandbox.set_knobs(|k| k.job_latency_ms = 10_000);
    let (status, body) = call26(
        app,
        key,
        "tools/call",
        json!({"name": "get_forecast", "arguments": arguments}),
        true,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let r = &body["result"];
    assert_eq!(r["resultType"], "task", "{body}");
    assert_eq!(r["status"], "working");
    assert!(r["pollIntervalMs"].as_u64().unwrap() > 0);
    assert!(r["ttlMs"].as_u64().unwrap() > 0);
    r["taskId"].as_str().unwrap().to_owned()
}

async fn get_task(app: &TestApp, key: &str, id: &str) -> Value {
    let (status, body) = call26(app, key, "tasks/get", json!({"taskId": id}), true).await;
    assert_eq!(status, 200, "{body}");
    body
}

/// Polls until the task leaves `working` (the sandbox's clock is moved past the export).
async fn poll_until_done(env: &McpEnv, app: &TestApp, key: &str, id: &str) -> Value {
    env.sandbox.advance(Duration::from_secs(11));
    for _ in 0..200 {
        let body = get_task(app, key, id).await;
        if body["result"]["status"] != "working" {
            return body["result"].clone();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the task never finished");
}

async fn a_slow_export_becomes_a_task_that_completes_with_the_direct_answer(db: &TestDb) {
    let env = mcp_env(db).await;
    let key = env.api_key("clari:read").await;
    let app = &env.app;

    // Without the extension: today's answer.
    env.sandbox.set_knobs(|k| k.job_latency_ms = 10_000);
    let (_, plain) = call26(
        app,
        &key,
        "tools/call",
        json!({"name": "get_forecast", "arguments": {"wait_seconds": 0}}),
        false,
    )
    .await;
    assert_eq!(
        plain["result"]["structuredContent"]["status"], "running",
        "{plain}"
    );

    let id = start_task(&env, app, &key).await;
    let working = get_task(app, &key, &id).await;
    assert_eq!(working["result"]["status"], "working", "{working}");
    assert_eq!(
        env.sandbox.jobs_created(),
        1,
        "the task joined the export already running"
    );

    let done = poll_until_done(&env, app, &key, &id).await;
    assert_eq!(done["status"], "completed", "{done}");
    let answer = &done["result"];
    assert_eq!(answer["isError"], false, "{answer}");
    assert_eq!(answer["structuredContent"]["status"], "ready");
    // The same typed answer a direct call gives now (from the cache).
    let direct = call_tool(app, &key, "get_forecast", json!({})).await;
    assert_eq!(answer["structuredContent"], direct["structuredContent"]);
    assert_eq!(env.sandbox.jobs_created(), 1);
    // Finished tasks answer from the store.
    let again = get_task(app, &key, &id).await;
    assert_eq!(again["result"]["status"], "completed");
    // Each poll that read data is in the audit trail, marked with its task.
    app.state.audit.flush().await;
    let filter = clari_mcp::store::AuditFilter {
        action: Some("tool.call".into()),
        ..Default::default()
    };
    let events = app
        .state
        .store
        .find_audit_events(env.org.as_str(), &filter, None, 100)
        .await
        .unwrap();
    let polls = events
        .iter()
        .filter(|e| e.details.contains(&format!("\"task_id\":\"{id}\"")))
        .count();
    assert!(polls >= 1, "{events:?}");
    assert!(
        events.iter().any(|e| !e.details.contains("task_id")),
        "direct calls carry no task"
    );
}

async fn a_task_made_on_one_replica_is_polled_and_finished_on_the_other(db: &TestDb) {
    let (env, replica) = mcp_env_with_replica(db).await;
    let key = env.api_key("clari:read").await;
    let id = start_task(&env, &env.app, &key).await;
    replica.clock.set(env.app.clock.now_for_tests());
    let done = poll_until_done(&env, &replica, &key, &id).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["result"]["structuredContent"]["status"], "ready");
    assert_eq!(
        env.sandbox.jobs_created(),
        1,
        "one Clari export for both replicas"
    );
    let on_a = get_task(&env.app, &key, &id).await;
    assert_eq!(on_a["result"]["status"], "completed");
}

async fn a_cancelled_task_cancels_its_clari_export_once(db: &TestDb) {
    let env = mcp_env(db).await;
    let key = env.api_key("clari:read").await;
    let app = &env.app;
    let id = start_task(&env, app, &key).await;
    // The job id is known once Clari answered the creation.
    for _ in 0..100 {
        get_task(app, &key, &id).await;
        let rows = app.state.store.unfinished_exports(&env.org).await.unwrap();
        if rows.iter().any(|(_, _, job)| job.is_some()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    get_task(app, &key, &id).await;
    let (status, body) = call26(app, &key, "tasks/cancel", json!({"taskId": id}), true).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.get("error").is_none(), "{body}");
    assert_eq!(
        env.sandbox.jobs_cancelled(),
        1,
        "the Clari export was cancelled"
    );
    let after = get_task(app, &key, &id).await;
    assert_eq!(after["result"]["status"], "cancelled");
    // Idempotent: again changes nothing and is no error.
    let (status, body) = call26(app, &key, "tasks/cancel", json!({"taskId": id}), true).await;
    assert_eq!(status, 200);
    assert!(body.get("error").is_none(), "{body}");
    assert_eq!(env.sandbox.jobs_cancelled(), 1);
}

async fn a_task_belongs_to_its_caller_only(db: &TestDb) {
    let env = mcp_env(db).await;
    let key = env.api_key("clari:read").await;
    let app = &env.app;
    let id = start_task(&env, app, &key).await;
    let s = &app.state;
    let globex = s
        .store
        .create_org(&crate::helpers::org_name("Globex"), s.now())
        .await
        .unwrap();
    let bo = s
        .store
        .create_user(
            &globex.id,
            &clari_mcp::store::Email::parse("bo@globex.test").unwrap(),
            "$argon2id$x",
            clari_mcp::store::Role::Admin,
            s.now(),
        )
        .await
        .unwrap();
    let other_org = env.api_key_for(&globex.id, &bo.id, "clari:read").await;
    let same_person_other_key = env.api_key("clari:read").await;
    for token in [&other_org, &same_person_other_key] {
        for method in ["tasks/get", "tasks/cancel"] {
            let (status, body) = call26(app, token, method, json!({"taskId": id}), true).await;
            assert_eq!(status, 200, "{body}");
            assert_eq!(body["error"]["code"], -32602, "{method}: {body}");
            assert!(body.get("result").is_none());
        }
    }
    let (_, body) = call26(app, &key, "tasks/get", json!({"taskId": "task_nope"}), true).await;
    assert_eq!(body["error"]["code"], -32602);
    // The owner still sees it working: nobody else's cancel touched it.
    assert_eq!(
        get_task(app, &key, &id).await["result"]["status"],
        "working"
    );
}

/// Waits until the task's Clari job id is known (Clari answered the creation).
async fn job_known(env: &McpEnv, app: &TestApp, key: &str, id: &str, jobs: usize) {
    for _ in 0..200 {
        get_task(app, key, id).await;
        let rows = app.state.store.unfinished_exports(&env.org).await.unwrap();
        if rows.iter().filter(|(_, _, job)| job.is_some()).count() >= jobs {
            get_task(app, key, id).await;
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the export never started");
}

async fn a_cancel_never_stops_an_export_another_caller_waits_for(db: &TestDb) {
    let env = mcp_env(db).await;
    let app = &env.app;
    let member = env.api_key("clari:read").await;
    let colleague = env.api_key("forecasts:read").await;
    let id = start_task(&env, app, &member).await;
    job_known(&env, app, &member, &id, 1).await;
    // A colleague asks for the same forecast: it is running, they will come back for it.
    let r = call_tool(app, &colleague, "get_forecast", json!({"wait_seconds": 0})).await;
    assert_eq!(r["structuredContent"]["status"], "running", "{r}");
    let (status, body) = call26(app, &member, "tasks/cancel", json!({"taskId": id}), true).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        get_task(app, &member, &id).await["result"]["status"],
        "cancelled"
    );
    assert_eq!(
        env.sandbox.jobs_cancelled(),
        0,
        "the colleague's export goes on"
    );
    // And it arrives for the colleague, from the one job.
    env.sandbox.advance(Duration::from_secs(11));
    let mut done = Value::Null;
    for _ in 0..200 {
        done = call_tool(app, &colleague, "get_forecast", json!({"wait_seconds": 1})).await;
        if done["structuredContent"]["status"] == "ready" {
            break;
        }
    }
    assert_eq!(done["structuredContent"]["status"], "ready", "{done}");
    assert_eq!(env.sandbox.jobs_created(), 1);
}

async fn upstream_cancels_are_bounded_per_caller(db: &TestDb) {
    let env = mcp_env(db).await;
    let app = &env.app;
    let key = env.api_key("clari:read").await;
    let periods: Vec<String> = env.sandbox.dataset().orgs[0]
        .periods
        .iter()
        .rev()
        .take(4)
        .map(|p| p.id.clone())
        .collect();
    assert_eq!(periods.len(), 4, "one more than the cancels allowed");
    for (i, period) in periods.iter().enumerate() {
        let id = start_task_with(&env, app, &key, json!({"time_period": period})).await;
        job_known(&env, app, &key, &id, i + 1 - env.sandbox.jobs_cancelled()).await;
        let (status, _) = call26(app, &key, "tasks/cancel", json!({"taskId": id}), true).await;
        assert_eq!(status, 200);
        assert_eq!(
            get_task(app, &key, &id).await["result"]["status"],
            "cancelled"
        );
    }
    assert_eq!(
        env.sandbox.jobs_cancelled(),
        clari_mcp::mcp::tasks::UPSTREAM_CANCELS_PER_HOUR as usize,
        "past the budget, a cancel only ends the task"
    );
}
