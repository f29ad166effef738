//! Connected applications, the audit trail and the kill switch of an organisation.

use super::{AdminError, AdminResult, ConnectedClient, OrgAdmin};
use crate::store::{AuditFilter, AuditRecord, ClientId, GrantId, GrantView};

impl OrgAdmin<'_> {
    // --- grants and clients -------------------------------------------------------------------

    pub async fn grants(&self) -> AdminResult<Vec<GrantView>> {
        Ok(self.state.store.grants_of_org(&self.org.id).await?)
    }

    pub async fn revoke_grant(&self, id: &str) -> AdminResult<()> {
        let id = GrantId::parse(id).map_err(|_| AdminError::NotFound("grant"))?;
        let grants = self.grants().await?;
        let Some(g) = grants.iter().find(|g| g.grant.id == id) else {
            return Err(AdminError::NotFound("grant"));
        };
        self.state
            .store
            .revoke_grant(&self.org.id, &id, self.now())
            .await?;
        self.state.audit.record(
            self.event("grant.revoked", id.as_str())
                .detail("client_id", g.grant.client_id.as_str())
                .detail("client_name", g.client_name.as_str())
                .detail("user_email", g.user_email.as_str()),
        );
        Ok(())
    }

    /// The applications connected to the organisation, one entry per client.
    pub async fn clients(&self) -> AdminResult<Vec<ConnectedClient>> {
        let mut out: Vec<ConnectedClient> = Vec::new();
        for g in self.grants().await? {
            match out
                .iter_mut()
                .find(|c| c.client_id == g.grant.client_id.as_str())
            {
                Some(c) => {
                    c.grants += 1;
                    if !c.users.contains(&g.user_email) {
                        c.users.push(g.user_email);
                    }
                    c.first_granted_at = c.first_granted_at.min(g.grant.created_at);
                    c.last_used_at = c.last_used_at.max(g.last_used_at);
                }
                None => out.push(ConnectedClient {
                    client_id: g.grant.client_id.to_string(),
                    client_name: g.client_name,
                    redirect_host: g.redirect_host,
                    grants: 1,
                    users: vec![g.user_email],
                    first_granted_at: g.grant.created_at,
                    last_used_at: g.last_used_at,
                }),
            }
        }
        out.sort_by(|a, b| a.client_id.cmp(&b.client_id));
        Ok(out)
    }

    /// Disconnects an application from the organisation: every grant of it here is revoked.
    pub async fn revoke_client(&self, client_id: &str) -> AdminResult<usize> {
        let id = ClientId::parse(client_id).map_err(|_| AdminError::NotFound("client"))?;
        let grants: Vec<GrantView> = self
            .grants()
            .await?
            .into_iter()
            .filter(|g| g.grant.client_id == id)
            .collect();
        if grants.is_empty() {
            return Err(AdminError::NotFound("client"));
        }
        for g in &grants {
            self.state
                .store
                .revoke_grant(&self.org.id, &g.grant.id, self.now())
                .await?;
        }
        self.state.audit.record(
            self.event("client.disconnected", id.as_str())
                .detail("client_name", grants[0].client_name.as_str())
                .detail("grants", grants.len()),
        );
        Ok(grants.len())
    }

    // --- audit and kill switch ----------------------------------------------------------------

    /// One page of the organisation's audit trail, newest first; `before` is the cursor.
    pub async fn audit(
        &self,
        filter: &AuditFilter,
        before: Option<i64>,
        limit: i64,
    ) -> AdminResult<Vec<AuditRecord>> {
        Ok(self
            .state
            .store
            .find_audit_events(self.org.id.as_str(), filter, before, limit)
            .await?)
    }

    /// Pulls the kill switch; `confirm` must repeat the organisation's name.
    pub async fn kill(
        &self,
        reason: &str,
        confirm: &str,
    ) -> AdminResult<crate::governance::KillReport> {
        if super::is_blank(reason) || reason.chars().count() > 500 {
            return Err(AdminError::invalid(
                "reason",
                "say why, in 1 to 500 characters (it is kept in the audit trail)",
            ));
        }
        if confirm.trim() != self.org.name {
            return Err(AdminError::Conflict(
                "confirm: type the organisation's name exactly to confirm".into(),
            ));
        }
        Ok(crate::governance::kill(
            self.state,
            &self.org.id,
            self.actor.clone(),
            Some(reason.trim()),
            &self.meta,
        )
        .await?)
    }
}
