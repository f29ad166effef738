//! The second sign-in factor of local accounts: the TOTP secret (sealed by the vault), the last
//! step a code was accepted for, and recovery codes (SHA-256); and the organisation's rule that
//! its admins must have one.

use async_trait::async_trait;

use super::{OrgId, PgStore, Resealer, SqliteStore, StoreError, UserId, reseal_all};
use crate::clock::UnixTime;

/// A person's enabled TOTP factor.
#[derive(Clone, sqlx::FromRow)]
pub struct TotpRecord {
    pub ciphertext: String,
    pub key_id: String,
    pub last_step: Option<i64>,
}

impl std::fmt::Debug for TotpRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TotpRecord")
            .field("key_id", &self.key_id)
            .field("last_step", &self.last_step)
            .finish_non_exhaustive()
    }
}

#[async_trait]
pub trait MfaStore: Send + Sync {
    /// The enabled TOTP factor, if the person has one.
    async fn totp_of(&self, user: &UserId) -> Result<Option<TotpRecord>, StoreError>;
    /// Turns the factor on with a new secret, `step` as the last one used (the enrolment code
    /// cannot be replayed at sign-in), and new recovery codes replacing any old ones; one
    /// transaction.
    async fn enable_totp(
        &self,
        user: &UserId,
        sealed: (&str, &str),
        step: i64,
        recovery_digests: &[String],
        now: UnixTime,
    ) -> Result<(), StoreError>;
    /// Turns the factor off and drops the recovery codes.
    async fn disable_totp(&self, user: &UserId) -> Result<(), StoreError>;
    /// Records `step` as used if it is later than the last one used; `false` is a replay (RFC
    /// 6238 §5.2), whichever replica saw the first.
    async fn use_totp_step(&self, user: &UserId, step: i64) -> Result<bool, StoreError>;
    /// Spends an unused recovery code; `false` when it is unknown or spent.
    async fn use_recovery_code(
        &self,
        user: &UserId,
        digest: &str,
        now: UnixTime,
    ) -> Result<bool, StoreError>;
    async fn recovery_codes_left(&self, user: &UserId) -> Result<i64, StoreError>;
    /// Re-encrypts every TOTP secret under the vault's primary key.
    async fn reseal_totp_secrets(&self, reseal: Resealer<'_>) -> Result<usize, StoreError>;
    async fn require_admin_mfa(&self, org: &OrgId) -> Result<bool, StoreError>;
    async fn set_require_admin_mfa(&self, org: &OrgId, required: bool) -> Result<(), StoreError>;
}

const TOTP_OF: &str = "\
SELECT totp_secret AS ciphertext, totp_key_id AS key_id, totp_last_step AS last_step
FROM users WHERE id = $1 AND totp_enabled_at IS NOT NULL";

const ENABLE: &str = "\
UPDATE users SET totp_secret = $2, totp_key_id = $3, totp_enabled_at = $4, totp_last_step = $5
WHERE id = $1";

const DISABLE: &str = "\
UPDATE users SET totp_secret = NULL, totp_key_id = NULL, totp_enabled_at = NULL,
    totp_last_step = NULL
WHERE id = $1";

const DROP_CODES: &str = "DELETE FROM recovery_codes WHERE user_id = $1";

const ADD_CODE: &str = "INSERT INTO recovery_codes (user_id, code_hash) VALUES ($1, $2)";

/// One statement: of two concurrent uses of the same step, one updates the row.
const USE_STEP: &str = "\
UPDATE users SET totp_last_step = $2
WHERE id = $1 AND totp_enabled_at IS NOT NULL AND (totp_last_step IS NULL OR totp_last_step < $2)";

const USE_CODE: &str = "\
UPDATE recovery_codes SET used_at = $3
WHERE user_id = $1 AND code_hash = $2 AND used_at IS NULL";

const CODES_LEFT: &str =
    "SELECT COUNT(*) FROM recovery_codes WHERE user_id = $1 AND used_at IS NULL";

const SEALED: &str = "\
SELECT id, totp_secret, totp_key_id FROM users WHERE totp_secret IS NOT NULL";

const RESEAL: &str = "UPDATE users SET totp_secret = $1, totp_key_id = $2 WHERE id = $3";

const REQUIRED: &str = "SELECT require_admin_mfa FROM organizations WHERE id = $1";

const SET_REQUIRED: &str = "UPDATE organizations SET require_admin_mfa = $2 WHERE id = $1";

macro_rules! mfa_store {
    ($store:ty) => {
        #[async_trait]
        impl MfaStore for $store {
            #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.totp_of", otel.kind = "client", db.operation.name = "totp_of", db.system.name = Self::DB_SYSTEM))]
            async fn totp_of(&self, user: &UserId) -> Result<Option<TotpRecord>, StoreError> {
                Ok(sqlx::query_as(TOTP_OF)
                    .bind(user.as_str())
                    .fetch_optional(&self.pool)
                    .await?)
            }

            #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.enable_totp", otel.kind = "client", db.operation.name = "enable_totp", db.system.name = Self::DB_SYSTEM))]
            async fn enable_totp(
                &self,
                user: &UserId,
                sealed: (&str, &str),
                step: i64,
                recovery_digests: &[String],
                now: UnixTime,
            ) -> Result<(), StoreError> {
                let mut tx = self.pool.begin().await?;
                let done = sqlx::query(ENABLE)
                    .bind(user.as_str())
                    .bind(sealed.0)
                    .bind(sealed.1)
                    .bind(now)
                    .bind(step)
                    .execute(&mut *tx)
                    .await?;
                StoreError::found(done.rows_affected(), "user")?;
                sqlx::query(DROP_CODES)
                    .bind(user.as_str())
                    .execute(&mut *tx)
                    .await?;
                for digest in recovery_digests {
                    sqlx::query(ADD_CODE)
                        .bind(user.as_str())
                        .bind(digest)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                Ok(())
            }

            #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.disable_totp", otel.kind = "client", db.operation.name = "disable_totp", db.system.name = Self::DB_SYSTEM))]
            async fn disable_totp(&self, user: &UserId) -> Result<(), StoreError> {
                let mut tx = self.pool.begin().await?;
                for sql in [DISABLE, DROP_CODES] {
                    sqlx::query(sql)
                        .bind(user.as_str())
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                Ok(())
            }

            #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.use_totp_step", otel.kind = "client", db.operation.name = "use_totp_step", db.system.name = Self::DB_SYSTEM))]
            async fn use_totp_step(&self, user: &UserId, step: i64) -> Result<bool, StoreError> {
                let done = sqlx::query(USE_STEP)
                    .bind(user.as_str())
                    .bind(step)
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected() == 1)
            }

            #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.use_recovery_code", otel.kind = "client", db.operation.name = "use_recovery_code", db.system.name = Self::DB_SYSTEM))]
            async fn use_recovery_code(
                &self,
                user: &UserId,
                digest: &str,
                now: UnixTime,
            ) -> Result<bool, StoreError> {
                let done = sqlx::query(USE_CODE)
                    .bind(user.as_str())
                    .bind(digest)
                    .bind(now)
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected() == 1)
            }

            #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.recovery_codes_left", otel.kind = "client", db.operation.name = "recovery_codes_left", db.system.name = Self::DB_SYSTEM))]
            async fn recovery_codes_left(&self, user: &UserId) -> Result<i64, StoreError> {
                let (n,): (i64,) = sqlx::query_as(CODES_LEFT)
                    .bind(user.as_str())
                    .fetch_one(&self.pool)
                    .await?;
                Ok(n)
            }

            #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.reseal_totp_secrets", otel.kind = "client", db.operation.name = "reseal_totp_secrets", db.system.name = Self::DB_SYSTEM))]
            async fn reseal_totp_secrets(&self, reseal: Resealer<'_>) -> Result<usize, StoreError> {
                Ok(reseal_all!(
                    self.pool, reseal,
                    SEALED => (String, String, String),
                    |(id, ciphertext, key_id)| (&ciphertext, &key_id),
                    RESEAL, [&id],
                ))
            }

            #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.require_admin_mfa", otel.kind = "client", db.operation.name = "require_admin_mfa", db.system.name = Self::DB_SYSTEM))]
            async fn require_admin_mfa(&self, org: &OrgId) -> Result<bool, StoreError> {
                let row: Option<(bool,)> = sqlx::query_as(REQUIRED)
                    .bind(org.as_str())
                    .fetch_optional(&self.pool)
                    .await?;
                Ok(row.is_some_and(|(r,)| r))
            }

            #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.set_require_admin_mfa", otel.kind = "client", db.operation.name = "set_require_admin_mfa", db.system.name = Self::DB_SYSTEM))]
            async fn set_require_admin_mfa(
                &self,
                org: &OrgId,
                required: bool,
            ) -> Result<(), StoreError> {
                let done = sqlx::query(SET_REQUIRED)
                    .bind(org.as_str())
                    .bind(required)
                    .execute(&self.pool)
                    .await?;
                StoreError::found(done.rows_affected(), "organisation")
            }
        }
    };
}

mfa_store!(SqliteStore);
mfa_store!(PgStore);
