//! The sandbox's dataset: deterministic for a seed and the quarter of "now". Two organisations,
//! each with a forecast hierarchy (CEO → VPs → managers → reps), four fiscal quarters of weekly
//! values with submission history, ~300 opportunities with CRM scores and per-field trend history,
//! activities linking accounts and opportunities, and audit events.
//!
//! Only reps carry their own numbers; every manager's value is the sum of their team's, so answers
//! can be checked by adding up. Values are whole dollars, so sums are exact.

use time::{Date, Duration as Days, Month, OffsetDateTime, Weekday};

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

/// A fiscal quarter. FY N runs from 1 February of year N: Q1 Feb–Apr, Q2 May–Jul, Q3 Aug–Oct,
/// Q4 Nov–Jan.
#[derive(Debug, Clone)]
pub struct Period {
    pub id: String,
    pub year: i32,
    pub quarter: u8,
    pub start: Date,
    pub end: Date,
    pub crm_id: String,
    /// Weekly time frames `(start, end)`; ids `tf_1`… repeat in every quarter.
    pub weeks: Vec<(Date, Date)>,
    /// How many weeks have data (all for past quarters, up to this week for the current one).
    pub weeks_elapsed: usize,
}

impl Period {
    pub fn of(year: i32, quarter: u8) -> Self {
        let start_month = 2 + 3 * (quarter as i32 - 1); // 2, 5, 8, 11
        let start =
            Date::from_calendar_date(year, Month::try_from(start_month as u8).unwrap(), 1).unwrap();
        let (ny, nm) = if start_month + 3 > 12 {
            (year + 1, start_month + 3 - 12)
        } else {
            (year, start_month + 3)
        };
        let end = Date::from_calendar_date(ny, Month::try_from(nm as u8).unwrap(), 1).unwrap()
            - Days::days(1);
        let mut weeks = Vec::new();
        let mut w = start;
        while w <= end {
            let we = (w + Days::days(6)).min(end);
            weeks.push((w, we));
            w += Days::days(7);
        }
        Self {
            id: format!("{year}_Q{quarter}"),
            year,
            quarter,
            start,
            end,
            crm_id: format!("0264x0000{year}{quarter}AAA"),
            weeks_elapsed: weeks.len(),
            weeks,
        }
    }

    pub fn containing(d: Date) -> Self {
        let m = d.month() as i32;
        let (year, q) = if m == 1 {
            (d.year() - 1, 4)
        } else {
            (d.year(), ((m - 2) / 3 + 1) as u8)
        };
        Self::of(year, q)
    }

    pub fn previous(&self) -> Self {
        if self.quarter == 1 {
            Self::of(self.year - 1, 4)
        } else {
            Self::of(self.year, self.quarter - 1)
        }
    }

    pub fn label(&self) -> String {
        format!("Q{} FY{}", self.quarter, self.year)
    }

    pub fn time_frame_id(week: usize) -> String {
        format!("tf_{}", week + 1)
    }
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

const FIRST: &[&str] = &[
    "Ava", "Liam", "Maya", "Noah", "Zoe", "Ethan", "Iris", "Owen", "Leah", "Caleb", "Nora",
    "Mason", "Ruby", "Lucas", "Hazel", "Elijah", "Clara", "Miles", "Stella", "Julian", "Violet",
    "Ezra", "Aria", "Henry", "Luna", "Felix", "Ivy", "Theo", "Naomi", "Jonah", "Sadie", "Asher",
    "Eliza", "Silas", "Quinn", "Rowan", "Tessa", "Declan", "Priya", "Mateo",
];
const LAST: &[&str] = &[
    "Turner",
    "Patel",
    "Nguyen",
    "Garcia",
    "Kim",
    "Okafor",
    "Schmidt",
    "Rossi",
    "Haddad",
    "Larsen",
    "Costa",
    "Ibrahim",
    "Novak",
    "Silva",
    "Moreau",
    "Tanaka",
    "Walsh",
    "Fischer",
    "Reyes",
    "Bennett",
    "Sato",
    "Kowalski",
    "Mensah",
    "Duarte",
    "Lindqvist",
    "Abbott",
    "Chen",
    "Foster",
    "Hughes",
    "Vargas",
];
const COMPANY_A: &[&str] = &[
    "Acme", "Blue", "Cedar", "Delta", "Ember", "Falcon", "Granite", "Harbor", "Iron", "Juniper",
    "Keystone", "Lumen", "Maple", "Nimbus", "Orbit", "Pioneer", "Quartz", "River", "Summit",
    "Tidal", "Vertex", "Willow",
];
const COMPANY_B: &[&str] = &[
    "Labs",
    "Systems",
    "Logistics",
    "Health",
    "Foods",
    "Capital",
    "Energy",
    "Media",
    "Retail",
    "Robotics",
    "Networks",
    "Bank",
    "Pharma",
    "Motors",
    "Studios",
];
const PRODUCTS: &[&str] = &[
    "Platform",
    "Analytics",
    "Security Add-on",
    "Enterprise Suite",
    "Data Cloud",
    "Premium Support",
];
const DEAL_TYPES: &[&str] = &["New Business", "Expansion", "Renewal", "Upsell"];
const REGIONS: &[&str] = &["East", "West", "Central"];
pub const STAGES: &[&str] = &[
    "Prospecting",
    "Qualification",
    "Discovery",
    "Proposal",
    "Negotiation",
    "Closed Won",
    "Closed Lost",
];
const ACTIVITY_KINDS: &[&str] = &[
    "MEETING",
    "EMAIL_SENT",
    "EMAIL_RECEIVED",
    "ATTACHMENT_SENT",
    "ATTACHMENT_RECEIVED",
];

fn ms(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

fn at(d: Date, hour: i64, minute: i64) -> OffsetDateTime {
    d.midnight().assume_utc() + Days::hours(hour) + Days::minutes(minute)
}

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

    // --- hierarchy: 1 CEO, 3 VPs, 2 managers each, 5 reps each = 40 users -------------------
    let mut users: Vec<SandboxUser> = Vec::with_capacity(40);
    let mut used_names = std::collections::HashSet::new();
    let mut person = |rng: &mut Rng| loop {
        let n = format!("{} {}", rng.pick(FIRST), rng.pick(LAST));
        if used_names.insert(n.clone()) {
            return n;
        }
    };
    let mut add = |users: &mut Vec<SandboxUser>,
                   rng: &mut Rng,
                   level: Level,
                   title: String,
                   parent: Option<usize>| {
        let idx = users.len();
        let full = person(rng);
        let email = format!("{}@{domain}", full.to_lowercase().replace(' ', "."));
        let scope_kind = if level == Level::Rep { "REP" } else { "MGR" };
        users.push(SandboxUser {
            id: (id_base + idx as i64).to_string(),
            name: full,
            email,
            crm_id: format!("0055e00000{}", rng.alnum(8)),
            hierarchy_id: format!("h{}", id_base + idx as i64),
            hierarchy_name: title,
            scope_id: format!("{}::{scope_kind}", id_base + idx as i64),
            level,
            parent,
            children: Vec::new(),
        });
        if let Some(p) = parent {
            users[p].children.push(idx);
        }
        idx
    };
    let ceo = add(&mut users, &mut rng, Level::Ceo, "CEO".into(), None);
    for region in REGIONS {
        let vp = add(
            &mut users,
            &mut rng,
            Level::Vp,
            format!("VP Sales - {region}"),
            Some(ceo),
        );
        for team in 1..=2 {
            let mgr = add(
                &mut users,
                &mut rng,
                Level::Manager,
                format!("Sales Manager - {region} {team}"),
                Some(vp),
            );
            for seat in 1..=5 {
                add(
                    &mut users,
                    &mut rng,
                    Level::Rep,
                    format!("Account Executive - {region} {team}.{seat}"),
                    Some(mgr),
                );
            }
        }
    }
    let reps: Vec<usize> = (0..users.len())
        .filter(|&u| users[u].level == Level::Rep)
        .collect();
    let first_manager = users
        .iter()
        .position(|u| u.level == Level::Manager)
        .unwrap();

    // --- four quarters: three complete and the current one ---------------------------------
    let mut current = Period::containing(today);
    current.weeks_elapsed =
        (((today - current.start).whole_days() / 7) as usize + 1).min(current.weeks.len());
    let mut periods = vec![current.clone()];
    for _ in 0..3 {
        let p = periods.last().unwrap().previous();
        periods.push(p);
    }
    periods.reverse();

    // --- forecast grids -------------------------------------------------------------------------
    let tabs = [
        ("forecast", "Net New Bookings", 1.0),
        ("renewals", "Renewals", 0.45),
    ];
    let mut forecasts = Vec::new();
    for (tab, tab_name, scale) in tabs {
        let mut grids = Vec::new();
        for period in &periods {
            grids.push(generate_grid(&mut rng, &users, &reps, period, scale, now));
        }
        forecasts.push(ForecastTab {
            id: tab.into(),
            name: tab_name.into(),
            grids,
        });
    }

    // --- accounts and opportunities ---------------------------------------------------------
    let mut accounts = Vec::new();
    let mut account_names = std::collections::HashSet::new();
    while accounts.len() < 80 {
        let n = format!("{} {}", rng.pick(COMPANY_A), rng.pick(COMPANY_B));
        if !account_names.insert(n.clone()) {
            continue;
        }
        let dom = format!("{}.example", n.to_lowercase().replace(' ', ""));
        accounts.push(Account {
            id: format!("0015e00000{}", rng.alnum(8)),
            name: n,
            domain: dom,
            owner: *rng.pick(&reps),
        });
    }
    let now_ms = ms(now);
    let mut opps = Vec::new();
    for i in 0..300 {
        let account = rng.range(0, accounts.len() as i64) as usize;
        let owner = if rng.chance(0.85) {
            accounts[account].owner
        } else {
            *rng.pick(&reps)
        };
        let period = &periods[rng.range(0, periods.len() as i64) as usize];
        let close =
            period.start + Days::days(rng.range(0, (period.end - period.start).whole_days() + 1));
        let past = close < today;
        let stage: &'static str = if past {
            if rng.chance(0.55) {
                "Closed Won"
            } else {
                "Closed Lost"
            }
        } else {
            STAGES[rng.range(0, 5) as usize]
        };
        let amount = round_to(rng.range(8_000, 260_000) as f64, 500.0);
        let category = match stage {
            "Closed Won" => "Closed",
            "Closed Lost" => "Omitted",
            "Negotiation" => "Commit",
            "Proposal" => "Best Case",
            _ => "Pipeline",
        };
        let mut opp = Opp {
            id: format!("0065e00000{}", rng.alnum(8)),
            name: format!(
                "{} - {} {}",
                accounts[account].name,
                rng.pick(PRODUCTS),
                rng.pick(DEAL_TYPES)
            ),
            account,
            owner,
            amount,
            original_amount: amount,
            stage,
            close_date: close,
            original_close_date: close,
            forecast_category: category,
            score: 0.0,
            score_message: String::new(),
            changes: Vec::new(),
        };
        generate_changes(&mut rng, &mut opp, &users, &reps, now, i);
        let slips = opp
            .changes
            .iter()
            .filter(|c| c.field == "opportunity.close_date")
            .count();
        let (score, message) = match opp.stage {
            "Closed Lost" => (0.0, "Opportunity is lost".to_owned()),
            "Closed Won" => (100.0, "Opportunity is won".to_owned()),
            _ if slips >= 2 => (
                rng.range(8, 35) as f64,
                format!("Close date has slipped {slips} times"),
            ),
            _ if rng.chance(0.25) => (
                rng.range(20, 45) as f64,
                "No activity in the last 14 days".to_owned(),
            ),
            _ if opp.amount < opp.original_amount => {
                (rng.range(35, 60) as f64, "Amount has decreased".to_owned())
            }
            _ => (
                rng.range(55, 96) as f64,
                "Strong engagement with the buying group".to_owned(),
            ),
        };
        opp.score = score;
        opp.score_message = message;
        opps.push(opp);
    }

    // --- activities over the last 120 days ------------------------------------------------------
    let mut activities = Vec::new();
    for _ in 0..600 {
        let opp_idx = rng.range(0, opps.len() as i64) as usize;
        let account = opps[opp_idx].account;
        let linked = if rng.chance(0.7) {
            vec![opp_idx]
        } else {
            Vec::new()
        };
        let kind = *rng.pick(ACTIVITY_KINDS);
        let when = now - Days::minutes(rng.range(30, 120 * 24 * 60));
        let contacts = (0..rng.range(1, 4))
            .map(|_| {
                let n = format!("{} {}", rng.pick(FIRST), rng.pick(LAST));
                let e = format!(
                    "{}@{}",
                    n.to_lowercase().replace(' ', "."),
                    accounts[account].domain
                );
                (n, e)
            })
            .collect();
        let subject = match kind {
            "MEETING" => format!(
                "{} sync: {}",
                accounts[account].name,
                rng.pick(&["discovery", "demo", "pricing", "security review", "kickoff"])
            ),
            "EMAIL_SENT" | "EMAIL_RECEIVED" => format!("Re: {} proposal", accounts[account].name),
            _ => format!(
                "{} - {}.pdf",
                accounts[account].name,
                rng.pick(&["Order Form", "Security Questionnaire", "MSA", "Pricing"])
            ),
        };
        activities.push(ActivityRec {
            id: rng.hex(32),
            kind,
            subject,
            at_ms: ms(when),
            owner: opps[opp_idx].owner,
            account,
            opps: linked,
            contacts,
        });
    }
    activities.sort_by_key(|a| a.at_ms);

    // --- audit events: 35 days generated, 30 retained ------------------------------------------
    let mut audit = Vec::new();
    let tab0 = &forecasts[0];
    let cur = periods.len() - 1;
    // Forecast submissions mirror the submission history of the current and previous quarter.
    for p in [cur - 1, cur] {
        let grid = &tab0.grids[p];
        for (u, per_field) in grid.updates.iter().enumerate() {
            for &f in &SUBMITTED_FIELDS {
                for (w, upd) in per_field[f]
                    .iter()
                    .enumerate()
                    .take(periods[p].weeks_elapsed)
                {
                    if !upd.is_updated {
                        continue;
                    }
                    let (Some(by), Some(on)) = (upd.by, upd.on_ms) else {
                        continue;
                    };
                    if by != u || on < now_ms - 35 * 86_400_000 || on > now_ms {
                        continue;
                    }
                    audit.push(AuditRec {
                        correlation_id: rng.uuid(),
                        actor: u,
                        actor_type: "USER",
                        session_id: rng.uuid(),
                        ip: format!("10.{}.{}.{}", rng.range(0, 255), rng.range(0, 255), rng.range(1, 255)),
                        session_type: "WEB",
                        event: "forecast.submitted",
                        params: serde_json::json!({
                            "forecastId": tab0.id, "fieldId": FIELDS[f].0, "timePeriodId": periods[p].id,
                            "timeFrameId": Period::time_frame_id(w), "value": grid.values[u][f][w],
                        }),
                        at_ms: on,
                    });
                }
            }
        }
    }
    let kinds: &[(&'static str, &'static str, f64)] = &[
        ("user.login", "USER", 0.8),
        ("forecast.viewed", "USER", 0.6),
        ("user.logout", "USER", 0.3),
        ("api.accessed", "USER", 0.15),
        ("export.created", "JOB", 0.05),
        ("settings.updated", "USER", 0.02),
    ];
    for day in 0..35 {
        let date = today - Days::days(day);
        if matches!(date.weekday(), Weekday::Saturday | Weekday::Sunday) {
            continue;
        }
        for u in 0..users.len() {
            for (event, actor_type, p) in kinds {
                if !rng.chance(*p) {
                    continue;
                }
                let t = at(date, rng.range(7, 19), rng.range(0, 60));
                if ms(t) > now_ms {
                    continue;
                }
                let session_type = *rng.pick(&["WEB", "WEB", "WEB", "IOS", "ANDROID"]);
                let params = match *event {
                    "forecast.viewed" => serde_json::json!({"forecastId": "forecast"}),
                    "export.created" => serde_json::json!({"module": "FORECAST"}),
                    "settings.updated" => serde_json::json!({"setting": "notifications"}),
                    _ => serde_json::json!({}),
                };
                audit.push(AuditRec {
                    correlation_id: rng.uuid(),
                    actor: u,
                    actor_type,
                    session_id: rng.uuid(),
                    ip: format!(
                        "10.{}.{}.{}",
                        rng.range(0, 255),
                        rng.range(0, 255),
                        rng.range(1, 255)
                    ),
                    session_type,
                    event,
                    params,
                    at_ms: ms(t),
                });
            }
        }
    }
    audit.sort_by(|a, b| {
        a.at_ms
            .cmp(&b.at_ms)
            .then_with(|| a.correlation_id.cmp(&b.correlation_id))
    });

    // Keys depend only on the seed, so `sandbox --describe` prints the same keys every time.
    let mut key_rng = Rng::new(seed ^ 0x005E_ED0F_4B1D);
    let keys = vec![
        SandboxKey {
            key: format!("sbx_{}", key_rng.hex(32)),
            user: ceo,
            label: "admin",
        },
        SandboxKey {
            key: format!("sbx_{}", key_rng.hex(32)),
            user: first_manager,
            label: "manager",
        },
    ];

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

/// Monday of the week (or the week's first day when the week starts after Monday).
fn submission_day(week: (Date, Date)) -> Date {
    let mut d = week.0;
    while d <= week.1 {
        if d.weekday() == Weekday::Monday {
            return d;
        }
        d += Days::days(1);
    }
    week.0
}

// Rows are summed from other rows of the same matrix, so indices are clearer than iterators.
#[allow(clippy::needless_range_loop)]
fn generate_grid(
    rng: &mut Rng,
    users: &[SandboxUser],
    reps: &[usize],
    period: &Period,
    scale: f64,
    now: OffsetDateTime,
) -> Grid {
    let n = users.len();
    let weeks = period.weeks.len();
    let empty = || {
        [
            vec![0.0; weeks],
            vec![0.0; weeks],
            vec![0.0; weeks],
            vec![0.0; weeks],
        ]
    };
    let no_update = Update {
        is_updated: false,
        by: None,
        on_ms: None,
    };
    let mut values: Vec<[Vec<f64>; 4]> = (0..n).map(|_| empty()).collect();
    let mut updates: Vec<[Vec<Update>; 4]> = (0..n)
        .map(|_| {
            [
                vec![no_update; weeks],
                vec![no_update; weeks],
                vec![no_update; weeks],
                vec![no_update; weeks],
            ]
        })
        .collect();
    let mut quota = vec![0.0; n];
    let now_ms = ms(now);

    for &r in reps {
        let q = round_to(rng.range(150_000, 450_000) as f64 * scale, 5_000.0);
        quota[r] = q;
        let attain = 0.6 + rng.unit() * 0.7;
        let target = q * attain;
        let upside = 0.1 + rng.unit() * 0.25;
        let pipe = 1.5 + rng.unit() * 1.5;
        let mut last: Option<Update> = None;
        for w in 0..weeks {
            let t = (w + 1) as f64 / weeks as f64;
            let closed = round_to(target * t.powf(1.5), 100.0);
            let call = round_to(
                target * (0.78 + 0.22 * t) + (rng.unit() - 0.5) * 0.06 * q,
                100.0,
            )
            .max(closed);
            let changed = w == 0 || rng.chance(0.6);
            let (commit, best) = if changed || w == 0 {
                (call, round_to(call + q * upside * (1.0 - 0.5 * t), 100.0))
            } else {
                (
                    values[r][0][w - 1].max(closed),
                    values[r][1][w - 1].max(closed),
                )
            };
            values[r][0][w] = commit;
            values[r][1][w] = best.max(commit);
            values[r][2][w] = round_to(q * pipe * (1.0 - 0.6 * t), 100.0);
            values[r][3][w] = closed;
            let day = submission_day(period.weeks[w]);
            let when = ms(at(day, rng.range(8, 12), rng.range(0, 60)));
            let upd = if changed && when <= now_ms {
                let u = Update {
                    is_updated: true,
                    by: Some(r),
                    on_ms: Some(when),
                };
                last = Some(u);
                u
            } else {
                Update {
                    is_updated: false,
                    ..last.unwrap_or(no_update)
                }
            };
            updates[r][0][w] = upd;
            updates[r][1][w] = upd;
        }
    }
    // Rollups: every manager is the sum of the team, deepest first.
    let mut order: Vec<usize> = (0..n).filter(|&u| users[u].level != Level::Rep).collect();
    order.sort_by_key(|&u| std::cmp::Reverse(depth(users, u)));
    for &m in &order {
        for f in 0..4 {
            for w in 0..weeks {
                values[m][f][w] = users[m].children.iter().map(|&c| values[c][f][w]).sum();
            }
        }
        quota[m] = users[m].children.iter().map(|&c| quota[c]).sum();
        for f in SUBMITTED_FIELDS {
            for w in 0..weeks {
                let child_updates: Vec<Update> = users[m]
                    .children
                    .iter()
                    .map(|&c| updates[c][f][w])
                    .collect();
                let latest = child_updates.iter().filter_map(|u| u.on_ms).max();
                let any = child_updates.iter().any(|u| u.is_updated);
                updates[m][f][w] = match latest {
                    // The manager submits the rolled-up call a few hours after the team.
                    Some(t) if any && t + 3 * 3_600_000 <= now_ms => Update {
                        is_updated: true,
                        by: Some(m),
                        on_ms: Some(t + 3 * 3_600_000),
                    },
                    Some(t) => Update {
                        is_updated: false,
                        by: Some(m),
                        on_ms: Some(t),
                    },
                    None => no_update,
                };
            }
        }
    }
    let adjustment = (0..n)
        .map(|u| {
            if users[u].level == Level::Rep {
                0.0
            } else {
                round_to((rng.unit() - 0.5) * 0.04 * quota[u], 100.0)
            }
        })
        .collect();
    Grid {
        values,
        updates,
        quota,
        adjustment,
    }
}

fn depth(users: &[SandboxUser], mut u: usize) -> usize {
    let mut d = 0;
    while let Some(p) = users[u].parent {
        d += 1;
        u = p;
    }
    d
}

fn generate_changes(
    rng: &mut Rng,
    opp: &mut Opp,
    users: &[SandboxUser],
    reps: &[usize],
    now: OffsetDateTime,
    i: usize,
) {
    let day_ms = 86_400_000;
    let now_ms = ms(now);
    // Every tenth opportunity slips its close date within the last week, so "what slipped this
    // week" always has answers.
    let n_changes = rng.range(0, 5) as usize + usize::from(i.is_multiple_of(10));
    let mut times: Vec<i64> = (0..n_changes)
        .map(|_| now_ms - rng.range(1, 56) * day_ms - rng.range(0, day_ms))
        .collect();
    if i.is_multiple_of(10) {
        times.push(now_ms - rng.range(1, 6) * day_ms - rng.range(0, day_ms / 2));
    }
    times.sort_unstable();
    let open = !opp.stage.starts_with("Closed");
    let mut amount = opp.amount;
    let mut close = opp.close_date;
    let mut stage_idx = STAGES.iter().position(|s| *s == opp.stage).unwrap_or(0);
    let mut owner = opp.owner;
    // Walk backwards from today's values to reconstruct history, newest change first.
    let mut changes = Vec::new();
    for (k, &t) in times.iter().enumerate().rev() {
        let recent_slip = i.is_multiple_of(10) && k == times.len() - 1;
        let kind = if recent_slip && open {
            1
        } else {
            rng.range(0, 4)
        };
        match kind {
            0 => {
                let old = round_to(amount * (0.8 + rng.unit() * 0.4), 500.0);
                changes.push(Change {
                    field: "opportunity.amount",
                    old: old.into(),
                    new: amount.into(),
                    at_ms: t,
                });
                amount = old;
            }
            1 => {
                let old = close - Days::days(rng.range(7, 35));
                changes.push(Change {
                    field: "opportunity.close_date",
                    old: old.to_string().into(),
                    new: close.to_string().into(),
                    at_ms: t,
                });
                close = old;
            }
            2 if stage_idx > 0 && stage_idx < 5 => {
                let old = stage_idx - 1;
                changes.push(Change {
                    field: "opportunity.stage",
                    old: STAGES[old].into(),
                    new: STAGES[stage_idx].into(),
                    at_ms: t,
                });
                stage_idx = old;
            }
            _ => {
                let old = *rng.pick(reps);
                if old != owner {
                    changes.push(Change {
                        field: "opportunity.owner",
                        old: users[old].name.clone().into(),
                        new: users[owner].name.clone().into(),
                        at_ms: t,
                    });
                    owner = old;
                }
            }
        }
    }
    changes.reverse();
    opp.original_amount = amount;
    opp.original_close_date = close;
    opp.changes = changes;
}

#[cfg(test)]
mod tests {
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
}
