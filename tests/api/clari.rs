//! The Clari client against the sandbox on port 0: every endpoint, every error path, retries and
//! backoff, batching, the job lifecycle, and the limits.

use std::time::{Duration, Instant};

use clari_mcp::clari::client::{ClariClient, ClariTarget, ClientOptions, RetryPolicy};
use clari_mcp::clari::sandbox::{self, Failure, Knobs, SandboxConfig, SandboxHandle};
use clari_mcp::clari::types::*;
use clari_mcp::clari::{ClariError, ExportState, ForecastId, JobId, OpportunityId, WaitPolicy};
use secrecy::SecretString;

async fn sandbox_with(knobs: Knobs) -> SandboxHandle {
    sandbox::start(SandboxConfig {
        knobs,
        ..SandboxConfig::default()
    })
    .await
    .unwrap()
}

fn fast_knobs() -> Knobs {
    Knobs {
        job_latency_ms: 80,
        retry_after_secs: 1,
        ..Knobs::default()
    }
}

fn client() -> ClariClient {
    ClariClient::new(ClientOptions {
        connect_timeout: Duration::from_secs(2),
        request_timeout: Duration::from_secs(5),
        retry: RetryPolicy {
            max_retries: 3,
            base_delay: Duration::from_millis(20),
            max_delay: Duration::from_millis(100),
            max_total: Duration::from_secs(10),
        },
        batch_concurrency: 4,
    })
}

fn target(sb: &SandboxHandle, org: usize) -> ClariTarget {
    ClariTarget::new(
        &sb.base_url,
        SecretString::from(sb.orgs()[org].api_key.clone()),
    )
    .unwrap()
}

fn manager_target(sb: &SandboxHandle, org: usize) -> ClariTarget {
    ClariTarget::new(
        &sb.base_url,
        SecretString::from(sb.orgs()[org].manager_api_key.clone()),
    )
    .unwrap()
}

fn quick_wait() -> WaitPolicy {
    WaitPolicy {
        poll_interval: Duration::from_millis(30),
        deadline: Duration::from_secs(10),
    }
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

fn fid(id: &str) -> ForecastId {
    ForecastId::parse(id).unwrap()
}

fn opp_ids(ids: &[String]) -> Vec<OpportunityId> {
    ids.iter()
        .map(|id| OpportunityId::parse(id).unwrap())
        .collect()
}

fn period(p: &str) -> TimePeriod {
    TimePeriod::parse(p).unwrap()
}

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

#[tokio::test]
async fn bad_input_is_refused_before_any_upstream_call() {
    let sb = sandbox_with(fast_knobs()).await;
    let c = client();
    let t = target(&sb, 0);
    assert!(
        TimePeriod::parse("2024-Q5")
            .unwrap_err()
            .contains("YYYY_QN")
    );
    let bad_currency = ForecastExportRequest {
        currency: Some("usd".into()),
        ..Default::default()
    };
    let cases: Vec<ClariError> = vec![
        c.create_forecast_export(&t, &fid("forecast"), &bad_currency)
            .await
            .unwrap_err(),
        ForecastId::parse("../admin").unwrap_err(),
        c.opportunities(
            &t,
            &vec![OpportunityId::parse("0065e00000AAAAAAAA").unwrap(); 10_001],
        )
        .await
        .unwrap_err(),
        OpportunityId::parse("not-an-id").unwrap_err(),
        c.opportunities(&t, &[]).await.unwrap_err(),
        c.audit_events(
            &t,
            &AuditQuery {
                date_from: Some("2026-11-10".into()),
                date_to: Some("2026-11-01".into()),
                ..Default::default()
            },
            now(),
        )
        .await
        .unwrap_err(),
        c.audit_events(
            &t,
            &AuditQuery {
                date_from: Some("2024-01-01".into()),
                ..Default::default()
            },
            now(),
        )
        .await
        .unwrap_err(),
        c.audit_events(
            &t,
            &AuditQuery {
                limit: Some(5000),
                ..Default::default()
            },
            now(),
        )
        .await
        .unwrap_err(),
        JobId::parse("a/../b").unwrap_err(),
        c.create_activity_export(
            &t,
            &ActivityExportRequest {
                activity_types: vec![],
                start_date: "2026-01-01".into(),
                end_date: "2026-01-02".into(),
                export_format: ExportFormat::Json,
            },
        )
        .await
        .unwrap_err(),
    ];
    for e in &cases {
        assert!(matches!(e, ClariError::InvalidArgument { .. }), "{e:?}");
    }
    assert!(cases[6].to_string().contains("30 days"));
    assert!(cases[2].to_string().contains("10000"));
    assert_eq!(sb.request_count(), 0, "nothing reached the API");
    let empty = ClariTarget::new(&sb.base_url, SecretString::from(String::new())).unwrap_err();
    assert!(matches!(empty, ClariError::InvalidArgument { .. }));
}

#[tokio::test]
async fn forecast_errors_name_what_happened() {
    let sb = sandbox_with(fast_knobs()).await;
    let c = client();
    let none = ForecastExportRequest::default();
    let e = c
        .create_forecast_export(&target(&sb, 0), &fid("deal_owner"), &none)
        .await
        .unwrap_err();
    assert_eq!(
        e,
        ClariError::UnknownForecast {
            forecast_id: "deal_owner".into()
        }
    );
    assert!(e.hint().contains("app.clari.com/forecast"));

    let crm = ForecastExportRequest {
        types_to_export: vec![ExportType::CrmTotal],
        ..Default::default()
    };
    let e = c
        .create_forecast_export(&target(&sb, 0), &fid("forecast"), &crm)
        .await
        .unwrap_err();
    assert!(matches!(e, ClariError::TypeNotSupported { .. }), "{e:?}");
    sb.set_knobs(|k| k.crm_types_supported = true);
    c.create_forecast_export(&target(&sb, 0), &fid("forecast"), &crm)
        .await
        .unwrap();

    // The manager key sees only the manager's team: the CEO's scope is not opted in.
    let org = &sb.dataset().orgs[0];
    let root_scope = org.users[0].scope_id.clone();
    let e = c
        .create_forecast_export(
            &manager_target(&sb, 0),
            &fid("forecast"),
            &ForecastExportRequest {
                scope_id: Some(root_scope),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&e, ClariError::NoOptIn { message } if message.contains("No optins")),
        "{e:?}"
    );
    let mine = c
        .export_forecast(
            &manager_target(&sb, 0),
            &fid("forecast"),
            &none,
            quick_wait(),
        )
        .await
        .unwrap()
        .ready()
        .unwrap();
    assert_eq!(mine.users.len(), 6, "a manager and five reps");
}

#[tokio::test]
async fn wrong_and_revoked_keys_are_reported_as_such() {
    let sb = sandbox_with(fast_knobs()).await;
    let c = client();
    let wrong = ClariTarget::new(&sb.base_url, SecretString::from("sbx_wrong".to_owned())).unwrap();
    assert_eq!(
        c.admin_limits(&wrong).await.unwrap_err(),
        ClariError::InvalidApiKey
    );
    let key = sb.orgs()[1].api_key.clone();
    c.admin_limits(&target(&sb, 1)).await.unwrap();
    sb.set_knobs(|k| k.revoked_keys.push(key));
    let e = c.admin_limits(&target(&sb, 1)).await.unwrap_err();
    assert_eq!(e, ClariError::InvalidApiKey);
    assert!(e.to_string().contains("revoked"));
    c.admin_limits(&target(&sb, 0)).await.unwrap();
}

#[tokio::test]
async fn concurrency_and_monthly_quota_really_limit() {
    let sb = sandbox_with(Knobs {
        job_latency_ms: 30_000,
        concurrent_limit: 1,
        monthly_quota: 3,
        ..fast_knobs()
    })
    .await;
    let c = client();
    let t = target(&sb, 0);
    let none = ForecastExportRequest::default();
    let first = c
        .create_forecast_export(&t, &fid("forecast"), &none)
        .await
        .unwrap();
    let e = c
        .create_forecast_export(&t, &fid("forecast"), &none)
        .await
        .unwrap_err();
    match &e {
        ClariError::QuotaReached {
            limits: Some(l), ..
        } => {
            assert_eq!(
                (l.jobs.concurrent_limit, l.jobs.available_concurrent_limit),
                (1, 0)
            );
            assert_eq!(l.jobs.running_job_ids, vec![first.to_string()]);
        }
        other => panic!("{other:?}"),
    }
    assert!(e.to_string().contains("0 of 1 concurrent"), "{e}");
    // Another organisation has its own limits.
    c.create_forecast_export(&target(&sb, 1), &fid("forecast"), &none)
        .await
        .unwrap();
    // Cancelling frees the slot and gives the quota back.
    let cancelled = c.cancel_job(&t, &first).await.unwrap();
    assert!(cancelled.successful);
    sb.set_knobs(|k| k.job_latency_ms = 0);
    for _ in 0..3 {
        c.create_forecast_export(&t, &fid("forecast"), &none)
            .await
            .unwrap();
    }
    let e = c
        .create_forecast_export(&t, &fid("forecast"), &none)
        .await
        .unwrap_err();
    let ClariError::QuotaReached {
        limits: Some(l), ..
    } = e
    else {
        panic!("{e:?}")
    };
    assert_eq!(
        (
            l.jobs.monthly_quota,
            l.jobs.available_monthly_quota,
            l.jobs.submitted_job_ids.len()
        ),
        (3, 0, 3)
    );
    assert!(l.jobs.running_job_ids.is_empty());
    sb.set_knobs(|k| {
        k.quota_exhausted = true;
        k.monthly_quota = 100;
    });
    assert!(matches!(
        c.create_forecast_export(&t, &fid("forecast"), &none).await,
        Err(ClariError::QuotaReached { .. })
    ));
}

#[tokio::test]
async fn cancel_follows_the_lifecycle_rules() {
    let sb = sandbox_with(Knobs {
        job_latency_ms: 2_000,
        ..fast_knobs()
    })
    .await;
    let c = client();
    let t = target(&sb, 0);
    let none = ForecastExportRequest::default();
    let scheduled = c
        .create_forecast_export(&t, &fid("forecast"), &none)
        .await
        .unwrap();
    assert_eq!(
        c.cancel_job(&t, &scheduled).await.unwrap().status,
        JobStatus::Cancelled
    );
    let running = c
        .create_forecast_export(&t, &fid("forecast"), &none)
        .await
        .unwrap();
    assert_eq!(
        c.results_raw(&t, &running).await.unwrap_err(),
        ClariError::JobNotFinished {
            job_id: running.to_string()
        }
    );
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        c.job(&t, &running).await.unwrap().status,
        JobStatus::Started
    );
    assert_eq!(
        c.cancel_job(&t, &running).await.unwrap().status,
        JobStatus::Aborted
    );
    assert_eq!(
        c.cancel_job(&t, &running).await.unwrap_err(),
        ClariError::JobAlreadyFinished {
            job_id: running.to_string()
        }
    );
    let e = c
        .wait_for_job(&t, &running, quick_wait())
        .await
        .unwrap_err();
    assert_eq!(
        e,
        ClariError::JobEnded {
            job_id: running.to_string(),
            status: "ABORTED".into()
        }
    );
    assert_eq!(
        c.job(&t, &JobId::parse("ffffffffffffffffffffffff").unwrap())
            .await
            .unwrap_err(),
        ClariError::JobNotFound {
            job_id: "ffffffffffffffffffffffff".into()
        }
    );
    // Jobs belong to the key's user and organisation.
    assert!(matches!(
        c.job(&target(&sb, 1), &scheduled).await,
        Err(ClariError::JobNotFound { .. })
    ));
    assert!(
        c.list_jobs(&manager_target(&sb, 0))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(c.list_jobs(&t).await.unwrap().len(), 2);
    // Failed jobs are reported as such.
    sb.set_knobs(|k| {
        k.fail_jobs = true;
        k.job_latency_ms = 50;
    });
    let e = c
        .export_forecast(&t, &fid("forecast"), &none, quick_wait())
        .await
        .unwrap_err();
    assert!(matches!(e, ClariError::JobEnded { status, .. } if status == "FAILED"));
}

#[tokio::test]
async fn a_wait_that_times_out_returns_the_job_and_resume_finishes_it() {
    let sb = sandbox_with(Knobs {
        job_latency_ms: 1_200,
        ..fast_knobs()
    })
    .await;
    let c = client();
    let t = target(&sb, 0);
    let short = WaitPolicy {
        poll_interval: Duration::from_millis(50),
        deadline: Duration::from_millis(150),
    };
    let req = ForecastExportRequest::default();
    let ExportState::Running {
        job_id: Some(job_id),
    } = c
        .export_forecast(&t, &fid("forecast"), &req, short)
        .await
        .unwrap()
    else {
        panic!("the job cannot be done yet");
    };
    // An abandoned wait (the caller went away) cancels nothing either.
    let _ = tokio::time::timeout(
        Duration::from_millis(100),
        c.export_forecast(&t, &fid("forecast"), &req, quick_wait()),
    )
    .await;
    let resumed = c
        .resume_forecast_export(&t, &job_id, None, quick_wait())
        .await
        .unwrap();
    assert!(matches!(resumed, ExportState::Ready(_)));
    tokio::time::sleep(Duration::from_millis(1_300)).await;
    let jobs = c.list_jobs(&t).await.unwrap();
    assert_eq!(jobs.len(), 2);
    assert!(jobs.iter().all(|j| j.status == JobStatus::Done), "{jobs:?}");
}

#[tokio::test]
async fn rate_limits_honour_retry_after() {
    let sb = sandbox_with(Knobs {
        retry_after_secs: 1,
        ..fast_knobs()
    })
    .await;
    let c = client();
    sb.fail_next(Failure::RateLimited, 1);
    let started = Instant::now();
    c.admin_limits(&target(&sb, 0)).await.unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(950),
        "waited {:?}",
        started.elapsed()
    );
    assert_eq!(sb.request_count(), 2);
    // A 429 on export creation means no job was made: retrying is safe and makes exactly one.
    sb.fail_next(Failure::RateLimited, 1);
    c.create_forecast_export(
        &target(&sb, 0),
        &fid("forecast"),
        &ForecastExportRequest::default(),
    )
    .await
    .unwrap();
    assert_eq!(sb.jobs_created(), 1);
    // Past the budget the error says so, with the server's delay.
    sb.set_knobs(|k| k.retry_after_secs = 60);
    sb.fail_next(Failure::RateLimited, 1);
    let e = c.admin_limits(&target(&sb, 0)).await.unwrap_err();
    assert_eq!(
        e,
        ClariError::RateLimited {
            retry_after: Some(Duration::from_secs(60))
        }
    );
}

#[tokio::test]
async fn server_errors_retry_reads_with_backoff_but_never_duplicate_a_job() {
    let sb = sandbox_with(fast_knobs()).await;
    let c = client();
    let t = target(&sb, 0);
    sb.fail_next(Failure::ServerError, 2);
    c.admin_limits(&t).await.unwrap();
    assert_eq!(sb.request_count(), 3);
    sb.fail_next(Failure::Unavailable, 1);
    c.list_jobs(&t).await.unwrap();
    assert_eq!(sb.request_count(), 5);

    sb.fail_next(Failure::ServerError, 1);
    let e = c
        .create_forecast_export(&t, &fid("forecast"), &ForecastExportRequest::default())
        .await
        .unwrap_err();
    assert_eq!(e, ClariError::Unavailable { status: 500 });
    assert_eq!(sb.request_count(), 6, "a failed creation is not retried");
    assert_eq!(sb.jobs_created(), 0);

    sb.set_knobs(|k| {
        k.fail_every = 1;
        k.failure = Failure::ServerError;
    });
    let before = sb.request_count();
    assert_eq!(
        c.admin_limits(&t).await.unwrap_err(),
        ClariError::Unavailable { status: 500 }
    );
    assert_eq!(
        sb.request_count() - before,
        4,
        "one attempt and three retries"
    );
    sb.set_knobs(|k| k.fail_every = 0);

    // 4xx other than 429 are answers, not accidents: no retry.
    let before = sb.request_count();
    c.create_forecast_export(&t, &fid("deal_owner"), &ForecastExportRequest::default())
        .await
        .unwrap_err();
    assert_eq!(sb.request_count() - before, 1);
}

#[tokio::test]
async fn timeouts_and_unreachable_hosts_are_reported() {
    let sb = sandbox_with(Knobs {
        timeout_delay_ms: 3_000,
        ..fast_knobs()
    })
    .await;
    let c = ClariClient::new(ClientOptions {
        request_timeout: Duration::from_millis(300),
        retry: RetryPolicy {
            max_retries: 1,
            base_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(10),
            max_total: Duration::from_secs(5),
        },
        ..ClientOptions::default()
    });
    sb.fail_next(Failure::Timeout, 2);
    assert_eq!(
        c.admin_limits(&target(&sb, 0)).await.unwrap_err(),
        ClariError::Timeout
    );
    // A read that times out once is retried and succeeds.
    sb.fail_next(Failure::Timeout, 1);
    c.admin_limits(&target(&sb, 0)).await.unwrap();

    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let nowhere = ClariTarget::new(
        &format!("http://{closed}/v4"),
        SecretString::from("k".repeat(10)),
    )
    .unwrap();
    let e = c.admin_limits(&nowhere).await.unwrap_err();
    assert!(matches!(e, ClariError::Network(_)), "{e:?}");
    assert!(e.is_transient());
}

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
    assert!(with_history > 100, "{with_history}");
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

#[tokio::test]
async fn bare_job_envelope_is_read_too() {
    let sb = sandbox_with(Knobs {
        wrap_job_envelope: false,
        ..fast_knobs()
    })
    .await;
    let c = client();
    let r = c
        .export_forecast(
            &target(&sb, 0),
            &fid("renewals"),
            &ForecastExportRequest::default(),
            quick_wait(),
        )
        .await
        .unwrap();
    assert!(matches!(r, ExportState::Ready(_)));
}

#[tokio::test]
async fn sandbox_speaks_clari_wire_format() {
    let sb = sandbox_with(fast_knobs()).await;
    clari_mcp::init_crypto();
    let http = reqwest::Client::new();
    let key = sb.orgs()[0].api_key.clone();
    let get = |path: &str| {
        http.get(format!("{}{path}", sb.base_url))
            .header("apikey", &key)
            .send()
    };

    let r = http
        .get(format!("{}/admin/limits", sb.base_url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap()["message"],
        "No API key found in request"
    );
    let r = get("/no/such/path").await.unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap()["message"],
        "no Route matched with those values"
    );

    let limits: serde_json::Value = get("/admin/limits").await.unwrap().json().await.unwrap();
    assert!(
        limits["jobs"].get("runningJobIds").is_none(),
        "omitted when nothing runs"
    );

    let r = get("/audit/events?limit=0").await.unwrap();
    assert_eq!(r.status(), 400);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["errors"][0]["status"], "400");

    let r = get("/opportunity").await.unwrap();
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body[0]["reaspnPhrase"], "Bad Request");
    assert_eq!(body[0]["details"], "oppId is required");

    let r = http
        .post(format!("{}/export/activity", sb.base_url))
        .header("apikey", &key)
        .json(&serde_json::json!({"activityTypes": ["CALL"]}))
        .send()
        .await
        .unwrap();
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(
        (body["code"].as_str(), body["namespace"].as_str()),
        (Some("Bad request"), Some("activity"))
    );

    let r = http
        .post(format!("{}/export/forecast/forecast", sb.base_url))
        .header("apikey", &key)
        .body("{not json")
        .send()
        .await
        .unwrap();
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["code"], "bad_request");
    let r = http
        .post(format!("{}/export/forecast/forecast", sb.base_url))
        .header("apikey", &key)
        .json(&serde_json::json!({"typesToExport": ["forecast_value"]}))
        .send()
        .await
        .unwrap();
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(
        body["message"],
        "The following typesToExport values are invalid: [\"forecast_value\"]"
    );

    let r = http
        .post(format!("{}/export/forecast/forecast", sb.base_url))
        .header("apikey", &key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "forecast export creation answers 200");
    let job = r.json::<serde_json::Value>().await.unwrap()["jobId"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(job.len(), 24);
    let wrapped: serde_json::Value = get(&format!("/export/jobs/{job}"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(wrapped["job"]["jobId"], job.as_str());
    let r = http
        .post(format!("{}/export/audit/events", sb.base_url))
        .header("apikey", &key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202, "audit export creation answers 202");

    let knobs: serde_json::Value = http
        .put(format!(
            "{}/_sandbox/knobs",
            sb.base_url.trim_end_matches("/v4")
        ))
        .json(&serde_json::json!({"job_latency_ms": 5}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(knobs["job_latency_ms"], 5);
    assert_eq!(sb.knobs().job_latency_ms, 5);
}
