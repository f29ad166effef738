//! Tenants never see each other; revocation and disabling apply on the next request.

use super::*;

both_backends!(
    revocation_and_disabling_take_effect_on_the_next_request,
    an_organisation_never_sees_another_organisations_data,
);

async fn an_organisation_never_sees_another_organisations_data(db: &TestDb) {
    let env = mcp_env(db).await;
    let s = &env.app.state;
    let globex = s
        .store
        .create_org(&crate::helpers::org_name("Globex"), s.now())
        .await
        .unwrap();
    s.store
        .put_clari_credential(
            &globex.id,
            &s.vault.seal(env.sandbox.orgs()[1].api_key.as_bytes()),
            "yyyy",
            None,
            s.now(),
        )
        .await
        .unwrap();
    let user = s
        .store
        .create_user(
            &globex.id,
            &clari_mcp::store::Email::parse("bo@globex.test").unwrap(),
            "$argon2id$x",
            clari_mcp::store::Role::Member,
            s.now(),
        )
        .await
        .unwrap();
    let key_a = env.api_key("clari:read").await;
    let key_b = env.api_key_for(&globex.id, &user.id, "clari:read").await;
    let a = call_tool(&env.app, &key_a, "get_forecast", json!({})).await;
    let b = call_tool(&env.app, &key_b, "get_forecast", json!({})).await;
    let data = env.sandbox.dataset();
    assert_eq!(
        a["structuredContent"]["total"]["name"],
        data.orgs[0].users[0].name.as_str()
    );
    assert_eq!(
        b["structuredContent"]["total"]["name"],
        data.orgs[1].users[0].name.as_str(),
        "B's own data, not A's cached answer"
    );
    let jobs_b = call_tool(&env.app, &key_b, "list_export_jobs", json!({})).await;
    assert_eq!(
        jobs_b["structuredContent"]["total"], 1,
        "only B's own export job"
    );
}

async fn revocation_and_disabling_take_effect_on_the_next_request(db: &TestDb) {
    let env = mcp_env(db).await;
    let s = &env.app.state;
    let key = env.api_key("clari:read").await;
    assert_eq!(
        rpc(&env.app, Some(&key), "tools/list", json!({}))
            .await
            .status,
        200
    );
    s.store.set_org_disabled(&env.org, true).await.unwrap();
    assert_eq!(
        rpc(&env.app, Some(&key), "tools/list", json!({}))
            .await
            .status,
        401
    );
    s.store.set_org_disabled(&env.org, false).await.unwrap();
    s.store.set_user_disabled(&env.user, true).await.unwrap();
    assert_eq!(
        rpc(&env.app, Some(&key), "tools/list", json!({}))
            .await
            .status,
        401
    );
    s.store.set_user_disabled(&env.user, false).await.unwrap();
    let id = s.store.list_api_keys(&env.org).await.unwrap()[0].id.clone();
    s.store
        .revoke_api_key(&env.org, &id, s.now())
        .await
        .unwrap();
    assert_eq!(
        rpc(&env.app, Some(&key), "tools/list", json!({}))
            .await
            .status,
        401
    );

    // The OAuth path: a token from the authorization server works until its grant is revoked.
    let client = crate::helpers::oauth::register_public(&env.app).await;
    let cid = client["client_id"].as_str().unwrap().to_owned();
    let p = crate::helpers::oauth::pkce();
    let mut b = crate::helpers::oauth::Browser::new(&env.app);
    let q = crate::helpers::oauth::authorize(&mut b, &cid, &p, "ava@acme.test").await;
    let (status, tokens) =
        crate::helpers::oauth::exchange(&env.app, &cid, &q["code"], &p.verifier).await;
    assert_eq!(status, 200, "{tokens}");
    let at = tokens["access_token"].as_str().unwrap().to_owned();
    let ok = call_tool(&env.app, &at, "get_admin_limits", json!({})).await;
    assert_eq!(ok["isError"], false);
    let r = env
        .app
        .http
        .post(env.app.url("/revoke"))
        .form(&[
            ("client_id", cid.as_str()),
            ("token", tokens["refresh_token"].as_str().unwrap()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let after = rpc(&env.app, Some(&at), "tools/list", json!({})).await;
    assert_eq!(
        after.status, 401,
        "the still-unexpired access token stops working at once"
    );
}
