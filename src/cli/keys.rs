//! `clari-mcp keys`: the vault key ring and the access-token signing keys.

use anyhow::{Context, bail};
use clap::Subcommand;
use secrecy::ExposeSecret;

use crate::app::AppState;
use crate::config::Config;

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Re-encrypt every stored Clari key under the primary (first) vault key.
    RotateVault {
        /// Generate a new key, put it first in the vault key file, then re-encrypt
        /// (only when the keys come from the key file, not CLARI_MCP_VAULT_KEYS).
        #[arg(long)]
        add_key: bool,
    },
    /// Print a new random vault key (to put first in CLARI_MCP_VAULT_KEYS).
    NewVaultKey,
    /// Add a new access-token signing key; older keys stay published until their tokens expire.
    RotateSigning,
}

pub(super) async fn run(config: Config, cmd: KeysCommand) -> anyhow::Result<()> {
    match cmd {
        KeysCommand::NewVaultKey => {
            println!("{}", crate::crypto::Vault::generate_key().expose_secret());
            Ok(())
        }
        KeysCommand::RotateVault { add_key } => rotate_vault(config, add_key).await,
        KeysCommand::RotateSigning => {
            let state = AppState::from_config(config).await?;
            let kid = crate::signing::Keys::rotate(state.store.as_ref(), &state.vault, state.now())
                .await?;
            let purged = state
                .store
                .purge_signing_keys(state.now() - state.config.access_token_ttl - 300)
                .await?;
            state.audit.record(
                crate::audit::Event::new(
                    None,
                    crate::audit::Actor::operator(),
                    "keys.signing_rotated",
                )
                .target(kid.as_str()),
            );
            state.audit.flush().await;
            println!(
                "new signing key {kid}; earlier keys stay published until their tokens expire ({purged} expired key(s) removed)"
            );
            Ok(())
        }
    }
}

async fn rotate_vault(config: Config, add_key: bool) -> anyhow::Result<()> {
    if add_key {
        if config.vault_keys.is_some() {
            bail!(
                "--add-key works with the vault key file only; CLARI_MCP_VAULT_KEYS is set, so put the new key (`clari-mcp keys new-vault-key`) first there and run `keys rotate-vault` again"
            );
        }
        // Make sure the file exists (first start) before prepending.
        config.open_vault()?;
        let path = config.vault_key_file();
        let old = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let new_key = crate::crypto::Vault::generate_key();
        let contents = format!("{}\n{}", new_key.expose_secret(), old.trim_start());
        let tmp = path.with_extension("key.new");
        let _ = std::fs::remove_file(&tmp);
        crate::config::write_private_file(&tmp, contents.as_bytes())
            .with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, &path).with_context(|| format!("replacing {}", path.display()))?;
        eprintln!("added a new primary key to {}", path.display());
    }
    let state = AppState::from_config(config).await?;
    let vault = state.vault.clone();
    let reseal = move |ciphertext: &str, key_id: &str| vault.reseal(ciphertext, key_id);
    let n = state
        .store
        .reseal_clari_credentials(&reseal, state.now())
        .await?;
    let k = state.store.reseal_signing_keys(&reseal).await?;
    let a = state.store.reseal_audit_keys(&reseal).await?;
    let t = state.store.reseal_totp_secrets(&reseal).await?;
    let s = state.store.reseal_sso_secrets(&reseal).await?;
    state.audit.record(
        crate::audit::Event::new(None, crate::audit::Actor::operator(), "keys.vault_rotated")
            .detail("clari_credentials", n as u64)
            .detail("signing_keys", k as u64)
            .detail("audit_keys", a as u64)
            .detail("totp_secrets", t as u64)
            .detail("sso_client_secrets", s as u64)
            .detail("primary_key_id", state.vault.primary_key_id()),
    );
    state.audit.flush().await;
    println!(
        "re-encrypted {n} Clari credential(s), {k} signing key(s) and {a} audit key(s) under vault key {}",
        state.vault.primary_key_id()
    );
    Ok(())
}
