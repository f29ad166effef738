//! Forecast exports end to end: create, poll, download, and the answers add up.

use super::*;

#[tokio::test]
async fn forecast_export_runs_create_poll_download_and_numbers_add_up() {
    // The dataset's "now" is pinned to a Wednesday afternoon: early in a real week (a Sunday) the
    // latest week has no submission yet, and this test would depend on the day it runs.
    let sb = sandbox::start(SandboxConfig {
        knobs: fast_knobs(),
        now: time::macros::datetime!(2026-11-18 15:00 UTC),
        ..SandboxConfig::default()
    })
    .await
    .unwrap();
    let c = client();
    let t = target(&sb, 0);
    let org = &sb.dataset().orgs[0];
    let current = org.periods.last().unwrap().id.clone();
    let req = ForecastExportRequest {
        types_to_export: vec![
            ExportType::Forecast,
            ExportType::ForecastUpdated,
            ExportType::Quota,
        ],
        ..Default::default()
    };
    let results = c
        .export_forecast(&t, &fid("forecast"), &req, quick_wait())
        .await
        .unwrap()
        .ready()
        .unwrap();
    assert_eq!(results.users.len(), 40);
    assert_eq!(
        results.time_periods[0].time_period_id, current,
        "no period asked: the current quarter"
    );
    assert_eq!(
        results.time_frames.len(),
        1,
        "without includeHistorical only the latest week"
    );
    let grid: Vec<&ForecastEntry> = results
        .entries
        .iter()
        .filter(|e| e.forecast_value.is_some())
        .collect();
    assert_eq!(grid.len(), 40 * 4);
    let quota: Vec<&ForecastEntry> = results
        .entries
        .iter()
        .filter(|e| e.quota_value.is_some())
        .collect();
    assert_eq!(quota.len(), 40);

    // Every manager's figure is the sum of the team's, per field.
    let value = |user: &str, field: &str| {
        grid.iter()
            .find(|e| e.user_id == user && e.field_id == field)
            .unwrap()
            .forecast_value
            .unwrap()
    };
    for u in &results.users {
        let team: Vec<&ForecastUser> = results
            .users
            .iter()
            .filter(|c| c.parent_hierarchy_id == u.hierarchy_id && c.user_id != u.user_id)
            .collect();
        if team.is_empty() {
            continue;
        }
        for (field, _) in sandbox::FIELDS {
            let sum: f64 = team.iter().map(|c| value(&c.user_id, field)).sum();
            assert_eq!(value(&u.user_id, field), sum, "{} {field}", u.user_id);
        }
    }
    // The submission history is there: who updated and when.
    assert!(
        results.entries.iter().any(|e| e.is_updated == Some(true)
            && e.updated_by.is_some()
            && e.updated_on.is_some())
    );
    // The job is now DONE and counted one download.
    let jobs = c.list_jobs(&t).await.unwrap();
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].status, JobStatus::Done);
    assert_eq!(jobs[0].downloads, Some(1));
}

#[tokio::test]
async fn historical_export_has_every_elapsed_week_and_csv_is_available() {
    let sb = sandbox_with(fast_knobs()).await;
    let c = client();
    let t = target(&sb, 0);
    let org = &sb.dataset().orgs[0];
    let q = &org.periods[1];
    let req = ForecastExportRequest {
        time_period: Some(period(&q.id)),
        include_historical: Some(true),
        currency: Some("EUR".into()),
        ..Default::default()
    };
    let r = c
        .export_forecast(&t, &fid("forecast"), &req, quick_wait())
        .await
        .unwrap()
        .ready()
        .unwrap();
    assert_eq!(r.time_frames.len(), q.weeks.len());
    assert_eq!(
        r.time_frames[0].start_date.as_deref(),
        Some(q.start.to_string().as_str())
    );
    assert_eq!(r.entries.len(), 40 * 4 * q.weeks.len());
    assert!(
        r.entries
            .iter()
            .all(|e| e.currency.as_ref().and_then(|c| c.code.as_deref()) == Some("EUR"))
    );

    let csv_req = ForecastExportRequest {
        export_format: Some(ExportFormat::Csv),
        ..Default::default()
    };
    let job = c
        .create_forecast_export(&t, &fid("forecast"), &csv_req)
        .await
        .unwrap();
    c.wait_for_job(&t, &job, quick_wait()).await.unwrap();
    let raw = c.results_raw(&t, &job).await.unwrap();
    let text = std::str::from_utf8(&raw).unwrap();
    assert!(text.starts_with("User,Email,CRM User ID,Role,Parent Role,Timeframe,Field,Week,Start Day,End Day,Data Type,Data Value\n"));
    assert_eq!(text.lines().count(), 1 + 40 * 4);
}

#[tokio::test]
async fn unknown_time_period_is_reported_not_passed_on() {
    let sb = sandbox_with(fast_knobs()).await;
    let c = client();
    let req = ForecastExportRequest {
        time_period: Some(period("2019_Q1")),
        ..Default::default()
    };
    let err = c
        .export_forecast(&target(&sb, 0), &fid("forecast"), &req, quick_wait())
        .await
        .unwrap_err();
    let current = sb.dataset().orgs[0].periods.last().unwrap().id.clone();
    assert_eq!(
        err,
        ClariError::WrongTimePeriod {
            requested: "2019_Q1".into(),
            returned: current
        }
    );
}
