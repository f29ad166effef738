//! OAuth clients: RFC 7591 metadata and its validation, and loading a client by id, whether it was
//! registered dynamically or is a Client ID Metadata Document URL.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::error::{ErrorCode, OAuthError};
use super::redirect;
use crate::scope::ScopeSet;
use crate::state::AppState;
use crate::store::{ClientId, ClientKind, ClientRecord};

pub const MAX_REDIRECT_URIS: usize = 10;
pub const MAX_NAME_CHARS: usize = 200;
pub const AUTH_METHODS: [&str; 3] = ["none", "client_secret_basic", "client_secret_post"];

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientMetadata {
    /// Empty (and then left out) only for a client without the code grant.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub redirect_uris: Vec<String>,
    pub token_endpoint_auth_method: String,
    pub grant_types: Vec<String>,
    pub response_types: Vec<String>,
    pub client_name: String,
    pub application_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_uri: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logo_uri: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tos_uri: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_uri: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub contacts: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub software_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub software_version: Option<String>,
}

fn meta_err(d: impl AsRef<str>) -> OAuthError {
    OAuthError::new(ErrorCode::InvalidClientMetadata, d)
}

fn redirect_err(d: impl AsRef<str>) -> OAuthError {
    OAuthError::new(ErrorCode::InvalidRedirectUri, d)
}

fn opt_string(v: &Value, key: &str, max: usize) -> Result<Option<String>, OAuthError> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.chars().count() > max => {
            Err(meta_err(format!("{key} is longer than {max} characters")))
        }
        // A name people read on the consent page must look like what it is: no control, bidi
        // or zero-width characters (which can reorder or hide part of it).
        Some(Value::String(s)) if s.chars().any(crate::orgname::is_invisible) => Err(meta_err(
            format!("{key} has control, bidi or zero-width characters"),
        )),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(meta_err(format!("{key} must be a string"))),
    }
}

fn string_list(
    v: &Value,
    key: &str,
    max_items: usize,
    max_len: usize,
) -> Result<Option<Vec<String>>, OAuthError> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(items)) => {
            if items.len() > max_items {
                return Err(meta_err(format!("{key} has more than {max_items} entries")));
            }
            items
                .iter()
                .map(|i| match i {
                    Value::String(s)
                        if s.chars().count() <= max_len
                            && !s.chars().any(crate::orgname::is_invisible) =>
                    {
                        Ok(s.clone())
                    }
                    _ => Err(meta_err(format!("{key} must be an array of short strings"))),
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some)
        }
        Some(_) => Err(meta_err(format!("{key} must be an array"))),
    }
}

fn https_uri(v: &Value, key: &str) -> Result<Option<String>, OAuthError> {
    let Some(s) = opt_string(v, key, 2000)? else {
        return Ok(None);
    };
    match url::Url::parse(&s) {
        Ok(u) if u.scheme() == "https" => Ok(Some(s)),
        _ => Err(meta_err(format!("{key} must be an https URL"))),
    }
}

/// Validates registration metadata (RFC 7591 §2) and fills the RFC defaults.
pub fn validate_metadata(v: &Value) -> Result<ClientMetadata, OAuthError> {
    if !v.is_object() {
        return Err(meta_err("the registration body must be a JSON object"));
    }
    let grant_types =
        string_list(v, "grant_types", 5, 64)?.unwrap_or_else(|| vec!["authorization_code".into()]);
    let known = |g: &String| {
        g == "authorization_code" || g == "refresh_token" || g == super::token::JWT_BEARER
    };
    let uses_code = grant_types.iter().any(|g| g == "authorization_code");
    let uses_jwt_bearer = grant_types.iter().any(|g| g == super::token::JWT_BEARER);
    if !grant_types.iter().all(known) || !(uses_code || uses_jwt_bearer) {
        return Err(meta_err(format!(
            "grant_types must include authorization_code (and may add refresh_token) or {}",
            super::token::JWT_BEARER
        )));
    }
    if !uses_code && grant_types.iter().any(|g| g == "refresh_token") {
        return Err(meta_err(
            "refresh_token comes only with authorization_code: an identity assertion is exchanged again instead",
        ));
    }
    let redirect_uris = string_list(v, "redirect_uris", MAX_REDIRECT_URIS, 2000).map_err(|e| {
        if e.code == ErrorCode::InvalidClientMetadata {
            redirect_err(e.description)
        } else {
            e
        }
    })?;
    // Absent is fine for a client without the code grant; a list given is never empty.
    if redirect_uris.as_ref().is_some_and(Vec::is_empty) || (uses_code && redirect_uris.is_none()) {
        return Err(redirect_err(
            "redirect_uris must list at least one redirect URI",
        ));
    }
    let redirect_uris = redirect_uris.unwrap_or_default();
    for uri in &redirect_uris {
        redirect::validate_for_registration(uri).map_err(|e| redirect_err(e.to_string()))?;
    }
    let token_endpoint_auth_method = opt_string(v, "token_endpoint_auth_method", 64)?
        .unwrap_or_else(|| "client_secret_basic".into());
    if !AUTH_METHODS.contains(&token_endpoint_auth_method.as_str()) {
        return Err(meta_err(format!(
            "token_endpoint_auth_method must be one of {}",
            AUTH_METHODS.join(", ")
        )));
    }
    if uses_jwt_bearer && token_endpoint_auth_method == "none" {
        return Err(meta_err(
            "the jwt-bearer grant is only for confidential clients: choose client_secret_basic or client_secret_post",
        ));
    }
    let default_response = if uses_code {
        vec!["code".into()]
    } else {
        Vec::new()
    };
    let response_types = string_list(v, "response_types", 3, 64)?.unwrap_or(default_response);
    if uses_code && response_types != ["code"] {
        return Err(meta_err("response_types must be [\"code\"]"));
    }
    if !uses_code && !response_types.is_empty() {
        return Err(meta_err(
            "response_types must be empty for a client without authorization_code",
        ));
    }
    let application_type = opt_string(v, "application_type", 16)?.unwrap_or_else(|| "web".into());
    if application_type != "web" && application_type != "native" {
        return Err(meta_err("application_type must be web or native"));
    }
    let explicit_web = v.get("application_type").and_then(Value::as_str) == Some("web");
    if explicit_web && token_endpoint_auth_method != "none" {
        let loopback = redirect_uris
            .iter()
            .any(|u| url::Url::parse(u).is_ok_and(|u| redirect::is_loopback_url(&u)));
        if loopback {
            return Err(redirect_err(
                "a confidential web client cannot use a loopback redirect URI; register as application_type native",
            ));
        }
    }
    let client_name = opt_string(v, "client_name", MAX_NAME_CHARS)?
        .map(|n| n.trim().to_owned())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "Unnamed client".into());
    let scope = opt_string(v, "scope", 500)?;
    if let Some(s) = &scope {
        ScopeSet::parse(s).map_err(|e| meta_err(e.to_string()))?;
    }
    Ok(ClientMetadata {
        redirect_uris,
        token_endpoint_auth_method,
        grant_types,
        response_types,
        client_name,
        application_type,
        scope,
        client_uri: https_uri(v, "client_uri")?,
        logo_uri: https_uri(v, "logo_uri")?,
        tos_uri: https_uri(v, "tos_uri")?,
        policy_uri: https_uri(v, "policy_uri")?,
        contacts: string_list(v, "contacts", 5, 254)?.unwrap_or_default(),
        software_id: opt_string(v, "software_id", 200)?,
        software_version: opt_string(v, "software_version", 100)?,
    })
}

/// A client as the protocol code sees it.
#[derive(Debug, Clone)]
pub struct Client {
    pub id: ClientId,
    pub kind: ClientKind,
    pub meta: ClientMetadata,
    pub secret_hash: Option<String>,
}

impl Client {
    pub fn is_public(&self) -> bool {
        self.meta.token_endpoint_auth_method == "none"
    }

    pub fn allows_refresh(&self) -> bool {
        self.meta.grant_types.iter().any(|g| g == "refresh_token")
    }

    fn from_record(r: ClientRecord) -> Option<Self> {
        let meta: ClientMetadata = serde_json::from_value(r.metadata).ok()?;
        Some(Self {
            id: r.id,
            kind: r.kind,
            meta,
            secret_hash: r.secret_hash,
        })
    }
}

/// Whether a `client_id` names a metadata document.
pub fn is_cimd_id(client_id: &str, allow_loopback: bool) -> bool {
    client_id.starts_with("https://") || (allow_loopback && client_id.starts_with("http://"))
}

/// Whether a client's new metadata sends codes somewhere its remembered consent never saw: a
/// change of `redirect_uris` (RFC 7592 update or a refetched Client ID Metadata Document)
/// forgets that consent, so `prompt=none` never redirects a code to a new host.
pub fn redirects_changed(stored: &Value, new: &ClientMetadata) -> bool {
    stored.get("redirect_uris") != Some(&serde_json::json!(new.redirect_uris))
}

/// What the consent and sign-in pages show beside the self-asserted name: the host that
/// identifies the client (its metadata document's, for a URL `client_id`) or, for a
/// registered client, the host its codes go to.
pub fn identifying_host(client_id: &str, redirect_uri: &str, allow_loopback: bool) -> String {
    let from = if is_cimd_id(client_id, allow_loopback) {
        client_id
    } else {
        redirect_uri
    };
    url::Url::parse(from)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .unwrap_or_else(|| from.to_owned())
}

/// Loads an enabled client: from the store, or (for a URL `client_id`) from its metadata document,
/// cached in the store per its HTTP cache headers.
/// `caller` is the address the request came from, which bounds the metadata-document fetches one
/// address can cause.
pub async fn load(
    state: &AppState,
    client_id: &str,
    caller: Option<std::net::IpAddr>,
) -> Result<Option<Client>, OAuthError> {
    let Ok(id) = ClientId::parse(client_id) else {
        return Ok(None);
    };
    let now = state.now();
    let record = state.store.client(&id).await?;
    if let Some(r) = &record
        && r.disabled
    {
        return Ok(None);
    }
    if is_cimd_id(client_id, state.config.danger_cimd_allow_loopback) {
        if let Some(r) = record
            && r.kind == ClientKind::Cimd
            && r.expires_at.is_some_and(|e| e > now)
        {
            return Ok(Client::from_record(r));
        }
        let (doc, ttl) = match state.cimd.fetch(client_id, now, caller).await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(client_id, error = %e, "client metadata document rejected");
                return Ok(None);
            }
        };
        let meta = match metadata_from_document(&doc) {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(client_id, error = %e.description, "client metadata document rejected");
                return Ok(None);
            }
        };
        let value = serde_json::to_value(&meta).expect("metadata serializes");
        let stored = state.store.client(&id).await?;
        state
            .store
            .upsert_cimd_client(&id, &value, now, now + ttl)
            .await?;
        if let Some(old) = stored
            && redirects_changed(&old.metadata, &meta)
        {
            state.store.forget_consent_everywhere(&id).await?;
            tracing::info!(
                client_id,
                "client metadata document changed its redirect URIs; consent forgotten"
            );
        }
        return Ok(Some(Client {
            id,
            kind: ClientKind::Cimd,
            meta,
            secret_hash: None,
        }));
    }
    Ok(record
        .filter(|r| r.kind == ClientKind::Dcr)
        .and_then(Client::from_record))
}

/// A Client ID Metadata Document's metadata: `client_name` and `redirect_uris` required, public
/// client only (no secret, no private keys).
pub fn metadata_from_document(doc: &Value) -> Result<ClientMetadata, OAuthError> {
    let bad = |d: &str| {
        OAuthError::new(
            ErrorCode::InvalidClient,
            format!("the client metadata document is invalid: {d}"),
        )
    };
    if doc
        .get("client_name")
        .and_then(Value::as_str)
        .is_none_or(|s| s.trim().is_empty())
    {
        return Err(bad("client_name is required"));
    }
    if doc.get("redirect_uris").is_none() {
        return Err(bad("redirect_uris is required"));
    }
    for secret in ["client_secret", "client_secret_expires_at"] {
        if doc.get(secret).is_some() {
            return Err(bad("a metadata document must not contain a client secret"));
        }
    }
    if doc
        .get("jwks")
        .and_then(|j| j.get("keys"))
        .and_then(Value::as_array)
        .is_some_and(|keys| keys.iter().any(|k| k.get("d").is_some()))
    {
        return Err(bad("a metadata document must not contain private keys"));
    }
    match doc
        .get("token_endpoint_auth_method")
        .and_then(Value::as_str)
    {
        None | Some("none") => {}
        Some(_) => {
            return Err(bad(
                "only token_endpoint_auth_method none is supported for metadata documents",
            ));
        }
    }
    let mut v = doc.clone();
    v["token_endpoint_auth_method"] = Value::from("none");
    if v.get("grant_types").is_none() {
        v["grant_types"] = serde_json::json!(["authorization_code", "refresh_token"]);
    }
    validate_metadata(&v).map_err(|e| bad(&e.description))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn defaults_follow_rfc7591() {
        let m = validate_metadata(&json!({"redirect_uris": ["https://a.example/cb"]})).unwrap();
        assert_eq!(m.token_endpoint_auth_method, "client_secret_basic");
        assert_eq!(m.grant_types, ["authorization_code"]);
        assert_eq!(m.response_types, ["code"]);
        assert_eq!(m.application_type, "web");
    }

    #[test]
    fn bad_metadata_is_named() {
        let cases = [
            (json!({}), "invalid_redirect_uri"),
            (
                json!({"redirect_uris": ["http://evil.example/cb"]}),
                "invalid_redirect_uri",
            ),
            (
                json!({"redirect_uris": ["https://a.example/cb#x"]}),
                "invalid_redirect_uri",
            ),
            (
                json!({"redirect_uris": vec!["https://a.example/cb"; 11]}),
                "invalid_redirect_uri",
            ),
            (
                json!({"redirect_uris": ["https://a.example/cb"], "token_endpoint_auth_method": "private_key_jwt"}),
                "invalid_client_metadata",
            ),
            (
                json!({"redirect_uris": ["https://a.example/cb"], "grant_types": ["implicit"]}),
                "invalid_client_metadata",
            ),
            (
                json!({"redirect_uris": ["https://a.example/cb"], "response_types": ["token"]}),
                "invalid_client_metadata",
            ),
            (
                json!({"redirect_uris": ["https://a.example/cb"], "client_name": "x".repeat(201)}),
                "invalid_client_metadata",
            ),
            (
                json!({"redirect_uris": ["https://a.example/cb"], "scope": "superuser"}),
                "invalid_client_metadata",
            ),
            (
                json!({"redirect_uris": ["http://127.0.0.1/cb"], "application_type": "web", "token_endpoint_auth_method": "client_secret_post"}),
                "invalid_redirect_uri",
            ),
            (json!(["not an object"]), "invalid_client_metadata"),
        ];
        for (body, code) in cases {
            let e = validate_metadata(&body).unwrap_err();
            assert_eq!(e.code.as_str(), code, "{body}");
        }
        assert!(validate_metadata(&json!({"redirect_uris": ["http://127.0.0.1/cb"], "token_endpoint_auth_method": "none"})).is_ok());
    }

    #[test]
    fn documents_must_be_public_clients_with_name_and_redirects() {
        let ok = serde_json::json!({"client_id": "https://app.example/c.json", "client_name": "App", "redirect_uris": ["http://127.0.0.1/cb"]});
        let m = metadata_from_document(&ok).unwrap();
        assert_eq!(m.token_endpoint_auth_method, "none");
        assert!(m.grant_types.contains(&"refresh_token".to_owned()));
        let mut with_secret = ok.clone();
        with_secret["client_secret"] = "x".into();
        assert!(metadata_from_document(&with_secret).is_err());
        let mut no_name = ok.clone();
        no_name.as_object_mut().unwrap().remove("client_name");
        assert!(metadata_from_document(&no_name).is_err());
    }
}
