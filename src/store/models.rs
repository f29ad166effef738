//! Stored entities and the newtypes that keep tenant ids from being mixed up.

use std::fmt;

use crate::clock::UnixTime;
use crate::scope::ScopeSet;

pub use crate::ids::{ApiKeyId, ClientId, GrantId, InvitationId, OrgId, TaskId, UserId};

/// Text that is not a role or an e-mail address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModelError {
    #[error("unknown role '{0}': use admin or member")]
    Role(String),
    #[error("'{0}' is not an e-mail address")]
    Email(String),
}

/// A person's standing in one organisation: their role, and whether its admin suspended them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Standing {
    pub role: Role,
    pub suspended: bool,
}

impl Standing {
    pub fn new(role: Role, suspended: bool) -> Self {
        Self { role, suspended }
    }

    /// An admin who may act as one (not suspended).
    pub fn is_active_admin(self) -> bool {
        self.role == Role::Admin && !self.suspended
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Admin,
    Member,
}

/// Roles as stored: the column's CHECK constraint admits only these two.
impl TryFrom<String> for Role {
    type Error = ModelError;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        Role::parse(&text)
    }
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Member => "member",
        }
    }

    pub fn parse(text: &str) -> Result<Self, ModelError> {
        match text {
            "admin" => Ok(Role::Admin),
            "member" => Ok(Role::Member),
            other => Err(ModelError::Role(other.to_owned())),
        }
    }
}

/// A normalised e-mail address (trimmed, lower-case, one `@` with text on both sides).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(transparent)]
pub struct Email(String);

impl Email {
    pub fn parse(text: &str) -> Result<Self, ModelError> {
        let e = text.trim().to_lowercase();
        let valid = e.len() <= 254
            && e.split_once('@').is_some_and(|(local, domain)| {
                !local.is_empty()
                    && !domain.is_empty()
                    && !domain.contains('@')
                    && domain.contains('.')
                    && !domain.starts_with('.')
                    && !domain.ends_with('.')
            })
            && !e.chars().any(|c| c.is_whitespace() || c.is_control());
        if valid {
            Ok(Self(e))
        } else {
            Err(ModelError::Email(text.trim().to_owned()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, sqlx::FromRow)]
pub struct Organization {
    pub id: OrgId,
    pub name: String,
    pub disabled: bool,
    pub created_at: UnixTime,
    /// The plain ASCII handle printed beside the name (unique).
    pub slug: String,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, sqlx::FromRow)]
pub struct User {
    pub id: UserId,
    pub email: String,
    pub disabled: bool,
    pub created_at: UnixTime,
}

/// A user with the password hash, for login only.
#[derive(Clone, sqlx::FromRow)]
pub struct UserCredentials {
    #[sqlx(flatten)]
    pub user: User,
    pub password_hash: String,
    /// Browser sessions signed in under an older epoch are signed out.
    pub session_epoch: i64,
    /// Somebody else chose this password: the person sets their own before anything else.
    pub must_change_password: bool,
    /// A second factor (TOTP) is asked for at sign-in.
    pub mfa_enabled: bool,
}

impl fmt::Debug for UserCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserCredentials")
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, sqlx::FromRow)]
pub struct Membership {
    #[sqlx(flatten)]
    pub organization: Organization,
    #[sqlx(try_from = "String")]
    pub role: Role,
    /// Suspended in this organisation by its admin (the person's other memberships are untouched).
    pub suspended: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, sqlx::FromRow)]
pub struct OrgMember {
    #[sqlx(flatten)]
    pub user: User,
    #[sqlx(try_from = "String")]
    pub role: Role,
    /// Suspended in this organisation by its admin.
    pub suspended: bool,
    /// When the person joined this organisation.
    pub joined_at: UnixTime,
}

/// An organisation's Clari API key as stored: ciphertext only, plus the last four characters.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ClariCredential {
    pub organization_id: OrgId,
    pub ciphertext: String,
    pub key_id: String,
    pub key_hint: String,
    pub base_url: Option<String>,
    pub created_at: UnixTime,
    pub rotated_at: UnixTime,
}

/// The non-secret description of a stored Clari key.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ClariCredentialInfo {
    pub key_hint: String,
    pub base_url: Option<String>,
    pub rotated_at: UnixTime,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, sqlx::FromRow)]
pub struct ApiKey {
    pub id: ApiKeyId,
    pub organization_id: OrgId,
    pub user_id: UserId,
    #[sqlx(rename = "email")]
    pub user_email: String,
    pub name: String,
    pub key_hint: String,
    #[serde(serialize_with = "ser_scopes")]
    #[sqlx(try_from = "String")]
    pub scopes: ScopeSet,
    pub expires_at: Option<UnixTime>,
    pub last_used_at: Option<UnixTime>,
    pub revoked_at: Option<UnixTime>,
    pub created_at: UnixTime,
}

fn ser_scopes<S: serde::Serializer>(s: &ScopeSet, ser: S) -> Result<S::Ok, S::Error> {
    ser.serialize_str(&s.to_string())
}

impl ApiKey {
    pub fn is_active(&self, now: UnixTime) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|e| e > now)
    }
}

#[derive(Debug, Clone)]
pub struct NewApiKey {
    pub id: ApiKeyId,
    pub organization_id: OrgId,
    pub user_id: UserId,
    pub name: String,
    pub key_hash: String,
    pub key_hint: String,
    pub scopes: ScopeSet,
    pub expires_at: Option<UnixTime>,
    pub created_at: UnixTime,
}

/// What a live API key resolves to on the request path.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ApiKeyPrincipal {
    #[sqlx(rename = "id")]
    pub key_id: ApiKeyId,
    pub organization_id: OrgId,
    pub user_id: UserId,
    #[sqlx(try_from = "String")]
    pub scopes: ScopeSet,
    /// When the key was last recorded as used (rewritten at most once a minute).
    pub last_used_at: Option<UnixTime>,
    /// When the key stops working, if it does.
    pub expires_at: Option<UnixTime>,
}

/// An invitation to join an organisation, as its admins see it (never the link's token).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, sqlx::FromRow)]
pub struct Invitation {
    pub id: InvitationId,
    pub organization_id: OrgId,
    pub email: String,
    #[sqlx(try_from = "String")]
    pub role: Role,
    /// Who invited: a user id, or `operator`.
    pub invited_by: String,
    pub created_at: UnixTime,
    pub expires_at: UnixTime,
    pub accepted_at: Option<UnixTime>,
    pub revoked_at: Option<UnixTime>,
}

/// An invitation with the organisation it is for, as the person holding the link sees it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct InvitationOffer {
    #[sqlx(flatten)]
    pub invitation: Invitation,
    pub org_name: String,
    pub org_slug: String,
    pub org_disabled: bool,
}
