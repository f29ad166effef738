//! The audit keys: an Ed25519 key that signs checkpoints, and a secret from which each
//! organisation's argument-digest key is derived. Both live in the database with their private
//! halves sealed by the vault, so every replica signs and digests alike.

use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::chain::{checkpoint_message, verifying_key};
use crate::clock::UnixTime;
use crate::crypto::token::hex;
use crate::crypto::{Vault, VaultError};
use crate::store::{AuditKeyRecord, Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum AuditKeyError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Vault(#[from] VaultError),
    #[error("audit key {0} is damaged")]
    Damaged(String),
}

pub struct AuditKeys {
    kid: String,
    signing: SigningKey,
    digest_secret: Zeroizing<Vec<u8>>,
    /// Each organisation's digest key, derived once (bounded: starts over past 10,000).
    org_keys: std::sync::Mutex<HashMap<String, Zeroizing<[u8; 32]>>>,
    /// Every published key, retired ones included: kid → public key (base64url).
    published: Vec<(String, String, UnixTime, Option<UnixTime>)>,
}

fn random_32() -> Zeroizing<[u8; 32]> {
    let mut b = Zeroizing::new([0u8; 32]);
    rand::Rng::fill(&mut rand::rng(), &mut b[..]);
    b
}

impl AuditKeys {
    /// Loads the keys, creating them on first use. When replicas race to create them, every
    /// replica ends up using the oldest of each kind, so signatures and digests agree.
    pub async fn load(
        store: &dyn Store,
        vault: &Vault,
        now: UnixTime,
    ) -> Result<Self, AuditKeyError> {
        let mut records = store.audit_keys().await?;
        let live = |r: &&AuditKeyRecord, kind: &str| r.kind == kind && r.retired_at.is_none();
        if !records.iter().any(|r| live(&r, "ed25519")) {
            let secret = random_32();
            let signing = SigningKey::from_bytes(&secret);
            let public = URL_SAFE_NO_PAD.encode(signing.verifying_key().as_bytes());
            let kid = URL_SAFE_NO_PAD.encode(&Sha256::digest(public.as_bytes())[..16]);
            let sealed = vault.seal(&secret[..]);
            store
                .insert_audit_key(&AuditKeyRecord {
                    kid,
                    kind: "ed25519".into(),
                    public_key: Some(public),
                    private_ciphertext: sealed.ciphertext,
                    private_key_id: sealed.key_id,
                    created_at: now,
                    retired_at: None,
                })
                .await?;
        }
        if !records.iter().any(|r| live(&r, "hmac")) {
            let secret = random_32();
            let sealed = vault.seal(&secret[..]);
            store
                .insert_audit_key(&AuditKeyRecord {
                    kid: format!("hmac-{}", hex(&random_32()[..8])),
                    kind: "hmac".into(),
                    public_key: None,
                    private_ciphertext: sealed.ciphertext,
                    private_key_id: sealed.key_id,
                    created_at: now,
                    retired_at: None,
                })
                .await?;
        }
        records = store.audit_keys().await?;
        // Oldest first, so racing replicas pick the same ones.
        records.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.kid.cmp(&b.kid)));
        let pick = |kind: &str| {
            records
                .iter()
                .find(|r| live(r, kind))
                .ok_or_else(|| AuditKeyError::Damaged(kind.to_owned()))
        };
        let sig = pick("ed25519")?;
        let bytes = vault.open(&sig.private_ciphertext, &sig.private_key_id)?;
        let secret: [u8; 32] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| AuditKeyError::Damaged(sig.kid.clone()))?;
        let signing = SigningKey::from_bytes(&secret);
        let mac = pick("hmac")?;
        let digest_secret = Zeroizing::new(
            vault
                .open(&mac.private_ciphertext, &mac.private_key_id)?
                .to_vec(),
        );
        let published = records
            .iter()
            .filter(|r| r.kind == "ed25519")
            .filter_map(|r| {
                r.public_key
                    .clone()
                    .map(|pk| (r.kid.clone(), pk, r.created_at, r.retired_at))
            })
            .collect();
        Ok(Self {
            kid: sig.kid.clone(),
            signing,
            digest_secret,
            org_keys: Default::default(),
            published,
        })
    }

    /// Signs a checkpoint; returns the key id and the signature (base64url).
    pub fn sign_checkpoint(
        &self,
        chain: &str,
        seq: i64,
        head_hash: &str,
        at: i64,
    ) -> (String, String) {
        let sig = self
            .signing
            .sign(checkpoint_message(chain, seq, head_hash, at).as_bytes());
        (self.kid.clone(), URL_SAFE_NO_PAD.encode(sig.to_bytes()))
    }

    /// A keyed digest of a tool's arguments, with a key of the organisation's own: equal
    /// arguments give equal digests within one organisation, and nothing across them.
    pub fn digest(&self, chain: &str, canonical_args: &str) -> String {
        let org_key = {
            let mut keys = self.org_keys.lock().expect("audit key lock");
            match keys.get(chain) {
                // The common case allocates nothing: a known organisation's key is copied out.
                Some(key) => key.clone(),
                None => {
                    if keys.len() >= 10_000 {
                        keys.clear();
                    }
                    let mut m = Hmac::<Sha256>::new_from_slice(&self.digest_secret)
                        .expect("HMAC takes any key length");
                    m.update(b"clari-mcp audit arguments v1\n");
                    m.update(chain.as_bytes());
                    let key = Zeroizing::new(m.finalize().into_bytes().into());
                    keys.insert(chain.to_owned(), Zeroizing::clone(&key));
                    key
                }
            }
        };
        let mut m =
            Hmac::<Sha256>::new_from_slice(&org_key[..]).expect("HMAC takes any key length");
        m.update(canonical_args.as_bytes());
        hex(&m.finalize().into_bytes())
    }

    /// The keyed pseudonym of a redacted value: 4 hex characters, stable within one organisation
    /// (another key than the argument digests').
    pub fn pseudonym(&self, chain: &str, value: &str) -> String {
        let mut m =
            Hmac::<Sha256>::new_from_slice(&self.digest_secret).expect("HMAC takes any key length");
        m.update(b"clari-mcp redaction v1\n");
        m.update(chain.as_bytes());
        m.update(b"\n");
        m.update(value.as_bytes());
        hex(&m.finalize().into_bytes()[..2])
    }

    /// The published verification keys, for `/.well-known/audit-keys.json` and exports.
    pub fn public_keys(&self) -> serde_json::Value {
        let keys: Vec<_> = self
            .published
            .iter()
            .map(|(kid, pk, created, retired)| {
                serde_json::json!({
                    "kid": kid, "alg": "Ed25519", "public_key": pk,
                    "created_at": crate::clock::rfc3339(*created),
                    "retired_at": retired.map(crate::clock::rfc3339),
                })
            })
            .collect();
        serde_json::json!({ "keys": keys })
    }

    /// kid → verifying key, for verification.
    pub fn verifying_keys(&self) -> HashMap<String, VerifyingKey> {
        self.published
            .iter()
            .filter_map(|(kid, pk, _, _)| verifying_key(pk).map(|k| (kid.clone(), k)))
            .collect()
    }
}
