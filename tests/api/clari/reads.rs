//! Audit events, opportunities and activities.

use super::*;

#[tokio::test]
async fn audit_events_page_through_next_link_within_retention() {
    let sb = sandbox_with(fast_knobs()).await;
    let c = client();
    let t = target(&sb, 0);
    let org = &sb.dataset().orgs[0];
    let now_ms = now() * 1000;
    let retained = org
        .audit
        .iter()
        .filter(|e| e.at_ms >= now_ms - 30 * 86_400_000 && e.at_ms <= now_ms)
        .count();
    assert!(retained > 300);
    let q = AuditQuery {
        limit: Some(250),
        ..Default::default()
    };
    let all = c.audit_events_all(&t, &q, now(), 100_000).await.unwrap();
    assert!(all.next_link.is_none());
    // A few events may cross the 30-day edge between the count and the call.
    assert!(
        (all.items.len() as i64 - retained as i64).abs() <= 3,
        "{} vs {retained}",
        all.items.len()
    );
    assert!(sb.request_count() as usize >= retained / 250);
    assert!(
        all.items
            .windows(2)
            .all(|w| w[0].event_timestamp.0 <= w[1].event_timestamp.0)
    );
    for item in &all.items {
        assert!(
            all.actors
                .iter()
                .any(|a| a.actor_id == item.actor_id && a.name.is_some())
        );
    }
    let capped = c.audit_events_all(&t, &q, now(), 300).await.unwrap();
    assert_eq!(capped.items.len(), 300);
    assert!(capped.next_link.is_some());

    let submitted = AuditQuery {
        event: Some("forecast.submitted".into()),
        ..Default::default()
    };
    let only = c
        .audit_events_all(&t, &submitted, now(), 100_000)
        .await
        .unwrap();
    assert!(!only.items.is_empty());
    assert!(only.items.iter().all(|e| e.event == "forecast.submitted"));
    assert!(
        !all.items
            .iter()
            .any(|e| e.event.starts_with("OPPORTUNITY_"))
    );

    sb.set_knobs(|k| k.timestamps_as_instant = true);
    let page = c
        .audit_events(
            &t,
            &AuditQuery {
                limit: Some(5),
                ..Default::default()
            },
            now(),
        )
        .await
        .unwrap();
    assert_eq!(page.items.len(), 5);
    assert_eq!(page.items[0].event_timestamp, all.items[0].event_timestamp);

    let foreign = page.next_link.unwrap().replace("127.0.0.1", "localhost");
    let e = c.audit_next(&t, &foreign).await.unwrap_err();
    assert!(e.to_string().contains("another host"), "{e}");
}

#[tokio::test]
async fn audit_export_matches_the_paged_api() {
    let sb = sandbox_with(fast_knobs()).await;
    let c = client();
    let t = target(&sb, 1);
    let from = clari_mcp::clock::rfc3339(now() - 7 * 86_400);
    let q = AuditQuery {
        date_from: Some(from),
        event: Some("user.login".into()),
        ..Default::default()
    };
    let exported = c
        .export_audit(&t, &q, now(), quick_wait())
        .await
        .unwrap()
        .ready()
        .unwrap();
    let paged = c.audit_events_all(&t, &q, now(), 100_000).await.unwrap();
    assert!(!exported.items.is_empty());
    assert_eq!(exported.items.len(), paged.items.len());
}

#[tokio::test]
async fn opportunities_batch_by_100_and_keep_input_order() {
    let sb = sandbox_with(fast_knobs()).await;
    let c = client();
    let org = &sb.dataset().orgs[0];
    let mut ids: Vec<String> = org
        .opps
        .iter()
        .rev()
        .take(250)
        .map(|o| o.id.clone())
        .collect();
    ids.push(ids[3].clone()); // asked twice, fetched once
    ids[10] = ids[10][..15].to_owned(); // the 15-character form works too
    let got = c
        .opportunities(&target(&sb, 0), &opp_ids(&ids))
        .await
        .unwrap();
    assert_eq!(got.len(), 250);
    assert_eq!(sb.request_count(), 3, "250 ids in three batches");
    for (o, id) in got.iter().zip(ids.iter()) {
        assert_eq!(&o.id, id);
    }
    let first = &got[0];
    let amount = first
        .fields
        .iter()
        .find(|f| f.id == "opportunity.amount")
        .unwrap();
    assert_eq!(amount.value, serde_json::json!(org.opps[299].amount));
    assert!(first.crm_score.as_ref().unwrap().message.is_some());
    // Field history carries the changes.
    let with_history = got
        .iter()
        .filter(|o| o.fields.iter().any(|f| !f.trend_history.is_empty()))
        .count();
    let changed = org
        .opps
        .iter()
        .rev()
        .take(250)
        .filter(|o| !o.changes.is_empty())
        .count();
    assert!(changed > 20, "{changed}");
    assert_eq!(
        with_history, changed,
        "open deals with changes, closed ones frozen"
    );
    // Another organisation's ids are not visible.
    let other = c
        .opportunities(&target(&sb, 1), &opp_ids(&ids[..5]))
        .await
        .unwrap();
    assert!(other.is_empty());
}

#[tokio::test]
async fn activity_export_filters_to_the_types_and_dates_given() {
    let sb = sandbox_with(fast_knobs()).await;
    let c = client();
    let org = &sb.dataset().orgs[0];
    let start = (time::OffsetDateTime::now_utc() - time::Duration::days(30)).date();
    let req = ActivityExportRequest {
        activity_types: vec![ActivityType::Meeting],
        start_date: format!("{start}T00:00:00Z"),
        end_date: format!("{}T23:59:59Z", time::OffsetDateTime::now_utc().date()),
        export_format: ExportFormat::Json,
    };
    let r = c
        .export_activity(&target(&sb, 0), &req, quick_wait())
        .await
        .unwrap()
        .ready()
        .unwrap();
    let start_ms = start.midnight().assume_utc().unix_timestamp() * 1000;
    let expected = org
        .activities
        .iter()
        .filter(|a| a.kind == "MEETING" && a.at_ms >= start_ms)
        .count();
    assert_eq!(r.activities.len(), expected);
    assert!(
        r.activities
            .iter()
            .all(|a| a.activity_type == "MEETING" && a.date >= start_ms)
    );
    assert!(
        r.activities
            .iter()
            .all(|a| !a.accounts.is_empty() && !a.participants.is_empty())
    );
}
