//! Stored entities and the newtypes that keep tenant ids from being mixed up.

use std::fmt;

use crate::clock::UnixTime;
use crate::scope::ScopeSet;

macro_rules! id_newtype {
    ($name:ident) => {
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
        #[serde(transparent)]
        pub struct $name(pub String);

        impl $name {
            pub fn new_random() -> Self {
                Self(uuid::Uuid::now_v7().to_string())
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

id_newtype!(OrgId);
id_newtype!(UserId);
id_newtype!(ApiKeyId);

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Admin,
    Member,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Member => "member",
        }
    }

    pub fn parse(text: &str) -> Result<Self, String> {
        match text {
            "admin" => Ok(Role::Admin),
            "member" => Ok(Role::Member),
            other => Err(format!("unknown role '{other}': use admin or member")),
        }
    }
}

/// A normalised e-mail address (trimmed, lower-case, one `@` with text on both sides).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(transparent)]
pub struct Email(String);

impl Email {
    pub fn parse(text: &str) -> Result<Self, String> {
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
            Err(format!("'{}' is not an e-mail address", text.trim()))
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

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Organization {
    pub id: OrgId,
    pub name: String,
    pub disabled: bool,
    pub created_at: UnixTime,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct User {
    pub id: UserId,
    pub email: String,
    pub disabled: bool,
    pub created_at: UnixTime,
}

/// A user with the password hash, for login only.
#[derive(Clone)]
pub struct UserCredentials {
    pub user: User,
    pub password_hash: String,
}

impl fmt::Debug for UserCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserCredentials")
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Membership {
    pub organization: Organization,
    pub role: Role,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct OrgMember {
    pub user: User,
    pub role: Role,
}

/// An organisation's Clari API key as stored: ciphertext only, plus the last four characters.
#[derive(Debug, Clone, PartialEq, Eq)]
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

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ApiKey {
    pub id: ApiKeyId,
    pub organization_id: OrgId,
    pub user_id: UserId,
    pub user_email: String,
    pub name: String,
    pub key_hint: String,
    #[serde(serialize_with = "ser_scopes")]
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
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyPrincipal {
    pub key_id: ApiKeyId,
    pub organization_id: OrgId,
    pub user_id: UserId,
    pub scopes: ScopeSet,
}
