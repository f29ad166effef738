//! OAuth scopes of clari-mcp. `clari:read` implies every narrower read scope (the MCP spec asks
//! resource servers to honour scope hierarchies).

use std::collections::BTreeSet;
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    ClariRead,
    ForecastsRead,
    OpportunitiesRead,
    AccountsRead,
    UsersRead,
    AuditRead,
    ExportsRead,
    /// Administer the organisation through `/api/v1`. Never implied by `clari:read`, granted only
    /// to the organisation's admins, and never needed by an MCP tool.
    Admin,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown scope '{0}': valid scopes are {list}", list = Scope::names().join(", "))]
pub struct UnknownScope(pub String);

impl Scope {
    pub const ALL: [Scope; 8] = [
        Scope::ClariRead,
        Scope::ForecastsRead,
        Scope::OpportunitiesRead,
        Scope::AccountsRead,
        Scope::UsersRead,
        Scope::AuditRead,
        Scope::ExportsRead,
        Scope::Admin,
    ];

    /// The six narrow read scopes that `clari:read` stands for: every scope of [`Scope::ALL`]
    /// between `clari:read` itself and `admin`.
    pub const NARROW: [Scope; 6] = match Scope::ALL {
        [Scope::ClariRead, narrow @ .., Scope::Admin] => narrow,
        _ => panic!("Scope::ALL starts with clari:read and ends with admin"),
    };

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::ClariRead => "clari:read",
            Scope::ForecastsRead => "forecasts:read",
            Scope::OpportunitiesRead => "opportunities:read",
            Scope::AccountsRead => "accounts:read",
            Scope::UsersRead => "users:read",
            Scope::AuditRead => "audit:read",
            Scope::ExportsRead => "exports:read",
            Scope::Admin => "admin",
        }
    }

    /// What the scope lets an agent read, in plain words for the consent page.
    pub fn description(self) -> &'static str {
        match self {
            Scope::ClariRead => "Read all of your organisation's Clari data listed below",
            Scope::ForecastsRead => "Read forecasts, forecast submissions and fiscal time periods",
            Scope::OpportunitiesRead => "Read opportunities, deal risk scores and pipeline changes",
            Scope::AccountsRead => "Read accounts and their opportunities",
            Scope::UsersRead => "Read the forecast hierarchy: users, roles and managers",
            Scope::AuditRead => "Read Clari audit events (who did what, when)",
            Scope::ExportsRead => "Read export jobs and export quota",
            Scope::Admin => {
                "Administer your organisation: its members, API keys, connected applications, Clari key and kill switch"
            }
        }
    }

    pub fn names() -> Vec<&'static str> {
        Scope::ALL.iter().map(|s| s.as_str()).collect()
    }

    pub fn parse(text: &str) -> Result<Scope, UnknownScope> {
        Scope::ALL
            .into_iter()
            .find(|s| s.as_str() == text)
            .ok_or_else(|| UnknownScope(text.to_owned()))
    }

    /// Whether holding `self` allows what `required` guards.
    pub fn implies(self, required: Scope) -> bool {
        self == required || (self == Scope::ClariRead && required != Scope::Admin)
    }

    /// Whether the scope changes things rather than reading them (consent shows it in red).
    pub fn is_dangerous(self) -> bool {
        self == Scope::Admin
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A set of scopes, written space-separated on the wire (RFC 6749 §3.3).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScopeSet(BTreeSet<Scope>);

impl ScopeSet {
    pub fn new(scopes: impl IntoIterator<Item = Scope>) -> Self {
        Self(scopes.into_iter().collect())
    }

    /// Parses scopes separated by spaces or commas. Empty items are skipped; an unknown one is an error.
    pub fn parse(text: &str) -> Result<Self, UnknownScope> {
        text.split([' ', ','])
            .filter(|s| !s.is_empty())
            .map(Scope::parse)
            .collect::<Result<BTreeSet<_>, _>>()
            .map(Self)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = Scope> + '_ {
        self.0.iter().copied()
    }

    /// Whether the set allows an operation guarded by `required`, honouring `clari:read`.
    pub fn allows(&self, required: Scope) -> bool {
        self.0.iter().any(|s| s.implies(required))
    }

    /// Whether every scope of `other` is allowed by this set.
    pub fn covers(&self, other: &ScopeSet) -> bool {
        other.iter().all(|s| self.allows(s))
    }

    /// What a person may hold of these in an organisation: `admin` only when they are its
    /// admin.
    pub fn grantable(&self, is_admin: bool) -> ScopeSet {
        ScopeSet(
            self.0
                .iter()
                .copied()
                .filter(|s| is_admin || *s != Scope::Admin)
                .collect(),
        )
    }

    /// The scopes of `self` that `granted` allows (used to narrow a request to a grant).
    pub fn intersect(&self, granted: &ScopeSet) -> ScopeSet {
        ScopeSet(
            self.0
                .iter()
                .copied()
                .filter(|s| granted.allows(*s))
                .collect(),
        )
    }
}

impl fmt::Display for ScopeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for s in &self.0 {
            if !first {
                f.write_str(" ")?;
            }
            first = false;
            f.write_str(s.as_str())?;
        }
        Ok(())
    }
}

/// On the wire and in session data: the space-separated string; reading is strict (an unknown
/// scope is an error).
impl serde::Serialize for ScopeSet {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for ScopeSet {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        ScopeSet::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// Scopes as stored (space-separated, validated on the way in). A scope this version does not know
/// (written by a newer one) is dropped rather than granting anything, so reading never fails.
/// Deliberately not a `From<String>`: that would invite converting request text without the
/// strict [`ScopeSet::parse`]; sqlx's `try_from` column attribute is what names this impl.
#[allow(clippy::infallible_try_from)]
impl TryFrom<String> for ScopeSet {
    type Error = std::convert::Infallible;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        Ok(text
            .split(' ')
            .filter_map(|s| Scope::parse(s).ok())
            .collect())
    }
}

impl FromIterator<Scope> for ScopeSet {
    fn from_iter<I: IntoIterator<Item = Scope>>(iter: I) -> Self {
        Self(iter.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_but_admin_implies_admin() {
        for s in Scope::ALL {
            assert_eq!(s.implies(Scope::Admin), s == Scope::Admin, "{s}");
        }
        assert!(!ScopeSet::parse("clari:read").unwrap().allows(Scope::Admin));
        assert!(
            !ScopeSet::parse("admin")
                .unwrap()
                .allows(Scope::ForecastsRead)
        );
    }

    #[test]
    fn clari_read_implies_every_narrow_scope() {
        let set = ScopeSet::parse("clari:read").unwrap();
        for s in Scope::NARROW {
            assert!(set.allows(s), "{s}");
        }
        let narrow = ScopeSet::parse("audit:read").unwrap();
        assert!(narrow.allows(Scope::AuditRead));
        assert!(!narrow.allows(Scope::ForecastsRead));
        assert!(!narrow.allows(Scope::ClariRead));
    }

    #[test]
    fn parse_accepts_spaces_and_commas_and_rejects_unknown() {
        let set = ScopeSet::parse("forecasts:read, users:read").unwrap();
        assert_eq!(set.to_string(), "forecasts:read users:read");
        let err = ScopeSet::parse("forecasts:read superuser").unwrap_err();
        assert_eq!(err.0, "superuser");
        assert!(err.to_string().contains("clari:read"));
    }

    #[test]
    fn intersect_narrows_to_granted() {
        let asked = ScopeSet::parse("forecasts:read audit:read").unwrap();
        let granted = ScopeSet::parse("forecasts:read").unwrap();
        assert_eq!(asked.intersect(&granted).to_string(), "forecasts:read");
        let all = ScopeSet::parse("clari:read").unwrap();
        assert_eq!(asked.intersect(&all), asked);
    }
}
