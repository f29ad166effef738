//! Request plumbing shared by the browser pages and the OAuth endpoints: bounded bodies, strict
//! form parsing (UTF-8, each parameter at most once) and the caller's address behind proxies.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

use axum::body::{Body, Bytes};
use axum::http::HeaderMap;

/// Why a request's form cannot be read, in words for an `invalid_request` or an error page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormError(pub String);

impl std::fmt::Display for FormError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why a body could not be read whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyError {
    /// It is longer than the limit (nothing past the limit was read).
    TooLarge(usize),
    /// It did not arrive within the body read timeout (`CLARI_MCP_BODY_READ_TIMEOUT`).
    TimedOut,
    /// The connection broke while it was being read.
    Broken,
}

impl std::fmt::Display for BodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::TooLarge(limit) => write!(f, "the request body is larger than {limit} bytes"),
            Self::TimedOut => f.write_str("the request body did not arrive in time"),
            Self::Broken => f.write_str("the request body could not be read"),
        }
    }
}

/// Reads a body up to `limit` bytes, telling a body too large from one too slow.
pub async fn read_body_checked(body: Body, limit: usize) -> Result<Bytes, BodyError> {
    use http_body_util::BodyExt;
    let limited = http_body_util::Limited::new(body, limit);
    match limited.collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(BodyError::TooLarge(limit)),
        Err(e) if crate::serve::timed_out(e.as_ref()) => Err(BodyError::TimedOut),
        Err(_) => Err(BodyError::Broken),
    }
}

/// Reads a body up to `limit` bytes.
pub async fn read_body(body: Body, limit: usize) -> Result<Bytes, FormError> {
    read_body_checked(body, limit)
        .await
        .map_err(|e| FormError(e.to_string()))
}

/// Form parameters of a request: UTF-8 only, each at most once; empty values count as absent.
pub fn parse_form(bytes: &[u8]) -> Result<HashMap<String, String>, FormError> {
    if std::str::from_utf8(bytes).is_err() {
        return Err(FormError("the request body is not UTF-8".into()));
    }
    parse_pairs(url::form_urlencoded::parse(bytes))
}

pub fn parse_pairs<'a>(
    pairs: impl Iterator<Item = (std::borrow::Cow<'a, str>, std::borrow::Cow<'a, str>)>,
) -> Result<HashMap<String, String>, FormError> {
    let mut out = HashMap::new();
    for (k, v) in pairs {
        if k.contains('\u{FFFD}') || v.contains('\u{FFFD}') {
            return Err(FormError("a parameter is not valid UTF-8".into()));
        }
        if v.is_empty() {
            continue;
        }
        if out.insert(k.clone().into_owned(), v.into_owned()).is_some() {
            return Err(FormError(format!("the parameter {k} is repeated")));
        }
    }
    Ok(out)
}

/// What the audit trail records of a request: its id (`X-Request-Id`, honoured when the client
/// sent one, else minted at the edge) and the client's address.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestMeta {
    pub request_id: Option<String>,
    pub client_ip: Option<IpAddr>,
}

impl RequestMeta {
    pub fn from_parts(parts: &axum::http::request::Parts, trusted_proxies: u8) -> Self {
        Self::new(
            &parts.headers,
            parts
                .extensions
                .get::<axum::extract::ConnectInfo<SocketAddr>>()
                .map(|c| c.0),
            trusted_proxies,
        )
    }

    pub fn new(headers: &HeaderMap, peer: Option<SocketAddr>, trusted_proxies: u8) -> Self {
        Self {
            request_id: headers
                .get("x-request-id")
                .and_then(|v| v.to_str().ok())
                .map(|v| v.chars().take(100).collect()),
            client_ip: peer.map(|p| client_ip(trusted_proxies, headers, p)),
        }
    }

    /// The two fields as the audit trail stores them.
    pub fn parts(&self) -> (Option<String>, Option<String>) {
        (
            self.request_id.clone(),
            self.client_ip.map(|ip| ip.to_string()),
        )
    }
}

/// The caller's IP: the socket peer, or, behind `CLARI_MCP_TRUSTED_PROXIES` proxies, the address
/// the outermost trusted proxy saw.
pub fn client_ip(trusted_proxies: u8, headers: &HeaderMap, peer: SocketAddr) -> IpAddr {
    if trusted_proxies == 0 {
        return peer.ip();
    }
    let entries: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .collect();
    forwarded_client(&entries, trusted_proxies).unwrap_or(peer.ip())
}

/// The client behind `hops` trusted proxies: each appends the address it saw, so the client is the
/// `hops`-th entry from the right; anything further left is the client's own and proves nothing.
/// `None` (use the peer) with no trusted proxies, too few entries, or an unreadable entry.
pub fn forwarded_client(entries: &[&str], hops: u8) -> Option<IpAddr> {
    let hops = usize::from(hops);
    if hops == 0 || entries.len() < hops {
        return None;
    }
    let entry = entries[entries.len() - hops].trim();
    // Some proxies write `[v6]:port` or `v4:port`.
    entry
        .parse()
        .ok()
        .or_else(|| entry.parse::<SocketAddr>().ok().map(|a| a.ip()))
}

/// The throttle bucket of an address: IPv4 as is, IPv6 by its /64 (one customer's allocation, so
/// a client cannot walk through its own prefix for fresh buckets).
pub fn ip_bucket(ip: IpAddr) -> String {
    crate::net::address_bucket(ip)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_and_empty_parameters() {
        assert!(parse_form(b"code=a&code=b").is_err());
        let f = parse_form(b"a=1&b=&c=%20x").unwrap();
        assert_eq!(f.get("a").map(String::as_str), Some("1"));
        assert!(!f.contains_key("b"));
        assert_eq!(f.get("c").map(String::as_str), Some(" x"));
        assert!(parse_form(&[b'a', b'=', 0xff]).is_err());
        assert!(parse_form(b"a=%ff").is_err());
    }

    #[test]
    fn the_forwarded_client_is_taken_from_the_right() {
        let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        // The client can write anything on the left; one proxy appends what it saw.
        let xff = ["6.6.6.6", " 203.0.113.9"];
        assert_eq!(forwarded_client(&xff, 1), ip("203.0.113.9"));
        assert_eq!(forwarded_client(&xff, 2), ip("6.6.6.6"));
        assert_eq!(
            forwarded_client(&xff, 0),
            None,
            "no trusted proxy: the peer"
        );
        assert_eq!(
            forwarded_client(&xff, 3),
            None,
            "fewer entries than proxies"
        );
        assert_eq!(forwarded_client(&["garbage"], 1), None);
        assert_eq!(
            forwarded_client(&["[2001:db8::1]:443"], 1),
            ip("2001:db8::1")
        );
        assert_eq!(
            forwarded_client(&["198.51.100.7:5000"], 1),
            ip("198.51.100.7")
        );
    }

    #[test]
    fn ipv6_addresses_share_a_bucket_per_64() {
        let b = |s: &str| ip_bucket(s.parse().unwrap());
        assert_eq!(b("2001:db8:1:2::1"), b("2001:db8:1:2:ffff::9"));
        assert_ne!(b("2001:db8:1:2::1"), b("2001:db8:1:3::1"));
        assert_eq!(b("::ffff:192.0.2.1"), "192.0.2.1");
        assert_eq!(b("192.0.2.1"), "192.0.2.1");
    }
}

/// The span of an HTTP request, carried in the request's extensions so a handler that runs in a
/// task of its own (the MCP handler, which rmcp spawns) can make its spans children of it.
#[derive(Clone)]
pub struct RequestSpan(pub tracing::Span);
