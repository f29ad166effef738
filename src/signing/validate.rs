//! Access-token validation, the one way every consumer (the MCP bearer layer, `/introspect`,
//! `/revoke`) checks a presented JWT: its signature against the key ring, `typ`, `iss`, `aud` and
//! `exp`, then the live grant or machine client behind it in the store. Tokens whose signature
//! checked out are remembered until they expire, since verifying ES256 costs far more than the
//! rest of a request.

use jsonwebtoken::{Algorithm, Validation};
use sha2::{Digest, Sha256};

use super::{AccessClaims, KeyError, Keys, RELOAD_AT_MOST_EVERY};
use crate::clock::UnixTime;
use crate::crypto::Vault;
use crate::store::changes::{Checked, OrgCache};
use crate::store::{OrgId, Store};

/// Machine clients' ids begin with this; their tokens carry the client id where a grant id
/// would be (`gid`), since the client itself is what revocation reaches.
pub const SERVICE_CLIENT_PREFIX: &str = "svc_";

/// What stands behind a valid access token, still live.
#[derive(Debug, Clone)]
pub enum Behind {
    /// A person's consent (authorization code, refresh, ID-JAG).
    Grant(crate::store::Grant),
    /// A machine client of the organisation (client credentials).
    Service(crate::store::ServiceClient),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the token is not a well-formed signed JWT")]
    Malformed,
    #[error("the token was signed by an unknown key")]
    UnknownKey,
    #[error("the token signature or claims are invalid")]
    Invalid,
    #[error("the token has expired")]
    Expired,
    #[error("the token was issued for another audience")]
    WrongAudience,
    /// The keys or the grant could not be read to check it (a database failure), which says
    /// nothing about the token.
    #[error("the token could not be checked")]
    Unavailable,
    /// Well signed, but the sign-in behind it was revoked, or its user, organisation or client is
    /// disabled.
    #[error("the sign-in behind the token is no longer live")]
    Revoked,
}

/// How far past `exp` an access token is still accepted (clocks of replicas differ).
pub const EXPIRY_LEEWAY: i64 = 30;

/// At most this many verified tokens are remembered.
const MAX_VERIFIED: usize = 10_000;

/// A valid access token: its claims and the live grant or machine client behind it.
#[derive(Debug, Clone)]
pub struct ValidToken {
    pub claims: AccessClaims,
    pub behind: Behind,
}

impl ValidToken {
    pub fn organization_id(&self) -> &crate::store::OrgId {
        self.behind.organization_id()
    }
}

impl Behind {
    pub fn organization_id(&self) -> &OrgId {
        match self {
            Behind::Grant(g) => &g.organization_id,
            Behind::Service(c) => &c.organization_id,
        }
    }
}

/// Access-token validation, the one way every consumer (the MCP bearer layer, `/introspect`,
/// `/revoke`) checks a JWT: signature, `typ`, `iss`, `aud`, `exp`, and a live grant that matches
/// the token's client and subject.
pub struct AccessTokens<'a> {
    pub keys: &'a Keys,
    pub store: &'a dyn Store,
    /// What stands behind tokens, kept while its organisation is unchanged.
    pub live: &'a OrgCache<String, Behind>,
    pub vault: &'a Vault,
    pub issuer: &'a str,
    pub audience: &'a str,
    /// The change feed as the request read it already, if it did.
    pub checked: Option<Checked>,
}

impl AccessTokens<'_> {
    /// For a request that has read the change feed already.
    pub fn checked(self, checked: Checked) -> Self {
        Self {
            checked: Some(checked),
            ..self
        }
    }

    pub async fn validate(&self, token: &str, now: UnixTime) -> Result<ValidToken, TokenError> {
        let claims = self
            .keys
            .verify(
                token,
                self.issuer,
                self.audience,
                now,
                self.store,
                self.vault,
            )
            .await?;
        // Claims come from a verified signature, but are still text from the wire: parse them.
        let org = crate::store::OrgId::parse(&claims.org).map_err(|_| TokenError::Invalid)?;
        let behind = self.behind(&org, &claims.gid, now).await?;
        let matches = match &behind {
            Behind::Service(_) => claims.client_id == claims.gid && claims.sub == claims.gid,
            Behind::Grant(g) => {
                g.client_id.as_str() == claims.client_id && g.user_id.as_str() == claims.sub
            }
        };
        if !matches {
            return Err(TokenError::Invalid);
        }
        Ok(ValidToken { claims, behind })
    }

    /// The live grant or machine client of `gid` (a token's claim) in `org`: from memory while
    /// the organisation has not changed, else from the store (and then kept).
    async fn behind(&self, org: &OrgId, gid: &str, now: UnixTime) -> Result<Behind, TokenError> {
        let changes = self.store.changes();
        if let Some(b) = self.live.get_checked(changes, self.checked, gid, now)
            && b.organization_id() == org
        {
            return Ok(b);
        }
        let unavailable = |e: crate::store::StoreError| {
            tracing::error!(error = %e, "reading what stands behind an access token failed");
            TokenError::Unavailable
        };
        let ticket = changes.ticket();
        let behind = if gid.starts_with(SERVICE_CLIENT_PREFIX) {
            let id = crate::store::ClientId::parse(gid).map_err(|_| TokenError::Invalid)?;
            self.store
                .live_service_client(org, &id)
                .await
                .map_err(unavailable)?
                .map(Behind::Service)
        } else {
            let id = crate::store::GrantId::parse(gid).map_err(|_| TokenError::Invalid)?;
            self.store
                .live_grant(org, &id)
                .await
                .map_err(unavailable)?
                .map(Behind::Grant)
        }
        .ok_or(TokenError::Revoked)?;
        self.live.put(
            changes,
            ticket,
            gid.to_owned(),
            org,
            behind.clone(),
            now + crate::store::changes::CACHED_FOR,
        );
        Ok(behind)
    }
}

/// Our key ids are RFC 7638 thumbprints: 43 base64url characters. Anything else cannot be ours.
fn is_well_formed_kid(kid: &str) -> bool {
    kid.len() == 43
        && kid
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The checks a token's claims must pass, whether its signature was verified just now or
/// earlier: issued by `issuer`, meant for `audience`, not expired at `now` (with
/// [`EXPIRY_LEEWAY`]).
fn check_claims(
    claims: &AccessClaims,
    issuer: &str,
    audience: &str,
    now: UnixTime,
) -> Result<(), TokenError> {
    if claims.iss != issuer {
        return Err(TokenError::Invalid);
    }
    if claims.aud != audience {
        return Err(TokenError::WrongAudience);
    }
    if claims.exp + EXPIRY_LEEWAY < now {
        return Err(TokenError::Expired);
    }
    Ok(())
}

impl Keys {
    /// Verifies signature, `typ`, `iss`, `aud` and `exp` (against `now`, with [`EXPIRY_LEEWAY`]).
    /// An unknown `kid` triggers one reload, so keys rotated by another replica are picked up.
    pub async fn verify(
        &self,
        token: &str,
        issuer: &str,
        audience: &str,
        now: UnixTime,
        store: &dyn Store,
        vault: &Vault,
    ) -> Result<AccessClaims, TokenError> {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let known = self
            .verified
            .lock()
            .expect("verified tokens lock")
            .get(&digest)
            .cloned();
        if let Some(claims) = known {
            check_claims(&claims, issuer, audience, now)?;
            return Ok(claims);
        }
        let claims = self.verify_signed(token, now, store, vault).await?;
        check_claims(&claims, issuer, audience, now)?;
        let mut verified = self.verified.lock().expect("verified tokens lock");
        if verified.len() >= MAX_VERIFIED {
            verified.retain(|_, c| c.exp + EXPIRY_LEEWAY >= now);
            if verified.len() >= MAX_VERIFIED {
                verified.clear();
            }
        }
        verified.insert(digest, claims.clone());
        Ok(claims)
    }

    /// The claims of a token whose `typ` and signature check out; its claims are the caller's to
    /// check. An unknown `kid` reloads the keys (at `now`) at most once per interval.
    async fn verify_signed(
        &self,
        token: &str,
        now: UnixTime,
        store: &dyn Store,
        vault: &Vault,
    ) -> Result<AccessClaims, TokenError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Malformed)?;
        if header.alg != Algorithm::ES256
            || header
                .typ
                .as_deref()
                .map(str::to_ascii_lowercase)
                .as_deref()
                != Some("at+jwt")
        {
            return Err(TokenError::Invalid);
        }
        let kid = header.kid.ok_or(TokenError::Malformed)?;
        if !is_well_formed_kid(&kid) {
            return Err(TokenError::Malformed);
        }
        let mut set = self.set.read().await.clone();
        if !set.verifiers.contains_key(&kid) {
            // A key rotated in by another replica: reload, but at most once per interval.
            let last = self.last_reload.load(std::sync::atomic::Ordering::Relaxed);
            if now.saturating_sub(last) < RELOAD_AT_MOST_EVERY
                || self
                    .last_reload
                    .compare_exchange(
                        last,
                        now,
                        std::sync::atomic::Ordering::AcqRel,
                        std::sync::atomic::Ordering::Relaxed,
                    )
                    .is_err()
            {
                return Err(TokenError::UnknownKey);
            }
            self.reloads
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            match self.reload(store, vault, now).await {
                Ok(()) => {}
                Err(KeyError::Store(e)) => {
                    tracing::error!(error = %e, "reloading signing keys failed");
                    return Err(TokenError::Unavailable);
                }
                Err(e) => {
                    tracing::error!(error = %e, "reloading signing keys failed");
                    return Err(TokenError::UnknownKey);
                }
            }
            set = self.set.read().await.clone();
        }
        let key = set.verifiers.get(&kid).ok_or(TokenError::UnknownKey)?;
        let mut v = Validation::new(Algorithm::ES256);
        v.validate_exp = false;
        v.validate_aud = false;
        v.required_spec_claims = ["exp", "iss", "aud", "sub"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let data = jsonwebtoken::decode::<AccessClaims>(token, key, &v)
            .map_err(|_| TokenError::Invalid)?;
        Ok(data.claims)
    }
}
