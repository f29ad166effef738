//! The SCIM tokens of an organisation: what its identity provider provisions with.

use secrecy::SecretString;

use super::{AdminResult, OrgAdmin, validate_key_name};
use crate::crypto::{random_token, sha256_hex};
use crate::store::ScimToken;

/// What a SCIM token starts with, so it is recognisable in a secret scanner.
pub const SCIM_TOKEN_PREFIX: &str = "scim_";

impl OrgAdmin<'_> {
    /// The organisation's live SCIM tokens (never the tokens).
    pub async fn scim_tokens(&self) -> AdminResult<Vec<ScimToken>> {
        Ok(self.state.store.scim_tokens(&self.org.id).await?)
    }

    /// Creates a SCIM token (shown once; kept as its SHA-256 only).
    pub async fn create_scim_token(&self, name: &str) -> AdminResult<(SecretString, ScimToken)> {
        let name = validate_key_name(name)?;
        let secret = format!("{SCIM_TOKEN_PREFIX}{}", random_token(32));
        let token = self
            .state
            .store
            .create_scim_token(&self.org.id, &name, &sha256_hex(&secret), self.now())
            .await?;
        self.state.audit.record(
            self.event("scim_token.created", token.id.as_str())
                .detail("name", token.name.as_str()),
        );
        Ok((SecretString::from(secret), token))
    }

    pub async fn revoke_scim_token(&self, id: &str) -> AdminResult<()> {
        let ended = id.len() <= 128
            && (self.state.store)
                .revoke_scim_token(&self.org.id, id, self.now())
                .await?;
        self.ended(ended, "SCIM token", "scim_token.revoked", id)
    }
}
