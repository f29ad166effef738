//! Single sign-on: each organisation's OpenID Connect connection, the e-mail domains it owns,
//! and the provider identities (issuer, subject) of people.

use async_trait::async_trait;

use super::{
    Email, OrgId, PgStore, Resealer, SqliteStore, StoreError, UserCredentials, UserId, reseal_all,
};
use crate::clock::UnixTime;

/// An organisation's connection as stored (the client secret sealed).
#[derive(Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct SsoConnection {
    pub organization_id: OrgId,
    pub issuer: String,
    pub client_id: String,
    pub secret_ciphertext: String,
    pub secret_key_id: String,
    pub groups_claim: String,
    pub admin_group: Option<String>,
    pub member_group: Option<String>,
    pub required: bool,
    pub updated_at: UnixTime,
}

impl std::fmt::Debug for SsoConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SsoConnection")
            .field("organization_id", &self.organization_id)
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("required", &self.required)
            .finish_non_exhaustive()
    }
}

#[async_trait]
pub trait SsoStore: Send + Sync {
    async fn sso_connection(&self, org: &OrgId) -> Result<Option<SsoConnection>, StoreError>;
    /// The connection that owns the domain of an address.
    async fn sso_connection_for_domain(
        &self,
        domain: &str,
    ) -> Result<Option<SsoConnection>, StoreError>;
    async fn sso_domains(&self, org: &OrgId) -> Result<Vec<String>, StoreError>;
    /// The connections of enabled organisations that trust the provider `issuer` (its identity
    /// assertions are theirs to accept).
    async fn sso_connections_for_issuer(
        &self,
        issuer: &str,
    ) -> Result<Vec<SsoConnection>, StoreError>;
    /// Creates or replaces the connection and its domains in one transaction; a domain another
    /// organisation owns is a conflict.
    async fn put_sso_connection(
        &self,
        conn: &SsoConnection,
        domains: &[String],
    ) -> Result<(), StoreError>;
    async fn delete_sso_connection(&self, org: &OrgId) -> Result<bool, StoreError>;
    /// The account a provider identity signs in as.
    async fn sso_identity(&self, issuer: &str, subject: &str)
    -> Result<Option<UserId>, StoreError>;
    async fn link_sso_identity(
        &self,
        issuer: &str,
        subject: &str,
        user: &UserId,
        now: UnixTime,
    ) -> Result<(), StoreError>;
    /// A new account without a password, with its provider identity, in one transaction.
    async fn create_sso_user(
        &self,
        email: &Email,
        issuer: &str,
        subject: &str,
        now: UnixTime,
    ) -> Result<UserCredentials, StoreError>;
    async fn reseal_sso_secrets(&self, reseal: Resealer<'_>) -> Result<usize, StoreError>;
}

const BY_ORG: &str = "\
SELECT organization_id, issuer, client_id, secret_ciphertext, secret_key_id, groups_claim,
    admin_group, member_group, required, updated_at
FROM sso_connections WHERE organization_id = $1";

const BY_DOMAIN: &str = "\
SELECT c.organization_id, c.issuer, c.client_id, c.secret_ciphertext, c.secret_key_id,
    c.groups_claim, c.admin_group, c.member_group, c.required, c.updated_at
FROM sso_domains d JOIN sso_connections c ON c.organization_id = d.organization_id
JOIN organizations o ON o.id = c.organization_id
WHERE d.domain = $1 AND NOT o.disabled";

const BY_ISSUER: &str = "\
SELECT c.organization_id, c.issuer, c.client_id, c.secret_ciphertext, c.secret_key_id,
    c.groups_claim, c.admin_group, c.member_group, c.required, c.updated_at
FROM sso_connections c JOIN organizations o ON o.id = c.organization_id
WHERE c.issuer = $1 AND NOT o.disabled ORDER BY c.organization_id LIMIT 100";

const DOMAINS: &str = "SELECT domain FROM sso_domains WHERE organization_id = $1 ORDER BY domain";

const UPSERT: &str = "\
INSERT INTO sso_connections (organization_id, issuer, client_id, secret_ciphertext,
    secret_key_id, groups_claim, admin_group, member_group, required, updated_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
ON CONFLICT (organization_id) DO UPDATE SET issuer = excluded.issuer,
    client_id = excluded.client_id, secret_ciphertext = excluded.secret_ciphertext,
    secret_key_id = excluded.secret_key_id, groups_claim = excluded.groups_claim,
    admin_group = excluded.admin_group, member_group = excluded.member_group,
    required = excluded.required, updated_at = excluded.updated_at";

const DROP_DOMAINS: &str = "DELETE FROM sso_domains WHERE organization_id = $1";

const ADD_DOMAIN: &str = "INSERT INTO sso_domains (domain, organization_id) VALUES ($1, $2)";

const DELETE: &str = "DELETE FROM sso_connections WHERE organization_id = $1";

const IDENTITY: &str = "SELECT user_id FROM sso_identities WHERE issuer = $1 AND subject = $2";

const LINK: &str = "\
INSERT INTO sso_identities (issuer, subject, user_id, created_at) VALUES ($1, $2, $3, $4)";

const INSERT_USER: &str = "\
INSERT INTO users (id, email, password_hash, disabled, created_at)
VALUES ($1, $2, '', FALSE, $3)
RETURNING id, email, password_hash, disabled, created_at, session_epoch, must_change_password,
    totp_enabled_at IS NOT NULL AS mfa_enabled";

const SEALED: &str = "\
SELECT organization_id, secret_ciphertext, secret_key_id FROM sso_connections";

const RESEAL: &str = "\
UPDATE sso_connections SET secret_ciphertext = $1, secret_key_id = $2 WHERE organization_id = $3";

macro_rules! sso_store {
    ($store:ty) => {
        #[async_trait]
        impl SsoStore for $store {
            #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.sso_connection", otel.kind = "client", db.operation.name = "sso_connection", db.system.name = Self::DB_SYSTEM))]
            async fn sso_connection(
                &self,
                org: &OrgId,
            ) -> Result<Option<SsoConnection>, StoreError> {
                Ok(sqlx::query_as(BY_ORG)
                    .bind(org.as_str())
                    .fetch_optional(&self.pool)
                    .await?)
            }

            #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.sso_connections_for_issuer", otel.kind = "client", db.operation.name = "sso_connections_for_issuer", db.system.name = Self::DB_SYSTEM))]
            async fn sso_connections_for_issuer(
                &self,
                issuer: &str,
            ) -> Result<Vec<SsoConnection>, StoreError> {
                Ok(sqlx::query_as(BY_ISSUER)
                    .bind(issuer)
                    .fetch_all(&self.pool)
                    .await?)
            }

            #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.sso_connection_for_domain", otel.kind = "client", db.operation.name = "sso_connection_for_domain", db.system.name = Self::DB_SYSTEM))]
            async fn sso_connection_for_domain(
                &self,
                domain: &str,
            ) -> Result<Option<SsoConnection>, StoreError> {
                Ok(sqlx::query_as(BY_DOMAIN)
                    .bind(domain)
                    .fetch_optional(&self.pool)
                    .await?)
            }

            #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.sso_domains", otel.kind = "client", db.operation.name = "sso_domains", db.system.name = Self::DB_SYSTEM))]
            async fn sso_domains(&self, org: &OrgId) -> Result<Vec<String>, StoreError> {
                let rows: Vec<(String,)> = sqlx::query_as(DOMAINS)
                    .bind(org.as_str())
                    .fetch_all(&self.pool)
                    .await?;
                Ok(rows.into_iter().map(|(d,)| d).collect())
            }

            #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.put_sso_connection", otel.kind = "client", db.operation.name = "put_sso_connection", db.system.name = Self::DB_SYSTEM))]
            async fn put_sso_connection(
                &self,
                c: &SsoConnection,
                domains: &[String],
            ) -> Result<(), StoreError> {
                let mut tx = self.pool.begin().await?;
                sqlx::query(UPSERT)
                    .bind(c.organization_id.as_str())
                    .bind(&c.issuer)
                    .bind(&c.client_id)
                    .bind(&c.secret_ciphertext)
                    .bind(&c.secret_key_id)
                    .bind(&c.groups_claim)
                    .bind(&c.admin_group)
                    .bind(&c.member_group)
                    .bind(c.required)
                    .bind(c.updated_at)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(DROP_DOMAINS)
                    .bind(c.organization_id.as_str())
                    .execute(&mut *tx)
                    .await?;
                for d in domains {
                    sqlx::query(ADD_DOMAIN)
                        .bind(d)
                        .bind(c.organization_id.as_str())
                        .execute(&mut *tx)
                        .await
                        .map_err(|e| {
                            StoreError::conflict_or(e, || {
                                format!("the domain {d} belongs to another organisation's sign-in")
                            })
                        })?;
                }
                tx.commit().await?;
                Ok(())
            }

            #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.delete_sso_connection", otel.kind = "client", db.operation.name = "delete_sso_connection", db.system.name = Self::DB_SYSTEM))]
            async fn delete_sso_connection(&self, org: &OrgId) -> Result<bool, StoreError> {
                let mut tx = self.pool.begin().await?;
                sqlx::query(DROP_DOMAINS)
                    .bind(org.as_str())
                    .execute(&mut *tx)
                    .await?;
                let done = sqlx::query(DELETE)
                    .bind(org.as_str())
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(done.rows_affected() == 1)
            }

            #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.sso_identity", otel.kind = "client", db.operation.name = "sso_identity", db.system.name = Self::DB_SYSTEM))]
            async fn sso_identity(
                &self,
                issuer: &str,
                subject: &str,
            ) -> Result<Option<UserId>, StoreError> {
                let row: Option<(UserId,)> = sqlx::query_as(IDENTITY)
                    .bind(issuer)
                    .bind(subject)
                    .fetch_optional(&self.pool)
                    .await?;
                Ok(row.map(|(u,)| u))
            }

            #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.link_sso_identity", otel.kind = "client", db.operation.name = "link_sso_identity", db.system.name = Self::DB_SYSTEM))]
            async fn link_sso_identity(
                &self,
                issuer: &str,
                subject: &str,
                user: &UserId,
                now: UnixTime,
            ) -> Result<(), StoreError> {
                sqlx::query(LINK)
                    .bind(issuer)
                    .bind(subject)
                    .bind(user.as_str())
                    .bind(now)
                    .execute(&self.pool)
                    .await
                    .map_err(|e| {
                        StoreError::conflict_or(e, || {
                            "that provider identity already signs in as someone".to_owned()
                        })
                    })?;
                Ok(())
            }

            #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.create_sso_user", otel.kind = "client", db.operation.name = "create_sso_user", db.system.name = Self::DB_SYSTEM))]
            async fn create_sso_user(
                &self,
                email: &Email,
                issuer: &str,
                subject: &str,
                now: UnixTime,
            ) -> Result<UserCredentials, StoreError> {
                let mut tx = self.pool.begin().await?;
                let id = UserId::new_random();
                let created: UserCredentials = sqlx::query_as(INSERT_USER)
                    .bind(id.as_str())
                    .bind(email.as_str())
                    .bind(now)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(|e| {
                        StoreError::conflict_or(e, || format!("an account for {email} exists"))
                    })?;
                sqlx::query(LINK)
                    .bind(issuer)
                    .bind(subject)
                    .bind(id.as_str())
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(created)
            }

            #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.reseal_sso_secrets", otel.kind = "client", db.operation.name = "reseal_sso_secrets", db.system.name = Self::DB_SYSTEM))]
            async fn reseal_sso_secrets(&self, reseal: Resealer<'_>) -> Result<usize, StoreError> {
                Ok(reseal_all!(
                    self.pool, reseal,
                    SEALED => (String, String, String),
                    |(id, ciphertext, key_id)| (&ciphertext, &key_id),
                    RESEAL, [&id],
                ))
            }
        }
    };
}

sso_store!(SqliteStore);
sso_store!(PgStore);
