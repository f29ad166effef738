//! Driving the authorization server as a client and a browser would, over HTTP.

use std::collections::HashMap;

use clari_mcp::store::{Email, OrgId, Role};
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use secrecy::SecretString;
use serde_json::{Value, json};

use crate::helpers::TestApp;

pub const PASSWORD: &str = "correct horse battery staple";
pub const REDIRECT: &str = "http://127.0.0.1:3999/callback";

/// An organisation with one user who can sign in.
pub async fn seed_user(app: &TestApp, org_name: &str, email: &str) -> OrgId {
    let now = app.state.now();
    let org = match app.state.store.find_org(org_name).await.unwrap() {
        Some(o) => o,
        None => app
            .state
            .store
            .create_org(&crate::helpers::org_name(org_name), now)
            .await
            .unwrap(),
    };
    let hash = app
        .state
        .passwords
        .hash(SecretString::from(PASSWORD.to_owned()))
        .await
        .unwrap();
    app.state
        .store
        .create_user(
            &org.id,
            &Email::parse(email).unwrap(),
            &hash,
            Role::Member,
            now,
        )
        .await
        .unwrap();
    org.id
}

pub async fn register(app: &TestApp, body: Value) -> reqwest::Response {
    app.http
        .post(app.url("/register"))
        .json(&body)
        .send()
        .await
        .unwrap()
}

/// Registers a public client with the usual MCP client metadata.
pub async fn register_public(app: &TestApp) -> Value {
    let r = register(
        app,
        json!({
            "client_name": "Test Agent",
            "redirect_uris": [REDIRECT],
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "none",
        }),
    )
    .await;
    assert_eq!(r.status(), 201);
    r.json().await.unwrap()
}

pub async fn register_confidential(app: &TestApp) -> Value {
    let r = register(
        app,
        json!({
            "client_name": "Server App",
            "redirect_uris": ["https://app.example.com/cb"],
            "grant_types": ["authorization_code", "refresh_token"],
            "token_endpoint_auth_method": "client_secret_basic",
        }),
    )
    .await;
    assert_eq!(r.status(), 201);
    r.json().await.unwrap()
}

pub struct Pkce {
    pub challenge: String,
    pub verifier: String,
}

pub fn pkce() -> Pkce {
    let (challenge, verifier) = oauth2::PkceCodeChallenge::new_random_sha256();
    Pkce {
        challenge: challenge.as_str().to_owned(),
        verifier: verifier.secret().to_owned(),
    }
}

/// A browser: follows nothing by itself, keeps cookies.
pub struct Browser<'a> {
    pub app: &'a TestApp,
    pub cookies: HashMap<String, String>,
}

pub struct Page {
    pub status: u16,
    pub location: Option<String>,
    pub body: String,
    pub headers: reqwest::header::HeaderMap,
}

impl<'a> Browser<'a> {
    pub fn new(app: &'a TestApp) -> Self {
        Self {
            app,
            cookies: HashMap::new(),
        }
    }

    fn absorb(&mut self, r: &reqwest::Response) {
        for v in r.headers().get_all(SET_COOKIE) {
            let text = v.to_str().unwrap();
            let pair = text.split(';').next().unwrap();
            if let Some((k, v)) = pair.split_once('=') {
                self.cookies
                    .insert(k.trim().to_owned(), v.trim().to_owned());
            }
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    async fn finish(&mut self, r: reqwest::Response) -> Page {
        self.absorb(&r);
        let status = r.status().as_u16();
        let location = r
            .headers()
            .get(LOCATION)
            .map(|l| l.to_str().unwrap().to_owned());
        let headers = r.headers().clone();
        let body = r.text().await.unwrap();
        Page {
            status,
            location,
            body,
            headers,
        }
    }

    pub async fn get(&mut self, path_or_url: &str) -> Page {
        let url = if path_or_url.starts_with("http") {
            path_or_url.to_owned()
        } else {
            self.app.url(path_or_url)
        };
        let r = self
            .app
            .http
            .get(url)
            .header(COOKIE, self.cookie_header())
            .send()
            .await
            .unwrap();
        self.finish(r).await
    }

    pub async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
        let r = self
            .app
            .http
            .post(self.app.url(path))
            .header(COOKIE, self.cookie_header())
            .form(form)
            .send()
            .await
            .unwrap();
        self.finish(r).await
    }

    /// Approves the consent `page` for `scopes` (e.g. `"audit:read"`), in `org` or the page's only
    /// organisation.
    pub async fn approve(&mut self, page: &Page, org: Option<&str>, scopes: &[&str]) -> Page {
        let csrf = hidden(&page.body, "csrf");
        let rid = hidden(&page.body, "rid");
        let org = org
            .map(str::to_owned)
            .unwrap_or_else(|| hidden(&page.body, "org"));
        let fields: Vec<String> = scopes.iter().map(|s| format!("scope_{s}")).collect();
        let mut form = vec![
            ("csrf", csrf.as_str()),
            ("rid", rid.as_str()),
            ("org", org.as_str()),
            ("decision", "approve"),
        ];
        form.extend(fields.iter().map(|f| (f.as_str(), "on")));
        self.post("/authorize/consent", &form).await
    }

    /// Signs in on the login page reached through `login_location`.
    pub async fn login(&mut self, login_location: &str, email: &str, password: &str) -> Page {
        let page = self.get(login_location).await;
        assert_eq!(page.status, 200, "{}", page.body);
        let csrf = hidden(&page.body, "csrf");
        let rid = input_value(&page.body, "rid");
        let mut form = vec![
            ("csrf", csrf.as_str()),
            ("email", email),
            ("password", password),
        ];
        if let Some(r) = rid.as_deref() {
            form.push(("rid", r));
        }
        self.post("/login", &form).await
    }
}

/// The value of a named input in a page.
pub fn input_value(html: &str, name: &str) -> Option<String> {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker)? + marker.len();
    let end = html[start..].find('"')? + start;
    Some(
        html[start..end]
            .replace("&amp;", "&")
            .replace("&#x2f;", "/")
            .replace("&#47;", "/"),
    )
}

pub fn hidden(html: &str, name: &str) -> String {
    input_value(html, name).unwrap_or_else(|| panic!("no {name} field in {html}"))
}

pub fn query_of(location: &str) -> HashMap<String, String> {
    let url = url::Url::parse(location).unwrap();
    url.query_pairs().into_owned().collect()
}

pub fn authorize_url(
    client_id: &str,
    challenge: &str,
    state: &str,
    scope: &str,
    resource: &str,
) -> String {
    let mut u = url::Url::parse("http://x/authorize").unwrap();
    u.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", client_id)
        .append_pair("redirect_uri", REDIRECT)
        .append_pair("code_challenge", challenge)
        .append_pair("code_challenge_method", "S256")
        .append_pair("state", state)
        .append_pair("scope", scope)
        .append_pair("resource", resource);
    format!("/authorize?{}", u.query().unwrap())
}

/// Signs in and approves consent; returns the final redirect's query (code, state, iss).
pub async fn authorize(
    b: &mut Browser<'_>,
    client_id: &str,
    pkce: &Pkce,
    email: &str,
) -> HashMap<String, String> {
    let resource = b.app.state.config.mcp_url.clone();
    let start = b
        .get(&authorize_url(
            client_id,
            &pkce.challenge,
            "st-123",
            "clari:read",
            &resource,
        ))
        .await;
    assert_eq!(start.status, 302, "{}", start.body);
    let mut next = start.location.unwrap();
    if next.starts_with("/login") {
        let after = b.login(&next, email, PASSWORD).await;
        assert_eq!(after.status, 303, "login failed: {}", after.body);
        next = after.location.unwrap();
    }
    if next.starts_with("/authorize/consent") {
        let consent = b.get(&next).await;
        if consent.status == 302 {
            return query_of(&consent.location.unwrap());
        }
        assert_eq!(consent.status, 200, "{}", consent.body);
        let all: Vec<&str> = clari_mcp::scope::Scope::NARROW
            .iter()
            .map(|s| s.as_str())
            .collect();
        let done = b.approve(&consent, None, &all).await;
        assert_eq!(done.status, 303, "{}", done.body);
        return query_of(&done.location.unwrap());
    }
    query_of(&next)
}

pub async fn token(
    app: &TestApp,
    form: &[(&str, &str)],
) -> (u16, Value, reqwest::header::HeaderMap) {
    let r = app
        .http
        .post(app.url("/token"))
        .form(form)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let body = r.json().await.unwrap_or(Value::Null);
    (status, body, headers)
}

pub async fn exchange(app: &TestApp, client_id: &str, code: &str, verifier: &str) -> (u16, Value) {
    let (s, b, _) = token(
        app,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", client_id),
            ("code", code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", verifier),
        ],
    )
    .await;
    (s, b)
}

/// `grant_type=refresh_token` for a public client: (status, body, headers).
pub async fn refresh_with(
    app: &TestApp,
    client_id: &str,
    refresh_token: &str,
) -> (u16, Value, reqwest::header::HeaderMap) {
    token(
        app,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", client_id),
            ("refresh_token", refresh_token),
        ],
    )
    .await
}
