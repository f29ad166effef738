//! JWTs that others sign: identity assertions from an organisation's identity provider (ID-JAG),
//! machine clients' `private_key_jwt` assertions and DPoP proofs. What they share lives here:
//! reading a compact JWS before its key is known, an explicit allow-list of asymmetric
//! algorithms (never `none`, never a shared secret), verification against a JWK, RFC 7638
//! thumbprints, one-time `jti` bookkeeping, and the bounded cache of public key sets fetched
//! from elsewhere.

use std::collections::HashMap;
use std::sync::Mutex;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{Jwk, JwkSet, ThumbprintHash};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;

use crate::crypto::sha256_hex;

/// The signature algorithms accepted from others: registered asymmetric ones only (RFC 9449
/// §4.3 (5); MCP enterprise-managed authorization §7.4.1 "restrict accepted signature algorithms
/// to an explicit allow-list and MUST NOT accept `alg: none`").
pub const ALGORITHMS: [Algorithm; 9] = [
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::EdDSA,
];

/// The names of [`ALGORITHMS`], as metadata lists them.
pub fn algorithm_names() -> Vec<&'static str> {
    ALGORITHMS.iter().map(|a| alg_name(*a)).collect()
}

fn alg_name(a: Algorithm) -> &'static str {
    match a {
        Algorithm::ES256 => "ES256",
        Algorithm::ES384 => "ES384",
        Algorithm::RS256 => "RS256",
        Algorithm::RS384 => "RS384",
        Algorithm::RS512 => "RS512",
        Algorithm::PS256 => "PS256",
        Algorithm::PS384 => "PS384",
        Algorithm::PS512 => "PS512",
        Algorithm::EdDSA => "EdDSA",
        _ => "",
    }
}

/// The largest JWT read from anyone (an assertion or a proof is a few hundred bytes).
pub const MAX_JWT_BYTES: usize = 8 * 1024;

/// How far a JWT's `iat` may lie in the future (clocks differ).
pub const CLOCK_SKEW: i64 = 60;

/// A compact JWS read but not yet verified: its header and claims as JSON.
#[derive(Debug, Clone)]
pub struct Unverified<'a> {
    pub token: &'a str,
    pub alg: Algorithm,
    pub header: serde_json::Map<String, Value>,
    pub claims: serde_json::Map<String, Value>,
}

impl Unverified<'_> {
    pub fn typ(&self) -> Option<&str> {
        self.header.get("typ").and_then(Value::as_str)
    }

    pub fn kid(&self) -> Option<&str> {
        self.header.get("kid").and_then(Value::as_str)
    }

    pub fn claim_str(&self, name: &str) -> Option<&str> {
        self.claims.get(name).and_then(Value::as_str)
    }

    pub fn claim_i64(&self, name: &str) -> Option<i64> {
        self.claims.get(name).and_then(Value::as_i64)
    }
}

/// Reads a compact JWS: three base64url parts, a JSON object header with an allowed `alg`, a JSON
/// object payload. Nothing is trusted until [`verify`] says so.
pub fn read(token: &str) -> Result<Unverified<'_>, &'static str> {
    if token.len() > MAX_JWT_BYTES {
        return Err("the JWT is too large");
    }
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("the value is not a compact JWS (three parts)");
    };
    let object = |part: &str| -> Option<serde_json::Map<String, Value>> {
        let bytes = URL_SAFE_NO_PAD.decode(part).ok()?;
        match serde_json::from_slice(&bytes).ok()? {
            Value::Object(m) => Some(m),
            _ => None,
        }
    };
    let header = object(h).ok_or("the JWT header is not a base64url JSON object")?;
    let claims = object(p).ok_or("the JWT payload is not a base64url JSON object")?;
    let alg = header
        .get("alg")
        .and_then(Value::as_str)
        .and_then(|a| ALGORITHMS.iter().find(|x| alg_name(**x) == a).copied())
        .ok_or("the JWT's alg is not an accepted asymmetric signature algorithm")?;
    if header.contains_key("crit") {
        return Err("the JWT has critical header parameters this server does not understand");
    }
    Ok(Unverified {
        token,
        alg,
        header,
        claims,
    })
}

/// Whether a JWK may verify `alg`: its key type and curve fit (a key is never used with another
/// family's algorithm), its own `alg`, when it names one, is that algorithm, and its `use`,
/// when given, is `sig` (RFC 7517 §4.2, §4.4).
fn key_fits(jwk: &Jwk, alg: Algorithm) -> bool {
    use jsonwebtoken::jwk::{AlgorithmParameters as P, EllipticCurve as C, PublicKeyUse};
    if jwk
        .common
        .key_algorithm
        .is_some_and(|a| a.to_string() != alg_name(alg))
        || jwk
            .common
            .public_key_use
            .as_ref()
            .is_some_and(|u| *u != PublicKeyUse::Signature)
    {
        return false;
    }
    match (&jwk.algorithm, alg) {
        (P::EllipticCurve(p), Algorithm::ES256) => p.curve == C::P256,
        (P::EllipticCurve(p), Algorithm::ES384) => p.curve == C::P384,
        (P::RSA(_), a) => matches!(
            a,
            Algorithm::RS256
                | Algorithm::RS384
                | Algorithm::RS512
                | Algorithm::PS256
                | Algorithm::PS384
                | Algorithm::PS512
        ),
        (P::OctetKeyPair(p), Algorithm::EdDSA) => p.curve == C::Ed25519,
        _ => false,
    }
}

/// Verifies the signature of `jwt` with `jwk`. Claims are checked by the caller.
pub fn verify(jwt: &Unverified<'_>, jwk: &Jwk) -> Result<(), &'static str> {
    if !key_fits(jwk, jwt.alg) {
        return Err("the key cannot verify this JWT's alg");
    }
    let key = DecodingKey::from_jwk(jwk).map_err(|_| "the public key is not usable")?;
    let mut v = Validation::new(jwt.alg);
    v.validate_exp = false;
    v.validate_nbf = false;
    v.validate_aud = false;
    v.required_spec_claims.clear();
    jsonwebtoken::decode::<Value>(jwt.token, &key, &v)
        .map(|_| ())
        .map_err(|_| "the JWT's signature does not verify")
}

/// Verifies with the key of `set` the JWT's `kid` names, or with each key that fits when it
/// names none.
pub fn verify_with_set(jwt: &Unverified<'_>, set: &JwkSet) -> Result<(), &'static str> {
    let candidates: Vec<&Jwk> = match jwt.kid() {
        Some(kid) => set
            .keys
            .iter()
            .filter(|k| k.common.key_id.as_deref() == Some(kid))
            .collect(),
        None => set.keys.iter().filter(|k| key_fits(k, jwt.alg)).collect(),
    };
    if candidates.is_empty() {
        return Err("no published key matches the JWT's kid and alg");
    }
    if candidates.iter().any(|k| verify(jwt, k).is_ok()) {
        Ok(())
    } else {
        Err("the JWT's signature does not verify")
    }
}

/// The RFC 7638 JWK SHA-256 thumbprint (base64url), as `cnf.jkt` carries it (RFC 9449 §6.1).
pub fn thumbprint(jwk: &Jwk) -> Option<String> {
    jwk.thumbprint(ThumbprintHash::SHA256).ok()
}

/// Members only a private JWK has (RFC 7518 §6.2.2, §6.3.2, RFC 8037 §2).
const PRIVATE_MEMBERS: [&str; 7] = ["d", "p", "q", "dp", "dq", "qi", "k"];

/// A public JWK from JSON: refused when it carries a private or symmetric part.
pub fn public_jwk(value: &Value) -> Result<Jwk, &'static str> {
    let obj = value.as_object().ok_or("the jwk is not a JSON object")?;
    if PRIVATE_MEMBERS.iter().any(|m| obj.contains_key(*m)) {
        return Err("the jwk contains a private or symmetric key");
    }
    serde_json::from_value(value.clone())
        .map_err(|_| "the jwk is not a public key this server reads")
}

/// A public key set from JSON text: every key public, at most 20 of them.
pub fn public_jwks(text: &str) -> Result<JwkSet, String> {
    let v: Value = serde_json::from_str(text).map_err(|_| "the JWKS is not JSON".to_owned())?;
    let keys = v
        .get("keys")
        .and_then(Value::as_array)
        .ok_or("the JWKS has no keys array")?;
    if keys.is_empty() || keys.len() > 20 {
        return Err("the JWKS must hold 1 to 20 keys".into());
    }
    let keys = keys
        .iter()
        .enumerate()
        .map(|(i, k)| {
            let key = public_jwk(k).map_err(|e| format!("key {}: {e}", i + 1))?;
            if !ALGORITHMS.iter().any(|a| key_fits(&key, *a)) {
                return Err(format!(
                    "key {}: not a signing key this server verifies (EC P-256 or P-384, RSA, Ed25519)",
                    i + 1
                ));
            }
            Ok(key)
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(JwkSet { keys })
}

/// The row key of a one-time JWT id: which kind of JWT, who issued it, and its `jti`.
pub fn jti_digest(kind: &str, issuer: &str, jti: &str) -> String {
    sha256_hex(&format!("{kind}\0{issuer}\0{jti}"))
}

/// The one audience of a JWT: `aud` as a string, or an array of exactly one string (RFC 7519
/// §4.1.3 allows both). `None` for anything else, several audiences included.
pub fn single_audience(claims: &serde_json::Map<String, Value>) -> Option<&str> {
    match claims.get("aud")? {
        Value::String(a) => Some(a),
        Value::Array(items) if items.len() == 1 => items[0].as_str(),
        _ => None,
    }
}

/// A key set fetched from someone else's URL, kept for [`JWKS_TTL`].
struct Fetched {
    at: i64,
    set: JwkSet,
}

/// How long a fetched key set is used before it is fetched again.
pub const JWKS_TTL: i64 = 300;
/// A key set is fetched at most this often, however many unknown `kid`s arrive.
const REFETCH_AT_MOST_EVERY: i64 = 10;
/// At most this many key sets are remembered (one per identity provider or machine client).
const MAX_SETS: usize = 1_000;
/// The largest key set or discovery document read.
const MAX_DOCUMENT_BYTES: usize = 64 * 1024;

/// At most this many key-set or discovery fetches run at once, whoever asks.
const MAX_IN_FLIGHT: usize = 8;
/// A failed fetch is not tried again for this long (a provider that is down is not asked on
/// every request).
const FAILURE_TTL: i64 = 30;

/// Public key sets of identity providers and machine clients, fetched through the guarded
/// client (public addresses only, no redirects, 5 s, 64 KiB) and cached: bounded in count and
/// time, refetched early at most every 10 s when a JWT names a `kid` the cached set lacks.
pub struct KeySets {
    http: reqwest::Client,
    allow_loopback: bool,
    in_flight: tokio::sync::Semaphore,
    /// URL → until when it is not fetched again after a failure.
    failures: Mutex<HashMap<String, i64>>,
    sets: Mutex<HashMap<String, Fetched>>,
    /// Issuer → (when discovered, its `jwks_uri`).
    issuers: Mutex<HashMap<String, (i64, String)>>,
}

impl std::fmt::Debug for KeySets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeySets").finish_non_exhaustive()
    }
}

impl KeySets {
    pub fn new(allow_loopback: bool) -> Self {
        Self {
            http: crate::net::guarded_client(allow_loopback),
            allow_loopback,
            in_flight: tokio::sync::Semaphore::new(MAX_IN_FLIGHT),
            failures: Mutex::new(HashMap::new()),
            sets: Mutex::new(HashMap::new()),
            issuers: Mutex::new(HashMap::new()),
        }
    }

    /// One JSON document from someone else's server: https (http only on loopback, and only
    /// where the operator allowed it for tests), a public address (a literal one is checked here;
    /// names are checked by the guarded resolver), at most 64 KiB read as it streams in, at most
    /// [`MAX_IN_FLIGHT`] fetches at once, and a failure remembered for [`FAILURE_TTL`].
    async fn get_json(&self, url: &str, now: i64) -> Result<Value, String> {
        let parsed = url::Url::parse(url).map_err(|_| "not a URL".to_owned())?;
        let loopback = parsed.host_str().is_some_and(crate::net::is_loopback_host);
        match parsed.scheme() {
            "https" => {}
            "http" if self.allow_loopback && loopback => {}
            _ => return Err("the URL must be https".to_owned()),
        }
        if let Some(url::Host::Ipv4(_) | url::Host::Ipv6(_)) = parsed.host() {
            let ip: std::net::IpAddr = parsed
                .host_str()
                .unwrap_or_default()
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse()
                .map_err(|_| "the host is not an address".to_owned())?;
            if !(crate::net::is_public_ip(ip) || (self.allow_loopback && ip.is_loopback())) {
                return Err("the address is not public".to_owned());
            }
        }
        if let Some(until) = self.failures.lock().expect("failures lock").get(url)
            && *until > now
        {
            return Err("it failed moments ago; not fetched again yet".to_owned());
        }
        let _permit = self
            .in_flight
            .acquire()
            .await
            .map_err(|_| "shutting down".to_owned())?;
        let fetched = self.fetch(&parsed).await;
        let mut failures = self.failures.lock().expect("failures lock");
        failures.retain(|_, until| *until > now);
        match fetched {
            Ok(v) => {
                failures.remove(url);
                Ok(v)
            }
            Err(e) => {
                if failures.len() < MAX_SETS {
                    failures.insert(url.to_owned(), now + FAILURE_TTL);
                }
                Err(e)
            }
        }
    }

    async fn fetch(&self, url: &url::Url) -> Result<Value, String> {
        let mut r = self
            .http
            .get(url.clone())
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|_| "it could not be fetched".to_owned())?;
        if !r.status().is_success() {
            return Err("it did not answer with a document".to_owned());
        }
        let mut body = Vec::new();
        while let Some(chunk) = r
            .chunk()
            .await
            .map_err(|_| "it could not be read".to_owned())?
        {
            if body.len() + chunk.len() > MAX_DOCUMENT_BYTES {
                return Err(format!("it is larger than {MAX_DOCUMENT_BYTES} bytes"));
            }
            body.extend_from_slice(&chunk);
        }
        serde_json::from_slice(&body).map_err(|_| "it is not JSON".to_owned())
    }

    fn cached(&self, url: &str) -> Option<(i64, JwkSet)> {
        let sets = self.sets.lock().expect("key sets lock");
        sets.get(url).map(|f| (f.at, f.set.clone()))
    }

    /// The key set at `url`: cached, or fetched when the cache is older than [`JWKS_TTL`], or
    /// when `kid` is not in it and the last fetch is older than 10 s.
    pub async fn at(&self, url: &str, kid: Option<&str>, now: i64) -> Result<JwkSet, String> {
        if let Some((at, set)) = &self.cached(url) {
            let fresh = now - at < JWKS_TTL;
            let knows = kid.is_none_or(|k| set.find(k).is_some());
            if fresh && (knows || now - at < REFETCH_AT_MOST_EVERY) {
                return Ok(set.clone());
            }
        }
        // Another caller may have fetched it while this one waited for a permit.
        if let Some((at, set)) = self.cached(url)
            && now - at < REFETCH_AT_MOST_EVERY
            && kid.is_none_or(|k| set.find(k).is_some())
        {
            return Ok(set);
        }
        let doc = self.get_json(url, now).await?;
        let set = public_jwks(&doc.to_string())?;
        let mut sets = self.sets.lock().expect("key sets lock");
        if sets.len() >= MAX_SETS {
            sets.retain(|_, f| now - f.at < JWKS_TTL);
            if sets.len() >= MAX_SETS {
                sets.clear();
            }
        }
        sets.insert(
            url.to_owned(),
            Fetched {
                at: now,
                set: set.clone(),
            },
        );
        Ok(set)
    }

    /// The key set of an OpenID provider: its discovery document (OpenID Connect Discovery
    /// 1.0 §4), whose `issuer` must be exactly `issuer`, names `jwks_uri`.
    pub async fn of_issuer(
        &self,
        issuer: &str,
        kid: Option<&str>,
        now: i64,
    ) -> Result<JwkSet, String> {
        let known = {
            let issuers = self.issuers.lock().expect("issuers lock");
            issuers
                .get(issuer)
                .filter(|(at, _)| now - at < JWKS_TTL)
                .map(|(_, uri)| uri.clone())
        };
        let jwks_uri = match known {
            Some(uri) => uri,
            None => {
                let url = format!(
                    "{}/.well-known/openid-configuration",
                    issuer.trim_end_matches('/')
                );
                let doc = self.get_json(&url, now).await?;
                if doc.get("issuer").and_then(Value::as_str) != Some(issuer) {
                    return Err(format!(
                        "the discovery document of {issuer} names another issuer"
                    ));
                }
                let uri = doc
                    .get("jwks_uri")
                    .and_then(Value::as_str)
                    .ok_or_else(|| format!("the discovery document of {issuer} has no jwks_uri"))?
                    .to_owned();
                let mut issuers = self.issuers.lock().expect("issuers lock");
                if issuers.len() >= MAX_SETS {
                    issuers.retain(|_, (at, _)| now - *at < JWKS_TTL);
                    if issuers.len() >= MAX_SETS {
                        issuers.clear();
                    }
                }
                issuers.insert(issuer.to_owned(), (now, uri.clone()));
                uri
            }
        };
        self.at(&jwks_uri, kid, now).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reading_refuses_what_is_not_an_asymmetric_jws() {
        let enc = |v: &str| URL_SAFE_NO_PAD.encode(v);
        let jwt = |h: &str| format!("{}.{}.c2ln", enc(h), enc(r#"{"a":1}"#));
        assert!(read(&jwt(r#"{"alg":"ES256"}"#)).is_ok());
        assert!(read(&jwt(r#"{"alg":"none"}"#)).is_err());
        assert!(read(&jwt(r#"{"alg":"HS256"}"#)).is_err());
        assert!(read(&jwt(r#"{"alg":"ES256","crit":["x"]}"#)).is_err());
        assert!(read("a.b").is_err());
        assert!(read(&"a".repeat(MAX_JWT_BYTES + 1)).is_err());
    }

    #[test]
    fn private_keys_are_refused_and_thumbprints_follow_rfc_7638() {
        // RFC 7638 §3.1's example key and thumbprint.
        let n = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";
        let key = serde_json::json!({"kty": "RSA", "n": n, "e": "AQAB", "alg": "RS256", "kid": "2011-04-29"});
        let jwk = public_jwk(&key).unwrap();
        assert_eq!(
            thumbprint(&jwk).unwrap(),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
        let mut private = key.clone();
        private["d"] = "secret".into();
        assert!(public_jwk(&private).is_err());
    }

    #[test]
    fn an_audience_is_one_string_or_a_one_element_array() {
        let m = |v: Value| v.as_object().unwrap().clone();
        assert_eq!(
            single_audience(&m(serde_json::json!({"aud": "x"}))),
            Some("x")
        );
        assert_eq!(
            single_audience(&m(serde_json::json!({"aud": ["x"]}))),
            Some("x")
        );
        assert_eq!(
            single_audience(&m(serde_json::json!({"aud": ["x", "y"]}))),
            None
        );
        assert_eq!(single_audience(&m(serde_json::json!({"aud": 3}))), None);
        assert_eq!(single_audience(&m(serde_json::json!({}))), None);
    }
}
