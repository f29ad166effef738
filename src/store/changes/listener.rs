//! A PostgreSQL replica's listener of change notifications: it hears the triggers'
//! notifications, its own pings, the other replicas' markers (which it acknowledges) and their
//! acknowledgements of its own markers, and says whether the caches may be trusted.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{
    CHANNEL, Changes, LISTENER_LATE, LISTENER_NAME, OPERATOR_LISTENER_NAME, PING_EVERY, SYNC_WAIT,
};
use crate::store::OrgId;

/// At most this many acknowledgements wait to be sent; past it they are dropped, and the
/// replicas that sent those markers wait out [`SYNC_WAIT`] instead.
const ACKS_QUEUED: usize = 1024;
/// At most this many other servers' listeners are remembered from their pings.
const MAX_PINGING: usize = 256;

/// Whether `s` has the shape of a replica's name (as [`crate::crypto::random_token`] makes them).
fn is_token(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A change's marker, waiting for the other replicas' listeners to acknowledge it.
struct Waiter {
    /// The other listeners connected when the marker was sent; `None` until that is known.
    expected: Option<HashSet<i32>>,
    /// The listeners (backend process ids) that acknowledged it so far.
    acked: HashSet<i32>,
    done: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Waiter {
    /// Wakes the change once every expected listener has acknowledged.
    fn settle(&mut self) {
        if let Some(expected) = &self.expected
            && expected.is_subset(&self.acked)
            && let Some(done) = self.done.take()
        {
            let _ = done.send(());
        }
    }
}

type Waiting = Mutex<HashMap<u64, Waiter>>;

/// Forgets a marker's waiter when dropped.
struct Forget<'a>(&'a Waiting, u64);

impl Drop for Forget<'_> {
    fn drop(&mut self) {
        self.0
            .lock()
            .expect("listener waiting lock")
            .remove(&self.1);
    }
}

/// The listening connection's name until it listens.
const STARTING_NAME: &str = "clari-mcp-changes-starting";

/// A replica's listening connection, as the callers see it.
pub(super) struct Listener {
    /// Milliseconds since `start` at which the newest ping this listener heard was sent; 0 when
    /// it has heard none since it (re)connected.
    heard: AtomicU64,
    start: Instant,
    /// Names this replica's pings and markers in the shared channel.
    replica: String,
    connected: AtomicBool,
    /// Whether it has connected once: a process that has just started waits for that before it
    /// sends its first marker.
    ever_connected: AtomicBool,
    /// The listening connection's backend process id once it listens (0 before, and while it
    /// is lost): what the other replicas' `pg_stat_activity` shows, and what it acknowledges
    /// with.
    pid: tokio::sync::watch::Sender<i32>,
    /// An operator's command (not a server): it keeps nothing in memory, so the others do not
    /// wait for its acknowledgements.
    operator: bool,
    /// The listening connections of the servers whose pings were heard, and when: one that
    /// pinged lately but is gone from `pg_stat_activity` may not have noticed yet.
    pinging: Mutex<HashMap<i32, Instant>>,
    pub(super) losses: AtomicU64,
    /// Markers sent here that some listener did not acknowledge within [`SYNC_WAIT`].
    pub(super) unacknowledged: AtomicU64,
    next_marker: AtomicU64,
    waiting: Waiting,
    /// Where pings and acknowledgements are sent from (not the listening connection).
    sender: Mutex<Option<sqlx::PgPool>>,
    /// Held by a test to stand for a listener that lags: notifications wait unread.
    hold: Arc<tokio::sync::RwLock<()>>,
}

/// A listener kept from reading notifications until this is dropped (see
/// [`Changes::hold_listener`]).
pub struct Hold(#[allow(dead_code)] tokio::sync::OwnedRwLockWriteGuard<()>);

impl Listener {
    pub(super) fn new(operator: bool) -> Self {
        Self {
            heard: AtomicU64::new(0),
            start: Instant::now(),
            replica: crate::crypto::random_token(9),
            connected: AtomicBool::new(false),
            ever_connected: AtomicBool::new(false),
            pid: tokio::sync::watch::Sender::new(0),
            operator,
            pinging: Mutex::new(HashMap::new()),
            losses: AtomicU64::new(0),
            unacknowledged: AtomicU64::new(0),
            next_marker: AtomicU64::new(0),
            waiting: Mutex::new(HashMap::new()),
            sender: Mutex::new(None),
            hold: Arc::new(tokio::sync::RwLock::new(())),
        }
    }

    fn millis(&self) -> u64 {
        // At least 1, so that 0 can mean "none".
        self.start.elapsed().as_millis() as u64 + 1
    }

    /// Whether what this process keeps may be trusted: never in an operator's command, which
    /// nobody waits for.
    pub(super) fn is_current(&self) -> bool {
        let heard = self.heard.load(SeqCst);
        !self.operator
            && self.connected.load(SeqCst)
            && heard != 0
            && self.millis().saturating_sub(heard) < LISTENER_LATE.as_millis() as u64
    }

    pub(super) async fn hold(&self) -> Hold {
        Hold(self.hold.clone().write_owned().await)
    }

    /// Sends a marker after this process's committed change and returns once every server's
    /// listener connected then has acknowledged it, or [`SYNC_WAIT`] after it was sent.
    ///
    /// Notifications reach each listener in commit order (PostgreSQL, `NOTIFY`: "notifications
    /// from different transactions are delivered in the order in which the transactions
    /// committed"), so a listener that acknowledges the marker has applied the change's
    /// notification first. One that has not heard the marker by the end of the wait has not
    /// heard any ping sent after it either (those come after it in the channel), so its newest
    /// ping is older than [`LISTENER_LATE`]: it trusts nothing it kept and reads the store.
    /// Either way, when this returns, the next call on any replica sees the change. A listener
    /// that announces itself after the marker listened before it did, so after the change
    /// committed, and holds nothing older; one that pinged lately but is no longer listed (its
    /// connection closed, and it may not know yet) is waited out in full.
    pub(super) async fn sync(&self, pool: &sqlx::PgPool) {
        // Acknowledgements reach this process through its own listener: a process that has
        // just started (a command) gives it a moment to connect.
        let mut pid = self.pid.subscribe();
        let own = if self.ever_connected.load(SeqCst) {
            *pid.borrow()
        } else {
            tokio::time::timeout(SYNC_WAIT, pid.wait_for(|p| *p != 0))
                .await
                .ok()
                .and_then(|p| p.ok().map(|p| *p))
                .unwrap_or(0)
        };
        let n = self.next_marker.fetch_add(1, SeqCst);
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.waiting.lock().expect("listener waiting lock").insert(
            n,
            Waiter {
                expected: None,
                acked: HashSet::new(),
                done: Some(tx),
            },
        );
        // Removed however this ends, a cancelled wait included.
        let _forget = Forget(&self.waiting, n);
        // One statement: the marker is sent when it commits, and the listeners it must reach
        // are those connected by then.
        let since = Instant::now();
        let sent: Result<Vec<i32>, sqlx::Error> = sqlx::query_scalar(
            "SELECT ARRAY(SELECT pid FROM pg_stat_activity
                          WHERE application_name = $3 AND datname = current_database()
                            AND pid <> $4)
             FROM pg_notify($1, $2)",
        )
        .bind(CHANNEL)
        .bind(format!("sync {} {n}", self.replica))
        .bind(LISTENER_NAME)
        .bind(own)
        .fetch_one(pool)
        .await;
        let deadline = tokio::time::Instant::now() + SYNC_WAIT;
        let peers: HashSet<i32> = match sent {
            Ok(peers) => peers.into_iter().collect(),
            Err(e) => {
                // Nothing was sent; the triggers' notification was, with the change itself.
                tracing::warn!(error = %e, "sending a change marker failed");
                return self.wait_out(deadline).await;
            }
        };
        let vanished = self
            .pinging
            .lock()
            .expect("listener pinging lock")
            .iter()
            .any(|(p, at)| {
                *p != own
                    && !peers.contains(p)
                    && since.saturating_duration_since(*at) < LISTENER_LATE
            });
        if peers.is_empty() && !vanished {
            return;
        }
        if own == 0 || vanished {
            // No acknowledgement can be heard, or a server may still trust what it kept without
            // hearing anything: wait until every listener has heard the marker or stopped
            // trusting its cache.
            tracing::warn!(
                "a change waits out the full time: this replica's change listener is away, or another replica's has just gone"
            );
            return self.wait_out(deadline).await;
        }
        self.update_waiter(n, |w| w.expected = Some(peers));
        if tokio::time::timeout_at(deadline, rx).await.is_err() {
            self.unacknowledged.fetch_add(1, SeqCst);
            tracing::warn!(
                "another replica's change listener did not acknowledge a change in time; it reads the store until it catches up"
            );
        }
    }

    /// Waits until `deadline` without acknowledgements, counted as such.
    async fn wait_out(&self, deadline: tokio::time::Instant) {
        self.unacknowledged.fetch_add(1, SeqCst);
        tokio::time::sleep_until(deadline).await;
    }

    /// Changes marker `n`'s waiter, if it still waits, and wakes it once it has every
    /// acknowledgement it expects.
    fn update_waiter(&self, n: u64, change: impl FnOnce(&mut Waiter)) {
        if let Some(w) = self
            .waiting
            .lock()
            .expect("listener waiting lock")
            .get_mut(&n)
        {
            change(w);
            w.settle();
        }
    }

    fn lost(&self, changes: &Changes) {
        if self.connected.swap(false, SeqCst) {
            self.losses.fetch_add(1, SeqCst);
        }
        self.pid.send_replace(0);
        self.heard.store(0, SeqCst);
        changes.everything_changed();
    }

    /// One notification: an organisation's change, a change of everything, this replica's own
    /// ping, another replica's marker (acknowledged through `acks` once what came before it has
    /// been applied), or another listener's acknowledgement of this replica's marker.
    fn heard(&self, changes: &Changes, payload: &str, acks: &tokio::sync::mpsc::Sender<String>) {
        let mut words = payload.split(' ');
        let words = (words.next(), words.next(), words.next(), words.next());
        match words {
            (Some("org"), Some(org), None, None) => match OrgId::parse(org) {
                Ok(org) => changes.org_changed(&org),
                Err(_) => changes.everything_changed(),
            },
            (Some("ping"), Some(replica), Some(n), pid) => {
                let Ok(n) = n.parse::<u64>() else { return };
                if replica == self.replica {
                    // Never from the future: that would be trusted for ever.
                    if n <= self.millis() {
                        self.heard.fetch_max(n, SeqCst);
                    }
                } else if let Some(Ok(pid)) = pid.map(str::parse::<i32>) {
                    // Another server's: its listener is to be waited for.
                    let mut pinging = self.pinging.lock().expect("listener pinging lock");
                    let now = Instant::now();
                    pinging.retain(|_, at| now.saturating_duration_since(*at) < LISTENER_LATE);
                    if pinging.len() < MAX_PINGING || pinging.contains_key(&pid) {
                        pinging.insert(pid, now);
                    }
                }
            }
            (Some("sync"), Some(replica), Some(n), None) => {
                // Acknowledged as the marker came, within the length NOTIFY allows.
                if replica != self.replica && is_token(replica) && n.parse::<u64>().is_ok() {
                    let pid = *self.pid.borrow();
                    if acks.try_send(format!("ack {replica} {n} {pid}")).is_err() {
                        tracing::debug!("a change acknowledgement was dropped: too many queued");
                    }
                }
            }
            (Some("ack"), Some(replica), Some(n), Some(pid)) => {
                if replica != self.replica {
                    return;
                }
                let (Ok(n), Ok(pid)) = (n.parse::<u64>(), pid.parse::<i32>()) else {
                    return;
                };
                self.update_waiter(n, |w| {
                    w.acked.insert(pid);
                });
            }
            _ => changes.everything_changed(),
        }
    }
}

/// The listener's life: connect, `LISTEN`, hear notifications until the connection is lost,
/// and again; pings and acknowledgements go out beside it. Ends when the store is dropped.
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
                .connect_with(opts.clone().application_name(STARTING_NAME))
                .await?;
            let mut listener = PgListener::connect_with(&pool).await?;
            listener.eager_reconnect(false);
            listener.listen(CHANNEL).await?;
            // Named (so waited for) only once it listens: a marker sent while it connects would
            // otherwise be waited for in vain.
            let name = if l.operator {
                OPERATOR_LISTENER_NAME
            } else {
                LISTENER_NAME
            };
            let pid: i32 = sqlx::query_scalar(
                "SELECT pg_backend_pid() FROM set_config('application_name', $1, false)",
            )
            .bind(name)
            .fetch_one(&mut listener)
            .await?;
            let sender = PgPoolOptions::new()
                .max_connections(1)
                .connect_with(opts.clone())
                .await?;
            Ok::<_, sqlx::Error>((listener, pid, sender))
        }
        .await;
        let (mut listener, pid, sender) = match connected {
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
        l.ever_connected.store(true, SeqCst);
        l.pid.send_replace(pid);
        let pinger = tokio::spawn(ping(l.clone(), sender.clone()));
        let (acks, queued) = tokio::sync::mpsc::channel(ACKS_QUEUED);
        let acker = tokio::spawn(acknowledge(queued, sender));
        loop {
            let Some(c) = changes.upgrade() else {
                pinger.abort();
                acker.abort();
                return;
            };
            match listener.try_recv().await {
                Ok(Some(n)) => {
                    let _open = l.hold.read().await;
                    l.heard(&c, n.payload(), &acks);
                }
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
        acker.abort();
    }
}

/// Sends this replica's pings: the time each was sent, which its listener compares with now,
/// and (a server's) its listening connection, which the others then wait for.
async fn ping(l: Arc<Listener>, pool: sqlx::PgPool) {
    let mut every = tokio::time::interval(PING_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        let payload = if l.operator {
            format!("ping {} {}", l.replica, l.millis())
        } else {
            format!("ping {} {} {}", l.replica, l.millis(), *l.pid.borrow())
        };
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

/// Sends the acknowledgements of other replicas' markers, all those queued in one statement.
async fn acknowledge(mut queued: tokio::sync::mpsc::Receiver<String>, pool: sqlx::PgPool) {
    let mut batch = Vec::new();
    while queued.recv_many(&mut batch, ACKS_QUEUED).await > 0 {
        if let Err(e) = sqlx::query("SELECT pg_notify($1, a) FROM unnest($2::text[]) AS a")
            .bind(CHANNEL)
            .bind(&batch)
            .execute(&pool)
            .await
        {
            tracing::debug!(error = %e, "acknowledging change markers failed");
        }
        batch.clear();
    }
}
