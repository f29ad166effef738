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

/// Whether a JWK's key type can verify `alg` (a key is never used with another family's
/// algorithm).
fn key_fits(jwk: &Jwk, alg: Algorithm) -> bool {
    use jsonwebtoken::jwk::{AlgorithmParameters as P, EllipticCurve as C};
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
        .map(|(i, k)| public_jwk(k).map_err(|e| format!("key {}: {e}", i + 1)))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(JwkSet { keys })
}

/// The row key of a one-time JWT id: which kind of JWT, who issued it, and its `jti`.
pub fn jti_digest(kind: &str, issuer: &str, jti: &str) -> String {
    sha256_hex(&format!("{kind}\0{issuer}\0{jti}"))
}

/// Whether `aud` names `expected`: a string equal to it, or an array holding it.
pub fn audience_includes(claims: &serde_json::Map<String, Value>, expected: &[&str]) -> bool {
    match claims.get("aud") {
        Some(Value::String(s)) => expected.contains(&s.as_str()),
        Some(Value::Array(items)) => items
            .iter()
            .any(|i| i.as_str().is_some_and(|s| expected.contains(&s))),
        _ => false,
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

/// Public key sets of identity providers and machine clients, fetched through the guarded
/// client (public addresses only, no redirects, 5 s, 64 KiB) and cached: bounded in count and
/// time, refetched early at most every 10 s when a JWT names a `kid` the cached set lacks.
pub struct KeySets {
    http: reqwest::Client,
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
            sets: Mutex::new(HashMap::new()),
            issuers: Mutex::new(HashMap::new()),
        }
    }

    async fn get_json(&self, url: &str) -> Result<Value, String> {
        let parsed = url::Url::parse(url).map_err(|_| format!("{url} is not a URL"))?;
        if !matches!(parsed.scheme(), "https" | "http") {
            return Err(format!("{url} is not an http(s) URL"));
        }
        let r = self
            .http
            .get(url)
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| format!("{url} could not be fetched: {e}"))?;
        if !r.status().is_success() {
            return Err(format!("{url} answered {}", r.status()));
        }
        if r.content_length()
            .is_some_and(|n| n as usize > MAX_DOCUMENT_BYTES)
        {
            return Err(format!("{url} is larger than {MAX_DOCUMENT_BYTES} bytes"));
        }
        let bytes = r
            .bytes()
            .await
            .map_err(|e| format!("{url} could not be read: {e}"))?;
        if bytes.len() > MAX_DOCUMENT_BYTES {
            return Err(format!("{url} is larger than {MAX_DOCUMENT_BYTES} bytes"));
        }
        serde_json::from_slice(&bytes).map_err(|_| format!("{url} is not JSON"))
    }

    /// The key set at `url`: cached, or fetched when the cache is older than [`JWKS_TTL`], or
    /// when `kid` is not in it and the last fetch is older than 10 s.
    pub async fn at(&self, url: &str, kid: Option<&str>, now: i64) -> Result<JwkSet, String> {
        let cached = {
            let sets = self.sets.lock().expect("key sets lock");
            sets.get(url).map(|f| (f.at, f.set.clone()))
        };
        if let Some((at, set)) = &cached {
            let fresh = now - at < JWKS_TTL;
            let knows = kid.is_none_or(|k| set.find(k).is_some());
            if fresh && (knows || now - at < REFETCH_AT_MOST_EVERY) {
                return Ok(set.clone());
            }
        }
        let doc = self.get_json(url).await?;
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
                let doc = self.get_json(&url).await?;
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
    fn audiences_are_a_string_or_an_array() {
        let m = |v: Value| v.as_object().unwrap().clone();
        assert!(audience_includes(
            &m(serde_json::json!({"aud": "x"})),
            &["x"]
        ));
        assert!(audience_includes(
            &m(serde_json::json!({"aud": ["y", "x"]})),
            &["x"]
        ));
        assert!(!audience_includes(
            &m(serde_json::json!({"aud": "y"})),
            &["x"]
        ));
        assert!(!audience_includes(&m(serde_json::json!({})), &["x"]));
    }
}
