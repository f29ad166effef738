//! The scale model's two steps inside the server's own code (`bench/scale.py` drives them):
//!
//! - `scale seed --orgs N --people M --clari-keys K1,K2 --clients C1,C2`: provisions N
//!   organisations with M people each, as the product writes them: the organisation and its Clari
//!   key sealed in the vault, each person (the first an admin) with a password, a `clari:read` API
//!   key, and an OAuth grant on one of the given clients with a refresh token, as consent and the
//!   token endpoint leave them. One password hash serves everyone (hashing 10,000 times would
//!   time Argon2, not the model). Prints one JSON line per person: organisation, email, API key,
//!   client, refresh token.
//! - `scale housekeeping`: one pass of housekeeping and of the gauges read from the store, as
//!   every replica runs them, timed; prints what each removed and took, as JSON.
//!
//! Both read the server's configuration from the environment (`CLARI_MCP_DATABASE_URL`,
//! `CLARI_MCP_VAULT_KEYS`, `CLARI_MCP_PUBLIC_URL`, …), as `clari-mcp serve` does.

use std::time::Instant;

use anyhow::{Context, bail};
use clari_mcp::app::AppState;
use clari_mcp::config::Config;
use clari_mcp::crypto::{random_token, token::hint};
use clari_mcp::orgname::OrgName;
use clari_mcp::scope::{Scope, ScopeSet};
use clari_mcp::store::{ClientId, Email, Role};
use futures_util::StreamExt;
use secrecy::{ExposeSecret, SecretString};

/// Organisations provisioned at once (each one's people go in order).
const AT_ONCE: usize = 16;

fn flag(args: &[String], name: &str) -> anyhow::Result<String> {
    args.windows(2)
        .find(|w| w[0] == name)
        .map(|w| w[1].clone())
        .with_context(|| format!("missing {name}"))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    clari_mcp::init_crypto();
    let config = Config::load(None).context("configuration")?;
    let state = AppState::from_config(config).await?;
    match args.first().map(String::as_str) {
        Some("seed") => seed(&state, &args).await,
        Some("housekeeping") => housekeeping(&state).await,
        _ => bail!(
            "usage: scale seed --orgs N --people M --clari-keys K,.. --clients C,.. | scale housekeeping"
        ),
    }
}

async fn seed(state: &AppState, args: &[String]) -> anyhow::Result<()> {
    let orgs: usize = flag(args, "--orgs")?.parse()?;
    let people: usize = flag(args, "--people")?.parse()?;
    let clari_keys: Vec<String> = flag(args, "--clari-keys")?
        .split(',')
        .map(str::to_owned)
        .collect();
    let clients = flag(args, "--clients")?
        .split(',')
        .map(ClientId::parse)
        .collect::<Result<Vec<_>, _>>()?;
    let password_hash = state
        .passwords
        .hash(SecretString::from(random_token(18)))
        .await?;
    let lines = futures_util::stream::iter(0..orgs)
        .map(|i| {
            let (state, clari_keys, clients, hash) = (state, &clari_keys, &clients, &password_hash);
            async move { seed_org(state, i, people, clari_keys, clients, hash).await }
        })
        .buffer_unordered(AT_ONCE)
        .collect::<Vec<_>>()
        .await;
    let mut out = String::new();
    for org in lines {
        for line in org? {
            out.push_str(&line);
            out.push('\n');
        }
    }
    print!("{out}");
    state.audit.flush().await;
    Ok(())
}

async fn seed_org(
    state: &AppState,
    i: usize,
    people: usize,
    clari_keys: &[String],
    clients: &[ClientId],
    password_hash: &str,
) -> anyhow::Result<Vec<String>> {
    let store = &state.store;
    let now = state.now();
    let name = format!("Scale {i:06}");
    let org = store.create_org(&OrgName::parse(&name)?, now).await?;
    let clari_key = &clari_keys[i % clari_keys.len()];
    store
        .put_clari_credential(
            &org.id,
            &state.vault.seal(clari_key.as_bytes()),
            &hint(clari_key),
            None,
            now,
        )
        .await?;
    let scope = ScopeSet::new([Scope::ClariRead]);
    let mut lines = Vec::with_capacity(people);
    for j in 0..people {
        let email = format!("person{j}@org{i:06}.scale.test");
        let role = if j == 0 { Role::Admin } else { Role::Member };
        let user = store
            .create_user(
                &org.id,
                &Email::parse(&email).map_err(|e| anyhow::anyhow!(e))?,
                password_hash,
                role,
                now,
            )
            .await?;
        let (key, _) = clari_mcp::apikeys::mint(
            store.as_ref(),
            clari_mcp::apikeys::KeyRequest {
                org: &org.id,
                user: &user.id,
                name: "agent",
                scopes: scope.clone(),
                expires_at: None,
                now,
            },
        )
        .await?;
        let client = &clients[(i + j) % clients.len()];
        let grant = store
            .upsert_grant(
                &org.id,
                &user.id,
                client,
                &scope,
                &state.config.mcp_url,
                true,
                now,
            )
            .await?;
        let refresh = clari_mcp::oauth::grants::new_refresh(state, &grant, &scope, now, None)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        lines.push(
            serde_json::json!({
                "org": name,
                "email": email,
                "api_key": key.expose_secret(),
                "client_id": client.as_str(),
                "refresh_token": refresh,
            })
            .to_string(),
        );
    }
    Ok(lines)
}

async fn housekeeping(state: &AppState) -> anyhow::Result<()> {
    let t = Instant::now();
    let done = clari_mcp::app::housekeeping(state).await?;
    let housekeeping_ms = t.elapsed().as_secs_f64() * 1e3;
    let t = Instant::now();
    clari_mcp::app::refresh_gauges(state).await?;
    let gauges_ms = t.elapsed().as_secs_f64() * 1e3;
    println!(
        "{}",
        serde_json::json!({
            "housekeeping_ms": housekeeping_ms,
            "gauges_ms": gauges_ms,
            "removed": format!("{done:?}"),
        })
    );
    Ok(())
}
