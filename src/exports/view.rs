//! Export results shaped for reading: a forecast export with its lookups built once (values at
//! the latest week, quotas, the hierarchy indexed by node), and an activity window.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use super::kept::{Keeps, Kept};
use crate::clari::types::*;

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
    /// The tools' answers rendered from this export ([`super::kept`]).
    kept: Kept,
}

impl Keeps for Forecast {
    fn kept(&self) -> &Kept {
        &self.kept
    }
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
            kept: Kept::default(),
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

/// The activities of one window, filtered from a (possibly wider) export.
pub struct ActivityWindow {
    all: Arc<ActivityResults>,
    from_ms: i64,
    to_ms: i64,
}

impl ActivityWindow {
    /// The activities of `all` dated `from_ms..=to_ms` (epoch milliseconds).
    pub fn new(all: Arc<ActivityResults>, from_ms: i64, to_ms: i64) -> Self {
        Self {
            all,
            from_ms,
            to_ms,
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = &Activity> {
        self.all
            .activities
            .iter()
            .filter(|a| a.date >= self.from_ms && a.date <= self.to_ms)
    }
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
}
