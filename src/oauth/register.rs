//! RFC 7591 dynamic client registration (open by default, with abuse limits) and RFC 7592
//! management with the registration access token.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use secrecy::ExposeSecret;
use serde_json::{Value, json};

use super::client::{ClientMetadata, validate_metadata};
use super::error::{ErrorCode, OAuthError, no_store};
use crate::audit::{Actor, Event};
use crate::crypto::{constant_time_eq, random_token, sha256_hex};
use crate::http::ip_bucket;
use crate::state::AppState;
use crate::store::{ClientId, ClientKind, ClientRecord};
use crate::web::extract::Origin;

pub const MAX_REGISTRATION_BYTES: usize = 16 * 1024;
const WINDOW: i64 = 3_600;

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

fn invalid_token() -> Response {
    let mut r = OAuthError::new(
        ErrorCode::InvalidToken,
        "the registration access token is missing or invalid",
    )
    .into_response();
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        "Bearer error=\"invalid_token\"".parse().unwrap(),
    );
    r
}

fn client_json(state: &AppState, id: &str, meta: &ClientMetadata, issued_at: i64) -> Value {
    let mut body = serde_json::to_value(meta).expect("metadata serializes");
    body["client_id"] = json!(id);
    body["client_id_issued_at"] = json!(issued_at);
    body["registration_client_uri"] = json!(format!("{}/register/{id}", state.config.issuer));
    body
}

async fn parse_body(body: Body) -> Result<Value, OAuthError> {
    let bytes = crate::http::read_body_checked(body, MAX_REGISTRATION_BYTES)
        .await
        .map_err(|e| match e {
            crate::http::BodyError::TooLarge(_) => OAuthError::new(
                ErrorCode::InvalidClientMetadata,
                format!("the registration body is larger than {MAX_REGISTRATION_BYTES} bytes"),
            )
            .with_status(StatusCode::PAYLOAD_TOO_LARGE),
            other => OAuthError::new(ErrorCode::InvalidRequest, other.to_string()),
        })?;
    serde_json::from_slice(&bytes).map_err(|_| {
        OAuthError::new(
            ErrorCode::InvalidClientMetadata,
            "the registration body is not valid JSON",
        )
    })
}

#[tracing::instrument(skip_all, fields(client_id))]
pub async fn register_client(
    State(state): State<AppState>,
    origin: Origin,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match register(&state, origin, &headers, body).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn register(
    state: &AppState,
    Origin { ip, meta: request }: Origin,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, OAuthError> {
    if let Some(expected) = &state.config.dcr_initial_access_token {
        let ok = bearer(headers)
            .is_some_and(|t| constant_time_eq(t.as_bytes(), expected.expose_secret().as_bytes()));
        if !ok {
            return Ok(invalid_token());
        }
    }
    let now = state.now();
    let window = now - now.rem_euclid(WINDOW);
    let hits = state
        .store
        .rate_hit(&format!("dcr:{}", ip_bucket(ip)), window)
        .await?;
    if hits > i64::from(state.config.dcr_rate_limit) {
        let mut e = OAuthError::new(
            ErrorCode::InvalidRequest,
            "too many client registrations from this address; try again later",
        )
        .with_status(StatusCode::TOO_MANY_REQUESTS);
        e.retry_after = Some((window + WINDOW - now).max(1) as u64);
        return Err(e);
    }
    let raw = parse_body(body).await?;
    let meta = validate_metadata(&raw)?;
    let client_id =
        ClientId::parse(&format!("cmc_{}", random_token(18))).expect("a minted id parses");
    tracing::Span::current().record("client_id", client_id.as_str());
    let secret = (meta.token_endpoint_auth_method != "none").then(|| random_token(32));
    let registration_token = random_token(32);
    let record = ClientRecord {
        id: client_id.clone(),
        kind: ClientKind::Dcr,
        metadata: serde_json::to_value(&meta).expect("metadata serializes"),
        secret_hash: secret.as_deref().map(sha256_hex),
        registration_token_hash: Some(sha256_hex(&registration_token)),
        created_at: now,
        updated_at: now,
        last_used_at: None,
        expires_at: Some(now + state.config.dcr_client_ttl),
        disabled: false,
    };
    state.store.create_client(&record).await?;
    tracing::info!(client_name = %meta.client_name, public = secret.is_none(), "client registered");
    let request = request.parts();
    state.audit.record(
        Event::new(
            None,
            Actor::new("client", client_id.as_str(), Some(meta.client_name.clone())),
            "client.registered",
        )
        .target(client_id.as_str())
        .from_request(request.0, request.1)
        .detail("redirect_uris", meta.redirect_uris.clone())
        .detail("public", secret.is_none()),
    );
    let mut body = client_json(state, client_id.as_str(), &meta, now);
    if let Some(s) = secret {
        body["client_secret"] = json!(s);
        body["client_secret_expires_at"] = json!(0);
    }
    body["registration_access_token"] = json!(registration_token);
    Ok(no_store((StatusCode::CREATED, Json(body)).into_response()))
}

/// The client behind a registration access token; `None` for unknown clients and wrong tokens alike.
async fn managed_client(
    state: &AppState,
    headers: &HeaderMap,
    client_id: &str,
) -> Result<Option<ClientRecord>, OAuthError> {
    let Some(token) = bearer(headers) else {
        return Ok(None);
    };
    let Ok(client_id) = ClientId::parse(client_id) else {
        return Ok(None);
    };
    let Some(record) = state.store.client(&client_id).await? else {
        return Ok(None);
    };
    let ok = !record.disabled
        && record.kind == ClientKind::Dcr
        && record
            .registration_token_hash
            .as_deref()
            .is_some_and(|h| constant_time_eq(sha256_hex(token).as_bytes(), h.as_bytes()));
    Ok(ok.then_some(record))
}

pub async fn read_client(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(client_id): Path<String>,
) -> Response {
    match managed_client(&state, &headers, &client_id).await {
        Ok(Some(r)) => match serde_json::from_value::<ClientMetadata>(r.metadata) {
            Ok(meta) => {
                no_store(Json(client_json(&state, &client_id, &meta, r.created_at)).into_response())
            }
            Err(_) => OAuthError::server_error().into_response(),
        },
        Ok(None) => invalid_token(),
        Err(e) => e.into_response(),
    }
}

pub async fn update_client(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(client_id): Path<String>,
    body: Body,
) -> Response {
    let record = match managed_client(&state, &headers, &client_id).await {
        Ok(Some(r)) => r,
        Ok(None) => return invalid_token(),
        Err(e) => return e.into_response(),
    };
    let result = async {
        let raw = parse_body(body).await?;
        if raw
            .get("client_id")
            .and_then(Value::as_str)
            .is_some_and(|id| id != client_id)
        {
            return Err(OAuthError::new(
                ErrorCode::InvalidClientMetadata,
                "client_id cannot change",
            ));
        }
        let meta = validate_metadata(&raw)?;
        let old: Option<ClientMetadata> = serde_json::from_value(record.metadata.clone()).ok();
        if old.is_some_and(|o| {
            (o.token_endpoint_auth_method == "none") != (meta.token_endpoint_auth_method == "none")
        }) {
            return Err(OAuthError::new(
                ErrorCode::InvalidClientMetadata,
                "a client cannot switch between public and confidential; register a new one",
            ));
        }
        let value = serde_json::to_value(&meta).expect("metadata serializes");
        state
            .store
            .update_client_metadata(&record.id, &value, state.now())
            .await?;
        // Consent was given for the old redirect URIs: ask again before codes go anywhere new.
        if super::client::redirects_changed(&record.metadata, &meta) {
            state.store.forget_consent_everywhere(&record.id).await?;
        }
        Ok(no_store(
            Json(client_json(&state, &client_id, &meta, record.created_at)).into_response(),
        ))
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

pub async fn delete_client(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(client_id): Path<String>,
) -> Response {
    match managed_client(&state, &headers, &client_id).await {
        Ok(Some(record)) => match state.store.disable_client(&record.id, state.now()).await {
            Ok(_) => no_store(StatusCode::NO_CONTENT.into_response()),
            Err(e) => OAuthError::from(e).into_response(),
        },
        Ok(None) => invalid_token(),
        Err(e) => e.into_response(),
    }
}
