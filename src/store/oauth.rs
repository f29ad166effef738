//! Storage of the authorization server: clients, grants (one per user, organisation and client;
//! revoking one kills every token derived from it), single-use codes, rotating refresh tokens,
//! signing keys, browser sessions and shared rate-limit counters.

use async_trait::async_trait;

use super::{OrgId, StoreError, UserId};
use crate::clock::UnixTime;
use crate::scope::ScopeSet;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientKind {
    /// Registered through RFC 7591 dynamic registration.
    Dcr,
    /// Described by a Client ID Metadata Document fetched from its URL.
    Cimd,
}

impl ClientKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ClientKind::Dcr => "dcr",
            ClientKind::Cimd => "cimd",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ClientRecord {
    pub id: String,
    pub kind: ClientKind,
    /// The client's metadata as JSON (RFC 7591 field names).
    pub metadata: serde_json::Value,
    pub secret_hash: Option<String>,
    pub registration_token_hash: Option<String>,
    pub created_at: UnixTime,
    pub updated_at: UnixTime,
    pub last_used_at: Option<UnixTime>,
    pub expires_at: Option<UnixTime>,
    pub disabled: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub id: String,
    pub organization_id: OrgId,
    pub user_id: UserId,
    pub client_id: String,
    pub scope: ScopeSet,
    pub resource: String,
    pub created_at: UnixTime,
    pub updated_at: UnixTime,
    pub revoked_at: Option<UnixTime>,
    /// Whether `prompt=none` (and a repeat visit) may reuse this consent; false after the client's
    /// redirect URIs changed, until the user approves again.
    pub consent_remembered: bool,
}

/// A grant with the names a person recognises, for the account page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantView {
    pub grant: Grant,
    pub client_name: String,
    pub organization_name: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeRecord {
    pub code_hash: String,
    pub grant_id: String,
    pub organization_id: OrgId,
    pub client_id: String,
    pub user_id: UserId,
    pub redirect_uri: String,
    pub code_challenge: String,
    pub scope: ScopeSet,
    pub resource: String,
    pub created_at: UnixTime,
    pub expires_at: UnixTime,
    pub consumed_at: Option<UnixTime>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodeRedemption {
    /// This call consumed the code.
    Redeemed(CodeRecord),
    /// The code had been consumed before: a replay.
    Replayed(CodeRecord),
    Unknown,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshRecord {
    pub token_hash: String,
    pub grant_id: String,
    pub organization_id: OrgId,
    pub client_id: String,
    pub scope: ScopeSet,
    pub resource: String,
    pub created_at: UnixTime,
    pub expires_at: UnixTime,
    pub rotated_at: Option<UnixTime>,
    pub replaced_by: Option<String>,
    pub revoked_at: Option<UnixTime>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigningKeyRecord {
    pub kid: String,
    pub alg: String,
    pub public_jwk: String,
    pub private_ciphertext: String,
    pub private_key_id: String,
    pub created_at: UnixTime,
    pub retired_at: Option<UnixTime>,
}

/// Rows one housekeeping pass deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Purged {
    pub sessions: u64,
    pub codes: u64,
    pub refresh_tokens: u64,
    pub grants: u64,
}

#[async_trait]
pub trait OAuthStore: Send + Sync {
    // Clients ---------------------------------------------------------------------------------
    async fn create_client(&self, client: &ClientRecord) -> Result<(), StoreError>;
    async fn client(&self, id: &str) -> Result<Option<ClientRecord>, StoreError>;
    /// Replaces a client's metadata (RFC 7592 update); `false` when no enabled client has that id.
    async fn update_client_metadata(
        &self,
        id: &str,
        metadata: &serde_json::Value,
        now: UnixTime,
    ) -> Result<bool, StoreError>;
    /// Disables a client and revokes every grant made to it.
    async fn disable_client(&self, id: &str, now: UnixTime) -> Result<bool, StoreError>;
    /// Records use and pushes back the expiry of unused clients.
    async fn touch_client(
        &self,
        id: &str,
        now: UnixTime,
        expires_at: Option<UnixTime>,
    ) -> Result<(), StoreError>;
    /// Inserts or refreshes a metadata-document client.
    async fn upsert_cimd_client(
        &self,
        id: &str,
        metadata: &serde_json::Value,
        now: UnixTime,
        expires_at: UnixTime,
    ) -> Result<(), StoreError>;
    /// Deletes clients past their expiry that hold no live grant: unused dynamically registered
    /// ones, and metadata-document ones whose cached copy went stale (fetched again on use).
    async fn purge_unused_clients(&self, now: UnixTime) -> Result<u64, StoreError>;

    // Grants ----------------------------------------------------------------------------------
    /// The live grant of (user, org, client), updated to `scope` and `resource`, or a new one.
    async fn upsert_grant(
        &self,
        org: &OrgId,
        user: &UserId,
        client_id: &str,
        scope: &ScopeSet,
        resource: &str,
        now: UnixTime,
    ) -> Result<Grant, StoreError>;
    /// Makes every live grant of the client ask for consent again (its redirect URIs changed).
    async fn forget_consent(&self, client_id: &str) -> Result<u64, StoreError>;
    async fn live_grant_for(
        &self,
        org: &OrgId,
        user: &UserId,
        client_id: &str,
    ) -> Result<Option<Grant>, StoreError>;
    /// The grant if it, its user, organisation, membership and client are all still live.
    async fn live_grant(&self, org: &OrgId, grant_id: &str) -> Result<Option<Grant>, StoreError>;
    /// Revokes a grant and every refresh token derived from it.
    async fn revoke_grant(
        &self,
        org: &OrgId,
        grant_id: &str,
        now: UnixTime,
    ) -> Result<bool, StoreError>;
    async fn grants_of_user(&self, user: &UserId) -> Result<Vec<GrantView>, StoreError>;

    // Authorization codes ---------------------------------------------------------------------
    async fn insert_code(&self, code: &CodeRecord) -> Result<(), StoreError>;
    /// Reads a code without consuming it.
    async fn find_code(&self, code_hash: &str) -> Result<Option<CodeRecord>, StoreError>;
    /// Consumes a code in one conditional update; a second redemption reports a replay.
    async fn redeem_code(
        &self,
        code_hash: &str,
        now: UnixTime,
    ) -> Result<CodeRedemption, StoreError>;

    // Refresh tokens --------------------------------------------------------------------------
    async fn insert_refresh(&self, token: &RefreshRecord) -> Result<(), StoreError>;
    async fn refresh(&self, token_hash: &str) -> Result<Option<RefreshRecord>, StoreError>;
    /// Marks `old` rotated and stores `successor`, atomically; `false` if `old` was not live.
    async fn rotate_refresh(
        &self,
        old: &str,
        successor: &RefreshRecord,
        now: UnixTime,
    ) -> Result<bool, StoreError>;
    /// A retry of a rotation whose answer was lost: revokes the unused `previous` successor of
    /// `old` and stores `successor` instead; `false` when `previous` was already used.
    async fn retry_rotation(
        &self,
        old: &str,
        previous: &str,
        successor: &RefreshRecord,
        now: UnixTime,
    ) -> Result<bool, StoreError>;
    async fn revoke_refresh(&self, token_hash: &str, now: UnixTime) -> Result<bool, StoreError>;

    // Signing keys ----------------------------------------------------------------------------
    async fn insert_signing_key(&self, key: &SigningKeyRecord) -> Result<(), StoreError>;
    async fn signing_keys(&self) -> Result<Vec<SigningKeyRecord>, StoreError>;
    /// Retires every key but `kid` (they stay published until their tokens expire).
    async fn retire_signing_keys_except(&self, kid: &str, now: UnixTime) -> Result<(), StoreError>;
    /// Drops retired keys retired before `before`.
    async fn purge_signing_keys(&self, before: UnixTime) -> Result<u64, StoreError>;
    async fn reseal_signing_keys(&self, reseal: super::Resealer<'_>) -> Result<usize, StoreError>;

    // Browser sessions --------------------------------------------------------------------------
    async fn load_session(&self, id: &str, now: UnixTime) -> Result<Option<String>, StoreError>;
    async fn save_session(
        &self,
        id: &str,
        data: &str,
        expires_at: UnixTime,
    ) -> Result<(), StoreError>;
    async fn delete_session(&self, id: &str) -> Result<(), StoreError>;

    // Rate limits -----------------------------------------------------------------------------
    /// Counts a hit in `bucket` for the window starting at `window_start`; returns the count.
    async fn rate_hit(&self, bucket: &str, window_start: UnixTime) -> Result<i64, StoreError>;
    async fn purge_rate_limits(&self, before: UnixTime) -> Result<u64, StoreError>;

    /// Deletes what can no longer be used: expired browser sessions, authorization codes and
    /// refresh tokens past their expiry, and grants revoked before `revoked_before` (with their
    /// codes and tokens).
    async fn purge_expired(
        &self,
        now: UnixTime,
        revoked_before: UnixTime,
    ) -> Result<Purged, StoreError>;
}
