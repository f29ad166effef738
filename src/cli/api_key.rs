//! `clari-mcp api-key`: scoped keys for single-user setups, shown once.

use anyhow::{anyhow, bail};
use clap::{Args, Subcommand};
use secrecy::ExposeSecret;

use super::{find_org, find_user, operator_event};
use crate::app::AppState;
use crate::clock::{parse_duration, rfc3339};
use crate::scope::ScopeSet;
use crate::store::{ApiKeyId, OrgId, StoreError};

#[derive(Debug, Subcommand)]
pub enum ApiKeyCommand {
    /// Create an API key and print it once.
    Create(ApiKeyCreate),
    /// List API keys (never the keys themselves).
    List {
        #[arg(long, value_name = "ORG")]
        org: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Revoke an API key by id.
    Revoke { id: String },
}

#[derive(Debug, Args)]
pub struct ApiKeyCreate {
    #[arg(long)]
    pub email: String,
    /// Comma-separated scopes, e.g. forecasts:read,users:read or clari:read.
    #[arg(long)]
    pub scopes: String,
    #[arg(long)]
    pub name: Option<String>,
    /// Lifetime such as 90d, 12h or 2w; no expiry when omitted.
    #[arg(long, value_name = "DURATION")]
    pub expires_in: Option<String>,
    /// Organisation, required when the user belongs to several.
    #[arg(long, value_name = "ORG")]
    pub org: Option<String>,
}

pub(super) async fn run(state: AppState, cmd: ApiKeyCommand) -> anyhow::Result<()> {
    let now = state.now();
    match cmd {
        ApiKeyCommand::Create(args) => {
            let scopes = ScopeSet::parse(&args.scopes)?;
            if scopes.is_empty() {
                bail!("--scopes must name at least one scope, e.g. clari:read");
            }
            let expires_at = args
                .expires_in
                .as_deref()
                .map(parse_duration)
                .transpose()
                .map_err(|e| anyhow!("--expires-in: {e}"))?
                .map(|secs| now + secs);
            let name = args.name.unwrap_or_else(|| "api key".to_owned());
            let name = name.trim();
            if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
                bail!("--name must be 1 to 100 printable characters");
            }
            let user = find_user(&state, &args.email).await?;
            let memberships = state.store.memberships(&user.id).await?;
            let org: OrgId = match args.org {
                Some(o) => {
                    let org = find_org(&state, &o).await?;
                    if !memberships.iter().any(|m| m.organization.id == org.id) {
                        bail!("{} is not a member of '{}'", user.email, org.name);
                    }
                    org.id
                }
                None => match memberships.as_slice() {
                    [only] => only.organization.id.clone(),
                    [] => bail!("{} belongs to no organisation", user.email),
                    _ => bail!(
                        "{} belongs to several organisations; pass --org",
                        user.email
                    ),
                },
            };
            let role = memberships
                .iter()
                .find(|m| m.organization.id == org)
                .map_or(crate::store::Role::Member, |m| m.role);
            if !crate::admin::service::may_hold(&scopes, role) {
                bail!(
                    "--scopes: the admin scope is only for the organisation's admins, and {} is not one",
                    user.email
                );
            }
            let (key, new) = crate::apikeys::mint(
                state.store.as_ref(),
                crate::apikeys::KeyRequest {
                    org: &org,
                    user: &user.id,
                    name,
                    scopes: scopes.clone(),
                    expires_at,
                    now,
                },
            )
            .await?;
            state.audit.record(
                operator_event(Some(&org), "api_key.created", new.id.as_str())
                    .detail("user_id", user.id.as_str())
                    .detail("name", new.name.as_str())
                    .detail("scopes", new.scopes.to_string())
                    .detail("expires_at", new.expires_at),
            );
            println!("{}", key.expose_secret());
            eprintln!(
                "created API key {} for {} with scopes '{}'{}; it is shown only once",
                new.id,
                user.email,
                scopes,
                expires_at
                    .map(|e| format!(", expiring {}", rfc3339(e)))
                    .unwrap_or_default()
            );
        }
        ApiKeyCommand::List { org, json } => {
            let orgs = match org {
                Some(o) => vec![find_org(&state, &o).await?],
                None => state.store.list_orgs().await?,
            };
            let mut keys = Vec::new();
            for o in &orgs {
                keys.extend(state.store.list_api_keys(&o.id).await?);
            }
            if json {
                println!("{}", serde_json::to_string_pretty(&keys)?);
            } else {
                println!(
                    "{:<38} {:<9} {:<9} {:<26} {:<24} NAME",
                    "ID", "STATUS", "KEY", "USER", "SCOPES"
                );
                for k in keys {
                    let st = if k.revoked_at.is_some() {
                        "revoked"
                    } else if !k.is_active(now) {
                        "expired"
                    } else {
                        "active"
                    };
                    println!(
                        "{:<38} {:<9} ****{:<5} {:<26} {:<24} {}",
                        k.id,
                        st,
                        k.key_hint,
                        k.user_email,
                        k.scopes.to_string(),
                        k.name
                    );
                }
            }
        }
        ApiKeyCommand::Revoke { id } => {
            let id = ApiKeyId::parse(id.trim())?;
            let org = state.store.api_key_org(&id).await?.ok_or_else(|| {
                anyhow!("unknown API key id '{id}' (see `clari-mcp api-key list`)")
            })?;
            match state.store.revoke_api_key(&org, &id, now).await {
                Ok(true) => {
                    state
                        .audit
                        .record(operator_event(Some(&org), "api_key.revoked", id.as_str()));
                    println!("API key {id} revoked")
                }
                Ok(false) => println!("API key {id} was already revoked"),
                Err(StoreError::NotFound(_)) => bail!("unknown API key id '{id}'"),
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(())
}
