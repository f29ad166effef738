//! Ground truth for the questions, read the way any Clari client reads it: over the sandbox's
//! HTTP API with the organisation's own key (exports, `/opportunity`, `/audit/events`), never
//! from the simulator's memory and never through this server's code.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde_json::{Value, json};
use time::format_description::well_known::Rfc3339;
use time::{Date, OffsetDateTime};

use super::McpEnv;
use crate::helpers::eventually;

/// Days of activity the deal tools cover.
const ACTIVITY_DAYS: i64 = 90;

/// One person in the forecast hierarchy.
#[derive(Debug, Clone)]
pub struct Person {
    pub id: String,
    pub name: String,
    pub email: String,
    pub crm_id: String,
    pub hierarchy_id: String,
    pub parent_hierarchy_id: Option<String>,
}

/// One deal as `/opportunity` and the activity export describe it.
#[derive(Debug, Clone)]
pub struct Deal {
    pub id: String,
    pub stage: String,
    pub amount: f64,
    pub close_date: Date,
    pub forecast_category: String,
    pub owner_email: String,
    pub account: String,
    pub account_owner: String,
    pub score: f64,
    pub message: String,
    /// When each close-date change was recorded (ms).
    pub close_date_moves: Vec<i64>,
}

impl Deal {
    pub fn open(&self) -> bool {
        !self.stage.starts_with("Closed")
    }
}

/// One forecast value of one person, field and week.
#[derive(Debug, Clone, Default)]
pub struct Cell {
    pub value: Option<f64>,
    pub updated: bool,
    pub updated_by: Option<String>,
    pub updated_on: Option<i64>,
}

/// A forecast export of one quarter: every week's cells and each person's quota.
#[derive(Debug, Default)]
pub struct Quarter {
    pub id: String,
    /// The latest week's time frame id.
    pub latest: String,
    /// (user id, field id, time frame id) → cell.
    pub cells: HashMap<(String, String, String), Cell>,
    pub quota: HashMap<String, f64>,
}

impl Quarter {
    pub fn latest(&self, user: &str, field: &str) -> Option<f64> {
        self.cells
            .get(&(user.to_owned(), field.to_owned(), self.latest.clone()))
            .and_then(|c| c.value)
    }
}

/// One audit event.
#[derive(Debug, Clone)]
pub struct AuditEvent {
    pub at: i64,
    pub event: String,
    pub actor: String,
}

pub struct Truth {
    pub people: Vec<Person>,
    /// The deals in the activity export of the last 90 days, by id.
    pub deals: BTreeMap<String, Deal>,
    pub current: Quarter,
    pub previous: Quarter,
    pub audit: Vec<AuditEvent>,
}

impl Truth {
    pub fn person_by_id(&self, id: &str) -> &Person {
        self.people.iter().find(|p| p.id == id).expect("person")
    }

    /// The top of the hierarchy.
    pub fn top(&self) -> &Person {
        self.people
            .iter()
            .find(|p| p.parent_hierarchy_id.is_none())
            .expect("a top")
    }

    /// The people reporting directly to `manager`.
    pub fn reports(&self, manager: &Person) -> Vec<&Person> {
        self.people
            .iter()
            .filter(|p| p.parent_hierarchy_id.as_deref() == Some(&manager.hierarchy_id))
            .collect()
    }

    pub fn open_deals(&self) -> impl Iterator<Item = &Deal> {
        self.deals.values().filter(|d| d.open())
    }
}

struct Raw<'a> {
    http: &'a reqwest::Client,
    base: &'a str,
    key: &'a str,
}

impl Raw<'_> {
    async fn get(&self, path: &str) -> Value {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .header("apikey", self.key)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "GET {path}: {}", r.status());
        r.json().await.unwrap()
    }

    /// Starts an export, follows its job to the end and reads its result.
    async fn export(&self, path: &str, body: Value) -> Value {
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .header("apikey", self.key)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "POST {path}: {}", r.status());
        let job: Value = r.json().await.unwrap();
        let id = job["jobId"].as_str().expect("a job id").to_owned();
        // The job runs in real time inside the sandbox; ask again shortly.
        eventually(&format!("export {path} (job {id}) to finish"), async || {
            let j = self.get(&format!("/export/jobs/{id}")).await;
            let j = j.get("job").unwrap_or(&j);
            match j["status"].as_str() {
                Some("DONE") => true,
                Some("FAILED" | "CANCELLED" | "ABORTED") => panic!("export {path}: {j}"),
                _ => false,
            }
        })
        .await;
        self.get(&format!("/export/jobs/{id}/results")).await
    }

    async fn quarter(&self, period: Option<&str>, people: &mut Vec<Person>) -> Quarter {
        let mut body = json!({
            "typesToExport": ["forecast", "forecast_updated", "quota"],
            "includeHistorical": true,
            "exportFormat": "JSON",
        });
        if let Some(p) = period {
            body["timePeriod"] = json!(p);
        }
        let v = self.export("/export/forecast/forecast", body).await;
        if people.is_empty() {
            *people = v["users"]
                .as_array()
                .unwrap()
                .iter()
                .map(|u| Person {
                    id: text(&u["userId"]),
                    name: text(&u["name"]),
                    email: text(&u["email"]),
                    crm_id: text(&u["crmId"]),
                    hierarchy_id: text(&u["hierarchyId"]),
                    parent_hierarchy_id: u["parentHierarchyId"].as_str().map(str::to_owned),
                })
                .collect();
        }
        let mut q = Quarter {
            id: text(&v["timePeriods"][0]["timePeriodId"]),
            latest: text(&v["timeFrames"].as_array().unwrap().last().unwrap()["timeFrameId"]),
            ..Quarter::default()
        };
        for e in v["entries"].as_array().unwrap() {
            let user = text(&e["userId"]);
            if let Some(quota) = e["quotaValue"].as_f64() {
                q.quota.insert(user, quota);
                continue;
            }
            q.cells.insert(
                (user, text(&e["fieldId"]), text(&e["timeFrameId"])),
                Cell {
                    value: e["forecastValue"].as_f64(),
                    updated: e["isUpdated"].as_bool().unwrap_or(false),
                    updated_by: e["updatedBy"].as_str().map(str::to_owned),
                    updated_on: e["updatedOn"].as_i64(),
                },
            );
        }
        q
    }
}

fn text(v: &Value) -> String {
    v.as_str().map(str::to_owned).unwrap_or_default()
}

/// The quarter before one named `YYYY_QN`.
fn quarter_before(id: &str) -> String {
    let (year, q) = id.split_once("_Q").expect("YYYY_QN");
    let (year, q): (i32, u8) = (year.parse().unwrap(), q.parse().unwrap());
    if q == 1 {
        format!("{}_Q4", year - 1)
    } else {
        format!("{year}_Q{}", q - 1)
    }
}

/// Reads everything the questions are checked against.
pub async fn read(env: &McpEnv) -> Truth {
    let org = &env.sandbox.orgs()[0];
    let raw = Raw {
        http: &env.app.http,
        base: &env.sandbox.base_url,
        key: &org.api_key,
    };
    let now = OffsetDateTime::from_unix_timestamp(env.app.state.now()).unwrap();

    let mut people = Vec::new();
    let current = raw.quarter(None, &mut people).await;
    let previous = raw
        .quarter(Some(&quarter_before(&current.id)), &mut Vec::new())
        .await;

    // The deals of the activity export of the last 90 days, whole days in UTC.
    let from = (now - time::Duration::days(ACTIVITY_DAYS)).date();
    let activity = raw
        .export(
            "/export/activity",
            json!({
                "activityTypes": ["MEETING", "EMAIL_SENT", "EMAIL_RECEIVED", "ATTACHMENT_SENT", "ATTACHMENT_RECEIVED"],
                "startDate": from.to_string(),
                "exportFormat": "JSON",
            }),
        )
        .await;
    // opportunity id → (owner crm id, account name, account owner crm id)
    let mut seen: BTreeMap<String, (String, String, String)> = BTreeMap::new();
    for a in activity["activities"].as_array().unwrap() {
        let account = &a["accounts"][0];
        for o in a["opportunities"].as_array().unwrap() {
            seen.entry(text(&o["opportunityId"])).or_insert_with(|| {
                (
                    text(&o["opportunityOwnerId"]),
                    text(&account["accountName"]),
                    text(&account["accountOwnerId"]),
                )
            });
        }
    }
    let ids: Vec<&String> = seen.keys().collect();
    let mut deals = BTreeMap::new();
    for batch in ids.chunks(100) {
        let query: String = batch
            .iter()
            .map(|id| format!("oppId={id}"))
            .collect::<Vec<_>>()
            .join("&");
        let got = raw.get(&format!("/opportunity?{query}")).await;
        for o in got.as_array().unwrap() {
            let field = |id: &str| -> &Value {
                o["fields"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|f| f["id"] == id)
                    .expect("field")
            };
            let id = text(&o["id"]);
            let (owner_crm, account, account_owner_crm) = &seen[&id];
            let owner_email = people
                .iter()
                .find(|p| &p.crm_id == owner_crm)
                .map(|p| p.email.clone())
                .unwrap_or_default();
            let account_owner = people
                .iter()
                .find(|p| &p.crm_id == account_owner_crm)
                .map(|p| p.name.clone())
                .unwrap_or_default();
            let close = text(&field("opportunity.close_date")["value"]);
            deals.insert(
                id.clone(),
                Deal {
                    id,
                    stage: text(&field("opportunity.stage")["value"]),
                    amount: field("opportunity.amount")["value"].as_f64().unwrap(),
                    close_date: Date::parse(
                        &close,
                        time::macros::format_description!("[year]-[month]-[day]"),
                    )
                    .unwrap(),
                    forecast_category: text(&field("opportunity.forecast_category")["value"]),
                    owner_email,
                    account: account.clone(),
                    account_owner,
                    score: o["crmScore"]["score"].as_f64().unwrap(),
                    message: text(&o["crmScore"]["message"]),
                    close_date_moves: field("opportunity.close_date")["trendHistory"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .filter_map(|h| h["date"].as_i64())
                        .collect(),
                },
            );
        }
    }

    // Every audit event Clari still keeps, page by page.
    let mut audit = Vec::new();
    let mut names: HashMap<String, String> = HashMap::new();
    let mut cursor = 0;
    loop {
        let page = raw
            .get(&format!("/audit/events?limit=1000&cursor={cursor}"))
            .await;
        for a in page["actors"].as_array().unwrap() {
            names.insert(text(&a["actorId"]), text(&a["name"]));
        }
        let items = page["items"].as_array().unwrap();
        for e in items {
            let at = OffsetDateTime::parse(e["eventTimestamp"].as_str().unwrap(), &Rfc3339)
                .unwrap()
                .unix_timestamp()
                * 1000;
            audit.push(AuditEvent {
                at,
                event: text(&e["event"]),
                actor: text(&e["actorId"]),
            });
        }
        if page.get("nextLink").is_none() || items.is_empty() {
            break;
        }
        cursor += items.len();
    }
    for e in &mut audit {
        e.actor = names.get(&e.actor).cloned().unwrap_or_default();
    }
    let distinct: BTreeSet<&str> = audit.iter().map(|e| e.event.as_str()).collect();
    assert!(
        distinct.len() > 1,
        "the audit log holds several kinds of event"
    );

    Truth {
        people,
        deals,
        current,
        previous,
        audit,
    }
}
