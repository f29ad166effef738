//! Redirect URI rules. Registration: https, http only on loopback (`127.0.0.1`, `[::1]`,
//! `localhost`), or a private-use scheme for native apps; never a fragment, credentials, dot
//! segments, or a `javascript:`/`data:`/`file:`-like scheme. Use: exact string match against a
//! registered URI, except that a loopback URI may use any port (RFC 8252 §7.3).

use url::Url;

const FORBIDDEN_SCHEMES: &[&str] = &[
    "javascript",
    "data",
    "file",
    "vbscript",
    "about",
    "blob",
    "filesystem",
    "ftp",
    "ws",
    "wss",
];

/// Why a redirect URI cannot be registered; each message quotes the URI (made printable).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RedirectUriError {
    #[error("redirect URIs must be 1 to 2000 characters")]
    Length,
    #[error("'{0}' contains white space or control characters")]
    Unprintable(String),
    #[error("'{0}' has a fragment")]
    Fragment(String),
    #[error("'{0}' is not an absolute URI")]
    NotAbsolute(String),
    #[error("the '{0}:' scheme is not allowed")]
    ForbiddenScheme(String),
    #[error("'{0}' contains credentials")]
    Credentials(String),
    #[error("'{0}' has dot segments or encoded dots, slashes or percent signs in its path")]
    PathTricks(String),
    #[error("'{0}' uses http on a host that is not loopback; use https")]
    PlainHttp(String),
    #[error(
        "the '{0}:' scheme is not allowed: use https, http on loopback, or a reverse-domain private-use scheme"
    )]
    PrivateScheme(String),
}

/// Whether a redirect URI may be registered.
pub fn validate_for_registration(uri: &str) -> Result<(), RedirectUriError> {
    use RedirectUriError as E;
    if uri.is_empty() || uri.len() > 2000 {
        return Err(E::Length);
    }
    if uri.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(E::Unprintable(printable(uri)));
    }
    if uri.contains('#') {
        return Err(E::Fragment(printable(uri)));
    }
    let url = Url::parse(uri).map_err(|_| E::NotAbsolute(printable(uri)))?;
    let scheme = url.scheme();
    if FORBIDDEN_SCHEMES.contains(&scheme) {
        return Err(E::ForbiddenScheme(scheme.to_owned()));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(E::Credentials(printable(uri)));
    }
    let raw_path = raw_path(uri);
    let lower = raw_path.to_ascii_lowercase();
    if raw_path.split('/').any(|seg| seg == ".." || seg == ".")
        || lower.contains("%2e")
        || lower.contains("%2f")
        || lower.contains("%25")
    {
        return Err(E::PathTricks(printable(uri)));
    }
    match scheme {
        "https" => Ok(()),
        "http" if is_loopback_url(&url) => Ok(()),
        "http" => Err(E::PlainHttp(printable(uri))),
        // Private-use schemes (RFC 8252 §7.1) should be reverse domain names, e.g. com.example.app.
        s if s.contains('.') => Ok(()),
        s => Err(E::PrivateScheme(s.to_owned())),
    }
}

/// The path exactly as written (the parser would normalise dot segments away).
fn raw_path(uri: &str) -> &str {
    let after_scheme = uri.split_once(':').map_or(uri, |(_, rest)| rest);
    let after_authority = after_scheme
        .strip_prefix("//")
        .map_or(after_scheme, |rest| {
            rest.find('/').map_or("", |i| &rest[i..])
        });
    after_authority.split(['?', '#']).next().unwrap_or_default()
}

fn printable(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).take(200).collect()
}

/// `http` to `127.0.0.1`, `[::1]` or `localhost` exactly (not `localhost.evil.com`).
pub fn is_loopback_url(url: &Url) -> bool {
    url.scheme() == "http"
        && match url.host() {
            Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
            Some(url::Host::Ipv4(ip)) => ip == std::net::Ipv4Addr::LOCALHOST,
            Some(url::Host::Ipv6(ip)) => ip == std::net::Ipv6Addr::LOCALHOST,
            None => false,
        }
}

/// Whether a requested redirect URI is allowed by one registered URI.
pub fn matches(registered: &str, requested: &str) -> bool {
    registered == requested || same_loopback_but_port(registered, requested)
}

/// RFC 8252 §7.3: an http loopback redirect may use any port. Everything else must be the same,
/// compared on the parsed URL, and the requested text must be exactly what the parser understood:
/// no credentials, no backslashes (which some parsers read as `/` and others as part of the
/// authority), no fragment, no dot segments or other spellings that normalise.
fn same_loopback_but_port(registered: &str, requested: &str) -> bool {
    if requested.contains(['\\', '@', '#']) || requested.chars().any(|c| c.is_whitespace()) {
        return false;
    }
    let (Ok(reg), Ok(req)) = (Url::parse(registered), Url::parse(requested)) else {
        return false;
    };
    if !(is_loopback_url(&reg) && is_loopback_url(&req)) {
        return false;
    }
    if !req.username().is_empty() || req.password().is_some() {
        return false;
    }
    let without_port = |u: &Url| {
        format!(
            "http://{}{}{}",
            u.host_str().unwrap_or_default(),
            u.path(),
            u.query().map(|q| format!("?{q}")).unwrap_or_default()
        )
    };
    let as_parsed = format!(
        "http://{}{}{}{}",
        req.host_str().unwrap_or_default(),
        req.port().map(|p| format!(":{p}")).unwrap_or_default(),
        req.path(),
        req.query().map(|q| format!("?{q}")).unwrap_or_default()
    );
    // The registered text, with its port taken out, must be the requested one without its port.
    as_parsed == requested
        && without_port(&reg) == without_port(&req)
        && strip_port(registered) == without_port(&req)
}

/// `http://127.0.0.1:1234/cb?x` → `http://127.0.0.1/cb?x` (textually).
fn strip_port(uri: &str) -> String {
    let Some(rest) = uri.strip_prefix("http://") else {
        return uri.to_owned();
    };
    let (authority, tail) = rest
        .find(['/', '?'])
        .map_or((rest, ""), |i| rest.split_at(i));
    let host = if authority.starts_with('[') {
        authority.find(']').map_or(authority, |i| &authority[..=i])
    } else {
        authority.split(':').next().unwrap_or(authority)
    };
    format!("http://{host}{tail}")
}

/// The registered URI that allows `requested`, if any.
pub fn find_match<'a>(registered: &'a [String], requested: &str) -> Option<&'a str> {
    registered
        .iter()
        .map(String::as_str)
        .find(|r| matches(r, requested))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registration_accepts_https_loopback_and_private_use() {
        for ok in [
            "https://claude.ai/api/mcp/auth_callback",
            "http://127.0.0.1/callback",
            "http://127.0.0.1:3999/callback",
            "http://localhost:6274/oauth/callback",
            "http://[::1]/cb",
            "com.example.app:/oauth2redirect",
            "cursor.app://callback",
        ] {
            assert!(validate_for_registration(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn registration_rejects_dangerous_and_sloppy_uris() {
        for bad in [
            "http://example.com/cb",
            "http://localhost.evil.com/cb",
            "http://127.0.0.1.nip.io/cb",
            "javascript:alert(1)",
            "JavaScript:alert(1)",
            "data:text/html,hi",
            "file:///etc/passwd",
            "https://example.com/cb#frag",
            "https://user:pw@example.com/cb",
            "https://example.com/a/../b",
            "https://example.com/a/%2e%2e/b",
            "https://example.com/a/%252E%252E/b",
            "myapp:/cb",
            "/relative",
            "https://exa mple.com/",
            "",
        ] {
            assert!(validate_for_registration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn matching_is_exact_except_loopback_ports() {
        let reg = "https://app.example.com/cb";
        assert!(matches(reg, reg));
        for near in [
            "https://app.example.com/cb/",
            "https://app.example.com/cb/x",
            "https://APP.example.com/cb",
            "HTTPS://app.example.com/cb",
            "https://app.example.com:443/cb",
            "https://app.example.com/cb?x=1",
            "https://app.example.com/cb/../cb",
        ] {
            assert!(!matches(reg, near), "{near}");
        }
        assert!(matches(
            "http://127.0.0.1/callback",
            "http://127.0.0.1:53124/callback"
        ));
        assert!(matches(
            "http://localhost:3000/callback",
            "http://localhost:61000/callback"
        ));
        assert!(matches("http://[::1]/cb", "http://[::1]:8080/cb"));
        assert!(!matches(
            "http://127.0.0.1/callback",
            "http://127.0.0.1:53124/other"
        ));
        assert!(!matches(
            "http://127.0.0.1/callback",
            "http://127.0.0.1:53124/callback?x=1"
        ));
        assert!(!matches(
            "http://127.0.0.1/callback",
            "http://localhost:53124/callback"
        ));
        assert!(!matches(
            "http://127.0.0.1/callback",
            "https://127.0.0.1/callback"
        ));
        assert!(
            !matches("https://127.0.0.1/cb", "https://127.0.0.1:8443/cb"),
            "port relaxation is for http loopback only"
        );
    }

    #[test]
    fn loopback_matching_refuses_credentials_backslashes_and_normalised_spellings() {
        let reg = "http://127.0.0.1/callback";
        for attack in [
            "http://127.0.0.1:8080\\@evil.com/callback",
            "http://127.0.0.1:x@127.0.0.1:9/callback",
            "http://user@127.0.0.1:9/callback",
            "http://127.0.0.1:9/x/../callback",
            "http://127.0.0.1:9/./callback",
            "http://127.0.0.1:9/callback#x",
            "http://127.000.000.001:9/callback",
            "http://127.0.0.1:09/callback",
            "http://127.0.0.1:9\\callback",
        ] {
            assert!(!matches(reg, attack), "{attack}");
        }
        assert!(matches(reg, "http://127.0.0.1:9/callback"));
        assert!(matches(
            "http://127.0.0.1/cb?a=1",
            "http://127.0.0.1:9/cb?a=1"
        ));
    }
}
