//! Renders dataset slices in Clari's wire shapes.

use std::collections::BTreeSet;

use serde_json::{Value, json};
use time::OffsetDateTime;

use super::data::{AuditRec, FIELDS, Grid, Level, OrgData, Period};
use crate::clari::types::{ExportFormat, ExportType};

pub const CURRENCIES: &[(&str, &str, f64)] = &[
    ("USD", "$", 1.0),
    ("EUR", "€", 0.92),
    ("GBP", "£", 0.79),
    ("CAD", "CA$", 1.37),
    ("AUD", "A$", 1.52),
    ("JPY", "¥", 151.0),
];

pub struct ForecastSlice<'a> {
    pub org: &'a OrgData,
    pub forecast: usize,
    pub period: usize,
    pub root: usize,
    pub types: BTreeSet<ExportTypeKey>,
    pub historical: bool,
    pub currency: (&'static str, &'static str, f64),
    pub format: ExportFormat,
}

/// `ExportType` ordered for sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ExportTypeKey(pub u8);

impl From<ExportType> for ExportTypeKey {
    fn from(t: ExportType) -> Self {
        Self(ExportType::ALL.iter().position(|x| *x == t).unwrap() as u8)
    }
}

impl ExportTypeKey {
    fn is(self, t: ExportType) -> bool {
        self == t.into()
    }
}

/// Values with the currency applied: each rep's figure converted and rounded, rollups re-added.
// Rows are summed from other rows of the same matrix, so indices are clearer than iterators.
#[allow(clippy::needless_range_loop)]
fn converted(org: &OrgData, grid: &Grid, rate: f64) -> (Vec<[Vec<f64>; 4]>, Vec<f64>, Vec<f64>) {
    if rate == 1.0 {
        return (
            grid.values.clone(),
            grid.quota.clone(),
            grid.adjustment.clone(),
        );
    }
    let mut values = grid.values.clone();
    let mut quota = grid.quota.clone();
    let adjustment = grid.adjustment.iter().map(|a| (a * rate).round()).collect();
    let mut order: Vec<usize> = (0..org.users.len()).collect();
    order.sort_by_key(|&u| std::cmp::Reverse(depth(org, u)));
    for u in order {
        if org.users[u].level == Level::Rep {
            for f in 0..4 {
                for v in values[u][f].iter_mut() {
                    *v = (*v * rate).round();
                }
            }
            quota[u] = (quota[u] * rate).round();
        } else {
            for f in 0..4 {
                for w in 0..values[u][f].len() {
                    values[u][f][w] = org.users[u].children.iter().map(|&c| values[c][f][w]).sum();
                }
            }
            quota[u] = org.users[u].children.iter().map(|&c| quota[c]).sum();
        }
    }
    (values, quota, adjustment)
}

fn depth(org: &OrgData, mut u: usize) -> usize {
    let mut d = 0;
    while let Some(p) = org.users[u].parent {
        d += 1;
        u = p;
    }
    d
}

pub fn user_json(org: &OrgData, u: usize) -> Value {
    let user = &org.users[u];
    let parent = user.parent.map(|p| &org.users[p]);
    json!({
        "userId": user.id,
        "name": user.name,
        "email": user.email,
        "crmId": user.crm_id,
        "hierarchyId": user.hierarchy_id,
        "hierarchyName": user.hierarchy_name,
        "parentHierarchyId": parent.map(|p| p.hierarchy_id.clone()),
        "parentHierarchyName": parent.map(|p| p.hierarchy_name.clone()),
        "scopeId": user.scope_id,
    })
}

fn period_json(p: &Period) -> Value {
    json!({
        "timePeriodId": p.id,
        "label": p.label(),
        "year": p.year,
        "type": "QUARTER",
        "startDate": p.start.to_string(),
        "endDate": p.end.to_string(),
        "crmId": p.crm_id,
    })
}

impl ForecastSlice<'_> {
    fn weeks(&self) -> Vec<usize> {
        let p = &self.org.periods[self.period];
        let last = p.weeks_elapsed.max(1) - 1;
        if self.historical {
            (0..=last).collect()
        } else {
            vec![last]
        }
    }

    pub fn render(&self) -> Vec<u8> {
        match self.format {
            ExportFormat::Json => serde_json::to_vec(&self.json()).expect("JSON"),
            ExportFormat::Csv => self.csv().into_bytes(),
        }
    }

    fn json(&self) -> Value {
        let org = self.org;
        let period = &org.periods[self.period];
        let grid = &org.forecasts[self.forecast].grids[self.period];
        let (values, quota, adjustment) = converted(org, grid, self.currency.2);
        let users = org.subtree(self.root);
        let weeks = self.weeks();
        let last_week = *weeks.last().unwrap();
        let currency = json!({"code": self.currency.0, "symbol": self.currency.1});
        let has = |t: ExportType| self.types.iter().any(|k| k.is(t));
        let mut entries = Vec::new();
        for &u in &users {
            if has(ExportType::Forecast) || has(ExportType::ForecastUpdated) {
                for (f, (field_id, _)) in FIELDS.iter().enumerate() {
                    for &w in &weeks {
                        let mut e = json!({
                            "userId": org.users[u].id,
                            "fieldId": field_id,
                            "timePeriodId": period.id,
                            "timeFrameId": Period::time_frame_id(w),
                            "currency": currency,
                        });
                        if has(ExportType::Forecast) {
                            e["forecastValue"] = json!(values[u][f][w]);
                        }
                        if has(ExportType::ForecastUpdated) {
                            let upd = grid.updates[u][f][w];
                            e["isUpdated"] = json!(upd.is_updated);
                            e["updatedBy"] = json!(upd.by.map(|b| org.users[b].id.clone()));
                            e["updatedOn"] = json!(upd.on_ms);
                        }
                        entries.push(e);
                    }
                }
            }
            if has(ExportType::Quota) {
                entries.push(json!({
                    "userId": org.users[u].id, "fieldId": "quota", "timePeriodId": period.id,
                    "quotaValue": quota[u], "currency": currency,
                }));
            }
            if has(ExportType::Adjustment) && org.users[u].level != Level::Rep {
                entries.push(json!({
                    "userId": org.users[u].id, "fieldId": "commit", "timePeriodId": period.id,
                    "timeFrameId": Period::time_frame_id(last_week), "adjustmentValue": adjustment[u], "currency": currency,
                }));
            }
            if has(ExportType::CrmTotal) {
                entries.push(json!({
                    "userId": org.users[u].id, "fieldId": "pipeline", "timePeriodId": period.id,
                    "timeFrameId": Period::time_frame_id(last_week),
                    "crmTotalValue": values[u][2][last_week] + values[u][3][last_week], "currency": currency,
                }));
            }
            if has(ExportType::CrmClosed) {
                entries.push(json!({
                    "userId": org.users[u].id, "fieldId": "closed_won", "timePeriodId": period.id,
                    "timeFrameId": Period::time_frame_id(last_week),
                    "crmClosedValue": values[u][3][last_week], "currency": currency,
                }));
            }
        }
        let mut fields: Vec<Value> = FIELDS
            .iter()
            .map(|(id, name)| json!({"fieldId": id, "fieldName": name, "fieldType": "CURRENCY"}))
            .collect();
        fields.push(json!({"fieldId": "quota", "fieldName": "Quota", "fieldType": "CURRENCY"}));
        json!({
            "entries": entries,
            "users": users.iter().map(|&u| user_json(org, u)).collect::<Vec<_>>(),
            "fields": fields,
            "timePeriods": [period_json(period)],
            "timeFrames": weeks.iter().map(|&w| json!({
                "timeFrameId": Period::time_frame_id(w),
                "startDate": period.weeks[w].0.to_string(),
                "endDate": period.weeks[w].1.to_string(),
            })).collect::<Vec<_>>(),
        })
    }

    fn csv(&self) -> String {
        let org = self.org;
        let period = &org.periods[self.period];
        let grid = &org.forecasts[self.forecast].grids[self.period];
        let (values, _, _) = converted(org, grid, self.currency.2);
        let mmddyyyy =
            |d: time::Date| format!("{:02}/{:02}/{}", d.month() as u8, d.day(), d.year());
        let esc = |s: &str| {
            if s.contains([',', '"', '\n']) {
                format!("\"{}\"", s.replace('"', "\"\""))
            } else {
                s.to_owned()
            }
        };
        let mut out = String::from(
            "User,Email,CRM User ID,Role,Parent Role,Timeframe,Field,Week,Start Day,End Day,Data Type,Data Value\n",
        );
        for u in org.subtree(self.root) {
            let user = &org.users[u];
            let parent = user
                .parent
                .map(|p| org.users[p].hierarchy_name.clone())
                .unwrap_or_default();
            for (f, (_, field_name)) in FIELDS.iter().enumerate() {
                for w in self.weeks() {
                    let (ws, we) = period.weeks[w];
                    let v = values[u][f][w];
                    out.push_str(&format!(
                        "{},{},{},{},{},{},{},{},{},{},Forecast Value,{}\n",
                        esc(&user.name),
                        user.email,
                        user.crm_id,
                        esc(&user.hierarchy_name),
                        esc(&parent),
                        period.label(),
                        field_name,
                        w + 1,
                        mmddyyyy(ws),
                        mmddyyyy(we),
                        esc(&format!("{}{}", self.currency.1, group_thousands(v)))
                    ));
                }
            }
        }
        out
    }
}

fn group_thousands(v: f64) -> String {
    let whole = v.abs().round() as i64;
    let digits = whole.to_string();
    let mut s = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            s.push(',');
        }
        s.push(c);
    }
    format!("{}{s}.00", if v < 0.0 { "-" } else { "" })
}

pub fn audit_item(org: &OrgData, e: &AuditRec, as_instant: bool) -> Value {
    let ts = if as_instant {
        json!({"epochSecond": e.at_ms.div_euclid(1000), "nano": e.at_ms.rem_euclid(1000) * 1_000_000})
    } else {
        let t = OffsetDateTime::from_unix_timestamp(e.at_ms.div_euclid(1000)).unwrap();
        json!(
            t.format(&time::format_description::well_known::Rfc3339)
                .unwrap()
        )
    };
    json!({
        "correlationID": e.correlation_id,
        "actorId": org.users[e.actor].id,
        "impersonatingActorId": null,
        "actorType": e.actor_type,
        "sessionId": e.session_id,
        "ipAddress": e.ip,
        "sessionType": e.session_type,
        "event": e.event,
        "eventParameters": e.params,
        "eventTimestamp": ts,
    })
}

pub fn audit_actors<'a>(org: &OrgData, events: impl Iterator<Item = &'a AuditRec>) -> Vec<Value> {
    let mut seen = BTreeSet::new();
    events
        .filter(|e| seen.insert(e.actor))
        .map(|e| {
            let u = &org.users[e.actor];
            json!({"actorType": e.actor_type, "actorId": u.id, "name": u.name, "email": u.email})
        })
        .collect()
}

pub fn opportunity(org: &OrgData, i: usize, requested_id: &str) -> Value {
    let o = &org.opps[i];
    let history = |field: &str| -> Vec<Value> {
        o.changes
            .iter()
            .filter(|c| c.field == field)
            .map(|c| json!({"oldValue": c.old, "newValue": c.new, "date": c.at_ms}))
            .collect()
    };
    let trend = |now: f64, was: f64| {
        if now > was {
            "UP"
        } else if now < was {
            "DOWN"
        } else {
            "NONE"
        }
    };
    let image = if o.score >= 60.0 {
        "/images/CardOppSunny@2x.png"
    } else if o.score >= 30.0 {
        "/images/CardOppCloudy@2x.png"
    } else {
        "/images/CardOppStormy@2x.png"
    };
    let owner = &org.users[o.owner];
    let field = |id: &str,
                 alias: &str,
                 value: Value,
                 original: Value,
                 trend: &str,
                 hist: Vec<Value>| {
        json!({"id": id, "alias": alias, "imageUrl": image, "trend": trend, "value": value, "originalValue": original, "trendHistory": hist})
    };
    let close_trend = if o.close_date > o.original_close_date {
        "PUSHED"
    } else if o.close_date < o.original_close_date {
        "PULLED_IN"
    } else {
        "NONE"
    };
    json!({
        "id": requested_id,
        "crmScore": {"message": o.score_message, "score": o.score},
        "fields": [
            field("opportunity.name", "Opportunity Name", json!(o.name), json!(o.name), "NONE", vec![]),
            field("opportunity.account", "Account Name", json!(org.accounts[o.account].name), json!(org.accounts[o.account].name), "NONE", vec![]),
            field("opportunity.amount", "Amount", json!(o.amount), json!(o.original_amount), trend(o.amount, o.original_amount), history("opportunity.amount")),
            field("opportunity.stage", "Stage", json!(o.stage), history("opportunity.stage").first().map(|h| h["oldValue"].clone()).unwrap_or(json!(o.stage)), "NONE", history("opportunity.stage")),
            field("opportunity.close_date", "Close Date", json!(o.close_date.to_string()), json!(o.original_close_date.to_string()), close_trend, history("opportunity.close_date")),
            field("opportunity.owner", "Owner", json!(owner.name), history("opportunity.owner").first().map(|h| h["oldValue"].clone()).unwrap_or(json!(owner.name)), "NONE", history("opportunity.owner")),
            field("opportunity.forecast_category", "Forecast Category", json!(o.forecast_category), json!(o.forecast_category), "NONE", vec![]),
        ],
    })
}

pub fn activity(org: &OrgData, i: usize) -> Value {
    let a = &org.activities[i];
    let owner = &org.users[a.owner];
    let account = &org.accounts[a.account];
    let mut participants = vec![
        json!({"name": owner.name, "email": owner.email, "sfdcUserId": owner.crm_id, "isInternal": true}),
    ];
    participants.extend(
        a.contacts
            .iter()
            .map(|(n, e)| json!({"name": n, "email": e, "sfdcUserId": "", "isInternal": false})),
    );
    json!({
        "activityId": a.id,
        "activityType": a.kind,
        "subject": a.subject,
        "date": a.at_ms,
        "activityOwnerId": owner.crm_id,
        "activityOrganiserId": owner.crm_id,
        "accounts": [{"accountId": account.id, "accountName": account.name, "accountOwnerId": org.users[account.owner].crm_id}],
        "opportunities": a.opps.iter().map(|&o| {
            let opp = &org.opps[o];
            json!({"opportunityId": opp.id, "opportunityName": opp.name, "opportunityOwnerId": org.users[opp.owner].crm_id})
        }).collect::<Vec<_>>(),
        "participants": participants,
    })
}
