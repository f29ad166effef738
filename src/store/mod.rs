//! Persistence: one trait per aggregate (organisations, users, Clari credentials, API keys,
//! clients, grants, codes, refresh tokens, signing keys, browser sessions, rate limits, exports,
//! the audit trail, tasks, pre-warming, machine clients and one-time JWT ids),
//! each in its own file with its SQL as constants and one macro that implements it for SQLite
//! (embedded default) and PostgreSQL (several replicas); `$N` placeholders work on both.
//! [`Store`] is their sum.
//!
//! Tenant isolation is structural: every method that touches tenant data takes the `OrgId` and its
//! SQL names `organization_id` in the WHERE clause. There is no way to read a credential by id
//! alone.
//! The exceptions are deliberate: lookups by a secret's digest, which find the
//! organisation (codes, refresh tokens, API keys, SCIM tokens), what an OAuth client does to
//! every organisation's grants (`forget_consent_everywhere`, disabling a client), and
//! housekeeping purges.

mod api_key;
mod audit;
pub mod changes;
mod client;
mod code;
mod credential;
mod export;
mod grant;
mod invitation;
mod mfa;
mod models;
mod org;
mod postgres;
mod prewarm;
mod refresh;
mod scim;
mod service;
mod session;
mod signing_key;
mod sqlite;
mod sso;
mod task;
mod user;

use std::sync::Arc;

use async_trait::async_trait;

pub use api_key::{ApiKeyStore, LAST_USED_GRANULARITY};
pub use audit::{
    AuditCheckpoint, AuditFilter, AuditKeyRecord, AuditRecord, AuditStore, Chainer, NewAuditEvent,
};
pub use client::{ClientKind, ClientRecord, ClientStore};
pub use code::{CodeRecord, CodeRedemption, CodeStore};
pub use credential::CredentialStore;
pub use export::*;
pub use grant::{Grant, GrantStore, GrantView};
pub use invitation::{AcceptError, InvitationStore, MAX_PENDING_INVITATIONS, NewInvitation};
pub use mfa::{MfaStore, TotpRecord};
pub use models::*;
pub use org::{ActivitySummary, Killed, OrgStore};
pub use postgres::PgStore;
pub use prewarm::PrewarmStore;
pub use refresh::{RefreshRecord, RefreshStore};
pub use scim::{
    MAX_SCIM_TOKENS, MAX_SCIM_USERS, ScimFilter, ScimStore, ScimToken, ScimUserRow, ScimUserWrite,
};
pub use service::{MAX_SERVICE_CLIENTS, ServiceAuth, ServiceClient, ServiceClientStore};
pub use session::{BrowserSessionStore, RateLimitStore, SessionRow};
pub use signing_key::{SigningKeyRecord, SigningKeyStore};
pub use sqlite::SqliteStore;
pub use sso::{SsoConnection, SsoStore};
pub use task::{TaskRecord, TaskStatus, TaskStore};
pub use user::UserStore;

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
    /// A uniqueness violation in words (`what` says which rule), any other error as it is.
    fn conflict_or(err: sqlx::Error, what: impl FnOnce() -> String) -> Self {
        match &err {
            sqlx::Error::Database(db) if db.is_unique_violation() => Self::Conflict(what()),
            _ => err.into(),
        }
    }

    /// `NotFound(what)` when a statement that must touch a row touched none.
    fn found(rows_affected: u64, what: &'static str) -> Result<(), Self> {
        if rows_affected == 0 {
            Err(Self::NotFound(what))
        } else {
            Ok(())
        }
    }
}

/// Re-encrypts sealed values in one transaction on `$pool`: reads every `$row` that `$select`
/// returns, asks `reseal` about each `(ciphertext, vault key id)` that `|pattern| (..)` picks out,
/// and writes each rewritten one back with `$update` (`$1` new ciphertext, `$2` new key id, then
/// the listed binds naming the row); the count. Either every row is rewritten or none.
macro_rules! reseal_all {
    (
        $pool:expr, $reseal:expr,
        $select:expr => $row:ty,
        |$each:pat_param| ($ciphertext:expr, $key_id:expr),
        $update:expr, [$($id:expr),+ $(,)?] $(,)?
    ) => {{
        let mut tx = $pool.begin().await?;
        let rows: Vec<$row> = sqlx::query_as($select).fetch_all(&mut *tx).await?;
        let mut n = 0;
        for $each in rows {
            let Some(sealed) = ($reseal)($ciphertext, $key_id)? else {
                continue;
            };
            sqlx::query($update)
                .bind(&sealed.ciphertext)
                .bind(&sealed.key_id)
                $(.bind($id))+
                .execute(&mut *tx)
                .await?;
            n += 1;
        }
        tx.commit().await?;
        n
    }};
}
pub(crate) use reseal_all;

/// Re-encrypts one stored ciphertext: `(ciphertext, key_id) -> Some(new)` or `None` if current.
pub type Resealer<'a> =
    &'a (dyn Fn(&str, &str) -> Result<Option<Sealed>, VaultError> + Send + Sync);

/// The whole store: one trait per aggregate, and what spans them. Code holds an
/// `Arc<dyn Store>`; every aggregate's methods are callable on it.
#[async_trait]
pub trait Store:
    OrgStore
    + UserStore
    + CredentialStore
    + ApiKeyStore
    + ClientStore
    + GrantStore
    + CodeStore
    + RefreshStore
    + SigningKeyStore
    + BrowserSessionStore
    + RateLimitStore
    + ExportStore
    + AuditStore
    + TaskStore
    + PrewarmStore
    + InvitationStore
    + ScimStore
    + MfaStore
    + SsoStore
    + ServiceClientStore
    + Send
    + Sync
    + 'static
{
    fn backend(&self) -> Backend;

    /// This process's change counters: what cached store values are checked against.
    fn changes(&self) -> &changes::Changes;

    /// Applies the embedded migrations; safe to run on every start.
    async fn migrate(&self) -> Result<(), StoreError>;
    async fn ping(&self) -> Result<(), StoreError>;

    /// Deletes what can no longer be used: expired browser sessions, authorization codes,
    /// refresh tokens and JWT ids past their expiry, and grants and machine clients revoked before
    /// `revoked_before` (grants with their codes and tokens).
    async fn purge_expired(
        &self,
        now: UnixTime,
        revoked_before: UnixTime,
    ) -> Result<Purged, StoreError>;
}

/// Rows one housekeeping pass deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Purged {
    pub sessions: u64,
    pub codes: u64,
    pub refresh_tokens: u64,
    pub grants: u64,
    pub invitations: u64,
    /// JWT ids past the expiry of the JWT they came from.
    pub jtis: u64,
    /// Machine clients revoked before `revoked_before`.
    pub service_clients: u64,
}

const PURGE_SESSIONS: &str = "DELETE FROM web_sessions WHERE expires_at <= $1";
const PURGE_REVOKED_GRANTS: &str =
    "DELETE FROM grants WHERE revoked_at IS NOT NULL AND revoked_at < $1";
const PURGE_CODES: &str = "DELETE FROM authorization_codes WHERE expires_at <= $1";
const PURGE_REFRESH_TOKENS: &str = "DELETE FROM refresh_tokens WHERE expires_at <= $1";
/// Past their expiry (used or not) or withdrawn: the audit trail keeps what happened.
const PURGE_INVITATIONS: &str =
    "DELETE FROM invitations WHERE expires_at <= $1 OR revoked_at <= $1";
const PURGE_JTIS: &str = "DELETE FROM seen_jtis WHERE expires_at <= $1";
const PURGE_REVOKED_SERVICE_CLIENTS: &str =
    "DELETE FROM service_clients WHERE revoked_at IS NOT NULL AND revoked_at < $1";

macro_rules! store {
    ($store:ty, $backend:expr) => {
        #[async_trait]
        impl Store for $store {
            fn backend(&self) -> Backend {
                $backend
            }

            fn changes(&self) -> &changes::Changes {
                &self.changes
            }

            #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.migrate", otel.kind = "client", db.operation.name = "migrate", db.system.name = Self::DB_SYSTEM))]
            async fn migrate(&self) -> Result<(), StoreError> {
                Self::migrator().run(&self.pool).await?;
                OrgStore::backfill_org_keys(self).await?;
                Ok(())
            }

            #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.ping", otel.kind = "client", db.operation.name = "ping", db.system.name = Self::DB_SYSTEM))]
            async fn ping(&self) -> Result<(), StoreError> {
                sqlx::query("SELECT 1").execute(&self.pool).await?;
                Ok(())
            }

            #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.purge_expired", otel.kind = "client", db.operation.name = "purge_expired", db.system.name = Self::DB_SYSTEM))]
            async fn purge_expired(
                &self,
                now: UnixTime,
                revoked_before: UnixTime,
            ) -> Result<Purged, StoreError> {
                let mut tx = self.pool.begin().await?;
                let mut purge = async |sql: &'static str, before: UnixTime| {
                    sqlx::query(sql)
                        .bind(before)
                        .execute(&mut *tx)
                        .await
                        .map(|done| done.rows_affected())
                };
                let purged = Purged {
                    sessions: purge(PURGE_SESSIONS, now).await?,
                    grants: purge(PURGE_REVOKED_GRANTS, revoked_before).await?,
                    codes: purge(PURGE_CODES, now).await?,
                    refresh_tokens: purge(PURGE_REFRESH_TOKENS, now).await?,
                    invitations: purge(PURGE_INVITATIONS, now).await?,
                    jtis: purge(PURGE_JTIS, now).await?,
                    service_clients: purge(PURGE_REVOKED_SERVICE_CLIENTS, revoked_before).await?,
                };
                tx.commit().await?;
                Ok(purged)
            }
        }
    };
}

store!(SqliteStore, Backend::Sqlite);
store!(PgStore, Backend::Postgres);

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
