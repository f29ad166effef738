//! The token endpoint's HTTP edge (RFC 6749 §3.2): the form read into a [`TokenRequest`] (the
//! grant type and its parameters), the client authenticated, the grant handed to the service
//! that does its I/O (`grants` for codes and refresh, `service` for client credentials, `idjag`
//! for identity assertions), and what it returns rendered as the RFC 6749 §5.1 token response
//! or the §5.2 error.

use axum::body::Body;
use std::collections::HashMap;
use std::net::IpAddr;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};

use super::client::Client;
use super::dpop;
use super::error::{ErrorCode, OAuthError};
use super::grants::{self, CodeExchange, RefreshExchange};
use super::idjag;
use super::issue::{Issued, answer};
use super::service::{self, ClientCredentials};
use super::{MAX_FORM_BYTES, authenticate_client, require_form};
use crate::http::{parse_form, read_body};
use crate::state::AppState;
use crate::web::extract::Origin;

pub use super::core::ROTATION_GRACE_SECS;

/// The grant types of the token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrantType {
    AuthorizationCode,
    RefreshToken,
    /// RFC 6749 §4.4, for machine clients (the `oauth-client-credentials` extension).
    ClientCredentials,
    /// RFC 7523 §2.1 with an Identity Assertion JWT Authorization Grant (ID-JAG).
    JwtBearer,
}

/// `urn:ietf:params:oauth:grant-type:jwt-bearer` (RFC 7523 §2.1).
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

impl GrantType {
    pub const ALL: [GrantType; 4] = [
        Self::AuthorizationCode,
        Self::RefreshToken,
        Self::ClientCredentials,
        Self::JwtBearer,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::AuthorizationCode => "authorization_code",
            Self::RefreshToken => "refresh_token",
            Self::ClientCredentials => "client_credentials",
            Self::JwtBearer => JWT_BEARER,
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|g| g.as_str() == text)
    }
}

/// A token request: its grant type and the parameters that grant reads.
pub enum TokenRequest<'a> {
    AuthorizationCode(CodeExchange<'a>),
    RefreshToken(RefreshExchange<'a>),
    ClientCredentials(ClientCredentials<'a>),
    JwtBearer(idjag::Exchange<'a>),
}

impl<'a> TokenRequest<'a> {
    /// The parameters of `grant_type` from the form. A missing one is refused by its grant,
    /// after the client is authenticated.
    pub fn read(grant_type: GrantType, form: &'a HashMap<String, String>) -> Self {
        let get = |k: &str| form.get(k).map(String::as_str);
        match grant_type {
            GrantType::AuthorizationCode => Self::AuthorizationCode(CodeExchange {
                code: get("code"),
                redirect_uri: get("redirect_uri"),
                verifier: get("code_verifier"),
                resource: get("resource"),
            }),
            GrantType::RefreshToken => Self::RefreshToken(RefreshExchange {
                refresh_token: get("refresh_token"),
                scope: get("scope"),
                resource: get("resource"),
            }),
            GrantType::ClientCredentials => Self::ClientCredentials(ClientCredentials {
                scope: get("scope"),
                resource: get("resource"),
            }),
            GrantType::JwtBearer => Self::JwtBearer(idjag::Exchange {
                assertion: get("assertion"),
                scope: get("scope"),
                resource: get("resource"),
            }),
        }
    }
}

#[tracing::instrument(skip_all, fields(client_id, grant_type))]
pub async fn post_token(
    State(state): State<AppState>,
    origin: Origin,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let read = read_form(&headers, body).await;
    let label = read.as_ref().map_or("", |(g, _)| g.as_str());
    let outcome = match read {
        Ok((grant_type, form)) => token(&state, origin, &headers, grant_type, &form).await,
        Err(e) => Err(e),
    };
    match outcome {
        Ok(issued) => {
            state.metrics.token_request(label, "ok");
            answer(&state, issued)
        }
        Err(e) => {
            tracing::info!(error = e.code.as_str(), "token request refused");
            state.metrics.token_request(label, e.code.as_str());
            e.into_response()
        }
    }
}

/// The form of a token request and its grant type.
async fn read_form(
    headers: &HeaderMap,
    body: Body,
) -> Result<(GrantType, HashMap<String, String>), OAuthError> {
    require_form(headers)?;
    let bytes = read_body(body, MAX_FORM_BYTES).await?;
    let form = parse_form(&bytes)?;
    let named = form
        .get("grant_type")
        .ok_or_else(|| OAuthError::invalid_request("grant_type is required"))?;
    let Some(grant_type) = GrantType::parse(named) else {
        return Err(OAuthError::new(
            ErrorCode::UnsupportedGrantType,
            format!(
                "grant_type must be one of {}",
                GrantType::ALL.map(GrantType::as_str).join(", ")
            ),
        ));
    };
    tracing::Span::current().record("grant_type", grant_type.as_str());
    Ok((grant_type, form))
}

async fn token(
    state: &AppState,
    Origin { ip, meta }: Origin,
    headers: &HeaderMap,
    grant_type: GrantType,
    form: &HashMap<String, String>,
) -> Result<Issued, OAuthError> {
    // The DPoP proof is checked before anything is looked up; its jti is recorded only once
    // the grant is found good, just before tokens are issued (so no one makes rows with bad
    // grants).
    let proof = dpop::at_token_endpoint(state, headers)?;
    let proof = proof.as_ref();
    let client = || registered_client(state, ip, headers, form, grant_type);
    match TokenRequest::read(grant_type, form) {
        TokenRequest::ClientCredentials(asked) => {
            let client = service::authenticate(state, headers, form).await?;
            tracing::Span::current().record("client_id", client.id.as_str());
            service::client_credentials(state, &client, &meta, asked, proof).await
        }
        TokenRequest::AuthorizationCode(exchange) => {
            grants::redeem_code(state, &client().await?, &meta, exchange, proof).await
        }
        TokenRequest::RefreshToken(exchange) => {
            grants::refresh(state, &client().await?, &meta, exchange, proof).await
        }
        TokenRequest::JwtBearer(exchange) => {
            idjag::exchange(state, &client().await?, &meta, exchange, proof).await
        }
    }
}

/// The authenticated client of a request for a grant other than client credentials, registered
/// for that grant type (RFC 6749 §5.2 `unauthorized_client` otherwise).
async fn registered_client(
    state: &AppState,
    ip: IpAddr,
    headers: &HeaderMap,
    form: &HashMap<String, String>,
    grant_type: GrantType,
) -> Result<Client, OAuthError> {
    let client = authenticate_client(state, ip, headers, form).await?;
    tracing::Span::current().record("client_id", client.id.as_str());
    if !client
        .meta
        .grant_types
        .iter()
        .any(|g| g == grant_type.as_str())
    {
        return Err(OAuthError::new(
            ErrorCode::UnauthorizedClient,
            format!(
                "this client is not registered for the {} grant",
                grant_type.as_str()
            ),
        ));
    }
    Ok(client)
}
