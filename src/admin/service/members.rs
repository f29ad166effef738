//! Members and API keys of an organisation.

use secrecy::{ExposeSecret, SecretString};

use super::{AdminError, AdminResult, MemberChange, OrgAdmin, validate_key_name};
use crate::apikeys::{self, KeyRequest};
use crate::crypto::Passwords;
use crate::scope::ScopeSet;
use crate::store::{ApiKey, ApiKeyId, Email, OrgMember, Role, StoreError, UserId};

/// The longest initial password an admin may set (within the hasher's byte limit whatever the
/// characters).
pub const MAX_INITIAL_PASSWORD_CHARS: usize = 256;

/// Whether a member with `role` may hold a key (or grant) with these scopes: `admin` is for
/// the organisation's admins only.
pub fn may_hold(scopes: &ScopeSet, role: Role) -> bool {
    scopes.grantable(role == Role::Admin) == *scopes
}

impl OrgAdmin<'_> {
    // --- members ----------------------------------------------------------------------------

    pub async fn members(&self) -> AdminResult<Vec<OrgMember>> {
        Ok(self.state.store.list_members(&self.org.id).await?)
    }

    pub async fn member(&self, user: &str) -> AdminResult<OrgMember> {
        let id = UserId::parse(user).map_err(|_| AdminError::NotFound("member"))?;
        self.state
            .store
            .member(&self.org.id, &id)
            .await?
            .ok_or(AdminError::NotFound("member"))
    }

    /// Adds a person: a new account with an initial password, or an existing account (without
    /// one: their password is theirs) as a member of this organisation.
    pub async fn add_member(
        &self,
        email: &str,
        role: Role,
        password: Option<SecretString>,
    ) -> AdminResult<OrgMember> {
        let email = Email::parse(email).map_err(|e| AdminError::invalid("email", e.to_string()))?;
        let now = self.now();
        let existing = self.state.store.find_user_by_email(&email).await?;
        let user = match (existing, password) {
            (Some(_), Some(_)) => {
                return Err(AdminError::Conflict(format!(
                    "password: {email} already has an account with its own password; add them without one"
                )));
            }
            (Some(c), None) => {
                self.state
                    .store
                    .add_membership(&self.org.id, &c.user.id, role, now)
                    .await?;
                c.user.id
            }
            (None, None) => {
                return Err(AdminError::Conflict(format!(
                    "password: {email} has no account yet: give an initial password"
                )));
            }
            (None, Some(password)) => {
                if password.expose_secret().chars().count() > MAX_INITIAL_PASSWORD_CHARS {
                    return Err(AdminError::invalid(
                        "password",
                        format!("at most {MAX_INITIAL_PASSWORD_CHARS} characters"),
                    ));
                }
                Passwords::check_policy(&password)
                    .map_err(|e| AdminError::invalid("password", e.to_string()))?;
                let hash = self
                    .state
                    .passwords
                    .hash(password)
                    .await
                    .map_err(|e| AdminError::Store(StoreError::Conflict(e.to_string())))?;
                self.state
                    .store
                    .create_user(&self.org.id, &email, &hash, role, now)
                    .await?
                    .id
            }
        };
        self.state.audit.record(
            self.event("user.added_to_org", user.as_str())
                .detail("email", email.as_str())
                .detail("role", role.as_str()),
        );
        self.member(user.as_str()).await
    }

    /// Whether someone other than `user` still administers the organisation.
    async fn another_admin(&self, user: &UserId) -> AdminResult<bool> {
        Ok(self.members().await?.iter().any(|m| {
            &m.user.id != user && m.role == Role::Admin && !m.suspended && !m.user.disabled
        }))
    }

    /// Changes role or suspension if the membership is still `seen`.
    pub async fn update_member(
        &self,
        seen: &OrgMember,
        change: MemberChange,
    ) -> AdminResult<OrgMember> {
        let from = (seen.role, seen.suspended);
        let to = (
            change.role.unwrap_or(seen.role),
            change.suspended.unwrap_or(seen.suspended),
        );
        let stays_admin = to.0 == Role::Admin && !to.1;
        if !stays_admin && !self.another_admin(&seen.user.id).await? {
            return Err(AdminError::Conflict(
                "this is the organisation's last active admin; make someone else admin first"
                    .into(),
            ));
        }
        if !self
            .state
            .store
            .update_member(&self.org.id, &seen.user.id, from, to)
            .await?
        {
            return Err(AdminError::Changed(
                "the member changed since you read them; reload and try again".into(),
            ));
        }
        if to.0 != from.0 {
            self.state.audit.record(
                self.event("member.role_changed", seen.user.id.as_str())
                    .detail("email", seen.user.email.as_str())
                    .detail("role", to.0.as_str()),
            );
        }
        if to.1 != from.1 {
            self.state.audit.record(
                self.event(
                    if to.1 {
                        "member.suspended"
                    } else {
                        "member.reinstated"
                    },
                    seen.user.id.as_str(),
                )
                .detail("email", seen.user.email.as_str()),
            );
        }
        Ok(OrgMember {
            role: to.0,
            suspended: to.1,
            ..seen.clone()
        })
    }

    /// Removes a person from the organisation, revoking what they hold in it.
    pub async fn remove_member(&self, user: &str) -> AdminResult<()> {
        let m = self.member(user).await?;
        if !self.another_admin(&m.user.id).await? {
            return Err(AdminError::Conflict(
                "this is the organisation's last active admin; make someone else admin first"
                    .into(),
            ));
        }
        if !self
            .state
            .store
            .remove_member(&self.org.id, &m.user.id, self.now())
            .await?
        {
            return Err(AdminError::NotFound("member"));
        }
        self.state.audit.record(
            self.event("member.removed", m.user.id.as_str())
                .detail("email", m.user.email.as_str()),
        );
        Ok(())
    }

    // --- API keys ---------------------------------------------------------------------------

    pub async fn api_keys(&self) -> AdminResult<Vec<ApiKey>> {
        Ok(self.state.store.list_api_keys(&self.org.id).await?)
    }

    /// Mints a key for a member (shown once). `admin` only for a member who is an admin.
    pub async fn create_api_key(
        &self,
        for_user: &UserId,
        name: &str,
        scopes: ScopeSet,
        expires_at: Option<i64>,
    ) -> AdminResult<(SecretString, ApiKey)> {
        let name = validate_key_name(name)?;
        if scopes.is_empty() {
            return Err(AdminError::invalid("scopes", "choose at least one scope"));
        }
        let now = self.now();
        if expires_at.is_some_and(|e| e <= now) {
            return Err(AdminError::invalid(
                "expires_at",
                "the expiry is in the past",
            ));
        }
        let member = self
            .state
            .store
            .member(&self.org.id, for_user)
            .await?
            .ok_or(AdminError::NotFound("member"))?;
        if !may_hold(&scopes, member.role) {
            return Err(AdminError::Conflict(
                "scopes: the admin scope is only for the organisation's admins".into(),
            ));
        }
        let (secret, record) = apikeys::mint(
            self.state.store.as_ref(),
            KeyRequest {
                org: &self.org.id,
                user: for_user,
                name: &name,
                scopes,
                expires_at,
                now,
            },
        )
        .await?;
        self.state.audit.record(
            self.event("api_key.created", record.id.as_str())
                .detail("name", record.name.as_str())
                .detail("user_id", for_user.as_str())
                .detail("scopes", record.scopes.to_string())
                .detail("expires_at", record.expires_at),
        );
        let key = ApiKey {
            id: record.id,
            organization_id: record.organization_id,
            user_id: record.user_id,
            user_email: member.user.email,
            name: record.name,
            key_hint: record.key_hint,
            scopes: record.scopes,
            expires_at: record.expires_at,
            last_used_at: None,
            revoked_at: None,
            created_at: record.created_at,
        };
        Ok((secret, key))
    }

    pub async fn revoke_api_key(&self, id: &str) -> AdminResult<()> {
        let id = ApiKeyId::parse(id).map_err(|_| AdminError::NotFound("API key"))?;
        if !self
            .state
            .store
            .revoke_api_key(&self.org.id, &id, self.now())
            .await?
        {
            return Err(AdminError::NotFound("API key"));
        }
        self.state
            .audit
            .record(self.event("api_key.revoked", id.as_str()));
        Ok(())
    }
}
