//! What a SCIM User means for the membership of the person it names.

use serde_json::{Map, Value};

use super::resource::{self, ScimError};
use super::{Caller, store_failed};
use crate::admin::OrgAdmin;
use crate::state::AppState;
use crate::store::{Email, Role, Standing};

/// An active User: a suspended member is reinstated; someone not yet a member is invited (one
/// pending invitation per address).
pub(super) async fn provision(
    state: &AppState,
    c: &Caller,
    attrs: &Map<String, Value>,
) -> Result<(), ScimError> {
    let Some(email) = resource::email_of(attrs) else {
        return Ok(());
    };
    let Ok(parsed) = Email::parse(&email) else {
        return Ok(());
    };
    let account = state
        .store
        .find_user_by_email(&parsed)
        .await
        .map_err(store_failed)?;
    let member = match &account {
        Some(a) => state
            .store
            .member(&c.org.id, &a.user.id)
            .await
            .map_err(store_failed)?,
        None => None,
    };
    match member {
        Some(m)
            if m.suspended
                && state
                    .store
                    .suspended_by_scim(&c.org.id, &m.user.id)
                    .await
                    .map_err(store_failed)? =>
        {
            let done = state
                .store
                .update_member(
                    &c.org.id,
                    &m.user.id,
                    Standing::new(m.role, true),
                    Standing::new(m.role, false),
                )
                .await
                .map_err(store_failed)?;
            if done {
                state.audit.record(
                    c.event("member.reinstated", m.user.id.as_str())
                        .detail("email", m.user.email.as_str()),
                );
            }
        }
        Some(_) => {}
        None => {
            let pending = state
                .store
                .pending_invitations(&c.org.id, state.now())
                .await
                .map_err(store_failed)?;
            if !pending.iter().any(|i| i.email == parsed.as_str()) {
                let admin = OrgAdmin {
                    state,
                    org: c.org.clone(),
                    actor: c.actor(),
                    meta: c.meta.clone(),
                };
                admin
                    .invite(parsed.as_str(), Role::Member)
                    .await
                    .map_err(|e| ScimError::new(409, None, e.to_string()))?;
            }
        }
    }
    Ok(())
}

/// A deactivated, deleted or re-addressed User: the member is suspended with everything they
/// hold here revoked in one transaction; a pending invitation is withdrawn.
pub(super) async fn deprovision(
    state: &AppState,
    c: &Caller,
    attrs: &Map<String, Value>,
    action: &'static str,
) -> Result<(), ScimError> {
    let Some(email) = resource::email_of(attrs).and_then(|e| Email::parse(&e).ok()) else {
        return Ok(());
    };
    let now = state.now();
    if let Some(account) = state
        .store
        .find_user_by_email(&email)
        .await
        .map_err(store_failed)?
    {
        let member = state
            .store
            .member(&c.org.id, &account.user.id)
            .await
            .map_err(store_failed)?;
        // Revoked even when an admin had suspended the person already (a suspension alone
        // keeps grants and keys); audited once, when it changes the membership.
        let was_active = member.as_ref().is_some_and(|m| !m.suspended);
        if member.is_some()
            && state
                .store
                .deprovision_member(&c.org.id, &account.user.id, now)
                .await
                .map_err(store_failed)?
            && was_active
        {
            state.audit.record(
                c.event(action, account.user.id.as_str())
                    .detail("email", email.as_str())
                    .detail("revoked", "grants, refresh tokens, API keys"),
            );
        }
    }
    for inv in state
        .store
        .pending_invitations(&c.org.id, now)
        .await
        .map_err(store_failed)?
        .into_iter()
        .filter(|i| i.email == email.as_str())
    {
        state
            .store
            .revoke_invitation(&c.org.id, &inv.id, now)
            .await
            .map_err(store_failed)?;
    }
    Ok(())
}
