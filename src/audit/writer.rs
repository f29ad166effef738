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

/// The most events one transaction appends.
const BATCH: usize = 256;
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
        let mut batch: Vec<NewAuditEvent> = Vec::new();
        let mut flushes: Vec<oneshot::Sender<()>> = Vec::new();
        let mut checkpoint = Vec::new();
        // An event starts a batch: let more arrive meanwhile without waking this task for each
        // (nobody waits on the queue while it sleeps), then take what is there.
        if matches!(first, Msg::Event(_)) {
            tokio::time::sleep(LINGER).await;
        }
        let mut next = Some(first);
        while let Some(m) = next.take() {
            match m {
                Msg::Event(e) => batch.push(*e),
                Msg::Flush(done) => flushes.push(done),
                Msg::Checkpoint(done) => checkpoint.push(done),
            }
            if batch.len() < BATCH {
                next = rx.try_recv().ok();
            }
        }
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
