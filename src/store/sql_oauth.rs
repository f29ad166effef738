//! SQL of the authorization server's storage, shared by both backends (see `sql.rs`).

use super::oauth::*;
use super::sql::parse_stored_scopes;
use super::{OrgId, UserId};

#[derive(sqlx::FromRow)]
pub(super) struct ClientRow {
    pub id: String,
    pub kind: String,
    pub metadata: String,
    pub secret_hash: Option<String>,
    pub registration_token_hash: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub last_used_at: Option<i64>,
    pub expires_at: Option<i64>,
    pub disabled: bool,
}

impl From<ClientRow> for ClientRecord {
    fn from(r: ClientRow) -> Self {
        ClientRecord {
            id: r.id,
            kind: if r.kind == "cimd" {
                ClientKind::Cimd
            } else {
                ClientKind::Dcr
            },
            metadata: serde_json::from_str(&r.metadata).unwrap_or(serde_json::Value::Null),
            secret_hash: r.secret_hash,
            registration_token_hash: r.registration_token_hash,
            created_at: r.created_at,
            updated_at: r.updated_at,
            last_used_at: r.last_used_at,
            expires_at: r.expires_at,
            disabled: r.disabled,
        }
    }
}

pub(super) const CLIENT_COLUMNS: &str = "id, kind, metadata, secret_hash, registration_token_hash, created_at, updated_at, last_used_at, expires_at, disabled";

#[derive(sqlx::FromRow)]
pub(super) struct GrantRow {
    pub id: String,
    pub organization_id: String,
    pub user_id: String,
    pub client_id: String,
    pub scope: String,
    pub resource: String,
    pub created_at: i64,
    pub updated_at: i64,
    pub revoked_at: Option<i64>,
    pub consent_remembered: bool,
}

impl From<GrantRow> for Grant {
    fn from(r: GrantRow) -> Self {
        Grant {
            id: r.id,
            organization_id: OrgId(r.organization_id),
            user_id: UserId(r.user_id),
            client_id: r.client_id,
            scope: parse_stored_scopes(&r.scope),
            resource: r.resource,
            created_at: r.created_at,
            updated_at: r.updated_at,
            revoked_at: r.revoked_at,
            consent_remembered: r.consent_remembered,
        }
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct GrantViewRow {
    pub id: String,
    pub organization_id: String,
    pub user_id: String,
    pub client_id: String,
    pub scope: String,
    pub resource: String,
    pub created_at: i64,
    pub updated_at: i64,
    pub revoked_at: Option<i64>,
    pub consent_remembered: bool,
    pub metadata: String,
    pub organization_name: String,
}

#[derive(sqlx::FromRow)]
pub(super) struct CodeRow {
    pub code_hash: String,
    pub grant_id: String,
    pub organization_id: String,
    pub client_id: String,
    pub user_id: String,
    pub redirect_uri: String,
    pub code_challenge: String,
    pub scope: String,
    pub resource: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub consumed_at: Option<i64>,
}

impl From<CodeRow> for CodeRecord {
    fn from(r: CodeRow) -> Self {
        CodeRecord {
            code_hash: r.code_hash,
            grant_id: r.grant_id,
            organization_id: OrgId(r.organization_id),
            client_id: r.client_id,
            user_id: UserId(r.user_id),
            redirect_uri: r.redirect_uri,
            code_challenge: r.code_challenge,
            scope: parse_stored_scopes(&r.scope),
            resource: r.resource,
            created_at: r.created_at,
            expires_at: r.expires_at,
            consumed_at: r.consumed_at,
        }
    }
}

pub(super) const CODE_COLUMNS: &str = "code_hash, grant_id, organization_id, client_id, user_id, redirect_uri, code_challenge, scope, resource, created_at, expires_at, consumed_at";

#[derive(sqlx::FromRow)]
pub(super) struct RefreshRow {
    pub token_hash: String,
    pub grant_id: String,
    pub organization_id: String,
    pub client_id: String,
    pub scope: String,
    pub resource: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub rotated_at: Option<i64>,
    pub replaced_by: Option<String>,
    pub revoked_at: Option<i64>,
}

impl From<RefreshRow> for RefreshRecord {
    fn from(r: RefreshRow) -> Self {
        RefreshRecord {
            token_hash: r.token_hash,
            grant_id: r.grant_id,
            organization_id: OrgId(r.organization_id),
            client_id: r.client_id,
            scope: parse_stored_scopes(&r.scope),
            resource: r.resource,
            created_at: r.created_at,
            expires_at: r.expires_at,
            rotated_at: r.rotated_at,
            replaced_by: r.replaced_by,
            revoked_at: r.revoked_at,
        }
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct SigningKeyRow {
    pub kid: String,
    pub alg: String,
    pub public_jwk: String,
    pub private_ciphertext: String,
    pub private_key_id: String,
    pub created_at: i64,
    pub retired_at: Option<i64>,
}

impl From<SigningKeyRow> for SigningKeyRecord {
    fn from(r: SigningKeyRow) -> Self {
        SigningKeyRecord {
            kid: r.kid,
            alg: r.alg,
            public_jwk: r.public_jwk,
            private_ciphertext: r.private_ciphertext,
            private_key_id: r.private_key_id,
            created_at: r.created_at,
            retired_at: r.retired_at,
        }
    }
}

macro_rules! impl_oauth_store {
    ($store:ty, $db:ty) => {
        async fn insert_refresh_token<'e, E>(ex: E, t: &$crate::store::RefreshRecord) -> Result<(), StoreError>
        where
            E: sqlx::Executor<'e, Database = $db>,
        {
            sqlx::query(
                "INSERT INTO refresh_tokens (token_hash, grant_id, organization_id, client_id, scope, resource, \
                   created_at, expires_at, rotated_at, replaced_by, revoked_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, NULL, NULL, NULL)",
            )
            .bind(&t.token_hash)
            .bind(&t.grant_id)
            .bind(t.organization_id.as_str())
            .bind(&t.client_id)
            .bind(t.scope.to_string())
            .bind(&t.resource)
            .bind(t.created_at)
            .bind(t.expires_at)
            .execute(ex)
            .await?;
            Ok(())
        }

        #[async_trait::async_trait]
        impl $crate::store::OAuthStore for $store {
            async fn create_client(&self, c: &$crate::store::ClientRecord) -> Result<(), StoreError> {
                sqlx::query(
                    "INSERT INTO oauth_clients (id, kind, metadata, secret_hash, registration_token_hash, \
                       created_at, updated_at, last_used_at, expires_at, disabled) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                )
                .bind(&c.id)
                .bind(c.kind.as_str())
                .bind(c.metadata.to_string())
                .bind(&c.secret_hash)
                .bind(&c.registration_token_hash)
                .bind(c.created_at)
                .bind(c.updated_at)
                .bind(c.last_used_at)
                .bind(c.expires_at)
                .bind(c.disabled)
                .execute(&self.pool)
                .await
                .map_err(|e| {
                    if StoreError::is_unique_violation(&e) {
                        StoreError::Conflict("a client with that id already exists".into())
                    } else {
                        e.into()
                    }
                })?;
                Ok(())
            }

            async fn client(&self, id: &str) -> Result<Option<$crate::store::ClientRecord>, StoreError> {
                use $crate::store::sql_oauth::{ClientRow, CLIENT_COLUMNS};
                let sql = sqlx::AssertSqlSafe(format!("SELECT {CLIENT_COLUMNS} FROM oauth_clients WHERE id = $1"));
                let row = sqlx::query_as::<_, ClientRow>(sql).bind(id).fetch_optional(&self.pool).await?;
                Ok(row.map(Into::into))
            }

            async fn update_client_metadata(&self, id: &str, metadata: &serde_json::Value, now: i64) -> Result<bool, StoreError> {
                let done = sqlx::query("UPDATE oauth_clients SET metadata = $1, updated_at = $2 WHERE id = $3 AND disabled = FALSE")
                    .bind(metadata.to_string())
                    .bind(now)
                    .bind(id)
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn disable_client(&self, id: &str, now: i64) -> Result<bool, StoreError> {
                let mut tx = self.pool.begin().await?;
                let done = sqlx::query("UPDATE oauth_clients SET disabled = TRUE, updated_at = $1 WHERE id = $2 AND disabled = FALSE")
                    .bind(now)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query("UPDATE grants SET revoked_at = $1 WHERE client_id = $2 AND revoked_at IS NULL")
                    .bind(now)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query("UPDATE refresh_tokens SET revoked_at = $1 WHERE client_id = $2 AND revoked_at IS NULL")
                    .bind(now)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(done.rows_affected() == 1)
            }

            async fn touch_client(&self, id: &str, now: i64, expires_at: Option<i64>) -> Result<(), StoreError> {
                sqlx::query(
                    "UPDATE oauth_clients SET last_used_at = $1, \
                       expires_at = CASE WHEN kind = 'dcr' THEN $2 ELSE expires_at END WHERE id = $3",
                )
                .bind(now)
                .bind(expires_at)
                .bind(id)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn upsert_cimd_client(&self, id: &str, metadata: &serde_json::Value, now: i64, expires_at: i64) -> Result<(), StoreError> {
                sqlx::query(
                    "INSERT INTO oauth_clients (id, kind, metadata, secret_hash, registration_token_hash, \
                       created_at, updated_at, last_used_at, expires_at, disabled) \
                     VALUES ($1, 'cimd', $2, NULL, NULL, $3, $3, NULL, $4, FALSE) \
                     ON CONFLICT (id) DO UPDATE SET metadata = excluded.metadata, \
                       updated_at = excluded.updated_at, expires_at = excluded.expires_at \
                     WHERE oauth_clients.kind = 'cimd'",
                )
                .bind(id)
                .bind(metadata.to_string())
                .bind(now)
                .bind(expires_at)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn purge_unused_clients(&self, now: i64) -> Result<u64, StoreError> {
                let done = sqlx::query(
                    "DELETE FROM oauth_clients WHERE expires_at IS NOT NULL AND expires_at < $1 \
                     AND NOT EXISTS (SELECT 1 FROM grants g WHERE g.client_id = oauth_clients.id AND g.revoked_at IS NULL)",
                )
                .bind(now)
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected())
            }

            async fn upsert_grant(
                &self,
                org: &$crate::store::OrgId,
                user: &$crate::store::UserId,
                client_id: &str,
                scope: &$crate::scope::ScopeSet,
                resource: &str,
                now: i64,
            ) -> Result<$crate::store::Grant, StoreError> {
                use $crate::store::sql_oauth::GrantRow;
                let mut tx = self.pool.begin().await?;
                let updated = sqlx::query_as::<_, GrantRow>(
                    "UPDATE grants SET scope = $1, resource = $2, updated_at = $3, consent_remembered = TRUE \
                     WHERE organization_id = $4 AND user_id = $5 AND client_id = $6 AND revoked_at IS NULL \
                     RETURNING id, organization_id, user_id, client_id, scope, resource, created_at, updated_at, revoked_at, consent_remembered",
                )
                .bind(scope.to_string())
                .bind(resource)
                .bind(now)
                .bind(org.as_str())
                .bind(user.as_str())
                .bind(client_id)
                .fetch_optional(&mut *tx)
                .await?;
                let row = match updated {
                    Some(r) => r,
                    None => sqlx::query_as::<_, GrantRow>(
                        "INSERT INTO grants (id, organization_id, user_id, client_id, scope, resource, created_at, updated_at, revoked_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $7, NULL) \
                         RETURNING id, organization_id, user_id, client_id, scope, resource, created_at, updated_at, revoked_at, consent_remembered",
                    )
                    .bind(uuid::Uuid::now_v7().to_string())
                    .bind(org.as_str())
                    .bind(user.as_str())
                    .bind(client_id)
                    .bind(scope.to_string())
                    .bind(resource)
                    .bind(now)
                    .fetch_one(&mut *tx)
                    .await?,
                };
                tx.commit().await?;
                Ok(row.into())
            }

            async fn forget_consent(&self, client_id: &str) -> Result<u64, StoreError> {
                let done = sqlx::query(
                    "UPDATE grants SET consent_remembered = FALSE WHERE client_id = $1 AND revoked_at IS NULL",
                )
                .bind(client_id)
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected())
            }

            async fn live_grant_for(
                &self,
                org: &$crate::store::OrgId,
                user: &$crate::store::UserId,
                client_id: &str,
            ) -> Result<Option<$crate::store::Grant>, StoreError> {
                use $crate::store::sql_oauth::GrantRow;
                let row = sqlx::query_as::<_, GrantRow>(
                    "SELECT id, organization_id, user_id, client_id, scope, resource, created_at, updated_at, revoked_at, consent_remembered \
                     FROM grants WHERE organization_id = $1 AND user_id = $2 AND client_id = $3 AND revoked_at IS NULL",
                )
                .bind(org.as_str())
                .bind(user.as_str())
                .bind(client_id)
                .fetch_optional(&self.pool)
                .await?;
                Ok(row.map(Into::into))
            }

            async fn live_grant(&self, org: &$crate::store::OrgId, grant_id: &str) -> Result<Option<$crate::store::Grant>, StoreError> {
                use $crate::store::sql_oauth::GrantRow;
                let row = sqlx::query_as::<_, GrantRow>(
                    "SELECT g.id, g.organization_id, g.user_id, g.client_id, g.scope, g.resource, g.created_at, g.updated_at, g.revoked_at, g.consent_remembered \
                     FROM grants g \
                     JOIN users u ON u.id = g.user_id \
                     JOIN organizations o ON o.id = g.organization_id \
                     JOIN memberships m ON m.user_id = g.user_id AND m.organization_id = g.organization_id \
                     JOIN oauth_clients c ON c.id = g.client_id \
                     WHERE g.organization_id = $1 AND g.id = $2 AND g.revoked_at IS NULL \
                       AND u.disabled = FALSE AND o.disabled = FALSE AND c.disabled = FALSE",
                )
                .bind(org.as_str())
                .bind(grant_id)
                .fetch_optional(&self.pool)
                .await?;
                Ok(row.map(Into::into))
            }

            async fn revoke_grant(&self, org: &$crate::store::OrgId, grant_id: &str, now: i64) -> Result<bool, StoreError> {
                let mut tx = self.pool.begin().await?;
                let done = sqlx::query("UPDATE grants SET revoked_at = $1 WHERE organization_id = $2 AND id = $3 AND revoked_at IS NULL")
                    .bind(now)
                    .bind(org.as_str())
                    .bind(grant_id)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query("UPDATE refresh_tokens SET revoked_at = $1 WHERE organization_id = $2 AND grant_id = $3 AND revoked_at IS NULL")
                    .bind(now)
                    .bind(org.as_str())
                    .bind(grant_id)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(done.rows_affected() == 1)
            }

            async fn grants_of_user(&self, user: &$crate::store::UserId) -> Result<Vec<$crate::store::GrantView>, StoreError> {
                use $crate::store::sql_oauth::GrantViewRow;
                let rows = sqlx::query_as::<_, GrantViewRow>(
                    "SELECT g.id, g.organization_id, g.user_id, g.client_id, g.scope, g.resource, g.created_at, g.updated_at, g.revoked_at, g.consent_remembered, \
                       c.metadata, o.name AS organization_name \
                     FROM grants g JOIN oauth_clients c ON c.id = g.client_id JOIN organizations o ON o.id = g.organization_id \
                     WHERE g.user_id = $1 AND g.revoked_at IS NULL ORDER BY g.updated_at DESC",
                )
                .bind(user.as_str())
                .fetch_all(&self.pool)
                .await?;
                Ok(rows
                    .into_iter()
                    .map(|r| {
                        let meta: serde_json::Value = serde_json::from_str(&r.metadata).unwrap_or_default();
                        $crate::store::GrantView {
                            client_name: meta["client_name"].as_str().unwrap_or(&r.client_id).to_owned(),
                            organization_name: r.organization_name,
                            grant: $crate::store::Grant {
                                id: r.id,
                                organization_id: $crate::store::OrgId(r.organization_id),
                                user_id: $crate::store::UserId(r.user_id),
                                client_id: r.client_id,
                                scope: $crate::store::sql::parse_stored_scopes(&r.scope),
                                resource: r.resource,
                                created_at: r.created_at,
                                updated_at: r.updated_at,
                                revoked_at: r.revoked_at,
                                consent_remembered: r.consent_remembered,
                            },
                        }
                    })
                    .collect())
            }

            async fn insert_code(&self, c: &$crate::store::CodeRecord) -> Result<(), StoreError> {
                sqlx::query(
                    "INSERT INTO authorization_codes (code_hash, grant_id, organization_id, client_id, user_id, \
                       redirect_uri, code_challenge, scope, resource, created_at, expires_at, consumed_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, NULL)",
                )
                .bind(&c.code_hash)
                .bind(&c.grant_id)
                .bind(c.organization_id.as_str())
                .bind(&c.client_id)
                .bind(c.user_id.as_str())
                .bind(&c.redirect_uri)
                .bind(&c.code_challenge)
                .bind(c.scope.to_string())
                .bind(&c.resource)
                .bind(c.created_at)
                .bind(c.expires_at)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn find_code(&self, code_hash: &str) -> Result<Option<$crate::store::CodeRecord>, StoreError> {
                use $crate::store::sql_oauth::{CodeRow, CODE_COLUMNS};
                let sql = sqlx::AssertSqlSafe(format!("SELECT {CODE_COLUMNS} FROM authorization_codes WHERE code_hash = $1"));
                let row = sqlx::query_as::<_, CodeRow>(sql).bind(code_hash).fetch_optional(&self.pool).await?;
                Ok(row.map(Into::into))
            }

            async fn redeem_code(&self, code_hash: &str, now: i64) -> Result<$crate::store::CodeRedemption, StoreError> {
                use $crate::store::sql_oauth::{CodeRow, CODE_COLUMNS};
                let sql = sqlx::AssertSqlSafe(format!(
                    "UPDATE authorization_codes SET consumed_at = $1 WHERE code_hash = $2 AND consumed_at IS NULL RETURNING {CODE_COLUMNS}"
                ));
                if let Some(row) = sqlx::query_as::<_, CodeRow>(sql).bind(now).bind(code_hash).fetch_optional(&self.pool).await? {
                    return Ok($crate::store::CodeRedemption::Redeemed(row.into()));
                }
                let sql = sqlx::AssertSqlSafe(format!("SELECT {CODE_COLUMNS} FROM authorization_codes WHERE code_hash = $1"));
                Ok(match sqlx::query_as::<_, CodeRow>(sql).bind(code_hash).fetch_optional(&self.pool).await? {
                    Some(row) => $crate::store::CodeRedemption::Replayed(row.into()),
                    None => $crate::store::CodeRedemption::Unknown,
                })
            }

            async fn insert_refresh(&self, t: &$crate::store::RefreshRecord) -> Result<(), StoreError> {
                insert_refresh_token(&self.pool, t).await
            }

            async fn refresh(&self, token_hash: &str) -> Result<Option<$crate::store::RefreshRecord>, StoreError> {
                use $crate::store::sql_oauth::RefreshRow;
                let row = sqlx::query_as::<_, RefreshRow>(
                    "SELECT token_hash, grant_id, organization_id, client_id, scope, resource, created_at, expires_at, \
                       rotated_at, replaced_by, revoked_at FROM refresh_tokens WHERE token_hash = $1",
                )
                .bind(token_hash)
                .fetch_optional(&self.pool)
                .await?;
                Ok(row.map(Into::into))
            }

            async fn rotate_refresh(&self, old: &str, successor: &$crate::store::RefreshRecord, now: i64) -> Result<bool, StoreError> {
                let mut tx = self.pool.begin().await?;
                let done = sqlx::query(
                    "UPDATE refresh_tokens SET rotated_at = $1, replaced_by = $2 \
                     WHERE token_hash = $3 AND rotated_at IS NULL AND revoked_at IS NULL",
                )
                .bind(now)
                .bind(&successor.token_hash)
                .bind(old)
                .execute(&mut *tx)
                .await?;
                if done.rows_affected() != 1 {
                    return Ok(false);
                }
                insert_refresh_token(&mut *tx, successor).await?;
                tx.commit().await?;
                Ok(true)
            }

            async fn retry_rotation(&self, old: &str, previous: &str, successor: &$crate::store::RefreshRecord, now: i64) -> Result<bool, StoreError> {
                let mut tx = self.pool.begin().await?;
                // Swap the old token's successor first: this locks the old row, so of two
                // concurrent retries only one sees `previous` still in place.
                let swapped = sqlx::query("UPDATE refresh_tokens SET replaced_by = $1 WHERE token_hash = $2 AND replaced_by = $3")
                    .bind(&successor.token_hash)
                    .bind(old)
                    .bind(previous)
                    .execute(&mut *tx)
                    .await?;
                if swapped.rows_affected() != 1 {
                    return Ok(false);
                }
                // The superseded successor must be unused; if it was used, this is a replay.
                let done = sqlx::query(
                    "UPDATE refresh_tokens SET revoked_at = $1 WHERE token_hash = $2 AND rotated_at IS NULL AND revoked_at IS NULL",
                )
                .bind(now)
                .bind(previous)
                .execute(&mut *tx)
                .await?;
                if done.rows_affected() != 1 {
                    return Ok(false);
                }
                insert_refresh_token(&mut *tx, successor).await?;
                tx.commit().await?;
                Ok(true)
            }

            async fn revoke_refresh(&self, token_hash: &str, now: i64) -> Result<bool, StoreError> {
                let done = sqlx::query("UPDATE refresh_tokens SET revoked_at = $1 WHERE token_hash = $2 AND revoked_at IS NULL")
                    .bind(now)
                    .bind(token_hash)
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn insert_signing_key(&self, k: &$crate::store::SigningKeyRecord) -> Result<(), StoreError> {
                sqlx::query(
                    "INSERT INTO signing_keys (kid, alg, public_jwk, private_ciphertext, private_key_id, created_at, retired_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
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

            async fn signing_keys(&self) -> Result<Vec<$crate::store::SigningKeyRecord>, StoreError> {
                use $crate::store::sql_oauth::SigningKeyRow;
                let rows = sqlx::query_as::<_, SigningKeyRow>(
                    "SELECT kid, alg, public_jwk, private_ciphertext, private_key_id, created_at, retired_at \
                     FROM signing_keys ORDER BY created_at DESC, kid",
                )
                .fetch_all(&self.pool)
                .await?;
                Ok(rows.into_iter().map(Into::into).collect())
            }

            async fn retire_signing_keys_except(&self, kid: &str, now: i64) -> Result<(), StoreError> {
                sqlx::query("UPDATE signing_keys SET retired_at = $1 WHERE kid <> $2 AND retired_at IS NULL")
                    .bind(now)
                    .bind(kid)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn purge_signing_keys(&self, before: i64) -> Result<u64, StoreError> {
                let done = sqlx::query("DELETE FROM signing_keys WHERE retired_at IS NOT NULL AND retired_at < $1")
                    .bind(before)
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected())
            }

            async fn reseal_signing_keys(&self, reseal: $crate::store::Resealer<'_>) -> Result<usize, StoreError> {
                let mut tx = self.pool.begin().await?;
                let rows: Vec<(String, String, String)> = sqlx::query_as("SELECT kid, private_ciphertext, private_key_id FROM signing_keys ORDER BY kid")
                    .fetch_all(&mut *tx)
                    .await?;
                let mut n = 0;
                for (kid, ciphertext, key_id) in rows {
                    let Some(sealed) = reseal(&ciphertext, &key_id)? else { continue };
                    sqlx::query("UPDATE signing_keys SET private_ciphertext = $1, private_key_id = $2 WHERE kid = $3")
                        .bind(&sealed.ciphertext)
                        .bind(&sealed.key_id)
                        .bind(&kid)
                        .execute(&mut *tx)
                        .await?;
                    n += 1;
                }
                tx.commit().await?;
                Ok(n)
            }

            async fn load_session(&self, id: &str, now: i64) -> Result<Option<String>, StoreError> {
                let row: Option<(String,)> = sqlx::query_as("SELECT data FROM web_sessions WHERE id = $1 AND expires_at > $2")
                    .bind(id)
                    .bind(now)
                    .fetch_optional(&self.pool)
                    .await?;
                Ok(row.map(|(d,)| d))
            }

            async fn save_session(&self, id: &str, data: &str, expires_at: i64) -> Result<(), StoreError> {
                sqlx::query(
                    "INSERT INTO web_sessions (id, data, expires_at) VALUES ($1, $2, $3) \
                     ON CONFLICT (id) DO UPDATE SET data = excluded.data, expires_at = excluded.expires_at",
                )
                .bind(id)
                .bind(data)
                .bind(expires_at)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn delete_session(&self, id: &str) -> Result<(), StoreError> {
                sqlx::query("DELETE FROM web_sessions WHERE id = $1").bind(id).execute(&self.pool).await?;
                Ok(())
            }

            async fn rate_hit(&self, bucket: &str, window_start: i64) -> Result<i64, StoreError> {
                let (hits,): (i64,) = sqlx::query_as(
                    "INSERT INTO rate_limits (bucket, window_start, hits) VALUES ($1, $2, 1) \
                     ON CONFLICT (bucket, window_start) DO UPDATE SET hits = rate_limits.hits + 1 RETURNING hits",
                )
                .bind(bucket)
                .bind(window_start)
                .fetch_one(&self.pool)
                .await?;
                Ok(hits)
            }

            async fn purge_expired(&self, now: i64, revoked_before: i64) -> Result<$crate::store::Purged, StoreError> {
                let mut tx = self.pool.begin().await?;
                let sessions = sqlx::query("DELETE FROM web_sessions WHERE expires_at <= $1")
                    .bind(now)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                let grants = sqlx::query("DELETE FROM grants WHERE revoked_at IS NOT NULL AND revoked_at < $1")
                    .bind(revoked_before)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                let codes = sqlx::query("DELETE FROM authorization_codes WHERE expires_at <= $1")
                    .bind(now)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                let refresh_tokens = sqlx::query("DELETE FROM refresh_tokens WHERE expires_at <= $1")
                    .bind(now)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                tx.commit().await?;
                Ok($crate::store::Purged { sessions, codes, refresh_tokens, grants })
            }

            async fn purge_rate_limits(&self, before: i64) -> Result<u64, StoreError> {
                let done = sqlx::query("DELETE FROM rate_limits WHERE window_start < $1").bind(before).execute(&self.pool).await?;
                Ok(done.rows_affected())
            }
        }
    };
}

pub(crate) use impl_oauth_store;
