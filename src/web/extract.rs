//! What page handlers read before they do anything, once: a posted form whose CSRF token
//! matches the session's, and the request's metadata for the audit trail.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};

use axum::body::Body;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use tower_sessions::Session;

use super::{check_csrf, csrf_failure, error_page};
use crate::http::{RequestMeta, client_ip, parse_form, read_body};
use crate::state::AppState;

/// The largest form a page accepts.
const MAX_FORM_BYTES: usize = 16 * 1024;

/// The client address (through the trusted proxies) and the request id.
impl FromRequestParts<AppState> for RequestMeta {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Infallible> {
        Ok(RequestMeta::from_parts(parts, state.config.trusted_proxies))
    }
}

/// The client's address, which sign-in throttles on: the socket peer, or behind
/// `CLARI_MCP_TRUSTED_PROXIES` proxies the entry that many from the right of `X-Forwarded-For`.
pub struct ClientAddr(pub IpAddr);

impl FromRequestParts<AppState> for ClientAddr {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let ConnectInfo(peer) = ConnectInfo::<SocketAddr>::from_request_parts(parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let ip = client_ip(state.config.trusted_proxies, &parts.headers, peer);
        Ok(ClientAddr(ip))
    }
}

/// Where a request comes from, for the endpoints that throttle or authenticate on the client's
/// address and record what they did in the audit trail: the [`ClientAddr`] and the
/// [`RequestMeta`].
pub struct Origin {
    pub ip: IpAddr,
    pub meta: RequestMeta,
}

impl FromRequestParts<AppState> for Origin {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let ClientAddr(ip) = ClientAddr::from_request_parts(parts, state).await?;
        let meta = RequestMeta::from_parts(parts, state.config.trusted_proxies);
        Ok(Origin { ip, meta })
    }
}

/// Reads a form into a buffer wiped when dropped: forms carry passwords and Clari keys, and
/// handlers move secret fields out of the map into `SecretString`s.
async fn secret_form(body: Body) -> Result<HashMap<String, String>, Response> {
    // `Vec::from` takes over the body's allocation when it is the only owner.
    read_body(body, MAX_FORM_BYTES)
        .await
        .map(|b| zeroize::Zeroizing::new(Vec::from(b)))
        .and_then(|b| parse_form(&b))
        .map_err(|e| {
            error_page(
                StatusCode::BAD_REQUEST,
                "The form is malformed",
                &e.0,
                "Go back, reload the page and try again.",
            )
        })
}

/// The session of a request: the session layer puts it on every page route.
pub async fn session_of(parts: &mut Parts, state: &AppState) -> Result<Session, Response> {
    Session::from_request_parts(parts, state)
        .await
        .map_err(IntoResponse::into_response)
}

/// A posted form whose `csrf` field matches the session's token (the synchronizer token pattern
/// of the OWASP CSRF cheat sheet), or the page that says the form expired.
pub struct CsrfForm(pub HashMap<String, String>);

impl CsrfForm {
    async fn read(parts: &mut Parts, body: Body, state: &AppState) -> Result<Self, Response> {
        let session = session_of(parts, state).await?;
        let form = secret_form(body).await?;
        if !check_csrf(&session, form.get("csrf")).await {
            return Err(csrf_failure());
        }
        Ok(CsrfForm(form))
    }
}

impl FromRequest<AppState> for CsrfForm {
    type Rejection = Response;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Response> {
        let (mut parts, body) = req.into_parts();
        Self::read(&mut parts, body, state).await
    }
}

/// A CSRF-checked form and then who posted it (`C`, such as the signed-in console): the form is
/// checked first, so a forged post is refused as such whoever it claims to come from.
pub struct Posted<C> {
    pub by: C,
    pub form: HashMap<String, String>,
}

impl<C> FromRequest<AppState> for Posted<C>
where
    C: FromRequestParts<AppState, Rejection = Response> + Send,
{
    type Rejection = Response;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Response> {
        let (mut parts, body) = req.into_parts();
        let CsrfForm(form) = CsrfForm::read(&mut parts, body, state).await?;
        let by = C::from_request_parts(&mut parts, state).await?;
        Ok(Posted { by, form })
    }
}
