//! The background writer: drains the queue in batches (one transaction each), retries while the
//! database fails (the queue holds what arrives meanwhile, up to its bound), and signs checkpoints.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use super::chain::event_hash;
use super::{AuditKeys, AuditSettings, Msg};
use crate::clock::{Clock, UnixTime};
use crate::store::{AuditCheckpoint, NewAuditEvent, Store};

/// The most events one transaction appends. Under load every transaction is full: its fixed
/// cost (the chain heads, the commit and, on PostgreSQL, the commit's WAL flush) is shared by
/// this many events.
const BATCH: usize = 1024;
/// How long the writer lets events gather before writing a batch, so that under load one
/// transaction carries many events (requests never wait for it; a flush waits at most this).
const LINGER: Duration = Duration::from_millis(20);

/// The last signed checkpoint of a chain: `(seq, at)`.
type Signed = HashMap<String, (i64, UnixTime)>;

pub(super) async fn run(
    mut rx: mpsc::Receiver<Msg>,
    store: Arc<dyn Store>,
    keys: Arc<AuditKeys>,
    clock: Arc<dyn Clock>,
    healthy: Arc<AtomicBool>,
    settings: AuditSettings,
) {
    let mut signed: Signed = HashMap::new();
    // Chains written since their last checkpoint: chain → (head seq, head hash).
    let mut unsigned: HashMap<String, (i64, String)> = HashMap::new();
    let mut tick = tokio::time::interval(settings.checkpoint_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let first = tokio::select! {
            m = rx.recv() => match m {
                Some(m) => m,
                None => break,
            },
            _ = tick.tick() => {
                sign_due(&*store, &keys, &*clock, &settings, &mut signed, &mut unsigned, true).await;
                continue;
            }
        };
        let Gathered {
            batch,
            flushes,
            checkpoint,
        } = gather(first, &mut rx, || tokio::time::sleep(LINGER)).await;
        if !batch.is_empty() {
            let heads = append(&*store, &batch, &*clock, &healthy).await;
            for (chain, seq, hash) in heads {
                unsigned.insert(chain, (seq, hash));
            }
        }
        let force = !checkpoint.is_empty();
        sign_due(
            &*store,
            &keys,
            &*clock,
            &settings,
            &mut signed,
            &mut unsigned,
            force,
        )
        .await;
        for done in flushes.into_iter().chain(checkpoint) {
            let _ = done.send(());
        }
    }
}

/// One batch from the queue, starting with `first`. An event starts a batch: under light load
/// the writer lets more arrive for [`LINGER`] without waking for each (nobody waits on the queue
/// while it sleeps), then takes what is there. Under load a full batch is already waiting and is
/// taken at once: lingering then would cap the trail at one batch per linger (12,800 events a
/// second with batches of 256), and the queue would fill and refuse tool calls however fast the
/// database is. A flush or checkpoint waiting for the batch is not kept waiting. `linger` is the
/// wait (a sleep of [`LINGER`]).
async fn gather<F: std::future::Future<Output = ()>>(
    first: Msg,
    rx: &mut mpsc::Receiver<Msg>,
    linger: impl FnOnce() -> F,
) -> Gathered {
    let mut gathered = Gathered::default();
    let starts_batch = matches!(first, Msg::Event(_));
    gathered.take(first);
    gathered.fill(rx);
    if starts_batch && !gathered.full() && gathered.nobody_waits() {
        linger().await;
        gathered.fill(rx);
    }
    gathered
}

/// What one pass of the writer took from the queue.
#[derive(Default)]
struct Gathered {
    batch: Vec<NewAuditEvent>,
    flushes: Vec<oneshot::Sender<()>>,
    checkpoint: Vec<oneshot::Sender<()>>,
}

impl Gathered {
    fn take(&mut self, m: Msg) {
        match m {
            Msg::Event(e) => self.batch.push(*e),
            Msg::Flush(done) => self.flushes.push(done),
            Msg::Checkpoint(done) => self.checkpoint.push(done),
        }
    }

    /// Takes what is in the queue, up to a full batch.
    fn fill(&mut self, rx: &mut mpsc::Receiver<Msg>) {
        while !self.full()
            && let Ok(m) = rx.try_recv()
        {
            self.take(m);
        }
    }

    fn full(&self) -> bool {
        self.batch.len() >= BATCH
    }

    /// Whether no flush or checkpoint waits for this batch to be written.
    fn nobody_waits(&self) -> bool {
        self.flushes.is_empty() && self.checkpoint.is_empty()
    }
}

/// Appends one batch, retrying with backoff until the database takes it.
async fn append(
    store: &dyn Store,
    batch: &[NewAuditEvent],
    clock: &dyn Clock,
    healthy: &AtomicBool,
) -> Vec<(String, i64, String)> {
    let mut pause = Duration::from_millis(50);
    loop {
        match store.append_audit(batch, &event_hash, clock.now()).await {
            Ok(heads) => {
                healthy.store(true, Ordering::SeqCst);
                return heads;
            }
            Err(e) => {
                healthy.store(false, Ordering::SeqCst);
                tracing::error!(error = %e, events = batch.len(), "writing audit events failed; retrying");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// Signs a checkpoint for each chain with enough new rows, or with any new rows once the
/// interval has passed (or when `force`d).
async fn sign_due(
    store: &dyn Store,
    keys: &AuditKeys,
    clock: &dyn Clock,
    settings: &AuditSettings,
    signed: &mut Signed,
    unsigned: &mut HashMap<String, (i64, String)>,
    force: bool,
) {
    let now = clock.now();
    let interval = settings.checkpoint_interval.as_secs() as i64;
    let mut done = Vec::new();
    for (chain, (seq, hash)) in unsigned.iter() {
        let last = match signed.get(chain) {
            Some(s) => *s,
            None => match store.last_audit_checkpoint(chain).await {
                Ok(cp) => cp.map_or((0, i64::MIN), |c| (c.seq, c.at)),
                Err(e) => {
                    tracing::warn!(error = %e, "reading the last audit checkpoint failed");
                    continue;
                }
            },
        };
        signed.insert(chain.clone(), last);
        let due = *seq > last.0
            && (force
                || *seq - last.0 >= settings.checkpoint_every
                || now.saturating_sub(last.1) >= interval);
        if !due {
            continue;
        }
        let (key_id, signature) = keys.sign_checkpoint(chain, *seq, hash, now);
        let cp = AuditCheckpoint {
            chain: chain.clone(),
            seq: *seq,
            head_hash: hash.clone(),
            at: now,
            key_id,
            signature,
        };
        match store.insert_audit_checkpoint(&cp).await {
            Ok(()) => {
                signed.insert(chain.clone(), (*seq, now));
                done.push(chain.clone());
            }
            Err(e) => tracing::warn!(error = %e, "storing an audit checkpoint failed"),
        }
    }
    for chain in done {
        unsigned.remove(&chain);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(n: usize) -> Msg {
        Msg::Event(Box::new(NewAuditEvent {
            chain: "org".into(),
            at: 0,
            actor_kind: "system".into(),
            actor_id: None,
            actor_name: None,
            action: "tool.call".into(),
            target: Some(n.to_string()),
            outcome: "success".into(),
            request_id: None,
            client_ip: None,
            details: "{}".into(),
        }))
    }

    /// Gathers one batch; how many times it lingered.
    async fn gather_counting(
        rx: &mut mpsc::Receiver<Msg>,
        during: impl FnOnce(),
    ) -> (Gathered, usize) {
        let lingered = std::cell::Cell::new(0);
        let first = rx.recv().await.unwrap();
        let gathered = gather(first, rx, || {
            lingered.set(lingered.get() + 1);
            during();
            std::future::ready(())
        })
        .await;
        (gathered, lingered.get())
    }

    #[tokio::test]
    async fn a_backlog_is_written_in_full_batches_without_lingering() {
        let (tx, mut rx) = mpsc::channel(crate::audit::QUEUE_CAPACITY);
        for n in 0..2 * BATCH + 10 {
            tx.try_send(event(n)).unwrap();
        }
        for _ in 0..2 {
            let (gathered, lingered) = gather_counting(&mut rx, || {}).await;
            assert_eq!((gathered.batch.len(), lingered), (BATCH, 0));
        }
        let (rest, lingered) = gather_counting(&mut rx, || {}).await;
        assert_eq!(
            (rest.batch.len(), lingered),
            (10, 1),
            "a partial batch lingers once"
        );
        assert_eq!(
            rest.batch[0].target,
            Some((2 * BATCH).to_string()),
            "in order"
        );
    }

    #[tokio::test]
    async fn under_light_load_events_that_arrive_during_the_linger_join_the_batch() {
        let (tx, mut rx) = mpsc::channel(16);
        tx.try_send(event(0)).unwrap();
        let (gathered, lingered) =
            gather_counting(&mut rx, || tx.try_send(event(1)).unwrap()).await;
        assert_eq!((gathered.batch.len(), lingered), (2, 1));
    }

    #[tokio::test]
    async fn a_flush_behind_a_partial_batch_does_not_wait_for_the_linger() {
        let (tx, mut rx) = mpsc::channel(16);
        tx.try_send(event(0)).unwrap();
        let (done, _wait) = oneshot::channel();
        tx.try_send(Msg::Flush(done)).unwrap();
        let (gathered, lingered) = gather_counting(&mut rx, || {}).await;
        assert_eq!(
            (gathered.batch.len(), gathered.flushes.len(), lingered),
            (1, 1, 0)
        );
    }
}
