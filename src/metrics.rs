//! Prometheus metrics: one registry per application (no process-wide recorder, so several apps in
//! one process, as in the tests, count apart). Served by `/metrics` only when the operator turns
//! it on (`CLARI_MCP_METRICS_BIND` for a separate listener, or `CLARI_MCP_METRICS_TOKEN` for a
//! bearer token on the main one). Labels are bounded: tool names, error classes, Clari endpoint
//! templates and status codes, grant types, organisation ids.

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ToolLabels {
    pub tool: String,
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ToolErrorLabels {
    pub tool: String,
    pub class: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ToolLabel {
    pub tool: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ClariLabels {
    pub endpoint: String,
    pub status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EndpointLabel {
    pub endpoint: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CacheLabel {
    /// `hit`, `joined` (single-flight) or `miss` (an export started).
    pub result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LookupLabels {
    /// `api_key`, `token` (the grant or machine client behind an access token), `redaction` or
    /// `time_zone`.
    pub cache: String,
    /// `hit` (answered from memory) or `miss` (read from the store).
    pub result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TokenLabels {
    pub grant_type: String,
    /// `ok` or the RFC 6749 error code.
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabel {
    pub status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabel {
    /// `queued` (waiting for a slot) or `active` (starting or running at Clari).
    pub state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OrgLabel {
    pub org: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    /// `grants`, `clients` or `api_keys`.
    pub kind: String,
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 1 ms .. ~33 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

/// One tool's series, looked up once: the hot path then only bumps atomics.
#[derive(Clone)]
struct ToolSeries {
    calls: Counter,
    latency: Histogram,
    bytes: Counter,
    tokens: Counter,
}

/// Every metric of the application.
pub struct Metrics {
    registry: Registry,
    series: std::sync::RwLock<std::collections::HashMap<(&'static str, bool), ToolSeries>>,
    pub tool_calls: Family<ToolLabels, Counter>,
    pub tool_errors: Family<ToolErrorLabels, Counter>,
    pub tool_latency: Histograms<ToolLabel>,
    pub tool_result_bytes: Family<ToolLabel, Counter>,
    pub tool_estimated_tokens: Family<ToolLabel, Counter>,
    pub tool_redactions: Family<ToolLabel, Counter>,
    pub clari_requests: Family<ClariLabels, Counter>,
    pub clari_latency: Histograms<EndpointLabel>,
    pub export_cache: Family<CacheLabel, Counter>,
    pub prewarm_hits: Counter,
    pub prewarm_refreshes: Family<OutcomeLabel, Counter>,
    pub token_requests: Family<TokenLabels, Counter>,
    pub auth_refusals: Family<StatusLabel, Counter>,
    pub active_grants: Family<OrgLabel, Gauge>,
    pub active_clients: Family<OrgLabel, Gauge>,
    pub active_api_keys: Family<OrgLabel, Gauge>,
    pub live_credentials: Family<KindLabel, Gauge>,
    pub active_organisations: Gauge,
    pub audit_events: Counter,
    pub signins: Family<OutcomeLabel, Counter>,
    pub connections_refused: Counter,
    pub audit_queue_depth: Gauge,
    pub audit_accepting: Gauge,
    pub export_queue: Family<StateLabel, Gauge>,
    pub export_queue_oldest_seconds: Family<StateLabel, Gauge>,
    pub signing_key_age_seconds: Gauge,
    pub cache_lookups: Family<LookupLabels, Counter>,
    pub change_feed_trusted: Gauge,
    pub change_feed_losses: Counter,
    pub change_feed_unacknowledged: Counter,
    /// Serialises the scrape-time copies of process counters into the counters above.
    synced: std::sync::Mutex<()>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut r = Registry::with_prefix("clari_mcp");
        let m = Self {
            tool_calls: Family::default(),
            tool_errors: Family::default(),
            tool_latency: Family::new_with_constructor(latency_histogram),
            tool_result_bytes: Family::default(),
            tool_estimated_tokens: Family::default(),
            tool_redactions: Family::default(),
            clari_requests: Family::default(),
            clari_latency: Family::new_with_constructor(latency_histogram),
            export_cache: Family::default(),
            prewarm_hits: Counter::default(),
            prewarm_refreshes: Family::default(),
            token_requests: Family::default(),
            auth_refusals: Family::default(),
            active_grants: Family::default(),
            active_clients: Family::default(),
            active_api_keys: Family::default(),
            live_credentials: Family::default(),
            active_organisations: Gauge::default(),
            audit_events: Counter::default(),
            signins: Family::default(),
            connections_refused: Counter::default(),
            audit_queue_depth: Gauge::default(),
            audit_accepting: Gauge::default(),
            export_queue: Family::default(),
            export_queue_oldest_seconds: Family::default(),
            signing_key_age_seconds: Gauge::default(),
            cache_lookups: Family::default(),
            change_feed_trusted: Gauge::default(),
            change_feed_losses: Counter::default(),
            change_feed_unacknowledged: Counter::default(),
            synced: Default::default(),
            registry: Registry::default(),
            series: Default::default(),
        };
        r.register("tool_calls", "MCP tool calls", m.tool_calls.clone());
        r.register(
            "tool_errors",
            "MCP tool calls that failed, by error class",
            m.tool_errors.clone(),
        );
        r.register(
            "tool_latency_seconds",
            "MCP tool call latency",
            m.tool_latency.clone(),
        );
        r.register(
            "tool_result_bytes",
            "Bytes of tool answers (text content)",
            m.tool_result_bytes.clone(),
        );
        r.register(
            "tool_estimated_tokens",
            "Estimated tokens of tool answers (bytes / 4): the cost an agent pays",
            m.tool_estimated_tokens.clone(),
        );
        r.register(
            "tool_redactions",
            "Values redacted from tool answers",
            m.tool_redactions.clone(),
        );
        r.register(
            "clari_requests",
            "Requests to Clari by endpoint and status",
            m.clari_requests.clone(),
        );
        r.register(
            "clari_latency_seconds",
            "Latency of requests to Clari",
            m.clari_latency.clone(),
        );
        r.register(
            "export_cache",
            "Export lookups: hit, joined (single-flight) or miss (an export started)",
            m.export_cache.clone(),
        );
        r.register(
            "prewarm_hits",
            "Export lookups answered from an export the pre-warmer refreshed",
            m.prewarm_hits.clone(),
        );
        r.register(
            "prewarm_refreshes",
            "Pre-warm checks by outcome: started, followed, fresh, budget_spent, no_spare_slot, busy, limits_unavailable, no_key, disabled, failed",
            m.prewarm_refreshes.clone(),
        );
        r.register(
            "token_requests",
            "Token endpoint requests by grant type and outcome",
            m.token_requests.clone(),
        );
        r.register(
            "auth_refusals",
            "MCP requests refused with 401 or 403",
            m.auth_refusals.clone(),
        );
        r.register(
            "active_grants",
            "Live grants of each of the organisations with the most live grants and API keys (CLARI_MCP_METRICS_ORGS of them)",
            m.active_grants.clone(),
        );
        r.register(
            "active_clients",
            "Clients with a live grant, of each of the organisations with the most live grants and API keys (CLARI_MCP_METRICS_ORGS of them)",
            m.active_clients.clone(),
        );
        r.register(
            "active_api_keys",
            "Live API keys of each of the organisations with the most live grants and API keys (CLARI_MCP_METRICS_ORGS of them)",
            m.active_api_keys.clone(),
        );
        r.register(
            "live_credentials",
            "Live grants, clients with a live grant, and live API keys of every organisation together",
            m.live_credentials.clone(),
        );
        r.register(
            "active_organisations",
            "Organisations with at least one live grant or API key",
            m.active_organisations.clone(),
        );
        r.register(
            "audit_events",
            "Audit events recorded",
            m.audit_events.clone(),
        );
        r.register(
            "signins",
            "Sign-in attempts by outcome: success, failure, throttled (refused before any password check, counted here instead of written each)",
            m.signins.clone(),
        );
        r.register(
            "connections_refused",
            "Connections closed on accept: their address already held the most it may",
            m.connections_refused.clone(),
        );
        r.register(
            "audit_queue_depth",
            "Audit events queued in this process and not yet written",
            m.audit_queue_depth.clone(),
        );
        r.register(
            "audit_accepting",
            "1 while the audit writer keeps up with the database, 0 once an event could not be queued",
            m.audit_accepting.clone(),
        );
        r.register(
            "export_queue",
            "Unfinished Clari exports of every organisation: queued (waiting for a slot) or active (starting or running)",
            m.export_queue.clone(),
        );
        r.register(
            "export_queue_oldest_seconds",
            "Queued: how long the oldest queued export has waited; active: how long since the least recently advanced active export last moved",
            m.export_queue_oldest_seconds.clone(),
        );
        r.register(
            "signing_key_age_seconds",
            "Age of the key that signs access tokens (rotate with `clari-mcp keys rotate-signing`)",
            m.signing_key_age_seconds.clone(),
        );
        r.register(
            "cache_lookups",
            "Lookups on the path of every call (API key, token, redaction policy, time zone; not the export cache) answered from memory (hit) or read from the store (miss, which includes keys that do not exist)",
            m.cache_lookups.clone(),
        );
        r.register(
            "change_feed_trusted",
            "1 while this replica hears every change to what it keeps in memory; 0 while it reads the store on every call instead (PostgreSQL: its listener is down or late)",
            m.change_feed_trusted.clone(),
        );
        r.register(
            "change_feed_losses",
            "Times this replica found its PostgreSQL listener lost and dropped everything it kept in memory",
            m.change_feed_losses.clone(),
        );
        r.register(
            "change_feed_unacknowledged",
            "Changes made on this replica (PostgreSQL) that waited the full 2.1 s because another replica's listener did not acknowledge them in time (that replica read the store meanwhile), or this one's was away",
            m.change_feed_unacknowledged.clone(),
        );
        Self { registry: r, ..m }
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Metrics {
    pub fn shared() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Copies counts kept by the process (cache lookups, listener losses) into their counters,
    /// at a scrape: the hot path only bumps its own atomics.
    pub fn sync_counts(
        &self,
        lookups: &[(&'static str, (u64, u64))],
        trusted: bool,
        (losses, unacknowledged): (u64, u64),
    ) {
        fn raise(counter: &Counter, total: u64) {
            let seen = counter.get();
            if total > seen {
                counter.inc_by(total - seen);
            }
        }
        let _one_at_a_time = self.synced.lock().unwrap_or_else(|e| e.into_inner());
        for (cache, (hits, misses)) in lookups {
            for (result, total) in [("hit", *hits), ("miss", *misses)] {
                let labels = LookupLabels {
                    cache: (*cache).to_owned(),
                    result: result.to_owned(),
                };
                raise(&self.cache_lookups.get_or_create(&labels), total);
            }
        }
        self.change_feed_trusted.set(i64::from(trusted));
        raise(&self.change_feed_losses, losses);
        raise(&self.change_feed_unacknowledged, unacknowledged);
    }

    /// The exposition (OpenMetrics text, which Prometheus scrapes).
    pub fn render(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String does not fail");
        out
    }

    /// The classic Prometheus text format (0.0.4), for scrapers and tools that do not ask for
    /// OpenMetrics: counter families are named with their `_total`, and there is no `# EOF`.
    pub fn render_text(&self) -> String {
        let open = self.render();
        let counters: std::collections::HashSet<&str> = open
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" counter"))
            .collect();
        let mut out = String::with_capacity(open.len());
        for line in open.lines() {
            if line == "# EOF" || line.starts_with("# UNIT ") {
                continue;
            }
            let renamed = ["# HELP ", "# TYPE "].iter().find_map(|prefix| {
                let rest = line.strip_prefix(prefix)?;
                let name = rest.split(' ').next()?;
                counters
                    .contains(name)
                    .then(|| format!("{prefix}{name}_total{}", &rest[name.len()..]))
            });
            out.push_str(renamed.as_deref().unwrap_or(line));
            out.push('\n');
        }
        out
    }

    fn series(&self, tool: &'static str, ok: bool) -> ToolSeries {
        if let Some(s) = self.series.read().expect("metrics lock").get(&(tool, ok)) {
            return s.clone();
        }
        let t = ToolLabel {
            tool: tool.to_owned(),
        };
        let s = ToolSeries {
            calls: self
                .tool_calls
                .get_or_create(&ToolLabels {
                    tool: tool.to_owned(),
                    outcome: if ok { "ok" } else { "error" }.to_owned(),
                })
                .clone(),
            latency: self.tool_latency.get_or_create(&t).clone(),
            bytes: self.tool_result_bytes.get_or_create(&t).clone(),
            tokens: self.tool_estimated_tokens.get_or_create(&t).clone(),
        };
        self.series
            .write()
            .expect("metrics lock")
            .insert((tool, ok), s.clone());
        s
    }

    pub fn tool_call(&self, tool: &'static str, error: Option<&str>, seconds: f64, bytes: u64) {
        let s = self.series(tool, error.is_none());
        s.calls.inc();
        s.latency.observe(seconds);
        s.bytes.inc_by(bytes);
        s.tokens.inc_by(bytes.div_ceil(4));
        if let Some(class) = error {
            self.tool_errors
                .get_or_create(&ToolErrorLabels {
                    tool: tool.to_owned(),
                    class: class.to_owned(),
                })
                .inc();
        }
    }

    pub fn clari_request(&self, endpoint: &str, status: &str, seconds: f64) {
        self.clari_requests
            .get_or_create(&ClariLabels {
                endpoint: endpoint.to_owned(),
                status: status.to_owned(),
            })
            .inc();
        self.clari_latency
            .get_or_create(&EndpointLabel {
                endpoint: endpoint.to_owned(),
            })
            .observe(seconds);
    }

    pub fn export_lookup(&self, result: &str) {
        self.export_cache
            .get_or_create(&CacheLabel {
                result: result.to_owned(),
            })
            .inc();
    }

    pub fn prewarm(&self, outcome: &'static str) {
        self.prewarm_refreshes
            .get_or_create(&OutcomeLabel {
                outcome: outcome.to_owned(),
            })
            .inc();
    }

    pub fn signin(&self, outcome: &'static str) {
        self.signins
            .get_or_create(&OutcomeLabel {
                outcome: outcome.to_owned(),
            })
            .inc();
    }

    pub fn token_request(&self, grant_type: &str, outcome: &str) {
        // Only the two grant types this server knows, so the label stays bounded.
        let grant_type = match grant_type {
            "authorization_code" | "refresh_token" => grant_type,
            _ => "other",
        };
        self.token_requests
            .get_or_create(&TokenLabels {
                grant_type: grant_type.to_owned(),
                outcome: outcome.to_owned(),
            })
            .inc();
    }

    pub fn auth_refused(&self, status: u16) {
        self.auth_refusals
            .get_or_create(&StatusLabel {
                status: status.to_string(),
            })
            .inc();
    }

    /// Sets the export queue gauges from rows of `(status, rows, oldest created_at, oldest
    /// updated_at)` over every unfinished status; an empty queue reads 0 for both states.
    pub fn set_export_queue(&self, rows: &[(String, i64, i64, i64)], now: i64) {
        for state in ["queued", "active"] {
            let mut n = 0;
            let mut oldest: Option<i64> = None;
            for (status, count, created, updated) in rows {
                if (status == "queued") != (state == "queued") {
                    continue;
                }
                // A queued row waits from its creation; an active one from its last move.
                let since = if state == "queued" {
                    *created
                } else {
                    *updated
                };
                n += count;
                oldest = Some(oldest.map_or(since, |o| o.min(since)));
            }
            let l = StateLabel {
                state: state.to_owned(),
            };
            self.export_queue.get_or_create(&l).set(n);
            self.export_queue_oldest_seconds
                .get_or_create(&l)
                .set(oldest.map_or(0, |o| (now - o).max(0)));
        }
    }

    /// Replaces the credential gauges with fresh counts: the totals, and one series per
    /// organisation only for the few with the most, so the series do not grow with the number
    /// of organisations.
    /// `totals` are `(organisations holding any, grants, clients, API keys)`; `top` rows
    /// `(organisation, grants, clients, API keys)`.
    pub fn set_org_gauges(&self, totals: (i64, i64, i64, i64), top: &[(String, i64, i64, i64)]) {
        let (organisations, grants, clients, api_keys) = totals;
        for (kind, n) in [
            ("grants", grants),
            ("clients", clients),
            ("api_keys", api_keys),
        ] {
            self.live_credentials
                .get_or_create(&KindLabel {
                    kind: kind.to_owned(),
                })
                .set(n);
        }
        self.active_organisations.set(organisations);
        self.active_grants.clear();
        self.active_clients.clear();
        self.active_api_keys.clear();
        for (org, grants, clients, keys) in top {
            let l = OrgLabel { org: org.clone() };
            self.active_grants.get_or_create(&l).set(*grants);
            self.active_clients.get_or_create(&l).set(*clients);
            self.active_api_keys.get_or_create(&l).set(*keys);
        }
    }
}

/// The template of a Clari path, so per-job and per-forecast URLs share one label.
pub fn clari_endpoint(path: &str) -> &'static str {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    match parts.as_slice() {
        ["export", "forecast", _] => "export/forecast/{forecastId}",
        ["export", "jobs"] => "export/jobs",
        ["export", "jobs", _] => "export/jobs/{jobId}",
        ["export", "jobs", _, "results"] => "export/jobs/{jobId}/results",
        ["export", "audit", "events"] => "export/audit/events",
        ["export", "activity"] => "export/activity",
        ["admin", "limits"] => "admin/limits",
        ["audit", "events"] => "audit/events",
        ["opportunity"] => "opportunity",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Counts copied at each scrape only ever move a counter forward, by what is new: a repeat
    /// adds nothing, and a lower total (a scrape that read before another) takes nothing back.
    #[test]
    fn process_counts_copied_at_each_scrape_move_counters_by_what_is_new() {
        let m = Metrics::default();
        let hits = |m: &Metrics| {
            m.cache_lookups
                .get_or_create(&LookupLabels {
                    cache: "api_key".into(),
                    result: "hit".into(),
                })
                .get()
        };
        m.sync_counts(&[("api_key", (5, 2))], true, (0, 0));
        m.sync_counts(&[("api_key", (5, 2))], true, (0, 0));
        assert_eq!(hits(&m), 5);
        m.sync_counts(&[("api_key", (3, 2))], false, (1, 2));
        assert_eq!(hits(&m), 5);
        assert_eq!(m.change_feed_trusted.get(), 0);
        m.sync_counts(&[("api_key", (9, 4))], true, (1, 2));
        assert_eq!(hits(&m), 9);
        assert_eq!(m.change_feed_losses.get(), 1);
        assert_eq!(m.change_feed_unacknowledged.get(), 2);
        let text = m.render_text();
        assert!(
            text.contains(r#"clari_mcp_cache_lookups_total{cache="api_key",result="miss"} 4"#),
            "{text}"
        );
        assert!(text.contains("clari_mcp_change_feed_trusted 1"), "{text}");
    }

    #[test]
    fn the_export_queue_is_summed_into_queued_and_active() {
        let m = Metrics::default();
        let row = |status: &str, n, created, updated| (status.to_owned(), n, created, updated);
        m.set_export_queue(
            &[
                row("queued", 2, 100, 150),
                row("starting", 1, 300, 500),
                row("running", 3, 200, 400),
            ],
            1_000,
        );
        let text = m.render_text();
        for line in [
            r#"clari_mcp_export_queue{state="queued"} 2"#,
            r#"clari_mcp_export_queue{state="active"} 4"#,
            // Queued rows age from their creation, active ones from their last move.
            r#"clari_mcp_export_queue_oldest_seconds{state="queued"} 900"#,
            r#"clari_mcp_export_queue_oldest_seconds{state="active"} 600"#,
        ] {
            assert!(text.contains(line), "{line} in {text}");
        }
        m.set_export_queue(&[], 2_000);
        let text = m.render_text();
        assert!(text.contains(r#"clari_mcp_export_queue{state="active"} 0"#));
        assert!(text.contains(r#"clari_mcp_export_queue_oldest_seconds{state="queued"} 0"#));
    }

    #[test]
    fn paths_map_to_bounded_templates() {
        assert_eq!(
            clari_endpoint("export/jobs/abc/results"),
            "export/jobs/{jobId}/results"
        );
        assert_eq!(
            clari_endpoint("export/forecast/renewals"),
            "export/forecast/{forecastId}"
        );
        assert_eq!(clari_endpoint("anything/else/at/all"), "other");
    }

    #[test]
    fn the_exposition_names_what_was_counted() {
        let m = Metrics::default();
        m.tool_call("get_forecast", None, 0.01, 400);
        m.tool_call("get_forecast", Some("argument"), 0.001, 80);
        let text = m.render();
        assert!(
            text.contains(r#"clari_mcp_tool_calls_total{tool="get_forecast",outcome="ok"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"clari_mcp_tool_errors_total{tool="get_forecast",class="argument"} 1"#)
        );
        assert!(text.contains(r#"clari_mcp_tool_estimated_tokens_total{tool="get_forecast"} 120"#));
        let classic = m.render_text();
        assert!(
            classic.contains("# TYPE clari_mcp_tool_calls_total counter"),
            "{classic}"
        );
        assert!(classic.contains("# HELP clari_mcp_tool_calls_total MCP tool calls"));
        assert!(!classic.contains("# EOF"));
    }
}
