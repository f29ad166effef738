//! The activity dashboard's numbers, from the audit trail's `tool.call` events: calls and errors
//! per tool and over time, p50/p95 latency, estimated tokens, top clients. Charts are SVG drawn
//! here, so the page needs no JavaScript. At most [`MAX_EVENTS`] events are read per view.

use std::collections::HashMap;

use serde_json::Value;

use crate::state::AppState;
use crate::store::{AuditFilter, OrgId, StoreError};

/// The most events one view reads (newest first); beyond it the view says it is partial.
pub const MAX_EVENTS: usize = 50_000;
const PAGE: i64 = 1_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    Day,
    Week,
}

impl Window {
    /// `24h` (the default) or `7d`; anything else is `None`.
    pub fn parse(text: Option<&str>) -> Option<Window> {
        match text {
            None | Some("24h") => Some(Window::Day),
            Some("7d") => Some(Window::Week),
            _ => None,
        }
    }

    pub fn seconds(self) -> i64 {
        match self {
            Window::Day => 86_400,
            Window::Week => 7 * 86_400,
        }
    }

    /// Buckets of the calls-over-time chart: 24 hours, or 28 quarter-days.
    fn buckets(self) -> i64 {
        match self {
            Window::Day => 24,
            Window::Week => 28,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Window::Day => "24 h",
            Window::Week => "7 d",
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ToolStats {
    pub tool: String,
    pub calls: u64,
    pub errors: u64,
    pub p50_ms: u64,
    pub p95_ms: u64,
    pub tokens: u64,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Activity {
    pub calls: u64,
    pub errors: u64,
    pub tokens: u64,
    pub p50_ms: u64,
    pub p95_ms: u64,
    pub tools: Vec<ToolStats>,
    /// (client, calls), most calls first, at most ten.
    pub clients: Vec<(String, u64)>,
    /// (start time, calls, errors) per bucket, oldest first.
    pub timeline: Vec<(i64, u64, u64)>,
    pub partial: bool,
}

/// The nearest-rank percentile of sorted values.
pub fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

struct Call {
    at: i64,
    tool: String,
    failed: bool,
    latency: u64,
    tokens: u64,
    client: String,
}

fn call_of(at: i64, outcome: &str, details: &str) -> Call {
    let d: Value = serde_json::from_str(details).unwrap_or_default();
    let client = match (d["client_id"].as_str(), d["api_key_id"].as_str()) {
        (Some(c), _) => format!("client:{c}"),
        (None, Some(k)) => format!("key:{k}"),
        _ => "unknown".to_owned(),
    };
    Call {
        at,
        tool: d["tool"].as_str().unwrap_or("?").to_owned(),
        failed: outcome != "success",
        latency: d["latency_ms"].as_u64().unwrap_or(0),
        tokens: d["estimated_tokens"].as_u64().unwrap_or(0),
        client,
    }
}

/// The organisation's tool calls over the window ending `now`.
pub async fn activity(
    state: &AppState,
    org: &OrgId,
    window: Window,
    now: i64,
) -> Result<Activity, StoreError> {
    let start = now - window.seconds();
    let filter = AuditFilter {
        since: Some(start),
        until: Some(now),
        action: Some("tool.call".into()),
        ..AuditFilter::default()
    };
    let mut calls = Vec::new();
    let mut before = None;
    let mut partial = false;
    loop {
        let rows = state
            .store
            .find_audit_events(org.as_str(), &filter, before, PAGE)
            .await?;
        let full = rows.len() as i64 == PAGE;
        before = rows.last().map(|r| r.seq);
        calls.extend(rows.iter().map(|r| call_of(r.at, &r.outcome, &r.details)));
        if calls.len() >= MAX_EVENTS {
            partial = full;
            break;
        }
        if !full {
            break;
        }
    }
    let names = client_names(state, org, &calls).await;
    Ok(summarise(&calls, &names, start, window, partial))
}

/// A person-readable name per client key (`client:<id>` or `key:<id>`).
async fn client_names(state: &AppState, org: &OrgId, calls: &[Call]) -> HashMap<String, String> {
    let mut names = HashMap::new();
    let keys = state.store.list_api_keys(org).await.unwrap_or_default();
    for c in calls {
        if names.contains_key(&c.client) {
            continue;
        }
        let name = if let Some(id) = c.client.strip_prefix("key:") {
            keys.iter()
                .find(|k| k.id.as_str() == id)
                .map(|k| format!("API key “{}” ({})", k.name, k.user_email))
                .unwrap_or_else(|| "a deleted API key".into())
        } else if let Some(id) = c.client.strip_prefix("client:") {
            match crate::store::ClientId::parse(id) {
                Ok(cid) => match state.store.client(&cid).await {
                    Ok(Some(rec)) => rec.metadata["client_name"]
                        .as_str()
                        .unwrap_or(id)
                        .to_owned(),
                    _ => id.to_owned(),
                },
                Err(_) => id.to_owned(),
            }
        } else {
            "unknown".into()
        };
        names.insert(c.client.clone(), name);
    }
    names
}

fn summarise(
    calls: &[Call],
    names: &HashMap<String, String>,
    start: i64,
    window: Window,
    partial: bool,
) -> Activity {
    let mut by_tool: HashMap<&str, Vec<&Call>> = HashMap::new();
    let mut by_client: HashMap<&str, u64> = HashMap::new();
    let n = window.buckets();
    let width = window.seconds() / n;
    let mut timeline: Vec<(i64, u64, u64)> = (0..n).map(|i| (start + i * width, 0, 0)).collect();
    for c in calls {
        by_tool.entry(&c.tool).or_default().push(c);
        *by_client
            .entry(
                names
                    .get(&c.client)
                    .map(String::as_str)
                    .unwrap_or("unknown"),
            )
            .or_default() += 1;
        let i = ((c.at - start) / width).clamp(0, n - 1) as usize;
        timeline[i].1 += 1;
        timeline[i].2 += u64::from(c.failed);
    }
    let mut tools: Vec<ToolStats> = by_tool
        .into_iter()
        .map(|(tool, cs)| {
            let mut lat: Vec<u64> = cs.iter().map(|c| c.latency).collect();
            lat.sort_unstable();
            ToolStats {
                tool: tool.to_owned(),
                calls: cs.len() as u64,
                errors: cs.iter().filter(|c| c.failed).count() as u64,
                p50_ms: percentile(&lat, 50.0),
                p95_ms: percentile(&lat, 95.0),
                tokens: cs.iter().map(|c| c.tokens).sum(),
            }
        })
        .collect();
    tools.sort_by(|a, b| b.calls.cmp(&a.calls).then(a.tool.cmp(&b.tool)));
    let mut clients: Vec<(String, u64)> = by_client
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
    clients.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    clients.truncate(10);
    let mut all: Vec<u64> = calls.iter().map(|c| c.latency).collect();
    all.sort_unstable();
    Activity {
        calls: calls.len() as u64,
        errors: calls.iter().filter(|c| c.failed).count() as u64,
        tokens: calls.iter().map(|c| c.tokens).sum(),
        p50_ms: percentile(&all, 50.0),
        p95_ms: percentile(&all, 95.0),
        tools,
        clients,
        timeline,
        partial,
    }
}

/// Text safe inside SVG/XML.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

const BLUE: &str = "#2b5bd7";
const RED: &str = "#c62828";

/// Calls over time: one column per bucket, errors stacked in red on top of successes.
pub fn timeline_svg(timeline: &[(i64, u64, u64)], label: &dyn Fn(i64) -> String) -> String {
    let (w, h, left, bottom) = (640.0_f64, 180.0_f64, 36.0_f64, 22.0_f64);
    let max = timeline.iter().map(|t| t.1).max().unwrap_or(0).max(1) as f64;
    let col = (w - left) / timeline.len().max(1) as f64;
    let total: u64 = timeline.iter().map(|t| t.1).sum();
    let errors: u64 = timeline.iter().map(|t| t.2).sum();
    let mut svg = format!(
        r#"<svg viewBox="0 0 {w} {h}" width="100%" role="img" aria-labelledby="tl-title"><title id="tl-title">Tool calls over time: {total} calls, {errors} errors</title>"#
    );
    svg.push_str(&format!(
        r##"<line x1="{left}" y1="{y}" x2="{w}" y2="{y}" stroke="#c9ced6"/><text x="2" y="12">{max}</text><text x="2" y="{y}">0</text>"##,
        y = h - bottom,
        max = max as u64
    ));
    for (i, (at, calls, errs)) in timeline.iter().enumerate() {
        let x = left + i as f64 * col + 1.0;
        let plot = h - bottom - 14.0;
        let ok_h = (*calls - *errs) as f64 / max * plot;
        let err_h = *errs as f64 / max * plot;
        let base = h - bottom;
        svg.push_str(&format!(
            r#"<rect x="{x:.1}" y="{:.1}" width="{:.1}" height="{ok_h:.1}" fill="{BLUE}"><title>{}: {calls} calls, {errs} errors</title></rect>"#,
            base - ok_h,
            (col - 2.0).max(1.0),
            esc(&label(*at))
        ));
        if *errs > 0 {
            svg.push_str(&format!(
                r#"<rect x="{x:.1}" y="{:.1}" width="{:.1}" height="{err_h:.1}" fill="{RED}"/>"#,
                base - ok_h - err_h,
                (col - 2.0).max(1.0)
            ));
        }
        if i % 6 == 0 {
            svg.push_str(&format!(
                r#"<text x="{x:.1}" y="{:.1}">{}</text>"#,
                h - 6.0,
                esc(&label(*at))
            ));
        }
    }
    svg.push_str("</svg>");
    svg
}

/// Horizontal bars: one row per (name, value).
pub fn bars_svg(title: &str, rows: &[(String, u64)]) -> String {
    let (w, row, name_w) = (640.0_f64, 22.0_f64, 250.0_f64);
    let h = row * rows.len().max(1) as f64 + 4.0;
    let max = rows.iter().map(|r| r.1).max().unwrap_or(0).max(1) as f64;
    let mut svg = format!(
        r#"<svg viewBox="0 0 {w} {h}" width="100%" role="img" aria-label="{}">"#,
        esc(title)
    );
    for (i, (name, v)) in rows.iter().enumerate() {
        let y = i as f64 * row + 2.0;
        let bw = (*v as f64 / max * (w - name_w - 60.0)).max(1.0);
        let short: String = name.chars().take(38).collect();
        svg.push_str(&format!(
            r#"<text x="0" y="{:.1}">{}</text><rect x="{name_w}" y="{y:.1}" width="{bw:.1}" height="{:.1}" fill="{BLUE}"/><text x="{:.1}" y="{:.1}">{v}</text>"#,
            y + 14.0,
            esc(&short),
            row - 6.0,
            name_w + bw + 4.0,
            y + 14.0
        ));
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(at: i64, tool: &str, failed: bool, latency: u64) -> Call {
        Call {
            at,
            tool: tool.into(),
            failed,
            latency,
            tokens: 10,
            client: "key:k".into(),
        }
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), 50);
        assert_eq!(percentile(&v, 95.0), 95);
        assert_eq!(percentile(&[7], 95.0), 7);
        assert_eq!(percentile(&[], 50.0), 0);
    }

    #[test]
    fn calls_are_counted_per_tool_bucket_and_client() {
        let start = 1_000_000;
        let calls = vec![
            call(start + 10, "get_forecast", false, 100),
            call(start + 20, "get_forecast", true, 300),
            call(start + 3_700, "list_users", false, 50),
        ];
        let names = HashMap::from([("key:k".to_owned(), "API key “ci”".to_owned())]);
        let a = summarise(&calls, &names, start, Window::Day, false);
        assert_eq!((a.calls, a.errors, a.tokens), (3, 1, 30));
        assert_eq!(a.tools[0].tool, "get_forecast");
        assert_eq!((a.tools[0].calls, a.tools[0].errors), (2, 1));
        assert_eq!((a.tools[0].p50_ms, a.tools[0].p95_ms), (100, 300));
        assert_eq!(a.timeline.len(), 24);
        assert_eq!((a.timeline[0].1, a.timeline[0].2), (2, 1));
        assert_eq!(a.timeline[1].1, 1);
        assert_eq!(a.clients, vec![("API key “ci”".to_owned(), 3)]);
    }

    #[test]
    fn chart_text_is_escaped() {
        let svg = bars_svg("t", &[("<script>x</script>".into(), 3)]);
        assert!(!svg.contains("<script>"));
        assert!(svg.contains("&lt;script&gt;"));
    }
}
