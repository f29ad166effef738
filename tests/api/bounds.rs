//! What an outsider can make the server hold is bounded: connections that send slowly or not at
//! all, connections per address, the size of what `/mcp` reads and what parsing it costs.

use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::mcp::*;
use crate::helpers::{Backend, TestApp, TestDb, spawn_app_with};

/// Long enough for any timeout under test to have fired, short enough to fail fast.
const PATIENCE: Duration = Duration::from_secs(15);

fn addr(app: &TestApp) -> String {
    app.address.trim_start_matches("http://").to_owned()
}

/// Whether the server closes the connection (reading gives EOF or a reset) within `PATIENCE`;
/// what it sent first is returned.
async fn closed_by_server(stream: &mut TcpStream) -> Option<String> {
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    let outcome = tokio::time::timeout(PATIENCE, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    outcome
        .ok()
        .map(|()| String::from_utf8_lossy(&seen).into_owned())
}

async fn app_with(extra: &[(&str, &str)]) -> (TestDb, TestApp) {
    let db = TestDb::new(Backend::Sqlite).await.unwrap();
    let app = spawn_app_with(&db, extra).await;
    (db, app)
}

#[tokio::test]
async fn a_connection_that_sends_its_head_slowly_is_closed_after_the_header_read_timeout() {
    let (db, app) = app_with(&[("CLARI_MCP_HEADER_READ_TIMEOUT", "1s")]).await;
    let mut slow = Vec::new();
    for _ in 0..50 {
        let mut s = TcpStream::connect(addr(&app)).await.unwrap();
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
            .await
            .unwrap();
        slow.push(s);
    }
    for s in &mut slow {
        let answer = closed_by_server(s).await.expect("closed by the server");
        assert!(
            answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
            "{answer}"
        );
    }
    // A connection that says nothing at all is closed too.
    let mut silent = TcpStream::connect(addr(&app)).await.unwrap();
    assert!(closed_by_server(&mut silent).await.is_some());
    // The server still answers everyone else.
    let ok = app.http.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(ok.status(), 200);
    db.cleanup().await;
}

#[tokio::test]
async fn a_body_promised_and_never_sent_is_given_up_after_the_body_read_timeout() {
    let (db, app) = app_with(&[("CLARI_MCP_BODY_READ_TIMEOUT", "1s")]).await;
    for path in ["/token", "/register", "/mcp", "/login"] {
        let mut s = TcpStream::connect(addr(&app)).await.unwrap();
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/x-www-form-urlencoded\r\n\
             Authorization: Bearer cmk_x\r\nContent-Length: 1000\r\n\r\ngrant_type=",
            addr(&app)
        );
        s.write_all(head.as_bytes()).await.unwrap();
        let answer = closed_by_server(&mut s)
            .await
            .unwrap_or_else(|| panic!("{path}: the connection is still held"));
        // An answer (whatever the endpoint says to half a body), or a plain close.
        assert!(
            answer.is_empty() || answer.starts_with("HTTP/1.1 4"),
            "{path}: {answer}"
        );
    }
    db.cleanup().await;
}

#[tokio::test]
async fn one_address_holds_at_most_its_connections_and_gets_more_as_they_close() {
    let (db, app) = app_with(&[("CLARI_MCP_MAX_CONNECTIONS_PER_ADDRESS", "8")]).await;
    let mut held = Vec::new();
    for _ in 0..8 {
        let mut s = TcpStream::connect(addr(&app)).await.unwrap();
        // Each one proves it is served: a keep-alive request answered.
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 512];
        let n = s.read(&mut buf).await.unwrap();
        assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
        held.push(s);
    }
    // The ninth is closed before anything is read from it, a hundred times over.
    for _ in 0..100 {
        let mut ninth = TcpStream::connect(addr(&app)).await.unwrap();
        let _ = ninth
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            .await;
        assert_eq!(closed_by_server(&mut ninth).await.as_deref(), Some(""));
    }
    let metrics = app.state.metrics.render();
    assert!(
        metrics.contains("clari_mcp_connections_refused_total 100"),
        "{metrics}"
    );
    // One closes; a new one is served.
    drop(held.pop());
    let mut served = None;
    for _ in 0..100 {
        // The server notices the close when it reads EOF: retry until it has.
        let mut s = TcpStream::connect(addr(&app)).await.unwrap();
        let _ = s
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            .await;
        let answer = closed_by_server(&mut s).await.unwrap_or_default();
        if answer.starts_with("HTTP/1.1 200") {
            served = Some(answer);
            break;
        }
        tokio::task::yield_now().await;
    }
    assert!(
        served.is_some(),
        "a freed place is given to a new connection"
    );
    db.cleanup().await;
}

/// Peak resident memory of this process (the test binary hosts the server), KiB.
fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn mcp_reads_at_most_64_kib_and_parsing_the_worst_body_costs_little() {
    let db = TestDb::new(Backend::Sqlite).await.unwrap();
    let env = mcp_env(&db).await;
    let app = &env.app;
    let key = env.api_key("opportunities:read").await;
    let post = |body: Vec<u8>, length: Option<&str>| {
        let mut req = app
            .http
            .post(app.url("/mcp"))
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", PROTOCOL)
            .bearer_auth(&key);
        if let Some(l) = length {
            req = req.header("content-length", l);
        }
        async move {
            let r = req.body(body).send().await.unwrap();
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    // Declared too large: refused before the credential is looked up or a byte is read.
    let big = vec![b' '; 4 * 1024 * 1024];
    let (status, body) = post(big.clone(), None).await;
    assert_eq!(status, 413, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("64 KiB")
    );
    // Without a token, the same.
    let r = app
        .http
        .post(app.url("/mcp"))
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);

    // The worst shape under the cap: tens of thousands of tiny values. Many at once raise the
    // peak by a small multiple of what was sent.
    let mut worst = br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"get_deal_risk","arguments":{"opportunity_ids":["#.to_vec();
    while worst.len() < 64 * 1024 - 16 {
        worst.extend_from_slice(b"[],");
    }
    worst.extend_from_slice(b"[]]}}}");
    assert!(worst.len() <= 64 * 1024);
    let before = peak_rss_kib();
    let sent = 32 * worst.len() as u64;
    let answers = futures_util::future::join_all((0..32).map(|_| post(worst.clone(), None))).await;
    for (status, body) in &answers {
        assert_eq!(*status, 200, "{body}");
        assert_eq!(
            body["result"]["isError"], true,
            "a tool error naming the argument"
        );
    }
    let grown = peak_rss_kib().saturating_sub(before) * 1024;
    assert!(
        grown < 64 * sent,
        "peak RSS grew {grown} bytes for {sent} bytes sent"
    );
    db.cleanup().await;
}

#[tokio::test]
async fn json_that_is_not_a_usable_message_is_400_with_a_json_rpc_error_never_415() {
    let db = TestDb::new(Backend::Sqlite).await.unwrap();
    let env = mcp_env(&db).await;
    let app = &env.app;
    let key = env.api_key("forecasts:read").await;
    for (body, says) in [
        (
            json!([{"jsonrpc": "2.0", "id": 1, "method": "ping"}]),
            "batches",
        ),
        (
            json!({"jsonrpc": "2.0", "id": 18_446_744_073_709_551_615u64, "method": "ping"}),
            "64-bit",
        ),
        (
            json!({"jsonrpc": "2.0", "id": 1, "error": {"code": 4_294_967_296i64, "message": "x"}}),
            "32-bit",
        ),
        (
            json!({"jsonrpc": "2.0", "id": 1, "result": {}, "method": 5}),
            "method must be a string",
        ),
        (json!({"jsonrpc": "2.0", "id": 1}), "a response needs"),
        // A known method with ill-typed params: -32602 naming the member, not "method not found".
        (
            json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": 5}}),
            "Invalid params: tools/call needs params.name",
        ),
        (
            json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                   "params": {"name": "get_forecast", "arguments": "period=2026_Q3"}}),
            "params.arguments must be an object",
        ),
        (
            json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {}}),
            "initialize needs params.protocolVersion",
        ),
    ] {
        let r = app
            .http
            .post(app.url("/mcp"))
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", PROTOCOL)
            .bearer_auth(&key)
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let answer: Value = r.json().await.unwrap_or(Value::Null);
        assert_eq!(status, 400, "{body}: {answer}");
        assert_eq!(answer["jsonrpc"], "2.0", "{answer}");
        let message = answer["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(says), "{body}: {message}");
    }
    db.cleanup().await;
}

#[tokio::test]
async fn only_post_is_read_as_json_rpc_other_methods_are_405_whatever_their_body() {
    let db = TestDb::new(Backend::Sqlite).await.unwrap();
    let env = mcp_env(&db).await;
    let app = &env.app;
    let key = env.api_key("forecasts:read").await;
    let body = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {}});
    for method in ["TRACE", "PUT", "PATCH"] {
        let r = app
            .http
            .request(method.parse().unwrap(), app.url("/mcp"))
            .header("content-type", "application/json")
            .header("mcp-protocol-version", PROTOCOL)
            .bearer_auth(&key)
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 405, "{method}");
    }
    db.cleanup().await;
}

/// A made-up opportunity id no dataset has (15 characters).
fn unknown_id(i: usize) -> String {
    format!("006ZZ{i:010}")
}

#[tokio::test]
async fn deal_risk_asks_clari_for_each_record_once_and_at_most_its_budget_a_minute() {
    let db = TestDb::new(Backend::Sqlite).await.unwrap();
    let env = mcp_env_with(&db, &[("CLARI_MCP_CLARI_REQUESTS_PER_MINUTE", "15")]).await;
    let app = &env.app;
    let key = env.api_key("opportunities:read").await;
    let known: Vec<String> = env.sandbox.dataset().orgs[0]
        .opps
        .iter()
        .take(10)
        .map(|o| o.id.clone())
        .collect();
    let before = env.sandbox.request_count();

    // 10,000 ids do not fit in a message (413); 1,001 are refused, naming the argument. Neither
    // reaches Clari.
    let many: Vec<String> = (0..10_000).map(unknown_id).collect();
    let r = rpc(
        app,
        Some(&key),
        "tools/call",
        json!({"name": "get_deal_risk", "arguments": {"opportunity_ids": many}}),
    )
    .await;
    assert_eq!(r.status, 413);
    let many: Vec<String> = (0..1_001).map(unknown_id).collect();
    let r = call_tool(app, &key, "get_deal_risk", json!({"opportunity_ids": many})).await;
    assert_eq!(r["isError"], true, "{r}");
    let text = r["content"][0]["text"].as_str().unwrap();
    assert!(
        text.contains("opportunity_ids") && text.contains("1000"),
        "{text}"
    );
    assert_eq!(env.sandbox.request_count(), before);

    // 1,000 ids naming 890 records: the known ones twice (15- and 18-character forms), the
    // unknown ones as given. Nine requests; twenty unknown ids named, all counted.
    let mut ids: Vec<String> = Vec::new();
    for k in &known {
        ids.push(k.clone());
        ids.push(k[..15].to_owned());
    }
    ids.extend((0..880).map(unknown_id));
    ids.extend((0..100).map(unknown_id));
    assert_eq!(ids.len(), 1_000);
    let r = call_tool(app, &key, "get_deal_risk", json!({"opportunity_ids": ids})).await;
    assert_eq!(r["isError"], false, "{r}");
    let out = &r["structuredContent"];
    assert_eq!(out["found"], 10, "{out}");
    assert_eq!(out["not_found_count"], 880);
    assert_eq!(out["not_found"].as_array().unwrap().len(), 20);
    let text = r["content"][0]["text"].as_str().unwrap();
    assert!(
        text.contains("880 id(s) not found (the first 20 listed)"),
        "{text}"
    );
    assert_eq!(env.sandbox.request_count() - before, 9);

    // The budget (15 a minute) has 6 left: 9 more are refused, without an upstream request.
    let before = env.sandbox.request_count();
    let r = call_tool(app, &key, "get_deal_risk", json!({"opportunity_ids": ids})).await;
    assert_eq!(r["isError"], true, "{r}");
    let text = r["content"][0]["text"].as_str().unwrap();
    assert!(
        text.contains("Too many Clari requests") && text.contains("Try again in"),
        "{text}"
    );
    assert_eq!(env.sandbox.request_count(), before);
    // Another application of the same person has its own budget; the next minute, this one too.
    let other = env.api_key("opportunities:read").await;
    let one = json!({"opportunity_ids": [known[0].clone()]});
    assert_eq!(
        call_tool(app, &other, "get_deal_risk", one.clone()).await["isError"],
        false
    );
    app.clock.advance(60);
    let r = call_tool(app, &key, "get_deal_risk", json!({"opportunity_ids": ids})).await;
    assert_eq!(r["isError"], false, "{r}");
    db.cleanup().await;
}

#[tokio::test]
async fn authorization_requests_from_one_address_keep_a_bounded_number_of_small_sessions() {
    use crate::helpers::oauth::{Browser, authorize_url, pkce, register_public};
    let (db, app) = app_with(&[]).await;
    let client = register_public(&app).await;
    let id = client["client_id"].as_str().unwrap();
    let resource = format!("{}/mcp", app.state.config.public_url);
    let challenge = pkce().challenge;
    let long_state = "s".repeat(2048);
    let url = authorize_url(id, &challenge, &long_state, "forecasts:read", &resource);
    // 300 cookie-less requests from one address: each would be a session.
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let (before, _) = app.state.store.session_stats().await.unwrap();
    for _ in 0..300 {
        let r = no_redirects.get(app.url(&url)).send().await.unwrap();
        assert_eq!(r.status(), 302);
    }
    let (after, largest) = app.state.store.session_stats().await.unwrap();
    assert!(
        after - before <= clari_mcp::web::session::ANONYMOUS_SESSIONS_PER_ADDRESS,
        "{} sessions stored for one address",
        after - before
    );
    assert!(largest < 16 * 1024, "{largest}");

    // One session, 200 requests: it keeps the newest few, and its record stays small.
    let mut b = Browser::new(&app);
    let mut rids = Vec::new();
    for _ in 0..200 {
        let page = b.get(&url).await;
        let location = page.location.unwrap();
        let rid = crate::helpers::oauth::query_of(&format!("http://x{location}"))["rid"].clone();
        rids.push(rid);
    }
    let (_, largest) = app.state.store.session_stats().await.unwrap();
    let most = clari_mcp::oauth::authorize::MAX_PENDING_PER_SESSION;
    assert!(largest < 48 * 1024, "a session of {largest} bytes");
    // The newest requests still lead to sign-in for the application; the older ones expired.
    let login = b.get(&format!("/login?rid={}", rids[199])).await;
    assert!(login.body.contains("Test Agent"), "{}", login.body);
    let old = b.get(&format!("/login?rid={}", rids[199 - most])).await;
    assert!(!old.body.contains("Test Agent"));
    let consent = b.get(&format!("/authorize/consent?rid={}", rids[0])).await;
    assert!(
        consent.status == 400
            || consent
                .location
                .as_deref()
                .is_some_and(|l| l.starts_with("/login")),
        "{} {:?}",
        consent.status,
        consent.location
    );
    db.cleanup().await;
}

#[tokio::test]
async fn a_flood_of_refused_calls_writes_two_audit_rows_and_says_how_many() {
    let db = TestDb::new(Backend::Sqlite).await.unwrap();
    let env = mcp_env_with(&db, &[("CLARI_MCP_CLARI_REQUESTS_PER_MINUTE", "1")]).await;
    let app = &env.app;
    let key = env.api_key("opportunities:read").await;
    let ask = json!({"opportunity_ids": ["006ZZ0000000001"]});
    assert_eq!(
        call_tool(app, &key, "get_deal_risk", ask.clone()).await["isError"],
        false
    );
    let count = |action: &'static str| {
        let store = app.state.store.clone();
        let org = env.org.clone();
        async move {
            store
                .find_audit_events(
                    org.as_str(),
                    &clari_mcp::store::AuditFilter {
                        action: Some(action.into()),
                        ..Default::default()
                    },
                    None,
                    1000,
                )
                .await
                .unwrap()
        }
    };
    // The minute's budget is spent: 200 calls are refused (throttled).
    for _ in 0..200 {
        let r = call_tool(app, &key, "get_deal_risk", ask.clone()).await;
        assert_eq!(r["isError"], true);
    }
    app.state.audit.flush().await;
    let calls = count("tool.call").await;
    assert_eq!(
        calls.len(),
        2,
        "the success, and the first refusal; the rest are counted"
    );
    assert!(
        calls[0].details.contains("more_refusals"),
        "{}",
        calls[0].details
    );
    // The window closes; housekeeping writes what was counted.
    app.clock
        .advance(clari_mcp::audit::refusals::WINDOW_SECONDS);
    let done = clari_mcp::app::housekeeping(&app.state).await.unwrap();
    assert_eq!(done.refusals_summarised, 1);
    app.state.audit.flush().await;
    let summaries = count("audit.refusals_summarised").await;
    assert_eq!(summaries.len(), 1);
    let details: Value = serde_json::from_str(&summaries[0].details).unwrap();
    assert_eq!(details["count"], 199, "{details}");
    assert_eq!(details["class"], "throttled");
    assert_eq!(details["action"], "tool.call");
    assert_eq!(summaries[0].target.as_deref(), Some("get_deal_risk"));
    // Nothing is summarised twice; a successful call is still written each time.
    assert_eq!(
        clari_mcp::app::housekeeping(&app.state)
            .await
            .unwrap()
            .refusals_summarised,
        0
    );
    for _ in 0..3 {
        app.clock.advance(60);
        assert_eq!(
            call_tool(app, &key, "get_deal_risk", ask.clone()).await["isError"],
            false
        );
    }
    app.state.audit.flush().await;
    assert_eq!(count("tool.call").await.len(), 5);
    db.cleanup().await;
}

/// The export caches keep as many exports as the operator sized them for.
#[tokio::test]
async fn the_export_caches_keep_the_configured_number_of_exports() {
    use clari_mcp::exports::cache::Capacity;
    let (_db, app) = app_with(&[]).await;
    let default = Capacity {
        entries: 1_000,
        bytes: 256 << 20,
    };
    assert_eq!(app.state.forecasts.capacity(), default);
    let (_db, app) = app_with(&[
        ("CLARI_MCP_EXPORT_CACHE_ENTRIES", "25000"),
        ("CLARI_MCP_EXPORT_CACHE_MB", "2048"),
    ])
    .await;
    let sized = Capacity {
        entries: 25_000,
        bytes: 2048 << 20,
    };
    assert_eq!(app.state.forecasts.capacity(), sized);
    assert_eq!(app.state.activities.capacity(), sized);
}

/// What finished exports weigh (the size of Clari's answers) stays within
/// `CLARI_MCP_EXPORT_CACHE_MB`: exports of earlier quarters, each read for real through the tool,
/// push the oldest out once they would outweigh it.
#[tokio::test]
async fn the_export_cache_keeps_its_bound_in_bytes() {
    const BOUND: usize = 1 << 20;
    let db = TestDb::new(Backend::Sqlite).await.unwrap();
    let env = mcp_env_with(&db, &[("CLARI_MCP_EXPORT_CACHE_MB", "1")]).await;
    let key = env.api_key("clari:read").await;
    let data = &env.sandbox.dataset().orgs[0];
    // Every tab of every quarter: distinct exports.
    let exports: Vec<(String, String)> = data
        .forecasts
        .iter()
        .flat_map(|tab| data.periods.iter().map(|p| (tab.id.clone(), p.id.clone())))
        .collect();
    let cache = &env.app.state.forecasts;
    let (mut added, mut made) = (0usize, 0usize);
    for (tab, period) in &exports {
        let r = call_tool(
            &env.app,
            &key,
            "get_forecast",
            json!({"forecast_id": tab, "time_period": period, "wait_seconds": 20}),
        )
        .await;
        assert_eq!(r["isError"], false, "{tab} {period}: {r}");
        // The export's task trims once it has reported; the caller may hear it first.
        crate::helpers::eventually("the cache to weigh no more than its bound", async || {
            cache.weight() <= BOUND
        })
        .await;
        let one = cache
            .peek(&clari_mcp::exports::cache::ExportKey::new(
                env.org.clone(),
                format!("forecast:{tab}:{period}"),
            ))
            .map(|f| {
                let w = clari_mcp::exports::cache::Weigh::weight(&*f);
                let content = f.results.content_bytes;
                assert!(
                    content > 1_000,
                    "an export weighs its answer's size: {content}"
                );
                assert_eq!(
                    w,
                    content + clari_mcp::exports::kept::KEPT_BYTES,
                    "and the most the answers kept with it may weigh"
                );
                w
            });
        if let Some(w) = one {
            added += w;
            made += 1;
        }
        if added > BOUND {
            break;
        }
    }
    assert!(
        added > BOUND,
        "{} exports weighed only {added} bytes",
        exports.len()
    );
    assert!(cache.weight() <= BOUND && cache.weight() > 0);
    assert!(cache.len() < made, "{} of {made} exports kept", cache.len());
    db.cleanup().await;
}
