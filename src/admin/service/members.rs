//! Members and API keys of an organisation.

use secrecy::{ExposeSecret, SecretString};

use super::{AdminError, AdminResult, MemberChange, OrgAdmin, validate_key_name};
use crate::apikeys::{self, KeyRequest};
use crate::crypto::{random_token, sha256_hex};
use crate::scope::ScopeSet;
use crate::store::{
    ApiKey, ApiKeyId, Email, Invitation, InvitationId, NewInvitation, OrgMember, Role, Standing,
    UserId,
};

/// A new invitation: the link (shown once, never stored: only its hash is) and whether it was
/// e-mailed (or why not).
pub struct InvitationCreated {
    pub invitation: Invitation,
    pub link: SecretString,
    pub emailed: Result<(), String>,
}

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

    /// Invites a person by e-mail address: a single-use link that expires
    /// (`CLARI_MCP_INVITATION_TTL`), returned once to the caller and e-mailed to the person
    /// when SMTP is configured. The answer is the same whether or not an account exists for the
    /// address, so an admin learns nothing about accounts; until the person accepts, they are
    /// not a member and hold nothing here.
    pub async fn invite(&self, email: &str, role: Role) -> AdminResult<InvitationCreated> {
        let email = Email::parse(email).map_err(|e| AdminError::invalid("email", e.to_string()))?;
        let now = self.now();
        let token = random_token(32);
        let invited_by = self
            .actor
            .id
            .clone()
            .unwrap_or_else(|| self.actor.kind.to_owned());
        let invitation = self
            .state
            .store
            .create_invitation(NewInvitation {
                org: &self.org.id,
                email: &email,
                role,
                token_hash: &sha256_hex(&token),
                invited_by: &invited_by,
                now,
                expires_at: now + self.state.config.invitation_ttl,
            })
            .await?;
        let link = SecretString::from(format!(
            "{}/invitations/{token}",
            self.state.config.public_url
        ));
        let emailed = self.send_invitation(&invitation, &link).await;
        self.state.audit.record(
            self.event("member.invited", invitation.id.as_str())
                .detail("email", email.as_str())
                .detail("role", role.as_str())
                .detail("expires_at", invitation.expires_at)
                .detail("emailed", emailed.is_ok()),
        );
        Ok(InvitationCreated {
            invitation,
            link,
            emailed,
        })
    }

    /// E-mails the link when a mail server is configured; says why not otherwise.
    async fn send_invitation(
        &self,
        invitation: &Invitation,
        link: &SecretString,
    ) -> Result<(), String> {
        let Some(mailer) = &self.state.mailer else {
            return Err("no mail server is configured (CLARI_MCP_SMTP_URL)".into());
        };
        let expires = crate::clock::rfc3339(invitation.expires_at);
        let inviter = self
            .actor
            .name
            .clone()
            .unwrap_or_else(|| "An administrator".to_owned());
        let (subject, body) = crate::mail::invitation_text(
            &self.org.name,
            &self.org.slug,
            &inviter,
            invitation.role.as_str(),
            link.expose_secret(),
            &expires,
        );
        mailer
            .send(&invitation.email, &subject, body)
            .await
            .map_err(|e| {
                tracing::warn!(error = %e, invitation = %invitation.id, "invitation not e-mailed");
                e.to_string()
            })
    }

    /// Invitations that can still be accepted, newest first.
    pub async fn invitations(&self) -> AdminResult<Vec<Invitation>> {
        Ok(self
            .state
            .store
            .pending_invitations(&self.org.id, self.now())
            .await?)
    }

    /// Withdraws a pending invitation: its link stops working.
    pub async fn revoke_invitation(&self, id: &str) -> AdminResult<()> {
        let id = InvitationId::parse(id).map_err(|_| AdminError::NotFound("invitation"))?;
        let store = &self.state.store;
        let ended = store
            .revoke_invitation(&self.org.id, &id, self.now())
            .await?;
        self.ended(
            ended,
            "invitation",
            "member.invitation_withdrawn",
            id.as_str(),
        )
    }

    /// Refuses a change that would leave the organisation without an active admin: someone
    /// other than `user` must still administer it.
    async fn keep_an_admin(&self, user: &UserId) -> AdminResult<()> {
        if self.another_admin(user).await? {
            return Ok(());
        }
        Err(AdminError::Conflict(
            "this is the organisation's last active admin; make someone else admin first".into(),
        ))
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
        let from = Standing::new(seen.role, seen.suspended);
        let to = Standing::new(
            change.role.unwrap_or(seen.role),
            change.suspended.unwrap_or(seen.suspended),
        );
        if !to.is_active_admin() {
            self.keep_an_admin(&seen.user.id).await?;
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
        if to.role != from.role {
            self.state.audit.record(
                self.event("member.role_changed", seen.user.id.as_str())
                    .detail("email", seen.user.email.as_str())
                    .detail("role", to.role.as_str()),
            );
        }
        if to.suspended != from.suspended {
            self.state.audit.record(
                self.event(
                    if to.suspended {
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
            role: to.role,
            suspended: to.suspended,
            ..seen.clone()
        })
    }

    /// Removes a person from the organisation, revoking what they hold in it.
    pub async fn remove_member(&self, user: &str) -> AdminResult<()> {
        let m = self.member(user).await?;
        self.keep_an_admin(&m.user.id).await?;
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
        let store = &self.state.store;
        let ended = store.revoke_api_key(&self.org.id, &id, self.now()).await?;
        self.ended(ended, "API key", "api_key.revoked", id.as_str())
    }
}
