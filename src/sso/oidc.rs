//! The relying-party side of OpenID Connect Core 1.0 against an organisation's provider:
//! discovery (§4 of OpenID Connect Discovery), the authorization code flow with PKCE, `state`
//! and `nonce` (Core §3.1.2), and ID token validation (Core §3.1.3.7) by the `openidconnect`
//! crate: signature against the provider's JWKS (fetched at every sign-in, so rotated keys are
//! seen), `iss`, `aud`, `azp`, `exp`, `iat` and `nonce`. Every request goes through the guarded
//! client: the provider's URL comes from an organisation admin.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreIdTokenClaims, CoreProviderMetadata,
};
use openidconnect::{
    AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl, Nonce, OAuth2TokenResponse,
    PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope, TokenResponse,
};
use serde_json::Value;

/// The most a provider's answer may hold.
const MAX_RESPONSE_BYTES: usize = 256 * 1024;
/// How far in the future an ID token's `iat` may lie (clock skew).
const IAT_SKEW_SECONDS: i64 = 300;

#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    #[error("the provider could not be reached or answered wrongly: {0}")]
    Http(String),
    #[error("the provider's configuration is not usable: {0}")]
    Discovery(String),
    #[error("the code exchange failed: {0}")]
    Exchange(String),
    #[error("the provider returned no ID token")]
    NoIdToken,
    #[error("the ID token is not valid: {0}")]
    IdToken(String),
    #[error("the provider did not say the e-mail address is verified")]
    EmailNotVerified,
    #[error("the ID token carries no e-mail address")]
    NoEmail,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct HttpError(String);

/// Our guarded client as the `openidconnect` crate calls it: each future owns its client, so
/// it is `Send` for any lifetime.
struct Http(reqwest::Client);

impl<'c> openidconnect::AsyncHttpClient<'c> for Http {
    type Error = HttpError;
    type Future = std::pin::Pin<
        Box<
            dyn std::future::Future<Output = Result<openidconnect::HttpResponse, HttpError>>
                + Send
                + 'c,
        >,
    >;

    fn call(&'c self, request: openidconnect::HttpRequest) -> Self::Future {
        let client = self.0.clone();
        Box::pin(async move { call(&client, request).await })
    }
}

/// One request to the provider through our own client, bounded in size.
async fn call(
    client: &reqwest::Client,
    request: openidconnect::HttpRequest,
) -> Result<openidconnect::HttpResponse, HttpError> {
    let (parts, body) = request.into_parts();
    let mut req = client.request(parts.method, parts.uri.to_string());
    for (name, value) in &parts.headers {
        req = req.header(name, value);
    }
    let r = req
        .body(body)
        .send()
        .await
        .map_err(|e| HttpError(e.to_string()))?;
    let status = r.status();
    let headers = r.headers().clone();
    if r.content_length()
        .is_some_and(|n| n as usize > MAX_RESPONSE_BYTES)
    {
        return Err(HttpError("the answer is too large".into()));
    }
    let bytes = r.bytes().await.map_err(|e| HttpError(e.to_string()))?;
    if bytes.len() > MAX_RESPONSE_BYTES {
        return Err(HttpError("the answer is too large".into()));
    }
    let mut out = openidconnect::HttpResponse::new(bytes.to_vec());
    *out.status_mut() = status;
    *out.headers_mut() = headers;
    Ok(out)
}

/// A provider found by discovery, ready to send people to and take them back.
pub struct Provider {
    client: openidconnect::core::CoreClient<
        openidconnect::EndpointSet,
        openidconnect::EndpointNotSet,
        openidconnect::EndpointNotSet,
        openidconnect::EndpointNotSet,
        openidconnect::EndpointMaybeSet,
        openidconnect::EndpointMaybeSet,
    >,
    http: Http,
}

/// What a sign-in must remember between leaving for the provider and coming back.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Started {
    pub url: String,
    pub state: String,
    pub nonce: String,
    pub verifier: String,
}

/// The person a valid ID token names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub issuer: String,
    pub subject: String,
    pub email: String,
    /// The values of the configured groups claim.
    pub groups: Vec<String>,
}

impl Provider {
    /// Discovers the provider at `issuer` (its metadata and JWKS).
    pub async fn discover(
        http: reqwest::Client,
        issuer: &str,
        client_id: &str,
        client_secret: &str,
        redirect: &str,
    ) -> Result<Self, OidcError> {
        let issuer =
            IssuerUrl::new(issuer.to_owned()).map_err(|e| OidcError::Discovery(e.to_string()))?;
        let http = Http(http);
        let meta = CoreProviderMetadata::discover_async(issuer, &http)
            .await
            .map_err(|e| OidcError::Discovery(error_chain(&e)))?;
        let redirect = RedirectUrl::new(redirect.to_owned())
            .map_err(|e| OidcError::Discovery(e.to_string()))?;
        let client = CoreClient::from_provider_metadata(
            meta,
            ClientId::new(client_id.to_owned()),
            Some(ClientSecret::new(client_secret.to_owned())),
        )
        .set_redirect_uri(redirect);
        Ok(Self { client, http })
    }

    /// The URL to send the person to: code flow, PKCE S256, fresh `state` and `nonce`.
    pub fn start(&self, login_hint: Option<&str>) -> Started {
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut req = self
            .client
            .authorize_url(
                CoreAuthenticationFlow::AuthorizationCode,
                CsrfToken::new_random,
                Nonce::new_random,
            )
            .add_scope(Scope::new("email".into()))
            .add_scope(Scope::new("profile".into()))
            .set_pkce_challenge(challenge);
        if let Some(hint) = login_hint {
            req = req.add_extra_param("login_hint", hint.to_owned());
        }
        let (url, state, nonce) = req.url();
        Started {
            url: url.to_string(),
            state: state.secret().clone(),
            nonce: nonce.secret().clone(),
            verifier: verifier.secret().clone(),
        }
    }

    /// Redeems the code and validates the ID token completely; `groups_claim` names the claim
    /// whose values are the person's groups.
    pub async fn finish(
        &self,
        code: &str,
        started: &Started,
        groups_claim: &str,
        now: i64,
    ) -> Result<Verified, OidcError> {
        let tokens = self
            .client
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .map_err(|e| OidcError::Exchange(e.to_string()))?
            .set_pkce_verifier(PkceCodeVerifier::new(started.verifier.clone()))
            .request_async(&self.http)
            .await
            .map_err(|e| OidcError::Exchange(error_chain(&e)))?;
        let _ = tokens.access_token();
        let id_token = tokens.id_token().ok_or(OidcError::NoIdToken)?;
        let verifier = self.client.id_token_verifier();
        let claims: &CoreIdTokenClaims = id_token
            .claims(&verifier, &Nonce::new(started.nonce.clone()))
            .map_err(|e| OidcError::IdToken(error_chain(&e)))?;
        // Core §3.1.3.7 (6)–(7): with an azp, it is us.
        if let Some(azp) = claims.authorized_party()
            && azp.as_str() != self.client.client_id().as_str()
        {
            return Err(OidcError::IdToken("azp is another client".into()));
        }
        // Core §3.1.3.7 (10): iat is not in the future.
        if claims.issue_time().timestamp() > now + IAT_SKEW_SECONDS {
            return Err(OidcError::IdToken("iat is in the future".into()));
        }
        if claims.email_verified() != Some(true) {
            return Err(OidcError::EmailNotVerified);
        }
        let email = claims
            .email()
            .map(|e| e.as_str().to_owned())
            .ok_or(OidcError::NoEmail)?;
        // The signature was checked above; the groups claim is read from the same payload.
        let groups = groups_of(&id_token.to_string(), groups_claim);
        Ok(Verified {
            issuer: claims.issuer().as_str().to_owned(),
            subject: claims.subject().as_str().to_owned(),
            email,
            groups,
        })
    }
}

/// The values of a claim that lists groups (an array of strings, or one string).
fn groups_of(jwt: &str, claim: &str) -> Vec<String> {
    let payload = jwt
        .split('.')
        .nth(1)
        .and_then(|p| URL_SAFE_NO_PAD.decode(p).ok())
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok());
    match payload.as_ref().and_then(|p| p.get(claim)) {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .take(200)
            .map(str::to_owned)
            .collect(),
        Some(Value::String(one)) => vec![one.clone()],
        _ => Vec::new(),
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out.chars().take(300).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_come_from_the_named_claim() {
        let payload = URL_SAFE_NO_PAD.encode(br#"{"groups":["a","b",3],"role":"x"}"#);
        let jwt = format!("h.{payload}.s");
        assert_eq!(groups_of(&jwt, "groups"), ["a", "b"]);
        assert_eq!(groups_of(&jwt, "role"), ["x"]);
        assert!(groups_of(&jwt, "none").is_empty());
    }
}
