//! Progress while a call waits for a Clari export.
//!
//! A tool that waits for an export (it takes `wait_seconds`) may hold its call for up to
//! [`tools::MAX_WAIT`](super::tools::MAX_WAIT) seconds. A client that asked for progress (a
//! `progressToken` in the request's `_meta`) hears, once a second, how long the call has waited
//! and at most how long it will, so a host can show that the call is alive instead of a silent
//! spinner. A call that answers within the first second sends nothing.

use std::future::Future;
use std::time::Duration;

use rmcp::model::{JsonObject, ProgressNotificationParam, ProgressToken};
use rmcp::{Peer, RoleServer};
use serde_json::Value;

use super::tasks::TASK_WINDOW_SECONDS;
use super::tools;

/// How often a waiting call reports.
pub const EVERY: Duration = Duration::from_secs(1);

/// The longest a call with these arguments will wait for an export, in seconds: its
/// `wait_seconds` (or the default), and no more than a task-capable client's quick window.
pub fn longest_wait(args: &JsonObject, tasks_declared: bool) -> u64 {
    let asked = args
        .get("wait_seconds")
        .and_then(Value::as_u64)
        .unwrap_or(tools::DEFAULT_WAIT)
        .min(tools::MAX_WAIT);
    if tasks_declared {
        asked.min(TASK_WINDOW_SECONDS)
    } else {
        asked
    }
}

/// Runs `work`; while it runs, sends `notifications/progress` for `token` every [`EVERY`]: the
/// seconds waited so far, out of `total`, with a sentence saying so.
///
/// MCP 2026-07-28, Base Protocol › Patterns › Progress: notifications reference only the token of
/// this active request, `progress` increases with each one (so none is sent once the wait has
/// reached `total`), and none is sent after the call has answered (the loop ends with `work`).
pub async fn reporting<F: Future>(
    peer: &Peer<RoleServer>,
    token: ProgressToken,
    total: u64,
    work: F,
) -> F::Output {
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + EVERY, EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(work);
    let mut waited: u64 = 0;
    loop {
        tokio::select! {
            out = &mut work => return out,
            _ = ticks.tick(), if waited < total => {
                waited += 1;
                let note = ProgressNotificationParam::new(token.clone(), waited as f64)
                    .with_total(total as f64)
                    .with_message(format!(
                        "Waiting for Clari's export: {waited} s of at most {total} s; the answer says where it stands if it is not ready by then."
                    ));
                if let Err(e) = peer.notify_progress(note).await {
                    tracing::debug!(error = %e, "a progress notification could not be sent");
                }
            }
        }
    }
}
