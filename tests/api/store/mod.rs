//! The store suite: every case runs against SQLite and PostgreSQL. Here organisations, users,
//! Clari credentials and API keys; the authorization server's records and the export queue in
//! `oauth`.

mod oauth;

use std::sync::Arc;

use clari_mcp::crypto::{Sealed, Vault, VaultError, sha256_hex};
use clari_mcp::scope::{Scope, ScopeSet};
use clari_mcp::store::{ApiKeyId, Email, NewApiKey, OrgId, Role, Store, StoreError, UserId};

use crate::both_backends;
use crate::helpers::TestDb;

const NOW: i64 = 1_790_000_000;

fn email(s: &str) -> Email {
    Email::parse(s).unwrap()
}

async fn org_and_user(store: &Arc<dyn Store>, org: &str, mail: &str) -> (OrgId, UserId) {
    let o = store
        .create_org(&crate::helpers::org_name(org), NOW)
        .await
        .unwrap();
    let u = store
        .create_user(&o.id, &email(mail), "$argon2id$dummy", Role::Member, NOW)
        .await
        .unwrap();
    (o.id, u.id)
}

fn new_key(
    org: &OrgId,
    user: &UserId,
    secret: &str,
    scopes: &str,
    expires_at: Option<i64>,
) -> NewApiKey {
    NewApiKey {
        id: ApiKeyId::new_random(),
        organization_id: org.clone(),
        user_id: user.clone(),
        name: "laptop".into(),
        key_hash: sha256_hex(secret),
        key_hint: secret[secret.len() - 4..].to_owned(),
        scopes: ScopeSet::parse(scopes).unwrap(),
        expires_at,
        created_at: NOW,
    }
}

both_backends!(
    migrations_are_idempotent,
    organisations_are_created_found_by_id_or_name_and_names_are_unique,
    disabling_an_unknown_org_is_not_found,
    duplicate_email_is_a_conflict_and_leaves_no_rows,
    user_in_unknown_org_rolls_back_the_user,
    a_user_can_belong_to_several_orgs,
    clari_credentials_are_isolated_by_organisation,
    clari_credential_replacement_keeps_created_at,
    reseal_rewrites_only_old_key_rows,
    reseal_failure_rolls_back_every_row,
    api_key_lifecycle_authenticate_revoke_expire,
    api_key_stops_working_when_user_or_org_is_disabled,
    api_key_requires_membership_in_its_org,
    api_key_revocation_is_scoped_to_its_org,
    api_key_last_used_is_recorded_at_most_once_a_minute,
);

async fn migrations_are_idempotent(db: &TestDb) {
    let store = db.store().await;
    store.migrate().await.unwrap();
    store.migrate().await.unwrap();
    store.ping().await.unwrap();
}

async fn organisations_are_created_found_by_id_or_name_and_names_are_unique(db: &TestDb) {
    let store = db.store().await;
    let acme = store
        .create_org(&crate::helpers::org_name("Acme"), NOW)
        .await
        .unwrap();
    let globex = store
        .create_org(&crate::helpers::org_name("Globex"), NOW + 1)
        .await
        .unwrap();
    assert_ne!(acme.id, globex.id);
    assert!(!acme.disabled);
    assert_eq!(store.find_org("Acme").await.unwrap().unwrap(), acme);
    assert_eq!(
        store.find_org(acme.id.as_str()).await.unwrap().unwrap(),
        acme
    );
    assert!(
        store.find_org("ACME").await.unwrap().is_none(),
        "names match exactly"
    );
    assert_eq!(acme.slug, "acme");
    assert_eq!(
        store.find_org("acme").await.unwrap().unwrap().id,
        acme.id,
        "or by slug"
    );
    let err = store
        .create_org(&crate::helpers::org_name("Acme"), NOW)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::Conflict(m) if m.contains("Acme")),
        "{err}"
    );
    let names: Vec<String> = store
        .list_orgs()
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.name)
        .collect();
    assert_eq!(names, ["Acme", "Globex"]);
    store.set_org_disabled(&acme.id, true).await.unwrap();
    assert!(store.find_org("Acme").await.unwrap().unwrap().disabled);
    store.set_org_disabled(&acme.id, false).await.unwrap();
    assert!(!store.find_org("Acme").await.unwrap().unwrap().disabled);
}

async fn disabling_an_unknown_org_is_not_found(db: &TestDb) {
    let store = db.store().await;
    let err = store
        .set_org_disabled(&OrgId::parse("nope").unwrap(), true)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)));
}

async fn duplicate_email_is_a_conflict_and_leaves_no_rows(db: &TestDb) {
    let store = db.store().await;
    let (org, _) = org_and_user(&store, "Acme", "ava@acme.test").await;
    let other = store
        .create_org(&crate::helpers::org_name("Globex"), NOW)
        .await
        .unwrap();
    let err = store
        .create_user(&other.id, &email("AVA@acme.test"), "h", Role::Admin, NOW)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::Conflict(m) if m.contains("ava@acme.test")),
        "{err}"
    );
    assert!(store.list_members(&other.id).await.unwrap().is_empty());
    assert_eq!(store.list_members(&org).await.unwrap().len(), 1);
}

async fn user_in_unknown_org_rolls_back_the_user(db: &TestDb) {
    let store = db.store().await;
    let err = store
        .create_user(
            &OrgId::parse("missing").unwrap(),
            &email("bo@x.test"),
            "h",
            Role::Member,
            NOW,
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)));
    assert!(
        store
            .find_user_by_email(&email("bo@x.test"))
            .await
            .unwrap()
            .is_none()
    );
}

async fn a_user_can_belong_to_several_orgs(db: &TestDb) {
    let store = db.store().await;
    let (acme, ava) = org_and_user(&store, "Acme", "ava@acme.test").await;
    let globex = store
        .create_org(&crate::helpers::org_name("Globex"), NOW)
        .await
        .unwrap();
    store
        .add_membership(&globex.id, &ava, Role::Admin, NOW)
        .await
        .unwrap();
    let err = store
        .add_membership(&globex.id, &ava, Role::Admin, NOW)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)));
    let ms = store.memberships(&ava).await.unwrap();
    let roles: Vec<(String, Role)> = ms
        .iter()
        .map(|m| (m.organization.name.clone(), m.role))
        .collect();
    assert_eq!(
        roles,
        [
            ("Acme".into(), Role::Member),
            ("Globex".into(), Role::Admin)
        ]
    );
    let creds = store
        .find_user_by_email(&email("ava@acme.test"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(creds.user.id, ava);
    assert_eq!(creds.password_hash, "$argon2id$dummy");
    store.set_user_disabled(&ava, true).await.unwrap();
    assert!(store.list_members(&acme).await.unwrap()[0].user.disabled);
}

async fn clari_credentials_are_isolated_by_organisation(db: &TestDb) {
    let store = db.store().await;
    let vault = Vault::new(&[Vault::generate_key()]).unwrap();
    let a = store
        .create_org(&crate::helpers::org_name("A"), NOW)
        .await
        .unwrap();
    let b = store
        .create_org(&crate::helpers::org_name("B"), NOW)
        .await
        .unwrap();
    let sealed = vault.seal(b"key-of-a-1234");
    store
        .put_clari_credential(&a.id, &sealed, "1234", None, NOW)
        .await
        .unwrap();
    assert!(store.clari_credential(&b.id).await.unwrap().is_none());
    let got = store.clari_credential(&a.id).await.unwrap().unwrap();
    assert_eq!(got.organization_id, a.id);
    assert_eq!(got.key_hint, "1234");
    assert_eq!(
        &*vault.open(&got.ciphertext, &got.key_id).unwrap(),
        b"key-of-a-1234"
    );
    let err = store
        .put_clari_credential(&OrgId::parse("ghost").unwrap(), &sealed, "1234", None, NOW)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)));
}

async fn clari_credential_replacement_keeps_created_at(db: &TestDb) {
    let store = db.store().await;
    let vault = Vault::new(&[Vault::generate_key()]).unwrap();
    let a = store
        .create_org(&crate::helpers::org_name("A"), NOW)
        .await
        .unwrap();
    store
        .put_clari_credential(&a.id, &vault.seal(b"first-key"), "-key", None, NOW)
        .await
        .unwrap();
    store
        .put_clari_credential(
            &a.id,
            &vault.seal(b"second-key"),
            "-key",
            Some("http://x/v4"),
            NOW + 50,
        )
        .await
        .unwrap();
    let got = store.clari_credential(&a.id).await.unwrap().unwrap();
    assert_eq!((got.created_at, got.rotated_at), (NOW, NOW + 50));
    assert_eq!(got.base_url.as_deref(), Some("http://x/v4"));
    assert_eq!(
        &*vault.open(&got.ciphertext, &got.key_id).unwrap(),
        b"second-key"
    );
}

async fn reseal_rewrites_only_old_key_rows(db: &TestDb) {
    let store = db.store().await;
    let old = Vault::generate_key();
    let new = Vault::generate_key();
    let before = Vault::new(std::slice::from_ref(&old)).unwrap();
    let after = Arc::new(Vault::new(&[new.clone(), old]).unwrap());
    let a = store
        .create_org(&crate::helpers::org_name("A"), NOW)
        .await
        .unwrap();
    let b = store
        .create_org(&crate::helpers::org_name("B"), NOW)
        .await
        .unwrap();
    store
        .put_clari_credential(&a.id, &before.seal(b"aaaa-key"), "-key", None, NOW)
        .await
        .unwrap();
    store
        .put_clari_credential(&b.id, &after.seal(b"bbbb-key"), "-key", None, NOW)
        .await
        .unwrap();
    let v = after.clone();
    let n = store
        .reseal_clari_credentials(&move |c: &str, k: &str| v.reseal(c, k), NOW + 1)
        .await
        .unwrap();
    assert_eq!(n, 1);
    let only_new = Vault::new(&[new]).unwrap();
    for (org, plain) in [(&a.id, b"aaaa-key"), (&b.id, b"bbbb-key")] {
        let c = store.clari_credential(org).await.unwrap().unwrap();
        assert_eq!(c.key_id, after.primary_key_id());
        assert_eq!(&*only_new.open(&c.ciphertext, &c.key_id).unwrap(), plain);
    }
    let v = after.clone();
    let again = store
        .reseal_clari_credentials(&move |c: &str, k: &str| v.reseal(c, k), NOW + 2)
        .await
        .unwrap();
    assert_eq!(again, 0);
}

async fn reseal_failure_rolls_back_every_row(db: &TestDb) {
    let store = db.store().await;
    let old = Vault::new(&[Vault::generate_key()]).unwrap();
    let a = store
        .create_org(&crate::helpers::org_name("A"), NOW)
        .await
        .unwrap();
    let b = store
        .create_org(&crate::helpers::org_name("B"), NOW)
        .await
        .unwrap();
    let sa = old.seal(b"a-secret");
    let sb = old.seal(b"b-secret");
    store
        .put_clari_credential(&a.id, &sa, "cret", None, NOW)
        .await
        .unwrap();
    store
        .put_clari_credential(&b.id, &sb, "cret", None, NOW)
        .await
        .unwrap();
    // Rewrites the first row it sees, then fails on the second.
    let seen = std::sync::atomic::AtomicUsize::new(0);
    let failing = |_: &str, _: &str| -> Result<Option<Sealed>, VaultError> {
        if seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 {
            Ok(Some(Sealed {
                ciphertext: "rewritten".into(),
                key_id: "new".into(),
            }))
        } else {
            Err(VaultError::Undecryptable)
        }
    };
    let err = store
        .reseal_clari_credentials(&failing, NOW)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Vault(_)));
    assert_eq!(
        store
            .clari_credential(&a.id)
            .await
            .unwrap()
            .unwrap()
            .ciphertext,
        sa.ciphertext
    );
    assert_eq!(
        store
            .clari_credential(&b.id)
            .await
            .unwrap()
            .unwrap()
            .ciphertext,
        sb.ciphertext
    );
}

async fn api_key_lifecycle_authenticate_revoke_expire(db: &TestDb) {
    let store = db.store().await;
    let (org, user) = org_and_user(&store, "Acme", "ava@acme.test").await;
    let key = new_key(
        &org,
        &user,
        "cmk_secret_one",
        "forecasts:read users:read",
        None,
    );
    store.create_api_key(&key).await.unwrap();
    let p = store
        .authenticate_api_key(&sha256_hex("cmk_secret_one"), NOW)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (
            p.organization_id.clone(),
            p.user_id.clone(),
            p.key_id.clone()
        ),
        (org.clone(), user.clone(), key.id.clone())
    );
    assert!(p.scopes.allows(Scope::ForecastsRead) && !p.scopes.allows(Scope::AuditRead));
    assert!(
        store
            .authenticate_api_key(&sha256_hex("cmk_other"), NOW)
            .await
            .unwrap()
            .is_none()
    );

    let listed = store.list_api_keys(&org).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].user_email, "ava@acme.test");
    assert_eq!(listed[0].key_hint, "_one");
    assert_eq!(listed[0].scopes.to_string(), "forecasts:read users:read");

    assert!(store.revoke_api_key(&org, &key.id, NOW + 5).await.unwrap());
    assert!(!store.revoke_api_key(&org, &key.id, NOW + 6).await.unwrap());
    assert!(
        store
            .authenticate_api_key(&key.key_hash, NOW + 7)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        store.list_api_keys(&org).await.unwrap()[0].revoked_at,
        Some(NOW + 5)
    );

    let expiring = new_key(&org, &user, "cmk_secret_two", "clari:read", Some(NOW + 100));
    store.create_api_key(&expiring).await.unwrap();
    assert!(
        store
            .authenticate_api_key(&expiring.key_hash, NOW + 99)
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        store
            .authenticate_api_key(&expiring.key_hash, NOW + 100)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(store.api_key_org(&expiring.id).await.unwrap(), Some(org));
}

async fn api_key_stops_working_when_user_or_org_is_disabled(db: &TestDb) {
    let store = db.store().await;
    let (org, user) = org_and_user(&store, "Acme", "ava@acme.test").await;
    let key = new_key(&org, &user, "cmk_secret_three", "clari:read", None);
    store.create_api_key(&key).await.unwrap();
    store.set_user_disabled(&user, true).await.unwrap();
    assert!(
        store
            .authenticate_api_key(&key.key_hash, NOW)
            .await
            .unwrap()
            .is_none()
    );
    store.set_user_disabled(&user, false).await.unwrap();
    store.set_org_disabled(&org, true).await.unwrap();
    assert!(
        store
            .authenticate_api_key(&key.key_hash, NOW)
            .await
            .unwrap()
            .is_none()
    );
    store.set_org_disabled(&org, false).await.unwrap();
    assert!(
        store
            .authenticate_api_key(&key.key_hash, NOW)
            .await
            .unwrap()
            .is_some()
    );
}

async fn api_key_requires_membership_in_its_org(db: &TestDb) {
    let store = db.store().await;
    let (_, user) = org_and_user(&store, "Acme", "ava@acme.test").await;
    let globex = store
        .create_org(&crate::helpers::org_name("Globex"), NOW)
        .await
        .unwrap();
    let key = new_key(&globex.id, &user, "cmk_secret_four", "clari:read", None);
    let err = store.create_api_key(&key).await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)));
    assert!(store.list_api_keys(&globex.id).await.unwrap().is_empty());
}

async fn api_key_revocation_is_scoped_to_its_org(db: &TestDb) {
    let store = db.store().await;
    let (acme, user) = org_and_user(&store, "Acme", "ava@acme.test").await;
    let globex = store
        .create_org(&crate::helpers::org_name("Globex"), NOW)
        .await
        .unwrap();
    let key = new_key(&acme, &user, "cmk_secret_five", "clari:read", None);
    store.create_api_key(&key).await.unwrap();
    let err = store
        .revoke_api_key(&globex.id, &key.id, NOW)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)));
    assert!(store.list_api_keys(&globex.id).await.unwrap().is_empty());
    assert!(
        store
            .authenticate_api_key(&key.key_hash, NOW)
            .await
            .unwrap()
            .is_some()
    );
}

async fn api_key_last_used_is_recorded_at_most_once_a_minute(db: &TestDb) {
    let store = db.store().await;
    let (org, user) = org_and_user(&store, "Acme", "ava@acme.test").await;
    let key = new_key(&org, &user, "cmk_secret_six", "clari:read", None);
    store.create_api_key(&key).await.unwrap();
    let last_used = |store: Arc<dyn Store>, org: OrgId| async move {
        store.list_api_keys(&org).await.unwrap()[0].last_used_at
    };
    assert_eq!(last_used(store.clone(), org.clone()).await, None);
    store
        .authenticate_api_key(&key.key_hash, NOW)
        .await
        .unwrap();
    assert_eq!(last_used(store.clone(), org.clone()).await, Some(NOW));
    store
        .authenticate_api_key(&key.key_hash, NOW + 30)
        .await
        .unwrap();
    assert_eq!(last_used(store.clone(), org.clone()).await, Some(NOW));
    store
        .authenticate_api_key(&key.key_hash, NOW + 61)
        .await
        .unwrap();
    assert_eq!(last_used(store.clone(), org.clone()).await, Some(NOW + 61));
}
