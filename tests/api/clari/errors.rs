//! Bad input refused before any upstream call; Clari's errors in words.

use super::*;

#[tokio::test]
async fn bad_input_is_refused_before_any_upstream_call() {
    let sb = sandbox_with(fast_knobs()).await;
    let c = client();
    let t = target(&sb, 0);
    let bad_currency = ForecastExportRequest {
        currency: Some("usd".into()),
        ..Default::default()
    };
    let period = TimePeriod::parse("2024-Q5").unwrap_err();
    assert!(
        period.argument == "time_period" && period.reason.contains("YYYY_QN"),
        "{period:?}"
    );
    let cases: Vec<ClariError> = vec![
        c.create_forecast_export(&t, &fid("forecast"), &bad_currency)
            .await
            .unwrap_err(),
        ForecastId::parse("../admin").unwrap_err().into(),
        c.opportunities(
            &t,
            &vec![OpportunityId::parse("0065e00000AAAAAAAA").unwrap(); 10_001],
        )
        .await
        .unwrap_err(),
        OpportunityId::parse("not-an-id").unwrap_err().into(),
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
        JobId::parse("a/../b").unwrap_err().into(),
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
    assert!(cases[2].to_string().contains("1000"));
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
