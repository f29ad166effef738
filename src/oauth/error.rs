//! RFC 6749 §5.2 error responses: JSON `{error, error_description}`, `Cache-Control: no-store`,
//! 400 (401 with `WWW-Authenticate` for `invalid_client`). Descriptions are plain ASCII without
//! CR/LF/TAB, quotes or backslashes, and never carry internals.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    InvalidRequest,
    InvalidClient,
    InvalidGrant,
    UnauthorizedClient,
    UnsupportedGrantType,
    UnsupportedResponseType,
    InvalidScope,
    InvalidTarget,
    AccessDenied,
    ServerError,
    TemporarilyUnavailable,
    InvalidRedirectUri,
    InvalidClientMetadata,
    InvalidToken,
    SlowDown,
    LoginRequired,
    ConsentRequired,
    /// RFC 9449 §5: the DPoP proof is not valid.
    InvalidDpopProof,
    /// RFC 9449 §8: send the proof again with the nonce in the `DPoP-Nonce` header.
    UseDpopNonce,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::InvalidClient => "invalid_client",
            Self::InvalidGrant => "invalid_grant",
            Self::UnauthorizedClient => "unauthorized_client",
            Self::UnsupportedGrantType => "unsupported_grant_type",
            Self::UnsupportedResponseType => "unsupported_response_type",
            Self::InvalidScope => "invalid_scope",
            Self::InvalidTarget => "invalid_target",
            Self::AccessDenied => "access_denied",
            Self::ServerError => "server_error",
            Self::TemporarilyUnavailable => "temporarily_unavailable",
            Self::InvalidRedirectUri => "invalid_redirect_uri",
            Self::InvalidClientMetadata => "invalid_client_metadata",
            Self::InvalidToken => "invalid_token",
            Self::SlowDown => "slow_down",
            Self::LoginRequired => "login_required",
            Self::ConsentRequired => "consent_required",
            Self::InvalidDpopProof => "invalid_dpop_proof",
            Self::UseDpopNonce => "use_dpop_nonce",
        }
    }
}

impl std::fmt::Display for OAuthError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.description)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthError {
    pub code: ErrorCode,
    pub description: String,
    /// For `invalid_client` after HTTP Basic: answer 401 with a Basic challenge.
    pub basic_challenge: bool,
    pub status: Option<StatusCode>,
    pub retry_after: Option<u64>,
    /// A fresh DPoP nonce for the `DPoP-Nonce` header (RFC 9449 §8).
    pub dpop_nonce: Option<String>,
}

impl OAuthError {
    pub fn new(code: ErrorCode, description: impl AsRef<str>) -> Self {
        Self {
            code,
            description: sanitize(description.as_ref()),
            basic_challenge: false,
            status: None,
            retry_after: None,
            dpop_nonce: None,
        }
    }

    pub fn invalid_request(d: impl AsRef<str>) -> Self {
        Self::new(ErrorCode::InvalidRequest, d)
    }
    pub fn invalid_grant(d: impl AsRef<str>) -> Self {
        Self::new(ErrorCode::InvalidGrant, d)
    }
    pub fn invalid_client(d: impl AsRef<str>) -> Self {
        Self::new(ErrorCode::InvalidClient, d)
    }
    pub fn server_error() -> Self {
        Self::new(
            ErrorCode::ServerError,
            "The server could not complete the request. Try again later.",
        )
    }

    pub fn with_status(mut self, status: StatusCode) -> Self {
        self.status = Some(status);
        self
    }

    pub fn with_basic_challenge(mut self, basic: bool) -> Self {
        self.basic_challenge = basic;
        self
    }

    pub fn status(&self) -> StatusCode {
        self.status.unwrap_or(match self.code {
            ErrorCode::InvalidClient | ErrorCode::InvalidToken => StatusCode::UNAUTHORIZED,
            ErrorCode::ServerError => StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::TemporarilyUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::BAD_REQUEST,
        })
    }
}

impl From<crate::http::FormError> for OAuthError {
    fn from(e: crate::http::FormError) -> Self {
        Self::invalid_request(e.0)
    }
}

impl From<crate::store::StoreError> for OAuthError {
    fn from(e: crate::store::StoreError) -> Self {
        tracing::error!(error = %e, "storage failure on an OAuth endpoint");
        Self::server_error()
    }
}

/// Keeps `%x20-21 / %x23-5B / %x5D-7E` (RFC 6749 §5.2), bounded.
pub fn sanitize(text: &str) -> String {
    let kept: String = text
        .chars()
        .map(|c| {
            if c == '\n' || c == '\r' || c == '\t' {
                ' '
            } else {
                c
            }
        })
        .filter(|c| matches!(*c as u32, 0x20..=0x21 | 0x23..=0x5B | 0x5D..=0x7E))
        .take(300)
        .collect();
    kept.split(' ')
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// `Cache-Control: no-store` and `Pragma: no-cache` on every token-bearing or error response.
pub fn no_store(mut r: Response) -> Response {
    let h = r.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    r
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let status = self.status();
        let mut r = (
            status,
            Json(serde_json::json!({"error": self.code.as_str(), "error_description": self.description})),
        )
            .into_response();
        if status == StatusCode::UNAUTHORIZED && self.basic_challenge {
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"clari-mcp\", charset=\"UTF-8\""),
            );
        }
        if let Some(v) = self
            .dpop_nonce
            .as_deref()
            .and_then(|n| HeaderValue::from_str(n).ok())
        {
            r.headers_mut().insert(super::dpop::NONCE_HEADER, v);
        }
        if let Some(secs) = self.retry_after {
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        no_store(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptions_drop_forbidden_characters() {
        assert_eq!(sanitize("bad\r\nvalue\t\"x\"\\y é"), "bad value xy");
        assert!(sanitize(&"a".repeat(1000)).len() <= 300);
    }
}
