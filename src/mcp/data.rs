//! What the tools read from Clari, shaped once: the organisation's Clari target (key decrypted per
//! call, dropped after), forecasts and activities through the single-flight cache, and a
//! `Forecast` view with the lookups the tools need.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use super::auth::AuthContext;
use super::cache::{Fetched, Progress};
use crate::app::AppState;
use crate::clari::client::{ClariTarget, validate_forecast_id};
use crate::clari::types::*;
use crate::clari::{ClariError, ExportOutcome, WaitPolicy};
use crate::clock::Clock;
use crate::clock::rfc3339;
use crate::crypto::sha256_hex;
use crate::store::{ExportClaim, OrgId, Store};

pub enum Got<T> {
    Ready(T),
    Running(Option<String>),
}

/// How long a background export may keep polling before giving up.
const BACKGROUND_DEADLINE: Duration = Duration::from_secs(600);

/// The organisation's Clari base URL and key, decrypted for this call only.
pub async fn target(state: &AppState, org: &OrgId) -> Result<ClariTarget, ClariError> {
    let cred = state
        .store
        .clari_credential(org)
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "reading the Clari credential failed");
            ClariError::Unavailable { status: 500 }
        })?
        .ok_or(ClariError::MissingApiKey)?;
    let key = state
        .vault
        .open_string(&cred.ciphertext, &cred.key_id)
        .map_err(|e| {
            tracing::error!(error = %e, org_id = %org, "the stored Clari key cannot be decrypted");
            ClariError::MissingApiKey
        })?;
    let base = cred
        .base_url
        .as_deref()
        .unwrap_or(&state.config.clari_base_url);
    ClariTarget::new(base, key)
}

/// A claim older than this without progress is taken over (its replica probably died).
const STALLED_AFTER: i64 = 900;

/// Starts the Clari job for `key`, or follows the one another replica started for the same
/// request (cross-replica single-flight through the `export_jobs` row). Returns the job id and
/// whether this replica owns the claim (and so must record the outcome).
async fn shared_job<F, Fut>(
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    fresh_for: i64,
    org: OrgId,
    key: &str,
    create: F,
) -> Result<(String, bool), ClariError>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<String, ClariError>>,
{
    let key = sha256_hex(key);
    let mut create = Some(create);
    // Up to ~30 s for another replica to record the job it is starting.
    for _ in 0..150 {
        let now = clock.now();
        match store
            .claim_export(&org, &key, now, now - STALLED_AFTER, now - fresh_for)
            .await
        {
            Ok(ExportClaim::Won) => {
                let created = (create.take().expect("create runs once"))().await;
                let now = clock.now();
                return match created {
                    Ok(job) => {
                        let _ = store.record_export_job(&org, &key, &job, now).await;
                        Ok((job, true))
                    }
                    Err(e) => {
                        let _ = store.finish_export(&org, &key, false, now).await;
                        Err(e)
                    }
                };
            }
            Ok(ExportClaim::Taken {
                clari_job_id: Some(job),
                ..
            }) => return Ok((job, false)),
            Ok(ExportClaim::Taken {
                clari_job_id: None, ..
            }) => tokio::time::sleep(Duration::from_millis(200)).await,
            Err(e) => {
                tracing::warn!(error = %e, "export claim failed; starting the export without coordination");
                break;
            }
        }
    }
    (create.take().expect("create runs once"))()
        .await
        .map(|job| (job, false))
}

async fn finish(
    store: &Arc<dyn Store>,
    clock: &Arc<dyn Clock>,
    org: &OrgId,
    key: &str,
    owner: bool,
    ok: bool,
) {
    if owner {
        let _ = store
            .finish_export(org, &sha256_hex(key), ok, clock.now())
            .await;
    }
}

fn background_wait(state: &AppState) -> WaitPolicy {
    WaitPolicy {
        poll_interval: state.config.export_poll_interval,
        deadline: BACKGROUND_DEADLINE,
    }
}

/// A forecast export for the caller's organisation, shared with concurrent identical requests.
pub async fn forecast(
    state: &AppState,
    ctx: &AuthContext,
    forecast_id: &str,
    req: ForecastExportRequest,
    wait: Duration,
) -> Result<Got<Forecast>, ClariError> {
    validate_forecast_id(forecast_id)?;
    let key = format!(
        "{}:forecast:{}:{}",
        ctx.org_id,
        forecast_id,
        serde_json::to_string(&req).expect("request serializes")
    );
    let target = target(state, &ctx.org_id).await?;
    let client = state.clari.clone();
    let policy = background_wait(state);
    let forecast_id = forecast_id.to_owned();
    let (store, clock, org) = (state.store.clone(), state.clock.clone(), ctx.org_id.clone());
    let fresh_for = state.config.export_cache_ttl.as_secs() as i64;
    let shared_key = key.clone();
    let fetched = state
        .forecasts
        .get(key, wait, move |tx| async move {
            let create = || client.create_forecast_export(&target, &forecast_id, &req);
            let started = shared_job(
                store.clone(),
                clock.clone(),
                fresh_for,
                org.clone(),
                &shared_key,
                create,
            )
            .await;
            let (job, owner) = match started {
                Ok(x) => x,
                Err(e) => {
                    let _ = tx.send(Progress::Failed(e));
                    return;
                }
            };
            let _ = tx.send(Progress::Pending {
                job_id: Some(job.clone()),
            });
            let outcome = client
                .resume_forecast_export(&target, &job, req.time_period.as_ref(), policy)
                .await;
            let ok = matches!(outcome, Ok(ExportOutcome::Ready(_)));
            finish(&store, &clock, &org, &shared_key, owner, ok).await;
            let _ = tx.send(match outcome {
                Ok(ExportOutcome::Ready(r)) => Progress::Done(Arc::new(r)),
                Ok(ExportOutcome::Pending { .. }) => Progress::Failed(ClariError::StillRunning {
                    job_id: job,
                    status: "STARTED".into(),
                }),
                Err(e) => Progress::Failed(e),
            });
        })
        .await?;
    Ok(match fetched {
        Fetched::Ready(r) => Got::Ready(Forecast::new(r)),
        Fetched::StillRunning { job_id } => Got::Running(job_id),
    })
}

/// The activity export of a date window (all activity types), shared like forecasts.
pub async fn activities(
    state: &AppState,
    ctx: &AuthContext,
    since: i64,
    until: i64,
    wait: Duration,
) -> Result<Got<Arc<ActivityResults>>, ClariError> {
    let day = |t: i64| rfc3339(t).get(..10).unwrap_or_default().to_owned();
    let req = ActivityExportRequest {
        activity_types: ActivityType::ALL.to_vec(),
        start_date: format!("{}T00:00:00Z", day(since)),
        end_date: format!("{}T23:59:59Z", day(until)),
        export_format: ExportFormat::Json,
    };
    let key = format!(
        "{}:activity:{}:{}",
        ctx.org_id, req.start_date, req.end_date
    );
    let target = target(state, &ctx.org_id).await?;
    let client = state.clari.clone();
    let policy = background_wait(state);
    let (store, clock, org) = (state.store.clone(), state.clock.clone(), ctx.org_id.clone());
    let fresh_for = state.config.export_cache_ttl.as_secs() as i64;
    let shared_key = key.clone();
    let fetched = state
        .activities
        .get(key, wait, move |tx| async move {
            let create = || client.create_activity_export(&target, &req);
            let started = shared_job(
                store.clone(),
                clock.clone(),
                fresh_for,
                org.clone(),
                &shared_key,
                create,
            )
            .await;
            let (job, owner) = match started {
                Ok(x) => x,
                Err(e) => {
                    let _ = tx.send(Progress::Failed(e));
                    return;
                }
            };
            let _ = tx.send(Progress::Pending {
                job_id: Some(job.clone()),
            });
            let outcome = client.resume_activity_export(&target, &job, policy).await;
            let ok = matches!(outcome, Ok(ExportOutcome::Ready(_)));
            finish(&store, &clock, &org, &shared_key, owner, ok).await;
            let _ = tx.send(match outcome {
                Ok(ExportOutcome::Ready(r)) => Progress::Done(Arc::new(r)),
                Ok(ExportOutcome::Pending { .. }) => Progress::Failed(ClariError::StillRunning {
                    job_id: job,
                    status: "STARTED".into(),
                }),
                Err(e) => Progress::Failed(e),
            });
        })
        .await?;
    Ok(match fetched {
        Fetched::Ready(r) => Got::Ready(r),
        Fetched::StillRunning { job_id } => Got::Running(job_id),
    })
}

fn frame_index(id: &str) -> u32 {
    id.rsplit('_')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// A forecast export with lookups: values at the latest week, quotas, and the hierarchy.
pub struct Forecast {
    pub results: Arc<ForecastResults>,
    latest: HashMap<(String, String), f64>,
    quota: HashMap<String, f64>,
    latest_frame: Option<String>,
}

impl Forecast {
    pub fn new(results: Arc<ForecastResults>) -> Self {
        let latest_frame = results
            .entries
            .iter()
            .filter(|e| e.forecast_value.is_some())
            .filter_map(|e| e.time_frame_id.clone())
            .max_by_key(|id| frame_index(id));
        let mut latest = HashMap::new();
        let mut quota = HashMap::new();
        for e in &results.entries {
            if let Some(q) = e.quota_value {
                quota.insert(e.user_id.clone(), q);
            }
            if let (Some(v), Some(tf)) = (e.forecast_value, &e.time_frame_id)
                && Some(tf) == latest_frame.as_ref()
            {
                latest.insert((e.user_id.clone(), e.field_id.clone()), v);
            }
        }
        Self {
            results,
            latest,
            quota,
            latest_frame,
        }
    }

    pub fn value(&self, user: &str, field: &str) -> Option<f64> {
        self.latest
            .get(&(user.to_owned(), field.to_owned()))
            .copied()
    }

    pub fn quota(&self, user: &str) -> Option<f64> {
        self.quota.get(user).copied()
    }

    pub fn currency(&self) -> Option<String> {
        self.results
            .entries
            .iter()
            .find_map(|e| e.currency.as_ref().and_then(|c| c.code.clone()))
    }

    pub fn period_id(&self) -> Option<String> {
        self.results
            .time_periods
            .first()
            .map(|p| p.time_period_id.clone())
    }

    /// (time frame id, start, end) of the latest week with values.
    pub fn week(&self) -> Option<(String, String, String)> {
        let id = self.latest_frame.as_ref()?;
        let tf = self
            .results
            .time_frames
            .iter()
            .find(|t| &t.time_frame_id == id);
        Some((
            id.clone(),
            tf.and_then(|t| t.start_date.clone()).unwrap_or_default(),
            tf.and_then(|t| t.end_date.clone()).unwrap_or_default(),
        ))
    }

    pub fn root(&self) -> Option<&ForecastUser> {
        let ids: std::collections::HashSet<&str> = self
            .results
            .users
            .iter()
            .filter_map(|u| u.hierarchy_id.as_deref())
            .collect();
        self.results.users.iter().find(|u| {
            u.parent_hierarchy_id
                .as_deref()
                .is_none_or(|p| !ids.contains(p))
        })
    }

    pub fn direct_reports(&self, user_id: &str) -> Vec<&ForecastUser> {
        let Some(h) = self
            .results
            .users
            .iter()
            .find(|u| u.user_id == user_id)
            .and_then(|u| u.hierarchy_id.as_deref())
        else {
            return Vec::new();
        };
        self.results
            .users
            .iter()
            .filter(|u| u.parent_hierarchy_id.as_deref() == Some(h) && u.user_id != user_id)
            .collect()
    }

    pub fn subtree(&self, user_id: &str) -> Vec<&ForecastUser> {
        let mut out: Vec<&ForecastUser> = self
            .results
            .users
            .iter()
            .filter(|u| u.user_id == user_id)
            .collect();
        let mut i = 0;
        while i < out.len() {
            let next = self.direct_reports(&out[i].user_id);
            out.extend(next);
            i += 1;
        }
        out
    }

    pub fn manager_of(&self, u: &ForecastUser) -> Option<&ForecastUser> {
        let p = u.parent_hierarchy_id.as_deref()?;
        self.results
            .users
            .iter()
            .find(|m| m.hierarchy_id.as_deref() == Some(p))
    }

    /// By user id, e-mail or name (case-insensitive).
    pub fn find_user(&self, q: &str) -> Option<&ForecastUser> {
        let q = q.trim();
        let lower = q.to_lowercase();
        self.results
            .users
            .iter()
            .find(|u| u.user_id == q)
            .or_else(|| {
                self.results.users.iter().find(|u| {
                    u.email
                        .as_deref()
                        .is_some_and(|e| e.eq_ignore_ascii_case(q))
                        || u.name.as_deref().is_some_and(|n| n.to_lowercase() == lower)
                })
            })
    }

    fn name(&self, user_id: &str) -> Option<String> {
        self.results
            .users
            .iter()
            .find(|u| u.user_id == user_id)
            .and_then(|u| u.name.clone())
    }

    /// Submitted changes (isUpdated) in a window, newest first, with the week-over-week change.
    pub fn submissions(
        &self,
        since_ms: i64,
        until_ms: i64,
        user: Option<&str>,
        field: Option<&str>,
    ) -> Vec<Value> {
        let mut by_key: HashMap<(&str, &str, u32), f64> = HashMap::new();
        for e in &self.results.entries {
            if let (Some(v), Some(tf)) = (e.forecast_value, &e.time_frame_id) {
                by_key.insert(
                    (e.user_id.as_str(), e.field_id.as_str(), frame_index(tf)),
                    v,
                );
            }
        }
        let field_names: HashMap<&str, &str> = self
            .results
            .fields
            .iter()
            .map(|f| {
                (
                    f.field_id.as_str(),
                    f.field_name.as_deref().unwrap_or(&f.field_id),
                )
            })
            .collect();
        let mut rows: Vec<(i64, Value)> = self
            .results
            .entries
            .iter()
            .filter(|e| e.is_updated == Some(true))
            .filter(|e| e.updated_on.is_some_and(|t| t >= since_ms && t <= until_ms))
            .filter(|e| user.is_none_or(|u| e.user_id == u))
            .filter(|e| field.is_none_or(|f| e.field_id == f))
            .map(|e| {
                let tf = e.time_frame_id.as_deref().map(frame_index).unwrap_or(0);
                let previous = (tf > 1).then(|| by_key.get(&(e.user_id.as_str(), e.field_id.as_str(), tf - 1)).copied()).flatten();
                let at = e.updated_on.unwrap_or(0);
                (at, json!({
                    "user_id": e.user_id, "user": self.name(&e.user_id),
                    "field": e.field_id, "field_name": field_names.get(e.field_id.as_str()),
                    "value": e.forecast_value, "previous_week_value": previous,
                    "change": match (e.forecast_value, previous) { (Some(v), Some(p)) => Some(v - p), _ => None },
                    "week": e.time_frame_id, "updated_on": rfc3339(at / 1000),
                    "updated_by": e.updated_by, "updated_by_name": e.updated_by.as_deref().and_then(|b| self.name(b)),
                }))
            })
            .collect();
        rows.sort_by_key(|r| std::cmp::Reverse(r.0));
        rows.into_iter().map(|(_, v)| v).collect()
    }
}
