//! What an organisation admin may configure as its OpenID Connect connection: the rules, as
//! pure functions.

/// At most this many e-mail domains per connection.
pub const MAX_DOMAINS: usize = 20;

/// Addresses anyone can get: no organisation can own these domains.
const PUBLIC_DOMAINS: &[&str] = &[
    "gmail.com",
    "googlemail.com",
    "outlook.com",
    "hotmail.com",
    "live.com",
    "yahoo.com",
    "icloud.com",
    "me.com",
    "aol.com",
    "proton.me",
    "protonmail.com",
    "gmx.com",
    "gmx.de",
    "mail.com",
    "yandex.com",
    "qq.com",
    "163.com",
];

/// A domain an organisation says it owns: a lower-case DNS name with a dot, not a public mail
/// provider's.
pub fn check_domain(text: &str) -> Result<String, String> {
    let d = text.trim().trim_end_matches('.').to_ascii_lowercase();
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    };
    if d.len() > 253 || !d.contains('.') || !d.split('.').all(label_ok) {
        return Err(format!("'{text}' is not a domain such as example.com"));
    }
    if PUBLIC_DOMAINS.contains(&d.as_str()) {
        return Err(format!(
            "{d} is a public mail provider's domain; no organisation can own it"
        ));
    }
    Ok(d)
}

/// The domains of a connection: 1 to [`MAX_DOMAINS`], each checked, without repeats.
pub fn check_domains(list: &[String]) -> Result<Vec<String>, String> {
    let mut out: Vec<String> = Vec::new();
    for d in list {
        let d = check_domain(d)?;
        if !out.contains(&d) {
            out.push(d);
        }
    }
    if out.is_empty() || out.len() > MAX_DOMAINS {
        return Err(format!("give 1 to {MAX_DOMAINS} e-mail domains"));
    }
    Ok(out)
}

/// The provider's issuer: an https URL without query or fragment (plain http only to a
/// loopback host, and only with `allow_loopback`, for tests).
pub fn check_issuer(text: &str, allow_loopback: bool) -> Result<String, String> {
    let t = text.trim().trim_end_matches('/');
    let url = url::Url::parse(t).map_err(|e| format!("'{text}' is not a URL: {e}"))?;
    let host = url.host_str().unwrap_or_default();
    let ok_scheme = url.scheme() == "https"
        || (allow_loopback && url.scheme() == "http" && crate::net::is_loopback_host(host));
    if !ok_scheme {
        return Err(format!("'{text}' must be an https URL"));
    }
    if url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() {
        return Err(format!(
            "'{text}' must not have a query, a fragment or credentials"
        ));
    }
    Ok(t.to_owned())
}

/// A claim or group name: 1 to 200 printable characters.
pub fn check_name(what: &str, text: &str) -> Result<String, String> {
    let t = text.trim();
    if t.is_empty() || t.chars().count() > 200 || t.chars().any(char::is_control) {
        return Err(format!("{what} must be 1 to 200 printable characters"));
    }
    Ok(t.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_are_dns_names_and_never_public_providers() {
        assert_eq!(check_domain(" Acme.COM. ").unwrap(), "acme.com");
        for bad in [
            "acme",
            "gmail.com",
            "-a.com",
            "a..com",
            "a_b.com",
            "a.com/x",
        ] {
            assert!(check_domain(bad).is_err(), "{bad}");
        }
        assert_eq!(
            check_domains(&["a.com".into(), "A.com".into()]).unwrap(),
            ["a.com"]
        );
        assert!(check_domains(&[]).is_err());
    }

    #[test]
    fn issuers_are_https_unless_loopback_is_allowed() {
        assert!(check_issuer("https://id.acme.com/", false).is_ok());
        assert!(check_issuer("http://id.acme.com", false).is_err());
        assert!(check_issuer("http://127.0.0.1:9000", false).is_err());
        assert!(check_issuer("http://127.0.0.1:9000", true).is_ok());
        assert!(check_issuer("http://id.acme.com", true).is_err());
        assert!(check_issuer("https://id.acme.com?x=1", false).is_err());
    }
}
