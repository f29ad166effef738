//! Enterprise-managed authorization: the MCP `io.modelcontextprotocol/enterprise-managed-authorization`
//! extension, an Identity Assertion JWT Authorization Grant (ID-JAG) exchanged at the token
//! endpoint under `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer` (RFC 7523 §2.1).
//!
//! The ID-JAG comes from an identity provider an organisation trusts: the issuer of its single
//! sign-on connection, whose keys are found through its discovery document. The enterprise's
//! policy at that provider is the consent, so there is no consent page; the grant is recorded,
//! listed, revocable and audited like any other. No refresh token is issued (the ID-JAG draft,
//! "Refresh Token": the server "SHOULD NOT return a Refresh Token"); the client asks its
//! provider for a new ID-JAG.

use serde_json::Value;

use super::client::Client;
use super::dpop;
use super::error::{ErrorCode, OAuthError};
use super::issue::{Issued, Subject, client_event, sign};
use super::request::resource_matches;
use crate::http::RequestMeta;
use crate::jose::{self, Unverified};
use crate::scope::{Scope, ScopeSet};
use crate::state::AppState;
use crate::store::{Role, SsoConnection, UserId};

/// The `typ` of an ID-JAG (ID-JAG draft, "ID-JAG Claims": "MUST be `oauth-id-jag+jwt`").
pub const TYP: &str = "oauth-id-jag+jwt";

/// The profile advertised in `authorization_grant_profiles_supported`.
pub const PROFILE: &str = "urn:ietf:params:oauth:grant-profile:id-jag";

/// The longest an ID-JAG may live ("ID-JAGs MUST be short-lived", MCP enterprise-managed
/// authorization §7.4.2); its `jti` is kept until it expires.
pub const MAX_LIFETIME: i64 = 900;

/// What the token request carries besides the client's credentials.
pub struct Exchange<'a> {
    pub assertion: Option<&'a str>,
    pub scope: Option<&'a str>,
    pub resource: Option<&'a str>,
}

fn invalid(why: impl AsRef<str>) -> OAuthError {
    OAuthError::invalid_grant(why)
}

/// Exchanges an ID-JAG for an access token to the MCP server. The checks, each an
/// `invalid_grant` when it fails:
/// - the client is confidential and authenticated (ID-JAG draft, "Client Authentication":
///   "SHOULD only be supported for confidential clients");
/// - `typ` is `oauth-id-jag+jwt` and the signature verifies with a key of the issuer's JWKS,
///   with an accepted asymmetric `alg` (MCP §7.4.1);
/// - `iss` is the provider of an enabled organisation's SSO connection;
/// - `aud` is this issuer, as a string or a one-element array ("Processing Rules");
/// - `client_id` is the authenticated client ("MUST validate that the client_id claim in the
///   ID-JAG matches the authenticated client");
/// - `resource`, when present, is this MCP server (MCP §4.3, §7.6.2), as is the request's;
/// - `exp` has not passed, `iat` is not in the future, the lifetime is at most
///   [`MAX_LIFETIME`] (MCP §7.4.2);
/// - `jti` has not been seen before, on any replica, until the assertion expires (MCP §7.4.2:
///   replay protection "is REQUIRED in this profile");
/// - `sub` maps to an active member of that organisation: the identity the person signed in
///   with through single sign-on (never an `email` claim);
/// - `cnf.jkt`, when present, is the key of the DPoP proof that came with the request.
///
/// Scopes are the intersection of what is asked, what the assertion's `scope` allows and what
/// the member may hold (MCP §7.2.1).
pub(super) async fn exchange(
    state: &AppState,
    client: &Client,
    meta: &RequestMeta,
    request: Exchange<'_>,
    proof: Option<&dpop::Proof>,
) -> Result<Issued, OAuthError> {
    if client.is_public() {
        return Err(OAuthError::new(
            ErrorCode::UnauthorizedClient,
            "the jwt-bearer grant is only for confidential clients",
        ));
    }
    let assertion = request
        .assertion
        .ok_or_else(|| OAuthError::invalid_request("assertion is required"))?;
    let jwt = jose::read(assertion).map_err(invalid)?;
    if jwt.typ() != Some(TYP) {
        return Err(invalid("the assertion's typ must be oauth-id-jag+jwt"));
    }
    let iss = jwt
        .claim_str("iss")
        .ok_or_else(|| invalid("the assertion needs iss"))?;
    let connections = state.store.sso_connections_for_issuer(iss).await?;
    if connections.is_empty() {
        return Err(invalid(
            "the assertion's issuer is not an identity provider an organisation here trusts",
        ));
    }
    let now = state.now();
    let keys = state
        .key_sets
        .of_issuer(iss, jwt.kid(), now)
        .await
        .map_err(|e| {
            tracing::warn!(issuer = iss, error = %e, "an identity provider's keys could not be read");
            invalid("the identity provider's keys could not be read")
        })?;
    jose::verify_with_set(&jwt, &keys).map_err(invalid)?;
    check_claims(state, client, &jwt, request.resource, now)?;
    let sub = jwt
        .claim_str("sub")
        .filter(|s| !s.is_empty())
        .ok_or_else(|| invalid("the assertion needs sub"))?;
    let (conn, user, role) = member_of(state, &connections, iss, sub).await?;
    let org = &conn.organization_id;
    // The ID-JAG draft, "Proof-of-Possession During ID-JAG Exchange": a bound assertion needs
    // a proof of that key; a confirmation this server cannot check is refused, not ignored.
    let jkt = match jwt.claims.get("cnf") {
        None => dpop::binding(proof, state.store.org_requires_dpop(org).await?)?,
        Some(cnf) => match cnf.get("jkt") {
            Some(Value::String(bound)) if proof.is_some_and(|p| &p.jkt == bound) => {
                Some(bound.clone())
            }
            Some(Value::String(_)) => {
                return Err(invalid(
                    "the assertion is bound to a DPoP key (cnf.jkt): send a proof signed by it",
                ));
            }
            _ => {
                return Err(invalid(
                    "the assertion's cnf is not a DPoP key thumbprint (jkt) this server can check",
                ));
            }
        },
    };
    let scope = scope_of(client, &jwt, role, request.scope)?;
    dpop::record(state, proof).await?;
    // The assertion is used: its jti is kept until it expires, on every replica.
    let exp = jwt.claim_i64("exp").unwrap_or(now);
    let digest = jose::jti_digest("id-jag", iss, jwt.claim_str("jti").unwrap_or_default());
    if !state
        .store
        .remember_jti(&digest, exp + jose::CLOCK_SKEW)
        .await?
    {
        return Err(invalid(
            "this identity assertion was used before; ask the identity provider for a new one",
        ));
    }
    let mcp_url = &state.config.mcp_url;
    let grant = state
        .store
        .upsert_grant(org, &user, &client.id, &scope, mcp_url, false, now)
        .await?;
    let signed = sign(
        state,
        Subject {
            sub: user.as_str(),
            gid: grant.id.as_str(),
            org,
            client_id: client.id.as_str(),
            resource: mcp_url,
        },
        &scope,
        jkt.as_deref(),
    )
    .await?;
    state.store.touch_grant(org, &grant.id, now).await?;
    state.store.touch_client(&client.id, now, None).await?;
    state.audit.record(
        client_event(client, meta, Some(org), "token.issued")
            .target(grant.id.as_str())
            .detail("grant_type", "jwt-bearer")
            .detail("profile", "id-jag")
            .detail("idp", iss)
            .detail("user_id", user.as_str())
            .detail("scope", scope.to_string())
            .detail("jti", signed.jti.as_str())
            .detail("dpop_bound", jkt.is_some())
            .detail("refresh_token", false),
    );
    Ok(Issued {
        signed,
        scope,
        refresh: None,
    })
}

/// `aud`, `client_id`, `resource` and the time claims (see [`exchange`]).
fn check_claims(
    state: &AppState,
    client: &Client,
    jwt: &Unverified<'_>,
    asked_resource: Option<&str>,
    now: i64,
) -> Result<(), OAuthError> {
    if jose::single_audience(&jwt.claims) != Some(state.config.issuer.as_str()) {
        return Err(invalid(
            "the assertion's aud must be this authorization server's issuer",
        ));
    }
    if jwt.claim_str("client_id") != Some(client.id.as_str()) {
        return Err(invalid(
            "the assertion's client_id is not the client making this request",
        ));
    }
    let mcp_url = &state.config.mcp_url;
    let resource_ok = match jwt.claims.get("resource") {
        None => true,
        Some(Value::String(r)) => resource_matches(r, mcp_url),
        Some(Value::Array(items)) => {
            !items.is_empty()
                && items
                    .iter()
                    .all(|r| r.as_str().is_some_and(|r| resource_matches(r, mcp_url)))
        }
        Some(_) => false,
    };
    if !resource_ok {
        return Err(invalid("the assertion's resource is not this MCP server"));
    }
    if asked_resource.is_some_and(|r| !resource_matches(r, mcp_url)) {
        return Err(OAuthError::new(
            ErrorCode::InvalidTarget,
            "resource must be this server's MCP URL",
        ));
    }
    let (Some(exp), Some(iat)) = (jwt.claim_i64("exp"), jwt.claim_i64("iat")) else {
        return Err(invalid("the assertion needs numeric exp and iat"));
    };
    if exp + jose::CLOCK_SKEW < now {
        return Err(invalid("the assertion has expired"));
    }
    if iat > now + jose::CLOCK_SKEW {
        return Err(invalid("the assertion's iat is in the future"));
    }
    if exp - iat > MAX_LIFETIME || exp - now > MAX_LIFETIME {
        return Err(invalid("the assertion lives longer than 15 minutes"));
    }
    if jwt
        .claim_str("jti")
        .is_none_or(|j| j.is_empty() || j.len() > 256)
    {
        return Err(invalid(
            "the assertion needs a jti of at most 256 characters",
        ));
    }
    Ok(())
}

/// The active member of a trusting organisation that `sub` names: the account the person signed
/// in to with this provider (`iss`, `sub`), linked by a single sign-on that proved the account
/// was theirs. Nothing else maps: not an `email` claim (an attribute the provider may let people
/// set), and nothing is linked or created here, so an assertion never adds a person to an
/// organisation or an identity to an account.
async fn member_of(
    state: &AppState,
    connections: &[SsoConnection],
    iss: &str,
    sub: &str,
) -> Result<(SsoConnection, UserId, Role), OAuthError> {
    let Some(user) = state.store.sso_identity(iss, sub).await? else {
        return Err(invalid(
            "the assertion's subject has not signed in here with this identity provider yet: sign in once with single sign-on",
        ));
    };
    let mut live = Vec::new();
    for conn in connections {
        if let Some(m) = state.store.member(&conn.organization_id, &user).await?
            && !m.suspended
            && !m.user.disabled
        {
            live.push((conn.clone(), user.clone(), m.role));
        }
    }
    match live.len() {
        0 => Err(invalid(
            "the assertion's subject is not an active member of an organisation that trusts this provider",
        )),
        1 => Ok(live.remove(0)),
        _ => Err(invalid(
            "the assertion's subject is a member of several organisations that trust this provider; it cannot say which",
        )),
    }
}

/// What is asked, within what the assertion allows (its `scope`, when present, names only
/// scopes of this server: MCP §7.6.2), what the client registered, and what the member may
/// hold (`admin` only for an admin).
fn scope_of(
    client: &Client,
    jwt: &Unverified<'_>,
    role: Role,
    asked: Option<&str>,
) -> Result<ScopeSet, OAuthError> {
    let mut allowed = ScopeSet::new(Scope::ALL).grantable(role == Role::Admin);
    if let Some(text) = jwt.claims.get("scope") {
        let text = text
            .as_str()
            .ok_or_else(|| invalid("the assertion's scope must be a string"))?;
        let granted =
            ScopeSet::parse(text).map_err(|e| invalid(format!("the assertion's scope: {e}")))?;
        allowed = granted.intersect(&allowed);
    }
    if let Some(registered) = client
        .meta
        .scope
        .as_deref()
        .and_then(|s| ScopeSet::parse(s).ok())
    {
        allowed = allowed.intersect(&registered);
    }
    super::core::offered_scope(asked, &allowed)
}
