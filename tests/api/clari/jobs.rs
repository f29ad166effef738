//! The export job lifecycle: limits, quota, cancel, and waits that time out.

use super::*;

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
    // A quarter of the job's latency later it has started.
    sb.advance(Duration::from_millis(600));
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
        still_wanted: None,
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
    // Later (as if the job's latency had passed), resuming finds it done.
    sb.advance(Duration::from_millis(1_200));
    let resumed = c
        .resume_forecast_export(&t, &job_id, None, quick_wait())
        .await
        .unwrap();
    assert!(matches!(resumed, ExportState::Ready(_)));
    // The job of the abandoned wait goes on to finish too.
    sb.advance(Duration::from_millis(1_300));
    let jobs = c.list_jobs(&t).await.unwrap();
    assert_eq!(jobs.len(), 2);
    assert!(jobs.iter().all(|j| j.status == JobStatus::Done), "{jobs:?}");
}
