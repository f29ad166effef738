//! What the tools read from Clari, shaped once: the organisation's Clari target (key decrypted only
//! when Clari must be called, dropped after), exports through one generic shared-export helper
//! (cache → single-flight → the organisation's queue → Clari), and a `Forecast` view whose
//! lookups are built once per cached export.
//!
//! Tools that need the same data share one export: one forecast export (all types, with history)
//! per forecast tab and quarter serves the forecast, its submissions, time periods and users; one
//! activity export of the last [`ACTIVITY_DAYS`] days serves opportunities, accounts and pipeline
//! changes for any window inside it.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use super::cache::{Availability, ExportCache, Progress};
use super::queue::{self, Waiting};
use crate::app::AppState;
use crate::clari::client::{ClariTarget, validate_forecast_id};
use crate::clari::types::*;
use crate::clari::{ClariClient, ClariError, ExportOutcome, WaitPolicy};
use crate::clock::rfc3339;
use crate::store::OrgId;

/// How long a background export may keep polling Clari before giving up.
const BACKGROUND_DEADLINE: Duration = Duration::from_secs(600);
/// The activity window exported once and shared by every activity question inside it.
pub const ACTIVITY_DAYS: i64 = 90;

/// The organisation's Clari base URL and key, decrypted for this call only.
pub async fn target(state: &AppState, org: &OrgId) -> Result<ClariTarget, ClariError> {
    let cred = state
        .store
        .clari_credential(org)
        .await
        .map_err(|e| {
            tracing::error!(error = %e, org_id = %org, "reading the Clari credential failed");
            ClariError::StoreUnavailable
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

/// One kind of Clari export: how to name it, start it, and finish it.
pub trait ExportKind: Send + Sync + 'static {
    type Output: Send + Sync + 'static;

    /// The cache and queue key; always starts with the organisation id.
    fn request_key(&self, org: &OrgId) -> String;
    fn cache(state: &AppState) -> &ExportCache<Self::Output>;
    fn create(
        &self,
        client: &ClariClient,
        target: &ClariTarget,
    ) -> impl Future<Output = Result<String, ClariError>> + Send;
    fn resume(
        &self,
        client: &ClariClient,
        target: &ClariTarget,
        job_id: &str,
        wait: WaitPolicy,
    ) -> impl Future<Output = Result<ExportOutcome<Self::Output>, ClariError>> + Send;
}

/// The export `kind` for the organisation: from the cache, or joined, or queued and started in
/// the background. Waits at most `wait` for it to be ready.
pub async fn shared_export<K: ExportKind>(
    state: &AppState,
    org: &OrgId,
    kind: K,
    wait: Duration,
) -> Result<Availability<K::Output>, ClariError> {
    let key = kind.request_key(org);
    let (task_state, task_org, request) = (state.clone(), org.clone(), key.clone());
    K::cache(state)
        .get(org, key, wait, move |tx| async move {
            let outcome = run_export(&task_state, &task_org, &request, &kind, &tx).await;
            let _ = tx.send(match outcome {
                Ok(v) => Progress::Done(Arc::new(v)),
                Err(e) => Progress::Failed(e),
            });
        })
        .await
}

async fn run_export<K: ExportKind>(
    state: &AppState,
    org: &OrgId,
    request: &str,
    kind: &K,
    tx: &tokio::sync::watch::Sender<Progress<K::Output>>,
) -> Result<K::Output, ClariError> {
    let target = target(state, org).await?;
    let client = &state.clari;
    let report = |w: Waiting| {
        let _ = tx.send(match w {
            Waiting::Queued {
                position,
                waiting_for,
            } => Progress::Queued {
                position,
                waiting_for,
            },
            Waiting::Starting => Progress::Running { job_id: None },
        });
    };
    let started = queue::start_or_follow(state, org, &target, request, report, || {
        kind.create(client, &target)
    })
    .await?;
    let _ = tx.send(Progress::Running {
        job_id: Some(started.job_id.clone()),
    });
    let policy = WaitPolicy {
        poll_interval: state.config.export_poll_interval,
        deadline: BACKGROUND_DEADLINE,
    };
    // The decrypted key lives as long as this wait; it ends early when the organisation is
    // disabled meanwhile (the key and the poll go with it).
    let outcome = tokio::select! {
        outcome = kind.resume(client, &target, &started.job_id, policy) => outcome,
        () = org_disabled(state, org) => Err(ClariError::MissingApiKey),
    };
    drop(target);
    let ok = matches!(outcome, Ok(ExportOutcome::Ready(_)));
    queue::finish(state, org, request, &started, ok).await;
    match outcome? {
        ExportOutcome::Ready(v) => Ok(v),
        ExportOutcome::Pending { job_id, status } => Err(ClariError::StillRunning {
            job_id,
            status: status.to_string(),
        }),
    }
}

/// Resolves once the organisation is disabled or gone (a failing check is not taken as either).
/// Checked every third poll of Clari.
async fn org_disabled(state: &AppState, org: &OrgId) {
    let every = state.config.export_poll_interval * 3;
    loop {
        tokio::time::sleep(every).await;
        match state.store.find_org(org.as_str()).await {
            Ok(Some(o)) if !o.disabled => {}
            Ok(_) => {
                tracing::info!(org_id = %org, "organisation disabled: abandoning its export");
                return;
            }
            Err(e) => tracing::warn!(error = %e, org_id = %org, "checking the organisation failed"),
        }
    }
}

// --- forecast ---------------------------------------------------------------------------------

/// One forecast tab for one quarter (`None`: the current one), with every type the tools read.
pub struct ForecastExport {
    pub forecast_id: String,
    pub time_period: Option<TimePeriod>,
}

impl ForecastExport {
    pub fn new(forecast_id: &str, time_period: Option<TimePeriod>) -> Result<Self, ClariError> {
        validate_forecast_id(forecast_id)?;
        Ok(Self {
            forecast_id: forecast_id.to_owned(),
            time_period,
        })
    }

    fn request(&self) -> ForecastExportRequest {
        ForecastExportRequest {
            time_period: self.time_period.clone(),
            types_to_export: vec![
                ExportType::Forecast,
                ExportType::Quota,
                ExportType::ForecastUpdated,
            ],
            include_historical: Some(true),
            ..Default::default()
        }
    }
}

impl ExportKind for ForecastExport {
    type Output = Forecast;

    fn request_key(&self, org: &OrgId) -> String {
        let period = self
            .time_period
            .as_ref()
            .map(|p| p.as_str().to_owned())
            .unwrap_or_else(|| "current".into());
        format!("{org}:forecast:{}:{period}", self.forecast_id)
    }

    fn cache(state: &AppState) -> &ExportCache<Forecast> {
        &state.forecasts
    }

    async fn create(
        &self,
        client: &ClariClient,
        target: &ClariTarget,
    ) -> Result<String, ClariError> {
        client
            .create_forecast_export(target, &self.forecast_id, &self.request())
            .await
    }

    async fn resume(
        &self,
        client: &ClariClient,
        target: &ClariTarget,
        job_id: &str,
        wait: WaitPolicy,
    ) -> Result<ExportOutcome<Forecast>, ClariError> {
        Ok(
            match client
                .resume_forecast_export(target, job_id, self.time_period.as_ref(), wait)
                .await?
            {
                ExportOutcome::Ready(r) => ExportOutcome::Ready(Forecast::new(r)),
                ExportOutcome::Pending { job_id, status } => {
                    ExportOutcome::Pending { job_id, status }
                }
            },
        )
    }
}

pub async fn forecast(
    state: &AppState,
    org: &OrgId,
    forecast_id: &str,
    time_period: Option<TimePeriod>,
    wait: Duration,
) -> Result<Availability<Forecast>, ClariError> {
    let kind = ForecastExport::new(forecast_id, time_period)?;
    shared_export(state, org, kind, wait).await
}

// --- activity ---------------------------------------------------------------------------------

/// The activity export of whole days `start..=end` (YYYY-MM-DD), all activity types.
pub struct ActivityExport {
    start: String,
    end: String,
}

fn day(t: i64) -> String {
    rfc3339(t).get(..10).unwrap_or_default().to_owned()
}

impl ActivityExport {
    /// The shared window of the last [`ACTIVITY_DAYS`] days when `since..until` lies inside it,
    /// else exactly the days asked for.
    pub fn covering(since: i64, until: i64, now: i64) -> Self {
        let (shared_start, shared_end) = (day(now - ACTIVITY_DAYS * 86_400), day(now));
        let (start, end) = (day(since), day(until));
        if start >= shared_start && end <= shared_end {
            Self {
                start: shared_start,
                end: shared_end,
            }
        } else {
            Self { start, end }
        }
    }

    fn request(&self) -> ActivityExportRequest {
        ActivityExportRequest {
            activity_types: ActivityType::ALL.to_vec(),
            start_date: format!("{}T00:00:00Z", self.start),
            end_date: format!("{}T23:59:59Z", self.end),
            export_format: ExportFormat::Json,
        }
    }
}

impl ExportKind for ActivityExport {
    type Output = ActivityResults;

    fn request_key(&self, org: &OrgId) -> String {
        format!("{org}:activity:{}:{}", self.start, self.end)
    }

    fn cache(state: &AppState) -> &ExportCache<ActivityResults> {
        &state.activities
    }

    async fn create(
        &self,
        client: &ClariClient,
        target: &ClariTarget,
    ) -> Result<String, ClariError> {
        client.create_activity_export(target, &self.request()).await
    }

    async fn resume(
        &self,
        client: &ClariClient,
        target: &ClariTarget,
        job_id: &str,
        wait: WaitPolicy,
    ) -> Result<ExportOutcome<ActivityResults>, ClariError> {
        client.resume_activity_export(target, job_id, wait).await
    }
}

/// Activities of the whole days from `since` to `until` (the window a tool asked for), from the
/// shared export when it covers them.
pub async fn activities(
    state: &AppState,
    org: &OrgId,
    since: i64,
    until: i64,
    wait: Duration,
) -> Result<Availability<ActivityWindow>, ClariError> {
    let kind = ActivityExport::covering(since, until, state.now());
    let got = shared_export(state, org, kind, wait).await?;
    let from_ms = (since - since.rem_euclid(86_400)) * 1000;
    let to_ms = (until - until.rem_euclid(86_400) + 86_400) * 1000 - 1;
    Ok(got.map(|all| {
        Arc::new(ActivityWindow {
            all,
            from_ms,
            to_ms,
        })
    }))
}

/// The activities of one window, filtered from a (possibly wider) export.
pub struct ActivityWindow {
    all: Arc<ActivityResults>,
    from_ms: i64,
    to_ms: i64,
}

impl ActivityWindow {
    pub fn iter(&self) -> impl Iterator<Item = &Activity> {
        self.all
            .activities
            .iter()
            .filter(|a| a.date >= self.from_ms && a.date <= self.to_ms)
    }
}

// --- the forecast view ------------------------------------------------------------------------

fn frame_index(id: &str) -> u32 {
    id.rsplit('_')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// Most users a hierarchy walk returns; a larger answer means a broken hierarchy.
const MAX_SUBTREE: usize = 100_000;

/// The hierarchy Clari returned is not a tree (a cycle, or a walk beyond any real size).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokenHierarchy {
    pub user_id: String,
}

/// A forecast export with lookups: values at the latest week, quotas, the hierarchy.
pub struct Forecast {
    pub results: ForecastResults,
    latest: HashMap<(String, String), f64>,
    /// (user, field, week index) → value, for week-over-week changes.
    by_week: HashMap<(String, String, u32), f64>,
    quota: HashMap<String, f64>,
    latest_frame: Option<String>,
    /// user id → index in `results.users` (first occurrence).
    by_user: HashMap<String, usize>,
    /// hierarchy id → indexes of the users whose parent it is.
    children: HashMap<String, Vec<usize>>,
    /// hierarchy id → index of the user at that node (first occurrence).
    by_node: HashMap<String, usize>,
}

impl Forecast {
    pub fn new(results: ForecastResults) -> Self {
        let latest_frame = results
            .entries
            .iter()
            .filter(|e| e.forecast_value.is_some())
            .filter_map(|e| e.time_frame_id.clone())
            .max_by_key(|id| frame_index(id));
        let mut latest = HashMap::new();
        let mut by_week = HashMap::new();
        let mut quota = HashMap::new();
        for e in &results.entries {
            if let Some(q) = e.quota_value {
                quota.insert(e.user_id.clone(), q);
            }
            if let (Some(v), Some(tf)) = (e.forecast_value, &e.time_frame_id) {
                by_week.insert((e.user_id.clone(), e.field_id.clone(), frame_index(tf)), v);
                if Some(tf) == latest_frame.as_ref() {
                    latest.insert((e.user_id.clone(), e.field_id.clone()), v);
                }
            }
        }
        let mut by_user = HashMap::new();
        let mut children: HashMap<String, Vec<usize>> = HashMap::new();
        let mut by_node = HashMap::new();
        for (i, u) in results.users.iter().enumerate() {
            by_user.entry(u.user_id.clone()).or_insert(i);
            if let Some(h) = &u.hierarchy_id {
                by_node.entry(h.clone()).or_insert(i);
            }
            if let Some(p) = &u.parent_hierarchy_id {
                children.entry(p.clone()).or_default().push(i);
            }
        }
        Self {
            results,
            latest,
            by_week,
            quota,
            latest_frame,
            by_user,
            children,
            by_node,
        }
    }

    pub fn value(&self, user: &str, field: &str) -> Option<f64> {
        self.latest
            .get(&(user.to_owned(), field.to_owned()))
            .copied()
    }

    /// The value of `field` for `user` in week `week` (1-based index of the quarter's weeks).
    pub fn value_in_week(&self, user: &str, field: &str, week: u32) -> Option<f64> {
        self.by_week
            .get(&(user.to_owned(), field.to_owned(), week))
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

    pub fn user(&self, user_id: &str) -> Option<&ForecastUser> {
        self.by_user.get(user_id).map(|&i| &self.results.users[i])
    }

    pub fn root(&self) -> Option<&ForecastUser> {
        self.results.users.iter().find(|u| {
            u.parent_hierarchy_id
                .as_deref()
                .is_none_or(|p| !self.by_node.contains_key(p))
        })
    }

    pub fn direct_reports(&self, user_id: &str) -> Vec<&ForecastUser> {
        let Some(h) = self.user(user_id).and_then(|u| u.hierarchy_id.as_deref()) else {
            return Vec::new();
        };
        self.children
            .get(h)
            .map(|kids| {
                kids.iter()
                    .map(|&i| &self.results.users[i])
                    .filter(|u| u.user_id != user_id)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The user and everyone below, each once, breadth first. A cycle (a manager below their own
    /// report) is a broken hierarchy, not an endless walk.
    pub fn subtree(&self, user_id: &str) -> Result<Vec<&ForecastUser>, BrokenHierarchy> {
        let Some(top) = self.user(user_id) else {
            return Ok(Vec::new());
        };
        let mut seen: HashSet<&str> = HashSet::from([top.user_id.as_str()]);
        let mut out = vec![top];
        let mut i = 0;
        while i < out.len() {
            for u in self.direct_reports(&out[i].user_id) {
                if u.user_id == top.user_id {
                    return Err(BrokenHierarchy {
                        user_id: u.user_id.clone(),
                    });
                }
                if seen.insert(u.user_id.as_str()) {
                    out.push(u);
                }
            }
            if out.len() > MAX_SUBTREE {
                return Err(BrokenHierarchy {
                    user_id: user_id.to_owned(),
                });
            }
            i += 1;
        }
        Ok(out)
    }

    pub fn manager_of(&self, u: &ForecastUser) -> Option<&ForecastUser> {
        let p = u.parent_hierarchy_id.as_deref()?;
        self.by_node.get(p).map(|&i| &self.results.users[i])
    }

    /// By user id, e-mail or name (case-insensitive).
    pub fn find_user(&self, q: &str) -> Option<&ForecastUser> {
        let q = q.trim();
        let lower = q.to_lowercase();
        self.user(q).or_else(|| {
            self.results.users.iter().find(|u| {
                u.email
                    .as_deref()
                    .is_some_and(|e| e.eq_ignore_ascii_case(q))
                    || u.name.as_deref().is_some_and(|n| n.to_lowercase() == lower)
            })
        })
    }

    pub fn name(&self, user_id: &str) -> Option<String> {
        self.user(user_id).and_then(|u| u.name.clone())
    }

    pub fn field_name<'a>(&'a self, field_id: &'a str) -> &'a str {
        self.results
            .fields
            .iter()
            .find(|f| f.field_id == field_id)
            .and_then(|f| f.field_name.as_deref())
            .unwrap_or(field_id)
    }
}

pub fn week_index(time_frame_id: &str) -> u32 {
    frame_index(time_frame_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(id: &str, h: &str, parent: Option<&str>) -> ForecastUser {
        serde_json::from_value(serde_json::json!({
            "userId": id, "name": id, "hierarchyId": h, "parentHierarchyId": parent,
        }))
        .unwrap()
    }

    #[test]
    fn a_cycle_in_the_hierarchy_is_reported_not_walked_forever() {
        let f = Forecast::new(ForecastResults {
            users: vec![
                user("a", "h1", Some("h3")),
                user("b", "h2", Some("h1")),
                user("c", "h3", Some("h2")),
            ],
            ..Default::default()
        });
        assert_eq!(
            f.subtree("a").unwrap_err(),
            BrokenHierarchy {
                user_id: "a".into()
            }
        );
    }

    #[test]
    fn a_user_at_two_nodes_is_listed_once() {
        let f = Forecast::new(ForecastResults {
            users: vec![
                user("ceo", "h0", None),
                user("vp", "h1", Some("h0")),
                user("rep", "h2", Some("h1")),
                user("rep", "h3", Some("h1")),
            ],
            ..Default::default()
        });
        let ids: Vec<&str> = f
            .subtree("ceo")
            .unwrap()
            .iter()
            .map(|u| u.user_id.as_str())
            .collect();
        assert_eq!(ids, ["ceo", "vp", "rep"]);
        assert_eq!(f.root().unwrap().user_id, "ceo");
    }

    #[test]
    fn the_shared_activity_window_serves_windows_inside_it() {
        let now = 1_800_000_000;
        let inside = ActivityExport::covering(now - 30 * 86_400, now, now);
        let shared = ActivityExport::covering(now - 7 * 86_400, now - 86_400, now);
        assert_eq!(
            (inside.start.as_str(), inside.end.as_str()),
            (shared.start.as_str(), shared.end.as_str())
        );
        let older = ActivityExport::covering(now - 200 * 86_400, now - 100 * 86_400, now);
        assert_eq!(older.start, day(now - 200 * 86_400));
        assert_eq!(older.end, day(now - 100 * 86_400));
    }
}
