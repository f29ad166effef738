//! A person's identity belongs to them: invitations instead of passwords chosen by an admin,
//! no membership without the owner's acceptance, organisation names that cannot be mistaken,
//! a consent page that makes a person in several organisations choose, and sign-in throttling
//! that never locks the owner out. Each test is the regression test of one defect.

use clari_mcp::store::{AuditFilter, Email, OrgId, Role, UserId};
use reqwest::Method;
use secrecy::SecretString;
use serde_json::{Value, json};

use crate::admin::api;
use crate::both_backends;
use crate::helpers::mcp::{McpEnv, mcp_env, mcp_env_with};
use crate::helpers::oauth::{
    Browser, PASSWORD, REDIRECT, authorize_url, hidden, pkce, query_of, register_public,
};
use crate::helpers::{TestApp, TestDb, org_name};

both_backends!(
    an_admin_can_neither_set_nor_learn_a_password_nor_attach_an_account_without_its_owner,
    an_invitation_is_single_use_expires_and_can_be_withdrawn,
    look_alike_organisation_names_are_refused,
    the_consent_page_preselects_no_organisation_for_a_person_in_several,
    a_flood_of_wrong_passwords_from_elsewhere_does_not_stop_the_owner,
    a_password_chosen_by_someone_else_is_replaced_at_the_next_sign_in,
);

/// A second organisation with its own admin (`bo@globex.test`, password `PASSWORD`).
async fn globex(env: &McpEnv) -> (OrgId, UserId) {
    let s = &env.app.state;
    let org = s
        .store
        .create_org(&org_name("Globex"), s.now())
        .await
        .unwrap();
    let hash = s
        .passwords
        .hash(SecretString::from(PASSWORD.to_owned()))
        .await
        .unwrap();
    let bo = s
        .store
        .create_user(
            &org.id,
            &Email::parse("bo@globex.test").unwrap(),
            &hash,
            Role::Admin,
            s.now(),
        )
        .await
        .unwrap();
    (org.id, bo.id)
}

async fn signed_in<'a>(app: &'a TestApp, email: &str, password: &str) -> Browser<'a> {
    let mut b = Browser::new(app);
    let page = b.login("/login", email, password).await;
    assert_eq!(page.status, 303, "{}", page.body);
    b
}

async fn invite(app: &TestApp, key: &str, email: &str, role: &str) -> Value {
    let (status, inv) = api(
        app,
        key,
        Method::POST,
        "/api/v1/invitations",
        Some(json!({"email": email, "role": role})),
    )
    .await;
    assert_eq!(status, 201, "{inv}");
    inv
}

fn path_of(app: &TestApp, link: &str) -> String {
    link.strip_prefix(&app.address).unwrap().to_owned()
}

async fn an_admin_can_neither_set_nor_learn_a_password_nor_attach_an_account_without_its_owner(
    db: &TestDb,
) {
    let env = mcp_env(db).await;
    let app = &env.app;
    let (globex, bo) = globex(&env).await;
    let acme_admin = env.api_key("admin").await;

    // Acme's admin invites Globex's admin and a stranger: the answers have the same shape, so
    // they say nothing of whether an account exists.
    let existing = invite(app, &acme_admin, "bo@globex.test", "admin").await;
    let unknown = invite(app, &acme_admin, "nobody@else.test", "admin").await;
    let keys = |v: &Value| {
        let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };
    assert_eq!(keys(&existing), keys(&unknown));
    assert_eq!(existing["emailed"], unknown["emailed"]);
    for body in [&existing, &unknown] {
        assert!(
            body.get("user_id").is_none() && body.get("password").is_none(),
            "{body}"
        );
    }

    // Not a member, nothing granted, until the owner accepts.
    assert!(
        app.state
            .store
            .member(&env.org, &bo)
            .await
            .unwrap()
            .is_none()
    );
    let (_, members) = api(app, &acme_admin, Method::GET, "/api/v1/members", None).await;
    assert!(!members.to_string().contains("bo@globex.test"), "{members}");
    let (_, pending) = api(app, &acme_admin, Method::GET, "/api/v1/invitations", None).await;
    assert_eq!(pending["items"].as_array().unwrap().len(), 2, "{pending}");

    // The admin who saw the link cannot use it for the existing account: accepting needs the
    // account's own sign-in, and creating a second account for the address is refused.
    let path = path_of(app, existing["url"].as_str().unwrap());
    let mut ava = signed_in(app, "ava@acme.test", PASSWORD).await;
    let page = ava.get(&path).await;
    assert_eq!(page.status, 200);
    assert!(
        page.body.contains("signed in as ava@acme.test"),
        "{}",
        page.body
    );
    let csrf = hidden(&page.body, "csrf");
    let refused = ava
        .post(&path, &[("csrf", &csrf), ("action", "accept")])
        .await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    let mut stranger = Browser::new(app);
    let page = stranger.get(&path).await;
    let csrf = hidden(&page.body, "csrf");
    let taken = stranger
        .post(
            &path,
            &[
                ("csrf", &csrf),
                ("action", "create"),
                ("new", "the admin's chosen password"),
                ("confirm", "the admin's chosen password"),
            ],
        )
        .await;
    assert_eq!(taken.status, 409, "{}", taken.body);
    assert_eq!(
        Browser::new(app)
            .login("/login", "bo@globex.test", "the admin's chosen password")
            .await
            .status,
        401,
        "the account's password is still only its owner's"
    );
    assert!(
        app.state
            .store
            .member(&env.org, &bo)
            .await
            .unwrap()
            .is_none()
    );

    // The owner accepts with their own sign-in; then, and only then, they are a member.
    crate::admin::accept_invitation(app, existing["url"].as_str().unwrap(), PASSWORD).await;
    let m = app
        .state
        .store
        .member(&env.org, &bo)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(m.role, Role::Admin);

    // What Acme's admin sees of bo is the membership in Acme, nothing of the account or of Globex.
    let (_, member) = api(
        app,
        &acme_admin,
        Method::GET,
        &format!("/api/v1/members/{bo}"),
        None,
    )
    .await;
    let mut fields = keys(&member);
    fields.sort();
    assert_eq!(
        fields,
        ["email", "joined_at", "role", "suspended", "user_id"],
        "{member}"
    );
    let page = ava.get("/admin/members").await;
    assert!(
        !page.body.contains("Globex") && !page.body.contains("type=\"password\""),
        "{}",
        page.body
    );

    // No door sets a password: the old member form field and API field are ignored or refused.
    let (status, _) = api(
        app,
        &acme_admin,
        Method::POST,
        "/api/v1/members",
        Some(json!({"email": "x@acme.test", "password": PASSWORD})),
    )
    .await;
    assert_eq!(status, 405);
    // bo is still Globex's admin, untouched.
    assert_eq!(
        app.state
            .store
            .member(&globex, &bo)
            .await
            .unwrap()
            .unwrap()
            .role,
        Role::Admin
    );
}

async fn an_invitation_is_single_use_expires_and_can_be_withdrawn(db: &TestDb) {
    let env = mcp_env(db).await;
    let app = &env.app;
    let admin = env.api_key("admin").await;

    let first = invite(app, &admin, "cy@acme.test", "member").await;
    crate::admin::accept_invitation(app, first["url"].as_str().unwrap(), "cy's own passphrase")
        .await;
    let used = Browser::new(app).get(first["url"].as_str().unwrap()).await;
    assert_eq!(used.status, 404, "used once");
    let (status, body) = api(
        app,
        &admin,
        Method::POST,
        "/api/v1/invitations",
        Some(json!({"email": "cy@acme.test"})),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("conflict")),
        "{body}"
    );

    let withdrawn = invite(app, &admin, "di@acme.test", "member").await;
    let id = withdrawn["id"].as_str().unwrap();
    let (status, _) = api(
        app,
        &admin,
        Method::DELETE,
        &format!("/api/v1/invitations/{id}"),
        None,
    )
    .await;
    assert_eq!(status, 204);
    let page = Browser::new(app)
        .get(withdrawn["url"].as_str().unwrap())
        .await;
    assert_eq!(page.status, 404);

    // A newer invitation replaces the older one for the same address.
    let old = invite(app, &admin, "ed@acme.test", "member").await;
    let new = invite(app, &admin, "ed@acme.test", "admin").await;
    assert_eq!(
        Browser::new(app)
            .get(old["url"].as_str().unwrap())
            .await
            .status,
        404
    );
    assert_eq!(
        Browser::new(app)
            .get(new["url"].as_str().unwrap())
            .await
            .status,
        200
    );

    // Seven days by default, on the injected clock; expired invitations are purged.
    app.clock.advance(7 * 86_400 + 1);
    assert_eq!(
        Browser::new(app)
            .get(new["url"].as_str().unwrap())
            .await
            .status,
        404
    );
    let (_, pending) = api(app, &admin, Method::GET, "/api/v1/invitations", None).await;
    assert_eq!(pending["items"].as_array().unwrap().len(), 0, "{pending}");
    let purged = app
        .state
        .store
        .purge_expired(app.state.now(), app.state.now())
        .await
        .unwrap();
    assert!(purged.invitations >= 3, "{purged:?}");
}

async fn look_alike_organisation_names_are_refused(db: &TestDb) {
    let env = mcp_env(db).await;
    let app = &env.app;
    let store = &app.state.store;
    for twin in ["ACME", " acme ", "Ａｃｍｅ", "\u{0410}cme"] {
        let err = store
            .create_org(&org_name(twin), app.state.now())
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("looks the same"),
            "{twin:?}: {err}"
        );
    }
    let globex = store
        .create_org(&org_name("Globex"), app.state.now())
        .await
        .unwrap();
    assert_eq!(globex.slug, "globex");

    // Renaming through the API follows the same rule; invisible characters are refused.
    let admin = env.api_key("admin").await;
    let r = app
        .http
        .get(app.url("/api/v1/organization"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    let etag = r.headers()["etag"].to_str().unwrap().to_owned();
    for (name, status) in [
        ("Globex", 409),
        ("GL0BEX", 409),
        ("Acme\u{202E}", 400),
        ("Ac\u{200B}me", 400),
    ] {
        let r = app
            .http
            .patch(app.url("/api/v1/organization"))
            .bearer_auth(&admin)
            .header("if-match", &etag)
            .json(&json!({"name": name}))
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.status().as_u16(),
            status,
            "{name:?}: {}",
            r.text().await.unwrap()
        );
    }
    assert_eq!(store.find_org("Acme").await.unwrap().unwrap().name, "Acme");

    // A name equal to another organisation's slug never takes that slug's place in lookups
    // (SCIM paths, the CLI's --org).
    let inc = store
        .create_org(&org_name("Acme Inc"), app.state.now())
        .await
        .unwrap();
    assert_eq!(inc.slug, "acme-inc");
    let squatter = store
        .create_org(&org_name("acme-inc"), app.state.now())
        .await
        .unwrap();
    assert_ne!(squatter.slug, "acme-inc");
    assert_eq!(
        store.find_org("acme-inc").await.unwrap().unwrap().id,
        inc.id
    );
}

async fn the_consent_page_preselects_no_organisation_for_a_person_in_several(db: &TestDb) {
    let env = mcp_env(db).await;
    let app = &env.app;
    let (globex, _) = globex(&env).await;
    app.state
        .store
        .add_membership(&globex, &env.user, Role::Member, app.state.now())
        .await
        .unwrap();
    let client = register_public(app).await;
    let client_id = client["client_id"].as_str().unwrap();
    let p = pkce();
    let mut b = Browser::new(app);
    let start = b
        .get(&authorize_url(
            client_id,
            &p.challenge,
            "s1",
            "forecasts:read",
            &app.state.config.mcp_url,
        ))
        .await;
    let login = b
        .login(
            start.location.as_deref().unwrap(),
            "ava@acme.test",
            PASSWORD,
        )
        .await;
    let consent = b.get(login.location.as_deref().unwrap()).await;
    assert_eq!(consent.status, 200, "{}", consent.body);
    assert_eq!(
        consent.body.matches("type=\"radio\" name=\"org\"").count(),
        2
    );
    assert!(!consent.body.contains("selected"), "nothing preselected");
    let radios: Vec<&str> = consent.body.split("type=\"radio\"").skip(1).collect();
    assert!(
        radios
            .iter()
            .all(|r| !r[..r.find('>').unwrap()].contains("checked"))
    );
    assert!(
        consent.body.contains("(<code>acme</code>)")
            && consent.body.contains("(<code>globex</code>)")
    );

    // Approving without choosing is refused in words, with no code.
    let csrf = hidden(&consent.body, "csrf");
    let rid = hidden(&consent.body, "rid");
    let no_choice = b
        .post(
            "/authorize/consent",
            &[
                ("csrf", csrf.as_str()),
                ("rid", rid.as_str()),
                ("decision", "approve"),
                ("scope_forecasts:read", "on"),
            ],
        )
        .await;
    assert_eq!(no_choice.status, 200);
    assert!(no_choice.body.contains("Choose one of your organisations"));
    let chosen = b
        .approve(&no_choice, Some(globex.as_str()), &["forecasts:read"])
        .await;
    let q = query_of(chosen.location.as_deref().unwrap());
    assert!(q.contains_key("code"), "{q:?}");
    assert!(chosen.location.unwrap().starts_with(REDIRECT));
}

async fn a_flood_of_wrong_passwords_from_elsewhere_does_not_stop_the_owner(db: &TestDb) {
    let env = mcp_env_with(db, &[("CLARI_MCP_TRUSTED_PROXIES", "1")]).await;
    let app = &env.app;
    let try_from = |address: String, password: &'static str| async move {
        let mut b = Browser::new(app);
        let page = b.get("/login").await;
        let csrf = hidden(&page.body, "csrf");
        let r = app
            .http
            .post(app.url("/login"))
            .header("x-forwarded-for", address)
            .header(
                reqwest::header::COOKIE,
                b.cookies
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join("; "),
            )
            .form(&[
                ("csrf", csrf.as_str()),
                ("email", "ava@acme.test"),
                ("password", password),
            ])
            .send()
            .await
            .unwrap();
        (
            r.status().as_u16(),
            r.headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_owned()),
        )
    };

    // 40 addresses, 8 wrong passwords each, all at the same instant.
    for a in 0..40 {
        for _ in 0..8 {
            let (status, _) = try_from(format!("198.51.100.{a}"), "wrong password!!").await;
            assert!(status == 401 || status == 429, "{status}");
        }
    }
    // The owner, from an address of their own, signs in at once.
    let (status, _) = try_from("203.0.113.7".into(), PASSWORD).await;
    assert_eq!(status, 303, "the owner is not locked out");

    // One address: the first failures are free, then each try must wait longer.
    let attacker = || "192.0.2.1".to_owned();
    for _ in 0..5 {
        assert_eq!(try_from(attacker(), "wrong password!!").await.0, 401);
    }
    let (status, retry) = try_from(attacker(), "wrong password!!").await;
    assert_eq!((status, retry.as_deref()), (429, Some("1")));
    // Refused tries write nothing: no audit row and no counter each.
    app.state.audit.flush().await;
    let chain_len = || async {
        app.state
            .store
            .find_audit_events("-", &AuditFilter::default(), None, 100_000)
            .await
            .unwrap()
            .len()
    };
    let before = chain_len().await;
    for _ in 0..50 {
        assert_eq!(
            try_from(attacker(), PASSWORD).await.0,
            429,
            "even the right password waits"
        );
    }
    app.state.audit.flush().await;
    assert_eq!(
        chain_len().await,
        before,
        "a flood of refused tries adds no rows"
    );
    let now = app.state.now();
    let window = now - now.rem_euclid(clari_mcp::web::login::LOGIN_WINDOW);
    let bucket = "login:pair:ava@acme.test:192.0.2.1";
    let (hits, _) = app.state.store.rate_peek(bucket, window).await.unwrap();
    assert_eq!(hits, 5, "only the wrong passwords were counted");
    // After the wait, the same address may try again.
    app.clock.advance(1);
    assert_eq!(try_from(attacker(), "wrong password!!").await.0, 401);
    let (status, retry) = try_from(attacker(), PASSWORD).await;
    assert_eq!(
        (status, retry.as_deref()),
        (429, Some("2")),
        "the wait doubles"
    );
    app.clock.advance(2);
    assert_eq!(try_from(attacker(), PASSWORD).await.0, 303);
}

async fn a_password_chosen_by_someone_else_is_replaced_at_the_next_sign_in(db: &TestDb) {
    let env = mcp_env(db).await;
    let app = &env.app;
    let hash = app
        .state
        .passwords
        .hash(SecretString::from("an admin chose this".to_owned()))
        .await
        .unwrap();
    app.state
        .store
        .set_user_password(&env.user, &hash, true)
        .await
        .unwrap();
    let mut b = Browser::new(app);
    let page = b
        .login("/login", "ava@acme.test", "an admin chose this")
        .await;
    assert_eq!(page.status, 200, "not signed in yet: {}", page.body);
    assert!(page.body.contains("Choose your own password"));
    assert_eq!(
        b.get("/account").await.status,
        303,
        "nothing else is reachable"
    );
    // The step keeps its own form; mismatched confirmation is refused.
    let mut b = Browser::new(app);
    let page = b
        .login("/login", "ava@acme.test", "an admin chose this")
        .await;
    let csrf = hidden(&page.body, "csrf");
    let bad = b
        .post(
            "/login/new-password",
            &[
                ("csrf", &csrf),
                ("new", "only ava knows this"),
                ("confirm", "something else!!"),
            ],
        )
        .await;
    assert_eq!(bad.status, 400);
    let done = b
        .post(
            "/login/new-password",
            &[
                ("csrf", &csrf),
                ("new", "only ava knows this"),
                ("confirm", "only ava knows this"),
            ],
        )
        .await;
    assert_eq!(done.location.as_deref(), Some("/account"), "{}", done.body);
    assert_eq!(b.get("/account").await.status, 200);
    assert_eq!(
        Browser::new(app)
            .login("/login", "ava@acme.test", "an admin chose this")
            .await
            .status,
        401
    );
    assert_eq!(
        Browser::new(app)
            .login("/login", "ava@acme.test", "only ava knows this")
            .await
            .status,
        303
    );
}

/// The pinned SMTP server of the test scripts (aiosmtpd, a real RFC 5321 server), receiving
/// into a maildir; `None` (the test is skipped) where Python lacks it outside CI.
struct SmtpSink {
    child: tokio::process::Child,
    port: u16,
    maildir: tempfile::TempDir,
}

/// Serves aiosmtpd's `Mailbox` handler on a port the kernel picks while the socket is bound, and
/// prints that port once it listens: no window in which another test can take the port, and
/// the printed line is the readiness signal.
const SMTP_SINK: &str = r#"
import asyncio, socket, sys
from aiosmtpd.handlers import Mailbox
from aiosmtpd.smtp import SMTP

async def main():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    handler = Mailbox(sys.argv[1])
    server = await asyncio.get_running_loop().create_server(lambda: SMTP(handler), sock=sock)
    print(sock.getsockname()[1], flush=True)
    await server.serve_forever()

asyncio.run(main())
"#;

impl SmtpSink {
    async fn start() -> Option<Self> {
        use tokio::io::AsyncBufReadExt;
        let present = std::process::Command::new("python3")
            .args(["-c", "import aiosmtpd"])
            .status()
            .is_ok_and(|s| s.success());
        if !present {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "CI needs aiosmtpd (.ci/run installs it)"
            );
            crate::helpers::announce_skip("identity::invitations_are_emailed (no aiosmtpd)");
            return None;
        }
        let maildir = tempfile::tempdir().unwrap();
        let mut child = tokio::process::Command::new("python3")
            .args(["-c", SMTP_SINK])
            .arg(maildir.path().join("mail"))
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut line = String::new();
        let mut out = tokio::io::BufReader::new(child.stdout.take().unwrap());
        // Bounded: a loaded machine starts Python in well under a minute.
        tokio::time::timeout(std::time::Duration::from_secs(60), out.read_line(&mut line))
            .await
            .expect("the SMTP sink did not start within a minute")
            .unwrap();
        let port = line
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("the SMTP sink printed {line:?}, not its port"));
        Some(Self {
            child,
            port,
            maildir,
        })
    }

    /// The messages received so far, raw.
    fn messages(&self) -> Vec<String> {
        let dir = self.maildir.path().join("mail").join("new");
        let Ok(entries) = std::fs::read_dir(dir) else {
            return Vec::new();
        };
        entries
            .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
            .collect()
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

#[tokio::test]
async fn invitations_are_emailed_through_smtp_and_a_failure_is_said_in_words() {
    let Some(sink) = SmtpSink::start().await else {
        return;
    };
    let db = TestDb::new(crate::helpers::Backend::Sqlite).await.unwrap();
    let url = format!("smtp://127.0.0.1:{}", sink.port);
    let env = mcp_env_with(
        &db,
        &[
            ("CLARI_MCP_SMTP_URL", url.as_str()),
            ("CLARI_MCP_SMTP_FROM", "Acme access <access@acme.test>"),
        ],
    )
    .await;
    let app = &env.app;
    let admin = env.api_key("admin").await;
    let inv = invite(app, &admin, "fay@acme.test", "member").await;
    assert_eq!(inv["emailed"], true, "{inv}");
    assert!(inv.get("email_error").is_none());
    let link = inv["url"].as_str().unwrap();
    // aiosmtpd's Mailbox stores the message before it answers 250, and the invitation says
    // `emailed` only after that answer: the message is there now.
    let mail = sink.messages();
    assert_eq!(mail.len(), 1, "one message");
    let m = &quoted_printable_decoded(&mail[0]);
    assert!(m.contains("To: fay@acme.test"), "{m}");
    assert!(
        m.contains("From: \"Acme access\" <access@acme.test>")
            || m.contains("From: Acme access <access@acme.test>"),
        "{m}"
    );
    assert!(
        m.contains("Subject: You are invited to Acme on clari-mcp"),
        "{m}"
    );
    assert!(m.contains(link), "the message carries the link: {m}");
    crate::admin::accept_invitation(app, link, "fay's own passphrase").await;
    let fay = app
        .state
        .store
        .find_user_by_email(&Email::parse("fay@acme.test").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert!(
        app.state
            .store
            .member(&env.org, &fay.user.id)
            .await
            .unwrap()
            .is_some()
    );
    db.cleanup().await;

    // A mail server that cannot be reached: the invitation exists, and the answer says why it
    // was not sent (the admin passes the link on).
    let db = TestDb::new(crate::helpers::Backend::Sqlite).await.unwrap();
    // A socket bound but never listening: the port is held for the whole test (no other test
    // can start a server on it) and a connection to it is refused.
    let held = tokio::net::TcpSocket::new_v4().unwrap();
    held.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let closed = held.local_addr().unwrap().port();
    let url = format!("smtp://127.0.0.1:{closed}");
    let env = mcp_env_with(&db, &[("CLARI_MCP_SMTP_URL", url.as_str())]).await;
    let admin = env.api_key("admin").await;
    let inv = invite(&env.app, &admin, "gus@acme.test", "member").await;
    assert_eq!(inv["emailed"], false, "{inv}");
    assert!(
        inv["email_error"].as_str().unwrap().contains("mail server"),
        "{inv}"
    );
    assert_eq!(
        Browser::new(&env.app)
            .get(inv["url"].as_str().unwrap())
            .await
            .status,
        200
    );
    drop(held);
    db.cleanup().await;
}

/// The text of a quoted-printable body (RFC 2045 §6.7): soft line breaks joined, `=XX` decoded.
fn quoted_printable_decoded(raw: &str) -> String {
    let joined = raw.replace("=\r\n", "").replace("=\n", "");
    let bytes = joined.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'=' && i + 2 < bytes.len())
            .then(|| std::str::from_utf8(&bytes[i + 1..i + 3]).ok())
            .flatten()
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        if let Some(b) = escaped {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
