//! An organisation's single sign-on connection: what its admins set (pages, API, CLI).

use secrecy::{ExposeSecret, SecretString};

use super::{AdminError, AdminResult, OrgAdmin};
use crate::sso::connection::{check_domains, check_issuer, check_name};
use crate::store::SsoConnection;

/// The connection as its admins see it (never the client secret).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SsoSettings {
    pub issuer: String,
    pub client_id: String,
    pub client_secret_set: bool,
    pub domains: Vec<String>,
    pub groups_claim: String,
    pub admin_group: Option<String>,
    pub member_group: Option<String>,
    pub required: bool,
    /// What to register at the provider as the redirect URI.
    pub redirect_uri: String,
}

/// A new or replaced connection; `client_secret: None` keeps the stored one.
#[derive(Debug)]
pub struct SsoChange {
    pub issuer: String,
    pub client_id: String,
    pub client_secret: Option<SecretString>,
    pub domains: Vec<String>,
    pub groups_claim: Option<String>,
    pub admin_group: Option<String>,
    pub member_group: Option<String>,
    pub required: bool,
}

impl OrgAdmin<'_> {
    fn redirect_uri(&self) -> String {
        format!(
            "{}{}",
            self.state.config.public_url,
            crate::sso::CALLBACK_PATH
        )
    }

    pub async fn sso(&self) -> AdminResult<Option<SsoSettings>> {
        let Some(c) = self.state.store.sso_connection(&self.org.id).await? else {
            return Ok(None);
        };
        let domains = self.state.store.sso_domains(&self.org.id).await?;
        Ok(Some(SsoSettings {
            issuer: c.issuer,
            client_id: c.client_id,
            client_secret_set: true,
            domains,
            groups_claim: c.groups_claim,
            admin_group: c.admin_group,
            member_group: c.member_group,
            required: c.required,
            redirect_uri: self.redirect_uri(),
        }))
    }

    /// Checks and stores the connection (the secret sealed by the vault, write-only).
    pub async fn set_sso(&self, change: SsoChange) -> AdminResult<SsoSettings> {
        let invalid = |field, e: String| AdminError::invalid(field, e);
        let issuer = check_issuer(&change.issuer, self.state.config.danger_sso_allow_loopback)
            .map_err(|e| invalid("issuer", e))?;
        let client_id =
            check_name("client_id", &change.client_id).map_err(|e| invalid("client_id", e))?;
        let domains = check_domains(&change.domains).map_err(|e| invalid("domains", e))?;
        let groups_claim = check_name(
            "groups_claim",
            change.groups_claim.as_deref().unwrap_or("groups"),
        )
        .map_err(|e| invalid("groups_claim", e))?;
        let group = |what, g: Option<String>| {
            g.filter(|g| !g.trim().is_empty())
                .map(|g| check_name(what, &g))
                .transpose()
                .map_err(|e| invalid(what, e))
        };
        let admin_group = group("admin_group", change.admin_group)?;
        let member_group = group("member_group", change.member_group)?;
        let stored = self.state.store.sso_connection(&self.org.id).await?;
        let (ciphertext, key_id) = match (&change.client_secret, &stored) {
            (Some(s), _) => {
                let s = s.expose_secret();
                if s.is_empty() || s.len() > 1024 || s.chars().any(char::is_control) {
                    return Err(invalid(
                        "client_secret",
                        "1 to 1024 printable characters".into(),
                    ));
                }
                let sealed = self.state.vault.seal(s.as_bytes());
                (sealed.ciphertext, sealed.key_id)
            }
            (None, Some(c)) => (c.secret_ciphertext.clone(), c.secret_key_id.clone()),
            // Whether a secret is needed depends on what is stored: a state conflict.
            (None, None) => {
                return Err(AdminError::Conflict(
                    "client_secret: no secret is stored yet; give the provider's client secret"
                        .into(),
                ));
            }
        };
        let conn = SsoConnection {
            organization_id: self.org.id.clone(),
            issuer,
            client_id,
            secret_ciphertext: ciphertext,
            secret_key_id: key_id,
            groups_claim,
            admin_group,
            member_group,
            required: change.required,
            updated_at: self.now(),
        };
        self.state.store.put_sso_connection(&conn, &domains).await?;
        self.state.audit.record(
            self.event("sso.configured", self.org.id.as_str())
                .detail("issuer", conn.issuer.as_str())
                .detail("domains", domains.join(","))
                .detail("required", conn.required)
                .detail("secret_replaced", change.client_secret.is_some()),
        );
        Ok(self.sso().await?.expect("just stored"))
    }

    pub async fn delete_sso(&self) -> AdminResult<()> {
        let ended = self.state.store.delete_sso_connection(&self.org.id).await?;
        let what = "single sign-on connection";
        self.ended(ended, what, "sso.removed", self.org.id.as_str())
    }
}
