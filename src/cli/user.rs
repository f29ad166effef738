//! `clari-mcp user`: people, their passwords and memberships.

use anyhow::{anyhow, bail};
use clap::{Args, Subcommand};

use super::{find_org, find_user, operator_event, read_secret, status};
use crate::app::AppState;
use crate::crypto::Passwords;
use crate::store::{Email, Role};

/// Who joins which organisation in which role: the arguments of every command that adds a
/// person.
#[derive(Debug, Args)]
pub struct Member {
    #[arg(long, value_name = "ORG")]
    pub org: String,
    #[arg(long)]
    pub email: String,
    #[arg(long, default_value = "member", value_parser = ["admin", "member"])]
    pub role: String,
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user in an organisation; the password is read from standard input.
    Create {
        #[command(flatten)]
        who: Member,
    },
    /// Add an existing user to another organisation.
    AddToOrg {
        #[command(flatten)]
        who: Member,
    },
    /// List the users of an organisation.
    List {
        #[arg(long, value_name = "ORG")]
        org: String,
        #[arg(long)]
        json: bool,
    },
    /// Replace a user's password with one read from standard input.
    SetPassword {
        #[arg(long)]
        email: String,
    },
    /// Disable a user: sign-in, tokens and API keys stop working.
    Disable {
        #[arg(long)]
        email: String,
    },
    /// Enable a disabled user.
    Enable {
        #[arg(long)]
        email: String,
    },
}

pub(super) async fn run(state: AppState, cmd: UserCommand) -> anyhow::Result<()> {
    let now = state.now();
    match cmd {
        UserCommand::Create {
            who: Member { org, email, role },
        } => {
            let role = Role::parse(&role).map_err(|e| anyhow!(e))?;
            let email = Email::parse(&email).map_err(|e| anyhow!(e))?;
            let org = find_org(&state, &org).await?;
            if state.store.find_user_by_email(&email).await?.is_some() {
                bail!(
                    "a user with e-mail {email} already exists (use `clari-mcp user add-to-org` to add them to another organisation)"
                );
            }
            let password = read_secret("password")?;
            Passwords::check_policy(&password)?;
            let hash = state.passwords.hash(password).await?;
            let user = state
                .store
                .create_user(&org.id, &email, &hash, role, now)
                .await?;
            state.audit.record(
                operator_event(Some(&org.id), "user.created", user.id.as_str())
                    .detail("email", user.email.as_str())
                    .detail("role", role.as_str()),
            );
            println!("{}", user.id);
        }
        UserCommand::AddToOrg {
            who: Member { org, email, role },
        } => {
            let role = Role::parse(&role).map_err(|e| anyhow!(e))?;
            let user = find_user(&state, &email).await?;
            let org = find_org(&state, &org).await?;
            state
                .store
                .add_membership(&org.id, &user.id, role, now)
                .await?;
            state.audit.record(
                operator_event(Some(&org.id), "user.added_to_org", user.id.as_str())
                    .detail("email", user.email.as_str())
                    .detail("role", role.as_str()),
            );
            println!("{} is now {} of '{}'", user.email, role.as_str(), org.name);
        }
        UserCommand::List { org, json } => {
            let org = find_org(&state, &org).await?;
            let members = state.store.list_members(&org.id).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&members)?);
            } else {
                println!("{:<38} {:<7} {:<9} EMAIL", "ID", "ROLE", "STATUS");
                for m in members {
                    println!(
                        "{:<38} {:<7} {:<9} {}",
                        m.user.id,
                        m.role.as_str(),
                        status(m.user.disabled),
                        m.user.email
                    );
                }
            }
        }
        UserCommand::SetPassword { email } => {
            let user = find_user(&state, &email).await?;
            let password = read_secret("new password")?;
            Passwords::check_policy(&password)?;
            let hash = state.passwords.hash(password).await?;
            state
                .store
                .set_user_password(&user.id, &hash, false)
                .await?;
            record_in_each_org(&state, &user, "user.password_set").await?;
            println!("password of {} replaced", user.email);
        }
        UserCommand::Disable { email } => {
            let user = find_user(&state, &email).await?;
            state.store.set_user_disabled(&user.id, true).await?;
            record_in_each_org(&state, &user, "user.disabled").await?;
            println!("user {} disabled", user.email);
        }
        UserCommand::Enable { email } => {
            let user = find_user(&state, &email).await?;
            state.store.set_user_disabled(&user.id, false).await?;
            record_in_each_org(&state, &user, "user.enabled").await?;
            println!("user {} enabled", user.email);
        }
    }
    Ok(())
}

/// Records a change to a person in the chain of every organisation they belong to (each
/// organisation's admins see it in their own trail).
async fn record_in_each_org(
    state: &AppState,
    user: &crate::store::User,
    action: &'static str,
) -> anyhow::Result<()> {
    for m in state.store.memberships(&user.id).await? {
        state.audit.record(
            operator_event(Some(&m.organization.id), action, user.id.as_str())
                .detail("email", user.email.as_str()),
        );
    }
    Ok(())
}
