//! Identifiers that say what they are. Each is a newtype with a private field: one comes from
//! `parse` (input from outside, checked), `new_random` (minted here), or the store (decoded from a
//! column this program wrote). An organisation id cannot be passed where a grant id is expected, and
//! nothing outside this module can wrap an arbitrary string into one.

use std::fmt;

/// Why a piece of text is not an identifier of the kind asked for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} {reason}")]
pub struct IdError {
    /// Which identifier, in words (`client_id`, `organization id`, …).
    pub what: &'static str,
    pub reason: String,
}

/// The shared rule: 1 to `max` characters, none of them white space or control characters. The
/// text is taken exactly as given (no trimming), since an id is compared byte for byte.
pub fn check_id(text: &str, what: &'static str, max: usize) -> Result<(), IdError> {
    let fail = |reason: String| Err(IdError { what, reason });
    if text.is_empty() {
        return fail("is empty".to_owned());
    }
    if text.len() > max {
        return fail(format!("is longer than {max} characters"));
    }
    if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return fail("contains white space or control characters".to_owned());
    }
    Ok(())
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $what:literal, $max:expr) => {
        $(#[$doc])*
        #[derive(
            Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, sqlx::Type,
        )]
        #[serde(transparent)]
        #[sqlx(transparent)]
        pub struct $name(String);

        impl $name {
            /// The longest id accepted from outside.
            pub const MAX_LEN: usize = $max;

            /// Checks text from outside (a request, a token claim, a command line).
            pub fn parse(text: &str) -> Result<Self, IdError> {
                check_id(text, $what, Self::MAX_LEN)?;
                Ok(Self(text.to_owned()))
            }

            /// A new id minted here (UUID v7: unique, and ordered by creation time).
            pub fn new_random() -> Self {
                Self(uuid::Uuid::now_v7().to_string())
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }

            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = String::deserialize(d)?;
                Self::parse(&text).map_err(serde::de::Error::custom)
            }
        }
    };
}

id_type!(
    /// An organisation (tenant). Every query on tenant data names one.
    OrgId,
    "organization id",
    128
);
id_type!(
    /// A person who signs in.
    UserId,
    "user id",
    128
);
id_type!(
    /// An API key's public id (never the key itself).
    ApiKeyId,
    "API key id",
    128
);
id_type!(
    /// An OAuth client: a random id from dynamic registration, or the https URL of a Client ID
    /// Metadata Document.
    ClientId,
    "client_id",
    2000
);
id_type!(
    /// One consent of (user, organisation, client); every token derived from it carries it.
    GrantId,
    "grant id",
    128
);
id_type!(
    /// An invitation to join an organisation (its public id, never the link's token).
    InvitationId,
    "invitation id",
    128
);
id_type!(
    /// An MCP task's handle, given to the caller to poll or cancel the task with.
    TaskId,
    "task id",
    128
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_parse_exactly_or_say_why_not() {
        assert_eq!(OrgId::parse("org_1").unwrap().as_str(), "org_1");
        let e = ClientId::parse("").unwrap_err();
        assert_eq!(e.to_string(), "client_id is empty");
        assert!(
            GrantId::parse(" g").is_err(),
            "no trimming: ids compare byte for byte"
        );
        assert!(UserId::parse("a\nb").is_err());
        assert!(ClientId::parse(&"x".repeat(2000)).is_ok());
        assert!(ClientId::parse(&"x".repeat(2001)).is_err());
        assert!(OrgId::parse(&"x".repeat(129)).is_err());
    }

    #[test]
    fn random_ids_are_unique_and_parse_back() {
        let a = GrantId::new_random();
        let b = GrantId::new_random();
        assert_ne!(a, b);
        assert_eq!(GrantId::parse(a.as_str()), Ok(a));
    }

    #[test]
    fn deserializing_checks_like_parse() {
        let ok: OrgId = serde_json::from_str("\"o\"").unwrap();
        assert_eq!(ok.as_str(), "o");
        assert!(serde_json::from_str::<OrgId>("\"\"").is_err());
        assert_eq!(serde_json::to_string(&ok).unwrap(), "\"o\"");
    }
}
