//! `clari-mcp service-client`: an organisation's machine clients (the client credentials grant).

use anyhow::{Context, bail};
use clap::Subcommand;
use secrecy::ExposeSecret;

use super::find_org;
use crate::admin::service::{MachineKeys, NewMachineClient};
use crate::app::AppState;
use crate::clock::rfc3339;
use crate::scope::ScopeSet;

#[derive(Debug, Subcommand)]
pub enum MachineCommand {
    /// Register a machine client that acts as the organisation's service identity with fixed
    /// scopes. With --jwks-file or --jwks-uri it authenticates with private_key_jwt; without,
    /// a secret is printed once (client_secret_basic).
    Create {
        #[arg(long, value_name = "ORG")]
        org: String,
        #[arg(long)]
        name: String,
        /// Read scopes, comma- or space-separated (e.g. "forecasts:read,users:read").
        #[arg(long)]
        scopes: String,
        /// A file holding the client's public keys as a JWKS.
        #[arg(long, value_name = "FILE", conflicts_with = "jwks_uri")]
        jwks_file: Option<std::path::PathBuf>,
        /// Where the client publishes its public keys (https).
        #[arg(long, value_name = "URL")]
        jwks_uri: Option<String>,
    },
    /// List the organisation's machine clients.
    List {
        #[arg(long, value_name = "ORG")]
        org: String,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a machine client: its tokens stop on their next call.
    Revoke {
        #[arg(long, value_name = "ORG")]
        org: String,
        #[arg(long, value_name = "CLIENT_ID")]
        client_id: String,
    },
}

pub async fn run(state: AppState, cmd: MachineCommand) -> anyhow::Result<()> {
    let org_of = |name: String| {
        let state = state.clone();
        async move { find_org(&state, &name).await }
    };
    let admin = |org| crate::admin::OrgAdmin {
        state: &state,
        org,
        actor: crate::audit::Actor::operator(),
        meta: crate::http::RequestMeta::default(),
    };
    match cmd {
        MachineCommand::Create {
            org,
            name,
            scopes,
            jwks_file,
            jwks_uri,
        } => {
            let scopes = ScopeSet::parse(&scopes)?;
            let keys = match (jwks_file, jwks_uri) {
                (Some(path), _) => MachineKeys::Jwks(
                    std::fs::read_to_string(&path)
                        .with_context(|| format!("reading {}", path.display()))?,
                ),
                (None, Some(uri)) => MachineKeys::JwksUri(uri),
                (None, None) => MachineKeys::Secret,
            };
            let org = org_of(org).await?;
            let (client, secret) = admin(org)
                .create_machine_client(NewMachineClient { name, scopes, keys })
                .await?;
            println!("client_id: {}", client.id);
            println!(
                "token_endpoint_auth_method: {}",
                client.auth_method.as_str()
            );
            println!("scopes: {}", client.scopes);
            if let Some(secret) = secret {
                println!("client_secret: {}", secret.expose_secret());
                eprintln!("the secret is shown this once; store it in the client's secret store");
            }
            Ok(())
        }
        MachineCommand::List { org, json } => {
            let org = org_of(org).await?;
            let clients = admin(org).machine_clients().await?;
            if json {
                let rows: Vec<_> = clients
                    .iter()
                    .map(|c| {
                        serde_json::json!({
                            "client_id": c.id.as_str(),
                            "name": c.name,
                            "scopes": c.scopes.to_string(),
                            "token_endpoint_auth_method": c.auth_method.as_str(),
                            "created_at": rfc3339(c.created_at),
                            "last_used_at": c.last_used_at.map(rfc3339),
                            "revoked_at": c.revoked_at.map(rfc3339),
                        })
                    })
                    .collect();
                println!("{}", serde_json::to_string_pretty(&rows)?);
                return Ok(());
            }
            for c in clients {
                let status = if c.revoked_at.is_some() {
                    "revoked"
                } else {
                    "live"
                };
                println!(
                    "{}\t{}\t{}\t{}\t{status}",
                    c.id,
                    c.name,
                    c.auth_method.as_str(),
                    c.scopes
                );
            }
            Ok(())
        }
        MachineCommand::Revoke { org, client_id } => {
            let org = org_of(org).await?;
            let name = org.name.clone();
            if let Err(e) = admin(org).revoke_machine_client(&client_id).await {
                bail!("{e}");
            }
            println!("machine client {client_id} of '{name}' revoked");
            Ok(())
        }
    }
}
