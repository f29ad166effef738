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
//!   call until the listener has caught up; what it cached before is dropped. The process that
//!   made a change sends a marker after it and returns only once every server's listener
//!   listening then has acknowledged the marker (so has applied the change), or after
//!   [`SYNC_WAIT`], by when a listener that has not heard the marker no longer trusts its cache
//!   either. An operator's command keeps nothing in memory, so nobody waits for it.
//! - **SQLite** (one server, and the operator's CLI beside it): the writer puts a fresh random
//!   value into a small file beside the database after committing; every request reads those 8
//!   bytes once (one `pread`, about a microsecond), when it authenticates, and drops everything
//!   cached when they differ; the request's later lookups go by that read ([`Checked`]).
//!
//! The limits: another replica applies a change when its listener has read the notification
//! (milliseconds after the commit when it keeps up), not at the commit itself, so a call that
//! another replica serves while the change is being made may still see the old state; every
//! call after the change returned sees the new one. A change written without this process (a
//! SQL console) has nobody waiting for the acknowledgements: a replica that is behind, or whose
//! listener connection died silently (a network partition that neither end sees), may serve
//! what it cached for at most [`LISTENER_LATE`] after it, after which its missing pings make it
//! read the store. A connection closed by the server or the network is noticed at once. Every
//! entry also expires after its cache's TTL.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash};
use std::sync::atomic::{AtomicU64, Ordering, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::OrgId;
use crate::clock::UnixTime;

mod listener;
pub use listener::Hold;
use listener::{Listener, listen};

/// The PostgreSQL channel the triggers of migration 0019 notify, and the listeners hear.
pub const CHANNEL: &str = "clari_mcp_changes";
/// The `application_name` of each server's listening connection (once it listens).
pub const LISTENER_NAME: &str = "clari-mcp-changes";
/// The `application_name` of an operator command's listening connection: it hears the
/// acknowledgements of its own changes, keeps nothing in memory, and is not waited for.
pub const OPERATOR_LISTENER_NAME: &str = "clari-mcp-changes-operator";
/// How often a replica sends itself a ping through the channel.
pub(super) const PING_EVERY: Duration = Duration::from_millis(500);
/// A listener that has not heard a ping sent this recently is behind (or gone): caches are
/// not trusted until it catches up.
pub const LISTENER_LATE: Duration = Duration::from_secs(2);
/// How long a change waits at most for the other listeners to acknowledge the marker sent
/// after it. No shorter than [`LISTENER_LATE`]: a listener that has not acknowledged by then
/// has stopped trusting its cache.
/// The margin is for clocks that run at slightly different rates on different hosts.
pub(super) const SYNC_WAIT: Duration = Duration::from_millis(2_100);
const _: () = assert!(SYNC_WAIT.as_millis() > LISTENER_LATE.as_millis());

/// Set by an operator's command before it opens the store (see [`operator_process`]).
static OPERATOR: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Marks this process as an operator's command rather than a server: on PostgreSQL it keeps
/// nothing in memory, so the servers' changes do not wait for it; its own changes still wait
/// for them.
pub fn operator_process() {
    OPERATOR.store(true, SeqCst);
}
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
        /// The file as opened; replaced when the path names another file (deleted, restored).
        file: Mutex<Arc<std::fs::File>>,
        path: std::path::PathBuf,
        seen: AtomicU64,
        checks: AtomicU64,
    },
    /// PostgreSQL: this replica's listener, and the pool its markers are sent through.
    Listener(Arc<Listener>, sqlx::PgPool),
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

/// A change being written (see [`Changes::pending`]).
pub struct Pending<'a> {
    changes: &'a Changes,
    org: Option<OrgId>,
    done: bool,
}

impl Pending<'_> {
    /// The write committed: mark it, and make sure every process will see it.
    pub async fn done(mut self) {
        self.done = true;
        self.changes.changed(self.org.as_ref()).await;
    }
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.changes.mark(self.org.as_ref());
        }
    }
}

/// An organisation's counters when a value was read from the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    epoch: u64,
    bucket: u64,
}

/// The change feed as one request found it when it began: the later lookups of that request
/// use it instead of reading the feed again. A change that completes while a call is under way
/// may or may not apply to that call; it applies to every call that starts after it, which is
/// the guarantee ([`Changes`]). Only the SQLite change file is carried this way (its read is a
/// system call); a PostgreSQL listener's state is read in memory on every lookup as before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checked {
    trusted: bool,
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
        let file = open_change_file(&path)?;
        let seen = AtomicU64::new(read_value(&file).unwrap_or(0));
        Ok(Self::with_feed(Feed::File {
            file: Mutex::new(Arc::new(file)),
            path,
            seen,
            checks: AtomicU64::new(0),
        }))
    }

    /// For PostgreSQL: starts this replica's listener (and its pings) on `url`; markers go
    /// through `pool`.
    pub fn listening(url: &str, pool: sqlx::PgPool) -> Arc<Self> {
        let listener = Arc::new(Listener::new(OPERATOR.load(SeqCst)));
        let changes = Arc::new(Self::with_feed(Feed::Listener(listener.clone(), pool)));
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
            Feed::File {
                file,
                path,
                seen,
                checks,
            } => match self.read_change_file(file, path, checks) {
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
            Feed::Listener(l, _) => l.is_current(),
        }
    }

    /// The change file's value. Every [`IDENTITY_EVERY`]th read also checks that the path still
    /// names the file that is open: one deleted or replaced (a restore, a clean-up) is opened
    /// again, and everything kept is dropped, since writes to the new one were not seen.
    fn read_change_file(
        &self,
        file: &Mutex<Arc<std::fs::File>>,
        path: &std::path::Path,
        checks: &AtomicU64,
    ) -> Option<u64> {
        let open = file.lock().expect("change file lock").clone();
        if checks.fetch_add(1, SeqCst).is_multiple_of(IDENTITY_EVERY) && !same_file(&open, path) {
            let reopened = Arc::new(open_change_file(path).ok()?);
            *file.lock().expect("change file lock") = reopened.clone();
            self.everything_changed();
            return read_value(&reopened);
        }
        read_value(&open)
    }

    /// The moment before a store read whose result may be cached; `None` when nothing may be.
    pub fn ticket(&self) -> Option<Ticket> {
        self.current().then(|| Ticket(self.seq.load(SeqCst)))
    }

    /// Reads the feed once for a request, for its later lookups ([`Checked`]).
    pub fn check(&self) -> Checked {
        Checked {
            trusted: self.current(),
        }
    }

    /// The organisation's counters now, if cached values may be trusted: by the change file as
    /// `checked` found it, when the request read it already, else by the feed now.
    fn stamp(&self, org: &OrgId, checked: Option<Checked>) -> Option<Stamp> {
        let trusted = match (&self.feed, checked) {
            (Feed::File { .. }, Some(c)) => c.trusted,
            _ => self.current(),
        };
        trusted.then(|| self.stamp_now(org))
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

    // `seq` moves first: a read that sees the new epoch or bucket then also sees the new `seq`,
    // so it is not kept under the new stamp (`stamp_since`).
    fn everything_changed(&self) {
        self.seq.fetch_add(1, SeqCst);
        self.epoch.fetch_add(1, SeqCst);
    }

    fn org_changed(&self, org: &OrgId) {
        self.seq.fetch_add(1, SeqCst);
        self.bucket(org).fetch_add(1, SeqCst);
    }

    /// Called by the store after a committed write that may change cached values: of `org`, or
    /// of every organisation (`None`: a person, or an OAuth client, spans them). Drops them in
    /// this process at once, and makes sure every other process will before it returns: SQLite
    /// writes the change file, PostgreSQL waits until the other replicas' listeners have
    /// acknowledged a marker sent after the triggers' notification (see `Listener::sync`).
    pub async fn changed(&self, org: Option<&OrgId>) {
        self.mark(org);
        if let Feed::Listener(l, pool) = &self.feed {
            l.sync(pool).await;
        }
    }

    /// A change about to be written: [`Pending::done`] after the commit marks it (and waits as
    /// [`Changes::changed`] does). Dropped without `done` (the request was cancelled while the
    /// write was under way, and SQLite may still have committed it, or the write failed), it is
    /// marked all the same, without the wait: a change marked that did not happen costs only
    /// a re-read.
    pub fn pending<'a>(&'a self, org: Option<&OrgId>) -> Pending<'a> {
        Pending {
            changes: self,
            org: org.cloned(),
            done: false,
        }
    }

    /// Moves the counters and tells other processes, without waiting for anyone.
    fn mark(&self, org: Option<&OrgId>) {
        match org {
            Some(org) => self.org_changed(org),
            None => self.everything_changed(),
        }
        if let Feed::File { path, .. } = &self.feed
            && let Err(e) = write_value(path, rand::random())
        {
            // The other processes (the CLI) will not notice; this one already did.
            tracing::error!(error = %e, path = %path.display(), "writing the change file failed");
        }
    }

    /// How often the listener was found lost (PostgreSQL), since start.
    pub fn listener_losses(&self) -> u64 {
        match &self.feed {
            Feed::Listener(l, _) => l.losses.load(SeqCst),
            _ => 0,
        }
    }

    /// How many changes made here waited out [`SYNC_WAIT`] because some listener did not
    /// acknowledge them (PostgreSQL), since start.
    pub fn unacknowledged_changes(&self) -> u64 {
        match &self.feed {
            Feed::Listener(l, _) => l.unacknowledged.load(SeqCst),
            _ => 0,
        }
    }

    /// Keeps this replica's listener from reading notifications until the hold is dropped, as a
    /// listener that lags behind would (PostgreSQL only; `None` otherwise). For tests.
    #[doc(hidden)]
    pub async fn hold_listener(&self) -> Option<Hold> {
        match &self.feed {
            Feed::Listener(l, _) => Some(l.hold().await),
            _ => None,
        }
    }

    /// Whether cached values are trusted right now (the listener is connected and current).
    pub fn trusted(&self) -> bool {
        self.current()
    }
}

/// How often (in reads) the change file's identity is checked.
const IDENTITY_EVERY: u64 = 64;

/// Opens the change file, creating it private (as the database is) when missing; another process
/// creating it at the same moment is no error.
fn open_change_file(path: &std::path::Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)?;
    if file.metadata()?.len() < 8 {
        use std::os::unix::fs::FileExt;
        file.write_all_at(&0u64.to_le_bytes(), 0)?;
    }
    Ok(file)
}

/// Whether `path` still names the open `file`.
fn same_file(file: &std::fs::File, path: &std::path::Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (file.metadata(), std::fs::metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
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

/// Values read from the store for one organisation each, kept while that organisation's
/// counters stay as they were and at most until their own expiry. Bounded: when full, it is
/// emptied.
pub struct OrgCache<K, V> {
    entries: Mutex<HashMap<K, Entry<V>>>,
    capacity: usize,
    /// Lookups answered from memory, and lookups that had to read the store, since start.
    hits: AtomicU64,
    misses: AtomicU64,
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
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// The cached value, if its organisation has not changed since it was read and it has not
    /// expired at `now`.
    pub fn get<Q>(&self, changes: &Changes, key: &Q, now: UnixTime) -> Option<V>
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.get_checked(changes, None, key, now)
    }

    /// [`OrgCache::get`] for a request that has read the change feed already (`checked`).
    pub fn get_checked<Q>(
        &self,
        changes: &Changes,
        checked: Option<Checked>,
        key: &Q,
        now: UnixTime,
    ) -> Option<V>
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let found = {
            let entries = self.entries.lock().expect("org cache lock");
            entries
                .get(key)
                .filter(|e| e.until > now)
                .map(|e| (e.org.clone(), e.stamp, e.value.clone()))
        }
        .and_then(|(org, stamp, value)| {
            (changes.stamp(&org, checked) == Some(stamp)).then_some(value)
        });
        let counter = if found.is_some() {
            &self.hits
        } else {
            &self.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    /// Lookups answered from memory and lookups that read the store, since start.
    pub fn lookups(&self) -> (u64, u64) {
        (
            self.hits.load(Ordering::Relaxed),
            self.misses.load(Ordering::Relaxed),
        )
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

    /// One database's change file as the server and the operator's CLI each open it, and the
    /// server's cache holding one value of `org_a` (1 under `k`, until 100).
    fn server_and_cli() -> (
        tempfile::TempDir,
        Changes,
        Changes,
        OrgCache<&'static str, i32>,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("x.db");
        let server = Changes::beside(&db).unwrap();
        let cli = Changes::beside(&db).unwrap();
        let cache = OrgCache::new(10);
        cache.put(&server, server.ticket(), "k", &org("org_a"), 1, 100);
        (dir, server, cli, cache)
    }

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
        let (_dir, server, cli, cache) = server_and_cli();
        assert_eq!(cache.get(&server, &"k", 1), Some(1));
        cli.changed(Some(&org("org_b"))).await;
        assert_eq!(cache.get(&server, &"k", 1), None);
    }

    #[tokio::test]
    async fn a_request_reads_the_change_file_once_and_the_next_request_sees_the_change() {
        let (_dir, server, cli, cache) = server_and_cli();
        let this_request = server.check();
        assert_eq!(
            cache.get_checked(&server, Some(this_request), &"k", 1),
            Some(1)
        );
        // The operator's change completes while this request is under way.
        cli.changed(Some(&org("org_b"))).await;
        assert_eq!(
            cache.get_checked(&server, Some(this_request), &"k", 1),
            Some(1),
            "the request goes by the feed as it began"
        );
        let next_request = server.check();
        assert_eq!(
            cache.get_checked(&server, Some(next_request), &"k", 1),
            None,
            "the next request sees the change"
        );
    }

    #[tokio::test]
    async fn a_request_that_found_the_feed_untrusted_trusts_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("x.db");
        let server = Changes::beside(&db).unwrap();
        let cache = OrgCache::new(10);
        let a = org("org_a");
        cache.put(&server, server.ticket(), "k", &a, 1, 100);
        let untrusted = Checked { trusted: false };
        assert_eq!(cache.get_checked(&server, Some(untrusted), &"k", 1), None);
        assert_eq!(cache.get_checked(&server, None, &"k", 1), Some(1));
    }

    #[tokio::test]
    async fn a_write_cancelled_after_it_began_still_marks_its_change() {
        let changes = Changes::alone();
        let cache = OrgCache::new(10);
        let a = org("org_a");
        cache.put(&changes, changes.ticket(), "k", &a, 1, 100);
        drop(changes.pending(Some(&a)));
        assert_eq!(cache.get(&changes, &"k", 1), None);
    }

    #[tokio::test]
    async fn a_replaced_change_file_is_opened_again_and_drops_everything() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("x.db");
        let server = Changes::beside(&db).unwrap();
        let cache = OrgCache::new(10);
        let a = org("org_a");
        cache.put(&server, server.ticket(), "k", &a, 1, 100);
        // Deleted under the running server; the CLI creates a new one and marks a change there.
        std::fs::remove_file(dir.path().join("x.db-changes")).unwrap();
        let cli = Changes::beside(&db).unwrap();
        cli.changed(Some(&a)).await;
        let noticed = (0..IDENTITY_EVERY).any(|_| cache.get(&server, &"k", 1).is_none());
        assert!(noticed, "within one identity check");
        cache.put(&server, server.ticket(), "k", &a, 2, 100);
        cli.changed(Some(&a)).await;
        assert_eq!(
            cache.get(&server, &"k", 1),
            None,
            "the new file is the one read"
        );
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
