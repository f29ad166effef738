//! Persistence behind one `Store` trait, with SQLite (embedded default) and PostgreSQL (several
//! replicas) implementations sharing the same SQL text (`$N` placeholders work on both).
//!
//! Tenant isolation is structural: every method that touches tenant data takes the `OrgId` and its
//! SQL names `organization_id` in the WHERE clause. There is no way to read a credential by id alone.

mod exports;
mod models;
mod oauth;
mod postgres;
mod sql;
mod sql_exports;
mod sql_oauth;
mod sqlite;

use std::sync::Arc;

use async_trait::async_trait;

pub use exports::*;
pub use models::*;
pub use oauth::*;
pub use postgres::PgStore;
pub use sqlite::SqliteStore;

use crate::clock::UnixTime;
use crate::crypto::{Sealed, VaultError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A uniqueness rule was violated; the message says which, in words.
    #[error("{0}")]
    Conflict(String),
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error(transparent)]
    Vault(#[from] VaultError),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

impl StoreError {
    fn is_unique_violation(err: &sqlx::Error) -> bool {
        matches!(err, sqlx::Error::Database(db) if db.is_unique_violation())
    }
}

/// Re-encrypts one stored ciphertext: `(ciphertext, key_id) -> Some(new)` or `None` if current.
pub type Resealer<'a> =
    &'a (dyn Fn(&str, &str) -> Result<Option<Sealed>, VaultError> + Send + Sync);

#[async_trait]
pub trait Store: OAuthStore + ExportStore + Send + Sync + 'static {
    fn backend(&self) -> Backend;

    /// Applies the embedded migrations; safe to run on every start.
    async fn migrate(&self) -> Result<(), StoreError>;
    async fn ping(&self) -> Result<(), StoreError>;

    // Organisations ---------------------------------------------------------------------------
    async fn create_org(&self, name: &str, now: UnixTime) -> Result<Organization, StoreError>;
    async fn list_orgs(&self) -> Result<Vec<Organization>, StoreError>;
    /// Finds an organisation by id or, failing that, by exact name.
    async fn find_org(&self, id_or_name: &str) -> Result<Option<Organization>, StoreError>;
    async fn set_org_disabled(&self, org: &OrgId, disabled: bool) -> Result<(), StoreError>;

    // Users and memberships -------------------------------------------------------------------
    /// Creates a user and its first membership in one transaction.
    async fn create_user(
        &self,
        org: &OrgId,
        email: &Email,
        password_hash: &str,
        role: Role,
        now: UnixTime,
    ) -> Result<User, StoreError>;
    async fn add_membership(
        &self,
        org: &OrgId,
        user: &UserId,
        role: Role,
        now: UnixTime,
    ) -> Result<(), StoreError>;
    async fn find_user_by_email(
        &self,
        email: &Email,
    ) -> Result<Option<UserCredentials>, StoreError>;
    async fn list_members(&self, org: &OrgId) -> Result<Vec<OrgMember>, StoreError>;
    /// The organisations a user belongs to (disabled ones included, flagged).
    async fn memberships(&self, user: &UserId) -> Result<Vec<Membership>, StoreError>;
    async fn set_user_disabled(&self, user: &UserId, disabled: bool) -> Result<(), StoreError>;
    async fn set_user_password(&self, user: &UserId, password_hash: &str)
    -> Result<(), StoreError>;

    // Clari credentials -----------------------------------------------------------------------
    async fn put_clari_credential(
        &self,
        org: &OrgId,
        sealed: &Sealed,
        key_hint: &str,
        base_url: Option<&str>,
        now: UnixTime,
    ) -> Result<(), StoreError>;
    async fn clari_credential(&self, org: &OrgId) -> Result<Option<ClariCredential>, StoreError>;
    /// Re-encrypts every stored Clari key that `reseal` rewrites, in one transaction; returns how
    /// many rows changed. Either all are rewritten or none (a failure rolls back).
    async fn reseal_clari_credentials(
        &self,
        reseal: Resealer<'_>,
        now: UnixTime,
    ) -> Result<usize, StoreError>;

    // API keys --------------------------------------------------------------------------------
    async fn create_api_key(&self, key: &NewApiKey) -> Result<(), StoreError>;
    async fn list_api_keys(&self, org: &OrgId) -> Result<Vec<ApiKey>, StoreError>;
    /// The organisation that owns an API key id (for operator commands given only the id).
    async fn api_key_org(&self, id: &ApiKeyId) -> Result<Option<OrgId>, StoreError>;
    /// Revokes a key; `Ok(false)` when it was already revoked.
    async fn revoke_api_key(
        &self,
        org: &OrgId,
        id: &ApiKeyId,
        now: UnixTime,
    ) -> Result<bool, StoreError>;
    /// Resolves a presented key (by its SHA-256) to a live principal: key not revoked or expired,
    /// user and organisation enabled, user still a member. Records the use (at most once a minute).
    async fn authenticate_api_key(
        &self,
        key_hash: &str,
        now: UnixTime,
    ) -> Result<Option<ApiKeyPrincipal>, StoreError>;
}

/// Opens the database named by `url` (creating a SQLite file and its directory when needed) and
/// applies migrations.
pub async fn connect(url: &str) -> Result<Arc<dyn Store>, StoreError> {
    let store: Arc<dyn Store> = if url.starts_with("sqlite:") {
        Arc::new(SqliteStore::connect(url).await?)
    } else {
        Arc::new(PgStore::connect(url).await?)
    };
    store.migrate().await?;
    Ok(store)
}
