//! Exports scheduled per organisation behind Clari's concurrency limit, across replicas.
//!
//! The `export_jobs` row of a request is its place in the organisation's queue (see
//! `store::exports`). The replica that owns the row waits for a slot (Clari's `concurrentLimit`,
//! read from `/admin/limits` and cached), then creates the Clari job; every other caller, in this
//! replica or another, follows that job. While waiting, the position is reported so callers can be
//! answered `queued` within their `wait_seconds`. A refusal from Clari for lack of a slot (slots
//! held by other clients of the same key) puts the row back in the queue; only an exhausted
//! monthly quota is an error.

use std::future::Future;
use std::time::Duration;

use crate::clari::client::ClariTarget;
use crate::clari::types::Limits;
use crate::clari::{ClariError, JobId};
use crate::crypto::sha256_hex;
use crate::state::AppState;
use crate::store::{ExportClaim, ExportStaleness, ExportStatus, OrgId, Promotion};

/// A queued row whose owner has not heart-beaten for this long is taken over.
const QUEUED_STALE_AFTER: i64 = 60;
/// A starting/running row not updated for this long is taken over (its replica probably died).
const ACTIVE_STALE_AFTER: i64 = 900;
/// How long an export may wait in the queue before the wait is given up.
const QUEUE_DEADLINE: Duration = Duration::from_secs(600);
/// Clari's documented default, used while `/admin/limits` cannot be read.
const DEFAULT_CONCURRENT_LIMIT: u32 = 3;

/// Where an export waits, as reported to callers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Waiting {
    Queued {
        position: u32,
        waiting_for: Option<JobId>,
    },
    Starting,
}

/// The Clari job an export follows, and whether this replica owns its row (and so records the
/// outcome).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Started {
    pub job_id: JobId,
    pub owner: bool,
}

fn staleness(now: i64, fresh_for: i64) -> ExportStaleness {
    ExportStaleness {
        queued_before: now - QUEUED_STALE_AFTER,
        active_before: now - ACTIVE_STALE_AFTER,
        done_before: now - fresh_for,
    }
}

/// The organisation's concurrent export limit (cached; Clari's default while it cannot be read).
async fn concurrent_limit(state: &AppState, org: &OrgId, target: &ClariTarget) -> u32 {
    let now = state.now();
    if let Some(l) = state.export_limits.get(org, now) {
        return l;
    }
    match state.clari.admin_limits(target).await {
        Ok(l) => {
            let limit = l.jobs.concurrent_limit.clamp(1, 1_000) as u32;
            state.export_limits.put(org, now, limit);
            limit
        }
        Err(e) => {
            tracing::warn!(error = %e, org_id = %org, "reading Clari's export limits failed; assuming the default");
            DEFAULT_CONCURRENT_LIMIT
        }
    }
}

/// Whether the organisation is still enabled: asked before every turn of a queued export's
/// wait, again just before its Clari job is created, and before every poll of a background
/// one. A failing check is not taken as disabled.
pub(super) async fn org_enabled(state: &AppState, org: &OrgId) -> bool {
    match state.store.org_disabled(org).await {
        Ok(Some(false)) => true,
        Ok(_) => {
            tracing::info!(org_id = %org, "organisation disabled: abandoning its export");
            false
        }
        Err(e) => {
            tracing::warn!(error = %e, org_id = %org, "checking the organisation failed");
            true
        }
    }
}

/// Whether a refusal means "no free slot right now" (wait) rather than "no quota left" (fail).
fn only_slots_are_busy(e: &ClariError) -> bool {
    match e {
        ClariError::QuotaReached {
            limits: Some(l), ..
        } => l.jobs.available_monthly_quota > 0,
        _ => false,
    }
}

/// The running Clari job whose end frees a slot first, as far as Clari's limits tell.
fn first_running(l: &Limits) -> Option<JobId> {
    l.jobs
        .running_job_ids
        .first()
        .and_then(|j| JobId::parse(j).ok())
}

/// Puts an export Clari had no slot for back in the queue, first in line.
async fn back_in_line(
    state: &AppState,
    org: &OrgId,
    key: &str,
    waiting_for: Option<JobId>,
) -> Waiting {
    if let Err(e) = state.store.requeue_export(org, key, state.now()).await {
        tracing::warn!(error = %e, org_id = %org, "putting an export back in the queue failed");
    }
    Waiting::Queued {
        position: 1,
        waiting_for,
    }
}

/// Starts the Clari job for `request` when a slot is free, or follows the job another caller
/// started for the same request. `report` hears every change of the waiting state.
pub async fn start_or_follow<C, Fut>(
    state: &AppState,
    org: &OrgId,
    target: &ClariTarget,
    request: &str,
    report: impl Fn(Waiting),
    create: C,
) -> Result<Started, ClariError>
where
    C: Fn() -> Fut,
    Fut: Future<Output = Result<JobId, ClariError>>,
{
    let key = sha256_hex(request);
    let store = &state.store;
    let fresh_for = state.config.export_cache_ttl.as_secs() as i64;
    let pause = state
        .config
        .export_poll_interval
        .clamp(Duration::from_millis(20), Duration::from_secs(2));
    let deadline = tokio::time::Instant::now() + QUEUE_DEADLINE;
    let mut owner = false;
    let mut last: Option<Waiting> = None;
    let say = |w: Waiting, last: &mut Option<Waiting>| {
        if last.as_ref() != Some(&w) {
            report(w.clone());
            *last = Some(w);
        }
    };
    loop {
        // Disabled (by `org disable` or the kill switch) while it waited: nothing may be asked of
        // Clari for the organisation from here on, so the export is not started. The kill switch
        // closes the rows it finds, and this is what stops a wait it did not find, or whose row
        // it closed, from claiming a row anew and starting the job after it.
        if !org_enabled(state, org).await {
            if owner {
                finish_quietly(state, org, &key, false).await;
            }
            return Err(ClariError::Abandoned { job_id: None });
        }
        if tokio::time::Instant::now() >= deadline {
            if owner {
                finish_quietly(state, org, &key, false).await;
            }
            return Err(ClariError::QueueTimeout {
                minutes: QUEUE_DEADLINE.as_secs() / 60,
            });
        }
        let now = state.now();
        if !owner {
            match store
                .claim_export(org, &key, now, staleness(now, fresh_for))
                .await
            {
                Ok(ExportClaim::Won) => owner = true,
                Ok(ExportClaim::Taken {
                    clari_job_id: Some(job_id),
                    status: ExportStatus::Running | ExportStatus::Done,
                    ..
                }) => match JobId::parse(&job_id) {
                    Ok(job_id) => {
                        return Ok(Started {
                            job_id,
                            owner: false,
                        });
                    }
                    // Not an id this program would have recorded: wait for the row to go stale.
                    Err(_) => say(Waiting::Starting, &mut last),
                },
                Ok(ExportClaim::Taken {
                    status: ExportStatus::Queued,
                    position,
                    ..
                }) => say(
                    Waiting::Queued {
                        position: position.unwrap_or(1),
                        waiting_for: None,
                    },
                    &mut last,
                ),
                Ok(ExportClaim::Taken { .. }) => say(Waiting::Starting, &mut last),
                Err(e) => return uncoordinated(e, org, &create).await,
            }
        }
        if owner {
            let limit = concurrent_limit(state, org, target).await;
            let now = state.now();
            match store
                .promote_export(org, &key, limit, now, staleness(now, fresh_for))
                .await
            {
                Ok(Promotion::Start) => {
                    // Other clients of the same Clari key may hold every slot: asked first, so
                    // that such an export is said to be queued from its first answer rather
                    // than starting, then queued.
                    let busy = match state.clari.admin_limits(target).await {
                        Ok(l) if l.jobs.available_concurrent_limit <= 0 => Some(first_running(&l)),
                        _ => None,
                    };
                    if let Some(waiting_for) = busy {
                        say(back_in_line(state, org, &key, waiting_for).await, &mut last);
                        tokio::time::sleep(pause * 5).await;
                        continue;
                    }
                    // The slot may have come free because the organisation was disabled (its
                    // running export was cancelled), or the disable landed while Clari was
                    // asked for its limits: asked once more, just before the job would exist.
                    if !org_enabled(state, org).await {
                        finish_quietly(state, org, &key, false).await;
                        return Err(ClariError::Abandoned { job_id: None });
                    }
                    say(Waiting::Starting, &mut last);
                    match create().await {
                        Ok(job_id) => {
                            record_job(state, org, target, &key, &job_id).await?;
                            return Ok(Started {
                                job_id,
                                owner: true,
                            });
                        }
                        Err(e) if only_slots_are_busy(&e) => {
                            // Another client of the same Clari key holds the slots: wait our turn.
                            state.export_limits.forget(org);
                            let waiting_for = match &e {
                                ClariError::QuotaReached {
                                    limits: Some(l), ..
                                } => first_running(l),
                                _ => None,
                            };
                            say(back_in_line(state, org, &key, waiting_for).await, &mut last);
                            tokio::time::sleep(pause * 5).await;
                            continue;
                        }
                        Err(e) => {
                            finish_quietly(state, org, &key, false).await;
                            return Err(e);
                        }
                    }
                }
                Ok(Promotion::Wait {
                    position,
                    running_job_id,
                }) => say(
                    Waiting::Queued {
                        position,
                        waiting_for: running_job_id.and_then(|j| JobId::parse(&j).ok()),
                    },
                    &mut last,
                ),
                Ok(Promotion::Lost) => owner = false,
                Err(e) => return uncoordinated(e, org, &create).await,
            }
        }
        tokio::time::sleep(pause).await;
    }
}

/// What one attempt to start an export in a spare slot (for pre-warming) found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpareStart {
    /// This replica created the Clari job and owns the row.
    Started(Started),
    /// The same export is running for another caller, or finished `finished_at`: follow it.
    Follow {
        job_id: JobId,
        finished_at: Option<i64>,
    },
    /// Nothing to start now; the reason, for the metrics.
    Skipped(&'static str),
}

/// Starts the export for `request` only if it can be done now without holding up anyone: the
/// row is free (nobody exports it, and no result finished less than `fresh_for` seconds ago),
/// no interactive export waits in the queue, and a slot stays free after this one (never the
/// last), by our own count and by Clari's, which includes other clients of the same key. `spend` is asked just before the Clari job is created (the daily budget). Never waits.
pub async fn start_spare<C, Fut, S, SFut>(
    state: &AppState,
    org: &OrgId,
    target: &ClariTarget,
    request: &str,
    fresh_for: i64,
    spend: S,
    create: C,
) -> Result<SpareStart, ClariError>
where
    C: FnOnce() -> Fut,
    Fut: Future<Output = Result<JobId, ClariError>>,
    S: FnOnce() -> SFut,
    SFut: Future<Output = bool>,
{
    let key = sha256_hex(request);
    let store = &state.store;
    let now = state.now();
    let unavailable = |e: crate::store::StoreError| {
        tracing::warn!(error = %e, org_id = %org, "export queue unavailable; not pre-warming");
        ClariError::StoreUnavailable
    };
    match store
        .claim_export(org, &key, now, staleness(now, fresh_for))
        .await
        .map_err(unavailable)?
    {
        ExportClaim::Won => {}
        ExportClaim::Taken {
            clari_job_id: Some(job_id),
            status: status @ (ExportStatus::Running | ExportStatus::Done),
            updated_at,
            ..
        } => {
            return Ok(match JobId::parse(&job_id) {
                Ok(job_id) => SpareStart::Follow {
                    job_id,
                    finished_at: (status == ExportStatus::Done).then_some(updated_at),
                },
                Err(_) => SpareStart::Skipped("busy"),
            });
        }
        ExportClaim::Taken { .. } => return Ok(SpareStart::Skipped("busy")),
    }
    // Clari's own count, read now: slots held by other clients of the same key count too.
    let limits = match state.clari.admin_limits(target).await {
        Ok(l) => l.jobs,
        Err(e) => {
            tracing::warn!(error = %e, org_id = %org, "reading Clari's export limits failed; not pre-warming");
            finish_quietly(state, org, &key, false).await;
            return Ok(SpareStart::Skipped("limits_unavailable"));
        }
    };
    let limit = limits.concurrent_limit.clamp(1, 1_000) as u32;
    state.export_limits.put(org, state.now(), limit);
    if limit < 2 || limits.available_concurrent_limit < 2 {
        finish_quietly(state, org, &key, false).await;
        return Ok(SpareStart::Skipped("no_spare_slot"));
    }
    let now = state.now();
    match store
        .promote_export(org, &key, limit - 1, now, staleness(now, fresh_for))
        .await
        .map_err(unavailable)?
    {
        Promotion::Start => {}
        Promotion::Wait { .. } => {
            finish_quietly(state, org, &key, false).await;
            return Ok(SpareStart::Skipped("no_spare_slot"));
        }
        Promotion::Lost => return Ok(SpareStart::Skipped("busy")),
    }
    if !org_enabled(state, org).await {
        finish_quietly(state, org, &key, false).await;
        return Ok(SpareStart::Skipped("disabled"));
    }
    if !spend().await {
        finish_quietly(state, org, &key, false).await;
        return Ok(SpareStart::Skipped("budget_spent"));
    }
    match create().await {
        Ok(job_id) => {
            if record_job(state, org, target, &key, &job_id).await.is_err() {
                return Ok(SpareStart::Skipped("disabled"));
            }
            Ok(SpareStart::Started(Started {
                job_id,
                owner: true,
            }))
        }
        Err(e) => {
            finish_quietly(state, org, &key, false).await;
            if only_slots_are_busy(&e) {
                state.export_limits.forget(org);
                Ok(SpareStart::Skipped("no_spare_slot"))
            } else {
                Err(e)
            }
        }
    }
}

/// Without the database there is no coordination: start the export alone rather than fail, as a
/// single replica would.
async fn uncoordinated<C, Fut>(
    e: crate::store::StoreError,
    org: &OrgId,
    create: &C,
) -> Result<Started, ClariError>
where
    C: Fn() -> Fut,
    Fut: Future<Output = Result<JobId, ClariError>>,
{
    tracing::warn!(error = %e, org_id = %org, "export queue unavailable; starting the export uncoordinated");
    Ok(Started {
        job_id: create().await?,
        owner: false,
    })
}

/// `starting` → `running` with the Clari job's id, so other replicas follow it.
///
/// When the row is no longer `starting`, the kill switch closed it while Clari was creating the
/// job (after this replica's last look at the organisation): the kill never saw the job, so it
/// is cancelled here, with the key still in hand, and the export ends as abandoned.
async fn record_job(
    state: &AppState,
    org: &OrgId,
    target: &ClariTarget,
    key: &str,
    job_id: &JobId,
) -> Result<(), ClariError> {
    match state
        .store
        .record_export_job(org, key, job_id.as_str(), state.now())
        .await
    {
        Ok(true) => Ok(()),
        Ok(false) if !org_enabled(state, org).await => {
            if let Err(e) = state.clari.cancel_job(target, job_id).await {
                tracing::warn!(error = %e, org_id = %org, %job_id, "cancelling an export created during a disable failed");
            }
            Err(ClariError::Abandoned {
                job_id: Some(job_id.to_string()),
            })
        }
        Ok(false) => Ok(()),
        Err(e) => {
            tracing::warn!(error = %e, org_id = %org, %job_id, "recording the export job failed; other replicas may start their own");
            Ok(())
        }
    }
}

/// Records the outcome of an owned export.
pub async fn finish(state: &AppState, org: &OrgId, request: &str, started: &Started, ok: bool) {
    if started.owner {
        finish_quietly(state, org, &sha256_hex(request), ok).await;
    }
}

async fn finish_quietly(state: &AppState, org: &OrgId, key: &str, ok: bool) {
    if let Err(e) = state.store.finish_export(org, key, ok, state.now()).await {
        tracing::warn!(error = %e, org_id = %org, "recording the end of an export failed; its slot frees when the row goes stale");
    }
}
