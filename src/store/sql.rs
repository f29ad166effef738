//! The SQL shared by both backends. `impl_store!` instantiates the `Store` trait for a struct with a
//! `pool` field; each method body is compiled once per backend, so the text is written once and
//! checked against both drivers' types.

use super::models::*;
use crate::scope::ScopeSet;

#[derive(sqlx::FromRow)]
pub(super) struct OrgRow {
    pub id: String,
    pub name: String,
    pub disabled: bool,
    pub created_at: i64,
}

impl From<OrgRow> for Organization {
    fn from(r: OrgRow) -> Self {
        Organization {
            id: OrgId(r.id),
            name: r.name,
            disabled: r.disabled,
            created_at: r.created_at,
        }
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct UserRow {
    pub id: String,
    pub email: String,
    pub password_hash: String,
    pub disabled: bool,
    pub created_at: i64,
}

impl UserRow {
    pub fn user(&self) -> User {
        User {
            id: UserId(self.id.clone()),
            email: self.email.clone(),
            disabled: self.disabled,
            created_at: self.created_at,
        }
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct MemberRow {
    pub id: String,
    pub email: String,
    pub disabled: bool,
    pub created_at: i64,
    pub role: String,
}

#[derive(sqlx::FromRow)]
pub(super) struct MembershipRow {
    pub id: String,
    pub name: String,
    pub disabled: bool,
    pub created_at: i64,
    pub role: String,
}

#[derive(sqlx::FromRow)]
pub(super) struct CredentialRow {
    pub organization_id: String,
    pub ciphertext: String,
    pub key_id: String,
    pub key_hint: String,
    pub base_url: Option<String>,
    pub created_at: i64,
    pub rotated_at: i64,
}

impl From<CredentialRow> for ClariCredential {
    fn from(r: CredentialRow) -> Self {
        ClariCredential {
            organization_id: OrgId(r.organization_id),
            ciphertext: r.ciphertext,
            key_id: r.key_id,
            key_hint: r.key_hint,
            base_url: r.base_url,
            created_at: r.created_at,
            rotated_at: r.rotated_at,
        }
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct ApiKeyRow {
    pub id: String,
    pub organization_id: String,
    pub user_id: String,
    pub email: String,
    pub name: String,
    pub key_hint: String,
    pub scopes: String,
    pub expires_at: Option<i64>,
    pub last_used_at: Option<i64>,
    pub revoked_at: Option<i64>,
    pub created_at: i64,
}

impl From<ApiKeyRow> for ApiKey {
    fn from(r: ApiKeyRow) -> Self {
        ApiKey {
            id: ApiKeyId(r.id),
            organization_id: OrgId(r.organization_id),
            user_id: UserId(r.user_id),
            user_email: r.email,
            name: r.name,
            key_hint: r.key_hint,
            // Stored scopes were validated on the way in; an unknown one (from a newer version)
            // is dropped rather than granting anything.
            scopes: parse_stored_scopes(&r.scopes),
            expires_at: r.expires_at,
            last_used_at: r.last_used_at,
            revoked_at: r.revoked_at,
            created_at: r.created_at,
        }
    }
}

pub(super) fn parse_stored_scopes(text: &str) -> ScopeSet {
    text.split(' ')
        .filter_map(|s| crate::scope::Scope::parse(s).ok())
        .collect()
}

pub(super) fn role(text: &str) -> Role {
    // The column has a CHECK constraint; anything else cannot be stored.
    Role::parse(text).unwrap_or(Role::Member)
}

/// How often `last_used_at` is rewritten for a busy API key.
pub(super) const LAST_USED_GRANULARITY: i64 = 60;

macro_rules! impl_store {
    ($store:ty, $backend:expr) => {
        #[async_trait::async_trait]
        impl $crate::store::Store for $store {
            fn backend(&self) -> $crate::store::Backend {
                $backend
            }

            async fn migrate(&self) -> Result<(), StoreError> {
                Self::migrator().run(&self.pool).await?;
                Ok(())
            }

            async fn ping(&self) -> Result<(), StoreError> {
                sqlx::query("SELECT 1").execute(&self.pool).await?;
                Ok(())
            }

            async fn create_org(
                &self,
                name: &str,
                now: i64,
            ) -> Result<$crate::store::Organization, StoreError> {
                use $crate::store::sql::OrgRow;
                let id = $crate::store::OrgId::new_random();
                let row = sqlx::query_as::<_, OrgRow>(
                    "INSERT INTO organizations (id, name, disabled, created_at) \
                     VALUES ($1, $2, FALSE, $3) RETURNING id, name, disabled, created_at",
                )
                .bind(id.as_str())
                .bind(name)
                .bind(now)
                .fetch_one(&self.pool)
                .await
                .map_err(|e| {
                    if StoreError::is_unique_violation(&e) {
                        StoreError::Conflict(format!("an organisation named '{name}' already exists"))
                    } else {
                        e.into()
                    }
                })?;
                Ok(row.into())
            }

            async fn list_orgs(&self) -> Result<Vec<$crate::store::Organization>, StoreError> {
                use $crate::store::sql::OrgRow;
                let rows = sqlx::query_as::<_, OrgRow>(
                    "SELECT id, name, disabled, created_at FROM organizations ORDER BY name",
                )
                .fetch_all(&self.pool)
                .await?;
                Ok(rows.into_iter().map(Into::into).collect())
            }

            async fn find_org(
                &self,
                id_or_name: &str,
            ) -> Result<Option<$crate::store::Organization>, StoreError> {
                use $crate::store::sql::OrgRow;
                let row = sqlx::query_as::<_, OrgRow>(
                    "SELECT id, name, disabled, created_at FROM organizations \
                     WHERE id = $1 OR name = $1 ORDER BY (id = $1) DESC LIMIT 1",
                )
                .bind(id_or_name)
                .fetch_optional(&self.pool)
                .await?;
                Ok(row.map(Into::into))
            }

            async fn set_org_disabled(
                &self,
                org: &$crate::store::OrgId,
                disabled: bool,
            ) -> Result<(), StoreError> {
                let done = sqlx::query("UPDATE organizations SET disabled = $1 WHERE id = $2")
                    .bind(disabled)
                    .bind(org.as_str())
                    .execute(&self.pool)
                    .await?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::NotFound("organisation"));
                }
                Ok(())
            }

            async fn create_user(
                &self,
                org: &$crate::store::OrgId,
                email: &$crate::store::Email,
                password_hash: &str,
                role: $crate::store::Role,
                now: i64,
            ) -> Result<$crate::store::User, StoreError> {
                use $crate::store::sql::UserRow;
                let id = $crate::store::UserId::new_random();
                let mut tx = self.pool.begin().await?;
                let row = sqlx::query_as::<_, UserRow>(
                    "INSERT INTO users (id, email, password_hash, disabled, created_at) \
                     VALUES ($1, $2, $3, FALSE, $4) \
                     RETURNING id, email, password_hash, disabled, created_at",
                )
                .bind(id.as_str())
                .bind(email.as_str())
                .bind(password_hash)
                .bind(now)
                .fetch_one(&mut *tx)
                .await
                .map_err(|e| {
                    if StoreError::is_unique_violation(&e) {
                        StoreError::Conflict(format!("a user with e-mail {email} already exists"))
                    } else {
                        e.into()
                    }
                })?;
                let added = sqlx::query(
                    "INSERT INTO memberships (user_id, organization_id, role, created_at) \
                     SELECT $1, id, $3, $4 FROM organizations WHERE id = $2",
                )
                .bind(id.as_str())
                .bind(org.as_str())
                .bind(role.as_str())
                .bind(now)
                .execute(&mut *tx)
                .await?;
                if added.rows_affected() == 0 {
                    return Err(StoreError::NotFound("organisation"));
                }
                tx.commit().await?;
                Ok(row.user())
            }

            async fn add_membership(
                &self,
                org: &$crate::store::OrgId,
                user: &$crate::store::UserId,
                role: $crate::store::Role,
                now: i64,
            ) -> Result<(), StoreError> {
                sqlx::query(
                    "INSERT INTO memberships (user_id, organization_id, role, created_at) \
                     VALUES ($1, $2, $3, $4)",
                )
                .bind(user.as_str())
                .bind(org.as_str())
                .bind(role.as_str())
                .bind(now)
                .execute(&self.pool)
                .await
                .map_err(|e| {
                    if StoreError::is_unique_violation(&e) {
                        StoreError::Conflict("the user is already a member of that organisation".into())
                    } else if matches!(&e, sqlx::Error::Database(d) if d.is_foreign_key_violation()) {
                        StoreError::NotFound("organisation or user")
                    } else {
                        e.into()
                    }
                })?;
                Ok(())
            }

            async fn find_user_by_email(
                &self,
                email: &$crate::store::Email,
            ) -> Result<Option<$crate::store::UserCredentials>, StoreError> {
                use $crate::store::sql::UserRow;
                let row = sqlx::query_as::<_, UserRow>(
                    "SELECT id, email, password_hash, disabled, created_at FROM users WHERE email = $1",
                )
                .bind(email.as_str())
                .fetch_optional(&self.pool)
                .await?;
                Ok(row.map(|r| $crate::store::UserCredentials {
                    user: r.user(),
                    password_hash: r.password_hash,
                }))
            }

            async fn list_members(
                &self,
                org: &$crate::store::OrgId,
            ) -> Result<Vec<$crate::store::OrgMember>, StoreError> {
                use $crate::store::sql::{role, MemberRow};
                let rows = sqlx::query_as::<_, MemberRow>(
                    "SELECT u.id, u.email, u.disabled, u.created_at, m.role \
                     FROM memberships m JOIN users u ON u.id = m.user_id \
                     WHERE m.organization_id = $1 ORDER BY u.email",
                )
                .bind(org.as_str())
                .fetch_all(&self.pool)
                .await?;
                Ok(rows
                    .into_iter()
                    .map(|r| $crate::store::OrgMember {
                        role: role(&r.role),
                        user: $crate::store::User {
                            id: $crate::store::UserId(r.id),
                            email: r.email,
                            disabled: r.disabled,
                            created_at: r.created_at,
                        },
                    })
                    .collect())
            }

            async fn memberships(
                &self,
                user: &$crate::store::UserId,
            ) -> Result<Vec<$crate::store::Membership>, StoreError> {
                use $crate::store::sql::{role, MembershipRow};
                let rows = sqlx::query_as::<_, MembershipRow>(
                    "SELECT o.id, o.name, o.disabled, o.created_at, m.role \
                     FROM memberships m JOIN organizations o ON o.id = m.organization_id \
                     WHERE m.user_id = $1 ORDER BY o.name",
                )
                .bind(user.as_str())
                .fetch_all(&self.pool)
                .await?;
                Ok(rows
                    .into_iter()
                    .map(|r| $crate::store::Membership {
                        role: role(&r.role),
                        organization: $crate::store::Organization {
                            id: $crate::store::OrgId(r.id),
                            name: r.name,
                            disabled: r.disabled,
                            created_at: r.created_at,
                        },
                    })
                    .collect())
            }

            async fn set_user_disabled(
                &self,
                user: &$crate::store::UserId,
                disabled: bool,
            ) -> Result<(), StoreError> {
                let done = sqlx::query("UPDATE users SET disabled = $1 WHERE id = $2")
                    .bind(disabled)
                    .bind(user.as_str())
                    .execute(&self.pool)
                    .await?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::NotFound("user"));
                }
                Ok(())
            }

            async fn set_user_password(
                &self,
                user: &$crate::store::UserId,
                password_hash: &str,
            ) -> Result<(), StoreError> {
                let done = sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2")
                    .bind(password_hash)
                    .bind(user.as_str())
                    .execute(&self.pool)
                    .await?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::NotFound("user"));
                }
                Ok(())
            }

            async fn put_clari_credential(
                &self,
                org: &$crate::store::OrgId,
                sealed: &$crate::crypto::Sealed,
                key_hint: &str,
                base_url: Option<&str>,
                now: i64,
            ) -> Result<(), StoreError> {
                sqlx::query(
                    "INSERT INTO clari_credentials \
                       (organization_id, ciphertext, key_id, key_hint, base_url, created_at, rotated_at) \
                     SELECT id, $2, $3, $4, $5, $6, $6 FROM organizations WHERE id = $1 \
                     ON CONFLICT (organization_id) DO UPDATE SET \
                       ciphertext = excluded.ciphertext, key_id = excluded.key_id, \
                       key_hint = excluded.key_hint, base_url = excluded.base_url, \
                       rotated_at = excluded.rotated_at",
                )
                .bind(org.as_str())
                .bind(&sealed.ciphertext)
                .bind(&sealed.key_id)
                .bind(key_hint)
                .bind(base_url)
                .bind(now)
                .execute(&self.pool)
                .await
                .and_then(|done| {
                    if done.rows_affected() == 0 {
                        Err(sqlx::Error::RowNotFound)
                    } else {
                        Ok(())
                    }
                })
                .map_err(|e| match e {
                    sqlx::Error::RowNotFound => StoreError::NotFound("organisation"),
                    e => e.into(),
                })
            }

            async fn clari_credential(
                &self,
                org: &$crate::store::OrgId,
            ) -> Result<Option<$crate::store::ClariCredential>, StoreError> {
                use $crate::store::sql::CredentialRow;
                let row = sqlx::query_as::<_, CredentialRow>(
                    "SELECT organization_id, ciphertext, key_id, key_hint, base_url, created_at, rotated_at \
                     FROM clari_credentials WHERE organization_id = $1",
                )
                .bind(org.as_str())
                .fetch_optional(&self.pool)
                .await?;
                Ok(row.map(Into::into))
            }

            async fn reseal_clari_credentials(
                &self,
                reseal: $crate::store::Resealer<'_>,
                _now: i64,
            ) -> Result<usize, StoreError> {
                use $crate::store::sql::CredentialRow;
                let mut tx = self.pool.begin().await?;
                let rows = sqlx::query_as::<_, CredentialRow>(
                    "SELECT organization_id, ciphertext, key_id, key_hint, base_url, created_at, rotated_at \
                     FROM clari_credentials ORDER BY organization_id",
                )
                .fetch_all(&mut *tx)
                .await?;
                let mut rewritten = 0;
                for row in rows {
                    let Some(sealed) = reseal(&row.ciphertext, &row.key_id)? else {
                        continue;
                    };
                    // Same organisation, same secret: only the envelope changes, so `rotated_at`
                    // (when the Clari key itself was replaced) stays as it was.
                    sqlx::query(
                        "UPDATE clari_credentials SET ciphertext = $1, key_id = $2 \
                         WHERE organization_id = $3 AND key_id = $4",
                    )
                    .bind(&sealed.ciphertext)
                    .bind(&sealed.key_id)
                    .bind(&row.organization_id)
                    .bind(&row.key_id)
                    .execute(&mut *tx)
                    .await?;
                    rewritten += 1;
                }
                tx.commit().await?;
                Ok(rewritten)
            }

            async fn create_api_key(&self, key: &$crate::store::NewApiKey) -> Result<(), StoreError> {
                let done = sqlx::query(
                    "INSERT INTO api_keys (id, organization_id, user_id, name, key_hash, key_hint, \
                       scopes, expires_at, last_used_at, revoked_at, created_at) \
                     SELECT $1, m.organization_id, m.user_id, $4, $5, $6, $7, $8, NULL, NULL, $9 \
                     FROM memberships m WHERE m.organization_id = $2 AND m.user_id = $3",
                )
                .bind(key.id.as_str())
                .bind(key.organization_id.as_str())
                .bind(key.user_id.as_str())
                .bind(&key.name)
                .bind(&key.key_hash)
                .bind(&key.key_hint)
                .bind(key.scopes.to_string())
                .bind(key.expires_at)
                .bind(key.created_at)
                .execute(&self.pool)
                .await?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::NotFound("membership of that user in that organisation"));
                }
                Ok(())
            }

            async fn list_api_keys(
                &self,
                org: &$crate::store::OrgId,
            ) -> Result<Vec<$crate::store::ApiKey>, StoreError> {
                use $crate::store::sql::ApiKeyRow;
                let rows = sqlx::query_as::<_, ApiKeyRow>(
                    "SELECT k.id, k.organization_id, k.user_id, u.email, k.name, k.key_hint, k.scopes, \
                       k.expires_at, k.last_used_at, k.revoked_at, k.created_at \
                     FROM api_keys k JOIN users u ON u.id = k.user_id \
                     WHERE k.organization_id = $1 ORDER BY k.created_at, k.id",
                )
                .bind(org.as_str())
                .fetch_all(&self.pool)
                .await?;
                Ok(rows.into_iter().map(Into::into).collect())
            }

            async fn api_key_org(
                &self,
                id: &$crate::store::ApiKeyId,
            ) -> Result<Option<$crate::store::OrgId>, StoreError> {
                let org: Option<(String,)> =
                    sqlx::query_as("SELECT organization_id FROM api_keys WHERE id = $1")
                        .bind(id.as_str())
                        .fetch_optional(&self.pool)
                        .await?;
                Ok(org.map(|(o,)| $crate::store::OrgId(o)))
            }

            async fn revoke_api_key(
                &self,
                org: &$crate::store::OrgId,
                id: &$crate::store::ApiKeyId,
                now: i64,
            ) -> Result<bool, StoreError> {
                let done = sqlx::query(
                    "UPDATE api_keys SET revoked_at = $1 \
                     WHERE organization_id = $2 AND id = $3 AND revoked_at IS NULL",
                )
                .bind(now)
                .bind(org.as_str())
                .bind(id.as_str())
                .execute(&self.pool)
                .await?;
                if done.rows_affected() == 1 {
                    return Ok(true);
                }
                let exists: Option<(String,)> = sqlx::query_as(
                    "SELECT id FROM api_keys WHERE organization_id = $1 AND id = $2",
                )
                .bind(org.as_str())
                .bind(id.as_str())
                .fetch_optional(&self.pool)
                .await?;
                match exists {
                    Some(_) => Ok(false),
                    None => Err(StoreError::NotFound("API key")),
                }
            }

            async fn authenticate_api_key(
                &self,
                key_hash: &str,
                now: i64,
            ) -> Result<Option<$crate::store::ApiKeyPrincipal>, StoreError> {
                use $crate::store::sql::{parse_stored_scopes, LAST_USED_GRANULARITY};
                let row: Option<(String, String, String, String)> = sqlx::query_as(
                    "SELECT k.id, k.organization_id, k.user_id, k.scopes \
                     FROM api_keys k \
                     JOIN memberships m ON m.user_id = k.user_id AND m.organization_id = k.organization_id \
                     JOIN users u ON u.id = k.user_id \
                     JOIN organizations o ON o.id = k.organization_id \
                     WHERE k.key_hash = $1 AND k.revoked_at IS NULL \
                       AND (k.expires_at IS NULL OR k.expires_at > $2) \
                       AND u.disabled = FALSE AND o.disabled = FALSE",
                )
                .bind(key_hash)
                .bind(now)
                .fetch_optional(&self.pool)
                .await?;
                let Some((id, org, user, scopes)) = row else {
                    return Ok(None);
                };
                sqlx::query(
                    "UPDATE api_keys SET last_used_at = $1 WHERE organization_id = $2 AND id = $3 \
                     AND (last_used_at IS NULL OR last_used_at <= $4)",
                )
                .bind(now)
                .bind(&org)
                .bind(&id)
                .bind(now - LAST_USED_GRANULARITY)
                .execute(&self.pool)
                .await?;
                Ok(Some($crate::store::ApiKeyPrincipal {
                    key_id: $crate::store::ApiKeyId(id),
                    organization_id: $crate::store::OrgId(org),
                    user_id: $crate::store::UserId(user),
                    scopes: parse_stored_scopes(&scopes),
                }))
            }
        }
    };
}

pub(crate) use impl_store;
