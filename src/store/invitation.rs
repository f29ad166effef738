//! Invitations: how a person comes to belong to an organisation. An admin names an e-mail
//! address and a role; the person accepts with their own account (signed in) or creates one with
//! their own password. Until then nobody is a member and nothing is granted.

use async_trait::async_trait;

use super::user::{INSERT as INSERT_USER, INSERT_MEMBERSHIP};
use super::{
    Email, Invitation, InvitationId, InvitationOffer, OrgId, PgStore, Role, SqliteStore,
    StoreError, User, UserCredentials, UserId,
};
use crate::clock::UnixTime;

/// Pending invitations one organisation may hold at once: anyone with an admin key can create
/// them, so they are bounded like every other row an outsider can make us hold.
pub const MAX_PENDING_INVITATIONS: i64 = 500;

/// What a new invitation is.
pub struct NewInvitation<'a> {
    pub org: &'a OrgId,
    pub email: &'a Email,
    pub role: Role,
    pub token_hash: &'a str,
    pub invited_by: &'a str,
    pub now: UnixTime,
    pub expires_at: UnixTime,
}

/// Why an invitation cannot be accepted.
#[derive(Debug, thiserror::Error)]
pub enum AcceptError {
    #[error("the invitation is unknown, used, withdrawn or expired")]
    Gone,
    #[error("you are already a member of this organisation")]
    AlreadyMember,
    #[error("an account with this e-mail address already exists: sign in to accept")]
    AccountExists,
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[async_trait]
pub trait InvitationStore: Send + Sync {
    /// Stores an invitation, withdrawing any pending one for the same address in the same
    /// organisation (one live link per person). Refused when the person is already a member or
    /// the organisation holds [`MAX_PENDING_INVITATIONS`].
    async fn create_invitation(&self, new: NewInvitation<'_>) -> Result<Invitation, StoreError>;
    /// The organisation's invitations that can still be accepted, newest first.
    async fn pending_invitations(
        &self,
        org: &OrgId,
        now: UnixTime,
    ) -> Result<Vec<Invitation>, StoreError>;
    /// The live invitation a link's token stands for.
    async fn invitation_by_token(
        &self,
        token_hash: &str,
        now: UnixTime,
    ) -> Result<Option<InvitationOffer>, StoreError>;
    /// Withdraws a pending invitation; `false` when there is none by that id in `org`.
    async fn revoke_invitation(
        &self,
        org: &OrgId,
        id: &InvitationId,
        now: UnixTime,
    ) -> Result<bool, StoreError>;
    /// Accepts for an existing account, in one transaction: the invitation is used once and the
    /// membership appears with the invited role.
    async fn accept_invitation(
        &self,
        token_hash: &str,
        user: &UserId,
        now: UnixTime,
    ) -> Result<Invitation, AcceptError>;
    /// Accepts by creating the account (with the password its owner just chose), in one
    /// transaction with the membership.
    async fn accept_invitation_as_new_user(
        &self,
        token_hash: &str,
        password_hash: &str,
        now: UnixTime,
    ) -> Result<(Invitation, User), AcceptError>;
}

const BY_ID: &str = "\
SELECT id, organization_id, email, role, invited_by, created_at, expires_at, accepted_at, revoked_at
FROM invitations WHERE organization_id = $1 AND id = $2";

const BY_TOKEN: &str = "\
SELECT id, organization_id, email, role, invited_by, created_at, expires_at, accepted_at, revoked_at
FROM invitations WHERE token_hash = $1";

const PENDING: &str = "\
SELECT id, organization_id, email, role, invited_by, created_at, expires_at, accepted_at, revoked_at
FROM invitations
WHERE organization_id = $1 AND accepted_at IS NULL AND revoked_at IS NULL AND expires_at > $2
ORDER BY created_at DESC, id DESC";

const OFFER: &str = "\
SELECT i.id, i.organization_id, i.email, i.role, i.invited_by, i.created_at, i.expires_at,
    i.accepted_at, i.revoked_at, o.name AS org_name, COALESCE(o.slug, o.id) AS org_slug,
    o.disabled AS org_disabled
FROM invitations i JOIN organizations o ON o.id = i.organization_id
WHERE i.token_hash = $1 AND i.accepted_at IS NULL AND i.revoked_at IS NULL AND i.expires_at > $2";

const IS_MEMBER: &str = "\
SELECT 1 FROM memberships m JOIN users u ON u.id = m.user_id
WHERE m.organization_id = $1 AND u.email = $2";

const COUNT_PENDING: &str = "\
SELECT COUNT(*) FROM invitations
WHERE organization_id = $1 AND accepted_at IS NULL AND revoked_at IS NULL AND expires_at > $2";

const WITHDRAW_SAME: &str = "\
UPDATE invitations SET revoked_at = $3
WHERE organization_id = $1 AND email = $2 AND accepted_at IS NULL AND revoked_at IS NULL";

const INSERT: &str = "\
INSERT INTO invitations
    (id, organization_id, email, role, token_hash, invited_by, created_at, expires_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";

/// Takes the invitation once: only one of two concurrent acceptances updates the row.
const TAKE: &str = "\
UPDATE invitations SET accepted_at = $2, accepted_by = $3
WHERE token_hash = $1 AND accepted_at IS NULL AND revoked_at IS NULL AND expires_at > $2";

const REVOKE: &str = "\
UPDATE invitations SET revoked_at = $3
WHERE organization_id = $1 AND id = $2 AND accepted_at IS NULL AND revoked_at IS NULL";

macro_rules! invitation_store {
    ($store:ty, $db:ty) => {
        impl $store {
            /// The first step of every acceptance, inside its transaction: takes the invitation
            /// for `accepted_by` and reads it back; `Gone` when it was used, withdrawn or expired
            /// (or a concurrent acceptance took it first).
            #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.take_invitation", otel.kind = "client", db.operation.name = "take_invitation", db.system.name = Self::DB_SYSTEM))]
            async fn take_invitation(
                tx: &mut <$db as sqlx::Database>::Connection,
                token_hash: &str,
                accepted_by: &UserId,
                now: UnixTime,
            ) -> Result<Invitation, AcceptError> {
                let taken = sqlx::query(TAKE)
                    .bind(token_hash)
                    .bind(now)
                    .bind(accepted_by.as_str())
                    .execute(&mut *tx)
                    .await
                    .map_err(StoreError::from)?;
                if taken.rows_affected() != 1 {
                    return Err(AcceptError::Gone);
                }
                Ok(sqlx::query_as(BY_TOKEN)
                    .bind(token_hash)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(StoreError::from)?)
            }
        }

        #[async_trait]
        impl InvitationStore for $store {
            #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.create_invitation", otel.kind = "client", db.operation.name = "create_invitation", db.system.name = Self::DB_SYSTEM))]
            async fn create_invitation(
                &self,
                new: NewInvitation<'_>,
            ) -> Result<Invitation, StoreError> {
                // The first statement writes, so SQLite takes the write lock at once instead of
                // upgrading a read transaction (which fails when another writer went first).
                let mut tx = self.pool.begin().await?;
                sqlx::query(WITHDRAW_SAME)
                    .bind(new.org.as_str())
                    .bind(new.email.as_str())
                    .bind(new.now)
                    .execute(&mut *tx)
                    .await?;
                let member: Option<(i32,)> = sqlx::query_as(IS_MEMBER)
                    .bind(new.org.as_str())
                    .bind(new.email.as_str())
                    .fetch_optional(&mut *tx)
                    .await?;
                if member.is_some() {
                    return Err(StoreError::Conflict(format!(
                        "{} is already a member of this organisation",
                        new.email
                    )));
                }
                let (pending,): (i64,) = sqlx::query_as(COUNT_PENDING)
                    .bind(new.org.as_str())
                    .bind(new.now)
                    .fetch_one(&mut *tx)
                    .await?;
                if pending >= MAX_PENDING_INVITATIONS {
                    return Err(StoreError::Conflict(format!(
                        "the organisation already has {MAX_PENDING_INVITATIONS} pending invitations: withdraw some first"
                    )));
                }
                let id = InvitationId::new_random();
                sqlx::query(INSERT)
                    .bind(id.as_str())
                    .bind(new.org.as_str())
                    .bind(new.email.as_str())
                    .bind(new.role.as_str())
                    .bind(new.token_hash)
                    .bind(new.invited_by)
                    .bind(new.now)
                    .bind(new.expires_at)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| match &e {
                        sqlx::Error::Database(d) if d.is_foreign_key_violation() => {
                            StoreError::NotFound("organisation")
                        }
                        _ => e.into(),
                    })?;
                let created: Invitation = sqlx::query_as(BY_ID)
                    .bind(new.org.as_str())
                    .bind(id.as_str())
                    .fetch_one(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(created)
            }

            #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.pending_invitations", otel.kind = "client", db.operation.name = "pending_invitations", db.system.name = Self::DB_SYSTEM))]
            async fn pending_invitations(
                &self,
                org: &OrgId,
                now: UnixTime,
            ) -> Result<Vec<Invitation>, StoreError> {
                Ok(sqlx::query_as(PENDING)
                    .bind(org.as_str())
                    .bind(now)
                    .fetch_all(&self.pool)
                    .await?)
            }

            #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.invitation_by_token", otel.kind = "client", db.operation.name = "invitation_by_token", db.system.name = Self::DB_SYSTEM))]
            async fn invitation_by_token(
                &self,
                token_hash: &str,
                now: UnixTime,
            ) -> Result<Option<InvitationOffer>, StoreError> {
                Ok(sqlx::query_as(OFFER)
                    .bind(token_hash)
                    .bind(now)
                    .fetch_optional(&self.pool)
                    .await?)
            }

            #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.revoke_invitation", otel.kind = "client", db.operation.name = "revoke_invitation", db.system.name = Self::DB_SYSTEM))]
            async fn revoke_invitation(
                &self,
                org: &OrgId,
                id: &InvitationId,
                now: UnixTime,
            ) -> Result<bool, StoreError> {
                let done = sqlx::query(REVOKE)
                    .bind(org.as_str())
                    .bind(id.as_str())
                    .bind(now)
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected() == 1)
            }

            #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.accept_invitation", otel.kind = "client", db.operation.name = "accept_invitation", db.system.name = Self::DB_SYSTEM))]
            async fn accept_invitation(
                &self,
                token_hash: &str,
                user: &UserId,
                now: UnixTime,
            ) -> Result<Invitation, AcceptError> {
                let mut tx = self.pool.begin().await.map_err(StoreError::from)?;
                let inv = Self::take_invitation(&mut tx, token_hash, user, now).await?;
                sqlx::query(INSERT_MEMBERSHIP)
                    .bind(user.as_str())
                    .bind(inv.organization_id.as_str())
                    .bind(inv.role.as_str())
                    .bind(now)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| match &e {
                        sqlx::Error::Database(d) if d.is_unique_violation() => {
                            AcceptError::AlreadyMember
                        }
                        _ => StoreError::from(e).into(),
                    })?;
                tx.commit().await.map_err(StoreError::from)?;
                Ok(inv)
            }

            #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.accept_invitation_as_new_user", otel.kind = "client", db.operation.name = "accept_invitation_as_new_user", db.system.name = Self::DB_SYSTEM))]
            async fn accept_invitation_as_new_user(
                &self,
                token_hash: &str,
                password_hash: &str,
                now: UnixTime,
            ) -> Result<(Invitation, User), AcceptError> {
                // Taking the invitation first makes this a write transaction from the start.
                let mut tx = self.pool.begin().await.map_err(StoreError::from)?;
                let id = UserId::new_random();
                let inv = Self::take_invitation(&mut tx, token_hash, &id, now).await?;
                let created: UserCredentials = sqlx::query_as(INSERT_USER)
                    .bind(id.as_str())
                    .bind(&inv.email)
                    .bind(password_hash)
                    .bind(now)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(|e| match &e {
                        sqlx::Error::Database(d) if d.is_unique_violation() => {
                            AcceptError::AccountExists
                        }
                        _ => StoreError::from(e).into(),
                    })?;
                sqlx::query(INSERT_MEMBERSHIP)
                    .bind(id.as_str())
                    .bind(inv.organization_id.as_str())
                    .bind(inv.role.as_str())
                    .bind(now)
                    .execute(&mut *tx)
                    .await
                    .map_err(StoreError::from)?;
                tx.commit().await.map_err(StoreError::from)?;
                Ok((inv, created.user))
            }
        }
    };
}

invitation_store!(SqliteStore, sqlx::Sqlite);
invitation_store!(PgStore, sqlx::Postgres);
