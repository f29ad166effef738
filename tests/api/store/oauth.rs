//! The authorization-server and export-queue storage, on SQLite and PostgreSQL alike, with the
//! atomic operations raced by truly concurrent callers (on SQLite writers serialise; on
//! PostgreSQL they do not, which is where a missing condition would show).

use std::sync::Arc;

use clari_mcp::crypto::sha256_hex;
use clari_mcp::scope::ScopeSet;
use clari_mcp::store::{
    ClientId, ClientKind, ClientRecord, CodeRecord, CodeRedemption, ExportClaim, ExportStaleness,
    ExportStatus, GrantId, OrgId, Promotion, RefreshRecord, Role, ServiceAuth, ServiceClient,
    Store, UserId,
};
use serde_json::json;

use crate::both_backends;
use crate::helpers::TestDb;

both_backends!(
    clients_grants_and_consent_round_trip,
    a_code_is_redeemed_exactly_once_under_concurrency,
    a_refresh_token_rotates_exactly_once_under_concurrency,
    sessions_and_rate_windows_expire,
    the_export_queue_never_grants_more_slots_than_the_limit,
    machine_clients_round_trip_and_stop_with_their_organisation,
    a_jwt_id_is_accepted_once_across_replicas_until_it_expires,
    credential_gauges_count_every_organisation_and_name_only_the_busiest,
    a_clients_use_is_written_at_most_once_a_minute,
);

const NOW: i64 = 1_790_000_000;

async fn setup(db: &TestDb) -> (Arc<dyn Store>, OrgId, UserId, ClientId) {
    let store = db.store().await;
    let org = store
        .create_org(&crate::helpers::org_name("Acme"), NOW)
        .await
        .unwrap();
    let user = store
        .create_user(
            &org.id,
            &clari_mcp::store::Email::parse("ava@acme.test").unwrap(),
            "$argon2id$dummy",
            Role::Admin,
            NOW,
        )
        .await
        .unwrap();
    let client = ClientRecord {
        id: ClientId::parse("cmc_test").unwrap(),
        kind: ClientKind::Dcr,
        metadata: json!({"client_name": "Agent", "redirect_uris": ["http://127.0.0.1/cb"]}),
        secret_hash: None,
        registration_token_hash: Some(sha256_hex("rat")),
        created_at: NOW,
        updated_at: NOW,
        last_used_at: None,
        expires_at: Some(NOW + 86_400),
        disabled: false,
    };
    store.create_client(&client).await.unwrap();
    (store, org.id, user.id, client.id)
}

fn scope(s: &str) -> ScopeSet {
    ScopeSet::parse(s).unwrap()
}

async fn clients_grants_and_consent_round_trip(db: &TestDb) {
    let (store, org, user, cid) = setup(db).await;
    let c = store.client(&cid).await.unwrap().unwrap();
    assert_eq!(c.metadata["client_name"], "Agent");
    let g = store
        .upsert_grant(
            &org,
            &user,
            &cid,
            &scope("forecasts:read"),
            "https://x/mcp",
            true,
            NOW,
        )
        .await
        .unwrap();
    assert!(g.consent_remembered);
    // One live grant per (user, org, client): a second consent updates it.
    let g2 = store
        .upsert_grant(
            &org,
            &user,
            &cid,
            &scope("clari:read"),
            "https://x/mcp",
            true,
            NOW + 1,
        )
        .await
        .unwrap();
    assert_eq!(g.id, g2.id);
    assert_eq!(g2.scope, scope("clari:read"));
    assert_eq!(store.forget_consent_everywhere(&cid).await.unwrap(), 1);
    let live = store
        .live_grant_for(&org, &user, &cid)
        .await
        .unwrap()
        .unwrap();
    assert!(
        !live.consent_remembered,
        "consent forgotten, grant still live"
    );
    let again = store
        .upsert_grant(
            &org,
            &user,
            &cid,
            &scope("clari:read"),
            "https://x/mcp",
            true,
            NOW + 2,
        )
        .await
        .unwrap();
    assert!(again.consent_remembered, "approving again remembers it");
    // Tenant isolation: the grant is not visible through another organisation.
    let other = store
        .create_org(&crate::helpers::org_name("Globex"), NOW)
        .await
        .unwrap();
    assert!(store.live_grant(&other.id, &g.id).await.unwrap().is_none());
    // Disabling the client revokes its grants.
    assert!(store.disable_client(&cid, NOW + 3).await.unwrap());
    assert!(store.live_grant(&org, &g.id).await.unwrap().is_none());
}

async fn a_code_is_redeemed_exactly_once_under_concurrency(db: &TestDb) {
    let (store, org, user, cid) = setup(db).await;
    let g = store
        .upsert_grant(
            &org,
            &user,
            &cid,
            &scope("clari:read"),
            "https://x/mcp",
            true,
            NOW,
        )
        .await
        .unwrap();
    let code = CodeRecord {
        code_hash: sha256_hex("code"),
        grant_id: g.id.clone(),
        organization_id: org.clone(),
        client_id: cid.clone(),
        user_id: user.clone(),
        redirect_uri: "http://127.0.0.1/cb".into(),
        code_challenge: "c".repeat(43),
        scope: scope("clari:read"),
        resource: "https://x/mcp".into(),
        created_at: NOW,
        expires_at: NOW + 60,
        consumed_at: None,
    };
    store.insert_code(&code).await.unwrap();
    let attempts = (0..8).map(|_| {
        let store = store.clone();
        let hash = code.code_hash.clone();
        tokio::spawn(async move { store.redeem_code(&hash, NOW + 1).await.unwrap() })
    });
    let results: Vec<CodeRedemption> = futures_util::future::join_all(attempts)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let redeemed = results
        .iter()
        .filter(|r| matches!(r, CodeRedemption::Redeemed(_)))
        .count();
    assert_eq!(redeemed, 1, "{results:?}");
    assert!(
        results
            .iter()
            .all(|r| matches!(r, CodeRedemption::Redeemed(_) | CodeRedemption::Replayed(_)))
    );
}

fn refresh_record(hash: &str, grant: &GrantId, org: &OrgId, cid: &ClientId) -> RefreshRecord {
    RefreshRecord {
        token_hash: hash.into(),
        grant_id: grant.clone(),
        organization_id: org.clone(),
        client_id: cid.clone(),
        scope: scope("clari:read"),
        resource: "https://x/mcp".into(),
        created_at: NOW,
        expires_at: NOW + 86_400,
        rotated_at: None,
        replaced_by: None,
        revoked_at: None,
        jkt: None,
    }
}

async fn a_refresh_token_rotates_exactly_once_under_concurrency(db: &TestDb) {
    let (store, org, user, cid) = setup(db).await;
    let g = store
        .upsert_grant(
            &org,
            &user,
            &cid,
            &scope("clari:read"),
            "https://x/mcp",
            true,
            NOW,
        )
        .await
        .unwrap();
    store
        .insert_refresh(&refresh_record("old", &g.id, &org, &cid))
        .await
        .unwrap();
    let attempts = (0..8).map(|i| {
        let store = store.clone();
        let next = refresh_record(&format!("new{i}"), &g.id, &org, &cid);
        tokio::spawn(async move { store.rotate_refresh("old", &next, NOW + 1).await.unwrap() })
    });
    let won = futures_util::future::join_all(attempts)
        .await
        .into_iter()
        .filter(|r| *r.as_ref().unwrap())
        .count();
    assert_eq!(won, 1);
    let old = store.refresh("old").await.unwrap().unwrap();
    let first = old.replaced_by.clone().unwrap();
    // Concurrent retries swap the successor one at a time; each sees the current one.
    let retries = (0..4).map(|i| {
        let store = store.clone();
        let next = refresh_record(&format!("retry{i}"), &g.id, &org, &cid);
        let previous = first.clone();
        tokio::spawn(async move {
            store
                .retry_rotation("old", &previous, &next, NOW + 2)
                .await
                .unwrap()
        })
    });
    let swapped = futures_util::future::join_all(retries)
        .await
        .into_iter()
        .filter(|r| *r.as_ref().unwrap())
        .count();
    assert_eq!(swapped, 1, "only one retry may replace a given successor");
    assert!(
        store
            .refresh(&first)
            .await
            .unwrap()
            .unwrap()
            .revoked_at
            .is_some()
    );
}

async fn sessions_and_rate_windows_expire(db: &TestDb) {
    let store = db.store().await;
    fn row<'a>(
        id: &'a str,
        expires_at: i64,
        owner: Option<&'a str>,
    ) -> clari_mcp::store::SessionRow<'a> {
        clari_mcp::store::SessionRow {
            id,
            data: "{}",
            expires_at,
            owner,
            anonymous: true,
        }
    }
    store.save_session(row("s1", NOW + 10, None)).await.unwrap();
    assert!(store.load_session("s1", NOW).await.unwrap().is_some());
    // An owner keeps at most `keep` anonymous sessions: the least recently used go first.
    for i in 0..5 {
        let id = format!("o{i}");
        assert!(
            store
                .create_session(row(&id, NOW + 100 + i, Some("10.0.0.1")), 3)
                .await
                .unwrap()
        );
    }
    assert!(
        store
            .create_session(row("p0", NOW + 100, Some("10.0.0.2")), 3)
            .await
            .unwrap()
    );
    for (id, kept) in [
        ("o0", false),
        ("o1", false),
        ("o2", true),
        ("o4", true),
        ("p0", true),
    ] {
        assert_eq!(
            store.load_session(id, NOW).await.unwrap().is_some(),
            kept,
            "{id}"
        );
    }
    for id in ["o2", "o3", "o4", "p0"] {
        store.delete_session(id).await.unwrap();
    }
    assert!(store.load_session("s1", NOW + 10).await.unwrap().is_none());
    let purged = store.purge_expired(NOW + 10, NOW).await.unwrap();
    assert_eq!(purged.sessions, 1);
    let hits = (0..6).map(|_| {
        let store = store.clone();
        tokio::spawn(async move { store.rate_hit("b", NOW).await.unwrap() })
    });
    let mut counts: Vec<i64> = futures_util::future::join_all(hits)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    counts.sort();
    assert_eq!(counts, [1, 2, 3, 4, 5, 6], "every hit counted once");
}

async fn the_export_queue_never_grants_more_slots_than_the_limit(db: &TestDb) {
    let store = db.store().await;
    let org = store
        .create_org(&crate::helpers::org_name("Acme"), NOW)
        .await
        .unwrap()
        .id;
    let stale = ExportStaleness {
        queued_before: NOW - 60,
        active_before: NOW - 900,
        done_before: NOW - 300,
    };
    // Ten requests join the queue at once.
    for i in 0..10 {
        assert_eq!(
            store
                .claim_export(&org, &format!("k{i}"), NOW, stale)
                .await
                .unwrap(),
            ExportClaim::Won
        );
    }
    // Every owner tries for a slot at the same time, several rounds: never more than 2 active.
    let mut started = 0;
    for round in 0..5 {
        let tries = (0..10).map(|i| {
            let store = store.clone();
            let org = org.clone();
            tokio::spawn(async move {
                store
                    .promote_export(&org, &format!("k{i}"), 2, NOW + round, stale)
                    .await
                    .unwrap()
            })
        });
        started += futures_util::future::join_all(tries)
            .await
            .into_iter()
            .filter(|p| matches!(p.as_ref().unwrap(), Promotion::Start))
            .count();
        assert!(
            store
                .active_exports(&org, stale.active_before)
                .await
                .unwrap()
                <= 2
        );
    }
    assert_eq!(started, 2, "two slots, two starts");
    // First come, first served: the queue positions follow the claims.
    match store
        .promote_export(&org, "k2", 2, NOW + 9, stale)
        .await
        .unwrap()
    {
        Promotion::Wait { position, .. } => assert_eq!(position, 1),
        other => panic!("{other:?}"),
    }
    // A finished export frees its slot for the next in line.
    assert!(
        store
            .record_export_job(&org, "k0", "job0", NOW + 10)
            .await
            .unwrap()
    );
    store
        .finish_export(&org, "k0", true, NOW + 11)
        .await
        .unwrap();
    // A job is recorded only on a row still starting: never on one the kill switch closed.
    assert!(
        !store
            .record_export_job(&org, "k0", "job-late", NOW + 11)
            .await
            .unwrap()
    );
    assert_eq!(
        store
            .promote_export(&org, "k2", 2, NOW + 12, stale)
            .await
            .unwrap(),
        Promotion::Start
    );
    // Another replica asking for k0 finds the finished job to follow.
    match store
        .claim_export(&org, "k0", NOW + 12, stale)
        .await
        .unwrap()
    {
        ExportClaim::Taken {
            clari_job_id: Some(j),
            status: ExportStatus::Done,
            ..
        } => assert_eq!(j, "job0"),
        other => panic!("{other:?}"),
    }
}

async fn machine_clients_round_trip_and_stop_with_their_organisation(db: &TestDb) {
    let (store, org, _, _) = setup(db).await;
    let other = store
        .create_org(&crate::helpers::org_name("Other"), NOW)
        .await
        .unwrap();
    let client = |id: &str, org: &OrgId| ServiceClient {
        id: ClientId::parse(id).unwrap(),
        organization_id: org.clone(),
        name: "Weekly report".into(),
        scopes: scope("forecasts:read users:read"),
        auth_method: ServiceAuth::PrivateKeyJwt,
        secret_hash: None,
        jwks: Some(r#"{"keys":[]}"#.into()),
        jwks_uri: None,
        created_by: Some("someone".into()),
        created_at: NOW,
        last_used_at: None,
        revoked_at: None,
        org_requires_dpop: false,
    };
    let a = client("svc_a", &org);
    store.insert_service_client(&a).await.unwrap();
    store
        .insert_service_client(&client("svc_b", &other.id))
        .await
        .unwrap();
    assert_eq!(store.service_client(&a.id).await.unwrap(), Some(a.clone()));
    assert_eq!(store.service_clients(&org).await.unwrap(), vec![a.clone()]);
    // Isolation: another organisation's id finds nothing live, and cannot be revoked from here.
    assert!(
        store
            .live_service_client(&other.id, &a.id)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        !store
            .revoke_service_client(&other.id, &a.id, NOW)
            .await
            .unwrap()
    );
    // The organisation's DPoP requirement comes with the live client.
    store.set_org_requires_dpop(&org, true).await.unwrap();
    assert!(store.org_requires_dpop(&org).await.unwrap());
    let live = store
        .live_service_client(&org, &a.id)
        .await
        .unwrap()
        .unwrap();
    assert!(live.org_requires_dpop);
    store
        .touch_service_client(&org, &a.id, NOW + 5)
        .await
        .unwrap();
    assert_eq!(
        store
            .service_client(&a.id)
            .await
            .unwrap()
            .unwrap()
            .last_used_at,
        Some(NOW + 5)
    );
    // A disabled organisation's client is not live; the kill switch revokes it for good.
    store.set_org_disabled(&org, true).await.unwrap();
    assert!(
        store
            .live_service_client(&org, &a.id)
            .await
            .unwrap()
            .is_none()
    );
    store.set_org_disabled(&org, false).await.unwrap();
    let killed = store.kill_org(&org, NOW + 10).await.unwrap();
    assert_eq!(killed.service_clients, 1);
    store.set_org_disabled(&org, false).await.unwrap();
    assert!(
        store
            .live_service_client(&org, &a.id)
            .await
            .unwrap()
            .is_none()
    );
    // At most 50 live per organisation; a revoked one frees its place.
    store
        .revoke_service_client(&other.id, &ClientId::parse("svc_b").unwrap(), NOW)
        .await
        .unwrap();
    for i in 0..50 {
        store
            .insert_service_client(&client(&format!("svc_many_{i}"), &other.id))
            .await
            .unwrap();
    }
    let err = store
        .insert_service_client(&client("svc_one_too_many", &other.id))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("at most 50"), "{err}");
    // Revoked ones go with housekeeping, as revoked grants do.
    let purged = store.purge_expired(NOW + 20, NOW + 20).await.unwrap();
    assert_eq!(purged.service_clients, 2);
    assert!(store.service_client(&a.id).await.unwrap().is_none());
}

async fn a_jwt_id_is_accepted_once_across_replicas_until_it_expires(db: &TestDb) {
    let replicas = [db.store().await, db.store().await];
    // Many callers on two replicas present the same jti at the same moment: one wins.
    let attempts = (0..16).map(|i| {
        let store = replicas[i % 2].clone();
        tokio::spawn(async move { store.remember_jti("digest-1", NOW + 300).await.unwrap() })
    });
    let won: Vec<bool> = futures_util::future::join_all(attempts)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(won.iter().filter(|w| **w).count(), 1, "{won:?}");
    assert!(
        replicas[1]
            .remember_jti("digest-2", NOW + 300)
            .await
            .unwrap()
    );
    // Housekeeping drops it once the JWT it came from has expired, not before.
    let purged = replicas[0].purge_expired(NOW + 299, 0).await.unwrap();
    assert_eq!(purged.jtis, 0);
    let purged = replicas[0].purge_expired(NOW + 300, 0).await.unwrap();
    assert_eq!(purged.jtis, 2);
}

/// The metrics read live credentials in all, and per organisation only for the busiest: the
/// series stay few however many organisations there are. Revoked grants and keys, and expired
/// keys, are not live.
async fn credential_gauges_count_every_organisation_and_name_only_the_busiest(db: &TestDb) {
    let (store, acme, ava, cid) = setup(db).await;
    let two = ClientRecord {
        id: ClientId::parse("cmc_two").unwrap(),
        ..store.client(&cid).await.unwrap().unwrap()
    };
    store.create_client(&two).await.unwrap();
    let (beta, bob) = super::org_and_user(&store, "Beta", "bob@beta.test").await;
    let (gamma, cat) = super::org_and_user(&store, "Gamma", "cat@gamma.test").await;
    let grant = |org: OrgId, user: UserId, client: ClientId| {
        let store = store.clone();
        async move {
            store
                .upsert_grant(
                    &org,
                    &user,
                    &client,
                    &scope("forecasts:read"),
                    "https://x/mcp",
                    true,
                    NOW,
                )
                .await
                .unwrap()
        }
    };
    grant(acme.clone(), ava.clone(), cid.clone()).await;
    let revoked = grant(acme.clone(), ava.clone(), two.id.clone()).await;
    grant(beta.clone(), bob.clone(), cid.clone()).await;
    let key = |org: &OrgId, user: &UserId, secret: &str, expires: Option<i64>| {
        super::new_key(org, user, secret, "forecasts:read", expires)
    };
    store
        .create_api_key(&key(&acme, &ava, "cmk_acme_one", None))
        .await
        .unwrap();
    store
        .create_api_key(&key(&beta, &bob, "cmk_beta_gone", Some(NOW - 1)))
        .await
        .unwrap();
    for secret in ["cmk_gamma_one", "cmk_gamma_two"] {
        store
            .create_api_key(&key(&gamma, &cat, secret, None))
            .await
            .unwrap();
    }

    let a = store.org_activity(NOW, 2).await.unwrap();
    assert_eq!(
        (a.organisations, a.grants, a.clients, a.api_keys),
        (3, 3, 3, 3),
        "{a:?}"
    );
    assert_eq!(
        a.top,
        vec![(acme.to_string(), 2, 2, 1), (gamma.to_string(), 0, 0, 2),]
    );
    assert!(
        store
            .revoke_grant(&acme, &revoked.id, NOW + 1)
            .await
            .unwrap()
    );
    let a = store.org_activity(NOW + 1, 0).await.unwrap();
    assert_eq!(
        (a.organisations, a.grants, a.clients, a.api_keys),
        (3, 2, 2, 3),
        "{a:?}"
    );
    assert!(a.top.is_empty());
}

/// Every token touches its client, whose row every organisation's tokens share: it is written
/// when the minute has turned, not once per token (the expiry of an unused registration moves
/// with it).
async fn a_clients_use_is_written_at_most_once_a_minute(db: &TestDb) {
    let (store, _, _, cid) = setup(db).await;
    let seen = async |at: i64| {
        let c = store.client(&cid).await.unwrap().unwrap();
        assert_eq!(c.last_used_at, Some(at));
        assert_eq!(c.expires_at, Some(at + 86_400));
    };
    store
        .touch_client(&cid, NOW, Some(NOW + 86_400))
        .await
        .unwrap();
    seen(NOW).await;
    store
        .touch_client(&cid, NOW + 59, Some(NOW + 59 + 86_400))
        .await
        .unwrap();
    seen(NOW).await;
    store
        .touch_client(&cid, NOW + 60, Some(NOW + 60 + 86_400))
        .await
        .unwrap();
    seen(NOW + 60).await;
}
