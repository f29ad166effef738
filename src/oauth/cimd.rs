//! Client ID Metadata Documents, fetched: a client whose `client_id` is an https URL is described
//! by the JSON document at that URL. The fetch goes through the guarded client of [`crate::net`]
//! (public addresses only, checked in its resolver; no redirects; 5 s), takes at most
//! [`MAX_DOCUMENT_BYTES`], and requires the document's `client_id` to equal its URL; the
//! document's cache lifetime comes from its `Cache-Control: max-age` within [5 min, 24 h].
//! Anyone can name any URL, so fetching is bounded: a failed URL is not fetched again for
//! [`FAILURE_TTL`] (negative cache), one host is fetched at most [`PER_HOST_PER_MINUTE`] times a
//! minute, one caller's address causes at most [`PER_CALLER_PER_MINUTE`], and the whole server
//! at most [`GLOBAL_PER_MINUTE`] times a minute, with at most [`MAX_IN_FLIGHT`] fetches at once.
//!
//! It sits below the application state, which holds the one [`CimdFetcher`], so it uses nothing
//! of the authorization server above it.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

use serde_json::Value;

use crate::net::{address_bucket, guarded_client, is_public_ip};

pub const MAX_DOCUMENT_BYTES: usize = 5 * 1024;
const MIN_TTL: i64 = 300;
const MAX_TTL: i64 = 86_400;

/// A URL that failed is not fetched again for this long (seconds).
pub const FAILURE_TTL: i64 = 300;
pub const PER_HOST_PER_MINUTE: u32 = 10;
pub const PER_CALLER_PER_MINUTE: u32 = 20;
pub const GLOBAL_PER_MINUTE: u32 = 120;
pub const MAX_IN_FLIGHT: usize = 8;
/// Entries the negative cache keeps at most.
const MAX_REMEMBERED_FAILURES: usize = 10_000;

/// The one guarded client for metadata documents, with its bounds.
pub struct CimdFetcher {
    http: reqwest::Client,
    allow_loopback: bool,
    /// URL → until when it is not fetched again.
    failures: Mutex<HashMap<String, i64>>,
    /// (minute, fetches) per host, and for the whole server under the key "".
    windows: Mutex<HashMap<String, (i64, u32)>>,
    in_flight: tokio::sync::Semaphore,
}

impl CimdFetcher {
    pub fn new(allow_loopback: bool) -> Self {
        let http = guarded_client(allow_loopback);
        Self {
            http,
            allow_loopback,
            failures: Mutex::new(HashMap::new()),
            windows: Mutex::new(HashMap::new()),
            in_flight: tokio::sync::Semaphore::new(MAX_IN_FLIGHT),
        }
    }

    /// Counts one fetch of `host` asked by `caller` in this minute; `false` when the host, the
    /// caller or the server is over its limit.
    fn admit(&self, host: &str, caller: Option<IpAddr>, now: i64) -> bool {
        let minute = now.div_euclid(60);
        let mut w = self.windows.lock().expect("cimd windows lock");
        w.retain(|_, (m, _)| *m == minute);
        let count = |w: &HashMap<String, (i64, u32)>, k: &str| w.get(k).map_or(0, |(_, c)| *c);
        let host_key = format!("host:{host}");
        let caller_key = caller.map(|ip| format!("caller:{}", address_bucket(ip)));
        if count(&w, &host_key) >= PER_HOST_PER_MINUTE
            || count(&w, "") >= GLOBAL_PER_MINUTE
            || caller_key
                .as_deref()
                .is_some_and(|k| count(&w, k) >= PER_CALLER_PER_MINUTE)
        {
            return false;
        }
        let keys = [Some(host_key), Some(String::new()), caller_key];
        for k in keys.into_iter().flatten() {
            let n = count(&w, &k) + 1;
            w.insert(k, (minute, n));
        }
        true
    }

    fn remember_failure(&self, client_id: &str, now: i64) {
        let mut f = self.failures.lock().expect("cimd failures lock");
        if f.len() >= MAX_REMEMBERED_FAILURES {
            f.retain(|_, until| *until > now);
        }
        if f.len() < MAX_REMEMBERED_FAILURES {
            f.insert(client_id.to_owned(), now + FAILURE_TTL);
        }
    }

    /// Fetches and checks a metadata document within the bounds; returns it with its cache
    /// lifetime in seconds.
    pub async fn fetch(
        &self,
        client_id: &str,
        now: i64,
        caller: Option<IpAddr>,
    ) -> Result<(Value, i64), FetchError> {
        if self
            .failures
            .lock()
            .expect("cimd failures lock")
            .get(client_id)
            .is_some_and(|until| *until > now)
        {
            return Err(FetchError::FailedRecently);
        }
        let host = url::Url::parse(client_id)
            .ok()
            .and_then(|u| u.host_str().map(str::to_ascii_lowercase))
            .unwrap_or_default();
        if !self.admit(&host, caller, now) {
            return Err(FetchError::TooMany);
        }
        let _slot = self
            .in_flight
            .try_acquire()
            .map_err(|_| FetchError::TooManyInProgress)?;
        let result = fetch_with(&self.http, client_id, self.allow_loopback).await;
        if result.is_err() {
            self.remember_failure(client_id, now);
        }
        result
    }
}

/// Why a Client ID Metadata Document was not fetched or not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    #[error("this metadata document failed recently; not fetched again yet")]
    FailedRecently,
    #[error("too many metadata-document fetches right now")]
    TooMany,
    #[error("too many metadata-document fetches in progress")]
    TooManyInProgress,
    #[error("{0}")]
    BadUrl(&'static str),
    #[error("the host resolves to a non-public address ({0})")]
    NonPublic(IpAddr),
    #[error("fetching the document failed: {0}")]
    Transport(String),
    #[error("the document URL answered HTTP {0}")]
    Status(u16),
    #[error("reading the document failed: {0}")]
    Read(String),
    #[error("the document is larger than {MAX_DOCUMENT_BYTES} bytes")]
    TooLarge,
    #[error("the document is not JSON")]
    NotJson,
    #[error("the document's client_id does not equal its URL")]
    IdMismatch,
}

/// Checks a document URL and fetches it with the guarded client.
async fn fetch_with(
    http: &reqwest::Client,
    client_id: &str,
    allow_loopback: bool,
) -> Result<(Value, i64), FetchError> {
    use FetchError as E;
    let url = url::Url::parse(client_id).map_err(|_| E::BadUrl("client_id is not a URL"))?;
    let loopback_ok = allow_loopback && url.scheme() == "http";
    if url.scheme() != "https" && !loopback_ok {
        return Err(E::BadUrl(
            "a metadata document client_id must be an https URL",
        ));
    }
    if url.path() == "/" || url.path().is_empty() {
        return Err(E::BadUrl("a metadata document client_id must have a path"));
    }
    if url.fragment().is_some() || !url.username().is_empty() || url.password().is_some() {
        return Err(E::BadUrl(
            "a metadata document client_id must have no fragment or credentials",
        ));
    }
    if client_id.split('/').any(|s| s == "." || s == "..") {
        return Err(E::BadUrl(
            "a metadata document client_id must have no dot segments",
        ));
    }
    // A literal address is never resolved, so it is checked here.
    if let Some(url::Host::Ipv4(_) | url::Host::Ipv6(_)) = url.host() {
        let ip: IpAddr = url
            .host_str()
            .unwrap_or_default()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse()
            .map_err(|_| E::BadUrl("the host is not an address"))?;
        if !(is_public_ip(ip) || (loopback_ok && ip.is_loopback())) {
            return Err(E::NonPublic(ip));
        }
    }
    let mut resp = http
        .get(url.clone())
        .header(reqwest::header::ACCEPT, "application/json")
        .send()
        .await
        .map_err(|e| {
            // The resolver's refusal is the useful part of the message.
            let mut text = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                text = s.to_string();
                source = s.source();
            }
            E::Transport(text)
        })?;
    if !resp.status().is_success() {
        return Err(E::Status(resp.status().as_u16()));
    }
    let ttl = cache_ttl(resp.headers());
    let mut body = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| E::Read(e.without_url().to_string()))?
    {
        body.extend_from_slice(&chunk);
        if body.len() > MAX_DOCUMENT_BYTES {
            return Err(E::TooLarge);
        }
    }
    let doc: Value = serde_json::from_slice(&body).map_err(|_| E::NotJson)?;
    if doc.get("client_id").and_then(Value::as_str) != Some(client_id) {
        return Err(E::IdMismatch);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn loopback_documents_are_refused_without_the_danger_allowance() {
        let f = CimdFetcher::new(false);
        let e = f
            .fetch("http://127.0.0.1:9/client.json", 0, None)
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("https"), "{e}");
        let e = f
            .fetch("https://127.0.0.1:9/client.json", 0, None)
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("non-public"), "{e}");
        let e = f
            .fetch("https://localhost:9/client.json", 0, None)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("non-public"),
            "a name that resolves to loopback: {e}"
        );
        let e = f
            .fetch("https://[::1]:9/client.json", 0, None)
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("non-public"), "{e}");
    }

    #[tokio::test]
    async fn failures_are_remembered_and_hosts_are_rate_limited() {
        let f = CimdFetcher::new(false);
        let url = "https://127.0.0.1:9/client.json";
        assert!(
            f.fetch(url, 0, None)
                .await
                .unwrap_err()
                .to_string()
                .contains("non-public")
        );
        let again = f.fetch(url, 1, None).await.unwrap_err();
        assert_eq!(again, FetchError::FailedRecently);
        assert!(
            f.fetch(url, FAILURE_TTL + 1, None)
                .await
                .unwrap_err()
                .to_string()
                .contains("non-public")
        );
        // One host, many paths: bounded per minute.
        let mut refused = 0;
        for i in 0..(PER_HOST_PER_MINUTE + 5) {
            let e = f
                .fetch(&format!("https://10.0.0.1/c{i}.json"), 120, None)
                .await
                .unwrap_err();
            if e == FetchError::TooMany {
                refused += 1;
            }
        }
        assert_eq!(refused, 5);
        assert!(
            f.admit("10.0.0.1", None, 180),
            "a new minute, a new allowance"
        );
        // One caller, many hosts: bounded per minute too.
        let caller: IpAddr = "203.0.113.9".parse().unwrap();
        let admitted = (0..PER_CALLER_PER_MINUTE + 5)
            .filter(|i| f.admit(&format!("h{i}.example"), Some(caller), 240))
            .count();
        assert_eq!(admitted as u32, PER_CALLER_PER_MINUTE);
        assert!(f.admit("other.example", Some("203.0.113.10".parse().unwrap()), 240));
    }
}
