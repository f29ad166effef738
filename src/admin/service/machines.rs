//! The machine clients of an organisation: a scheduled report or a CI job that calls the MCP
//! server as the organisation's service identity, with fixed read scopes, through the client
//! credentials grant. The admin registers its public keys (`private_key_jwt`, recommended) or
//! takes a secret that is shown once.

use secrecy::SecretString;

use super::{AdminError, AdminResult, OrgAdmin, validate_key_name};
use crate::crypto::{random_token, sha256_hex};
use crate::scope::{Scope, ScopeSet};
use crate::signing::SERVICE_CLIENT_PREFIX;
use crate::store::{ClientId, ServiceAuth, ServiceClient};

/// What a machine client's secret starts with, so secret scanners recognise it.
pub const MACHINE_SECRET_PREFIX: &str = "cms_";

/// The largest JWKS an admin may register.
const MAX_JWKS_BYTES: usize = 16 * 1024;

/// How a new machine client will authenticate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MachineKeys {
    /// A secret made here and shown once (`client_secret_basic`).
    Secret,
    /// Its public keys, as a JWKS document (`private_key_jwt`).
    Jwks(String),
    /// Where it publishes its public keys (`private_key_jwt`).
    JwksUri(String),
}

/// A machine client to register.
#[derive(Debug, Clone)]
pub struct NewMachineClient {
    pub name: String,
    pub scopes: ScopeSet,
    pub keys: MachineKeys,
}

impl OrgAdmin<'_> {
    /// Every machine client of the organisation, revoked ones too, oldest first.
    pub async fn machine_clients(&self) -> AdminResult<Vec<ServiceClient>> {
        Ok(self.state.store.service_clients(&self.org.id).await?)
    }

    /// Registers a machine client; its secret, when it has one, is on this answer only.
    pub async fn create_machine_client(
        &self,
        new: NewMachineClient,
    ) -> AdminResult<(ServiceClient, Option<SecretString>)> {
        let name = validate_key_name(&new.name)?;
        if new.scopes.is_empty() {
            return Err(AdminError::invalid("scopes", "choose at least one scope"));
        }
        if new.scopes.iter().any(|s| s == Scope::Admin) {
            return Err(AdminError::invalid(
                "scopes",
                "a machine client reads data; administering the organisation needs a person",
            ));
        }
        let now = self.now();
        let (auth_method, secret, jwks, jwks_uri) = match new.keys {
            MachineKeys::Secret => {
                let secret = format!("{MACHINE_SECRET_PREFIX}{}", random_token(32));
                (ServiceAuth::ClientSecretBasic, Some(secret), None, None)
            }
            MachineKeys::Jwks(text) => {
                if text.len() > MAX_JWKS_BYTES {
                    return Err(AdminError::invalid(
                        "jwks",
                        format!("the JWKS is larger than {MAX_JWKS_BYTES} bytes"),
                    ));
                }
                let set =
                    crate::jose::public_jwks(&text).map_err(|e| AdminError::invalid("jwks", e))?;
                let compact = serde_json::to_string(&set)
                    .map_err(|e| AdminError::invalid("jwks", e.to_string()))?;
                (ServiceAuth::PrivateKeyJwt, None, Some(compact), None)
            }
            MachineKeys::JwksUri(uri) => {
                let uri = self.check_jwks_uri(uri.trim()).await?;
                (ServiceAuth::PrivateKeyJwt, None, None, Some(uri))
            }
        };
        let client = ServiceClient {
            id: ClientId::parse(&format!("{SERVICE_CLIENT_PREFIX}{}", random_token(16)))
                .map_err(|e| AdminError::invalid("id", e.to_string()))?,
            organization_id: self.org.id.clone(),
            name,
            scopes: new.scopes,
            auth_method,
            secret_hash: secret.as_deref().map(sha256_hex),
            jwks,
            jwks_uri,
            created_by: self.actor.id.clone(),
            created_at: now,
            last_used_at: None,
            revoked_at: None,
            org_requires_dpop: false,
        };
        self.state.store.insert_service_client(&client).await?;
        self.state.audit.record(
            self.event("service_client.created", client.id.as_str())
                .detail("name", client.name.as_str())
                .detail("scopes", client.scopes.to_string())
                .detail("auth_method", client.auth_method.as_str()),
        );
        Ok((client, secret.map(SecretString::from)))
    }

    /// A JWKS URL the server can read now: https (http on loopback only where the operator
    /// allowed it for tests), and a public key set behind it.
    async fn check_jwks_uri(&self, uri: &str) -> AdminResult<String> {
        let bad = |why: &str| AdminError::invalid("jwks_uri", why.to_owned());
        if uri.len() > 2000 {
            return Err(bad("the URL is longer than 2000 characters"));
        }
        let parsed = url::Url::parse(uri).map_err(|_| bad("not a URL"))?;
        let allowed = parsed.scheme() == "https"
            || (self.state.config.danger_sso_allow_loopback && parsed.scheme() == "http");
        if !allowed || parsed.host_str().is_none() {
            return Err(bad("the JWKS URL must be https"));
        }
        self.state
            .key_sets
            .at(uri, None, self.now())
            .await
            .map_err(|e| {
                AdminError::invalid("jwks_uri", format!("the JWKS URL could not be read: {e}"))
            })?;
        Ok(uri.to_owned())
    }

    /// Revokes a machine client: its tokens stop on their next call, on every replica.
    pub async fn revoke_machine_client(&self, id: &str) -> AdminResult<()> {
        let id = ClientId::parse(id).map_err(|_| AdminError::NotFound("machine client"))?;
        let store = &self.state.store;
        let ended = store
            .revoke_service_client(&self.org.id, &id, self.now())
            .await?;
        self.ended(
            ended,
            "machine client",
            "service_client.revoked",
            id.as_str(),
        )
    }
}
