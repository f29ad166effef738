//! The rules of an authorization request once its client and redirect URI are known, as pure
//! functions: response type, PKCE S256, requested scope (defaulted, never beyond what the client
//! registered), RFC 8707 resource, and how scopes are shown and stored after consent.

use std::collections::HashMap;

use super::error::ErrorCode;
use super::pkce;
use crate::scope::{Scope, ScopeSet};

/// Why an authorization request is refused, in RFC 6749 terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizeError {
    pub code: ErrorCode,
    pub description: String,
}

fn refuse(code: ErrorCode, description: impl Into<String>) -> AuthorizeError {
    AuthorizeError {
        code,
        description: description.into(),
    }
}

/// The parts of an authorization request that passed validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidRequest {
    pub challenge: String,
    pub requested: ScopeSet,
    /// Always this server's MCP URL, as configured.
    pub resource: String,
    pub prompt: String,
}

/// Validates everything after the client and redirect URI: response type, PKCE S256, scope (the
/// client's registered scope by default, and never beyond it), RFC 8707 resource. No I/O.
pub fn validate_authorization_request(
    params: &HashMap<String, String>,
    registered_scope: Option<&str>,
    mcp_url: &str,
) -> Result<ValidRequest, AuthorizeError> {
    match params.get("response_type").map(String::as_str) {
        Some("code") => {}
        Some(_) => {
            return Err(refuse(
                ErrorCode::UnsupportedResponseType,
                "only response_type=code is supported",
            ));
        }
        None => {
            return Err(refuse(
                ErrorCode::InvalidRequest,
                "response_type is required",
            ));
        }
    }
    let Some(challenge) = params.get("code_challenge") else {
        return Err(refuse(
            ErrorCode::InvalidRequest,
            "PKCE is required: send code_challenge with code_challenge_method=S256",
        ));
    };
    if params.get("code_challenge_method").map(String::as_str) != Some("S256") {
        return Err(refuse(
            ErrorCode::InvalidRequest,
            "code_challenge_method must be S256",
        ));
    }
    if !pkce::is_valid_challenge(challenge) {
        return Err(refuse(
            ErrorCode::InvalidRequest,
            "code_challenge must be 43 base64url characters",
        ));
    }
    let registered = registered_scope.and_then(|s| ScopeSet::parse(s).ok());
    let requested =
        resolve_requested_scope(params.get("scope").map(String::as_str), registered.as_ref())?;
    let resource = match params.get("resource") {
        Some(r) if resource_matches(r, mcp_url) => mcp_url.to_owned(),
        Some(_) => {
            return Err(refuse(
                ErrorCode::InvalidTarget,
                "resource must be this server's MCP URL",
            ));
        }
        None => mcp_url.to_owned(),
    };
    Ok(ValidRequest {
        challenge: challenge.clone(),
        requested,
        resource,
        prompt: params.get("prompt").cloned().unwrap_or_default(),
    })
}

/// The scope a request asks for: as written, else the client's registered scope, else
/// `clari:read`; never more than the client registered.
pub fn resolve_requested_scope(
    asked: Option<&str>,
    registered: Option<&ScopeSet>,
) -> Result<ScopeSet, AuthorizeError> {
    let requested = match asked.map(ScopeSet::parse) {
        None => registered
            .cloned()
            .unwrap_or_else(|| ScopeSet::new([Scope::ClariRead])),
        Some(Ok(s)) if !s.is_empty() => s,
        Some(Ok(_)) => ScopeSet::new([Scope::ClariRead]),
        Some(Err(e)) => return Err(refuse(ErrorCode::InvalidScope, e.to_string())),
    };
    if let Some(registered) = registered
        && !registered.covers(&requested)
    {
        return Err(refuse(
            ErrorCode::InvalidScope,
            "the requested scope exceeds the scope the client registered",
        ));
    }
    Ok(requested)
}

/// Accepts our MCP resource URL (scheme and host compared case-insensitively; one trailing slash allowed).
pub fn resource_matches(requested: &str, canonical: &str) -> bool {
    if requested.contains('#') {
        return false;
    }
    let (Ok(a), Ok(b)) = (url::Url::parse(requested), url::Url::parse(canonical)) else {
        return false;
    };
    a.scheme() == b.scheme()
        && a.host() == b.host()
        && a.port_or_known_default() == b.port_or_known_default()
        && a.path().trim_end_matches('/') == b.path().trim_end_matches('/')
        && a.query().is_none()
}

/// Consent shows the six narrow scopes in place of `clari:read`, so a user can untick any;
/// `admin` is shown only to someone who may grant it.
pub fn displayed_scopes(requested: &ScopeSet, may_grant_admin: bool) -> Vec<Scope> {
    let mut shown: Vec<Scope> = if requested.allows(Scope::ClariRead) {
        Scope::NARROW.to_vec()
    } else {
        requested.iter().filter(|s| *s != Scope::Admin).collect()
    };
    if may_grant_admin && requested.allows(Scope::Admin) {
        shown.push(Scope::Admin);
    }
    shown
}

/// All six narrow scopes granted amount to `clari:read` (`admin` stays separate).
pub fn normalize(scopes: ScopeSet) -> ScopeSet {
    if Scope::NARROW.iter().all(|s| scopes.allows(*s)) {
        let admin = scopes.allows(Scope::Admin).then_some(Scope::Admin);
        ScopeSet::new([Scope::ClariRead].into_iter().chain(admin))
    } else {
        scopes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_comparison_tolerates_case_and_one_trailing_slash_only() {
        let c = "https://mcp.example.com/mcp";
        assert!(resource_matches("https://mcp.example.com/mcp", c));
        assert!(resource_matches("HTTPS://MCP.example.com/mcp", c));
        assert!(resource_matches("https://mcp.example.com/mcp/", c));
        assert!(resource_matches("https://mcp.example.com:443/mcp", c));
        assert!(!resource_matches("https://mcp.example.com/mcp#x", c));
        assert!(!resource_matches("https://mcp.example.com/other", c));
        assert!(!resource_matches("https://evil.example.com/mcp", c));
        assert!(!resource_matches("mcp", c));
    }

    fn params(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    const MCP: &str = "https://mcp.example.com/mcp";
    const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

    fn good() -> Vec<(&'static str, &'static str)> {
        vec![
            ("response_type", "code"),
            ("code_challenge", CHALLENGE),
            ("code_challenge_method", "S256"),
        ]
    }

    #[test]
    fn a_valid_request_defaults_scope_and_resource() {
        let v = validate_authorization_request(&params(&good()), None, MCP).unwrap();
        assert_eq!(v.requested, ScopeSet::new([Scope::ClariRead]));
        assert_eq!(v.resource, MCP);
        let v =
            validate_authorization_request(&params(&good()), Some("forecasts:read"), MCP).unwrap();
        assert_eq!(
            v.requested.to_string(),
            "forecasts:read",
            "the registered scope"
        );
    }

    #[test]
    fn every_refusal_has_its_error_code() {
        let cases: Vec<(Vec<(&str, &str)>, ErrorCode)> = vec![
            (
                vec![("response_type", "token")],
                ErrorCode::UnsupportedResponseType,
            ),
            (vec![], ErrorCode::InvalidRequest),
            (vec![("response_type", "code")], ErrorCode::InvalidRequest),
            (
                vec![
                    ("response_type", "code"),
                    ("code_challenge", CHALLENGE),
                    ("code_challenge_method", "plain"),
                ],
                ErrorCode::InvalidRequest,
            ),
            (
                vec![
                    ("response_type", "code"),
                    ("code_challenge", "short"),
                    ("code_challenge_method", "S256"),
                ],
                ErrorCode::InvalidRequest,
            ),
        ];
        for (p, code) in cases {
            let e = validate_authorization_request(&params(&p), None, MCP).unwrap_err();
            assert_eq!(e.code, code, "{p:?}");
        }
        let mut p = good();
        p.push(("scope", "admin:everything"));
        assert_eq!(
            validate_authorization_request(&params(&p), None, MCP)
                .unwrap_err()
                .code,
            ErrorCode::InvalidScope
        );
        for bad in [
            "https://other.example.com/mcp",
            "https://mcp.example.com//mcp",
            "https://mcp.example.com/mcp/x",
        ] {
            let mut p = good();
            p.push(("resource", bad));
            assert_eq!(
                validate_authorization_request(&params(&p), None, MCP)
                    .unwrap_err()
                    .code,
                ErrorCode::InvalidTarget,
                "{bad}"
            );
        }
    }

    #[test]
    fn requested_scope_never_exceeds_the_registered_scope() {
        let reg = ScopeSet::parse("forecasts:read users:read").unwrap();
        assert!(resolve_requested_scope(Some("forecasts:read"), Some(&reg)).is_ok());
        assert_eq!(
            resolve_requested_scope(Some("clari:read"), Some(&reg))
                .unwrap_err()
                .code,
            ErrorCode::InvalidScope
        );
        assert_eq!(
            resolve_requested_scope(Some(""), None).unwrap(),
            ScopeSet::new([Scope::ClariRead]),
            "an empty scope asks for the default"
        );
        assert_eq!(resolve_requested_scope(None, Some(&reg)).unwrap(), reg);
    }

    #[test]
    fn six_narrow_scopes_normalize_to_clari_read() {
        let all: ScopeSet = Scope::NARROW.into_iter().collect();
        assert_eq!(normalize(all).to_string(), "clari:read");
        let some = ScopeSet::parse("audit:read users:read").unwrap();
        assert_eq!(normalize(some.clone()), some);
    }
}
