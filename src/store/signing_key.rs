//! The authorization server's JWT signing keys: public half as a JWK, private half sealed by the
//! vault. Retired keys stay published until every token they signed has expired.

use async_trait::async_trait;

use super::{PgStore, Resealer, SqliteStore, StoreError, reseal_all};
use crate::clock::UnixTime;

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct SigningKeyRecord {
    pub kid: String,
    pub alg: String,
    pub public_jwk: String,
    pub private_ciphertext: String,
    pub private_key_id: String,
    pub created_at: UnixTime,
    pub retired_at: Option<UnixTime>,
}

#[async_trait]
pub trait SigningKeyStore: Send + Sync {
    async fn insert_signing_key(&self, key: &SigningKeyRecord) -> Result<(), StoreError>;
    async fn signing_keys(&self) -> Result<Vec<SigningKeyRecord>, StoreError>;
    /// Retires every key but `kid` (they stay published until their tokens expire).
    async fn retire_signing_keys_except(&self, kid: &str, now: UnixTime) -> Result<(), StoreError>;
    /// Drops retired keys retired before `before`.
    async fn purge_signing_keys(&self, before: UnixTime) -> Result<u64, StoreError>;
    /// Re-encrypts every private half that `reseal` rewrites, in one transaction.
    async fn reseal_signing_keys(&self, reseal: Resealer<'_>) -> Result<usize, StoreError>;
}

const INSERT: &str = "\
INSERT INTO signing_keys
    (kid, alg, public_jwk, private_ciphertext, private_key_id, created_at, retired_at)
VALUES ($1, $2, $3, $4, $5, $6, $7)";

const ALL: &str = "\
SELECT kid, alg, public_jwk, private_ciphertext, private_key_id, created_at, retired_at
FROM signing_keys ORDER BY created_at DESC, kid";

const RETIRE_OTHERS: &str = "\
UPDATE signing_keys SET retired_at = $1 WHERE kid <> $2 AND retired_at IS NULL";

const PURGE: &str = "\
DELETE FROM signing_keys WHERE retired_at IS NOT NULL AND retired_at < $1";

const RESEAL: &str = "\
UPDATE signing_keys SET private_ciphertext = $1, private_key_id = $2 WHERE kid = $3";

macro_rules! signing_key_store {
    ($store:ty) => {
        #[async_trait]
        impl SigningKeyStore for $store {
            #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.insert_signing_key", otel.kind = "client", db.operation.name = "insert_signing_key", db.system.name = Self::DB_SYSTEM))]
            async fn insert_signing_key(&self, k: &SigningKeyRecord) -> Result<(), StoreError> {
                sqlx::query(INSERT)
                    .bind(&k.kid)
                    .bind(&k.alg)
                    .bind(&k.public_jwk)
                    .bind(&k.private_ciphertext)
                    .bind(&k.private_key_id)
                    .bind(k.created_at)
                    .bind(k.retired_at)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.signing_keys", otel.kind = "client", db.operation.name = "signing_keys", db.system.name = Self::DB_SYSTEM))]
            async fn signing_keys(&self) -> Result<Vec<SigningKeyRecord>, StoreError> {
                Ok(sqlx::query_as(ALL).fetch_all(&self.pool).await?)
            }

            #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.retire_signing_keys_except", otel.kind = "client", db.operation.name = "retire_signing_keys_except", db.system.name = Self::DB_SYSTEM))]
            async fn retire_signing_keys_except(
                &self,
                kid: &str,
                now: UnixTime,
            ) -> Result<(), StoreError> {
                sqlx::query(RETIRE_OTHERS)
                    .bind(now)
                    .bind(kid)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.purge_signing_keys", otel.kind = "client", db.operation.name = "purge_signing_keys", db.system.name = Self::DB_SYSTEM))]
            async fn purge_signing_keys(&self, before: UnixTime) -> Result<u64, StoreError> {
                let done = sqlx::query(PURGE).bind(before).execute(&self.pool).await?;
                Ok(done.rows_affected())
            }

            #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.reseal_signing_keys", otel.kind = "client", db.operation.name = "reseal_signing_keys", db.system.name = Self::DB_SYSTEM))]
            async fn reseal_signing_keys(&self, reseal: Resealer<'_>) -> Result<usize, StoreError> {
                Ok(reseal_all!(
                    self.pool, reseal,
                    ALL => SigningKeyRecord,
                    |k| (&k.private_ciphertext, &k.private_key_id),
                    RESEAL, [&k.kid],
                ))
            }
        }
    };
}

signing_key_store!(SqliteStore);
signing_key_store!(PgStore);
