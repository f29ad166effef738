//! Retries, rate limits, timeouts and envelopes on the wire.

use super::*;

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

    // What it served, for drivers outside the process.
    let stats: serde_json::Value = http
        .get(format!(
            "{}/_sandbox/stats",
            sb.base_url.trim_end_matches("/v4")
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats["jobs_created"], sb.jobs_created() as u64);
    assert!(stats["jobs_created"].as_u64().unwrap() >= 2, "{stats}");
    assert_eq!(stats["requests"], sb.request_count());
}

/// A base URL is an organisation admin's choice, so what answers there may be hostile: an answer
/// larger than the client reads is refused, whether it says so up front, streams on without end,
/// or is a small gzip body that inflates to far more. None is retried.
#[tokio::test]
async fn answers_larger_than_the_bound_are_refused_not_held() {
    use std::io::Write as _;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use axum::body::Body;
    use axum::http::header;
    use axum::response::IntoResponse;
    use axum::routing::get;

    const MB: usize = 1 << 20;
    // 64 MB of JSON whitespace: gzip makes it about 64 KB.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let block = vec![b' '; MB];
    for _ in 0..64 {
        gz.write_all(&block).unwrap();
    }
    let bomb = gz.finish().unwrap();
    assert!(bomb.len() < MB / 4, "{} bytes compressed", bomb.len());
    let hits = Arc::new(AtomicUsize::new(0));
    let count = |hits: &Arc<AtomicUsize>| {
        let hits = hits.clone();
        move || {
            hits.fetch_add(1, Ordering::SeqCst);
        }
    };
    let (gzip_hit, long_hit, endless_hit) = (count(&hits), count(&hits), count(&hits));
    let app = axum::Router::new()
        .route(
            "/admin/limits",
            get(move || async move {
                gzip_hit();
                (
                    [
                        (header::CONTENT_TYPE, "application/json"),
                        (header::CONTENT_ENCODING, "gzip"),
                    ],
                    bomb,
                )
                    .into_response()
            }),
        )
        .route(
            "/export/jobs/{job}/results",
            get(move || async move {
                long_hit();
                vec![b' '; 2 * MB].into_response()
            }),
        )
        .route(
            "/export/jobs",
            get(move || async move {
                endless_hit();
                let chunk = axum::body::Bytes::from(vec![b' '; 64 * 1024]);
                let endless = futures_util::stream::repeat_with(move || {
                    Ok::<_, std::convert::Infallible>(chunk.clone())
                });
                Body::from_stream(endless).into_response()
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let c = ClariClient::new(ClientOptions {
        max_response_bytes: MB as u64,
        ..ClientOptions::default()
    });
    let t = ClariTarget::new(&base, SecretString::from("hostile-key".to_owned())).unwrap();
    let too_large = ClariError::ResponseTooLarge { limit_mb: 1 };
    assert_eq!(c.admin_limits(&t).await.unwrap_err(), too_large);
    assert_eq!(
        c.forecast_results(&t, &JobId::parse("j1").unwrap())
            .await
            .unwrap_err(),
        too_large
    );
    assert_eq!(c.list_jobs(&t).await.unwrap_err(), too_large);
    assert_eq!(hits.load(Ordering::SeqCst), 3, "no retries");
    assert_eq!(too_large.class(), "clari_data");
}
