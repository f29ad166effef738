//! The audit log (filter, page, download as JSON Lines) and the activity dashboard.

use askama::Template;
use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use tower_sessions::Session;

use super::{acting, when};
use crate::admin::activity::{self, Window};
use crate::admin::api::{audit_filter, audit_json};
use crate::state::AppState;
use crate::web::console::{AdminConsole, Console, Nav};
use crate::web::{self, error_page, internal_error_page, render, urlencode};

/// Rows per page of the log.
const PAGE: i64 = 50;
/// The most rows one download holds (newest first); a longer trail is exported with the CLI.
const DOWNLOAD_MAX: usize = 100_000;

#[derive(Deserialize, Default)]
pub struct AuditQuery {
    since: Option<String>,
    until: Option<String>,
    action: Option<String>,
    actor: Option<String>,
    outcome: Option<String>,
    before: Option<i64>,
}

impl AuditQuery {
    /// The filters as a query string, for the next-page and download links.
    fn link(&self) -> String {
        [
            ("since", &self.since),
            ("until", &self.until),
            ("action", &self.action),
            ("actor", &self.actor),
            ("outcome", &self.outcome),
        ]
        .iter()
        .filter_map(|(k, v)| {
            v.as_deref()
                .filter(|v| !v.trim().is_empty())
                .map(|v| format!("{k}={}", urlencode(v)))
        })
        .collect::<Vec<_>>()
        .join("&")
    }

    fn filter(&self) -> Result<crate::store::AuditFilter, String> {
        audit_filter(
            self.since.as_deref(),
            self.until.as_deref(),
            self.action.as_deref(),
            self.actor.as_deref(),
            self.outcome.as_deref(),
        )
    }
}

struct Row {
    seq: i64,
    at: String,
    actor: String,
    action: String,
    target: String,
    outcome: String,
    details: String,
}

#[derive(Template)]
#[template(path = "admin_audit.html")]
struct AuditPage {
    nav: Nav,
    rows: Vec<Row>,
    since: String,
    until: String,
    action: String,
    actor: String,
    outcome: String,
    error: Option<String>,
    next: Option<String>,
    download: String,
}

pub async fn audit_page(
    State(state): State<AppState>,
    session: Session,
    Query(q): Query<AuditQuery>,
    AdminConsole(c): AdminConsole,
) -> Response {
    let (rows, error, next) = match q.filter() {
        Err(e) => (Vec::new(), Some(e), None),
        Ok(filter) => match acting(&state, &c, Default::default())
            .audit(&filter, q.before, PAGE + 1)
            .await
        {
            Ok(mut rows) => {
                let more = rows.len() as i64 > PAGE;
                rows.truncate(PAGE as usize);
                let next = more.then(|| rows.last().map(|r| r.seq)).flatten();
                (rows, None, next)
            }
            Err(e) => return internal_error_page(&e),
        },
    };
    let link = q.link();
    let rows = rows
        .into_iter()
        .map(|r| Row {
            seq: r.seq,
            at: when(r.at),
            actor: match (&r.actor_name, &r.actor_id) {
                (Some(n), _) => format!("{} {n}", r.actor_kind),
                (None, Some(i)) => format!("{} {i}", r.actor_kind),
                _ => r.actor_kind.clone(),
            },
            action: r.action,
            target: r.target.unwrap_or_default(),
            outcome: r.outcome,
            details: r.details,
        })
        .collect();
    let nav = c.nav(&session, "audit", "/admin/audit").await;
    let value = |v: &Option<String>| v.clone().unwrap_or_default();
    render(
        if error.is_some() {
            StatusCode::BAD_REQUEST
        } else {
            StatusCode::OK
        },
        &AuditPage {
            nav,
            rows,
            since: value(&q.since),
            until: value(&q.until),
            action: value(&q.action),
            actor: value(&q.actor),
            outcome: value(&q.outcome),
            error,
            next: next.map(|seq| {
                if link.is_empty() {
                    format!("/admin/audit?before={seq}")
                } else {
                    format!("/admin/audit?{link}&before={seq}")
                }
            }),
            download: if link.is_empty() {
                "/admin/audit.jsonl".to_owned()
            } else {
                format!("/admin/audit.jsonl?{link}")
            },
        },
    )
}

/// The filtered log as JSON Lines, newest first, at most [`DOWNLOAD_MAX`] rows.
pub async fn audit_download(
    State(state): State<AppState>,
    Query(q): Query<AuditQuery>,
    AdminConsole(c): AdminConsole,
) -> Response {
    let filter = match q.filter() {
        Ok(f) => f,
        Err(e) => {
            return error_page(
                StatusCode::BAD_REQUEST,
                "The filter is not valid",
                &e,
                "Go back and correct it.",
            );
        }
    };
    let admin = acting(&state, &c, Default::default());
    let mut out = String::new();
    let mut before = q.before;
    let mut written = 0;
    loop {
        let rows = match admin.audit(&filter, before, 1_000).await {
            Ok(r) => r,
            Err(e) => return internal_error_page(&e),
        };
        for r in &rows {
            out.push_str(&audit_json(r).to_string());
            out.push('\n');
        }
        written += rows.len();
        before = rows.last().map(|r| r.seq);
        if rows.len() < 1_000 || written >= DOWNLOAD_MAX {
            break;
        }
    }
    web::with_headers(
        (StatusCode::OK, Body::from(out)).into_response(),
        &[
            (header::CONTENT_TYPE, "application/jsonl; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"audit.jsonl\"",
            ),
            (header::CACHE_CONTROL, "no-store"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; frame-ancestors 'none'",
            ),
        ],
    )
}

#[derive(Deserialize, Default)]
pub struct ActivityQuery {
    window: Option<String>,
}

#[derive(Template)]
#[template(path = "admin_activity.html")]
struct ActivityPage {
    nav: Nav,
    window: &'static str,
    a: activity::Activity,
    timeline_svg: String,
    tools_svg: String,
    clients_svg: String,
    error_rate: String,
}

pub async fn activity_page(
    State(state): State<AppState>,
    session: Session,
    Query(q): Query<ActivityQuery>,
) -> Response {
    let Some(window) = Window::parse(q.window.as_deref()) else {
        return error_page(
            StatusCode::BAD_REQUEST,
            "No such window",
            "The activity page shows the last 24h or 7d.",
            "Use the links on the page.",
        );
    };
    let c = match Console::load_admin(&state, &session).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let a = match activity::activity(&state, &c.org.id, window, state.now()).await {
        Ok(a) => a,
        Err(e) => return internal_error_page(&e),
    };
    let label = |t: i64| {
        let s = when(t);
        match window {
            Window::Day => s.get(11..16).unwrap_or_default().to_owned(),
            Window::Week => s.get(5..10).unwrap_or_default().to_owned(),
        }
    };
    let timeline_svg = activity::timeline_svg(&a.timeline, &label);
    let tools: Vec<(String, u64)> = a.tools.iter().map(|t| (t.tool.clone(), t.calls)).collect();
    let tools_svg = activity::bars_svg("Calls per tool", &tools);
    let clients_svg = activity::bars_svg("Top clients", &a.clients);
    let error_rate = if a.calls == 0 {
        "0%".to_owned()
    } else {
        format!("{:.1}%", a.errors as f64 * 100.0 / a.calls as f64)
    };
    let nav = c.nav(&session, "activity", "/admin/activity").await;
    render(
        StatusCode::OK,
        &ActivityPage {
            nav,
            window: window.label(),
            a,
            timeline_svg,
            tools_svg,
            clients_svg,
            error_rate,
        },
    )
}
