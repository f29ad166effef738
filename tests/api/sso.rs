//! Single sign-on with an organisation's OpenID Connect provider. The provider here is a small
//! one of the test's own (discovery, JWKS, an authorization endpoint that signs in whoever the
//! test names, a token endpoint with PKCE and client_secret_basic), so each test can make it
//! issue exactly the ID token an attack needs; ES256 signatures over real JWKS.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use clari_mcp::store::{Email, Role, Standing};
use p256::ecdsa::signature::Signer;
use reqwest::Method;
use serde_json::{Value, json};
use sha2::Digest;

use crate::both_backends;
use crate::helpers::mcp::{McpEnv, mcp_env_with, rpc};
use crate::helpers::oauth::{Browser, PASSWORD, Page, hidden, pkce, query_of, register_public};
use crate::helpers::{TestApp, TestDb};

both_backends!(
    a_company_sign_in_provisions_just_in_time_and_maps_groups_to_roles,
    an_mcp_client_is_authorized_through_the_company_sign_in,
    id_token_attacks_are_refused,
    identities_are_keyed_by_issuer_and_subject_never_by_email,
    an_existing_account_links_only_with_its_password,
    sso_required_refuses_the_password_form,
);

#[derive(Clone)]
struct Person {
    sub: String,
    email: String,
    email_verified: bool,
    groups: Vec<String>,
}

/// What the next ID token gets wrong, on purpose.
#[derive(Clone, Default)]
struct Tweak {
    aud: Option<String>,
    nonce: Option<String>,
    exp_offset: Option<i64>,
    kid: Option<String>,
    iss: Option<String>,
}

struct Grant {
    nonce: String,
    challenge: String,
    client_id: String,
    person: Person,
}

struct IdpState {
    issuer: String,
    key: p256::ecdsa::SigningKey,
    kid: String,
    person: Mutex<Person>,
    tweak: Mutex<Tweak>,
    codes: Mutex<HashMap<String, Grant>>,
}

/// The test's OpenID provider on 127.0.0.1:0.
struct Idp {
    url: String,
    state: Arc<IdpState>,
}

impl Idp {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let mut seed = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rng(), &mut seed);
        let state = Arc::new(IdpState {
            issuer: url.clone(),
            key: p256::ecdsa::SigningKey::from_slice(&seed).unwrap(),
            kid: "k1".into(),
            person: Mutex::new(Person {
                sub: "s-dee".into(),
                email: "dee@acme.test".into(),
                email_verified: true,
                groups: vec!["clari-users".into()],
            }),
            tweak: Mutex::new(Tweak::default()),
            codes: Mutex::new(HashMap::new()),
        });
        let app = axum::Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/jwks", get(jwks))
            .route("/authorize", get(authorize))
            .route("/token", post(token))
            .with_state(state.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { url, state }
    }

    fn person(&self, sub: &str, email: &str, groups: &[&str]) {
        *self.state.person.lock().unwrap() = Person {
            sub: sub.into(),
            email: email.into(),
            email_verified: true,
            groups: groups.iter().map(|g| (*g).to_owned()).collect(),
        };
    }

    fn tweak(&self, t: Tweak) {
        *self.state.tweak.lock().unwrap() = t;
    }
}

async fn discovery(State(s): State<Arc<IdpState>>) -> axum::Json<Value> {
    let i = &s.issuer;
    axum::Json(json!({
        "issuer": i,
        "authorization_endpoint": format!("{i}/authorize"),
        "token_endpoint": format!("{i}/token"),
        "jwks_uri": format!("{i}/jwks"),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["ES256"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic"],
        "code_challenge_methods_supported": ["S256"],
        "scopes_supported": ["openid", "email", "profile"]
    }))
}

async fn jwks(State(s): State<Arc<IdpState>>) -> axum::Json<Value> {
    let point = s.key.verifying_key().to_encoded_point(false);
    axum::Json(json!({"keys": [{
        "kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": s.kid,
        "x": URL_SAFE_NO_PAD.encode(point.x().unwrap()),
        "y": URL_SAFE_NO_PAD.encode(point.y().unwrap()),
    }]}))
}

async fn authorize(
    State(s): State<Arc<IdpState>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    assert_eq!(q["response_type"], "code");
    assert_eq!(q["code_challenge_method"], "S256");
    assert!(q["scope"].split(' ').any(|x| x == "openid"));
    let code = uuid::Uuid::new_v4().to_string();
    s.codes.lock().unwrap().insert(
        code.clone(),
        Grant {
            nonce: q["nonce"].clone(),
            challenge: q["code_challenge"].clone(),
            client_id: q["client_id"].clone(),
            person: s.person.lock().unwrap().clone(),
        },
    );
    let mut to = url::Url::parse(&q["redirect_uri"]).unwrap();
    to.query_pairs_mut()
        .append_pair("code", &code)
        .append_pair("state", &q["state"]);
    Redirect::to(to.as_str()).into_response()
}

async fn token(
    State(s): State<Arc<IdpState>>,
    headers: HeaderMap,
    Form(f): Form<HashMap<String, String>>,
) -> Response {
    let basic = headers["authorization"].to_str().unwrap();
    let decoded = String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(basic.strip_prefix("Basic ").unwrap())
            .unwrap(),
    )
    .unwrap();
    if decoded != "clari:s3cret-of-the-idp" {
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({"error": "invalid_client"})),
        )
            .into_response();
    }
    let Some(grant) = s.codes.lock().unwrap().remove(&f["code"]) else {
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"error": "invalid_grant"})),
        )
            .into_response();
    };
    let challenge = URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(f["code_verifier"].as_bytes()));
    if challenge != grant.challenge {
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"error": "invalid_grant"})),
        )
            .into_response();
    }
    let t = s.tweak.lock().unwrap().clone();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let p = grant.person;
    let claims = json!({
        "iss": t.iss.unwrap_or(s.issuer.clone()),
        "sub": p.sub,
        "aud": t.aud.unwrap_or(grant.client_id),
        "exp": now + t.exp_offset.unwrap_or(300),
        "iat": now,
        "nonce": t.nonce.unwrap_or(grant.nonce),
        "email": p.email,
        "email_verified": p.email_verified,
        "groups": p.groups,
    });
    let header = json!({"alg": "ES256", "typ": "JWT", "kid": t.kid.unwrap_or(s.kid.clone())});
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let sig: p256::ecdsa::Signature = s.key.sign(signing_input.as_bytes());
    let jwt = format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(sig.to_bytes()));
    axum::Json(json!({
        "access_token": "at", "token_type": "Bearer", "expires_in": 300, "id_token": jwt
    }))
    .into_response()
}

/// The app with a connection for acme.test to the test provider.
async fn env_with_sso(db: &TestDb, required: bool) -> (McpEnv, Idp, String) {
    let env = mcp_env_with(db, &[("CLARI_MCP_DANGER_SSO_ALLOW_LOOPBACK", "true")]).await;
    let idp = Idp::start().await;
    let admin = env.api_key("admin").await;
    let r = env
        .app
        .http
        .request(Method::PUT, env.app.url("/api/v1/sso"))
        .bearer_auth(&admin)
        .json(&json!({
            "issuer": idp.url, "client_id": "clari", "client_secret": "s3cret-of-the-idp",
            "domains": ["acme.test"], "admin_group": "clari-admins",
            "member_group": "clari-users", "required": required
        }))
        .send()
        .await
        .unwrap();
    let status = r.status();
    let body: Value = r.json().await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(body.get("client_secret").is_none(), "write-only: {body}");
    assert_eq!(body["client_secret_set"], true);
    (env, idp, admin)
}

/// Follows a sign-in through the provider: the last page (the callback's answer).
async fn through_provider(b: &mut Browser<'_>, start: &str) -> Page {
    let to_idp = b.get(start).await;
    assert_eq!(to_idp.status, 303, "{}", to_idp.body);
    let at_idp = b.get(to_idp.location.as_deref().unwrap()).await;
    assert_eq!(at_idp.status, 303, "{}", at_idp.body);
    b.get(at_idp.location.as_deref().unwrap()).await
}

async fn sso_sign_in<'a>(app: &'a TestApp, email: &str) -> (Browser<'a>, Page) {
    let mut b = Browser::new(app);
    let page = b.get("/login").await;
    let csrf = hidden(&page.body, "csrf");
    let first = b.post("/login", &[("csrf", &csrf), ("email", email)]).await;
    assert_eq!(
        first.status, 303,
        "e-mail first routes to the provider: {}",
        first.body
    );
    let start = first.location.clone().unwrap();
    assert!(start.starts_with("/sso/start"), "{start}");
    let last = through_provider(&mut b, &start).await;
    (b, last)
}

async fn a_company_sign_in_provisions_just_in_time_and_maps_groups_to_roles(db: &TestDb) {
    let (env, idp, _) = env_with_sso(db, false).await;
    let app = &env.app;
    let (mut b, last) = sso_sign_in(app, "dee@acme.test").await;
    assert_eq!(last.location.as_deref(), Some("/account"), "{}", last.body);
    assert_eq!(b.get("/account").await.status, 200);
    let dee = app
        .state
        .store
        .find_user_by_email(&Email::parse("dee@acme.test").unwrap())
        .await
        .unwrap()
        .expect("provisioned just in time");
    assert_eq!(
        app.state
            .store
            .member(&env.org, &dee.user.id)
            .await
            .unwrap()
            .unwrap()
            .role,
        Role::Member
    );
    assert_eq!(
        Browser::new(app)
            .login("/login", "dee@acme.test", "any password at all")
            .await
            .status,
        401,
        "an account made by single sign-on has no password"
    );
    // A later sign-in follows the directory: now an admin.
    idp.person("s-dee", "dee@acme.test", &["clari-users", "clari-admins"]);
    let (_, last) = sso_sign_in(app, "dee@acme.test").await;
    assert_eq!(last.status, 303);
    assert_eq!(
        app.state
            .store
            .member(&env.org, &dee.user.id)
            .await
            .unwrap()
            .unwrap()
            .role,
        Role::Admin
    );
    // Out of the mapped groups: refused.
    idp.person("s-dee", "dee@acme.test", &["sales"]);
    let (_, last) = sso_sign_in(app, "dee@acme.test").await;
    assert_eq!(last.status, 403);
    assert!(last.body.contains("Not assigned"));
    // Suspended in the organisation (an admin or SCIM): the provider does not undo it.
    idp.person("s-dee", "dee@acme.test", &["clari-users"]);
    app.state
        .store
        .update_member(
            &env.org,
            &dee.user.id,
            Standing::new(Role::Admin, false),
            Standing::new(Role::Admin, true),
        )
        .await
        .unwrap();
    let (_, last) = sso_sign_in(app, "dee@acme.test").await;
    assert_eq!(last.status, 403);
    assert!(last.body.contains("Suspended"));
}

async fn an_mcp_client_is_authorized_through_the_company_sign_in(db: &TestDb) {
    let (env, _idp, _) = env_with_sso(db, true).await;
    let app = &env.app;
    let client = register_public(app).await;
    let cid = client["client_id"].as_str().unwrap().to_owned();
    let p = pkce();
    let mut b = Browser::new(app);
    let start = b
        .get(&crate::helpers::oauth::authorize_url(
            &cid,
            &p.challenge,
            "st-1",
            "clari:read",
            &app.state.config.mcp_url,
        ))
        .await;
    let login = b.get(start.location.as_deref().unwrap()).await;
    let csrf = hidden(&login.body, "csrf");
    let rid = hidden(&login.body, "rid");
    let first = b
        .post(
            "/login",
            &[("csrf", &csrf), ("rid", &rid), ("email", "dee@acme.test")],
        )
        .await;
    let last = through_provider(&mut b, first.location.as_deref().unwrap()).await;
    let consent_at = last.location.clone().unwrap();
    assert!(consent_at.starts_with("/authorize/consent"), "{consent_at}");
    let consent = b.get(&consent_at).await;
    assert_eq!(consent.status, 200, "{}", consent.body);
    let done = b.approve(&consent, None, &["forecasts:read"]).await;
    let q = query_of(done.location.as_deref().unwrap());
    let (status, tokens) =
        crate::helpers::oauth::exchange(app, &cid, &q["code"], &p.verifier).await;
    assert_eq!(status, 200, "{tokens}");
    let at = tokens["access_token"].as_str().unwrap();
    assert_eq!(
        rpc(app, Some(at), "tools/list", json!({})).await.status,
        200
    );
}

async fn id_token_attacks_are_refused(db: &TestDb) {
    let (env, idp, _) = env_with_sso(db, false).await;
    let app = &env.app;
    let attacks = [
        (
            "wrong aud",
            Tweak {
                aud: Some("another-client".into()),
                ..Tweak::default()
            },
        ),
        (
            "wrong nonce",
            Tweak {
                nonce: Some("not-ours".into()),
                ..Tweak::default()
            },
        ),
        (
            "expired",
            Tweak {
                exp_offset: Some(-600),
                ..Tweak::default()
            },
        ),
        (
            "unknown kid",
            Tweak {
                kid: Some("k-unknown".into()),
                ..Tweak::default()
            },
        ),
        (
            "wrong iss",
            Tweak {
                iss: Some("https://evil.test".into()),
                ..Tweak::default()
            },
        ),
    ];
    for (what, tweak) in attacks {
        idp.tweak(tweak);
        let (_, last) = sso_sign_in(app, "dee@acme.test").await;
        assert_eq!(last.status, 502, "{what}: {}", last.body);
    }
    idp.tweak(Tweak::default());
    idp.state.person.lock().unwrap().email_verified = false;
    let (_, last) = sso_sign_in(app, "dee@acme.test").await;
    assert_eq!(last.status, 502, "email_verified false");
    assert!(last.body.contains("verified"));
    // A forged callback (no trip started, or another state) is refused before any code is used.
    let mut b = Browser::new(app);
    let page = b.get("/sso/callback?code=x&state=y").await;
    assert_eq!(page.status, 400);
    assert!(
        app.state
            .store
            .find_user_by_email(&Email::parse("dee@acme.test").unwrap())
            .await
            .unwrap()
            .is_none(),
        "no account from a refused token"
    );
}

async fn identities_are_keyed_by_issuer_and_subject_never_by_email(db: &TestDb) {
    let (env, idp, _) = env_with_sso(db, false).await;
    let app = &env.app;
    let (_, last) = sso_sign_in(app, "dee@acme.test").await;
    assert_eq!(last.status, 303);
    // The provider lets dee change her address to ava's: she still signs in as dee.
    idp.person("s-dee", "ava@acme.test", &["clari-users"]);
    let (mut b, last) = sso_sign_in(app, "dee@acme.test").await;
    assert_eq!(last.status, 303, "{}", last.body);
    let account = b.get("/account").await;
    assert!(
        account.body.contains("dee@acme.test"),
        "signed in as dee, not ava"
    );
    assert!(!account.body.contains("ava@acme.test"));
    // A second provider (another organisation) claiming the same subject gets nothing of dee's.
    let s = &app.state;
    let globex = s
        .store
        .create_org(&crate::helpers::org_name("Globex"), s.now())
        .await
        .unwrap();
    let idp2 = Idp::start().await;
    let hash = s
        .passwords
        .hash(secrecy::SecretString::from(PASSWORD.to_owned()))
        .await
        .unwrap();
    let bo = s
        .store
        .create_user(
            &globex.id,
            &Email::parse("bo@globex.test").unwrap(),
            &hash,
            Role::Admin,
            s.now(),
        )
        .await
        .unwrap();
    let key = env.api_key_for(&globex.id, &bo.id, "admin").await;
    let r = app
        .http
        .put(app.url("/api/v1/sso"))
        .bearer_auth(&key)
        .json(
            &json!({"issuer": idp2.url, "client_id": "clari", "client_secret": "s3cret-of-the-idp",
            "domains": ["globex.test"]}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // Globex cannot claim Acme's domain.
    let r = app
        .http
        .put(app.url("/api/v1/sso"))
        .bearer_auth(&key)
        .json(
            &json!({"issuer": idp2.url, "client_id": "clari", "client_secret": "x",
            "domains": ["acme.test"]}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
    idp2.person("s-dee", "dee@acme.test", &[]);
    let (_, last) = sso_sign_in(app, "bo2@globex.test").await;
    assert_eq!(
        last.status, 403,
        "an address of a domain the connection does not own: {}",
        last.body
    );
    idp2.person("s-dee", "cy@globex.test", &[]);
    let (mut b2, last) = sso_sign_in(app, "cy@globex.test").await;
    assert_eq!(last.status, 303);
    let page = b2.get("/account").await;
    assert!(page.body.contains("cy@globex.test") && !page.body.contains("dee@acme.test"));
}

async fn an_existing_account_links_only_with_its_password(db: &TestDb) {
    let (env, idp, _) = env_with_sso(db, false).await;
    let app = &env.app;
    idp.person("s-ava", "ava@acme.test", &["clari-admins"]);
    let (mut b, last) = sso_sign_in(app, "ava@acme.test").await;
    assert_eq!(last.status, 200);
    assert!(last.body.contains("already exists"), "{}", last.body);
    assert_eq!(
        b.get("/account").await.status,
        303,
        "not signed in before linking"
    );
    let csrf = hidden(&last.body, "csrf");
    let wrong = b
        .post(
            "/sso/link",
            &[("csrf", &csrf), ("password", "not the password")],
        )
        .await;
    assert_eq!(wrong.status, 401);
    let right = b
        .post("/sso/link", &[("csrf", &csrf), ("password", PASSWORD)])
        .await;
    assert_eq!(
        right.location.as_deref(),
        Some("/account"),
        "{}",
        right.body
    );
    // Linked: the next company sign-in goes straight through.
    let (_, last) = sso_sign_in(app, "ava@acme.test").await;
    assert_eq!(last.location.as_deref(), Some("/account"));
}

async fn sso_required_refuses_the_password_form(db: &TestDb) {
    let (env, _idp, _) = env_with_sso(db, true).await;
    let app = &env.app;
    let page = Browser::new(app)
        .login("/login", "ava@acme.test", PASSWORD)
        .await;
    assert_eq!(page.status, 403);
    assert!(page.body.contains("single sign-on") && page.body.contains("Continue with SSO"));
    // Any address of the domain, known or not: the answer says nothing about accounts.
    let page = Browser::new(app)
        .login("/login", "nobody@acme.test", "whatever it is")
        .await;
    assert_eq!(page.status, 403);
    // Other domains sign in with passwords as before.
    let r = Browser::new(app)
        .login("/login", "stranger@else.test", "wrong password!")
        .await;
    assert_eq!(r.status, 401);
    // E-mail first: the address alone goes to the provider.
    let mut b = Browser::new(app);
    let page = b.get("/login").await;
    let csrf = hidden(&page.body, "csrf");
    let first = b
        .post("/login", &[("csrf", &csrf), ("email", "ava@acme.test")])
        .await;
    assert!(
        first
            .location
            .unwrap()
            .starts_with("/sso/start?email=ava%40acme.test")
    );
}
