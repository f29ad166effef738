//! API keys as a domain service: how one is minted (shown once, stored only as SHA-256 with its
//! last four characters) and recognised. Used by the operator CLI, `demo` and the bearer layer.

use secrecy::{ExposeSecret, SecretString};

use crate::crypto::token::hint;
use crate::crypto::{random_token, sha256_hex};
use crate::scope::ScopeSet;
use crate::store::{ApiKeyId, NewApiKey, OrgId, Store, StoreError, UserId};

/// The prefix that marks clari-mcp API keys in `Authorization: Bearer`.
pub const API_KEY_PREFIX: &str = "cmk_";

/// Whether a bearer token is (shaped like) one of our API keys rather than a JWT.
pub fn is_api_key(token: &str) -> bool {
    token.starts_with(API_KEY_PREFIX)
}

/// What to mint.
pub struct KeyRequest<'a> {
    pub org: &'a OrgId,
    pub user: &'a UserId,
    pub name: &'a str,
    pub scopes: ScopeSet,
    pub expires_at: Option<i64>,
    pub now: i64,
}

/// Creates a key: the secret (to show once) and the stored record.
pub async fn mint(
    store: &dyn Store,
    req: KeyRequest<'_>,
) -> Result<(SecretString, NewApiKey), StoreError> {
    let key = SecretString::from(format!("{API_KEY_PREFIX}{}", random_token(32)));
    let record = NewApiKey {
        id: ApiKeyId::new_random(),
        organization_id: req.org.clone(),
        user_id: req.user.clone(),
        name: req.name.to_owned(),
        key_hash: sha256_hex(key.expose_secret()),
        key_hint: hint(key.expose_secret()),
        scopes: req.scopes,
        expires_at: req.expires_at,
        created_at: req.now,
    };
    store.create_api_key(&record).await?;
    Ok((key, record))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_keys_are_told_apart_from_jwts() {
        assert!(is_api_key("cmk_abc"));
        assert!(!is_api_key("eyJhbGciOiJFUzI1NiJ9.e30.sig"));
    }
}
