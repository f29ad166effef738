//! Logging and tracing set-up. Logs: text or JSON to stderr, level from `RUST_LOG` (default
//! `info`), colour only on a terminal; every line inside a request carries the request's span
//! fields (`request_id`, and `trace_id` when tracing is on). Traces: OpenTelemetry over OTLP/HTTP
//! (protobuf) to `CLARI_MCP_OTLP_ENDPOINT`, off unless it is set. Secrets never enter log fields
//! or span attributes; types that hold them implement `Debug` without the secret.

use std::sync::OnceLock;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer as _;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::LogFormat;

/// The tracer provider when tracing is on, flushed by [`shutdown`].
static PROVIDER: OnceLock<SdkTracerProvider> = OnceLock::new();

/// Sets up logging, and tracing when `otlp_endpoint` is given (the collector's base URL; spans go
/// to `<endpoint>/v1/traces`). Called once per process; later calls change nothing.
pub fn init(format: LogFormat, otlp_endpoint: Option<&str>) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,tower_http=info"));
    // Colour codes only on a terminal: a file or a pipe gets plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let fmt = tracing_subscriber::fmt::layer()
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    let fmt = match format {
        LogFormat::Json => fmt.json().flatten_event(true).boxed(),
        LogFormat::Text => fmt.boxed(),
    };
    let otel = otlp_endpoint.and_then(|endpoint| match tracer_provider(endpoint) {
        Ok(provider) => {
            let tracer = provider.tracer("clari-mcp");
            let _ = PROVIDER.set(provider);
            opentelemetry::global::set_text_map_propagator(
                opentelemetry_sdk::propagation::TraceContextPropagator::new(),
            );
            Some(tracing_opentelemetry::layer().with_tracer(tracer))
        }
        Err(e) => {
            eprintln!("warning: traces are off: the OTLP exporter could not be made: {e}");
            None
        }
    });
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(fmt)
        .with(otel)
        .try_init();
}

fn tracer_provider(
    endpoint: &str,
) -> Result<SdkTracerProvider, opentelemetry_otlp::ExporterBuildError> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
        .with_endpoint(format!("{}/v1/traces", endpoint.trim_end_matches('/')))
        .build()?;
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name("clari-mcp")
        .with_attribute(opentelemetry::KeyValue::new(
            "service.version",
            env!("CARGO_PKG_VERSION"),
        ))
        .build();
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .build())
}

/// Whether spans are exported.
pub fn tracing_on() -> bool {
    PROVIDER.get().is_some()
}

/// Sends the spans still buffered and stops the exporter: at the end of every command.
pub fn shutdown() {
    if let Some(p) = PROVIDER.get()
        && let Err(e) = p.shutdown()
    {
        eprintln!("warning: flushing traces failed: {e}");
    }
}

/// Reads W3C trace context (`traceparent`, `tracestate`) from HTTP headers.
struct Headers<'a>(&'a axum::http::HeaderMap);

impl opentelemetry::propagation::Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }
    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

/// Reads W3C trace context from an MCP request's `_meta` (MCP 2026-07-28 lets a client carry
/// `traceparent` and `tracestate` there, for transports without headers).
struct Meta<'a>(&'a serde_json::Map<String, serde_json::Value>);

impl opentelemetry::propagation::Extractor for Meta<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.as_str())
    }
    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(String::as_str).collect()
    }
}

/// Makes `span` a child of the trace the headers carry, when they carry one, and records the
/// trace id on it (so every log line inside it names the trace).
pub fn continue_from_headers(span: &tracing::Span, headers: &axum::http::HeaderMap) {
    if !tracing_on() {
        return;
    }
    let parent = opentelemetry::global::get_text_map_propagator(|p| p.extract(&Headers(headers)));
    adopt(span, parent);
}

/// As [`continue_from_headers`], from an MCP request's `_meta`; `false` when it carries none.
pub fn continue_from_meta(
    span: &tracing::Span,
    meta: &serde_json::Map<String, serde_json::Value>,
) -> bool {
    if !tracing_on() || !meta.contains_key("traceparent") {
        return false;
    }
    let parent = opentelemetry::global::get_text_map_propagator(|p| p.extract(&Meta(meta)));
    adopt(span, parent);
    true
}

fn adopt(span: &tracing::Span, parent: opentelemetry::Context) {
    use opentelemetry::trace::TraceContextExt as _;
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;
    if parent.span().span_context().is_valid() {
        let _ = span.set_parent(parent);
    }
    record_trace_id(span);
}

/// Records the span's trace id in its `trace_id` field.
pub fn record_trace_id(span: &tracing::Span) {
    use opentelemetry::trace::TraceContextExt as _;
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;
    if !tracing_on() {
        return;
    }
    let id = span.context().span().span_context().trace_id();
    if id != opentelemetry::trace::TraceId::INVALID {
        span.record("trace_id", tracing::field::display(id));
    }
}
