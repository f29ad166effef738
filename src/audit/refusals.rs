//! Refused requests are summarised, not written one by one: the first refusal of a kind by one
//! caller in a window is an audit event, the rest of that window only bump a counter (one
//! shared row, on any replica), and housekeeping turns each closed window's count into one
//! `audit.refusals_summarised` event. A flood of refused calls thus costs the audit trail at
//! most two rows per caller, kind and window, and the trail still says how many there were.

use super::{Actor, AuditLog, Event};
use crate::clock::UnixTime;
use crate::store::{OrgId, Store, StoreError};

/// The window refusals are counted in.
pub const WINDOW_SECONDS: i64 = 600;

const PREFIX: &str = "refused|";

fn window_of(now: UnixTime) -> UnixTime {
    now - now.rem_euclid(WINDOW_SECONDS)
}

/// What identifies a kind of refusal by one caller: its chain, action, class, actor and target.
/// `|` never occurs in any of them (ids, tool names, classes, address buckets).
fn bucket(event: &Event, class: &str) -> String {
    let clean = |s: &str| s.replace('|', "/");
    format!(
        "{PREFIX}{}|{}|{}|{}|{}|{}",
        event.org.as_ref().map_or("-", OrgId::as_str),
        event.action,
        clean(class),
        event.actor.kind,
        clean(event.actor.id.as_deref().unwrap_or("")),
        clean(event.target.as_deref().unwrap_or("")),
    )
}

impl AuditLog {
    /// Records a refused request's event when it is the first of its kind by this caller in
    /// the window, else only counts it. When the count cannot be kept, the event is written.
    pub async fn record_refusal(&self, store: &dyn Store, event: Event, class: &str) {
        let now = self.clock.now();
        match store.rate_hit(&bucket(&event, class), window_of(now)).await {
            Ok(1) | Err(_) => self.record(event.detail(
                "more_refusals",
                format!("counted, summarised per {} minutes", WINDOW_SECONDS / 60),
            )),
            Ok(_) => {}
        }
    }
}

/// Writes one summary event per closed window that counted more than its first refusal, and
/// forgets the counters. Returns how many summaries were written.
pub async fn summarise(
    store: &dyn Store,
    audit: &AuditLog,
    now: UnixTime,
) -> Result<u64, StoreError> {
    let closed = store
        .rate_buckets_before(&format!("{PREFIX}%"), window_of(now))
        .await?;
    let mut written = 0;
    for (bucket, window, hits) in closed {
        let parts: Vec<&str> = bucket[PREFIX.len()..].splitn(6, '|').collect();
        if let [org, action, class, kind, id, target] = parts[..]
            && hits > 1
        {
            let org = (org != "-").then(|| OrgId::parse(org).ok()).flatten();
            let actor = Actor {
                kind: match kind {
                    "user" => "user",
                    "client" => "client",
                    "api_key" => "api_key",
                    "operator" => "operator",
                    _ => "system",
                },
                id: (!id.is_empty()).then(|| id.to_owned()),
                name: None,
            };
            let mut event = Event::new(org.as_ref(), actor, "audit.refusals_summarised")
                .outcome("denied")
                .detail("action", action)
                .detail("class", class)
                .detail("count", hits - 1)
                .detail("window_start", window)
                .detail("window_seconds", WINDOW_SECONDS);
            if !target.is_empty() {
                event = event.target(target);
            }
            audit.record(event);
            written += 1;
        }
        store.delete_rate_bucket(&bucket, window).await?;
    }
    Ok(written)
}
