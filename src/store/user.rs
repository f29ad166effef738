//! People and their memberships: a user signs in with e-mail and password and belongs to one or
//! more organisations, each with a role.

use async_trait::async_trait;

use super::{
    Email, Membership, OrgId, OrgMember, PgStore, Role, SqliteStore, Standing, StoreError, User,
    UserCredentials, UserId,
};
use crate::clock::UnixTime;

#[async_trait]
pub trait UserStore: Send + Sync {
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
    async fn find_user_by_id(&self, user: &UserId) -> Result<Option<UserCredentials>, StoreError>;
    async fn list_members(&self, org: &OrgId) -> Result<Vec<OrgMember>, StoreError>;
    /// The organisations a user belongs to (disabled ones included, flagged).
    async fn memberships(&self, user: &UserId) -> Result<Vec<Membership>, StoreError>;
    async fn set_user_disabled(&self, user: &UserId, disabled: bool) -> Result<(), StoreError>;
    /// Replaces the password; `chosen_by_other` makes the person choose their own at the next
    /// sign-in.
    async fn set_user_password(
        &self,
        user: &UserId,
        password_hash: &str,
        chosen_by_other: bool,
    ) -> Result<(), StoreError>;
    async fn member(&self, org: &OrgId, user: &UserId) -> Result<Option<OrgMember>, StoreError>;
    /// Sets role and suspension if the membership is still `(from_role, from_suspended)`;
    /// `false` when it changed meanwhile (or is gone).
    async fn update_member(
        &self,
        org: &OrgId,
        user: &UserId,
        from: Standing,
        to: Standing,
    ) -> Result<bool, StoreError>;
    /// Removes a person from an organisation and revokes their grants, refresh tokens and API
    /// keys there, in one transaction. `false` when they were not a member.
    async fn remove_member(
        &self,
        org: &OrgId,
        user: &UserId,
        now: UnixTime,
    ) -> Result<bool, StoreError>;
    /// Signs the person out of every browser session; returns the new epoch.
    async fn bump_session_epoch(&self, user: &UserId) -> Result<i64, StoreError>;
}

/// Also how accepting an invitation creates the account.
pub(super) const INSERT: &str = "\
INSERT INTO users (id, email, password_hash, disabled, created_at)
VALUES ($1, $2, $3, FALSE, $4)
RETURNING id, email, password_hash, disabled, created_at, session_epoch, must_change_password,
    totp_enabled_at IS NOT NULL AS mfa_enabled";

/// Adds the membership only when the organisation exists (no row: not found).
const INSERT_FIRST_MEMBERSHIP: &str = "\
INSERT INTO memberships (user_id, organization_id, role, created_at)
SELECT $1, id, $3, $4 FROM organizations WHERE id = $2";

/// Also how accepting an invitation adds the membership.
pub(super) const INSERT_MEMBERSHIP: &str = "\
INSERT INTO memberships (user_id, organization_id, role, created_at) VALUES ($1, $2, $3, $4)";

const FIND_BY_EMAIL: &str = "\
SELECT id, email, password_hash, disabled, created_at, session_epoch, must_change_password,
    totp_enabled_at IS NOT NULL AS mfa_enabled
FROM users WHERE email = $1";

const FIND_BY_ID: &str = "\
SELECT id, email, password_hash, disabled, created_at, session_epoch, must_change_password,
    totp_enabled_at IS NOT NULL AS mfa_enabled
FROM users WHERE id = $1";

const MEMBERS: &str = "\
SELECT u.id, u.email, u.disabled, u.created_at, m.role, m.disabled AS suspended,
    m.created_at AS joined_at
FROM memberships m JOIN users u ON u.id = m.user_id
WHERE m.organization_id = $1 ORDER BY u.email";

const MEMBER: &str = "\
SELECT u.id, u.email, u.disabled, u.created_at, m.role, m.disabled AS suspended,
    m.created_at AS joined_at
FROM memberships m JOIN users u ON u.id = m.user_id
WHERE m.organization_id = $1 AND m.user_id = $2";

/// Compare-and-set: changes the membership only if it still is what the caller saw.
const UPDATE_MEMBER: &str = "\
UPDATE memberships SET role = $1, disabled = $2,
    suspended_by = CASE WHEN $2 THEN COALESCE(suspended_by, 'admin') ELSE NULL END
WHERE organization_id = $3 AND user_id = $4 AND role = $5 AND disabled = $6";

const DELETE_MEMBER: &str = "DELETE FROM memberships WHERE organization_id = $1 AND user_id = $2";

/// Removing a person revokes what they hold in that organisation, so adding them back later
/// resurrects nothing. SCIM deprovisioning revokes the same three. `$1` organisation, `$2` person,
/// `$3` now.
pub(super) const REVOKE_MEMBER_GRANTS: &str = "\
UPDATE grants SET revoked_at = $3
WHERE organization_id = $1 AND user_id = $2 AND revoked_at IS NULL";

pub(super) const REVOKE_MEMBER_REFRESH: &str = "\
UPDATE refresh_tokens SET revoked_at = $3
WHERE organization_id = $1 AND revoked_at IS NULL
  AND grant_id IN (SELECT id FROM grants WHERE organization_id = $1 AND user_id = $2)";

pub(super) const REVOKE_MEMBER_KEYS: &str = "\
UPDATE api_keys SET revoked_at = $3
WHERE organization_id = $1 AND user_id = $2 AND revoked_at IS NULL";

const BUMP_EPOCH: &str = "\
UPDATE users SET session_epoch = session_epoch + 1 WHERE id = $1 RETURNING session_epoch";

const MEMBERSHIPS: &str = "\
SELECT o.id, o.name, o.disabled, o.created_at, COALESCE(o.slug, o.id) AS slug, m.role,
    m.disabled AS suspended
FROM memberships m JOIN organizations o ON o.id = m.organization_id
WHERE m.user_id = $1 ORDER BY o.name";

const SET_DISABLED: &str = "UPDATE users SET disabled = $1 WHERE id = $2";

/// A password set by its owner; one set by somebody else must be changed at the next sign-in.
const SET_PASSWORD: &str = "\
UPDATE users SET password_hash = $1, must_change_password = $3 WHERE id = $2";

macro_rules! user_store {
    ($store:ty) => {
        #[async_trait]
        impl UserStore for $store {
            #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.create_user", otel.kind = "client", db.operation.name = "create_user", db.system.name = Self::DB_SYSTEM))]
            async fn create_user(
                &self,
                org: &OrgId,
                email: &Email,
                password_hash: &str,
                role: Role,
                now: UnixTime,
            ) -> Result<User, StoreError> {
                let id = UserId::new_random();
                let mut tx = self.pool.begin().await?;
                let created: UserCredentials = sqlx::query_as(INSERT)
                    .bind(id.as_str())
                    .bind(email.as_str())
                    .bind(password_hash)
                    .bind(now)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(|e| {
                        StoreError::conflict_or(e, || {
                            format!("a user with e-mail {email} already exists")
                        })
                    })?;
                let added = sqlx::query(INSERT_FIRST_MEMBERSHIP)
                    .bind(id.as_str())
                    .bind(org.as_str())
                    .bind(role.as_str())
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                StoreError::found(added.rows_affected(), "organisation")?;
                tx.commit().await?;
                Ok(created.user)
            }

            #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.add_membership", otel.kind = "client", db.operation.name = "add_membership", db.system.name = Self::DB_SYSTEM))]
            async fn add_membership(
                &self,
                org: &OrgId,
                user: &UserId,
                role: Role,
                now: UnixTime,
            ) -> Result<(), StoreError> {
                sqlx::query(INSERT_MEMBERSHIP)
                    .bind(user.as_str())
                    .bind(org.as_str())
                    .bind(role.as_str())
                    .bind(now)
                    .execute(&self.pool)
                    .await
                    .map_err(|e| match &e {
                        sqlx::Error::Database(d) if d.is_foreign_key_violation() => {
                            StoreError::NotFound("organisation or user")
                        }
                        _ => StoreError::conflict_or(e, || {
                            "the user is already a member of that organisation".to_owned()
                        }),
                    })?;
                Ok(())
            }

            #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.find_user_by_email", otel.kind = "client", db.operation.name = "find_user_by_email", db.system.name = Self::DB_SYSTEM))]
            async fn find_user_by_email(
                &self,
                email: &Email,
            ) -> Result<Option<UserCredentials>, StoreError> {
                Ok(sqlx::query_as(FIND_BY_EMAIL)
                    .bind(email.as_str())
                    .fetch_optional(&self.pool)
                    .await?)
            }

            #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.find_user_by_id", otel.kind = "client", db.operation.name = "find_user_by_id", db.system.name = Self::DB_SYSTEM))]
            async fn find_user_by_id(
                &self,
                user: &UserId,
            ) -> Result<Option<UserCredentials>, StoreError> {
                Ok(sqlx::query_as(FIND_BY_ID)
                    .bind(user.as_str())
                    .fetch_optional(&self.pool)
                    .await?)
            }

            #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.list_members", otel.kind = "client", db.operation.name = "list_members", db.system.name = Self::DB_SYSTEM))]
            async fn list_members(&self, org: &OrgId) -> Result<Vec<OrgMember>, StoreError> {
                Ok(sqlx::query_as(MEMBERS)
                    .bind(org.as_str())
                    .fetch_all(&self.pool)
                    .await?)
            }

            #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.memberships", otel.kind = "client", db.operation.name = "memberships", db.system.name = Self::DB_SYSTEM))]
            async fn memberships(&self, user: &UserId) -> Result<Vec<Membership>, StoreError> {
                Ok(sqlx::query_as(MEMBERSHIPS)
                    .bind(user.as_str())
                    .fetch_all(&self.pool)
                    .await?)
            }

            #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.set_user_disabled", otel.kind = "client", db.operation.name = "set_user_disabled", db.system.name = Self::DB_SYSTEM))]
            async fn set_user_disabled(
                &self,
                user: &UserId,
                disabled: bool,
            ) -> Result<(), StoreError> {
                let change = self.changes.pending(None);
                let done = sqlx::query(SET_DISABLED)
                    .bind(disabled)
                    .bind(user.as_str())
                    .execute(&self.pool)
                    .await?;
                change.done().await;
                StoreError::found(done.rows_affected(), "user")
            }

            #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.set_user_password", otel.kind = "client", db.operation.name = "set_user_password", db.system.name = Self::DB_SYSTEM))]
            async fn set_user_password(
                &self,
                user: &UserId,
                password_hash: &str,
                chosen_by_other: bool,
            ) -> Result<(), StoreError> {
                let done = sqlx::query(SET_PASSWORD)
                    .bind(password_hash)
                    .bind(user.as_str())
                    .bind(chosen_by_other)
                    .execute(&self.pool)
                    .await?;
                StoreError::found(done.rows_affected(), "user")
            }

            #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.member", otel.kind = "client", db.operation.name = "member", db.system.name = Self::DB_SYSTEM))]
            async fn member(
                &self,
                org: &OrgId,
                user: &UserId,
            ) -> Result<Option<OrgMember>, StoreError> {
                Ok(sqlx::query_as(MEMBER)
                    .bind(org.as_str())
                    .bind(user.as_str())
                    .fetch_optional(&self.pool)
                    .await?)
            }

            #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.update_member", otel.kind = "client", db.operation.name = "update_member", db.system.name = Self::DB_SYSTEM))]
            async fn update_member(
                &self,
                org: &OrgId,
                user: &UserId,
                from: Standing,
                to: Standing,
            ) -> Result<bool, StoreError> {
                let change = self.changes.pending(Some(org));
                let done = sqlx::query(UPDATE_MEMBER)
                    .bind(to.role.as_str())
                    .bind(to.suspended)
                    .bind(org.as_str())
                    .bind(user.as_str())
                    .bind(from.role.as_str())
                    .bind(from.suspended)
                    .execute(&self.pool)
                    .await?;
                change.done().await;
                Ok(done.rows_affected() == 1)
            }

            #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.remove_member", otel.kind = "client", db.operation.name = "remove_member", db.system.name = Self::DB_SYSTEM))]
            async fn remove_member(
                &self,
                org: &OrgId,
                user: &UserId,
                now: UnixTime,
            ) -> Result<bool, StoreError> {
                let change = self.changes.pending(Some(org));
                let mut tx = self.pool.begin().await?;
                for sql in [
                    REVOKE_MEMBER_REFRESH,
                    REVOKE_MEMBER_GRANTS,
                    REVOKE_MEMBER_KEYS,
                ] {
                    sqlx::query(sql)
                        .bind(org.as_str())
                        .bind(user.as_str())
                        .bind(now)
                        .execute(&mut *tx)
                        .await?;
                }
                let done = sqlx::query(DELETE_MEMBER)
                    .bind(org.as_str())
                    .bind(user.as_str())
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                change.done().await;
                Ok(done.rows_affected() == 1)
            }

            #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.bump_session_epoch", otel.kind = "client", db.operation.name = "bump_session_epoch", db.system.name = Self::DB_SYSTEM))]
            async fn bump_session_epoch(&self, user: &UserId) -> Result<i64, StoreError> {
                let (epoch,): (i64,) = sqlx::query_as(BUMP_EPOCH)
                    .bind(user.as_str())
                    .fetch_optional(&self.pool)
                    .await?
                    .ok_or(StoreError::NotFound("user"))?;
                Ok(epoch)
            }
        }
    };
}

user_store!(SqliteStore);
user_store!(PgStore);
