//! Questions people ask an agent, each answered through the tools over HTTP with a fixed plan of
//! at most three calls and 6,000 tokens of text, and every fact checked against the sandbox's own
//! data (what its Clari API serves).

use std::collections::{BTreeSet, HashSet};

use clari_mcp::clari::sandbox::OrgData;
use time::{Duration as Days, OffsetDateTime};

use super::*;

/// Most calls and tokens of text (about four characters each) one question may take.
const MAX_CALLS: usize = 3;
const MAX_TOKENS: usize = 6_000;

struct Asked {
    calls: usize,
    chars: usize,
}

impl Asked {
    async fn call(&mut self, env: &McpEnv, key: &str, tool: &str, args: Value) -> Value {
        self.calls += 1;
        let r = call_tool(&env.app, key, tool, args).await;
        assert_eq!(r["isError"], false, "{tool}: {r}");
        assert_eq!(
            r["structuredContent"]
                .get("status")
                .and_then(Value::as_str)
                .unwrap_or("ready"),
            "ready",
            "{tool}: {r}"
        );
        self.chars += text(&r).len();
        r["structuredContent"].clone()
    }

    fn done(self, question: &str) -> (String, usize, usize) {
        let tokens = self.chars.div_ceil(4);
        assert!(self.calls <= MAX_CALLS, "{question}: {} calls", self.calls);
        assert!(tokens <= MAX_TOKENS, "{question}: {tokens} tokens");
        (question.to_owned(), self.calls, tokens)
    }
}

fn ask() -> Asked {
    Asked { calls: 0, chars: 0 }
}

/// The deals `search_deals` covers: those in the activity export of the last 90 days.
fn population(org: &OrgData, now: OffsetDateTime) -> Vec<usize> {
    let from = (now - Days::days(90)).date().midnight().assume_utc();
    let from_ms = (from.unix_timestamp_nanos() / 1_000_000) as i64;
    let set: BTreeSet<usize> = org
        .activities
        .iter()
        .filter(|a| a.at_ms >= from_ms)
        .flat_map(|a| a.opps.iter().copied())
        .collect();
    set.into_iter().collect()
}

fn open(org: &OrgData, i: usize) -> bool {
    !org.opps[i].stage.starts_with("Closed")
}

fn ids(rows: &Value) -> Vec<String> {
    rows.as_array()
        .unwrap()
        .iter()
        .map(|r| r["opportunity_id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn twelve_questions_in_at_most_three_calls_each_with_every_fact_exact() {
    let db = TestDb::new(Backend::Sqlite).await.unwrap();
    let env = mcp_env(&db).await;
    let key = env.api_key("clari:read").await;
    let org = &env.sandbox.dataset().orgs[0];
    let now = OffsetDateTime::from_unix_timestamp(env.app.state.now()).unwrap();
    let today = now.date();
    let pop = population(org, now);
    let mut figures = Vec::new();

    // 1. What does this quarter's commit look like by manager?
    let mut q = ask();
    let f = q
        .call(&env, &key, "get_forecast", json!({"wait_seconds": 30}))
        .await;
    let cur = org.periods.len() - 1;
    let week = org.periods[cur].weeks_elapsed - 1;
    let grid = &org.forecasts[0].grids[cur];
    for row in f["breakdown"].as_array().unwrap() {
        let u = org
            .users
            .iter()
            .position(|u| u.id == row["user_id"].as_str().unwrap())
            .unwrap();
        assert_eq!(row["commit"], grid.values[u][0][week], "{row}");
        assert_eq!(row["quota"], grid.quota[u], "{row}");
    }
    figures.push(q.done("Commit by manager this quarter"));

    // 2. Which open deals are over $100k?
    let mut q = ask();
    let s = q
        .call(
            &env,
            &key,
            "search_deals",
            json!({"min_amount": 100000, "limit": 100}),
        )
        .await;
    let truth: HashSet<&str> = pop
        .iter()
        .filter(|&&i| open(org, i) && org.opps[i].amount >= 100_000.0)
        .map(|&i| org.opps[i].id.as_str())
        .collect();
    assert_eq!(s["total"], truth.len());
    let got: HashSet<String> = ids(&s["deals"]).into_iter().collect();
    assert_eq!(got, truth.iter().map(|s| s.to_string()).collect());
    let sum: f64 = truth
        .iter()
        .map(|id| org.opps.iter().find(|o| o.id == *id).unwrap().amount)
        .sum();
    assert_eq!(s["total_amount"], sum);
    figures.push(q.done("Open deals over $100k"));

    // 3. Which high-risk deals are still in Commit?
    let mut q = ask();
    let s = q
        .call(
            &env,
            &key,
            "search_deals",
            json!({"forecast_categories": ["Commit"], "sort": "risk", "limit": 5}),
        )
        .await;
    let mut commit: Vec<usize> = pop
        .iter()
        .copied()
        .filter(|&i| open(org, i) && org.opps[i].forecast_category == "Commit")
        .collect();
    commit.sort_by(|&a, &b| org.opps[a].score.total_cmp(&org.opps[b].score));
    assert_eq!(s["total"], commit.len());
    let rows = s["deals"].as_array().unwrap();
    for (r, &i) in rows.iter().zip(&commit) {
        assert_eq!(r["risk_score"], org.opps[i].score, "{r}");
        assert_eq!(r["forecast_category"], "Commit");
        assert_eq!(r["risk_message"], org.opps[i].score_message.as_str());
    }
    figures.push(q.done("High-risk deals still in Commit"));

    // 4. Which deals slipped their close date this week?
    let mut q = ask();
    let s = q
        .call(
            &env,
            &key,
            "get_pipeline_changes",
            json!({"changes": ["close_date"], "limit": 200}),
        )
        .await;
    let from = (today - Days::days(7)).midnight().assume_utc();
    let from_ms = (from.unix_timestamp_nanos() / 1_000_000) as i64;
    let slipped: BTreeSet<&str> = pop
        .iter()
        .filter(|&&i| open(org, i))
        .filter(|&&i| {
            org.opps[i]
                .changes
                .iter()
                .any(|c| c.field == "opportunity.close_date" && c.at_ms >= from_ms)
        })
        .map(|&i| org.opps[i].id.as_str())
        .collect();
    assert!(!slipped.is_empty(), "some deals slip every week");
    let got: BTreeSet<String> = ids(&s["changes"]).into_iter().collect();
    assert_eq!(got, slipped.iter().map(|s| s.to_string()).collect());
    assert!(
        s["changes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["closed"] == false)
    );
    assert_eq!(s["window"]["last_day"], today.to_string());
    assert!(
        s.get("forecast_changes").is_none(),
        "forecast rows only when asked"
    );
    figures.push(q.done("Deals that slipped this week"));

    // 5. Who changed the forecast on Monday?
    let monday = (1..8)
        .map(|d| today - Days::days(d))
        .find(|d| d.weekday() == time::Weekday::Monday)
        .unwrap();
    let (m0, m1) = (
        (monday.midnight().assume_utc().unix_timestamp()) * 1000,
        (monday
            .next_day()
            .unwrap()
            .midnight()
            .assume_utc()
            .unix_timestamp())
            * 1000,
    );
    let mut truth = 0;
    let mut who = BTreeSet::new();
    for fields in &grid.updates {
        for weeks in fields {
            for up in weeks {
                if up.is_updated && up.on_ms.is_some_and(|t| t >= m0 && t < m1) {
                    truth += 1;
                    if let Some(by) = up.by {
                        who.insert(org.users[by].name.clone());
                    }
                }
            }
        }
    }
    let mut q = ask();
    let s = q
        .call(
            &env,
            &key,
            "list_forecast_submissions",
            json!({"since": monday.to_string(), "until": monday.to_string(), "limit": 200}),
        )
        .await;
    assert!(truth > 0, "people submit on Mondays");
    assert_eq!(s["total"], truth, "{s}");
    let names: BTreeSet<String> = s["submissions"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["updated_by_name"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(names, who);
    figures.push(q.done("Who changed the forecast on Monday"));

    // 6. Who owns the accounts in the top five deals?
    let mut q = ask();
    let s = q
        .call(&env, &key, "search_deals", json!({"limit": 5}))
        .await;
    let mut top: Vec<usize> = pop.iter().copied().filter(|&i| open(org, i)).collect();
    top.sort_by(|&a, &b| org.opps[b].amount.total_cmp(&org.opps[a].amount));
    for (r, &i) in s["deals"].as_array().unwrap().iter().zip(&top) {
        let o = &org.opps[i];
        assert_eq!(r["amount"], o.amount, "{r}");
        assert_eq!(r["account"], org.accounts[o.account].name.as_str());
        let owner = &org.users[org.accounts[o.account].owner];
        assert_eq!(r["account_owner"], owner.name.as_str(), "{r}");
    }
    figures.push(q.done("Account owners of the top five deals"));

    // 7. What are the five riskiest open deals, and why?
    let mut q = ask();
    let s = q
        .call(
            &env,
            &key,
            "search_deals",
            json!({"sort": "risk", "limit": 5}),
        )
        .await;
    let mut risky: Vec<usize> = pop.iter().copied().filter(|&i| open(org, i)).collect();
    risky.sort_by(|&a, &b| org.opps[a].score.total_cmp(&org.opps[b].score));
    let scores: Vec<f64> = s["deals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["risk_score"].as_f64().unwrap())
        .collect();
    let want: Vec<f64> = risky.iter().take(5).map(|&i| org.opps[i].score).collect();
    assert_eq!(scores, want);
    assert!(
        scores.iter().all(|s| *s > 0.0),
        "a lost deal is not at risk, it is lost"
    );
    figures.push(q.done("The five riskiest open deals"));

    // 8. How is a VP doing against quota last quarter?
    let ceo = org
        .users
        .iter()
        .position(|u| u.level == Level::Ceo)
        .unwrap();
    let vp = org.users[ceo].children[0];
    let last = &org.forecasts[0].grids[cur - 1];
    let last_week = org.periods[cur - 1].weeks.len() - 1;
    let mut q = ask();
    let s = q
        .call(
            &env,
            &key,
            "get_forecast",
            json!({"manager": org.users[vp].name, "time_period": org.periods[cur - 1].id, "fields": ["closed_won", "quota"], "wait_seconds": 30}),
        )
        .await;
    assert_eq!(
        s["total"]["closed_won"], last.values[vp][3][last_week],
        "{s}"
    );
    assert_eq!(s["total"]["quota"], last.quota[vp]);
    figures.push(q.done("A VP's attainment last quarter"));

    // 9. How many deals close this month, and for how much?
    let first = today.replace_day(1).unwrap();
    let end = first + Days::days(40);
    let end = end.replace_day(1).unwrap() - Days::days(1);
    let mut q = ask();
    let s = q
        .call(
            &env,
            &key,
            "search_deals",
            json!({"close_from": first.to_string(), "close_until": end.to_string()}),
        )
        .await;
    let month: Vec<usize> = pop
        .iter()
        .copied()
        .filter(|&i| {
            open(org, i) && org.opps[i].close_date >= first && org.opps[i].close_date <= end
        })
        .collect();
    assert_eq!(s["total"], month.len());
    assert_eq!(
        s["total_amount"],
        month.iter().map(|&i| org.opps[i].amount).sum::<f64>()
    );
    figures.push(q.done("Deals closing this month and their value"));

    // 10. Which of one rep's deals are in Negotiation?
    let rep = org.opps[top[0]].owner;
    let mut q = ask();
    let s = q
        .call(
            &env,
            &key,
            "search_deals",
            json!({"owner": org.users[rep].email, "stages": ["negotiation"]}),
        )
        .await;
    let theirs: HashSet<&str> = pop
        .iter()
        .filter(|&&i| org.opps[i].owner == rep && org.opps[i].stage == "Negotiation")
        .map(|&i| org.opps[i].id.as_str())
        .collect();
    let got: HashSet<String> = ids(&s["deals"]).into_iter().collect();
    assert_eq!(got, theirs.iter().map(|s| s.to_string()).collect(), "{s}");
    figures.push(q.done("One rep's deals in Negotiation"));

    // 11. What happened in Clari on the last working day, and who did it?
    let yesterday = (1..4)
        .map(|d| today - Days::days(d))
        .find(|d| !matches!(d.weekday(), time::Weekday::Saturday | time::Weekday::Sunday))
        .unwrap();
    let (y0, y1) = (
        yesterday.midnight().assume_utc().unix_timestamp() * 1000,
        yesterday
            .next_day()
            .unwrap()
            .midnight()
            .assume_utc()
            .unix_timestamp()
            * 1000,
    );
    let events: Vec<_> = org
        .audit
        .iter()
        .filter(|e| e.at_ms >= y0 && e.at_ms < y1)
        .collect();
    assert!(
        !events.is_empty(),
        "the sandbox records something every working day"
    );
    let mut q = ask();
    let s = q
        .call(
            &env,
            &key,
            "list_audit_events",
            json!({"since": yesterday.to_string(), "until": yesterday.to_string(), "limit": 10}),
        )
        .await;
    assert_eq!(s["total"], events.len(), "{}", s["window"]);
    let mut counts = std::collections::BTreeMap::new();
    for e in &events {
        *counts.entry(e.event).or_insert(0usize) += 1;
    }
    assert_eq!(s["event_names"], json!(counts));
    let newest = events.iter().max_by_key(|e| e.at_ms).unwrap();
    assert_eq!(
        s["events"][0]["actor"],
        org.users[newest.actor].name.as_str()
    );
    figures.push(q.done("What happened in Clari on the last working day"));

    // 12. Which deals did we lose among those worked on lately, and for how much?
    let mut q = ask();
    let s = q
        .call(
            &env,
            &key,
            "search_deals",
            json!({"status": "lost", "limit": 20}),
        )
        .await;
    let lost: Vec<usize> = pop
        .iter()
        .copied()
        .filter(|&i| org.opps[i].stage == "Closed Lost")
        .collect();
    assert_eq!(s["total"], lost.len());
    assert_eq!(
        s["total_amount"],
        lost.iter().map(|&i| org.opps[i].amount).sum::<f64>()
    );
    figures.push(q.done("Lost deals and their value"));

    // 13. Everything on one account.
    let account = &org.accounts[org.opps[top[0]].account];
    let mut q = ask();
    let s = q
        .call(
            &env,
            &key,
            "search_deals",
            json!({"account": account.name.to_lowercase(), "status": "all"}),
        )
        .await;
    let on: HashSet<&str> = pop
        .iter()
        .filter(|&&i| org.accounts[org.opps[i].account].name == account.name)
        .map(|&i| org.opps[i].id.as_str())
        .collect();
    let got: HashSet<String> = ids(&s["deals"]).into_iter().collect();
    assert_eq!(got, on.iter().map(|s| s.to_string()).collect());
    figures.push(q.done("Every deal of one account"));

    for (question, calls, tokens) in &figures {
        println!("| {question} | {calls} | {tokens} |");
    }
    db.cleanup().await;
}

/// Dates are whole days in the organisation's time zone: set to New York, one day runs from 05:00
/// UTC to 05:00 UTC the next day, and the answer says so; back to UTC on the very next call.
#[tokio::test]
async fn a_day_is_the_organisations_day() {
    let db = TestDb::new(Backend::Sqlite).await.unwrap();
    let env = mcp_env(&db).await;
    let key = env.api_key("clari:read").await;
    let day = json!({"since": "2026-11-30", "until": "2026-11-30", "wait_seconds": 30});
    let store = &env.app.state.store;
    store
        .set_org_time_zone(&env.org, Some("America/New_York"))
        .await
        .unwrap();
    let r = call_tool(&env.app, &key, "list_forecast_submissions", day.clone()).await;
    let s = &r["structuredContent"];
    assert_eq!(s["since"], "2026-11-30T05:00:00Z", "{s}");
    assert_eq!(s["until"], "2026-12-01T05:00:00Z");
    assert_eq!(s["window"]["time_zone"], "America/New_York");
    assert!(
        text(&r).contains("on 2026-11-30 (America/New_York)"),
        "{}",
        text(&r)
    );
    store.set_org_time_zone(&env.org, None).await.unwrap();
    let r = call_tool(&env.app, &key, "list_forecast_submissions", day).await;
    assert_eq!(r["structuredContent"]["since"], "2026-11-30T00:00:00Z");
    assert_eq!(r["structuredContent"]["window"]["time_zone"], "UTC");
    let bad = call_tool(
        &env.app,
        &key,
        "list_forecast_submissions",
        json!({"until": "30/11/2026"}),
    )
    .await;
    assert_eq!(bad["isError"], true);
    assert!(text(&bad).contains("`until`"), "{}", text(&bad));
    db.cleanup().await;
}
