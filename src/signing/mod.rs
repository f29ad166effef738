//! The access-token key ring: ES256 (P-256) keys that sign access tokens and are published in the
//! JWKS. Keys live in the database with the private half sealed by the vault, so every replica
//! signs and verifies with the same set. The newest unretired key signs; retired keys stay
//! published in the JWKS until their tokens have expired. Tokens are RFC 9068 JWTs
//! (`typ: at+jwt`); time is passed in, never read here. Checking a presented token (its
//! signature, claims and the live grant behind it) is [`validate`].

use std::collections::HashMap;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::DecodingKey;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::RwLock;

use crate::clock::UnixTime;
use crate::crypto::{Vault, VaultError};
use crate::store::{SigningKeyRecord, Store, StoreError};

pub mod validate;

pub use validate::{
    AccessTokens, Behind, EXPIRY_LEEWAY, SERVICE_CLIENT_PREFIX, TokenError, ValidToken,
};

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Vault(#[from] VaultError),
    #[error("signing key {0} is damaged: {1}")]
    Damaged(String, String),
    #[error("no signing key is available")]
    NoKey,
}

/// Claims of an access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub client_id: String,
    pub scope: String,
    /// Organisation id.
    pub org: String,
    /// Grant id: revoking the grant reaches every token made from it.
    pub gid: String,
    pub jti: String,
    pub iat: i64,
    pub exp: i64,
    /// The DPoP key the token is bound to (RFC 9449 §6.1): only a request carrying a proof
    /// signed by that key may present it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cnf: Option<Confirmation>,
}

/// `cnf` of a sender-constrained token (RFC 7800 §3.1, RFC 9449 §6.1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Confirmation {
    /// The JWK SHA-256 thumbprint (RFC 7638) of the DPoP key, base64url.
    pub jkt: String,
}

/// The current signing key, parsed once (parsing a PKCS#8 key per token derived its public key,
/// a second scalar multiplication on every token issued).
struct Signer {
    kid: String,
    key: ring::signature::EcdsaKeyPair,
    /// `base64url({"alg":"ES256","typ":"at+jwt","kid":…})`, the same for every token.
    header: String,
}

struct KeySet {
    signer: Option<Signer>,
    verifiers: HashMap<String, DecodingKey>,
    jwks: serde_json::Value,
}

/// The key set, cached in memory and reloaded from the store when an unknown `kid` appears.
pub struct Keys {
    set: RwLock<Arc<KeySet>>,
    /// When an unknown `kid` last made us reload (seconds); reloads are at most one per
    /// [`RELOAD_AT_MOST_EVERY`], so garbage tokens cannot turn into database reads.
    last_reload: std::sync::atomic::AtomicI64,
    /// Reloads caused by unknown kids so far.
    reloads: std::sync::atomic::AtomicU64,
    /// Retired keys are dropped from the JWKS this long after retirement.
    publish_retired_for: i64,
    /// Tokens whose signature and claims checked out, by SHA-256 of the token, until they
    /// expire: verifying ES256 costs far more than the rest of a request. Only verified tokens
    /// get in, and it is bounded.
    verified: std::sync::Mutex<HashMap<[u8; 32], AccessClaims>>,
}

/// How long a retired key stays published beyond the lifetime of the tokens it signed, so a
/// token signed just before the rotation verifies everywhere until it expires.
pub const PUBLICATION_MARGIN: i64 = 300;

/// An unknown `kid` reloads the keys at most this often (seconds).
pub const RELOAD_AT_MOST_EVERY: i64 = 10;

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keys").finish_non_exhaustive()
    }
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A new P-256 key: (record to store, with the private scalar sealed by the vault).
pub fn generate(vault: &Vault, now: UnixTime) -> SigningKeyRecord {
    let secret = loop {
        let mut bytes = zeroize::Zeroizing::new([0u8; 32]);
        rand::rng().fill_bytes(bytes.as_mut());
        if let Ok(s) = p256::SecretKey::from_slice(bytes.as_ref()) {
            break s;
        }
    };
    let point = secret.public_key();
    let encoded = p256::elliptic_curve::sec1::ToEncodedPoint::to_encoded_point(&point, false);
    let x = b64(encoded.x().expect("uncompressed point"));
    let y = b64(encoded.y().expect("uncompressed point"));
    // RFC 7638 thumbprint: members in lexicographic order, no white space.
    let thumb = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
    let kid = b64(&Sha256::digest(thumb.as_bytes()));
    let jwk = serde_json::json!({"kty": "EC", "crv": "P-256", "x": x, "y": y, "kid": kid, "alg": "ES256", "use": "sig"});
    let sealed = vault.seal(secret.to_bytes().as_slice());
    SigningKeyRecord {
        kid,
        alg: "ES256".into(),
        public_jwk: jwk.to_string(),
        private_ciphertext: sealed.ciphertext,
        private_key_id: sealed.key_id,
        created_at: now,
        retired_at: None,
    }
}

/// The key as ring holds it for signing: ES256 with the fixed-size (r||s) signature JWS uses.
/// ring signs P-256 several times faster than the pure-Rust code the JWT library uses.
fn ring_key_pair(secret: &p256::SecretKey) -> Result<ring::signature::EcdsaKeyPair, String> {
    let public =
        p256::elliptic_curve::sec1::ToEncodedPoint::to_encoded_point(&secret.public_key(), false);
    ring::signature::EcdsaKeyPair::from_private_key_and_public_key(
        &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
        secret.to_bytes().as_slice(),
        public.as_bytes(),
        &ring::rand::SystemRandom::new(),
    )
    .map_err(|e| e.to_string())
}

fn build(
    records: &[SigningKeyRecord],
    vault: &Vault,
    now: UnixTime,
    publish_retired_for: i64,
) -> Result<KeySet, KeyError> {
    let mut verifiers = HashMap::new();
    let mut published = Vec::new();
    let mut signer = None;
    for r in records {
        if r.retired_at.is_some_and(|t| t + publish_retired_for < now) {
            continue;
        }
        let jwk: serde_json::Value = serde_json::from_str(&r.public_jwk)
            .map_err(|e| KeyError::Damaged(r.kid.clone(), e.to_string()))?;
        let (Some(x), Some(y)) = (jwk["x"].as_str(), jwk["y"].as_str()) else {
            return Err(KeyError::Damaged(
                r.kid.clone(),
                "public key without x/y".into(),
            ));
        };
        let dk = DecodingKey::from_ec_components(x, y)
            .map_err(|e| KeyError::Damaged(r.kid.clone(), e.to_string()))?;
        verifiers.insert(r.kid.clone(), dk);
        published.push(jwk);
        // Records come newest first: the first unretired one signs.
        if signer.is_none() && r.retired_at.is_none() {
            let scalar = vault.open(&r.private_ciphertext, &r.private_key_id)?;
            let secret = p256::SecretKey::from_slice(&scalar)
                .map_err(|e| KeyError::Damaged(r.kid.clone(), e.to_string()))?;
            let header = serde_json::json!({"alg": "ES256", "typ": "at+jwt", "kid": r.kid});
            signer = Some(Signer {
                kid: r.kid.clone(),
                key: ring_key_pair(&secret)
                    .map_err(|e| KeyError::Damaged(r.kid.clone(), e.to_string()))?,
                header: b64(header.to_string().as_bytes()),
            });
        }
    }
    Ok(KeySet {
        signer,
        verifiers,
        jwks: serde_json::json!({"keys": published}),
    })
}

impl Keys {
    /// Loads the keys, creating the first one when the database has none.
    pub async fn load(
        store: &dyn Store,
        vault: &Vault,
        now: UnixTime,
        publish_retired_for: i64,
    ) -> Result<Self, KeyError> {
        let mut records = store.signing_keys().await?;
        if !records.iter().any(|r| r.retired_at.is_none()) {
            store.insert_signing_key(&generate(vault, now)).await?;
            records = store.signing_keys().await?;
        }
        let set = build(&records, vault, now, publish_retired_for)?;
        Ok(Self {
            set: RwLock::new(Arc::new(set)),
            last_reload: std::sync::atomic::AtomicI64::new(i64::MIN),
            reloads: std::sync::atomic::AtomicU64::new(0),
            publish_retired_for,
            verified: Default::default(),
        })
    }

    pub async fn reload(
        &self,
        store: &dyn Store,
        vault: &Vault,
        now: UnixTime,
    ) -> Result<(), KeyError> {
        let records = store.signing_keys().await?;
        let set = build(&records, vault, now, self.publish_retired_for)?;
        *self.set.write().await = Arc::new(set);
        Ok(())
    }

    /// Adds a new signing key and retires the others (still published until their tokens expire).
    pub async fn rotate(
        store: &dyn Store,
        vault: &Vault,
        now: UnixTime,
    ) -> Result<String, KeyError> {
        let record = generate(vault, now);
        let kid = record.kid.clone();
        store.insert_signing_key(&record).await?;
        store.retire_signing_keys_except(&kid, now).await?;
        Ok(kid)
    }

    /// How many times an unknown `kid` made this process reload the keys.
    pub fn unknown_kid_reloads(&self) -> u64 {
        self.reloads.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub async fn jwks(&self) -> serde_json::Value {
        self.set.read().await.jwks.clone()
    }

    pub async fn sign(&self, claims: &AccessClaims) -> Result<String, KeyError> {
        let set = self.set.read().await.clone();
        let signer = set.signer.as_ref().ok_or(KeyError::NoKey)?;
        // A JWS compact serialization (RFC 7515 §7.1) with an ES256 signature (RFC 7518 §3.4:
        // r and s, 32 bytes each), the form every JWT library reads.
        let payload = serde_json::to_vec(claims)
            .map_err(|e| KeyError::Damaged(signer.kid.clone(), e.to_string()))?;
        let signing_input = format!("{}.{}", signer.header, b64(&payload));
        let signature = signer
            .key
            .sign(&ring::rand::SystemRandom::new(), signing_input.as_bytes())
            .map_err(|_| KeyError::Damaged(signer.kid.clone(), "signing failed".into()))?;
        Ok(format!("{signing_input}.{}", b64(signature.as_ref())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_sign_and_verify_and_thumbprints_are_stable() {
        let vault = Vault::new(&[Vault::generate_key()]).unwrap();
        let rec = generate(&vault, 100);
        let set = build(std::slice::from_ref(&rec), &vault, 100, 3600).unwrap();
        let signer = set.signer.as_ref().unwrap();
        assert_eq!(signer.kid, rec.kid);
        assert_eq!(rec.kid.len(), 43);
        let jwk: serde_json::Value = serde_json::from_str(&rec.public_jwk).unwrap();
        assert_eq!(
            (
                jwk["kty"].as_str(),
                jwk["crv"].as_str(),
                jwk["alg"].as_str()
            ),
            (Some("EC"), Some("P-256"), Some("ES256"))
        );
        assert!(jwk.get("d").is_none(), "no private part is published");
        assert!(!rec.private_ciphertext.contains(jwk["x"].as_str().unwrap()));
    }
}
