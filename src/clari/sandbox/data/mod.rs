//! The sandbox's dataset: deterministic for a seed and the quarter of "now". Two organisations,
//! each with a forecast hierarchy (CEO → VPs → managers → reps), four fiscal quarters of weekly
//! values with submission history, ~300 opportunities with CRM scores and per-field trend history,
//! activities linking accounts and opportunities, and audit events.
//!
//! Only reps carry their own numbers; every manager's value is the sum of their team's, so answers
//! can be checked by adding up. Values are whole dollars, so sums are exact.

mod audit;
mod calendar;
mod deals;
mod forecast;
mod hierarchy;
mod names;

use time::{Date, OffsetDateTime};

pub use calendar::Period;

/// SplitMix64: small, fast, and the same everywhere.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed ^ 0x9E37_79B9_7F4A_7C15)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `[lo, hi)`.
    pub fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + (self.next_u64() % (hi - lo).max(1) as u64) as i64
    }
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.range(0, items.len() as i64) as usize]
    }
    pub fn hex(&mut self, n: usize) -> String {
        (0..n)
            .map(|_| char::from_digit((self.next_u64() % 16) as u32, 16).unwrap())
            .collect()
    }
    pub fn alnum(&mut self, n: usize) -> String {
        const A: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
        (0..n)
            .map(|_| A[self.range(0, A.len() as i64) as usize] as char)
            .collect()
    }
    pub fn uuid(&mut self) -> String {
        let h = self.hex(32);
        format!(
            "{}-{}-4{}-a{}-{}",
            &h[0..8],
            &h[8..12],
            &h[13..16],
            &h[17..20],
            &h[20..32]
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Ceo,
    Vp,
    Manager,
    Rep,
}

#[derive(Debug, Clone)]
pub struct SandboxUser {
    pub id: String,
    pub name: String,
    pub email: String,
    pub crm_id: String,
    pub hierarchy_id: String,
    pub hierarchy_name: String,
    pub scope_id: String,
    pub level: Level,
    pub parent: Option<usize>,
    pub children: Vec<usize>,
}

pub const FIELDS: [(&str, &str); 4] = [
    ("commit", "Commit"),
    ("best_case", "Best Case"),
    ("pipeline", "Pipeline"),
    ("closed_won", "Closed Won"),
];
/// Fields people submit (the others come from the CRM).
pub const SUBMITTED_FIELDS: [usize; 2] = [0, 1];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Update {
    pub is_updated: bool,
    /// Index of the user who made the last change, and when (epoch ms).
    pub by: Option<usize>,
    pub on_ms: Option<i64>,
}

/// One forecast tab for one quarter: a value and an update record per user, field and week.
#[derive(Debug, Clone)]
pub struct Grid {
    /// `values[user][field][week]`, rollups included.
    pub values: Vec<[Vec<f64>; 4]>,
    pub updates: Vec<[Vec<Update>; 4]>,
    /// Quota per user for the quarter (rollups included).
    pub quota: Vec<f64>,
    /// Manager adjustments on Commit for the latest week (not part of rollups).
    pub adjustment: Vec<f64>,
}

#[derive(Debug, Clone)]
pub struct ForecastTab {
    pub id: String,
    pub name: String,
    /// One grid per period, same order as `OrgData::periods`.
    pub grids: Vec<Grid>,
}

#[derive(Debug, Clone)]
pub struct Account {
    pub id: String,
    pub name: String,
    pub domain: String,
    pub owner: usize,
}

#[derive(Debug, Clone)]
pub struct Change {
    pub field: &'static str,
    pub old: serde_json::Value,
    pub new: serde_json::Value,
    pub at_ms: i64,
}

#[derive(Debug, Clone)]
pub struct Opp {
    pub id: String,
    pub name: String,
    pub account: usize,
    pub owner: usize,
    pub amount: f64,
    pub original_amount: f64,
    pub stage: &'static str,
    pub close_date: Date,
    pub original_close_date: Date,
    pub forecast_category: &'static str,
    pub score: f64,
    pub score_message: String,
    /// Oldest first.
    pub changes: Vec<Change>,
}

#[derive(Debug, Clone)]
pub struct ActivityRec {
    pub id: String,
    pub kind: &'static str,
    pub subject: String,
    pub at_ms: i64,
    pub owner: usize,
    pub account: usize,
    pub opps: Vec<usize>,
    pub contacts: Vec<(String, String)>,
}

#[derive(Debug, Clone)]
pub struct AuditRec {
    pub correlation_id: String,
    pub actor: usize,
    pub actor_type: &'static str,
    pub session_id: String,
    pub ip: String,
    pub session_type: &'static str,
    pub event: &'static str,
    pub params: serde_json::Value,
    pub at_ms: i64,
}

#[derive(Debug, Clone)]
pub struct SandboxKey {
    pub key: String,
    /// The user whose visibility the key carries.
    pub user: usize,
    pub label: &'static str,
}

#[derive(Debug, Clone)]
pub struct OrgData {
    pub name: String,
    pub clari_org_id: i64,
    pub domain: String,
    pub keys: Vec<SandboxKey>,
    pub users: Vec<SandboxUser>,
    pub periods: Vec<Period>,
    pub forecasts: Vec<ForecastTab>,
    pub accounts: Vec<Account>,
    pub opps: Vec<Opp>,
    pub activities: Vec<ActivityRec>,
    pub audit: Vec<AuditRec>,
}

impl OrgData {
    /// Index of the current quarter in `periods` (the last one).
    pub fn current_period(&self) -> usize {
        self.periods.len() - 1
    }

    pub fn period(&self, id: &str) -> Option<usize> {
        self.periods.iter().position(|p| p.id == id)
    }

    pub fn forecast(&self, id: &str) -> Option<usize> {
        self.forecasts.iter().position(|f| f.id == id)
    }

    pub fn user_by_scope(&self, scope: &str) -> Option<usize> {
        self.users.iter().position(|u| u.scope_id == scope)
    }

    /// `root` and everyone below it, parents before children.
    pub fn subtree(&self, root: usize) -> Vec<usize> {
        let mut out = vec![root];
        let mut i = 0;
        while i < out.len() {
            out.extend(self.users[out[i]].children.iter().copied());
            i += 1;
        }
        out
    }

    pub fn is_within(&self, user: usize, root: usize) -> bool {
        let mut cur = Some(user);
        while let Some(u) = cur {
            if u == root {
                return true;
            }
            cur = self.users[u].parent;
        }
        false
    }

    pub fn reps(&self) -> Vec<usize> {
        (0..self.users.len())
            .filter(|&u| self.users[u].level == Level::Rep)
            .collect()
    }
}

#[derive(Debug, Clone)]
pub struct Dataset {
    pub seed: u64,
    pub now: OffsetDateTime,
    pub orgs: Vec<OrgData>,
}

/// Rounds to a multiple of `step` (whole dollars stay whole, so sums are exact).
fn round_to(v: f64, step: f64) -> f64 {
    (v / step).round() * step
}

impl Dataset {
    pub fn generate(seed: u64, now: OffsetDateTime) -> Self {
        let specs = [
            ("Northwind Analytics", "northwind.example", 1001_i64),
            ("Globex Systems", "globex.example", 2001),
        ];
        let orgs = specs
            .iter()
            .enumerate()
            .map(|(i, (name, domain, base))| {
                generate_org(
                    seed.wrapping_add(i as u64 * 7919),
                    now,
                    name,
                    domain,
                    *base,
                    40_000 + i as i64,
                )
            })
            .collect();
        Self { seed, now, orgs }
    }

    /// Writes the forms of personal data that are hard to recognise into the first
    /// organisation, for the redaction tests: addresses in other scripts and obfuscated, phone
    /// numbers with a country code, a social security number with spaces, an address used as a
    /// JSON key and card numbers as JSON numbers (in audit event parameters).
    pub fn seed_hard_pii(&mut self) {
        let org = &mut self.orgs[0];
        let emails = [
            "josé.núñez@correo.example.es",
            "用户@例子.广告",
            "ava.king[at]northwind[dot]example",
            "ivy.kim (at) northwind (dot) example",
            "liam.tanaka＠northwind．example",
            "δοκιμή@παράδειγμα.δοκιμή",
        ];
        for (u, e) in org.users.iter_mut().skip(1).zip(emails) {
            u.email = e.to_owned();
        }
        let first = &mut org.opps[0];
        first.name = format!(
            "{} (call +44 20 7946 0958; SSN on file 078 05 1120)",
            first.name
        );
        first.score_message = format!("{} (buyer: +33 1 23 45 67 89)", first.score_message);
        for a in &mut org.audit {
            a.params = serde_json::json!({
                "ava.king@northwind.example": {"card": 4111111111111111_u64, "note": "+44 20 7946 0958"},
                "cards": [5555555555554444_u64, 378282246310005_u64],
            });
        }
    }

    /// The org and key index of an API key.
    pub fn find_key(&self, key: &str) -> Option<(usize, usize)> {
        self.orgs.iter().enumerate().find_map(|(o, org)| {
            org.keys
                .iter()
                .position(|k| crate::crypto::constant_time_eq(k.key.as_bytes(), key.as_bytes()))
                .map(|k| (o, k))
        })
    }
}

/// One organisation. The parts draw from one random stream in a fixed order (people, quarters,
/// forecast grids, deals, activities, audit events), so a seed always gives the same data.
fn generate_org(
    seed: u64,
    now: OffsetDateTime,
    name: &str,
    domain: &str,
    id_base: i64,
    clari_org_id: i64,
) -> OrgData {
    let mut rng = Rng::new(seed);
    let today = now.date();
    let users = hierarchy::people(&mut rng, domain, id_base);
    let reps: Vec<usize> = (0..users.len())
        .filter(|&u| users[u].level == Level::Rep)
        .collect();
    let periods = calendar::quarters(today);
    let forecasts = forecast::tabs(&mut rng, &users, &reps, &periods, now);
    let accounts = deals::accounts(&mut rng, &reps);
    let mut opps = deals::opportunities(&mut rng, &users, &reps, &accounts, &periods, now);
    let activities = deals::activities(&mut rng, &opps, &accounts, now);
    deals::scores(&mut rng, &mut opps, &activities, now);
    let audit = audit::events(&mut rng, &users, &forecasts[0], &periods, now);
    let keys = audit::keys(seed, &users);
    OrgData {
        name: name.into(),
        clari_org_id,
        domain: domain.into(),
        keys,
        users,
        periods,
        forecasts,
        accounts,
        opps,
        activities,
        audit,
    }
}

#[cfg(test)]
mod tests {
    use super::calendar::ms;
    use super::*;

    fn now() -> OffsetDateTime {
        time::macros::datetime!(2026-11-21 10:00 UTC)
    }

    #[test]
    fn fiscal_quarters_start_in_february() {
        let q = Period::containing(time::macros::date!(2026 - 11 - 21));
        assert_eq!(q.id, "2026_Q4");
        assert_eq!(
            (q.start.to_string(), q.end.to_string()),
            ("2026-11-01".into(), "2027-01-31".into())
        );
        let q1 = Period::containing(time::macros::date!(2027 - 01 - 15));
        assert_eq!(q1.id, "2026_Q4");
        assert_eq!(Period::of(2024, 1).start.to_string(), "2024-02-01");
        assert_eq!(Period::of(2024, 1).end.to_string(), "2024-04-30");
        assert_eq!(Period::of(2026, 1).previous().id, "2025_Q4");
        assert!(q.weeks.len() == 14 || q.weeks.len() == 13);
    }

    #[test]
    fn generation_is_deterministic_and_shaped_as_promised() {
        let a = Dataset::generate(7, now());
        let b = Dataset::generate(7, now());
        assert_eq!(a.orgs[0].keys[0].key, b.orgs[0].keys[0].key);
        assert_eq!(a.orgs[1].opps[17].id, b.orgs[1].opps[17].id);
        for org in &a.orgs {
            assert_eq!(org.users.len(), 40);
            assert_eq!(org.periods.len(), 4);
            assert_eq!(org.opps.len(), 300);
            assert!(org.audit.len() > 500);
            assert_ne!(org.keys[0].key, org.keys[1].key);
        }
        assert_ne!(a.orgs[0].keys[0].key, a.orgs[1].keys[0].key);
    }

    #[test]
    fn every_rollup_equals_the_sum_of_its_team() {
        let d = Dataset::generate(1, now());
        for org in &d.orgs {
            for tab in &org.forecasts {
                for (p, grid) in tab.grids.iter().enumerate() {
                    for (u, user) in org.users.iter().enumerate() {
                        if user.children.is_empty() {
                            continue;
                        }
                        for f in 0..4 {
                            for w in 0..org.periods[p].weeks.len() {
                                let sum: f64 =
                                    user.children.iter().map(|&c| grid.values[c][f][w]).sum();
                                assert_eq!(grid.values[u][f][w], sum);
                            }
                        }
                        let q: f64 = user.children.iter().map(|&c| grid.quota[c]).sum();
                        assert_eq!(grid.quota[u], q);
                    }
                }
            }
        }
    }

    #[test]
    fn some_deals_slipped_this_week() {
        let d = Dataset::generate(3, now());
        let week_ago = ms(now()) - 7 * 86_400_000;
        let slipped = d.orgs[0]
            .opps
            .iter()
            .filter(|o| {
                o.changes
                    .iter()
                    .any(|c| c.field == "opportunity.close_date" && c.at_ms >= week_ago)
            })
            .count();
        assert!(slipped >= 5, "{slipped}");
    }

    /// What every demo shows must be believable: on several dates, closed deals never change,
    /// a close date only moves later and from a day not yet past, an amount edit changes the
    /// amount, and risk messages say what the data says.
    #[test]
    fn the_deals_behave_as_deals_do() {
        for now in [
            time::macros::datetime!(2026-02-03 09:00 UTC),
            time::macros::datetime!(2026-07-15 16:30 UTC),
            time::macros::datetime!(2026-11-21 10:00 UTC),
            time::macros::datetime!(2026-12-05 12:00 UTC),
        ] {
            let d = Dataset::generate(11, now);
            let fortnight_ago = ms(now) - 14 * 86_400_000;
            for org in &d.orgs {
                for (i, o) in org.opps.iter().enumerate() {
                    let closed = o.stage.starts_with("Closed");
                    assert!(
                        !closed || o.changes.is_empty(),
                        "{} changed while closed",
                        o.id
                    );
                    assert_eq!(closed, o.close_date < now.date(), "{}", o.id);
                    for c in &o.changes {
                        assert!(c.at_ms <= ms(now));
                        match c.field {
                            "opportunity.close_date" => {
                                let (old, new) = (c.old.as_str().unwrap(), c.new.as_str().unwrap());
                                let moved_on = calendar::date_of_ms(c.at_ms).to_string();
                                assert!(new > old, "{} moved earlier: {old} -> {new}", o.id);
                                assert!(
                                    old >= moved_on.as_str(),
                                    "{} moved from the past: {old} on {moved_on}",
                                    o.id
                                );
                            }
                            "opportunity.amount" => assert_ne!(c.old, c.new, "{}", o.id),
                            _ => {}
                        }
                    }
                    let recent = org
                        .activities
                        .iter()
                        .any(|a| a.opps.contains(&i) && a.at_ms >= fortnight_ago);
                    let slips = o
                        .changes
                        .iter()
                        .filter(|c| c.field == "opportunity.close_date")
                        .count();
                    match o.score_message.as_str() {
                        "No activity in the last 14 days" => assert!(!recent, "{}", o.id),
                        "Opportunity is lost" => assert_eq!(o.stage, "Closed Lost"),
                        "Opportunity is won" => assert_eq!(o.stage, "Closed Won"),
                        "Amount has decreased" => assert!(o.amount < o.original_amount),
                        "Strong engagement with the buying group" => assert!(recent, "{}", o.id),
                        m => assert_eq!(m, format!("Close date has slipped {slips} times")),
                    }
                }
            }
        }
    }
}
