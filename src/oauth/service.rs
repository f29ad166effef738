//! Machine clients at the token endpoint: the `client_credentials` grant (RFC 6749 §4.4) of the
//! MCP `io.modelcontextprotocol/oauth-client-credentials` extension. An organisation admin
//! registers the client with fixed scopes; it authenticates with `private_key_jwt` (RFC 7523
//! §2.2, the extension's recommended "JWT Authentication") or with its secret
//! (`client_secret_basic`, or in the body as the extension's examples send it), and receives an
//! access token for the MCP resource that acts as the organisation's service identity. No
//! refresh token (RFC 6749 §4.4.3: "A refresh token SHOULD NOT be included").

use std::collections::HashMap;

use axum::http::HeaderMap;

use super::dpop;
use super::error::{ErrorCode, OAuthError};
use super::issue::{Issued, Signed, Subject, sign};
use super::request::resource_matches;
use super::{core, parse_basic_auth};
use crate::audit::{Actor, Event};
use crate::crypto::{constant_time_eq, sha256_hex};
use crate::http::RequestMeta;
use crate::jose;
use crate::state::AppState;
use crate::store::{ClientId, ServiceAuth, ServiceClient};

/// `client_assertion_type` of a JWT client assertion (RFC 7523 §2.2).
pub const CLIENT_ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// A client assertion may live at most this long from now: its `jti` is kept until it expires.
pub const MAX_ASSERTION_LIFETIME: i64 = 600;

fn refused(why: &str, basic: bool) -> OAuthError {
    OAuthError::invalid_client(why).with_basic_challenge(basic)
}

/// Authenticates a machine client: a JWT assertion (`client_assertion`) or its secret (HTTP
/// Basic, or `client_id` and `client_secret` in the body). Every failure is 401
/// `invalid_client` (RFC 6749 §5.2, RFC 7523 §3.2).
pub async fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
    form: &HashMap<String, String>,
) -> Result<ServiceClient, OAuthError> {
    let basic = parse_basic_auth(headers)
        .map_err(|_| refused("the Basic authorization header is malformed", true))?;
    let assertion = form.get("client_assertion");
    let body_secret = form.get("client_secret");
    let methods = [basic.is_some(), assertion.is_some(), body_secret.is_some()];
    if methods.iter().filter(|m| **m).count() > 1 {
        return Err(OAuthError::invalid_request(
            "use one client authentication method",
        ));
    }
    if let Some(assertion) = assertion {
        return by_assertion(state, form, assertion).await;
    }
    let used_basic = basic.is_some();
    let (id, secret) = match (basic, form.get("client_id"), body_secret) {
        (Some((id, secret)), body_id, _) => {
            if body_id.is_some_and(|b| *b != id) {
                return Err(OAuthError::invalid_request(
                    "client_id differs from the Basic credentials",
                ));
            }
            (id, secret)
        }
        (None, Some(id), Some(secret)) => (id.clone(), secret.clone()),
        _ => {
            return Err(refused(
                "a machine client authenticates with a client assertion or its secret",
                true,
            ));
        }
    };
    if !id.starts_with(crate::signing::SERVICE_CLIENT_PREFIX) {
        // RFC 6749 §5.2: a client not allowed this grant type is unauthorized_client.
        return Err(OAuthError::new(
            ErrorCode::UnauthorizedClient,
            "client_credentials is for machine clients an organisation admin registered",
        ));
    }
    let fail = || refused("client authentication failed", used_basic);
    let client = live(state, &id).await?.ok_or_else(fail)?;
    let Some(hash) = client.secret_hash.as_deref() else {
        return Err(refused(
            "this machine client authenticates with private_key_jwt",
            used_basic,
        ));
    };
    if client.auth_method != ServiceAuth::ClientSecretBasic
        || !constant_time_eq(sha256_hex(&secret).as_bytes(), hash.as_bytes())
    {
        return Err(fail());
    }
    Ok(client)
}

/// A live machine client by the id a request names.
async fn live(state: &AppState, id: &str) -> Result<Option<ServiceClient>, OAuthError> {
    let Ok(id) = ClientId::parse(id) else {
        return Ok(None);
    };
    let Some(found) = state.store.service_client(&id).await? else {
        return Ok(None);
    };
    Ok(state
        .store
        .live_service_client(&found.organization_id, &id)
        .await?)
}

/// `private_key_jwt` (RFC 7523 §3): "iss" and "sub" are the client's id, "aud" names this
/// authorization server (its issuer identifier or its token endpoint), "exp" has not passed
/// (and lies within [`MAX_ASSERTION_LIFETIME`]), a "jti" never seen before (RFC 7523 §3 (7):
/// replay is refused, on every replica), and a signature by one of the client's registered
/// keys with an accepted asymmetric algorithm.
async fn by_assertion(
    state: &AppState,
    form: &HashMap<String, String>,
    assertion: &str,
) -> Result<ServiceClient, OAuthError> {
    if form.get("client_assertion_type").map(String::as_str) != Some(CLIENT_ASSERTION_TYPE) {
        return Err(OAuthError::invalid_request(format!(
            "client_assertion_type must be {CLIENT_ASSERTION_TYPE}"
        )));
    }
    let bad = |why: &str| refused(why, false);
    let jwt = jose::read(assertion).map_err(bad)?;
    let iss = jwt
        .claim_str("iss")
        .ok_or_else(|| bad("the client assertion needs iss"))?;
    if jwt.claim_str("sub") != Some(iss) {
        return Err(bad(
            "the client assertion's iss and sub must both be the client_id",
        ));
    }
    if form.get("client_id").is_some_and(|id| id != iss) {
        return Err(bad("client_id differs from the client assertion's sub"));
    }
    let client = live(state, iss)
        .await?
        .ok_or_else(|| bad("client authentication failed"))?;
    if client.auth_method != ServiceAuth::PrivateKeyJwt {
        return Err(bad("this machine client authenticates with its secret"));
    }
    let now = state.now();
    let keys = match (&client.jwks, &client.jwks_uri) {
        (Some(text), _) => jose::public_jwks(text).map_err(|_| bad("the client's registered keys are unusable"))?,
        (None, Some(uri)) => state
            .key_sets
            .at(uri, jwt.kid(), now)
            .await
            .map_err(|e| {
                tracing::warn!(client_id = %client.id, error = %e, "a machine client's JWKS could not be read");
                bad("the client's JWKS URL could not be read")
            })?,
        (None, None) => return Err(bad("the client has no registered keys")),
    };
    jose::verify_with_set(&jwt, &keys).map_err(bad)?;
    // RFC 7523 §3 (3): the audience identifies this server, by its issuer identifier or its
    // token endpoint. One audience only: an assertion addressed to several servers could be
    // replayed by any of them (the audience-injection attack RFC 7523bis closes).
    let token_endpoint = format!("{}/token", state.config.issuer);
    if !jose::single_audience(&jwt.claims)
        .is_some_and(|a| a == state.config.issuer || a == token_endpoint)
    {
        return Err(bad(
            "the client assertion's aud must be this server's issuer (or its token endpoint), alone",
        ));
    }
    let exp = jwt
        .claim_i64("exp")
        .ok_or_else(|| bad("the client assertion needs a numeric exp"))?;
    if exp + jose::CLOCK_SKEW < now {
        return Err(bad("the client assertion has expired"));
    }
    if exp - now > MAX_ASSERTION_LIFETIME {
        return Err(bad("the client assertion must expire within 10 minutes"));
    }
    if jwt
        .claim_i64("iat")
        .is_some_and(|iat| iat > now + jose::CLOCK_SKEW)
        || jwt
            .claim_i64("nbf")
            .is_some_and(|nbf| nbf > now + jose::CLOCK_SKEW)
    {
        return Err(bad("the client assertion is not valid yet"));
    }
    let jti = jwt
        .claim_str("jti")
        .filter(|j| !j.is_empty() && j.len() <= 256)
        .ok_or_else(|| bad("the client assertion needs a jti of at most 256 characters"))?;
    let digest = jose::jti_digest("client_assertion", iss, jti);
    if !state
        .store
        .remember_jti(&digest, exp + jose::CLOCK_SKEW)
        .await?
    {
        return Err(bad(
            "this client assertion was used before; make a new one for every request",
        ));
    }
    Ok(client)
}

/// What a `client_credentials` token request asks for (RFC 6749 §4.4.2).
pub struct ClientCredentials<'a> {
    pub scope: Option<&'a str>,
    pub resource: Option<&'a str>,
}

/// The `client_credentials` grant for an authenticated machine client: the scopes asked
/// within its fixed scopes, the token's audience the MCP resource (RFC 8707), DPoP-bound when
/// a proof came with it (and refused without one where the organisation requires it).
pub(super) async fn client_credentials(
    state: &AppState,
    client: &ServiceClient,
    meta: &RequestMeta,
    request: ClientCredentials<'_>,
    proof: Option<&dpop::Proof>,
) -> Result<Issued, OAuthError> {
    let ClientCredentials { scope, resource } = request;
    let scope = core::offered_scope(scope, &client.scopes)?;
    let mcp_url = &state.config.mcp_url;
    if resource.is_some_and(|r| !resource_matches(r, mcp_url)) {
        return Err(OAuthError::new(
            ErrorCode::InvalidTarget,
            "resource must be this server's MCP URL",
        ));
    }
    let jkt = dpop::binding(proof, client.org_requires_dpop)?;
    dpop::record(state, proof).await?;
    let signed: Signed = sign(
        state,
        Subject {
            sub: client.id.as_str(),
            gid: client.id.as_str(),
            org: &client.organization_id,
            client_id: client.id.as_str(),
            resource: mcp_url,
        },
        &scope,
        jkt.as_deref(),
    )
    .await?;
    let now = state.now();
    state
        .store
        .touch_service_client(&client.organization_id, &client.id, now)
        .await?;
    let (request_id, client_ip) = meta.parts();
    state.audit.record(
        Event::new(
            Some(&client.organization_id),
            Actor::new("service", client.id.as_str(), Some(client.name.clone())),
            "token.issued",
        )
        .from_request(request_id, client_ip)
        .target(client.id.as_str())
        .detail("grant_type", "client_credentials")
        .detail("scope", scope.to_string())
        .detail("jti", signed.jti.as_str())
        .detail("dpop_bound", jkt.is_some()),
    );
    Ok(Issued {
        signed,
        scope,
        refresh: None,
    })
}
