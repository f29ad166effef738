//! The fast path for Clari exports (5–30 s each upstream). Results are cached per organisation and
//! request with a TTL read from the injected clock; concurrent identical requests share one
//! upstream job (single-flight); a caller waits at most its `wait_seconds` and otherwise learns
//! where the export stands (queued behind Clari's concurrency limit, or running) while a spawned
//! task carries on and fills the cache. Errors are never cached.
//!
//! Bounded ([`Capacity`]): at most so many keys, finished exports weighing at most so many bytes
//! (see [`Weigh`]), and at most `max_pending_per_org` exports in progress per organisation. Both
//! bounds are kept when an export is added and when one finishes (see [`ExportCache::trim`]); an
//! export that alone outweighs the bound is never kept, so it cannot push the others out. Every
//! key is an [`ExportKey`], whose organisation is a field of its own, so one organisation never
//! sees another's data and its entries are found by that field alone.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;

use crate::clari::{ClariError, ExportState};
use crate::clock::Clock;
use crate::store::OrgId;

/// What a cache entry holds: one organisation's export of one request. The organisation is a
/// field, not the start of a string, so entries are matched and forgotten by it exactly.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ExportKey {
    org: OrgId,
    request: String,
}

impl ExportKey {
    /// `request` names the export within the organisation (`forecast:<tab>:<period>`, …).
    pub fn new(org: OrgId, request: impl Into<String>) -> Self {
        Self {
            org,
            request: request.into(),
        }
    }

    pub fn org(&self) -> &OrgId {
        &self.org
    }

    pub fn request(&self) -> &str {
        &self.request
    }
}

/// `<org>:<request>`: the text the organisation's export queue and the shared export rows are
/// keyed by (its digest). Rows written by other replicas use it, so its form must not change.
impl fmt::Display for ExportKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.org, self.request)
    }
}

/// How one tool call used the export caches: answered from a finished export, joined one in
/// progress, or started one. Counted per task when the caller scopes [`CACHE_USE`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheUse {
    pub hits: u32,
    pub joined: u32,
    pub misses: u32,
    /// Hits on an entry the pre-warmer put there.
    pub prewarmed: u32,
}

impl CacheUse {
    /// `hit`, `joined`, `miss` (the worst of what happened), or `none`.
    pub fn label(self) -> &'static str {
        if self.misses > 0 {
            "miss"
        } else if self.joined > 0 {
            "joined"
        } else if self.hits > 0 {
            "hit"
        } else {
            "none"
        }
    }
}

tokio::task_local! {
    /// The cache use of the current tool call, when it is being counted.
    pub static CACHE_USE: std::cell::Cell<CacheUse>;
}

fn note(f: impl FnOnce(&mut CacheUse)) {
    let _ = CACHE_USE.try_with(|c| {
        let mut u = c.get();
        f(&mut u);
        c.set(u);
    });
}

/// What the background task reports: where the export stands, or why it failed. A failure ends
/// the entry (errors are never cached).
pub type Progress<T> = Result<ExportState<Arc<T>>, ClariError>;

fn pending<T>(p: &Progress<T>) -> bool {
    matches!(p, Ok(state) if state.is_pending())
}

struct Slot<T> {
    rx: watch::Receiver<Progress<T>>,
    /// Once ready, the value is served until then.
    expires: i64,
    /// Put there by the pre-warmer rather than by a caller.
    prewarmed: bool,
}

pub const MAX_PENDING_PER_ORG: usize = 16;

/// What a finished export weighs against the cache's byte bound: the size of its content as
/// compact JSON (whitespace or padding in Clari's answer weighs nothing, since it is not kept).
/// In memory an export takes a few times that (about 4.7 times with the sandbox's data).
pub trait Weigh {
    fn weight(&self) -> usize;
}

/// How many exports, and how many bytes of them, a cache keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capacity {
    pub entries: usize,
    pub bytes: usize,
}

pub struct ExportCache<T> {
    slots: Mutex<HashMap<ExportKey, Slot<T>>>,
    ttl_secs: i64,
    clock: Arc<dyn Clock>,
    capacity: Capacity,
    max_pending_per_org: usize,
}

impl<T: Weigh + Send + Sync + 'static> ExportCache<T> {
    /// At most `capacity` (`CLARI_MCP_EXPORT_CACHE_ENTRIES`, `CLARI_MCP_EXPORT_CACHE_MB`), and
    /// [`MAX_PENDING_PER_ORG`] in progress for one organisation.
    pub fn new(ttl: Duration, clock: Arc<dyn Clock>, capacity: Capacity) -> Self {
        Self::with_limits(ttl, clock, capacity, MAX_PENDING_PER_ORG)
    }

    pub fn with_limits(
        ttl: Duration,
        clock: Arc<dyn Clock>,
        capacity: Capacity,
        max_pending_per_org: usize,
    ) -> Self {
        Self {
            slots: Mutex::new(HashMap::new()),
            ttl_secs: ttl.as_secs() as i64,
            clock,
            capacity,
            max_pending_per_org,
        }
    }

    /// The most it keeps.
    pub fn capacity(&self) -> Capacity {
        self.capacity
    }

    /// What the finished exports it holds weigh, in bytes.
    pub fn weight(&self) -> usize {
        weight(&self.slots.lock().expect("cache lock"))
    }

    fn live(&self, slot: &Slot<T>, now: i64) -> bool {
        match &*slot.rx.borrow() {
            Ok(ExportState::Ready(_)) => now < slot.expires,
            Ok(_) => true,
            Err(_) => false,
        }
    }

    /// The cached value for `key` when it is ready and fresh; never starts anything.
    pub fn peek(&self, key: &ExportKey) -> Option<Arc<T>> {
        let now = self.clock.now();
        let slots = self.slots.lock().expect("cache lock");
        let slot = slots.get(key)?;
        match &*slot.rx.borrow() {
            Ok(ExportState::Ready(v)) if now < slot.expires => Some(v.clone()),
            _ => None,
        }
    }

    /// Until when the ready value for `key` is served; `None` when there is none.
    pub fn ready_until(&self, key: &ExportKey) -> Option<i64> {
        let slots = self.slots.lock().expect("cache lock");
        let slot = slots.get(key)?;
        let ready = matches!(&*slot.rx.borrow(), Ok(ExportState::Ready(_)));
        ready.then_some(slot.expires)
    }

    /// Serves `value` for `key` until `expires`, in place of what was there: the outcome of a
    /// refresh made ahead of expiry. Callers waiting on a replaced export keep their own
    /// receivers. What was there goes in any case; `value` is not kept when it alone outweighs
    /// the byte bound, or when every other entry is an export in progress.
    pub fn install(&self, key: ExportKey, value: Arc<T>, expires: i64, prewarmed: bool) {
        let now = self.clock.now();
        let mut slots = self.slots.lock().expect("cache lock");
        // What it replaces leaves first, so there is room for it by count.
        slots.remove(&key);
        let weight = value.weight();
        if weight > self.capacity.bytes || !self.trim_locked(&mut slots, now, Some(weight)) {
            return;
        }
        let (_, rx) = watch::channel(Ok(ExportState::Ready(value)));
        slots.insert(
            key,
            Slot {
                rx,
                expires,
                prewarmed,
            },
        );
    }

    /// Returns the cached value for `key`, joins a running export, or starts `run` in a spawned
    /// task (it reports progress and the outcome through the sender). Waits at most `wait`.
    pub async fn get<F, Fut>(&self, key: ExportKey, wait: Duration, run: F) -> Progress<T>
    where
        F: FnOnce(watch::Sender<Progress<T>>) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let (mut rx, done) = {
            let now = self.clock.now();
            let mut slots = self.slots.lock().expect("cache lock");
            // One lookup of the key on the path of a warm call.
            let found = slots.get(&key).filter(|s| self.live(s, now)).map(|s| {
                let done = matches!(&*s.rx.borrow(), Ok(ExportState::Ready(_)));
                (s.rx.clone(), done, done && s.prewarmed)
            });
            note(|u| match &found {
                Some((_, true, prewarmed)) => {
                    u.hits += 1;
                    u.prewarmed += u32::from(*prewarmed);
                }
                Some((_, false, _)) => u.joined += 1,
                None => u.misses += 1,
            });
            match found {
                Some((rx, done, _)) => (rx, done),
                None => {
                    self.make_room(&mut slots, key.org(), now)?;
                    let (tx, rx) = watch::channel(Ok(ExportState::Running { job_id: None }));
                    slots.insert(
                        key.clone(),
                        Slot {
                            rx: rx.clone(),
                            expires: now + self.ttl_secs,
                            prewarmed: false,
                        },
                    );
                    tokio::spawn(run(tx));
                    (rx, false)
                }
            }
        };
        // A finished export is answered as it is, with no timer.
        let current = if done {
            rx.borrow().clone()
        } else {
            let outcome = tokio::time::timeout(wait, rx.wait_for(|p| !pending(p)))
                .await
                .map(|r| r.map(|p| p.clone()));
            match outcome {
                Ok(Ok(p)) => p,
                // The task ended without reporting (it panicked): treat as unavailable.
                Ok(Err(_)) => Err(ClariError::Unavailable { status: 500 }),
                Err(_) => rx.borrow().clone(),
            }
        };
        if current.is_err() {
            let mut slots = self.slots.lock().expect("cache lock");
            if slots.get(&key).is_some_and(|s| s.rx.borrow().is_err()) {
                slots.remove(&key);
            }
        }
        current
    }

    /// Frees room for one more entry of `org` (see [`Self::trim_locked`]); refuses when the
    /// organisation already has too many exports in progress or every entry is an export in
    /// progress.
    fn make_room(
        &self,
        slots: &mut HashMap<ExportKey, Slot<T>>,
        org: &OrgId,
        now: i64,
    ) -> Result<(), ClariError> {
        let pending_here = slots
            .iter()
            .filter(|(k, s)| k.org() == org && pending(&s.rx.borrow()))
            .count();
        if pending_here >= self.max_pending_per_org {
            return Err(ClariError::TooManyExports {
                limit: self.max_pending_per_org,
            });
        }
        if self.trim_locked(slots, now, Some(0)) {
            Ok(())
        } else {
            Err(ClariError::TooManyExports {
                limit: self.capacity.entries,
            })
        }
    }

    /// Keeps the byte bound once an export has finished: its weight is known only then (see
    /// [`Self::trim_locked`]). One that alone outweighs the bound goes first, and alone: its
    /// callers still get it.
    pub fn trim(&self) {
        let now = self.clock.now();
        let mut slots = self.slots.lock().expect("cache lock");
        self.trim_locked(&mut slots, now, None);
    }

    /// Drops what expired or failed and any finished entry that alone outweighs the byte bound,
    /// then the finished entries closest to expiry (an export's expiry is set when it starts, a
    /// pre-warmed one's when it is installed), until the finished ones weigh at most the bound
    /// and, when `adding` one more entry of that weight (0 for an export just starting), it fits
    /// with them; `false` when no more fits by count because every entry is an export in
    /// progress.
    fn trim_locked(
        &self,
        slots: &mut HashMap<ExportKey, Slot<T>>,
        now: i64,
        adding: Option<usize>,
    ) -> bool {
        let incoming = adding.unwrap_or(0);
        let room = |slots: &HashMap<ExportKey, Slot<T>>| {
            slots.len() + usize::from(adding.is_some()) <= self.capacity.entries
        };
        if room(slots) && weight(slots) + incoming <= self.capacity.bytes {
            return true;
        }
        let bound = self.capacity.bytes;
        slots.retain(|_, s| {
            self.live(s, now)
                && !matches!(&*s.rx.borrow(), Ok(ExportState::Ready(v)) if v.weight() > bound)
        });
        let mut weighs = weight(slots) + incoming;
        if room(slots) && weighs <= self.capacity.bytes {
            return true;
        }
        let mut done: Vec<(i64, ExportKey, usize)> = slots
            .iter()
            .filter_map(|(k, s)| match &*s.rx.borrow() {
                Ok(ExportState::Ready(v)) => Some((s.expires, k.clone(), v.weight())),
                _ => None,
            })
            .collect();
        // Closest to expiry last in the vector (popped first); ties in key order, so the
        // choice never depends on the map's order.
        fn order((expires, key, _): &(i64, ExportKey, usize)) -> (i64, &str, &str) {
            (*expires, key.org.as_str(), &key.request)
        }
        done.sort_unstable_by(|a, b| order(b).cmp(&order(a)));
        while !room(slots) || weighs > self.capacity.bytes {
            // Nothing finished is left, so nothing weighs: only the count can be short.
            let Some((_, key, w)) = done.pop() else {
                return room(slots);
            };
            slots.remove(&key);
            weighs -= w;
        }
        true
    }

    /// Drops expired and failed entries.
    pub fn sweep(&self) {
        let now = self.clock.now();
        let mut slots = self.slots.lock().expect("cache lock");
        slots.retain(|_, s| self.live(s, now));
    }

    /// Forgets every entry of one organisation (its results and the senders of its exports).
    pub fn forget_org(&self, org: &OrgId) {
        let mut slots = self.slots.lock().expect("cache lock");
        slots.retain(|k, _| k.org() != org);
    }

    pub fn len(&self) -> usize {
        self.slots.lock().expect("cache lock").len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What the finished exports among `slots` weigh.
fn weight<T: Weigh>(slots: &HashMap<ExportKey, Slot<T>>) -> usize {
    slots
        .values()
        .map(|s| match &*s.rx.borrow() {
            Ok(ExportState::Ready(v)) => v.weight(),
            _ => 0,
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clari::JobId;
    use crate::clock::ManualClock;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn org() -> OrgId {
        OrgId::parse("org_1").unwrap()
    }

    fn key(request: impl Into<String>) -> ExportKey {
        ExportKey::new(org(), request)
    }

    /// A test value weighs what it says.
    impl Weigh for u32 {
        fn weight(&self) -> usize {
            *self as usize
        }
    }

    fn cache(clock: &ManualClock) -> Arc<ExportCache<u32>> {
        Arc::new(ExportCache::new(
            Duration::from_secs(60),
            Arc::new(clock.clone()),
            Capacity {
                entries: 1_000,
                bytes: 1_000_000,
            },
        ))
    }

    #[test]
    fn a_keys_text_is_the_one_the_queue_rows_are_keyed_by() {
        assert_eq!(
            key("forecast:f1:current").to_string(),
            "org_1:forecast:f1:current"
        );
    }

    #[tokio::test]
    async fn forgetting_an_organisation_matches_its_id_not_a_prefix() {
        let clock = ManualClock::new(1_000);
        let cache = cache(&clock);
        let longer = OrgId::parse("org_10").unwrap();
        for k in [key("a"), ExportKey::new(longer.clone(), "a")] {
            cache.install(k, Arc::new(1), 2_000, false);
        }
        cache.forget_org(&org());
        assert!(cache.peek(&key("a")).is_none());
        assert!(cache.peek(&ExportKey::new(longer, "a")).is_some());
    }

    #[tokio::test]
    async fn concurrent_callers_share_one_run_and_errors_are_not_cached() {
        let clock = ManualClock::new(1_000);
        let cache = cache(&clock);
        let runs = Arc::new(AtomicUsize::new(0));
        let (release, gate) = watch::channel(false);
        let mut handles = Vec::new();
        for _ in 0..5 {
            let cache = cache.clone();
            let runs = runs.clone();
            let mut gate = gate.clone();
            handles.push(tokio::spawn(async move {
                cache
                    .get(key("k"), Duration::from_secs(5), move |tx| async move {
                        runs.fetch_add(1, Ordering::SeqCst);
                        let _ = tx.send(Ok(ExportState::Running {
                            job_id: Some(JobId::parse("j1").unwrap()),
                        }));
                        let _ = gate.wait_for(|open| *open).await;
                        let _ = tx.send(Ok(ExportState::Ready(Arc::new(7))));
                    })
                    .await
            }));
        }
        tokio::task::yield_now().await;
        release.send(true).unwrap();
        for h in handles {
            assert!(matches!(h.await.unwrap(), Ok(ExportState::Ready(v)) if *v == 7));
        }
        assert_eq!(runs.load(Ordering::SeqCst), 1);

        let failed = cache.get(key("bad"), Duration::from_secs(1), |tx| async move {
            let _ = tx.send(Err(ClariError::Timeout));
        });
        assert!(failed.await.is_err());
        let retried = cache.get(key("bad"), Duration::from_secs(1), |tx| async move {
            let _ = tx.send(Ok(ExportState::Ready(Arc::new(1))));
        });
        assert!(
            matches!(retried.await, Ok(ExportState::Ready(_))),
            "a failure was not cached"
        );
    }

    #[tokio::test]
    async fn a_short_wait_reports_the_state_and_the_run_goes_on() {
        let clock = ManualClock::new(1_000);
        let cache = cache(&clock);
        let (release, mut gate) = watch::channel(false);
        let first = cache
            .get(key("slow"), Duration::ZERO, |tx| async move {
                let _ = tx.send(Ok(ExportState::Queued {
                    position: 2,
                    waiting_for: Some(JobId::parse("j0").unwrap()),
                }));
                let _ = gate.wait_for(|open| *open).await;
                let _ = tx.send(Ok(ExportState::Ready(Arc::new(3))));
            })
            .await
            .unwrap();
        assert!(
            matches!(
                first,
                ExportState::Queued { .. } | ExportState::Running { job_id: None }
            ),
            "{first:?}"
        );
        release.send(true).unwrap();
        let again = cache
            .get(key("slow"), Duration::from_secs(5), |_tx| async move {
                panic!("must not run twice")
            })
            .await
            .unwrap();
        assert!(matches!(again, ExportState::Ready(v) if *v == 3));
    }

    #[tokio::test]
    async fn entries_expire_by_the_injected_clock() {
        let clock = ManualClock::new(1_000);
        let cache = cache(&clock);
        let runs = Arc::new(AtomicUsize::new(0));
        for _ in 0..2 {
            let r = runs.clone();
            let got = cache
                .get(key("t"), Duration::from_secs(5), move |tx| async move {
                    r.fetch_add(1, Ordering::SeqCst);
                    let _ = tx.send(Ok(ExportState::Ready(Arc::new(1))));
                })
                .await
                .unwrap();
            assert!(matches!(got, ExportState::Ready(_)));
        }
        assert_eq!(runs.load(Ordering::SeqCst), 1, "fresh within the TTL");
        assert!(cache.peek(&key("t")).is_some());
        clock.advance(61);
        assert!(cache.peek(&key("t")).is_none(), "expired after the TTL");
        let r = runs.clone();
        cache
            .get(key("t"), Duration::from_secs(5), move |tx| async move {
                r.fetch_add(1, Ordering::SeqCst);
                let _ = tx.send(Ok(ExportState::Ready(Arc::new(2))));
            })
            .await
            .unwrap();
        assert_eq!(runs.load(Ordering::SeqCst), 2, "refreshed after the TTL");
        cache.sweep();
        assert_eq!(cache.len(), 1);
    }

    #[tokio::test]
    async fn the_cache_is_bounded_in_entries_and_exports_in_progress() {
        let clock = ManualClock::new(1_000);
        let capacity = Capacity {
            entries: 3,
            bytes: 1_000,
        };
        let cache: ExportCache<u32> = ExportCache::with_limits(
            Duration::from_secs(60),
            Arc::new(clock.clone()),
            capacity,
            2,
        );
        for i in 0..3 {
            cache
                .get(
                    key(format!("{i}")),
                    Duration::from_secs(5),
                    move |tx| async move {
                        let _ = tx.send(Ok(ExportState::Ready(Arc::new(i))));
                    },
                )
                .await
                .unwrap();
            clock.advance(1);
        }
        // A fourth entry evicts the oldest finished one.
        cache
            .get(key("3"), Duration::from_secs(5), |tx| async move {
                let _ = tx.send(Ok(ExportState::Ready(Arc::new(3))));
            })
            .await
            .unwrap();
        assert_eq!(cache.len(), 3);
        assert!(cache.peek(&key("0")).is_none() && cache.peek(&key("3")).is_some());
        // Exports in progress per organisation are capped.
        let (_hold, gate) = watch::channel(false);
        for i in 0..2 {
            let mut gate = gate.clone();
            let got = cache
                .get(key(format!("p{i}")), Duration::ZERO, move |tx| async move {
                    let _ = gate.wait_for(|open| *open).await;
                    drop(tx);
                })
                .await;
            assert!(got.is_ok());
        }
        let refused = cache
            .get(key("p2"), Duration::ZERO, |_tx| async move {})
            .await;
        assert!(matches!(
            refused,
            Err(ClariError::TooManyExports { limit: 2 })
        ));
        let other = OrgId::parse("org_2").unwrap();
        let elsewhere = cache
            .get(
                ExportKey::new(other.clone(), "p"),
                Duration::ZERO,
                |tx| async move {
                    let _ = tx.send(Ok(ExportState::Ready(Arc::new(9))));
                },
            )
            .await;
        assert!(elsewhere.is_ok(), "another organisation is not held back");
    }

    #[tokio::test]
    async fn an_installed_refresh_is_served_until_its_own_expiry_and_counted() {
        let clock = ManualClock::new(1_000);
        let cache = cache(&clock);
        assert_eq!(cache.ready_until(&key("f")), None);
        // A refresh lands with a lifetime longer than the TTL of 60 s.
        cache.install(key("f"), Arc::new(7), 1_000 + 3_600, true);
        assert_eq!(cache.ready_until(&key("f")), Some(4_600));
        clock.advance(3_599);
        let used = CACHE_USE
            .scope(std::cell::Cell::new(CacheUse::default()), async {
                let got = cache
                    .get(key("f"), Duration::ZERO, |_tx| async move {
                        panic!("served from the refresh")
                    })
                    .await;
                assert!(matches!(got, Ok(ExportState::Ready(v)) if *v == 7));
                CACHE_USE.with(std::cell::Cell::get)
            })
            .await;
        assert_eq!((used.hits, used.prewarmed, used.label()), (1, 1, "hit"));
        clock.advance(1);
        assert_eq!(cache.peek(&key("f")), None, "expired at its own time");
    }

    /// Finished exports weigh at most the byte bound: checked when one is added (the oldest
    /// finished go first) and when one finishes, since its weight is known only then. One that
    /// alone outweighs the bound is handed to its callers and not kept.
    #[tokio::test]
    async fn the_cache_is_bounded_in_bytes() {
        let clock = ManualClock::new(1_000);
        let capacity = Capacity {
            entries: 100,
            bytes: 100,
        };
        let cache: ExportCache<u32> =
            ExportCache::new(Duration::from_secs(60), Arc::new(clock.clone()), capacity);
        let ready = |v: u32| {
            move |tx: watch::Sender<Progress<u32>>| async move {
                let _ = tx.send(Ok(ExportState::Ready(Arc::new(v))));
            }
        };
        for (i, w) in [40, 30, 20].into_iter().enumerate() {
            cache
                .get(key(format!("{i}")), Duration::from_secs(5), ready(w))
                .await
                .unwrap();
            cache.trim();
            clock.advance(1);
        }
        assert_eq!((cache.len(), cache.weight()), (3, 90));
        // 60 more: the oldest two go (40, then 30), 80 stay.
        cache
            .get(key("3"), Duration::from_secs(5), ready(60))
            .await
            .unwrap();
        cache.trim();
        assert_eq!(cache.weight(), 80);
        assert!(cache.peek(&key("0")).is_none() && cache.peek(&key("1")).is_none());
        assert!(cache.peek(&key("2")).is_some() && cache.peek(&key("3")).is_some());
        // Too heavy to keep at all: answered, then dropped alone, pushing nothing out.
        clock.advance(1);
        let got = cache
            .get(key("big"), Duration::from_secs(5), ready(500))
            .await
            .unwrap();
        assert!(matches!(got, ExportState::Ready(v) if *v == 500));
        cache.trim();
        assert_eq!((cache.len(), cache.weight()), (2, 80));
        assert!(cache.peek(&key("big")).is_none());
        // The pre-warmer's install keeps the bound too.
        cache.install(key("a"), Arc::new(60), 2_000, true);
        cache.install(key("b"), Arc::new(60), 2_100, true);
        assert!(cache.peek(&key("a")).is_none() && cache.peek(&key("b")).is_some());
    }
}
