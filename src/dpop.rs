//! DPoP, RFC 9449: checking proofs of possession (at the token endpoint and at every protected
//! request) and the server nonces that keep proofs fresh. Pure: time and keys are passed in.
//!
//! A proof is accepted only with a nonce this server handed out (RFC 9449 §8, §9): a nonce is
//! the issuing time sealed by the vault, so every replica reads every other's, and it is good
//! for [`NONCE_LIFETIME`]. Each proof's `jti` is recorded until the proof can no longer be
//! accepted anyway, on every replica (§11.1).

use axum::http::{HeaderMap, HeaderName};
use jsonwebtoken::jwk::Jwk;
use serde_json::Value;

use crate::crypto::Vault;
use crate::jose;

/// `DPoP`: the request header carrying a proof.
pub const PROOF_HEADER: HeaderName = HeaderName::from_static("dpop");
/// `DPoP-Nonce`: the response header carrying a nonce to put in the next proof.
pub const NONCE_HEADER: HeaderName = HeaderName::from_static("dpop-nonce");
/// The `typ` of a proof (RFC 9449 §4.2).
pub const PROOF_TYP: &str = "dpop+jwt";
/// How old a proof's `iat` may be (§11.1: "only accept DPoP proofs for a limited time").
pub const PROOF_WINDOW: i64 = 300;
/// How long a nonce is accepted after it was handed out.
pub const NONCE_LIFETIME: i64 = 300;

/// Why a proof is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DpopError {
    /// `invalid_dpop_proof` (§5, §7.1), with the reason in words.
    Invalid(&'static str),
    /// `use_dpop_nonce` (§8, §9): no nonce, or one that is not ours or too old.
    UseNonce,
    /// The `jti` store could not be reached; says nothing about the proof.
    Unavailable,
}

/// A checked proof: the key's thumbprint and what must be recorded against replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proof {
    /// RFC 7638 SHA-256 thumbprint of the proof's key, base64url (`cnf.jkt`).
    pub jkt: String,
    pub jti: String,
    pub iat: i64,
}

impl Proof {
    /// The `seen_jtis` row of this proof, and until when it must be kept.
    pub fn replay_key(&self) -> (String, i64) {
        (
            jose::jti_digest("dpop", &self.jkt, &self.jti),
            self.iat + PROOF_WINDOW + jose::CLOCK_SKEW,
        )
    }
}

/// The request a proof must be bound to.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub method: &'a str,
    /// The public URL of the request, as the client addressed it.
    pub url: &'a str,
    /// The access token presented with it, at a protected resource (for `ath`).
    pub access_token: Option<&'a str>,
}

/// The proof of a request: `Ok(None)` when there is none, an error when there is more than one
/// (RFC 9449 §4.3 (1)) or it is not text.
pub fn proof_header(headers: &HeaderMap) -> Result<Option<&str>, DpopError> {
    let mut values = headers.get_all(PROOF_HEADER).iter();
    let Some(first) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(DpopError::Invalid("send exactly one DPoP header"));
    }
    first
        .to_str()
        .map(|s| Some(s.trim()))
        .map_err(|_| DpopError::Invalid("the DPoP header is not a JWT"))
}

/// A fresh nonce: the time sealed by the vault (unpredictable, and readable by every replica).
pub fn new_nonce(vault: &Vault, now: i64) -> String {
    vault.seal(&now.to_be_bytes()).ciphertext
}

/// Whether `nonce` was handed out by a replica of this server within [`NONCE_LIFETIME`].
pub fn nonce_is_fresh(vault: &Vault, nonce: &str, now: i64) -> bool {
    let Ok(plain) = vault.open(nonce, vault.primary_key_id()) else {
        return false;
    };
    let Ok(bytes) = <[u8; 8]>::try_from(plain.as_slice()) else {
        return false;
    };
    let issued = i64::from_be_bytes(bytes);
    issued <= now + jose::CLOCK_SKEW && now - issued <= NONCE_LIFETIME
}

/// `htu` and the request URL compared without query and fragment, after the syntax- and
/// scheme-based normalisation the URL parser applies (RFC 9449 §4.3 (9), RFC 3986 §6.2.2–6.2.3).
pub fn same_target(htu: &str, url: &str) -> bool {
    let strip = |u: &str| {
        url::Url::parse(u).ok().map(|mut u| {
            u.set_query(None);
            u.set_fragment(None);
            u
        })
    };
    matches!((strip(htu), strip(url)), (Some(a), Some(b)) if a == b)
}

/// Base64url SHA-256 of an access token: the `ath` claim (RFC 9449 §4.2).
pub fn token_hash(access_token: &str) -> String {
    use base64::Engine;
    use sha2::Digest;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(access_token))
}

/// Checks a proof against the request, every rule of RFC 9449 §4.3 but the `jti` bookkeeping
/// (the caller records [`Proof::replay_key`]) and the key binding of an access token (the
/// caller compares [`Proof::jkt`] with the token's `cnf.jkt`):
/// (2)–(3) one well-formed JWT with every required claim, (4) `typ` `dpop+jwt`, (5) an
/// accepted asymmetric `alg`, (6)–(7) a signature by the public `jwk` of the header, (8) `htm`,
/// (9) `htu`, (10) a nonce this server issued, (11) `iat` within [`PROOF_WINDOW`], (12) `ath`.
pub fn check(
    proof: &str,
    request: Request<'_>,
    vault: &Vault,
    now: i64,
) -> Result<Proof, DpopError> {
    let jwt = jose::read(proof).map_err(DpopError::Invalid)?;
    if jwt.typ() != Some(PROOF_TYP) {
        return Err(DpopError::Invalid("the proof's typ must be dpop+jwt"));
    }
    let jwk_value = jwt
        .header
        .get("jwk")
        .ok_or(DpopError::Invalid("the proof's header has no jwk"))?;
    let jwk: Jwk = jose::public_jwk(jwk_value).map_err(DpopError::Invalid)?;
    jose::verify(&jwt, &jwk).map_err(DpopError::Invalid)?;
    let jti = jwt
        .claim_str("jti")
        .filter(|j| !j.is_empty() && j.len() <= 256)
        .ok_or(DpopError::Invalid(
            "the proof needs a jti of at most 256 characters",
        ))?;
    let htm = jwt
        .claim_str("htm")
        .ok_or(DpopError::Invalid("the proof needs htm"))?;
    let htu = jwt
        .claim_str("htu")
        .ok_or(DpopError::Invalid("the proof needs htu"))?;
    let iat = jwt
        .claim_i64("iat")
        .ok_or(DpopError::Invalid("the proof needs a numeric iat"))?;
    if htm != request.method {
        return Err(DpopError::Invalid(
            "the proof's htm is not this request's method",
        ));
    }
    if !same_target(htu, request.url) {
        return Err(DpopError::Invalid(
            "the proof's htu is not this request's URL",
        ));
    }
    if iat > now + jose::CLOCK_SKEW || now - iat > PROOF_WINDOW {
        return Err(DpopError::Invalid(
            "the proof's iat is outside the accepted window",
        ));
    }
    match request.access_token {
        Some(token) if jwt.claim_str("ath") != Some(token_hash(token).as_str()) => {
            return Err(DpopError::Invalid(
                "the proof's ath is not the hash of the access token sent with it",
            ));
        }
        None if jwt.claims.contains_key("ath") => {
            return Err(DpopError::Invalid(
                "a proof at the token endpoint carries no ath",
            ));
        }
        _ => {}
    }
    match jwt.claims.get("nonce") {
        Some(Value::String(n)) if nonce_is_fresh(vault, n, now) => {}
        _ => return Err(DpopError::UseNonce),
    }
    let jkt =
        jose::thumbprint(&jwk).ok_or(DpopError::Invalid("the proof's jwk has no thumbprint"))?;
    Ok(Proof {
        jkt,
        jti: jti.to_owned(),
        iat,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_compare_without_query_and_fragment_after_normalisation() {
        assert!(same_target(
            "https://a.example/mcp",
            "https://a.example/mcp?x=1"
        ));
        assert!(same_target(
            "HTTPS://A.example:443/mcp",
            "https://a.example/mcp"
        ));
        assert!(same_target(
            "https://a.example/mcp#f",
            "https://a.example/mcp"
        ));
        assert!(!same_target(
            "https://a.example/token",
            "https://a.example/mcp"
        ));
        assert!(!same_target(
            "https://b.example/mcp",
            "https://a.example/mcp"
        ));
        assert!(!same_target("not a url", "https://a.example/mcp"));
    }

    #[test]
    fn nonces_are_sealed_times_that_expire() {
        let vault = Vault::new(&[Vault::generate_key()]).unwrap();
        let n = new_nonce(&vault, 1_000);
        assert!(nonce_is_fresh(&vault, &n, 1_000));
        assert!(nonce_is_fresh(&vault, &n, 1_000 + NONCE_LIFETIME));
        assert!(!nonce_is_fresh(&vault, &n, 1_001 + NONCE_LIFETIME));
        assert!(!nonce_is_fresh(&vault, &n, 1_000 - jose::CLOCK_SKEW - 1));
        assert!(!nonce_is_fresh(&vault, "made-up", 1_000));
        let other = Vault::new(&[Vault::generate_key()]).unwrap();
        assert!(!nonce_is_fresh(&other, &n, 1_000), "another server's nonce");
        assert_ne!(new_nonce(&vault, 1_000), n, "unpredictable");
    }
}
