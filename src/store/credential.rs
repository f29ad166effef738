//! Each organisation's Clari API key, sealed by the vault: ciphertext and the last four characters
//! only. There is no way to read one without naming the organisation.

use async_trait::async_trait;

use super::{ClariCredential, OrgId, PgStore, Resealer, SqliteStore, StoreError, reseal_all};
use crate::clock::UnixTime;
use crate::crypto::Sealed;

#[async_trait]
pub trait CredentialStore: Send + Sync {
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
}

/// Sets or replaces the key; no row is written when the organisation does not exist.
const UPSERT: &str = "\
INSERT INTO clari_credentials
    (organization_id, ciphertext, key_id, key_hint, base_url, created_at, rotated_at)
SELECT id, $2, $3, $4, $5, $6, $6 FROM organizations WHERE id = $1
ON CONFLICT (organization_id) DO UPDATE SET
    ciphertext = excluded.ciphertext, key_id = excluded.key_id,
    key_hint = excluded.key_hint, base_url = excluded.base_url,
    rotated_at = excluded.rotated_at";

const GET: &str = "\
SELECT organization_id, ciphertext, key_id, key_hint, base_url, created_at, rotated_at
FROM clari_credentials WHERE organization_id = $1";

const ALL: &str = "\
SELECT organization_id, ciphertext, key_id, key_hint, base_url, created_at, rotated_at
FROM clari_credentials ORDER BY organization_id";

/// Same organisation, same secret: only the envelope changes, so `rotated_at` (when the Clari key
/// itself was replaced) stays as it was.
const RESEAL: &str = "\
UPDATE clari_credentials SET ciphertext = $1, key_id = $2
WHERE organization_id = $3 AND key_id = $4";

macro_rules! credential_store {
    ($store:ty) => {
        #[async_trait]
        impl CredentialStore for $store {
            #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.put_clari_credential", otel.kind = "client", db.operation.name = "put_clari_credential", db.system.name = Self::DB_SYSTEM))]
            async fn put_clari_credential(
                &self,
                org: &OrgId,
                sealed: &Sealed,
                key_hint: &str,
                base_url: Option<&str>,
                now: UnixTime,
            ) -> Result<(), StoreError> {
                let done = sqlx::query(UPSERT)
                    .bind(org.as_str())
                    .bind(&sealed.ciphertext)
                    .bind(&sealed.key_id)
                    .bind(key_hint)
                    .bind(base_url)
                    .bind(now)
                    .execute(&self.pool)
                    .await?;
                StoreError::found(done.rows_affected(), "organisation")
            }

            #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.clari_credential", otel.kind = "client", db.operation.name = "clari_credential", db.system.name = Self::DB_SYSTEM))]
            async fn clari_credential(
                &self,
                org: &OrgId,
            ) -> Result<Option<ClariCredential>, StoreError> {
                Ok(sqlx::query_as(GET)
                    .bind(org.as_str())
                    .fetch_optional(&self.pool)
                    .await?)
            }

            #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.reseal_clari_credentials", otel.kind = "client", db.operation.name = "reseal_clari_credentials", db.system.name = Self::DB_SYSTEM))]
            async fn reseal_clari_credentials(
                &self,
                reseal: Resealer<'_>,
                _now: UnixTime,
            ) -> Result<usize, StoreError> {
                Ok(reseal_all!(
                    self.pool, reseal,
                    ALL => ClariCredential,
                    |row| (&row.ciphertext, &row.key_id),
                    RESEAL, [row.organization_id.as_str(), &row.key_id],
                ))
            }
        }
    };
}

credential_store!(SqliteStore);
credential_store!(PgStore);
