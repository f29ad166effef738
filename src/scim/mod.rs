//! SCIM 2.0 (RFC 7643, RFC 7644) per organisation at `/scim/v2/{org}`: the organisation's identity
//! provider creates, finds, changes, deactivates and deletes its Users with a bearer token an
//! organisation admin created.
//!
//! What a User means here: its address (`userName` when it is one, else the primary e-mail) is a
//! person of the organisation. An active User who is not a member yet is invited (the person
//! still accepts with their own account or password: provisioning never sets a password or
//! attaches someone else's account). Deactivating (`active: false`) or deleting a User suspends
//! the membership and revokes, in one transaction, every grant, refresh token and API key of the
//! person in this organisation, so their next MCP call on any replica is refused; reactivating
//! reinstates the membership (nothing revoked comes back). Every change is audited with the
//! token as the actor.

pub mod discovery;
mod membership;
pub mod resource;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{FromRequestParts, Path, Query, RawPathParams, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use self::membership::{deprovision, provision};
use self::resource::{LIST_SCHEMA, ScimError, USER_SCHEMA};
use crate::audit::{Actor, Event};
use crate::clock::rfc3339;
use crate::crypto::sha256_hex;
use crate::http::RequestMeta;
use crate::state::AppState;
use crate::store::{Organization, ScimFilter, ScimToken, ScimUserRow, ScimUserWrite};

/// The largest request body (RFC 7644 §3.12 `tooLarge` beyond it).
const MAX_BODY: usize = 64 * 1024;
const DEFAULT_COUNT: i64 = 100;

pub fn router() -> Router<AppState> {
    let read_only = |h: MethodRouter<AppState>| h.fallback(method_not_allowed);
    Router::new()
        .route(
            "/scim/v2/{org}/ServiceProviderConfig",
            read_only(get(service_provider_config)),
        )
        .route(
            "/scim/v2/{org}/ResourceTypes",
            read_only(get(resource_types)),
        )
        .route(
            "/scim/v2/{org}/ResourceTypes/{id}",
            read_only(get(resource_type)),
        )
        .route("/scim/v2/{org}/Schemas", read_only(get(schemas)))
        .route("/scim/v2/{org}/Schemas/{id}", read_only(get(schema)))
        .route(
            "/scim/v2/{org}/Users",
            get(list_users)
                .post(create_user)
                .fallback(method_not_allowed),
        )
        .route(
            "/scim/v2/{org}/Users/{id}",
            get(get_user)
                .put(replace_user)
                .patch(patch_user)
                .delete(delete_user)
                .fallback(method_not_allowed),
        )
        .route(
            "/scim/v2/{org}/.search",
            post(search).fallback(method_not_allowed),
        )
}

/// The server's answer to a path it does not serve: under `/scim/v2/` a SCIM error (RFC 7644
/// §3.12), so provisioning clients can read it; elsewhere a bare 404.
pub async fn unknown_path(uri: axum::http::Uri) -> Response {
    if uri.path().starts_with("/scim/v2/") {
        ScimError::not_found("endpoint").into_response()
    } else {
        StatusCode::NOT_FOUND.into_response()
    }
}

impl IntoResponse for ScimError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::BAD_REQUEST);
        let mut r = scim_json(status, self.body());
        if status == StatusCode::UNAUTHORIZED {
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        r
    }
}

fn scim_json(status: StatusCode, body: Value) -> Response {
    let mut r = (status, axum::Json(body)).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/scim+json"),
    );
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

type ScimResult = Result<Response, ScimError>;

async fn method_not_allowed() -> ScimError {
    ScimError::new(405, None, "this method is not allowed on this endpoint")
}

/// RFC 7644 §3.4.3: search by POST is optional; this service filters with GET.
async fn search(_: Caller) -> ScimResult {
    Err(ScimError::new(
        501,
        None,
        "POST /.search is not supported: use GET /Users?filter=…",
    ))
}

/// Who is calling: the live SCIM token of the organisation named in the path (RFC 7644 §2:
/// the service authenticates every request; a token of one organisation opens no other).
pub(crate) struct Caller {
    pub(crate) org: Organization,
    pub(crate) token: ScimToken,
    pub(crate) meta: RequestMeta,
}

impl Caller {
    fn base(&self, state: &AppState) -> String {
        format!("{}/scim/v2/{}", state.config.public_url, self.org.slug)
    }

    pub(crate) fn actor(&self) -> Actor {
        Actor::new(
            "scim",
            self.token.id.as_str(),
            Some(self.token.name.clone()),
        )
    }

    pub(crate) fn event(&self, action: &'static str, target: &str) -> Event {
        let (request_id, ip) = self.meta.parts();
        Event::new(Some(&self.org.id), self.actor(), action)
            .target(target)
            .from_request(request_id, ip)
    }
}

/// The caller of every SCIM route, from the `{org}` of its path and its bearer token.
impl FromRequestParts<AppState> for Caller {
    type Rejection = ScimError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ScimError> {
        let params = RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|_| ScimError::not_found("organisation"))?;
        let org = params
            .iter()
            .find_map(|(name, value)| (name == "org").then_some(value))
            .unwrap_or_default();
        caller(state, &parts.headers, org).await
    }
}

async fn caller(state: &AppState, headers: &HeaderMap, org: &str) -> Result<Caller, ScimError> {
    let unauthorized = || {
        ScimError::new(
            401,
            None,
            "a valid SCIM bearer token of this organisation is required",
        )
    };
    let token = crate::bearer::bearer_token(headers).ok_or_else(unauthorized)?;
    if token.len() > 200 {
        return Err(unauthorized());
    }
    let store_error = |e: crate::store::StoreError| {
        tracing::error!(error = %e, "SCIM answering 503");
        ScimError::new(
            503,
            None,
            "the service cannot answer right now; try again shortly",
        )
    };
    let found = state
        .store
        .scim_token_by_hash(&sha256_hex(token), state.now())
        .await
        .map_err(store_error)?
        .ok_or_else(unauthorized)?;
    let org = state
        .store
        .find_org(org)
        .await
        .map_err(store_error)?
        .filter(|o| o.id == found.organization_id && !o.disabled)
        .ok_or_else(unauthorized)?;
    Ok(Caller {
        org,
        token: found,
        meta: RequestMeta::new(headers, None, state.config.trusted_proxies),
    })
}

pub(crate) fn store_failed(e: crate::store::StoreError) -> ScimError {
    match e {
        crate::store::StoreError::Conflict(why) => ScimError::new(409, Some("uniqueness"), why),
        crate::store::StoreError::NotFound(what) => ScimError::not_found(what),
        other => {
            tracing::error!(error = %other, "SCIM answering 503");
            ScimError::new(
                503,
                None,
                "the service cannot answer right now; try again shortly",
            )
        }
    }
}

// --- discovery ----------------------------------------------------------------------------------

fn list(resources: Vec<Value>, total: i64, start: i64) -> Value {
    json!({
        "schemas": [LIST_SCHEMA],
        "totalResults": total,
        "startIndex": start,
        "itemsPerPage": resources.len(),
        "Resources": resources,
    })
}

async fn service_provider_config(State(state): State<AppState>, c: Caller) -> ScimResult {
    Ok(scim_json(
        StatusCode::OK,
        discovery::service_provider_config(&c.base(&state)),
    ))
}

async fn resource_types(State(state): State<AppState>, c: Caller) -> ScimResult {
    let one = discovery::user_resource_type(&c.base(&state));
    Ok(scim_json(StatusCode::OK, list(vec![one], 1, 1)))
}

async fn resource_type(
    State(state): State<AppState>,
    Path((_, id)): Path<(String, String)>,
    c: Caller,
) -> ScimResult {
    let doc = discovery::user_resource_type(&c.base(&state));
    the_only(&id, "User", "resource type", doc)
}

async fn schemas(State(state): State<AppState>, c: Caller) -> ScimResult {
    let one = discovery::user_schema(&c.base(&state));
    Ok(scim_json(StatusCode::OK, list(vec![one], 1, 1)))
}

async fn schema(
    State(state): State<AppState>,
    Path((_, id)): Path<(String, String)>,
    c: Caller,
) -> ScimResult {
    the_only(
        &id,
        USER_SCHEMA,
        "schema",
        discovery::user_schema(&c.base(&state)),
    )
}

/// A discovery document asked for by `id` when the service has only the one named `only` (RFC
/// 7644 §4: one resource type, one schema): that document, or not found as `what`.
fn the_only(id: &str, only: &str, what: &'static str, doc: Value) -> ScimResult {
    if id != only {
        return Err(ScimError::not_found(what));
    }
    Ok(scim_json(StatusCode::OK, doc))
}

// --- Users --------------------------------------------------------------------------------------

#[derive(Deserialize, Default)]
struct UserQuery {
    filter: Option<String>,
    #[serde(rename = "startIndex")]
    start_index: Option<String>,
    count: Option<String>,
    attributes: Option<String>,
    #[serde(rename = "excludedAttributes")]
    excluded_attributes: Option<String>,
}

fn number(text: Option<&str>, what: &str, default: i64) -> Result<i64, ScimError> {
    match text {
        None => Ok(default),
        Some(t) => t.trim().parse::<i64>().map_err(|_| {
            ScimError::new(
                400,
                Some("invalidValue"),
                format!("{what} must be a whole number"),
            )
        }),
    }
}

/// The stored attributes of a row.
fn attributes_of(row: &ScimUserRow) -> Map<String, Value> {
    serde_json::from_str(&row.resource).unwrap_or_default()
}

/// The User as the service returns it (RFC 7643 §3.1: `id` and `meta` are the server's).
fn render(c: &Caller, state: &AppState, row: &ScimUserRow) -> Value {
    let mut o = Map::new();
    o.insert("schemas".into(), json!([USER_SCHEMA]));
    o.insert("id".into(), json!(row.id));
    o.extend(attributes_of(row));
    o.insert(
        "meta".into(),
        json!({
            "resourceType": "User",
            "created": rfc3339(row.created_at),
            "lastModified": rfc3339(row.updated_at),
            "location": format!("{}/Users/{}", c.base(state), row.id),
        }),
    );
    Value::Object(o)
}

fn body_json(headers: &HeaderMap, body: &Bytes) -> Result<Value, ScimError> {
    if body.len() > MAX_BODY {
        return Err(ScimError::new(
            413,
            Some("tooLarge"),
            format!("the body is larger than {MAX_BODY} bytes"),
        ));
    }
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json");
    let mime = ct
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    if mime != "application/json" && mime != "application/scim+json" {
        return Err(ScimError::new(
            415,
            None,
            "send application/scim+json or application/json",
        ));
    }
    serde_json::from_slice(body).map_err(|e| {
        ScimError::new(
            400,
            Some("invalidSyntax"),
            format!("the body is not JSON: {e}"),
        )
    })
}

async fn list_users(
    State(state): State<AppState>,
    Query(q): Query<UserQuery>,
    c: Caller,
) -> ScimResult {
    let filter = match q
        .filter
        .as_deref()
        .map(resource::parse_filter)
        .transpose()?
    {
        None => ScimFilter::All,
        Some((resource::FilterAttr::UserName, v)) => ScimFilter::UserNameKey(v.to_lowercase()),
        Some((resource::FilterAttr::ExternalId, v)) => ScimFilter::ExternalId(v),
        Some((resource::FilterAttr::Id, v)) => ScimFilter::Id(v),
    };
    // RFC 7644 §3.4.2.4: a startIndex below 1 is 1, a negative count is 0.
    let start = number(q.start_index.as_deref(), "startIndex", 1)?.max(1);
    let count =
        number(q.count.as_deref(), "count", DEFAULT_COUNT)?.clamp(0, discovery::MAX_RESULTS as i64);
    let (total, rows) = state
        .store
        .scim_users(&c.org.id, &filter, start, count)
        .await
        .map_err(store_failed)?;
    let resources = rows
        .iter()
        .map(|r| {
            resource::select(
                render(&c, &state, r),
                q.attributes.as_deref(),
                q.excluded_attributes.as_deref(),
            )
        })
        .collect();
    Ok(scim_json(StatusCode::OK, list(resources, total, start)))
}

async fn get_user(
    State(state): State<AppState>,
    Path((_, id)): Path<(String, String)>,
    Query(q): Query<UserQuery>,
    c: Caller,
) -> ScimResult {
    let row = load(&state, &c, &id).await?;
    Ok(scim_json(
        StatusCode::OK,
        resource::select(
            render(&c, &state, &row),
            q.attributes.as_deref(),
            q.excluded_attributes.as_deref(),
        ),
    ))
}

async fn load(state: &AppState, c: &Caller, id: &str) -> Result<ScimUserRow, ScimError> {
    state
        .store
        .scim_user(&c.org.id, id)
        .await
        .map_err(store_failed)?
        .ok_or_else(|| ScimError::not_found("User"))
}

fn write<'a>(
    c: &'a Caller,
    id: &'a str,
    attrs: &'a Map<String, Value>,
    key: &'a str,
    text: &'a str,
    now: i64,
) -> ScimUserWrite<'a> {
    ScimUserWrite {
        org: &c.org.id,
        id,
        user_name_key: key,
        external_id: attrs.get("externalId").and_then(Value::as_str),
        resource: text,
        now,
    }
}

fn user_name_key(attrs: &Map<String, Value>) -> String {
    attrs
        .get("userName")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_lowercase()
}

async fn create_user(
    State(state): State<AppState>,
    c: Caller,
    headers: HeaderMap,
    body: Bytes,
) -> ScimResult {
    let attrs = resource::user_from_body(&body_json(&headers, &body)?)?;
    let id = uuid::Uuid::now_v7().to_string();
    let text = Value::Object(attrs.clone()).to_string();
    let key = user_name_key(&attrs);
    let row = state
        .store
        .create_scim_user(write(&c, &id, &attrs, &key, &text, state.now()))
        .await
        .map_err(store_failed)?;
    // A User whose person cannot be provisioned (say, the invitation limit is reached) is not
    // kept: the provider's retry then creates it afresh instead of meeting "userName exists".
    if let Err(e) = provision(&state, &c, &attrs).await {
        let _ = state.store.delete_scim_user(&c.org.id, &id).await;
        return Err(e);
    }
    state.audit.record(
        c.event("scim.user_created", &id)
            .detail("user_name", key.as_str())
            .detail("active", resource::is_active(&attrs)),
    );
    let body = render(&c, &state, &row);
    let mut r = scim_json(StatusCode::CREATED, body);
    if let Ok(v) = HeaderValue::from_str(&format!("{}/Users/{}", c.base(&state), row.id)) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    Ok(r)
}

async fn replace_user(
    State(state): State<AppState>,
    Path((_, id)): Path<(String, String)>,
    c: Caller,
    headers: HeaderMap,
    body: Bytes,
) -> ScimResult {
    let attrs = resource::user_from_body(&body_json(&headers, &body)?)?;
    let before = load(&state, &c, &id).await?;
    store_user(&state, &c, &id, attrs, &before).await
}

async fn patch_user(
    State(state): State<AppState>,
    Path((_, id)): Path<(String, String)>,
    c: Caller,
    headers: HeaderMap,
    body: Bytes,
) -> ScimResult {
    let ops = body_json(&headers, &body)?;
    let before = load(&state, &c, &id).await?;
    let attrs = resource::apply_patch(attributes_of(&before), &ops)?;
    store_user(&state, &c, &id, attrs, &before).await
}

/// Writes a replaced or patched User, then applies what changed to the membership.
async fn store_user(
    state: &AppState,
    c: &Caller,
    id: &str,
    attrs: Map<String, Value>,
    before: &ScimUserRow,
) -> ScimResult {
    let now = state.now();
    let text = Value::Object(attrs.clone()).to_string();
    let key = user_name_key(&attrs);
    if !state
        .store
        .replace_scim_user(write(c, id, &attrs, &key, &text, now))
        .await
        .map_err(store_failed)?
    {
        return Err(ScimError::not_found("User"));
    }
    let was = attributes_of(before);
    let address = |a: &Map<String, Value>| {
        resource::email_of(a).and_then(|e| crate::store::Email::parse(&e).ok())
    };
    if address(&was) != address(&attrs) {
        // The address changed: whoever it named before is no longer provisioned by this User.
        deprovision(state, c, &was, "scim.user_reassigned").await?;
    }
    if resource::is_active(&attrs) {
        provision(state, c, &attrs).await?;
    } else {
        deprovision(state, c, &attrs, "scim.user_deactivated").await?;
    }
    state.audit.record(
        c.event("scim.user_updated", id)
            .detail("active", resource::is_active(&attrs)),
    );
    let row = ScimUserRow {
        resource: text,
        updated_at: now,
        ..before.clone()
    };
    Ok(scim_json(StatusCode::OK, render(c, state, &row)))
}

async fn delete_user(
    State(state): State<AppState>,
    Path((_, id)): Path<(String, String)>,
    c: Caller,
) -> ScimResult {
    let before = load(&state, &c, &id).await?;
    if !state
        .store
        .delete_scim_user(&c.org.id, &id)
        .await
        .map_err(store_failed)?
    {
        return Err(ScimError::not_found("User"));
    }
    deprovision(&state, &c, &attributes_of(&before), "scim.user_deleted").await?;
    state.audit.record(c.event("scim.user_deleted", &id));
    Ok(StatusCode::NO_CONTENT.into_response())
}
