//! A PostgreSQL replica's listener of change notifications: it hears the triggers' notifications
//! and its own pings and markers, and says whether the caches may be trusted.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{CHANNEL, Changes, LISTENER_LATE, LISTENER_NAME, PING_EVERY, SYNC_WAIT};
use crate::store::OrgId;

/// Forgets a marker's waiter when dropped.
struct Forget<'a>(
    &'a Mutex<HashMap<u64, tokio::sync::oneshot::Sender<()>>>,
    u64,
);

impl Drop for Forget<'_> {
    fn drop(&mut self) {
        self.0
            .lock()
            .expect("listener waiting lock")
            .remove(&self.1);
    }
}

/// A replica's listening connection, as the callers see it.
pub(super) struct Listener {
    /// Milliseconds since `start` at which the newest ping this listener heard was sent; 0 when
    /// it has heard none since it (re)connected.
    heard: AtomicU64,
    start: Instant,
    /// Names this replica's pings and markers in the shared channel.
    replica: String,
    connected: AtomicBool,
    pub(super) losses: AtomicU64,
    next_marker: AtomicU64,
    waiting: Mutex<HashMap<u64, tokio::sync::oneshot::Sender<()>>>,
    /// Where pings and markers are sent from (not the listening connection).
    sender: Mutex<Option<sqlx::PgPool>>,
}

impl Listener {
    pub(super) fn new() -> Self {
        Self {
            heard: AtomicU64::new(0),
            start: Instant::now(),
            replica: crate::crypto::random_token(9),
            connected: AtomicBool::new(false),
            losses: AtomicU64::new(0),
            next_marker: AtomicU64::new(0),
            waiting: Mutex::new(HashMap::new()),
            sender: Mutex::new(None),
        }
    }

    fn millis(&self) -> u64 {
        // At least 1, so that 0 can mean "none".
        self.start.elapsed().as_millis() as u64 + 1
    }

    pub(super) fn is_current(&self) -> bool {
        let heard = self.heard.load(SeqCst);
        self.connected.load(SeqCst)
            && heard != 0
            && self.millis().saturating_sub(heard) < LISTENER_LATE.as_millis() as u64
    }

    fn pool(&self) -> Option<sqlx::PgPool> {
        self.sender.lock().expect("listener sender lock").clone()
    }

    /// Sends a marker after this replica's change and waits until its own listener hears it.
    /// Notifications reach a listener in commit order, so by then the change's has been sent.
    pub(super) async fn sync(&self) {
        if !self.is_current() {
            // Nothing here trusts the cache meanwhile; other replicas hear the triggers.
            return;
        }
        let Some(pool) = self.pool() else { return };
        let n = self.next_marker.fetch_add(1, SeqCst);
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.waiting
            .lock()
            .expect("listener waiting lock")
            .insert(n, tx);
        // Removed however this ends, a cancelled wait included.
        let _forget = Forget(&self.waiting, n);
        let sent = sqlx::query("SELECT pg_notify($1, $2)")
            .bind(CHANNEL)
            .bind(format!("sync {} {n}", self.replica))
            .execute(&pool)
            .await;
        let heard = match sent {
            Ok(_) => tokio::time::timeout(SYNC_WAIT, rx).await.is_ok(),
            Err(e) => {
                tracing::warn!(error = %e, "sending a change marker failed");
                false
            }
        };
        if !heard {
            tracing::warn!("this replica's change listener did not confirm a change in time");
        }
    }

    fn lost(&self, changes: &Changes) {
        if self.connected.swap(false, SeqCst) {
            self.losses.fetch_add(1, SeqCst);
        }
        self.heard.store(0, SeqCst);
        changes.everything_changed();
    }

    /// One notification: an organisation's change, a change of everything, or this replica's
    /// own ping or marker.
    fn heard(&self, changes: &Changes, payload: &str) {
        let mut words = payload.split(' ');
        match (words.next(), words.next(), words.next()) {
            (Some("org"), Some(org), None) => match OrgId::parse(org) {
                Ok(org) => changes.org_changed(&org),
                Err(_) => changes.everything_changed(),
            },
            (Some(kind @ ("ping" | "sync")), Some(replica), Some(n)) => {
                // Other replicas' pings and markers are theirs.
                let Ok(n) = n.parse::<u64>() else { return };
                if replica != self.replica {
                } else if kind == "ping" {
                    self.heard.fetch_max(n, SeqCst);
                } else if let Some(tx) = self
                    .waiting
                    .lock()
                    .expect("listener waiting lock")
                    .remove(&n)
                {
                    let _ = tx.send(());
                }
            }
            _ => changes.everything_changed(),
        }
    }
}

/// The listener's life: connect, `LISTEN`, hear notifications until the connection is lost,
/// and again; pings go out beside it. Ends when the store is dropped.
pub(super) async fn listen(changes: std::sync::Weak<Changes>, l: Arc<Listener>, url: String) {
    use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};
    use std::str::FromStr;
    let mut backoff = Duration::from_millis(100);
    loop {
        let opts = match PgConnectOptions::from_str(&url) {
            Ok(o) => o,
            Err(e) => {
                tracing::error!(error = %e, "the change listener cannot parse the database URL");
                return;
            }
        };
        let connected = async {
            let pool = PgPoolOptions::new()
                .max_connections(1)
                .max_lifetime(None)
                .idle_timeout(None)
                .connect_with(opts.clone().application_name(LISTENER_NAME))
                .await?;
            let mut listener = PgListener::connect_with(&pool).await?;
            listener.eager_reconnect(false);
            listener.listen(CHANNEL).await?;
            let sender = PgPoolOptions::new()
                .max_connections(1)
                .connect_with(opts.clone())
                .await?;
            Ok::<_, sqlx::Error>((listener, sender))
        }
        .await;
        let (mut listener, sender) = match connected {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e, "the change listener cannot connect; caches are off");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
                if changes.strong_count() == 0 {
                    return;
                }
                continue;
            }
        };
        backoff = Duration::from_millis(100);
        *l.sender.lock().expect("listener sender lock") = Some(sender.clone());
        l.connected.store(true, SeqCst);
        let pinger = tokio::spawn(ping(l.clone(), sender));
        loop {
            let Some(c) = changes.upgrade() else {
                pinger.abort();
                return;
            };
            match listener.try_recv().await {
                Ok(Some(n)) => l.heard(&c, n.payload()),
                Ok(None) => {
                    tracing::warn!(
                        "the change listener lost its connection; caches are off until it is back"
                    );
                    l.lost(&c);
                    break;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "the change listener failed; caches are off until it is back");
                    l.lost(&c);
                    break;
                }
            }
        }
        pinger.abort();
    }
}

/// Sends this replica's pings: the time each was sent, which its listener compares with now.
async fn ping(l: Arc<Listener>, pool: sqlx::PgPool) {
    let mut every = tokio::time::interval(PING_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        let payload = format!("ping {} {}", l.replica, l.millis());
        if let Err(e) = sqlx::query("SELECT pg_notify($1, $2)")
            .bind(CHANNEL)
            .bind(payload)
            .execute(&pool)
            .await
        {
            tracing::debug!(error = %e, "a change listener ping failed");
        }
    }
}
