//! The fast path for Clari exports (5–30 s each upstream). Results are cached per organisation and
//! request parameters with a TTL; concurrent identical requests share one upstream job
//! (single-flight); a caller waits at most its `wait_seconds` and otherwise gets the job id back
//! while the job keeps running in a spawned task and fills the cache. Errors are never cached.
//! The key always starts with the organisation id, so one organisation never sees another's data.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::clari::ClariError;

#[derive(Debug)]
pub enum Progress<T> {
    Pending { job_id: Option<String> },
    Done(Arc<T>),
    Failed(ClariError),
}

impl<T> Clone for Progress<T> {
    fn clone(&self) -> Self {
        match self {
            Self::Pending { job_id } => Self::Pending {
                job_id: job_id.clone(),
            },
            Self::Done(v) => Self::Done(v.clone()),
            Self::Failed(e) => Self::Failed(e.clone()),
        }
    }
}

/// What a caller gets within its wait budget.
#[derive(Debug)]
pub enum Fetched<T> {
    Ready(Arc<T>),
    StillRunning { job_id: Option<String> },
}

struct Slot<T> {
    rx: watch::Receiver<Progress<T>>,
    created: Instant,
}

pub struct ExportCache<T> {
    slots: Mutex<HashMap<String, Slot<T>>>,
    ttl: Duration,
}

impl<T: Send + Sync + 'static> ExportCache<T> {
    pub fn new(ttl: Duration) -> Self {
        Self {
            slots: Mutex::new(HashMap::new()),
            ttl,
        }
    }

    /// Returns the cached value for `key`, joins a running job, or starts `run` in a spawned task
    /// (it reports the job id and the outcome through the sender). Waits at most `wait`.
    pub async fn get<F, Fut>(
        &self,
        key: String,
        wait: Duration,
        run: F,
    ) -> Result<Fetched<T>, ClariError>
    where
        F: FnOnce(watch::Sender<Progress<T>>) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let mut rx = {
            let mut slots = self.slots.lock().expect("cache lock");
            let fresh = slots.get(&key).is_some_and(|s| {
                let p = s.rx.borrow();
                match &*p {
                    Progress::Done(_) => s.created.elapsed() < self.ttl,
                    Progress::Pending { .. } => true,
                    Progress::Failed(_) => false,
                }
            });
            if !fresh {
                let (tx, rx) = watch::channel(Progress::Pending { job_id: None });
                slots.insert(
                    key.clone(),
                    Slot {
                        rx: rx.clone(),
                        created: Instant::now(),
                    },
                );
                tokio::spawn(run(tx));
            }
            slots.get(&key).expect("inserted above").rx.clone()
        };
        let outcome = tokio::time::timeout(
            wait,
            rx.wait_for(|p| !matches!(p, Progress::Pending { .. })),
        )
        .await
        .map(|r| r.map(|p| p.clone()));
        let current = match outcome {
            Ok(Ok(p)) => p,
            // The task ended without reporting (it panicked): treat as unavailable.
            Ok(Err(_)) => Progress::Failed(ClariError::Unavailable { status: 500 }),
            Err(_) => rx.borrow().clone(),
        };
        match current {
            Progress::Done(v) => Ok(Fetched::Ready(v)),
            Progress::Pending { job_id } => Ok(Fetched::StillRunning { job_id }),
            Progress::Failed(e) => {
                let mut slots = self.slots.lock().expect("cache lock");
                if slots
                    .get(&key)
                    .is_some_and(|s| matches!(&*s.rx.borrow(), Progress::Failed(_)))
                {
                    slots.remove(&key);
                }
                Err(e)
            }
        }
    }

    /// Drops expired and failed entries.
    pub fn sweep(&self) {
        let mut slots = self.slots.lock().expect("cache lock");
        let ttl = self.ttl;
        slots.retain(|_, s| match &*s.rx.borrow() {
            Progress::Done(_) => s.created.elapsed() < ttl,
            Progress::Pending { .. } => true,
            Progress::Failed(_) => false,
        });
    }

    pub fn len(&self) -> usize {
        self.slots.lock().expect("cache lock").len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn concurrent_callers_share_one_run_and_errors_are_not_cached() {
        let cache: Arc<ExportCache<u32>> = Arc::new(ExportCache::new(Duration::from_secs(60)));
        let runs = Arc::new(AtomicUsize::new(0));
        let mut handles = Vec::new();
        for _ in 0..5 {
            let cache = cache.clone();
            let runs = runs.clone();
            handles.push(tokio::spawn(async move {
                cache
                    .get(
                        "org1:k".into(),
                        Duration::from_secs(5),
                        move |tx| async move {
                            runs.fetch_add(1, Ordering::SeqCst);
                            let _ = tx.send(Progress::Pending {
                                job_id: Some("j1".into()),
                            });
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            let _ = tx.send(Progress::Done(Arc::new(7)));
                        },
                    )
                    .await
            }));
        }
        for h in handles {
            assert!(matches!(h.await.unwrap(), Ok(Fetched::Ready(v)) if *v == 7));
        }
        assert_eq!(runs.load(Ordering::SeqCst), 1);

        let failed = cache.get("org1:bad".into(), Duration::from_secs(1), |tx| async move {
            let _ = tx.send(Progress::Failed(ClariError::Timeout));
        });
        assert!(failed.await.is_err());
        let retried = cache.get("org1:bad".into(), Duration::from_secs(1), |tx| async move {
            let _ = tx.send(Progress::Done(Arc::new(1)));
        });
        assert!(
            matches!(retried.await, Ok(Fetched::Ready(_))),
            "a failure was not cached"
        );
    }

    #[tokio::test]
    async fn a_short_wait_returns_the_job_and_the_run_goes_on() {
        let cache: Arc<ExportCache<u32>> = Arc::new(ExportCache::new(Duration::from_secs(60)));
        let first = cache
            .get(
                "org1:slow".into(),
                Duration::from_millis(30),
                |tx| async move {
                    let _ = tx.send(Progress::Pending {
                        job_id: Some("j9".into()),
                    });
                    tokio::time::sleep(Duration::from_millis(150)).await;
                    let _ = tx.send(Progress::Done(Arc::new(3)));
                },
            )
            .await
            .unwrap();
        assert!(matches!(first, Fetched::StillRunning { job_id: Some(ref j) } if j == "j9"));
        tokio::time::sleep(Duration::from_millis(200)).await;
        let again = cache
            .get(
                "org1:slow".into(),
                Duration::from_millis(10),
                |_tx| async move { panic!("must not run twice") },
            )
            .await
            .unwrap();
        assert!(matches!(again, Fetched::Ready(v) if *v == 3));
    }
}
