//! Who is calling: built by the bearer layer from a token, and the only way tool code learns it.

use crate::scope::ScopeSet;
use crate::store::{ApiKeyId, ClientId, GrantId, OrgId, UserId};

/// What the caller presented: a grant (OAuth) or an API key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    Grant {
        grant_id: GrantId,
        client_id: ClientId,
    },
    ApiKey {
        key_id: ApiKeyId,
    },
    /// A machine client of the organisation acting as itself (client credentials).
    Service {
        client_id: ClientId,
        name: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthContext {
    pub org_id: OrgId,
    /// The person behind the call; `None` for a machine client's service identity.
    pub user_id: Option<UserId>,
    pub subject: Subject,
    pub scopes: ScopeSet,
    /// The change feed as this request's authentication read it, for the request's later
    /// lookups of cached settings; `None` where no request read it (they read it themselves).
    pub checked: Option<crate::store::changes::Checked>,
}
