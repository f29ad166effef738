//! What this process may keep in memory of the store, and how it learns that another writer
//! changed it: the one invalidation mechanism for everything cached per organisation
//! (principals behind API keys and grants, the redaction policy, the time zone, `require_dpop`).
//!
//! A cached value is stamped, when it is read, with the change counters of its organisation. A
//! warm call compares that stamp with the counters now and reads nothing from the store when they
//! are equal. A write that can change what a cache holds (a revocation, a suspension, the kill
//! switch, a policy) moves the counters on every process that may hold it:
//! - **In this process** the store moves them itself, after the write has committed.
//! - **PostgreSQL** (several replicas): triggers on the tables behind the caches send a
//!   `NOTIFY` in the writing transaction, so it is delivered exactly when the change commits,
//!   whoever makes it (a replica, the operator's CLI, a SQL console). Each replica `LISTEN`s. A
//!   replica whose listener is down, or behind by more than [`LISTENER_LATE`] (measured with its
//!   own pings through the channel), trusts nothing it has cached and reads the store on every
//!   call until the listener has caught up; what it cached before is dropped. The replica that
//!   made a change returns only after its own listener received a marker sent after the change,
//!   so the change's notification has been sent to every listener.
//! - **SQLite** (one server, and the operator's CLI beside it): the writer puts a fresh random
//!   value into a small file beside the database after committing; every check reads those 8
//!   bytes (one `pread`, about a microsecond) and drops everything cached when they differ.
//!
//! The limit: a PostgreSQL listener whose connection dies silently (a network partition that
//! neither end sees) is noticed when its pings stop arriving, so for at most [`LISTENER_LATE`] a
//! replica may serve what it cached before. A connection closed by the server or the network is
//! noticed at once. Every entry also expires after its cache's TTL.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::OrgId;
use crate::clock::UnixTime;

/// The PostgreSQL channel the triggers of migration 0019 notify, and the listeners hear.
pub const CHANNEL: &str = "clari_mcp_changes";
/// The `application_name` of each replica's listening connection.
pub const LISTENER_NAME: &str = "clari-mcp-changes";
/// How often a replica sends itself a ping through the channel.
const PING_EVERY: Duration = Duration::from_millis(500);
/// A listener that has not heard a ping sent this recently is behind (or gone): caches are
/// not trusted until it catches up.
pub const LISTENER_LATE: Duration = Duration::from_secs(2);
/// How long a change waits for its own listener to hear the marker sent after it.
const SYNC_WAIT: Duration = Duration::from_secs(2);
/// How long a cached grant, machine client or setting is kept at most, even unchanged.
pub const CACHED_FOR: UnixTime = 300;
/// Organisations share this many counters (by hash): a change to one may also drop another's
/// cached values, never keep them.
const BUCKETS: usize = 1024;

/// Where changes made by other processes come from.
enum Feed {
    /// No other process can write (an in-memory SQLite database).
    Alone,
    /// A SQLite file: other processes write a fresh value into the file beside it.
    File {
        file: std::fs::File,
        path: std::path::PathBuf,
        seen: AtomicU64,
    },
    /// PostgreSQL: this replica's listener.
    Listener(Arc<Listener>),
}

/// The change counters of this process, and where it hears of other writers' changes.
pub struct Changes {
    /// Moves when anything may have changed (another process's write to SQLite, a lost
    /// listener, a change not tied to one organisation).
    epoch: AtomicU64,
    buckets: Box<[AtomicU64]>,
    /// Moves with every change of any counter: a read that saw it move is not cached.
    seq: AtomicU64,
    feed: Feed,
    hasher: std::collections::hash_map::RandomState,
}

impl std::fmt::Debug for Changes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Changes")
            .field("epoch", &self.epoch.load(SeqCst))
            .field("trusted", &self.current())
            .finish_non_exhaustive()
    }
}

/// An organisation's counters when a value was read from the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    epoch: u64,
    bucket: u64,
}

/// Taken before a store read whose result may be cached: the counters' sequence then. The
/// result is cached only if nothing changed until it is stamped.
#[derive(Debug, Clone, Copy)]
pub struct Ticket(u64);

impl Changes {
    fn with_feed(feed: Feed) -> Self {
        Self {
            epoch: AtomicU64::new(0),
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            seq: AtomicU64::new(0),
            feed,
            hasher: Default::default(),
        }
    }

    /// For a store no other process writes to.
    pub fn alone() -> Self {
        Self::with_feed(Feed::Alone)
    }

    /// For the SQLite file `database`: the change file is `database` with `-changes` appended,
    /// created private (as the database is) when missing.
    pub fn beside(database: &std::path::Path) -> std::io::Result<Self> {
        let mut path = database.as_os_str().to_owned();
        path.push("-changes");
        let path = std::path::PathBuf::from(path);
        if !path.exists() {
            crate::files::write_private_file(&path, &0u64.to_le_bytes())?;
        }
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)?;
        let seen = AtomicU64::new(read_value(&file).unwrap_or(0));
        Ok(Self::with_feed(Feed::File { file, path, seen }))
    }

    /// For PostgreSQL: starts this replica's listener (and its pings) on `url`.
    pub fn listening(url: &str) -> Arc<Self> {
        let listener = Arc::new(Listener::new());
        let changes = Arc::new(Self::with_feed(Feed::Listener(listener.clone())));
        tokio::spawn(listen(Arc::downgrade(&changes), listener, url.to_owned()));
        changes
    }

    fn bucket(&self, org: &OrgId) -> &AtomicU64 {
        let i = self.hasher.hash_one(org.as_str()) as usize % BUCKETS;
        &self.buckets[i]
    }

    /// Reads what other processes wrote, and whether cached values may be trusted at all.
    fn current(&self) -> bool {
        match &self.feed {
            Feed::Alone => true,
            Feed::File { file, seen, .. } => match read_value(file) {
                Some(value) => {
                    if seen.load(SeqCst) != value {
                        // Moved before `seen`, so whoever sees the new value sees the move.
                        self.everything_changed();
                        seen.store(value, SeqCst);
                    }
                    true
                }
                None => false,
            },
            Feed::Listener(l) => l.is_current(),
        }
    }

    /// The moment before a store read whose result may be cached; `None` when nothing may be.
    pub fn ticket(&self) -> Option<Ticket> {
        self.current().then(|| Ticket(self.seq.load(SeqCst)))
    }

    /// The organisation's counters now, if cached values may be trusted.
    pub fn stamp(&self, org: &OrgId) -> Option<Stamp> {
        self.current().then(|| self.stamp_now(org))
    }

    fn stamp_now(&self, org: &OrgId) -> Stamp {
        Stamp {
            epoch: self.epoch.load(SeqCst),
            bucket: self.bucket(org).load(SeqCst),
        }
    }

    /// The organisation's counters for a value read since `ticket`, if nothing changed since.
    fn stamp_since(&self, ticket: Ticket, org: &OrgId) -> Option<Stamp> {
        let stamp = self.stamp_now(org);
        (self.seq.load(SeqCst) == ticket.0 && self.current()).then_some(stamp)
    }

    fn everything_changed(&self) {
        self.epoch.fetch_add(1, SeqCst);
        self.seq.fetch_add(1, SeqCst);
    }

    fn org_changed(&self, org: &OrgId) {
        self.bucket(org).fetch_add(1, SeqCst);
        self.seq.fetch_add(1, SeqCst);
    }

    /// Called by the store after a committed write that may change cached values: of `org`, or
    /// of every organisation (`None`: a person, or an OAuth client, spans them). Drops them in
    /// this process at once, and makes sure every other process will: SQLite writes the change
    /// file, PostgreSQL waits until this replica's listener heard a marker sent after the
    /// triggers' notification.
    pub async fn changed(&self, org: Option<&OrgId>) {
        match org {
            Some(org) => self.org_changed(org),
            None => self.everything_changed(),
        }
        match &self.feed {
            Feed::Alone => {}
            Feed::File { path, .. } => {
                if let Err(e) = write_value(path, rand::random()) {
                    // The other processes (the CLI) will not notice; this one already did.
                    tracing::error!(error = %e, path = %path.display(), "writing the change file failed");
                }
            }
            Feed::Listener(l) => l.sync().await,
        }
    }

    /// How often the listener was found lost (PostgreSQL), since start.
    pub fn listener_losses(&self) -> u64 {
        match &self.feed {
            Feed::Listener(l) => l.losses.load(SeqCst),
            _ => 0,
        }
    }

    /// Whether cached values are trusted right now (the listener is connected and current).
    pub fn trusted(&self) -> bool {
        self.current()
    }
}

fn read_value(file: &std::fs::File) -> Option<u64> {
    use std::os::unix::fs::FileExt;
    let mut bytes = [0u8; 8];
    file.read_exact_at(&mut bytes, 0).ok()?;
    Some(u64::from_le_bytes(bytes))
}

fn write_value(path: &std::path::Path, value: u64) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    let file = std::fs::OpenOptions::new().write(true).open(path)?;
    file.write_all_at(&value.to_le_bytes(), 0)
}

/// A replica's listening connection, as the callers see it.
struct Listener {
    /// Milliseconds since `start` at which the newest ping this listener heard was sent; 0 when
    /// it has heard none since it (re)connected.
    heard: AtomicU64,
    start: Instant,
    /// Names this replica's pings and markers in the shared channel.
    replica: String,
    connected: AtomicBool,
    losses: AtomicU64,
    next_marker: AtomicU64,
    waiting: Mutex<HashMap<u64, tokio::sync::oneshot::Sender<()>>>,
    /// Where pings and markers are sent from (not the listening connection).
    sender: Mutex<Option<sqlx::PgPool>>,
}

impl Listener {
    fn new() -> Self {
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

    fn is_current(&self) -> bool {
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
    async fn sync(&self) {
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
        self.waiting
            .lock()
            .expect("listener waiting lock")
            .remove(&n);
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
async fn listen(changes: std::sync::Weak<Changes>, l: Arc<Listener>, url: String) {
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

/// Values read from the store for one organisation each, kept while that organisation's
/// counters stay as they were and at most until their own expiry. Bounded: when full, it is
/// emptied.
pub struct OrgCache<K, V> {
    entries: Mutex<HashMap<K, Entry<V>>>,
    capacity: usize,
}

struct Entry<V> {
    org: OrgId,
    stamp: Stamp,
    until: UnixTime,
    value: V,
}

impl<K: Hash + Eq, V: Clone> OrgCache<K, V> {
    pub fn new(capacity: usize) -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
            capacity,
        }
    }

    /// The cached value, if its organisation has not changed since it was read and it has not
    /// expired at `now`.
    pub fn get(&self, changes: &Changes, key: &K, now: UnixTime) -> Option<V> {
        let (org, stamp, value) = {
            let entries = self.entries.lock().expect("org cache lock");
            let e = entries.get(key)?;
            if e.until <= now {
                return None;
            }
            (e.org.clone(), e.stamp, e.value.clone())
        };
        (changes.stamp(&org) == Some(stamp)).then_some(value)
    }

    /// Keeps `value`, read from the store after `ticket` was taken, until `until`, unless
    /// something changed meanwhile (or nothing may be cached: no ticket).
    pub fn put(
        &self,
        changes: &Changes,
        ticket: Option<Ticket>,
        key: K,
        org: &OrgId,
        value: V,
        until: UnixTime,
    ) {
        let Some(stamp) = ticket.and_then(|t| changes.stamp_since(t, org)) else {
            return;
        };
        let mut entries = self.entries.lock().expect("org cache lock");
        if entries.len() >= self.capacity && !entries.contains_key(&key) {
            entries.clear();
        }
        entries.insert(
            key,
            Entry {
                org: org.clone(),
                stamp,
                until,
                value,
            },
        );
    }

    pub fn len(&self) -> usize {
        self.entries.lock().expect("org cache lock").len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn org(s: &str) -> OrgId {
        OrgId::parse(s).unwrap()
    }

    #[tokio::test]
    async fn a_value_is_kept_until_its_organisation_changes() {
        let changes = Changes::alone();
        let cache = OrgCache::new(10);
        let a = org("org_a");
        let t = changes.ticket();
        cache.put(&changes, t, "k", &a, 1, 100);
        assert_eq!(cache.get(&changes, &"k", 50), Some(1));
        assert_eq!(cache.get(&changes, &"k", 100), None, "expired");
        changes.changed(Some(&a)).await;
        assert_eq!(
            cache.get(&changes, &"k", 50),
            None,
            "its organisation changed"
        );
        let t = changes.ticket();
        cache.put(&changes, t, "k", &a, 2, 100);
        changes.changed(None).await;
        assert_eq!(cache.get(&changes, &"k", 50), None, "everything changed");
    }

    #[tokio::test]
    async fn a_value_read_while_something_changed_is_not_kept() {
        let changes = Changes::alone();
        let cache = OrgCache::new(10);
        let t = changes.ticket();
        changes.changed(Some(&org("org_other"))).await;
        cache.put(&changes, t, "k", &org("org_a"), 1, 100);
        assert!(cache.is_empty());
    }

    #[tokio::test]
    async fn another_process_writing_the_change_file_drops_everything() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("x.db");
        let server = Changes::beside(&db).unwrap();
        let cli = Changes::beside(&db).unwrap();
        let cache = OrgCache::new(10);
        let a = org("org_a");
        cache.put(&server, server.ticket(), "k", &a, 1, 100);
        assert_eq!(cache.get(&server, &"k", 1), Some(1));
        cli.changed(Some(&org("org_b"))).await;
        assert_eq!(cache.get(&server, &"k", 1), None);
    }

    #[test]
    fn a_full_cache_is_emptied() {
        let changes = Changes::alone();
        let cache = OrgCache::new(2);
        let a = org("org_a");
        for k in 0..3 {
            cache.put(&changes, changes.ticket(), k, &a, k, 100);
        }
        assert_eq!(cache.len(), 1);
    }
}
