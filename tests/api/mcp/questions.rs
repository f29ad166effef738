//! Questions people ask an agent, each answered through the tools over HTTP with a fixed plan of
//! at most three calls and 6,000 tokens of text, and every fact checked against what the sandbox's
//! Clari API serves over HTTP (see [`truth`]).

use std::collections::{BTreeSet, HashSet};

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

fn ids(rows: &Value) -> Vec<String> {
    rows.as_array()
        .unwrap()
        .iter()
        .map(|r| r["opportunity_id"].as_str().unwrap().to_owned())
        .collect()
}

/// Money compared to the cent: sums added in another order may differ in the last bit.
fn cents(v: &Value) -> i64 {
    (v.as_f64().expect("an amount") * 100.0).round() as i64
}

fn cents_of(sum: f64) -> i64 {
    (sum * 100.0).round() as i64
}

fn day_ms(d: time::Date) -> (i64, i64) {
    let start = d.midnight().assume_utc().unix_timestamp() * 1000;
    (start, start + 86_400_000)
}

#[tokio::test]
async fn twelve_questions_in_at_most_three_calls_each_with_every_fact_exact() {
    let db = TestDb::new(Backend::Sqlite).await.unwrap();
    let env = mcp_env(&db).await;
    let key = env.api_key("clari:read").await;
    let t = truth::read(&env).await;
    let now = OffsetDateTime::from_unix_timestamp(env.app.state.now()).unwrap();
    let today = now.date();
    let mut figures = Vec::new();

    // 1. What does this quarter's commit look like by manager?
    let mut q = ask();
    let f = q
        .call(&env, &key, "get_forecast", json!({"wait_seconds": 30}))
        .await;
    let reports: BTreeSet<String> = t.reports(t.top()).iter().map(|p| p.id.clone()).collect();
    let rows = f["breakdown"].as_array().unwrap();
    assert_eq!(
        rows.iter()
            .map(|r| r["user_id"].as_str().unwrap().to_owned())
            .collect::<BTreeSet<_>>(),
        reports
    );
    for row in rows {
        let u = row["user_id"].as_str().unwrap();
        assert_eq!(
            row["commit"].as_f64(),
            t.current.latest(u, "commit"),
            "{row}"
        );
        assert_eq!(row["quota"].as_f64(), Some(t.current.quota[u]), "{row}");
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
    let big: Vec<&truth::Deal> = t.open_deals().filter(|d| d.amount >= 100_000.0).collect();
    assert_eq!(s["total"], big.len());
    let got: HashSet<String> = ids(&s["deals"]).into_iter().collect();
    assert_eq!(got, big.iter().map(|d| d.id.clone()).collect());
    assert_eq!(
        cents(&s["total_amount"]),
        cents_of(big.iter().map(|d| d.amount).sum())
    );
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
    let mut commit: Vec<&truth::Deal> = t
        .open_deals()
        .filter(|d| d.forecast_category == "Commit")
        .collect();
    commit.sort_by(|a, b| a.score.total_cmp(&b.score));
    assert_eq!(s["total"], commit.len());
    let rows = s["deals"].as_array().unwrap();
    assert_eq!(rows.len(), commit.len().min(5));
    for (r, d) in rows.iter().zip(&commit) {
        assert_eq!(r["risk_score"], d.score, "{r}");
        let own = &t.deals[r["opportunity_id"].as_str().unwrap()];
        assert_eq!(r["forecast_category"], "Commit");
        assert_eq!(r["risk_message"], own.message.as_str());
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
    let (from_ms, _) = day_ms(today - Days::days(7));
    let slipped: BTreeSet<String> = t
        .open_deals()
        .filter(|d| d.close_date_moves.iter().any(|&at| at >= from_ms))
        .map(|d| d.id.clone())
        .collect();
    assert!(!slipped.is_empty(), "some deals slip every week");
    let got: BTreeSet<String> = ids(&s["changes"]).into_iter().collect();
    assert_eq!(got, slipped);
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
    let (m0, m1) = day_ms(monday);
    let on_monday: Vec<&truth::Cell> = t
        .current
        .cells
        .values()
        .filter(|c| c.updated && c.updated_on.is_some_and(|at| at >= m0 && at < m1))
        .collect();
    let who: BTreeSet<String> = on_monday
        .iter()
        .filter_map(|c| c.updated_by.as_deref())
        .map(|id| t.person_by_id(id).name.clone())
        .collect();
    let mut q = ask();
    let s = q
        .call(
            &env,
            &key,
            "list_forecast_submissions",
            json!({"since": monday.to_string(), "until": monday.to_string(), "limit": 200}),
        )
        .await;
    assert!(!on_monday.is_empty(), "people submit on Mondays");
    assert_eq!(s["total"], on_monday.len(), "{s}");
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
    let mut biggest: Vec<f64> = t.open_deals().map(|d| d.amount).collect();
    biggest.sort_by(|a, b| b.total_cmp(a));
    let rows = s["deals"].as_array().unwrap();
    assert_eq!(rows.len(), 5);
    for (r, amount) in rows.iter().zip(&biggest) {
        let d = &t.deals[r["opportunity_id"].as_str().unwrap()];
        assert_eq!(r["amount"], *amount, "{r}");
        assert_eq!(r["amount"], d.amount, "{r}");
        assert_eq!(r["account"], d.account.as_str());
        assert_eq!(r["account_owner"], d.account_owner.as_str(), "{r}");
    }
    let top = t.deals[rows[0]["opportunity_id"].as_str().unwrap()].clone();
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
    let mut risky: Vec<f64> = t.open_deals().map(|d| d.score).collect();
    risky.sort_by(f64::total_cmp);
    let scores: Vec<f64> = s["deals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["risk_score"].as_f64().unwrap())
        .collect();
    assert_eq!(scores, risky[..5]);
    assert!(
        scores.iter().all(|s| *s > 0.0),
        "a lost deal is not at risk, it is lost"
    );
    figures.push(q.done("The five riskiest open deals"));

    // 8. How is a VP doing against quota last quarter?
    let vp = t.reports(t.top())[0].clone();
    let mut q = ask();
    let s = q
        .call(
            &env,
            &key,
            "get_forecast",
            json!({"manager": vp.name, "time_period": t.previous.id, "fields": ["closed_won", "quota"], "wait_seconds": 30}),
        )
        .await;
    assert_eq!(
        s["total"]["closed_won"].as_f64(),
        t.previous.latest(&vp.id, "closed_won"),
        "{s}"
    );
    assert_eq!(s["total"]["quota"].as_f64(), Some(t.previous.quota[&vp.id]));
    assert!(
        s["total"].get("commit").is_none(),
        "only the fields asked for"
    );
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
    let month: Vec<&truth::Deal> = t
        .open_deals()
        .filter(|d| d.close_date >= first && d.close_date <= end)
        .collect();
    assert_eq!(s["total"], month.len());
    assert_eq!(
        cents(&s["total_amount"]),
        cents_of(month.iter().map(|d| d.amount).sum())
    );
    figures.push(q.done("Deals closing this month and their value"));

    // 10. Which of one rep's deals are in Negotiation?
    let mut q = ask();
    let s = q
        .call(
            &env,
            &key,
            "search_deals",
            json!({"owner": top.owner_email, "stages": ["negotiation"]}),
        )
        .await;
    let theirs: HashSet<String> = t
        .deals
        .values()
        .filter(|d| d.owner_email == top.owner_email && d.stage == "Negotiation")
        .map(|d| d.id.clone())
        .collect();
    let got: HashSet<String> = ids(&s["deals"]).into_iter().collect();
    assert_eq!(got, theirs, "{s}");
    figures.push(q.done("One rep's deals in Negotiation"));

    // 11. What happened in Clari on the last working day, and who did it?
    let yesterday = (1..4)
        .map(|d| today - Days::days(d))
        .find(|d| !matches!(d.weekday(), time::Weekday::Saturday | time::Weekday::Sunday))
        .unwrap();
    let (y0, y1) = day_ms(yesterday);
    let events: Vec<&truth::AuditEvent> =
        t.audit.iter().filter(|e| e.at >= y0 && e.at < y1).collect();
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
        *counts.entry(e.event.as_str()).or_insert(0usize) += 1;
    }
    assert_eq!(s["event_names"], json!(counts));
    let newest = events.iter().map(|e| e.at).max().unwrap();
    let last_actors: BTreeSet<&str> = events
        .iter()
        .filter(|e| e.at == newest)
        .map(|e| e.actor.as_str())
        .collect();
    assert!(
        last_actors.contains(s["events"][0]["actor"].as_str().unwrap()),
        "{} is not among {last_actors:?}",
        s["events"][0]
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
    let lost: Vec<&truth::Deal> = t
        .deals
        .values()
        .filter(|d| d.stage == "Closed Lost")
        .collect();
    assert_eq!(s["total"], lost.len());
    assert_eq!(
        cents(&s["total_amount"]),
        cents_of(lost.iter().map(|d| d.amount).sum())
    );
    figures.push(q.done("Lost deals and their value"));

    // 13. Everything on one account.
    let mut q = ask();
    let s = q
        .call(
            &env,
            &key,
            "search_deals",
            json!({"account": top.account.to_lowercase(), "status": "all"}),
        )
        .await;
    let on: HashSet<String> = t
        .deals
        .values()
        .filter(|d| d.account == top.account)
        .map(|d| d.id.clone())
        .collect();
    let got: HashSet<String> = ids(&s["deals"]).into_iter().collect();
    assert_eq!(got, on);
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
