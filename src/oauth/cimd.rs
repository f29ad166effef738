//! Client ID Metadata Documents: a `client_id` that is an https URL is fetched and validated. The
//! fetch is guarded against SSRF: https only, the host's addresses must all be public (no private,
//! loopback, link-local, metadata, CGNAT or multicast ranges), the connection goes to the checked
//! address (no second DNS answer), no redirects, 5 KiB cap, 5 s timeout. The document is cached
//! per its `Cache-Control: max-age` within [5 min, 24 h].

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use serde_json::Value;

use super::client::{ClientMetadata, validate_metadata};
use super::error::{ErrorCode, OAuthError};

pub const MAX_DOCUMENT_BYTES: usize = 5 * 1024;
const MIN_TTL: i64 = 300;
const MAX_TTL: i64 = 86_400;

/// Whether an address may be fetched from the public internet side.
pub fn is_public_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            !(v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || o[0] == 0
                || (o[0] == 100 && (64..128).contains(&o[1]))
                || (o[0] == 192 && o[1] == 0 && o[2] == 0)
                || (o[0] == 198 && (18..20).contains(&o[1]))
                || o[0] >= 240)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public_ip(IpAddr::V4(v4));
            }
            let s = v6.segments();
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00
                || (s[0] & 0xffc0) == 0xfe80
                || (s[0] == 0x2001 && s[1] == 0x0db8)
                || (s[0] == 0x64 && s[1] == 0xff9b))
        }
    }
}

/// Fetches and checks a metadata document; returns it with its cache lifetime in seconds.
pub async fn fetch(client_id: &str, allow_loopback: bool) -> Result<(Value, i64), String> {
    let url = url::Url::parse(client_id).map_err(|_| "client_id is not a URL".to_owned())?;
    let loopback_ok = allow_loopback && url.scheme() == "http";
    if url.scheme() != "https" && !loopback_ok {
        return Err("a metadata document client_id must be an https URL".into());
    }
    if url.path() == "/" || url.path().is_empty() {
        return Err("a metadata document client_id must have a path".into());
    }
    if url.fragment().is_some() || !url.username().is_empty() || url.password().is_some() {
        return Err("a metadata document client_id must have no fragment or credentials".into());
    }
    if client_id.split('/').any(|s| s == "." || s == "..") {
        return Err("a metadata document client_id must have no dot segments".into());
    }
    let host = url
        .host_str()
        .ok_or("no host")?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = url.port_or_known_default().unwrap_or(443);
    let addrs: Vec<SocketAddr> = tokio::time::timeout(
        Duration::from_secs(3),
        tokio::net::lookup_host((host.as_str(), port)),
    )
    .await
    .map_err(|_| "resolving the host timed out".to_owned())?
    .map_err(|e| format!("cannot resolve the host: {e}"))?
    .collect();
    let Some(addr) = addrs.first().copied() else {
        return Err("the host has no address".into());
    };
    for a in &addrs {
        let allowed = is_public_ip(a.ip()) || (loopback_ok && a.ip().is_loopback());
        if !allowed {
            return Err(format!(
                "the host resolves to a non-public address ({})",
                a.ip()
            ));
        }
    }
    crate::init_crypto();
    let http = reqwest::Client::builder()
        .resolve(&host, addr)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .timeout(Duration::from_secs(5))
        .connect_timeout(Duration::from_secs(3))
        .build()
        .map_err(|e| e.to_string())?;
    let mut resp = http
        .get(url.clone())
        .header(reqwest::header::ACCEPT, "application/json")
        .send()
        .await
        .map_err(|e| format!("fetching the document failed: {}", e.without_url()))?;
    if !resp.status().is_success() {
        return Err(format!(
            "the document URL answered HTTP {}",
            resp.status().as_u16()
        ));
    }
    let ttl = cache_ttl(resp.headers());
    let mut body = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| format!("reading the document failed: {}", e.without_url()))?
    {
        body.extend_from_slice(&chunk);
        if body.len() > MAX_DOCUMENT_BYTES {
            return Err(format!(
                "the document is larger than {MAX_DOCUMENT_BYTES} bytes"
            ));
        }
    }
    let doc: Value =
        serde_json::from_slice(&body).map_err(|_| "the document is not JSON".to_owned())?;
    if doc.get("client_id").and_then(Value::as_str) != Some(client_id) {
        return Err("the document's client_id does not equal its URL".into());
    }
    Ok((doc, ttl))
}

fn cache_ttl(headers: &reqwest::header::HeaderMap) -> i64 {
    let cc = headers
        .get(reqwest::header::CACHE_CONTROL)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    if cc.contains("no-store") || cc.contains("no-cache") {
        return MIN_TTL;
    }
    cc.split(',')
        .filter_map(|d| d.trim().strip_prefix("max-age="))
        .filter_map(|v| v.trim().parse::<i64>().ok())
        .next()
        .unwrap_or(3_600)
        .clamp(MIN_TTL, MAX_TTL)
}

/// A document's metadata: `client_name` and `redirect_uris` required, public client only.
pub fn to_metadata(doc: &Value) -> Result<ClientMetadata, OAuthError> {
    let bad = |d: &str| {
        OAuthError::new(
            ErrorCode::InvalidClient,
            format!("the client metadata document is invalid: {d}"),
        )
    };
    if doc
        .get("client_name")
        .and_then(Value::as_str)
        .is_none_or(|s| s.trim().is_empty())
    {
        return Err(bad("client_name is required"));
    }
    if doc.get("redirect_uris").is_none() {
        return Err(bad("redirect_uris is required"));
    }
    for secret in ["client_secret", "client_secret_expires_at"] {
        if doc.get(secret).is_some() {
            return Err(bad("a metadata document must not contain a client secret"));
        }
    }
    if doc
        .get("jwks")
        .and_then(|j| j.get("keys"))
        .and_then(Value::as_array)
        .is_some_and(|keys| keys.iter().any(|k| k.get("d").is_some()))
    {
        return Err(bad("a metadata document must not contain private keys"));
    }
    match doc
        .get("token_endpoint_auth_method")
        .and_then(Value::as_str)
    {
        None | Some("none") => {}
        Some(_) => {
            return Err(bad(
                "only token_endpoint_auth_method none is supported for metadata documents",
            ));
        }
    }
    let mut v = doc.clone();
    v["token_endpoint_auth_method"] = Value::from("none");
    if v.get("grant_types").is_none() {
        v["grant_types"] = serde_json::json!(["authorization_code", "refresh_token"]);
    }
    validate_metadata(&v).map_err(|e| bad(&e.description))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_and_special_addresses_are_refused() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:10.0.0.1",
            "224.0.0.1",
        ] {
            assert!(!is_public_ip(ip.parse().unwrap()), "{ip}");
        }
        for ip in [
            "93.184.216.34",
            "2606:2800:220:1:248:1893:25c8:1946",
            "1.1.1.1",
        ] {
            assert!(is_public_ip(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn documents_must_be_public_clients_with_name_and_redirects() {
        let ok = serde_json::json!({"client_id": "https://app.example/c.json", "client_name": "App", "redirect_uris": ["http://127.0.0.1/cb"]});
        let m = to_metadata(&ok).unwrap();
        assert_eq!(m.token_endpoint_auth_method, "none");
        assert!(m.grant_types.contains(&"refresh_token".to_owned()));
        let mut with_secret = ok.clone();
        with_secret["client_secret"] = "x".into();
        assert!(to_metadata(&with_secret).is_err());
        let mut no_name = ok.clone();
        no_name.as_object_mut().unwrap().remove("client_name");
        assert!(to_metadata(&no_name).is_err());
    }

    #[tokio::test]
    async fn loopback_documents_are_refused_without_the_danger_allowance() {
        let e = fetch("http://127.0.0.1:9/client.json", false)
            .await
            .unwrap_err();
        assert!(e.contains("https"), "{e}");
        let e = fetch("https://127.0.0.1:9/client.json", false)
            .await
            .unwrap_err();
        assert!(e.contains("non-public"), "{e}");
    }
}
