//! What an organisation's admin may do, in one place: the admin pages, `/api/v1` and the operator
//! CLI all call these, so a rule (the last admin stays, `admin` only for admins, a Clari key is
//! validated and sealed, every change is audited) holds whichever door was used.

mod access;
mod machines;
mod members;
mod scim;
mod sso;

pub use machines::{MACHINE_SECRET_PREFIX, MachineKeys, NewMachineClient};
pub use members::{InvitationCreated, may_hold};
pub use scim::SCIM_TOKEN_PREFIX;
pub use sso::{SsoChange, SsoSettings};

use secrecy::{ExposeSecret, SecretString};

use crate::audit::{Actor, Event};
use crate::clari::types::Limits;
use crate::crypto::token::hint;
use crate::http::RequestMeta;
use crate::orgname::OrgName;
use crate::redact::{RedactionPolicy, Redactor};
use crate::state::AppState;
use crate::store::{ClariCredentialInfo, OrgId, Organization, Role, StoreError, UserId};

/// Why an admin action did not happen. Each has a stable `code` for the API.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Changed(String),
    #[error(transparent)]
    Store(StoreError),
}

impl AdminError {
    pub fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        Self::Invalid {
            field,
            message: message.into(),
        }
    }

    /// The stable code of the API's error body.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotFound(_) => "not_found",
            Self::Invalid { .. } => "invalid_argument",
            Self::Conflict(_) => "conflict",
            Self::Changed(_) => "precondition_failed",
            Self::Store(_) => "unavailable",
        }
    }
}

impl From<StoreError> for AdminError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(what) => Self::NotFound(what),
            StoreError::Conflict(why) => Self::Conflict(why),
            other => Self::Store(other),
        }
    }
}

pub type AdminResult<T> = Result<T, AdminError>;

/// An organisation's settings as the admin sees and edits them.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct OrgSettings {
    pub id: OrgId,
    pub name: String,
    pub slug: String,
    pub disabled: bool,
    pub created_at: i64,
    /// `None` follows the server's default (`CLARI_MCP_REDACT`).
    pub redaction: Option<RedactionPolicy>,
    /// The organisation's admins must use two-step sign-in.
    pub require_admin_mfa: bool,
    /// Every token of the organisation's clients must be DPoP-bound (RFC 9449).
    pub require_dpop: bool,
    /// The IANA time zone whose whole days the tools' dates mean (UTC by default).
    pub time_zone: String,
}

/// A change to the settings; `None` leaves a field as it is. `redaction: Some(None)` returns
/// to the server's default.
#[derive(Debug, Default)]
pub struct SettingsChange {
    pub name: Option<String>,
    pub redaction: Option<Option<RedactionPolicy>>,
    pub require_admin_mfa: Option<bool>,
    pub require_dpop: Option<bool>,
    /// An IANA time zone name.
    pub time_zone: Option<String>,
}

/// A change to a membership; `None` leaves a field as it is.
#[derive(Debug, Default)]
pub struct MemberChange {
    pub role: Option<Role>,
    pub suspended: Option<bool>,
}

/// A connected application: one client's live grants in the organisation.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ConnectedClient {
    pub client_id: String,
    pub client_name: String,
    pub redirect_host: String,
    pub grants: usize,
    pub users: Vec<String>,
    pub first_granted_at: i64,
    pub last_used_at: Option<i64>,
}

/// Nothing but spaces and control characters.
pub fn is_blank(text: &str) -> bool {
    text.chars().all(|c| c.is_whitespace() || c.is_control())
}

/// An organisation name people can tell apart (see [`crate::orgname`]).
pub fn validate_org_name(raw: &str) -> AdminResult<OrgName> {
    OrgName::parse(raw).map_err(|e| AdminError::invalid("name", e.to_string()))
}

/// A Clari API key: one token of printable ASCII, 8 to 512 characters.
pub fn validate_clari_key(key: &SecretString) -> AdminResult<()> {
    let k = key.expose_secret();
    if k.trim() != k || k.chars().any(|c| !c.is_ascii_graphic()) {
        return Err(AdminError::invalid(
            "api_key",
            "the Clari API key must be one token of printable characters without spaces",
        ));
    }
    if !(8..=512).contains(&k.len()) {
        return Err(AdminError::invalid(
            "api_key",
            "the Clari API key must be between 8 and 512 characters long",
        ));
    }
    Ok(())
}

/// A key or grant name shown in lists: 1 to 100 printable characters.
pub fn validate_key_name(name: &str) -> AdminResult<String> {
    if name.chars().count() > 100 || name.chars().any(char::is_control) || is_blank(name) {
        return Err(AdminError::invalid(
            "name",
            "give the key a name of 1 to 100 characters (no control characters)",
        ));
    }
    Ok(name.trim().to_owned())
}

/// A time zone as stored: its IANA name, checked against the built-in database.
pub fn validate_time_zone(name: &str) -> AdminResult<String> {
    if name.len() > 64 {
        return Err(AdminError::invalid(
            "time_zone",
            "an IANA time zone name has at most 64 characters",
        ));
    }
    let tz =
        crate::clock::time_zone(name.trim()).map_err(|e| AdminError::invalid("time_zone", e))?;
    Ok(tz.iana_name().unwrap_or("UTC").to_owned())
}

/// Checks a redaction policy compiles (custom patterns are regular expressions).
pub fn validate_redaction(policy: &RedactionPolicy) -> AdminResult<()> {
    if let Some(k) = policy
        .kinds
        .iter()
        .find(|k| !crate::redact::KINDS.contains(&k.as_str()))
    {
        return Err(AdminError::invalid(
            "redaction",
            format!(
                "unknown kind '{k}': use {}",
                crate::redact::KINDS.join(", ")
            ),
        ));
    }
    Redactor::new(policy).map_err(|e| AdminError::invalid("redaction", e.to_string()))?;
    Ok(())
}

/// Someone acting on one organisation: an admin on a page or through the API, or the operator.
pub struct OrgAdmin<'a> {
    pub state: &'a AppState,
    pub org: Organization,
    pub actor: Actor,
    pub meta: RequestMeta,
}

impl<'a> OrgAdmin<'a> {
    fn event(&self, action: &'static str, target: impl Into<String>) -> Event {
        let (request_id, ip) = self.meta.parts();
        Event::new(Some(&self.org.id), self.actor.clone(), action)
            .target(target)
            .from_request(request_id, ip)
    }

    /// What follows the store's answer to ending something (`ended`: whether a live one was
    /// there): the audit event `action` on `target`, or not found as `what`.
    fn ended(
        &self,
        ended: bool,
        what: &'static str,
        action: &'static str,
        target: &str,
    ) -> AdminResult<()> {
        if !ended {
            return Err(AdminError::NotFound(what));
        }
        self.state.audit.record(self.event(action, target));
        Ok(())
    }

    fn now(&self) -> i64 {
        self.state.now()
    }

    // --- settings ---------------------------------------------------------------------------

    pub async fn settings(&self) -> AdminResult<OrgSettings> {
        let stored = self.state.store.org_redaction(&self.org.id).await?;
        let redaction = stored
            .as_deref()
            .and_then(|s| serde_json::from_str::<RedactionPolicy>(s).ok());
        Ok(OrgSettings {
            id: self.org.id.clone(),
            name: self.org.name.clone(),
            slug: self.org.slug.clone(),
            disabled: self.org.disabled,
            created_at: self.org.created_at,
            redaction,
            require_admin_mfa: self.state.store.require_admin_mfa(&self.org.id).await?,
            require_dpop: self.state.store.org_requires_dpop(&self.org.id).await?,
            time_zone: self
                .state
                .store
                .org_time_zone(&self.org.id)
                .await?
                .unwrap_or_else(|| "UTC".to_owned()),
        })
    }

    /// Applies `change` if the settings are still `seen` (what the caller's ETag stood for).
    pub async fn update_settings(
        &self,
        seen: &OrgSettings,
        change: SettingsChange,
    ) -> AdminResult<OrgSettings> {
        // Only a new name is checked and re-keyed: an unchanged one stays as stored.
        let renamed = change
            .name
            .as_deref()
            .filter(|n| *n != seen.name)
            .map(validate_org_name)
            .transpose()?
            .filter(|n| n.as_str() != seen.name);
        let time_zone = change
            .time_zone
            .as_deref()
            .map(validate_time_zone)
            .transpose()?
            .unwrap_or_else(|| seen.time_zone.clone());
        let redaction = match change.redaction {
            Some(Some(p)) => {
                validate_redaction(&p)?;
                Some(p)
            }
            Some(None) => None,
            None => seen.redaction.clone(),
        };
        let encode = |p: &Option<RedactionPolicy>| {
            p.as_ref()
                .map(|p| serde_json::to_string(p).unwrap_or_default())
        };
        let (from_r, to_r) = (encode(&seen.redaction), encode(&redaction));
        // UTC is stored as NULL.
        let stored = |z: &str| (z != "UTC").then(|| z.to_owned());
        let (from_z, to_z) = (stored(&seen.time_zone), stored(&time_zone));
        let done = self
            .state
            .store
            .update_org_settings(
                &self.org.id,
                (&seen.name, from_r.as_deref(), from_z.as_deref()),
                (renamed.as_ref(), to_r.as_deref(), to_z.as_deref()),
            )
            .await?;
        if !done {
            return Err(AdminError::Changed(
                "the organisation's settings changed since you read them; reload and try again"
                    .into(),
            ));
        }
        if let Some(name) = &renamed {
            self.state.audit.record(
                self.event("org.renamed", self.org.id.as_str())
                    .detail("from", seen.name.as_str())
                    .detail("to", name.as_str()),
            );
        }
        let require_admin_mfa = change.require_admin_mfa.unwrap_or(seen.require_admin_mfa);
        if require_admin_mfa != seen.require_admin_mfa {
            self.state
                .store
                .set_require_admin_mfa(&self.org.id, require_admin_mfa)
                .await?;
            self.state.audit.record(
                self.event("org.admin_mfa_required", self.org.id.as_str())
                    .detail("required", require_admin_mfa),
            );
        }
        let require_dpop = change.require_dpop.unwrap_or(seen.require_dpop);
        if require_dpop != seen.require_dpop {
            self.state
                .store
                .set_org_requires_dpop(&self.org.id, require_dpop)
                .await?;
            self.state.audit.record(
                self.event("org.dpop_required", self.org.id.as_str())
                    .detail("required", require_dpop),
            );
        }
        if redaction != seen.redaction {
            self.state.audit.record(
                self.event("org.redaction_set", self.org.id.as_str())
                    .detail("policy", to_r.as_deref().unwrap_or("default")),
            );
        }
        if time_zone != seen.time_zone {
            self.state.audit.record(
                self.event("org.time_zone_set", self.org.id.as_str())
                    .detail("time_zone", time_zone.as_str()),
            );
        }
        Ok(OrgSettings {
            name: renamed.map_or_else(|| seen.name.clone(), |n| n.to_string()),
            redaction,
            require_admin_mfa,
            require_dpop,
            time_zone,
            ..seen.clone()
        })
    }

    // --- Clari connection ---------------------------------------------------------------------

    pub async fn clari_credential(&self) -> AdminResult<Option<ClariCredentialInfo>> {
        Ok(self
            .state
            .store
            .clari_credential(&self.org.id)
            .await?
            .map(|c| ClariCredentialInfo {
                key_hint: c.key_hint,
                base_url: c.base_url,
                rotated_at: c.rotated_at,
            }))
    }

    /// Seals and stores the organisation's Clari key (replacing any), never keeping it in clear.
    pub async fn set_clari_key(
        &self,
        key: SecretString,
        base_url: Option<&str>,
    ) -> AdminResult<ClariCredentialInfo> {
        let base_url = base_url
            .map(|u| {
                crate::clari::client::check_base_url(u)
                    .map_err(|reason| AdminError::invalid("base_url", reason.to_string()))
            })
            .transpose()?;
        validate_clari_key(&key)?;
        let sealed = self.state.vault.seal(key.expose_secret().as_bytes());
        let key_hint = hint(key.expose_secret());
        drop(key);
        let replaced = self
            .state
            .store
            .clari_credential(&self.org.id)
            .await?
            .is_some();
        let now = self.now();
        self.state
            .store
            .put_clari_credential(&self.org.id, &sealed, &key_hint, base_url.as_deref(), now)
            .await?;
        // Answers cached under the old key are the old key's.
        self.state.forget_org_exports(&self.org.id);
        self.state.audit.record(
            self.event(
                if replaced {
                    "clari_key.rotated"
                } else {
                    "clari_key.set"
                },
                self.org.id.as_str(),
            )
            .detail("key_hint", format!("****{key_hint}"))
            .detail("base_url", base_url.as_deref()),
        );
        Ok(ClariCredentialInfo {
            key_hint,
            base_url,
            rotated_at: now,
        })
    }

    /// Replaces the key and keeps the API base URL the operator chose. Organisation admins
    /// cannot choose where the server sends their key: that would let them aim its requests
    /// at any host.
    pub async fn replace_clari_key(&self, key: SecretString) -> AdminResult<ClariCredentialInfo> {
        let base = self.clari_credential().await?.and_then(|c| c.base_url);
        self.set_clari_key(key, base.as_deref()).await
    }

    /// Calls Clari's `/admin/limits` with the stored key: the quota and concurrency, or what
    /// went wrong in words.
    pub async fn test_connection(&self) -> Result<Limits, String> {
        let outcome = match crate::exports::pipeline::target(self.state, &self.org.id).await {
            Ok(target) => self.state.clari.admin_limits(&target).await,
            Err(e) => Err(e),
        };
        self.state.audit.record(
            self.event("clari_key.tested", self.org.id.as_str())
                .outcome(if outcome.is_ok() {
                    "success"
                } else {
                    "failure"
                }),
        );
        outcome.map_err(|e| e.to_string())
    }
}

/// The person's own role in an organisation they may act in (enabled organisation, not
/// suspended), or `None`.
pub async fn role_in(state: &AppState, user: &UserId, org: &OrgId) -> AdminResult<Option<Role>> {
    Ok(state
        .store
        .member(org, user)
        .await?
        .filter(|m| !m.suspended && !m.user.disabled)
        .map(|m| m.role))
}
