//! Governance: the hash-chained, signed audit trail (recorded, verified, tampering named) and the
//! kill switch (across two replicas), on both backends.

use std::collections::BTreeSet;

use clari_mcp::audit::INSTANCE_CHAIN;
use clari_mcp::store::AuditRecord;
use secrecy::ExposeSecret;
use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::mcp::McpEnv;
use crate::helpers::mcp::*;
use crate::helpers::oauth::*;
use crate::helpers::{Cli, TestApp, TestDb, eventually};

both_backends!(
    a_workload_is_audited_and_the_trail_verifies_until_tampered,
    the_kill_switch_stops_an_organisation_on_every_replica_at_once,
    a_disabled_organisation_stops_its_exports_upstream_before_any_kill,
    concurrent_writers_on_two_replicas_never_fork_a_chain,
    batches_of_many_chains_from_two_replicas_extend_each_chain_once_per_event,
    metrics_gauge_the_export_queue_the_audit_writer_and_the_signing_key,
);

async fn events(app: &TestApp, chain: &str) -> Vec<AuditRecord> {
    app.state.audit.flush().await;
    app.state
        .store
        .audit_events(chain, 0, 10_000)
        .await
        .unwrap()
}

fn actions(rows: &[AuditRecord]) -> BTreeSet<String> {
    rows.iter().map(|r| r.action.clone()).collect()
}

/// The operator's CLI on the app's database with the app's vault key.
fn cli_for(db: &TestDb, app: &TestApp) -> Cli {
    let mut cli = Cli::new(db);
    let keys = app
        .state
        .config
        .vault_keys
        .as_ref()
        .expect("tests configure vault keys");
    cli.env.insert(
        "CLARI_MCP_VAULT_KEYS".into(),
        keys.iter()
            .map(|k| k.expose_secret().to_owned())
            .collect::<Vec<_>>()
            .join(","),
    );
    cli
}

async fn a_workload_is_audited_and_the_trail_verifies_until_tampered(db: &TestDb) {
    let env = mcp_env(db).await;
    let app = &env.app;
    // OAuth: registration, sign-in (one failure first), consent, code exchange, refresh, revoke.
    let client = register_public(app).await;
    let cid = client["client_id"].as_str().unwrap().to_owned();
    let mut b = Browser::new(app);
    let start = b
        .get(&authorize_url(
            &cid,
            &pkce().challenge,
            "s",
            "clari:read",
            &app.state.config.mcp_url,
        ))
        .await;
    let wrong = b
        .login(
            &start.location.unwrap(),
            "ava@acme.test",
            "not the password",
        )
        .await;
    assert_eq!(wrong.status, 401);
    let p = pkce();
    let q = authorize(&mut Browser::new(app), &cid, &p, "ava@acme.test").await;
    let (s, t) = exchange(app, &cid, &q["code"], &p.verifier).await;
    assert_eq!(s, 200, "{t}");
    let (s, t2, _) = refresh_with(app, &cid, t["refresh_token"].as_str().unwrap()).await;
    assert_eq!(s, 200, "{t2}");
    // A tool call with an API key, and one with a bad argument.
    let key = env.api_key("clari:read").await;
    let ok = call_tool(app, &key, "list_time_periods", json!({"wait_seconds": 10})).await;
    assert_eq!(ok["isError"], false, "{ok}");
    let secret_arg = "2099_Q9 with a secret";
    let bad = call_tool(
        app,
        &key,
        "get_forecast",
        json!({"time_period": secret_arg}),
    )
    .await;
    assert_eq!(bad["isError"], true);
    let r = app
        .http
        .post(app.url("/revoke"))
        .form(&[
            ("client_id", cid.as_str()),
            ("token", t2["refresh_token"].as_str().unwrap()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    let org_rows = events(app, env.org.as_str()).await;
    let instance = events(app, INSTANCE_CHAIN).await;
    for a in [
        "consent.granted",
        "token.issued",
        "token.refreshed",
        "token.revoked",
        "tool.call",
    ] {
        assert!(
            actions(&org_rows).contains(a),
            "{a} missing: {:?}",
            actions(&org_rows)
        );
    }
    for a in ["client.registered", "signin.failure", "signin.success"] {
        assert!(
            actions(&instance).contains(a),
            "{a} missing: {:?}",
            actions(&instance)
        );
    }
    // Tool calls carry a keyed digest of the arguments, never their values.
    let calls: Vec<&AuditRecord> = org_rows
        .iter()
        .filter(|r| r.action == "tool.call")
        .collect();
    assert_eq!(calls.len(), 2);
    let failed = calls.iter().find(|r| r.outcome == "failure").unwrap();
    let d: Value = serde_json::from_str(&failed.details).unwrap();
    assert_eq!(d["tool"], "get_forecast");
    assert_eq!(d["error_class"], "argument");
    assert_eq!(d["args_digest"].as_str().unwrap().len(), 64);
    assert!(!failed.details.contains("secret"), "{}", failed.details);
    let good: Value = serde_json::from_str(
        &calls
            .iter()
            .find(|r| r.outcome == "success")
            .unwrap()
            .details,
    )
    .unwrap();
    assert!(good["result_bytes"].as_u64().unwrap() > 0);
    assert!(good["estimated_tokens"].as_u64().unwrap() > 0);
    assert!(
        ["miss", "joined", "hit"].contains(&good["cache"].as_str().unwrap()),
        "{good}"
    );
    assert!(good["api_key_id"].is_string());
    assert!(
        calls
            .iter()
            .all(|r| r.request_id.is_some() && r.client_ip.is_some())
    );

    // Untouched, the trail verifies; so does its export, offline.
    app.state.audit.checkpoint_now().await;
    let cli = cli_for(db, app);
    let out = cli.ok(&["audit", "verify"], None);
    assert!(out.contains("OK") && !out.contains("broken"), "{out}");
    let file = db.dir.path().join("audit.jsonl");
    cli.ok(&["audit", "export", "--out", file.to_str().unwrap()], None);
    let out = cli.ok(&["audit", "verify", "--from", file.to_str().unwrap()], None);
    assert!(out.contains(&format!("chain {}: OK", env.org)), "{out}");
    let keys: Value = app
        .http
        .get(app.url("/.well-known/audit-keys.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(keys["keys"][0]["alg"], "Ed25519");

    // A tampered update, a deleted row and a forged checkpoint are each named.
    let org = lit(Some(env.org.as_str()));
    let victim = org_rows[1].seq;
    exec(
        db,
        &format!(
            "UPDATE audit_events SET outcome = 'success', details = '{{}}' \
             WHERE organization_id = {org} AND seq = {victim}"
        ),
    )
    .await;
    let out = cli.run(&["audit", "verify", "--org", "Acme"], None);
    assert!(!out.0.status.success());
    assert!(
        out.stdout()
            .contains(&format!("broken at seq {victim}: the row was altered")),
        "{}",
        out.stdout()
    );
    restore(db, &org_rows[1]).await;
    cli.ok(&["audit", "verify", "--org", "Acme"], None);

    let gone = org_rows[2].seq;
    exec(
        db,
        &format!("DELETE FROM audit_events WHERE organization_id = {org} AND seq = {gone}"),
    )
    .await;
    let out = cli.run(&["audit", "verify", "--org", "Acme"], None);
    assert!(!out.0.status.success());
    assert!(
        out.stdout().contains(&format!("row {gone} is missing")),
        "{}",
        out.stdout()
    );
    restore(db, &org_rows[2]).await;
    cli.ok(&["audit", "verify", "--org", "Acme"], None);

    exec(
        db,
        &format!(
            "UPDATE audit_checkpoints SET head_hash = '{}' WHERE organization_id = {org}",
            "f".repeat(64)
        ),
    )
    .await;
    let out = cli.run(&["audit", "verify", "--org", "Acme"], None);
    assert!(!out.0.status.success());
    assert!(
        out.stdout().contains("signature does not verify"),
        "{}",
        out.stdout()
    );
    // The exported copy still verifies: it was taken before the forgery.
    cli.ok(&["audit", "verify", "--from", file.to_str().unwrap()], None);
}

/// Runs SQL straight on the database, as someone with database access would.
async fn exec(db: &TestDb, sql: &str) {
    if db.url.starts_with("sqlite:") {
        let pool = sqlx::SqlitePool::connect(&db.url).await.unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
            .execute(&pool)
            .await
            .unwrap();
    } else {
        let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
            .execute(&pool)
            .await
            .unwrap();
    }
}

fn lit(v: Option<&str>) -> String {
    v.map_or("NULL".to_owned(), |s| {
        format!("'{}'", s.replace('\'', "''"))
    })
}

/// Puts a row back exactly as it was.
async fn restore(db: &TestDb, r: &AuditRecord) {
    exec(
        db,
        &format!(
            "DELETE FROM audit_events WHERE organization_id = {c} AND seq = {seq}; \
             INSERT INTO audit_events (organization_id, seq, at, actor_kind, actor_id, actor_name, \
             action, target, outcome, request_id, client_ip, details, prev_hash, hash) VALUES \
             ({c}, {seq}, {at}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {})",
            lit(Some(&r.actor_kind)),
            lit(r.actor_id.as_deref()),
            lit(r.actor_name.as_deref()),
            lit(Some(&r.action)),
            lit(r.target.as_deref()),
            lit(Some(&r.outcome)),
            lit(r.request_id.as_deref()),
            lit(r.client_ip.as_deref()),
            lit(Some(&r.details)),
            lit(Some(&r.prev_hash)),
            lit(Some(&r.hash)),
            c = lit(Some(&r.chain)),
            seq = r.seq,
            at = r.at,
        ),
    )
    .await;
}

async fn the_kill_switch_stops_an_organisation_on_every_replica_at_once(db: &TestDb) {
    let (env, replica) = mcp_env_with_replica(db).await;
    let app = &env.app;
    // An OAuth client's tokens and an API key, both working on both replicas.
    let client = register_public(app).await;
    let cid = client["client_id"].as_str().unwrap().to_owned();
    let p = pkce();
    let q = authorize(&mut Browser::new(app), &cid, &p, "ava@acme.test").await;
    let (_, t) = exchange(app, &cid, &q["code"], &p.verifier).await;
    let access = t["access_token"].as_str().unwrap().to_owned();
    let key = env.api_key("clari:read").await;
    for a in [app, &replica] {
        for token in [&access, &key] {
            let r = rpc(a, Some(token), "tools/list", json!({})).await;
            assert_eq!(r.status, 200);
        }
    }
    // A slow export in flight.
    env.sandbox.set_knobs(|k| k.job_latency_ms = 60_000);
    let r = call_tool(app, &key, "get_forecast", json!({"wait_seconds": 0})).await;
    assert_eq!(r["structuredContent"]["status"], "running", "{r}");
    // In flight means Clari made the job and our row knows its id (only then can it be
    // cancelled upstream).
    eventually("the export's row to know its Clari job", async || {
        let rows = app.state.store.unfinished_exports(&env.org).await.unwrap();
        rows.iter().any(|(_, _, job)| job.is_some())
    })
    .await;
    assert_eq!(env.sandbox.jobs_created(), 1);

    let report = clari_mcp::governance::kill(
        &replica.state,
        &env.org,
        clari_mcp::audit::Actor::operator(),
        Some("suspected leak"),
        &clari_mcp::http::RequestMeta::default(),
    )
    .await
    .unwrap();
    assert_eq!(report.revoked.api_keys, 1);
    assert!(
        report.revoked.grants >= 1 && report.revoked.refresh_tokens >= 1,
        "{report:?}"
    );
    assert_eq!(report.exports_cancelled, 1, "{report:?}");
    // A status check already on the wire when the kill committed may still land. The export
    // polls Clari on the replica that started it (the kill ran on the other), and it ends by
    // reporting its failure to that replica's cache: once the entry is gone, the poll has
    // stopped and every request it made has been counted. From here on nothing may reach Clari
    // for the organisation.
    eventually(
        "the background export to stop polling Clari after the kill",
        async || {
            app.state.forecasts.sweep();
            app.state.forecasts.is_empty()
        },
    )
    .await;
    let after_kill = env.sandbox.request_count();

    // The very next request on either replica is refused, with either credential.
    for a in [app, &replica] {
        for token in [&access, &key] {
            let r = rpc(a, Some(token), "tools/list", json!({})).await;
            assert_eq!(r.status, 401, "{token}: {:?}", r.body);
        }
    }
    // The export was cancelled upstream, and nothing calls Clari for the organisation again:
    // the refused requests did not, and the poll that could have is over.
    let jobs = env.sandbox.jobs_created();
    assert_eq!(jobs, 1);
    assert_eq!(env.sandbox.jobs_cancelled(), 1);
    assert_eq!(
        env.sandbox.request_count(),
        after_kill,
        "no upstream call after the kill"
    );
    // Enabling it resurrects nothing.
    app.state
        .store
        .set_org_disabled(&env.org, false)
        .await
        .unwrap();
    for token in [&access, &key] {
        assert_eq!(
            rpc(app, Some(token), "tools/list", json!({})).await.status,
            401
        );
    }
    // The trail says who pulled it and why.
    let rows = events(&replica, env.org.as_str()).await;
    let kill = rows
        .iter()
        .find(|r| r.action == "org.killed")
        .expect("kill audited");
    assert_eq!(kill.actor_kind, "operator");
    assert!(kill.details.contains("suspected leak"), "{}", kill.details);
}

/// `org disable` alone stops the organisation's exports in Clari: the running job is cancelled
/// upstream by the replica polling it, and the export waiting in the queue for Clari's one slot
/// (on the other replica) is never started, even though its slot frees. A kill afterwards finds
/// nothing left to cancel, and asks Clari nothing.
async fn a_disabled_organisation_stops_its_exports_upstream_before_any_kill(db: &TestDb) {
    let (env, replica) = mcp_env_with_replica(db).await;
    let app = &env.app;
    let key = env.api_key("clari:read").await;
    env.sandbox.set_knobs(|k| {
        k.job_latency_ms = 60_000;
        k.concurrent_limit = 1;
    });
    let r = call_tool(app, &key, "get_forecast", json!({"wait_seconds": 0})).await;
    assert_eq!(r["structuredContent"]["status"], "running", "{r}");
    eventually(
        "the running export's row to know its Clari job",
        async || {
            let rows = app.state.store.unfinished_exports(&env.org).await.unwrap();
            rows.iter().any(|(_, _, job)| job.is_some())
        },
    )
    .await;
    let r = call_tool(
        &replica,
        &key,
        "get_forecast",
        json!({"forecast_id": "renewals", "wait_seconds": 1}),
    )
    .await;
    assert_eq!(r["structuredContent"]["status"], "queued", "{r}");
    assert_eq!(env.sandbox.jobs_created(), 1);

    cli_for(db, app).ok(&["org", "disable", "--org", env.org.as_str()], None);
    // Both exports end (errors are never cached, so an ended export leaves its cache) and close
    // their rows.
    eventually(
        "both exports to end once the organisation is disabled",
        async || {
            app.state.forecasts.sweep();
            replica.state.forecasts.sweep();
            app.state.forecasts.is_empty()
                && replica.state.forecasts.is_empty()
                && app
                    .state
                    .store
                    .unfinished_exports(&env.org)
                    .await
                    .unwrap()
                    .is_empty()
        },
    )
    .await;
    assert_eq!(
        env.sandbox.jobs_cancelled(),
        1,
        "the running job is cancelled"
    );
    assert_eq!(
        env.sandbox.jobs_created(),
        1,
        "the queued export never starts"
    );
    let before_kill = env.sandbox.request_count();

    let report = clari_mcp::governance::kill(
        &replica.state,
        &env.org,
        clari_mcp::audit::Actor::operator(),
        Some("after a disable"),
        &clari_mcp::http::RequestMeta::default(),
    )
    .await
    .unwrap();
    assert_eq!(report.revoked.api_keys, 1, "{report:?}");
    assert_eq!(
        (report.exports_cancelled, report.exports_closed),
        (0, 0),
        "{report:?}"
    );
    assert_eq!(env.sandbox.request_count(), before_kill, "no upstream call");
    assert_eq!(env.sandbox.jobs_created(), 1);
}

async fn concurrent_writers_on_two_replicas_never_fork_a_chain(db: &TestDb) {
    let (env, replica) = mcp_env_with_replica(db).await;
    let key = env.api_key("clari:read").await;
    let mut calls = Vec::new();
    for i in 0..24 {
        let a = if i % 2 == 0 { &env.app } else { &replica };
        calls.push(call_tool(a, &key, "get_admin_limits", json!({})));
    }
    futures_util::future::join_all(calls).await;
    env.app.state.audit.flush().await;
    replica.state.audit.flush().await;
    env.app.state.audit.checkpoint_now().await;
    replica.state.audit.checkpoint_now().await;
    let rows = events(&env.app, env.org.as_str()).await;
    assert_eq!(rows.iter().filter(|r| r.action == "tool.call").count(), 24);
    let seqs: Vec<i64> = rows.iter().map(|r| r.seq).collect();
    assert_eq!(
        seqs,
        (1..=rows.len() as i64).collect::<Vec<_>>(),
        "one gapless chain"
    );
    let cli = cli_for(db, &env.app);
    let out = cli.ok(&["audit", "verify"], None);
    assert!(!out.contains("broken"), "{out}");
}

/// A batch holds events of many organisations (the writer moves all their heads in one
/// statement per kind): two replicas writing to the same 40 chains at once extend each one
/// gaplessly, and the trail verifies.
async fn batches_of_many_chains_from_two_replicas_extend_each_chain_once_per_event(db: &TestDb) {
    use clari_mcp::audit::{Actor, Event};
    use clari_mcp::store::OrgId;
    let (env, replica) = mcp_env_with_replica(db).await;
    let chains: Vec<OrgId> = (0..40)
        // Upper and lower case: byte order is not a collation's order.
        .map(|i| OrgId::parse(&format!("{}rg_batch_{i:02}", ["O", "o"][i % 2])).unwrap())
        .collect();
    for round in 0..3 {
        for (side, app) in [("a", &env.app), ("b", &replica)] {
            for org in &chains {
                app.state.audit.record(
                    Event::new(Some(org), Actor::system(), "test.batch")
                        .target(format!("{side}{round}")),
                );
            }
        }
    }
    tokio::join!(env.app.state.audit.flush(), replica.state.audit.flush());
    for org in &chains {
        let rows = events(&env.app, org.as_str()).await;
        let seqs: Vec<i64> = rows.iter().map(|r| r.seq).collect();
        assert_eq!(
            seqs,
            (1..=6).collect::<Vec<_>>(),
            "{org}: one gapless chain"
        );
        for pair in rows.windows(2) {
            assert_eq!(
                pair[1].prev_hash, pair[0].hash,
                "{org}: each row links to the last"
            );
        }
        let head = env.app.state.store.audit_head(org.as_str()).await.unwrap();
        assert_eq!(
            head,
            Some((6, rows[5].hash.clone())),
            "{org}: the head is the last row"
        );
    }
    env.app.state.audit.checkpoint_now().await;
    let out = cli_for(db, &env.app).ok(&["audit", "verify"], None);
    assert!(!out.contains("broken"), "{out}");
}

/// What the alerts watch: the export queue, the audit writer and the signing key's age, read
/// from the database and the process at the scrape.
async fn metrics_gauge_the_export_queue_the_audit_writer_and_the_signing_key(db: &TestDb) {
    let token = "metrics-token-0123456789";
    let env = mcp_env_with(db, &[("CLARI_MCP_METRICS_TOKEN", token)]).await;
    let app = &env.app;
    env.sandbox.set_knobs(|k| k.job_latency_ms = 60_000);
    let key = env.api_key("forecasts:read").await;
    let r = call_tool(app, &key, "get_forecast", json!({"wait_seconds": 0})).await;
    assert_eq!(r["structuredContent"]["status"], "running", "{r}");
    // The export goes on in the background: wait (in real time, bounded) until Clari holds it.
    eventually("the export to be running at Clari", async || {
        let rows = app.state.store.unfinished_exports(&env.org).await.unwrap();
        rows.iter()
            .any(|(_, s, _)| *s == clari_mcp::store::ExportStatus::Running)
    })
    .await;
    let later = app.state.now() + 100 * 86_400;
    app.clock.set(later);
    clari_mcp::app::refresh_gauges(&app.state).await.unwrap();
    app.state.audit.flush().await;
    let text = app
        .http
        .get(app.url("/metrics"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let value = |series: &str| -> i64 {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("{series} in {text}"))
    };
    assert_eq!(
        value(r#"clari_mcp_export_queue{state="active"}"#),
        1,
        "{text}"
    );
    assert_eq!(value(r#"clari_mcp_export_queue{state="queued"}"#), 0);
    // The running export has not moved since the clock went 100 days on.
    assert_eq!(
        value(r#"clari_mcp_export_queue_oldest_seconds{state="active"}"#),
        100 * 86_400
    );
    let created = app
        .state
        .store
        .signing_keys()
        .await
        .unwrap()
        .into_iter()
        .filter(|k| k.retired_at.is_none())
        .map(|k| k.created_at)
        .max()
        .unwrap();
    assert_eq!(value("clari_mcp_signing_key_age_seconds"), later - created);
    assert_eq!(value("clari_mcp_audit_queue_depth"), 0);
    assert_eq!(value("clari_mcp_audit_accepting"), 1);
}

#[tokio::test]
async fn metrics_show_the_workload_and_only_to_whoever_holds_the_token() {
    let db = TestDb::new(crate::helpers::Backend::Sqlite).await.unwrap();
    let token = "metrics-token-0123456789";
    let env = mcp_env_with(&db, &[("CLARI_MCP_METRICS_TOKEN", token)]).await;
    let app = &env.app;
    let key = env.api_key("clari:read").await;
    let narrow = env.api_key("users:read").await;
    let ok = call_tool(app, &key, "get_admin_limits", json!({})).await;
    assert_eq!(ok["isError"], false, "{ok}");
    call_tool(app, &key, "get_forecast", json!({"limit": 0})).await;
    assert_eq!(rpc(app, None, "tools/list", json!({})).await.status, 401);
    let denied = rpc(
        app,
        Some(&narrow),
        "tools/call",
        json!({"name": "get_forecast", "arguments": {}}),
    )
    .await;
    assert_eq!(denied.status, 403);
    let (s, _) = exchange(app, "nobody", "nothing", "x").await;
    assert_eq!(s, 401);
    clari_mcp::app::refresh_gauges(&app.state).await.unwrap();

    let get = |auth: Option<&str>| {
        let mut r = app.http.get(app.url("/metrics"));
        if let Some(a) = auth {
            r = r.bearer_auth(a);
        }
        r.send()
    };
    assert_eq!(get(None).await.unwrap().status(), 401);
    assert_eq!(
        get(Some("wrong-token-0123456789")).await.unwrap().status(),
        401
    );
    let r = get(Some(token)).await.unwrap();
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    let lines = text.lines().map(|l| Ok(l.to_owned()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("a Prometheus text exposition");
    let value = |name: &str, labels: &[(&str, &str)]| -> f64 {
        scrape
            .samples
            .iter()
            .filter(|s| s.metric == name)
            .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
            .map(|s| match s.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => v,
                _ => 0.0,
            })
            .sum()
    };
    assert_eq!(
        value(
            "clari_mcp_tool_calls_total",
            &[("tool", "get_admin_limits"), ("outcome", "ok")]
        ),
        1.0,
        "{text}"
    );
    assert_eq!(
        value(
            "clari_mcp_tool_errors_total",
            &[("tool", "get_forecast"), ("class", "argument")]
        ),
        1.0
    );
    assert!(
        value(
            "clari_mcp_tool_estimated_tokens_total",
            &[("tool", "get_admin_limits")]
        ) > 0.0
    );
    assert!(
        value(
            "clari_mcp_clari_requests_total",
            &[("endpoint", "admin/limits"), ("status", "200")]
        ) >= 1.0
    );
    assert!(value("clari_mcp_auth_refusals_total", &[("status", "401")]) >= 1.0);
    assert_eq!(
        value("clari_mcp_auth_refusals_total", &[("status", "403")]),
        1.0
    );
    assert_eq!(
        value(
            "clari_mcp_token_requests_total",
            &[
                ("grant_type", "authorization_code"),
                ("outcome", "invalid_client")
            ]
        ),
        1.0
    );
    assert_eq!(
        value("clari_mcp_active_api_keys", &[("org", env.org.as_str())]),
        2.0
    );
    // The one organisation's keys are every organisation's.
    assert_eq!(
        value("clari_mcp_live_credentials", &[("kind", "api_keys")]),
        2.0
    );
    assert_eq!(value("clari_mcp_active_organisations", &[]), 1.0);
    assert!(value("clari_mcp_audit_events_total", &[]) >= 2.0);
    // The first call of each key read the store; the key's second call was answered from
    // memory. A single SQLite server hears every change, and has no listener to lose.
    let lookups = |result| {
        value(
            "clari_mcp_cache_lookups_total",
            &[("cache", "api_key"), ("result", result)],
        )
    };
    assert_eq!((lookups("hit"), lookups("miss")), (1.0, 2.0), "{text}");
    assert_eq!(value("clari_mcp_change_feed_trusted", &[]), 1.0);
    assert_eq!(value("clari_mcp_change_feed_losses_total", &[]), 0.0);
    assert_eq!(
        value("clari_mcp_change_feed_unacknowledged_total", &[]),
        0.0
    );
    assert!(
        text.contains("clari_mcp_change_feed_losses_total 0"),
        "{text}"
    );
    assert!(
        text.contains("clari_mcp_tool_latency_seconds_bucket"),
        "histograms are exposed"
    );
    // Every response carries a request id, and an incoming one is kept.
    let r = app
        .http
        .get(app.url("/healthz"))
        .header("x-request-id", "trace-me-42")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-request-id"], "trace-me-42");
    let r = app.http.get(app.url("/healthz")).send().await.unwrap();
    assert!(r.headers().contains_key("x-request-id"));
    // Without the setting, there is nothing at /metrics.
    let other = TestDb::new(crate::helpers::Backend::Sqlite).await.unwrap();
    let plain = crate::helpers::spawn_app(&other).await;
    let r = plain
        .http
        .get(plain.url("/metrics"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

fn has_email(text: &str) -> bool {
    regex::Regex::new(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}")
        .unwrap()
        .is_match(text)
}

/// Every tool on sandbox data, with answers ready.
fn sweep_calls(env: &McpEnv) -> Vec<(&'static str, Value)> {
    let opp = env.sandbox.dataset().orgs[0].opps[0].id.clone();
    let w = json!(30);
    vec![
        ("get_forecast", json!({"wait_seconds": w})),
        ("list_forecast_submissions", json!({"wait_seconds": w})),
        ("list_time_periods", json!({"wait_seconds": w})),
        ("list_users", json!({"limit": 200, "wait_seconds": w})),
        ("get_deal_risk", json!({"opportunity_ids": [opp.clone()]})),
        ("get_opportunity", json!({"opportunity_id": opp})),
        (
            "list_opportunities",
            json!({"limit": 200, "wait_seconds": w}),
        ),
        ("list_accounts", json!({"limit": 200, "wait_seconds": w})),
        (
            "get_pipeline_changes",
            json!({"limit": 200, "wait_seconds": w}),
        ),
        ("list_audit_events", json!({"limit": 200})),
        ("list_export_jobs", json!({})),
        ("get_admin_limits", json!({})),
    ]
}

#[tokio::test]
async fn with_redaction_on_no_tool_answer_holds_an_email_address() {
    // The control: without redaction the sandbox's answers do carry addresses.
    let db = TestDb::new(crate::helpers::Backend::Sqlite).await.unwrap();
    let plain = mcp_env(&db).await;
    let key = plain.api_key("clari:read").await;
    let mut seen = 0;
    for (tool, args) in sweep_calls(&plain) {
        let r = call_tool(&plain.app, &key, tool, args).await;
        seen += usize::from(has_email(&r.to_string()));
    }
    assert!(
        seen >= 1,
        "the sandbox's answers should contain e-mail addresses"
    );

    let db = TestDb::new(crate::helpers::Backend::Sqlite).await.unwrap();
    let env = mcp_env_with(&db, &[("CLARI_MCP_REDACT", "all")]).await;
    let key = env.api_key("clari:read").await;
    let schemas = crate::mcp::answers::Schemas::load(&env, &key).await;
    for (tool, args) in sweep_calls(&env) {
        let r = call_tool(&env.app, &key, tool, args).await;
        assert_eq!(r["isError"], false, "{tool}: {r}");
        assert!(!has_email(&r.to_string()), "{tool} leaked an address: {r}");
        schemas.check(tool, &r);
    }
    // Resources go through the same path.
    let users = rpc(
        &env.app,
        Some(&key),
        "resources/read",
        json!({"uri": "clari://users"}),
    )
    .await;
    assert_eq!(users.status, 200);
    assert!(!has_email(&users.body.to_string()), "{}", users.body);
    // The same address always gets the same placeholder, and the count is audited.
    let a = call_tool(&env.app, &key, "list_users", json!({"limit": 200})).await;
    let b = call_tool(&env.app, &key, "list_users", json!({"limit": 200})).await;
    assert_eq!(a["structuredContent"], b["structuredContent"]);
    assert!(a.to_string().contains("[email#"), "{a}");
    let rows = events(&env.app, env.org.as_str()).await;
    let redacted: u64 = rows
        .iter()
        .filter_map(|r| serde_json::from_str::<Value>(&r.details).ok())
        .filter_map(|d| d["redactions"].as_u64())
        .sum();
    assert!(redacted > 0);
    // An organisation's own policy wins over the default: none, from the very next call.
    env.app
        .state
        .store
        .set_org_redaction(&env.org, Some(r#"{"kinds":[],"custom":[]}"#))
        .await
        .unwrap();
    let c = call_tool(&env.app, &key, "list_users", json!({"limit": 200})).await;
    assert!(has_email(&c.to_string()));
}

/// Personal data the sandbox's hard-case organisation holds, none of which may leave.
const HARD_CASES: [&str; 12] = [
    "josé.núñez",
    "用户@",
    "[at]northwind",
    "(at) northwind",
    "＠northwind",
    "δοκιμή@",
    "+44 20 7946 0958",
    "+33 1 23 45 67 89",
    "078 05 1120",
    "ava.king@northwind.example",
    "4111111111111111",
    "5555555555554444",
];

/// A tool answer's two halves, as a host reading only one of them sees it, are the same data.
fn halves_agree(tool: &str, r: &Value) {
    let text = r["content"][0]["text"].as_str().unwrap();
    let (_, line) = text
        .split_once('\n')
        .unwrap_or_else(|| panic!("{tool}: {text}"));
    let from_text: Value = serde_json::from_str(line).unwrap();
    assert_eq!(
        from_text, r["structuredContent"],
        "{tool}: the halves differ"
    );
}

#[tokio::test]
async fn both_halves_of_every_answer_are_redacted_alike_and_a_policy_change_applies_on_the_next_call_everywhere()
 {
    let db = TestDb::new(crate::helpers::Backend::Sqlite).await.unwrap();
    let vault_key = clari_mcp::crypto::Vault::generate_key();
    let vault = secrecy::ExposeSecret::expose_secret(&vault_key).to_owned();
    let env = crate::helpers::mcp::mcp_env_on(
        &db,
        clari_mcp::clari::sandbox::SandboxConfig {
            hard_pii: true,
            ..Default::default()
        },
        &[
            ("CLARI_MCP_REDACT", "all"),
            ("CLARI_MCP_VAULT_KEYS", vault.as_str()),
        ],
    )
    .await;
    let key = env.api_key("clari:read").await;
    // The control: with the organisation's policy at none, every hard case reaches an answer.
    let store = &env.app.state.store;
    store
        .set_org_redaction(&env.org, Some(r#"{"kinds":[],"custom":[]}"#))
        .await
        .unwrap();
    let mut plain = String::new();
    for (tool, args) in sweep_calls(&env) {
        plain.push_str(&call_tool(&env.app, &key, tool, args).await.to_string());
    }
    for hard in HARD_CASES {
        assert!(plain.contains(hard), "the sandbox should answer {hard}");
    }
    store.set_org_redaction(&env.org, None).await.unwrap();
    let schemas = crate::mcp::answers::Schemas::load(&env, &key).await;
    for (tool, args) in sweep_calls(&env) {
        let r = call_tool(&env.app, &key, tool, args).await;
        assert_eq!(r["isError"], false, "{tool}: {r}");
        let all = r.to_string();
        for hard in HARD_CASES {
            assert!(!all.contains(hard), "{tool} leaked {hard}: {r}");
        }
        halves_agree(tool, &r);
        schemas.check(tool, &r);
    }

    // A second replica: a policy set there or here applies to the next call on both.
    let b = crate::helpers::spawn_app_with(
        &db,
        &[
            ("CLARI_MCP_REDACT", "all"),
            ("CLARI_MCP_VAULT_KEYS", vault.as_str()),
            ("CLARI_MCP_CLARI_BASE_URL", env.sandbox.base_url.as_str()),
            ("CLARI_MCP_PUBLIC_URL", env.app.address.as_str()),
        ],
    )
    .await;
    b.clock.set(env.app.clock.now_for_tests());
    let users = |app| call_tool(app, &key, "list_users", json!({"limit": 200}));
    assert!(!users(&b).await.to_string().contains("josé.núñez"));
    env.app
        .state
        .store
        .set_org_redaction(&env.org, Some(r#"{"kinds":[],"custom":[]}"#))
        .await
        .unwrap();
    for app in [&env.app, &b] {
        assert!(
            users(app)
                .await
                .to_string()
                .contains("josé.núñez@correo.example.es")
        );
    }
    env.app
        .state
        .store
        .set_org_redaction(&env.org, Some(r#"{"kinds":["email"],"custom":[]}"#))
        .await
        .unwrap();
    for app in [&env.app, &b] {
        assert!(!users(app).await.to_string().contains("josé.núñez"));
    }
    db.cleanup().await;
}

#[tokio::test]
async fn retention_prunes_old_events_behind_a_signed_checkpoint_and_the_rest_verifies() {
    let db = TestDb::new(crate::helpers::Backend::Sqlite).await.unwrap();
    let env = mcp_env_with(&db, &[("CLARI_MCP_AUDIT_RETENTION", "30d")]).await;
    let app = &env.app;
    let key = env.api_key("clari:read").await;
    for _ in 0..3 {
        call_tool(app, &key, "get_admin_limits", json!({})).await;
    }
    let old = events(app, env.org.as_str()).await.len();
    // Forty days later, two more calls; then housekeeping.
    app.clock.advance(40 * 86_400);
    for _ in 0..2 {
        call_tool(app, &key, "get_admin_limits", json!({})).await;
    }
    let done = clari_mcp::app::housekeeping(&app.state).await.unwrap();
    assert!(done.audit_events >= old as u64, "{done:?}");
    let left = events(app, env.org.as_str()).await;
    assert_eq!(left.len(), 2, "only the recent events remain");
    assert_eq!(
        left[0].seq,
        old as i64 + 1,
        "numbering goes on after the cut"
    );
    let cps = app
        .state
        .store
        .audit_checkpoints(env.org.as_str())
        .await
        .unwrap();
    assert!(
        cps.iter().any(|c| c.seq == old as i64),
        "a signed checkpoint at the cut"
    );
    app.state.audit.checkpoint_now().await;
    let out = cli_for(&db, app).ok(&["audit", "verify", "--org", "Acme"], None);
    assert!(out.contains("OK (2 event(s)"), "{out}");
}
