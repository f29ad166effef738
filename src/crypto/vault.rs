//! The credential vault: a Fernet key ring (interoperable with Python's `cryptography.fernet`).
//! The first key encrypts; every key decrypts. Each ciphertext is stored with the id of the key that
//! made it, so rotation knows what to rewrite and decryption tries the right key first.

use fernet::Fernet;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::token::hex;

#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error("vault key #{index} is not a valid Fernet key (expected 32 bytes, url-safe base64)")]
    BadKey { index: usize },
    #[error("no vault key configured")]
    NoKeys,
    #[error(
        "the stored secret cannot be decrypted with any configured vault key; was it encrypted with a key that is no longer in CLARI_MCP_VAULT_KEYS?"
    )]
    Undecryptable,
    #[error("the decrypted secret is not valid UTF-8")]
    NotUtf8,
}

struct VaultKey {
    id: String,
    fernet: Fernet,
}

/// A ciphertext and the id of the key that produced it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    pub ciphertext: String,
    pub key_id: String,
}

pub struct Vault {
    keys: Vec<VaultKey>,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<&str> = self.keys.iter().map(|k| k.id.as_str()).collect();
        f.debug_struct("Vault").field("key_ids", &ids).finish()
    }
}

impl Vault {
    /// Builds the ring from Fernet keys; the first one is the primary (encrypting) key.
    pub fn new(keys: &[SecretString]) -> Result<Self, VaultError> {
        if keys.is_empty() {
            return Err(VaultError::NoKeys);
        }
        let keys = keys
            .iter()
            .enumerate()
            .map(|(i, k)| {
                let text = k.expose_secret().trim();
                let fernet = Fernet::new(text).ok_or(VaultError::BadKey { index: i + 1 })?;
                Ok(VaultKey {
                    id: key_id(text),
                    fernet,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { keys })
    }

    /// A fresh random Fernet key.
    pub fn generate_key() -> SecretString {
        SecretString::from(Fernet::generate_key())
    }

    pub fn primary_key_id(&self) -> &str {
        &self.keys[0].id
    }

    pub fn key_ids(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().map(|k| k.id.as_str())
    }

    pub fn seal(&self, plaintext: &[u8]) -> Sealed {
        let primary = &self.keys[0];
        Sealed {
            ciphertext: primary.fernet.encrypt(plaintext),
            key_id: primary.id.clone(),
        }
    }

    /// Decrypts, trying the key named by `key_id` first and then the rest of the ring.
    pub fn open(&self, ciphertext: &str, key_id: &str) -> Result<Zeroizing<Vec<u8>>, VaultError> {
        let named = self.keys.iter().filter(|k| k.id == key_id);
        let others = self.keys.iter().filter(|k| k.id != key_id);
        named
            .chain(others)
            .find_map(|k| k.fernet.decrypt(ciphertext).ok())
            .map(Zeroizing::new)
            .ok_or(VaultError::Undecryptable)
    }

    pub fn open_string(&self, ciphertext: &str, key_id: &str) -> Result<SecretString, VaultError> {
        let bytes = self.open(ciphertext, key_id)?;
        let text = std::str::from_utf8(&bytes).map_err(|_| VaultError::NotUtf8)?;
        Ok(SecretString::from(text.to_owned()))
    }

    /// Re-encrypts under the primary key when the ciphertext was made by another key.
    /// Returns `None` when it is already sealed by the primary key.
    pub fn reseal(&self, ciphertext: &str, key_id: &str) -> Result<Option<Sealed>, VaultError> {
        if key_id == self.primary_key_id() {
            return Ok(None);
        }
        let plain = self.open(ciphertext, key_id)?;
        Ok(Some(self.seal(&plain)))
    }
}

/// A short, stable, non-secret identifier of a key: 12 hex chars of a domain-separated SHA-256.
fn key_id(key: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"clari-mcp vault key id\0");
    h.update(key.as_bytes());
    hex(&h.finalize()[..6])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(keys: &[&SecretString]) -> Vault {
        let owned: Vec<SecretString> = keys.iter().map(|k| (*k).clone()).collect();
        Vault::new(&owned).unwrap()
    }

    #[test]
    fn seal_and_open_round_trip() {
        let k = Vault::generate_key();
        let v = ring(&[&k]);
        let sealed = v.seal(b"clari-api-key-123");
        assert_eq!(sealed.key_id, v.primary_key_id());
        assert_eq!(
            &*v.open(&sealed.ciphertext, &sealed.key_id).unwrap(),
            b"clari-api-key-123"
        );
    }

    #[test]
    fn wrong_key_fails_with_a_clear_error() {
        let v1 = ring(&[&Vault::generate_key()]);
        let v2 = ring(&[&Vault::generate_key()]);
        let sealed = v1.seal(b"secret");
        let err = v2.open(&sealed.ciphertext, &sealed.key_id).unwrap_err();
        assert!(err.to_string().contains("CLARI_MCP_VAULT_KEYS"));
    }

    #[test]
    fn rotation_keeps_old_ciphertexts_readable_and_reseals_under_new_key() {
        let old = Vault::generate_key();
        let new = Vault::generate_key();
        let before = ring(&[&old]);
        let sealed = before.seal(b"value");
        let after = ring(&[&new, &old]);
        assert_eq!(
            &*after.open(&sealed.ciphertext, &sealed.key_id).unwrap(),
            b"value"
        );
        let resealed = after
            .reseal(&sealed.ciphertext, &sealed.key_id)
            .unwrap()
            .unwrap();
        assert_eq!(resealed.key_id, after.primary_key_id());
        assert!(
            after
                .reseal(&resealed.ciphertext, &resealed.key_id)
                .unwrap()
                .is_none()
        );
        let only_new = ring(&[&new]);
        assert_eq!(
            &*only_new
                .open(&resealed.ciphertext, &resealed.key_id)
                .unwrap(),
            b"value"
        );
    }

    #[test]
    fn malformed_key_is_named_by_position() {
        let good = Vault::generate_key();
        let bad = SecretString::from("not-a-key".to_owned());
        let err = Vault::new(&[good, bad]).unwrap_err();
        assert!(matches!(err, VaultError::BadKey { index: 2 }));
        assert!(matches!(Vault::new(&[]), Err(VaultError::NoKeys)));
    }

    #[test]
    fn debug_output_shows_ids_not_keys() {
        let k = Vault::generate_key();
        let v = ring(&[&k]);
        let dbg = format!("{v:?}");
        assert!(!dbg.contains(k.expose_secret()));
        assert!(dbg.contains(v.primary_key_id()));
    }
}
