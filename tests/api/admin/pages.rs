//! The account and admin pages, driven like a browser: who sees what, CSRF on every form, CSP on
//! every page, 403 for members, 404 across organisations, the org switch, keys shown once.

use super::*;
use crate::helpers::oauth::{Browser, Page, hidden};

both_backends!(
    members_get_403_and_admins_get_404_for_another_organisations_things,
    every_page_forbids_framing_and_every_form_needs_its_csrf_token,
    a_person_makes_and_revokes_their_own_key_and_ends_their_sessions,
    an_admin_runs_members_clari_key_audit_and_activity_from_the_pages,
    a_person_in_two_organisations_switches_explicitly,
    an_admin_sets_single_sign_on_two_step_and_scim_tokens_from_the_sign_in_page,
);

const ADMIN_PAGES: [&str; 8] = [
    "/admin",
    "/admin/members",
    "/admin/sign-in",
    "/admin/access",
    "/admin/audit",
    "/admin/audit.jsonl",
    "/admin/activity",
    "/admin/kill",
];

async fn signed_in<'a>(app: &'a TestApp, email: &str) -> Browser<'a> {
    let mut b = Browser::new(app);
    let page = b.login("/login", email, PASSWORD).await;
    assert_eq!(page.status, 303, "{}", page.body);
    b
}

async fn add_person(
    app: &TestApp,
    org: &clari_mcp::store::OrgId,
    email: &str,
    role: Role,
) -> UserId {
    let hash = app
        .state
        .passwords
        .hash(secrecy::SecretString::from(PASSWORD.to_owned()))
        .await
        .unwrap();
    let email = Email::parse(email).unwrap();
    match app.state.store.find_user_by_email(&email).await.unwrap() {
        Some(c) => {
            app.state
                .store
                .add_membership(org, &c.user.id, role, app.state.now())
                .await
                .unwrap();
            c.user.id
        }
        None => {
            app.state
                .store
                .create_user(org, &email, &hash, role, app.state.now())
                .await
                .unwrap()
                .id
        }
    }
}

fn csrf(page: &Page) -> String {
    hidden(&page.body, "csrf")
}

async fn members_get_403_and_admins_get_404_for_another_organisations_things(db: &TestDb) {
    let env = mcp_env(db).await;
    let app = &env.app;
    add_person(app, &env.org, "mo@acme.test", Role::Member).await;
    let mut member = signed_in(app, "mo@acme.test").await;
    for path in ADMIN_PAGES {
        let page = member.get(path).await;
        assert_eq!(page.status, 403, "{path}");
    }
    let account = member.get("/account").await;
    assert_eq!(account.status, 200);
    assert!(
        !account.body.contains("href=\"/admin\""),
        "members see no admin links"
    );
    let token = csrf(&account);
    for path in [
        "/admin/members",
        "/admin/clari-key",
        "/admin/kill",
        "/admin/api-keys",
        "/admin/sign-in/sso",
        "/admin/sign-in/scim-tokens",
        "/admin/sign-in/two-step",
    ] {
        let page = member.post(path, &[("csrf", token.as_str())]).await;
        assert_eq!(page.status, 403, "{path}");
    }

    // Another organisation with its own admin, member, key and grant-less user.
    let s = &app.state;
    let globex = s
        .store
        .create_org(&crate::helpers::org_name("Globex"), s.now())
        .await
        .unwrap();
    let bo = add_person(app, &globex.id, "bo@globex.test", Role::Admin).await;
    let b_key = env.api_key_for(&globex.id, &bo, "clari:read").await;
    let b_key_id = s.store.list_api_keys(&globex.id).await.unwrap()[0]
        .id
        .clone();
    let mut admin = signed_in(app, "ava@acme.test").await;
    let page = admin.get("/admin/members").await;
    assert_eq!(page.status, 200);
    assert!(!page.body.contains("bo@globex.test"));
    let token = csrf(&page);
    for (path, form) in [
        (format!("/admin/members/{bo}"), vec![("action", "remove")]),
        (format!("/admin/members/{bo}"), vec![("action", "suspend")]),
        (format!("/admin/api-keys/{b_key_id}/revoke"), vec![]),
        (
            format!("/admin/grants/{}/revoke", "g_does_not_exist"),
            vec![],
        ),
    ] {
        let mut fields = vec![("csrf", token.as_str())];
        fields.extend(form);
        let page = admin.post(&path, &fields).await;
        assert_eq!(page.status, 404, "{path}: {}", page.body);
    }
    assert_eq!(
        rpc(app, Some(&b_key), "tools/list", json!({})).await.status,
        200
    );
    let still = s.store.member(&globex.id, &bo).await.unwrap().unwrap();
    assert!(!still.suspended);
}

async fn every_page_forbids_framing_and_every_form_needs_its_csrf_token(db: &TestDb) {
    let env = mcp_env(db).await;
    let app = &env.app;
    let mut admin = signed_in(app, "ava@acme.test").await;
    for path in [
        "/account",
        "/admin",
        "/admin/members",
        "/admin/sign-in",
        "/admin/access",
        "/admin/audit",
        "/admin/activity",
        "/admin/kill",
    ] {
        let page = admin.get(path).await;
        assert_eq!(page.status, 200, "{path}");
        let csp = page.headers["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
        assert_eq!(page.headers["cache-control"], "no-store", "{path}");
        assert!(!page.body.contains("<script"), "{path} needs no JavaScript");
        // Every POST form carries the session's token.
        let posts = page.body.matches("method=\"post\"").count();
        let tokens = page.body.matches("name=\"csrf\"").count();
        assert!(
            posts > 0 && tokens >= posts,
            "{path}: {posts} forms, {tokens} tokens"
        );
        assert!(
            page.body.contains("Acme"),
            "{path} shows the current organisation"
        );
    }
    let before = app.state.store.list_members(&env.org).await.unwrap().len();
    for (path, form) in [
        (
            "/admin/members",
            vec![("email", "x@acme.test"), ("password", PASSWORD)],
        ),
        ("/admin/clari-key", vec![("api_key", "abcdefgh12345678")]),
        ("/account/sign-out-everywhere", vec![]),
        ("/admin/kill", vec![("reason", "x"), ("confirm", "Acme")]),
    ] {
        let mut with_wrong = form.clone();
        with_wrong.push(("csrf", "forged"));
        for fields in [form, with_wrong] {
            let page = admin.post(path, &fields).await;
            assert_eq!(page.status, 403, "{path}");
        }
    }
    assert_eq!(
        app.state.store.list_members(&env.org).await.unwrap().len(),
        before
    );
    assert_eq!(
        admin.get("/admin").await.status,
        200,
        "still signed in, organisation alive"
    );
}

async fn a_person_makes_and_revokes_their_own_key_and_ends_their_sessions(db: &TestDb) {
    let env = mcp_env(db).await;
    let app = &env.app;
    add_person(app, &env.org, "mo@acme.test", Role::Member).await;
    let mut mo = signed_in(app, "mo@acme.test").await;
    let account = mo.get("/account").await;
    assert!(
        !account.body.contains("scope_admin"),
        "a member is not offered the admin scope"
    );
    let token = csrf(&account);
    let org = env.org.to_string();
    let made = mo
        .post(
            "/account/api-keys",
            &[
                ("csrf", token.as_str()),
                ("name", "laptop"),
                ("org", org.as_str()),
                ("scope_forecasts:read", "on"),
                ("expires_days", "30"),
            ],
        )
        .await;
    assert_eq!(made.status, 201, "{}", made.body);
    let key = value_of(&made.body, "new-key");
    assert!(key.starts_with("cmk_"), "{key}");
    assert_eq!(
        rpc(app, Some(&key), "tools/list", json!({})).await.status,
        200
    );
    let account = mo.get("/account").await;
    assert!(account.body.contains("laptop"));
    assert!(!account.body.contains(&key), "shown once");

    // Forged admin scope on a member's key: refused, nothing made.
    let page = mo
        .post(
            "/account/api-keys",
            &[
                ("csrf", token.as_str()),
                ("name", "root"),
                ("org", org.as_str()),
                ("scope_admin", "on"),
            ],
        )
        .await;
    assert_eq!(page.status, 303);
    let account = mo.get("/account").await;
    assert!(
        account
            .body
            .contains("the admin scope is only for the organisation"),
        "{}",
        account.body
    );
    assert!(!account.body.contains("root"));

    let id = app.state.store.list_api_keys(&env.org).await.unwrap()[0]
        .id
        .to_string();
    let page = mo
        .post(
            &format!("/account/api-keys/{id}/revoke"),
            &[("csrf", token.as_str())],
        )
        .await;
    assert_eq!(page.status, 303);
    assert_eq!(
        rpc(app, Some(&key), "tools/list", json!({})).await.status,
        401
    );

    // A second browser; a password change signs it out but keeps this one.
    let mut other = signed_in(app, "mo@acme.test").await;
    assert_eq!(other.get("/account").await.status, 200);
    let new_password = "a much longer passphrase";
    let page = mo
        .post(
            "/account/password",
            &[
                ("csrf", token.as_str()),
                ("current", "wrong"),
                ("new", new_password),
                ("confirm", new_password),
            ],
        )
        .await;
    assert_eq!(page.status, 303);
    assert!(mo.get("/account").await.body.contains("not right"));
    let page = mo
        .post(
            "/account/password",
            &[
                ("csrf", token.as_str()),
                ("current", PASSWORD),
                ("new", new_password),
                ("confirm", new_password),
            ],
        )
        .await;
    assert_eq!(page.status, 303);
    let token = csrf(&mo.get("/account").await);
    assert_eq!(mo.get("/account").await.status, 200, "this session stays");
    assert_eq!(
        other.get("/account").await.status,
        303,
        "the other is signed out"
    );
    let again = Browser::new(app)
        .login("/login", "mo@acme.test", new_password)
        .await;
    assert_eq!(again.status, 303);

    let page = mo
        .post("/account/sign-out-everywhere", &[("csrf", token.as_str())])
        .await;
    assert_eq!(page.status, 303);
    assert_eq!(mo.get("/account").await.status, 303);
}

/// The value attribute of the input with this id.
fn value_of(html: &str, id: &str) -> String {
    let start = html.find(&format!("id=\"{id}\"")).unwrap();
    let rest = &html[start..];
    let v = rest.find("value=\"").unwrap() + "value=\"".len();
    rest[v..v + rest[v..].find('"').unwrap()].to_owned()
}

async fn an_admin_runs_members_clari_key_audit_and_activity_from_the_pages(db: &TestDb) {
    let env = mcp_env(db).await;
    let app = &env.app;
    let mut ava = signed_in(app, "ava@acme.test").await;
    let page = ava.get("/admin/members").await;
    let token = csrf(&page);
    let page = ava
        .post(
            "/admin/members",
            &[
                ("csrf", token.as_str()),
                ("email", "new@acme.test"),
                ("role", "member"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(
        page.body
            .contains("new@acme.test is invited to Acme as member"),
        "{}",
        page.body
    );
    assert!(
        page.body.contains("not e-mailed"),
        "without SMTP the page says the link must be passed on: {}",
        page.body
    );
    let link = value_of(&page.body, "invite-link");
    let page = ava.get("/admin/members").await;
    assert!(page.body.contains("Pending invitations"));
    assert!(page.body.contains("new@acme.test"));
    assert!(
        !page.body.contains(&link),
        "the link is shown once, on creation"
    );
    assert_eq!(
        Browser::new(app)
            .login("/login", "new@acme.test", PASSWORD)
            .await
            .status,
        401,
        "the password the admin typed was ignored: no account exists until the person makes one"
    );
    super::accept_invitation(app, &link, "the newcomer's own passphrase").await;
    let newbie = Browser::new(app)
        .login("/login", "new@acme.test", "the newcomer's own passphrase")
        .await;
    assert_eq!(
        newbie.status, 303,
        "the person signs in with their own password"
    );
    assert!(
        ava.get("/admin/members")
            .await
            .body
            .contains("Pending invitations</h2>\n<p class=\"muted\">None."),
        "the invitation was used"
    );

    // The last admin cannot demote themselves; the refusal says why.
    let me = env.user.to_string();
    ava.post(
        &format!("/admin/members/{me}"),
        &[("csrf", token.as_str()), ("action", "make_member")],
    )
    .await;
    assert!(
        ava.get("/admin/members")
            .await
            .body
            .contains("last active admin")
    );

    // Test the connection: quota in words; then a wrong key: the error in words.
    let page = ava
        .post("/admin/clari-key/test", &[("csrf", token.as_str())])
        .await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("Clari answered"), "{}", page.body);
    let page = ava
        .post(
            "/admin/clari-key",
            &[
                ("csrf", token.as_str()),
                ("api_key", "not-the-right-key-9876"),
            ],
        )
        .await;
    assert_eq!(page.status, 303);
    let page = ava.get("/admin").await;
    assert!(page.body.contains("****9876"));
    assert!(!page.body.contains("not-the-right-key"));
    let page = ava
        .post("/admin/clari-key/test", &[("csrf", token.as_str())])
        .await;
    assert!(page.body.contains("The connection failed"), "{}", page.body);
    // Put the right key back through the page, and make some tool calls to look at.
    let right = env.sandbox.orgs()[0].api_key.clone();
    ava.post(
        "/admin/clari-key",
        &[("csrf", token.as_str()), ("api_key", right.as_str())],
    )
    .await;
    let key = env.api_key("clari:read").await;
    call_tool(app, &key, "list_time_periods", json!({})).await;
    call_tool(app, &key, "list_time_periods", json!({})).await;
    call_tool(
        app,
        &key,
        "get_forecast",
        json!({"forecast_id": "nope nope"}),
    )
    .await;
    app.state.audit.flush().await;

    let page = ava.get("/admin/activity").await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("<svg"), "charts are inline SVG");
    assert!(page.body.contains("list_time_periods"));
    assert!(
        page.body.contains("<strong>3</strong>"),
        "three calls: {}",
        page.body
    );
    assert!(page.body.contains("API key “test”"), "top clients by name");
    assert_eq!(ava.get("/admin/activity?window=7d").await.status, 200);

    let page = ava
        .get("/admin/audit?action=tool.call&outcome=failure")
        .await;
    assert_eq!(page.status, 200);
    assert_eq!(
        page.body.matches("<code>tool.call</code>").count(),
        1,
        "{}",
        page.body
    );
    let page = ava.get("/admin/audit?since=someday").await;
    assert_eq!(page.status, 400);
    assert!(page.body.contains("since"));
    let file = ava.get("/admin/audit.jsonl?action=tool.call").await;
    assert_eq!(file.status, 200);
    assert!(
        file.headers["content-disposition"]
            .to_str()
            .unwrap()
            .contains("attachment")
    );
    let lines: Vec<Value> = file
        .body
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    assert!(
        lines
            .iter()
            .all(|l| l["action"] == "tool.call" && l["hash"].is_string())
    );

    // The kill switch asks for the name; with it, the organisation stops at once.
    let page = ava
        .post(
            "/admin/kill",
            &[
                ("csrf", token.as_str()),
                ("reason", "test"),
                ("confirm", "acme"),
            ],
        )
        .await;
    assert_eq!(page.status, 400);
    assert!(page.body.contains("type the organisation"));
    assert_eq!(
        rpc(app, Some(&key), "tools/list", json!({})).await.status,
        200
    );
    let page = ava
        .post(
            "/admin/kill",
            &[
                ("csrf", token.as_str()),
                ("reason", "test"),
                ("confirm", "Acme"),
            ],
        )
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("is disabled"));
    assert_eq!(
        rpc(app, Some(&key), "tools/list", json!({})).await.status,
        401
    );
}

async fn a_person_in_two_organisations_switches_explicitly(db: &TestDb) {
    let env = mcp_env(db).await;
    let app = &env.app;
    let s = &app.state;
    let globex = s
        .store
        .create_org(&crate::helpers::org_name("Globex"), s.now())
        .await
        .unwrap();
    add_person(app, &globex.id, "ava@acme.test", Role::Member).await;
    let mut ava = signed_in(app, "ava@acme.test").await;
    let page = ava.get("/admin/members").await;
    assert_eq!(page.status, 200, "Acme comes first, where she is admin");
    assert!(page.body.contains("organisation <strong>Acme</strong>"));
    let token = csrf(&page);
    let g = globex.id.to_string();
    let page = ava
        .post(
            "/account/org",
            &[
                ("csrf", token.as_str()),
                ("org", g.as_str()),
                ("back", "/admin/members"),
            ],
        )
        .await;
    assert_eq!(page.status, 303);
    let page = ava.get("/account").await;
    assert!(
        page.body.contains("organisation <strong>Globex</strong>"),
        "{}",
        page.body
    );
    assert_eq!(
        ava.get("/admin/members").await.status,
        403,
        "a member in Globex"
    );
    let page = ava
        .post(
            "/account/org",
            &[
                ("csrf", token.as_str()),
                ("org", "o_not_mine"),
                ("back", "/account"),
            ],
        )
        .await;
    assert_eq!(page.status, 404);
    // Off-site "back" targets are ignored.
    let a = env.org.to_string();
    let page = ava
        .post(
            "/account/org",
            &[
                ("csrf", token.as_str()),
                ("org", a.as_str()),
                ("back", "https://evil.test/"),
            ],
        )
        .await;
    assert_eq!(page.location.as_deref(), Some("/account"));
}

async fn an_admin_sets_single_sign_on_two_step_and_scim_tokens_from_the_sign_in_page(db: &TestDb) {
    let env = mcp_env(db).await;
    let app = &env.app;
    let mut ava = signed_in(app, "ava@acme.test").await;
    let page = ava.get("/admin/sign-in").await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("Not set up"), "{}", page.body);
    assert!(
        page.body
            .contains(&format!("{}/sso/callback", app.state.config.public_url)),
        "the redirect URI to register is shown"
    );
    let token = csrf(&page);
    let sso = |secret: &'static str, domains: &'static str| {
        vec![
            ("csrf", token.clone()),
            ("issuer", "https://login.acme-idp.test/".to_owned()),
            ("client_id", "clari-mcp".to_owned()),
            ("client_secret", secret.to_owned()),
            ("domains", domains.to_owned()),
            ("groups_claim", "groups".to_owned()),
            ("admin_group", "clari-admins".to_owned()),
            ("member_group", String::new()),
            ("required", "on".to_owned()),
        ]
    };
    // A first connection needs its secret; the page says why and nothing is stored.
    let page = post_owned(&mut ava, "/admin/sign-in/sso", sso("", "acme.test")).await;
    assert_eq!(page.status, 303);
    let page = ava.get("/admin/sign-in").await;
    assert!(page.body.contains("client_secret"), "{}", page.body);
    assert!(
        app.state
            .store
            .sso_connection(&env.org)
            .await
            .unwrap()
            .is_none()
    );
    // A bad domain list is refused, naming the field.
    post_owned(
        &mut ava,
        "/admin/sign-in/sso",
        sso("s3cret-from-the-idp", "not a domain"),
    )
    .await;
    let page = ava.get("/admin/sign-in").await;
    assert!(page.body.contains("domains"), "{}", page.body);
    assert!(
        app.state
            .store
            .sso_connection(&env.org)
            .await
            .unwrap()
            .is_none()
    );

    let page = post_owned(
        &mut ava,
        "/admin/sign-in/sso",
        sso("s3cret-from-the-idp", "acme.test, acme.example"),
    )
    .await;
    assert_eq!(page.status, 303);
    let page = ava.get("/admin/sign-in").await;
    assert!(page.body.contains("Single sign-on saved"), "{}", page.body);
    assert!(
        page.body.contains("acme.example, acme.test")
            || page.body.contains("acme.test, acme.example"),
        "{}",
        page.body
    );
    assert!(page.body.contains("only</strong> that way"));
    assert!(
        !page.body.contains("s3cret-from-the-idp"),
        "the client secret is write-only"
    );
    let stored = app
        .state
        .store
        .sso_connection(&env.org)
        .await
        .unwrap()
        .unwrap();
    assert!(stored.required);
    assert_eq!(stored.admin_group.as_deref(), Some("clari-admins"));
    assert_eq!(stored.member_group, None);
    // A blank secret on a change keeps the stored one.
    post_owned(&mut ava, "/admin/sign-in/sso", sso("", "acme.test")).await;
    let kept = app
        .state
        .store
        .sso_connection(&env.org)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(kept.secret_ciphertext, stored.secret_ciphertext);
    assert_eq!(
        app.state.store.sso_domains(&env.org).await.unwrap(),
        vec!["acme.test".to_owned()]
    );
    // The login page now routes people of the domain to their provider.
    let mut visitor = Browser::new(app);
    let form = visitor.get("/login").await;
    let login = visitor
        .post(
            "/login",
            &[
                ("csrf", csrf(&form).as_str()),
                ("email", "someone@acme.test"),
            ],
        )
        .await;
    assert_eq!(login.status, 303, "{}", login.body);
    assert!(
        login
            .location
            .as_deref()
            .unwrap()
            .starts_with("/sso/start?"),
        "{:?}",
        login.location
    );

    // Two-step for admins: on, and the admin without a factor is sent to set one up.
    post_owned(
        &mut ava,
        "/admin/sign-in/two-step",
        vec![
            ("csrf", token.clone()),
            ("require_admin_mfa", "on".to_owned()),
        ],
    )
    .await;
    assert!(app.state.store.require_admin_mfa(&env.org).await.unwrap());
    let page = ava.get("/admin/sign-in").await;
    assert_eq!(page.status, 303);
    assert_eq!(page.location.as_deref(), Some("/account/mfa"));
    app.state
        .store
        .set_require_admin_mfa(&env.org, false)
        .await
        .unwrap();

    // SCIM: a token shown once, which works until it is revoked.
    let page = post_owned(
        &mut ava,
        "/admin/sign-in/scim-tokens",
        vec![("csrf", token.clone()), ("name", "Okta".to_owned())],
    )
    .await;
    assert_eq!(page.status, 201, "{}", page.body);
    let secret = value_of(&page.body, "scim-token");
    assert!(secret.starts_with("scim_"));
    assert_eq!(
        value_of(&page.body, "scim-base"),
        format!("{}/scim/v2/acme", app.state.config.public_url)
    );
    let users = |t: String| {
        let url = app.url("/scim/v2/acme/Users");
        async move {
            app.http
                .get(url)
                .bearer_auth(t)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(users(secret.clone()).await, 200);
    let page = ava.get("/admin/sign-in").await;
    assert!(page.body.contains("Okta"));
    assert!(!page.body.contains(&secret), "shown once");
    let id = app.state.store.scim_tokens(&env.org).await.unwrap()[0]
        .id
        .clone();
    let revoke = format!("/admin/sign-in/scim-tokens/{id}/revoke");
    let page = ava.post(&revoke, &[("csrf", token.as_str())]).await;
    assert_eq!(page.status, 303);
    assert_eq!(users(secret).await, 401);
    assert_eq!(
        ava.post(&revoke, &[("csrf", token.as_str())]).await.status,
        404
    );

    // Removing the connection: people sign in with passwords again.
    let page = ava
        .post("/admin/sign-in/sso/delete", &[("csrf", token.as_str())])
        .await;
    assert_eq!(page.status, 303);
    assert!(
        app.state
            .store
            .sso_connection(&env.org)
            .await
            .unwrap()
            .is_none()
    );
    app.state.audit.flush().await;
    let kinds: Vec<String> = app
        .state
        .store
        .audit_events(env.org.as_str(), 0, 1000)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.action)
        .collect();
    for kind in [
        "sso.configured",
        "org.admin_mfa_required",
        "scim_token.created",
        "scim_token.revoked",
        "sso.removed",
    ] {
        assert!(kinds.iter().any(|k| k == kind), "{kind} in {kinds:?}");
    }
}

async fn post_owned(b: &mut Browser<'_>, path: &str, f: Vec<(&'static str, String)>) -> Page {
    let fields: Vec<(&str, &str)> = f.iter().map(|(k, v)| (*k, v.as_str())).collect();
    b.post(path, &fields).await
}
