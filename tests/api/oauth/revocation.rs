//! Revocation (RFC 7009) and introspection (RFC 7662).

use super::*;

#[tokio::test]
async fn revocation_requires_client_auth_and_only_touches_own_tokens() {
    let (_db, app) = app().await;
    let a = id(&register_public(&app).await);
    let b = id(&register_public(&app).await);
    let t = fresh_tokens(&app, &a).await;
    let rt = t["refresh_token"].as_str().unwrap();
    let rev = |form: Vec<(&str, &str)>| {
        let req = app.http.post(app.url("/revoke")).form(&form);
        async move { req.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(
        rev(vec![("token", rt)]).await,
        401,
        "no client authentication"
    );
    assert_eq!(
        rev(vec![("client_id", &b), ("token", rt)]).await,
        200,
        "another client's token: 200, nothing revoked"
    );
    assert_eq!(refresh(&app, &a, rt).await.0, 200, "still live");
    assert_eq!(
        rev(vec![("client_id", &a), ("token", "garbage")]).await,
        200,
        "unknown token: 200"
    );
}

#[tokio::test]
async fn introspection_needs_a_confidential_client_and_reports_dead_tokens_inactive() {
    let (_db, app) = app().await;
    let conf = register_confidential(&app).await;
    let cid = id(&conf);
    let secret = conf["client_secret"].as_str().unwrap().to_owned();
    let public = id(&register_public(&app).await);
    let r = app
        .http
        .post(app.url("/introspect"))
        .form(&[("token", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = app
        .http
        .post(app.url("/introspect"))
        .form(&[("token", "x"), ("client_id", public.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    // The confidential client's own tokens, through a redirect it registered.
    let p = pkce();
    let mut b = Browser::new(&app);
    let start = authorize_raw(
        &mut b,
        &with(
            base(&cid, &p),
            "redirect_uri",
            Some("https://app.example.com/cb"),
        ),
    )
    .await;
    let next = b
        .login(
            start.location.as_deref().unwrap(),
            "ava@acme.test",
            PASSWORD,
        )
        .await
        .location
        .unwrap();
    let page = b.get(&next).await;
    let done = b.approve(&page, None, &["forecasts:read"]).await;
    let code = query_of(&done.location.unwrap())["code"].clone();
    let r = app
        .http
        .post(app.url("/token"))
        .basic_auth(&cid, Some(&secret))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", "https://app.example.com/cb"),
            ("code_verifier", &p.verifier),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let t: Value = r.json().await.unwrap();
    let at = t["access_token"].as_str().unwrap().to_owned();
    let intro = |token: String| {
        let req = app
            .http
            .post(app.url("/introspect"))
            .basic_auth(&cid, Some(&secret))
            .form(&[("token", token)]);
        async move { req.send().await.unwrap().json::<Value>().await.unwrap() }
    };
    let v = intro(at.clone()).await;
    assert_eq!(v["active"], true, "{v}");
    assert_eq!(v["scope"], "forecasts:read");
    assert_eq!(v["client_id"], cid.as_str());
    app.clock.advance(900 + 31);
    assert_eq!(intro(at.clone()).await["active"], false, "expired");
    assert_eq!(intro("garbage".into()).await["active"], false);
    let rt = t["refresh_token"].as_str().unwrap().to_owned();
    assert_eq!(intro(rt.clone()).await["active"], true);
    app.http
        .post(app.url("/revoke"))
        .basic_auth(&cid, Some(&secret))
        .form(&[("token", rt.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(intro(rt).await["active"], false, "revoked");
}
