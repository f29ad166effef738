//! The audit trail: one row per security-relevant event, in a SHA-256 hash chain per organisation
//! (`-` is the instance's own chain), with Ed25519-signed checkpoints every
//! `checkpoint_every` rows or `checkpoint_interval` ([`AuditSettings`]).
//!
//! Recording is off the request path: [`AuditLog::record`] puts the event in a bounded queue and
//! a background writer appends batches in one transaction each. When the queue is full or the
//! database keeps failing, [`AuditLog::accepting`] turns false and, with `fail_closed` (the
//! default), tool calls are refused rather than run unaudited.

pub mod chain;
pub mod keys;
pub mod refusals;
mod writer;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::{Map, Value};
use tokio::sync::{mpsc, oneshot};

pub use keys::{AuditKeyError, AuditKeys};

pub use crate::config::AuditSettings;

use crate::clock::{Clock, UnixTime};
use crate::crypto::Vault;
use crate::metrics::Metrics;
use crate::store::{NewAuditEvent, OrgId, Store};

/// The instance's own chain: events that belong to no organisation (sign-ins, registrations).
pub const INSTANCE_CHAIN: &str = "-";

/// How many events may wait for the writer before recording refuses.
pub const QUEUE_CAPACITY: usize = 10_000;

/// Who did it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    /// `user`, `client`, `service` (a machine client), `api_key`, `operator` or `system`.
    pub kind: &'static str,
    pub id: Option<String>,
    pub name: Option<String>,
}

impl Actor {
    pub fn new(kind: &'static str, id: impl Into<String>, name: Option<String>) -> Self {
        Self {
            kind,
            id: Some(id.into()),
            name,
        }
    }

    /// A signed-in person, by id and e-mail address.
    pub fn person(id: impl Into<String>, email: impl Into<String>) -> Self {
        Self::new("user", id, Some(email.into()))
    }

    /// The person at the server's command line (named by `$USER` when set).
    pub fn operator() -> Self {
        Self {
            kind: "operator",
            id: None,
            name: std::env::var("USER").ok().filter(|u| !u.is_empty()),
        }
    }

    pub fn system() -> Self {
        Self {
            kind: "system",
            id: None,
            name: None,
        }
    }
}

/// One event, built by the code that knows what happened.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub org: Option<OrgId>,
    pub actor: Actor,
    pub action: &'static str,
    pub target: Option<String>,
    /// `success`, `failure` or `denied`.
    pub outcome: &'static str,
    pub request_id: Option<String>,
    pub client_ip: Option<String>,
    pub details: Map<String, Value>,
}

impl Event {
    pub fn new(org: Option<&OrgId>, actor: Actor, action: &'static str) -> Self {
        Self {
            org: org.cloned(),
            actor,
            action,
            target: None,
            outcome: "success",
            request_id: None,
            client_ip: None,
            details: Map::new(),
        }
    }

    pub fn target(mut self, target: impl Into<String>) -> Self {
        self.target = Some(target.into());
        self
    }

    pub fn outcome(mut self, outcome: &'static str) -> Self {
        self.outcome = outcome;
        self
    }

    pub fn from_request(mut self, request_id: Option<String>, client_ip: Option<String>) -> Self {
        self.request_id = request_id;
        self.client_ip = client_ip;
        self
    }

    pub fn detail(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.details.insert(key.to_owned(), value.into());
        self
    }

    fn into_new(self, at: UnixTime) -> NewAuditEvent {
        NewAuditEvent {
            chain: self
                .org
                .map_or_else(|| INSTANCE_CHAIN.to_owned(), OrgId::into_string),
            at,
            actor_kind: self.actor.kind.to_owned(),
            actor_id: self.actor.id,
            actor_name: self.actor.name,
            action: self.action.to_owned(),
            target: self.target,
            outcome: self.outcome.to_owned(),
            request_id: self.request_id,
            client_ip: self.client_ip,
            // serde_json's map keeps keys sorted: the stored text is canonical.
            details: serde_json::to_string(&self.details).expect("JSON values serialize"),
        }
    }
}

enum Msg {
    Event(Box<NewAuditEvent>),
    Flush(oneshot::Sender<()>),
    Checkpoint(oneshot::Sender<()>),
}

/// The handle every part of the server records through. Cheap to clone.
#[derive(Clone)]
pub struct AuditLog {
    tx: mpsc::Sender<Msg>,
    metrics: Arc<Metrics>,
    healthy: Arc<AtomicBool>,
    keys: Arc<AuditKeys>,
    clock: Arc<dyn Clock>,
    settings: AuditSettings,
}

impl AuditLog {
    /// Loads (or creates) the audit keys and starts the writer.
    pub async fn start(
        store: Arc<dyn Store>,
        vault: &Vault,
        clock: Arc<dyn Clock>,
        settings: AuditSettings,
        metrics: Arc<Metrics>,
    ) -> Result<Self, AuditKeyError> {
        let keys = Arc::new(AuditKeys::load(store.as_ref(), vault, clock.now()).await?);
        let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
        let healthy = Arc::new(AtomicBool::new(true));
        tokio::spawn(writer::run(
            rx,
            store,
            keys.clone(),
            clock.clone(),
            healthy.clone(),
            settings.clone(),
        ));
        Ok(Self {
            tx,
            metrics,
            healthy,
            keys,
            clock,
            settings,
        })
    }

    /// Queues an event. Never waits; an event that cannot be queued is logged as lost and turns
    /// [`AuditLog::accepting`] false until the writer catches up.
    pub fn record(&self, event: Event) {
        let action = event.action;
        self.metrics.audit_events.inc();
        if let Err(e) = self
            .tx
            .try_send(Msg::Event(Box::new(event.into_new(self.clock.now()))))
        {
            self.healthy.store(false, Ordering::SeqCst);
            tracing::error!(action, error = %e, "an audit event could not be queued");
        }
    }

    /// Whether events are being recorded (the writer is keeping up with the database).
    pub fn accepting(&self) -> bool {
        self.healthy.load(Ordering::SeqCst) && self.tx.capacity() > 0
    }

    /// How many events wait in the queue for the writer.
    pub fn queued(&self) -> usize {
        QUEUE_CAPACITY.saturating_sub(self.tx.capacity())
    }

    /// Whether work that must be audited may go ahead: always when not failing closed.
    pub fn may_proceed(&self) -> bool {
        !self.settings.fail_closed || self.accepting()
    }

    /// Waits until every event queued so far is written (shutdown, commands, tests).
    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Msg::Flush(done)).await.is_ok() {
            let _ = wait.await;
        }
    }

    /// Writes what is queued, then signs a checkpoint for every chain with unsigned rows.
    pub async fn checkpoint_now(&self) {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Msg::Checkpoint(done)).await.is_ok() {
            let _ = wait.await;
        }
    }

    pub fn keys(&self) -> &AuditKeys {
        &self.keys
    }

    pub fn settings(&self) -> &AuditSettings {
        &self.settings
    }

    /// The keyed digest of a tool's arguments (as compact JSON) in one organisation's chain.
    pub fn digest_args(&self, org: &OrgId, canonical: &str) -> String {
        self.keys.digest(org.as_str(), canonical)
    }
}

/// Prunes every chain's events older than the retention, behind a signed checkpoint at the cut so
/// that what remains still verifies. Returns how many rows were deleted.
pub async fn prune(
    store: &dyn Store,
    keys: &AuditKeys,
    now: UnixTime,
    retention: Duration,
) -> Result<u64, crate::store::StoreError> {
    let cutoff = now - retention.as_secs() as i64;
    let mut deleted = 0;
    for chain in store.audit_chains().await? {
        let Some(cut) = store.audit_last_before(&chain, cutoff).await? else {
            continue;
        };
        let (kid, signature) = keys.sign_checkpoint(&chain, cut.seq, &cut.hash, now);
        store
            .insert_audit_checkpoint(&crate::store::AuditCheckpoint {
                chain: chain.clone(),
                seq: cut.seq,
                head_hash: cut.hash.clone(),
                at: now,
                key_id: kid,
                signature,
            })
            .await?;
        deleted += store.delete_audit_through(&chain, cut.seq).await?;
    }
    Ok(deleted)
}
