//! OpenTelemetry traces, received as a collector receives them: `clari-mcp demo` runs with
//! `CLARI_MCP_OTLP_ENDPOINT` pointing at a receiver built on the official OTLP protobuf
//! definitions, which decodes every `ExportTraceServiceRequest`. The spans' names, attributes and
//! parent links are checked: the HTTP server span continues the client's `traceparent`, the MCP
//! span (semantic conventions for MCP) is its child, and store and Clari client spans are the
//! MCP span's children; a `traceparent` in the request's `_meta` is followed too.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message as _;
use serde_json::{Value, json};

#[derive(Clone, Default)]
struct Received(Arc<Mutex<Vec<(String, Span)>>>);

impl Received {
    fn spans(&self) -> Vec<(String, Span)> {
        self.0.lock().unwrap().clone()
    }
}

/// A receiver of OTLP/HTTP protobuf on 127.0.0.1: `POST /v1/traces`.
async fn receiver() -> (String, Received) {
    let received = Received::default();
    let sink = received.clone();
    let app = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(move |headers: axum::http::HeaderMap, body: Bytes| {
            let sink = sink.clone();
            async move {
                assert_eq!(headers["content-type"], "application/x-protobuf");
                let req = ExportTraceServiceRequest::decode(body).expect("an OTLP trace export");
                for rs in req.resource_spans {
                    let service = rs
                        .resource
                        .iter()
                        .flat_map(|r| &r.attributes)
                        .find(|a| a.key == "service.name")
                        .and_then(|a| text(a.value.as_ref()?.value.as_ref()?))
                        .unwrap_or_default();
                    for ss in rs.scope_spans {
                        for span in ss.spans {
                            sink.0.lock().unwrap().push((service.clone(), span));
                        }
                    }
                }
                // An empty ExportTraceServiceResponse.
                (
                    [("content-type", "application/x-protobuf")],
                    Vec::<u8>::new(),
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, received)
}

fn text(v: &AnyValue) -> Option<String> {
    match v {
        AnyValue::StringValue(s) => Some(s.clone()),
        AnyValue::IntValue(i) => Some(i.to_string()),
        AnyValue::BoolValue(b) => Some(b.to_string()),
        _ => None,
    }
}

fn attrs(span: &Span) -> HashMap<String, String> {
    span.attributes
        .iter()
        .filter_map(|a| Some((a.key.clone(), text(a.value.as_ref()?.value.as_ref()?)?)))
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

async fn call(base: &str, key: &str, traceparent: Option<&str>, body: Value) -> Value {
    let mut r = reqwest::Client::new()
        .post(format!("{base}/mcp"))
        .bearer_auth(key)
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2025-11-25")
        .json(&body);
    if let Some(tp) = traceparent {
        r = r.header("traceparent", tp);
    }
    let r = r.send().await.unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

#[tokio::test]
async fn spans_reach_an_otlp_receiver_with_mcp_attributes_and_parent_links() {
    clari_mcp::init_crypto();
    let (otlp, received) = receiver().await;
    let dir = tempfile::tempdir().unwrap();
    let port = crate::helpers::free_port();
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_clari-mcp"))
        .args(["demo", "--port", &port.to_string(), "--data-dir"])
        .arg(dir.path())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        // tower_http's debug line at the start of each request is a log line inside it.
        .env("RUST_LOG", "info,tower_http=debug")
        .env("CLARI_MCP_OTLP_ENDPOINT", &otlp)
        .env("CLARI_MCP_LOG_FORMAT", "json")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let creds = dir.path().join("demo-credentials.json");
    for _ in 0..300 {
        if creds.exists() && reqwest::get(format!("{base}/healthz")).await.is_ok() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let c: Value = serde_json::from_str(&std::fs::read_to_string(&creds).unwrap()).unwrap();
    let key = c["api_key"].as_str().unwrap();

    // A call that reaches Clari in its own request path, continuing the client's trace.
    let (trace, parent) = ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7");
    let r = call(
        &base,
        key,
        Some(&format!("00-{trace}-{parent}-01")),
        json!({"jsonrpc": "2.0", "id": 41, "method": "tools/call",
               "params": {"name": "list_audit_events", "arguments": {"limit": 3}}}),
    )
    .await;
    assert_eq!(r["result"]["isError"], false, "{r}");
    // A trace context in `_meta` and none in the headers.
    let (trace2, parent2) = ("0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331");
    call(
        &base,
        key,
        None,
        json!({"jsonrpc": "2.0", "id": "q-2", "method": "tools/list",
               "params": {"_meta": {"traceparent": format!("00-{trace2}-{parent2}-01")}}}),
    )
    .await;

    // SIGTERM: the server flushes its spans before it exits.
    let pid = child.id().unwrap().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let out = child.wait_with_output().await.unwrap();
    assert!(out.status.success());
    let spans = received.spans();
    assert!(spans.iter().all(|(service, _)| service == "clari-mcp"));
    let find = |trace_hex: &str, name: &str| -> Span {
        spans
            .iter()
            .map(|(_, s)| s)
            .find(|s| hex(&s.trace_id) == trace_hex && s.name == name)
            .cloned()
            .unwrap_or_else(|| {
                let names: Vec<_> = spans
                    .iter()
                    .map(|(_, s)| (hex(&s.trace_id), s.name.clone()))
                    .collect();
                panic!("no span {name} in trace {trace_hex}: {names:?}")
            })
    };

    let http = find(trace, "POST /mcp");
    assert_eq!(
        hex(&http.parent_span_id),
        parent,
        "the client's span is the parent"
    );
    let a = attrs(&http);
    assert_eq!(a["http.request.method"], "POST");
    assert_eq!(a["http.response.status_code"], "200");

    let mcp = find(trace, "tools/call list_audit_events");
    assert_eq!(
        mcp.parent_span_id, http.span_id,
        "the MCP span is the HTTP span's child"
    );
    let a = attrs(&mcp);
    assert_eq!(a["mcp.method.name"], "tools/call");
    assert_eq!(a["gen_ai.tool.name"], "list_audit_events");
    assert_eq!(a["gen_ai.operation.name"], "execute_tool");
    assert_eq!(a["jsonrpc.request.id"], "41");
    assert_eq!(a["mcp.protocol.version"], "2025-11-25");
    assert_eq!(a["network.transport"], "tcp");

    let clari = find(trace, "GET audit/events");
    assert_eq!(
        clari.parent_span_id, mcp.span_id,
        "Clari calls are children of the MCP span"
    );
    let a = attrs(&clari);
    assert_eq!(a["url.template"], "audit/events");
    assert_eq!(a["http.response.status_code"], "200");

    let credential = find(trace, "store.clari_credential");
    assert_eq!(
        credential.parent_span_id, mcp.span_id,
        "store queries are children too"
    );
    assert_eq!(attrs(&credential)["db.system.name"], "sqlite");

    let listed = find(trace2, "tools/list");
    assert_eq!(
        hex(&listed.parent_span_id),
        parent2,
        "the _meta trace context is followed"
    );
    assert_eq!(attrs(&listed)["jsonrpc.request.id"], "q-2");

    // Every log line inside a traced request names the trace.
    let logs = String::from_utf8_lossy(&out.stderr);
    assert!(
        logs.lines()
            .any(|l| l.contains(trace) && l.contains("request_id")),
        "a log line with the trace id and the request id: {logs}"
    );
}
