//! `clari-mcp org`: organisations and their Clari connection.

use anyhow::{anyhow, bail};
use clap::Subcommand;

use super::{find_org, operator_event, read_secret, status};
use crate::app::AppState;
use crate::clock::rfc3339;
use crate::redact::{RedactionPolicy, Redactor};

#[derive(Debug, Subcommand)]
pub enum OrgCommand {
    /// Create an organisation and print its id.
    Create {
        #[arg(long)]
        name: String,
    },
    /// List organisations.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Store the organisation's Clari API key, read from standard input.
    SetClariKey {
        #[arg(long, value_name = "ORG")]
        org: String,
        /// Clari API base URL for this organisation (default: the configured one).
        #[arg(long, value_name = "URL")]
        base_url: Option<String>,
    },
    /// Invite a person by e-mail address; prints the single-use link (and e-mails it when
    /// CLARI_MCP_SMTP_URL is set). They accept with their own account or password.
    Invite {
        #[command(flatten)]
        who: super::user::Member,
    },
    /// Make a SCIM token for the organisation's identity provider; prints it once (the SCIM
    /// base URL is <public URL>/scim/v2/<slug>).
    ScimToken {
        #[arg(long, value_name = "ORG")]
        org: String,
        #[arg(long, default_value = "identity provider")]
        name: String,
    },
    /// Connect the organisation's OpenID Connect provider (single sign-on); the client secret is
    /// read from standard input.
    Sso {
        #[arg(long, value_name = "ORG")]
        org: String,
        /// The provider's issuer URL (discovery is read from it).
        #[arg(long)]
        issuer: String,
        #[arg(long)]
        client_id: String,
        /// The e-mail domains the organisation owns (comma-separated).
        #[arg(long, value_delimiter = ',')]
        domains: Vec<String>,
        /// The ID token claim that lists the person's groups.
        #[arg(long, default_value = "groups")]
        groups_claim: String,
        /// Members of this group are admins.
        #[arg(long)]
        admin_group: Option<String>,
        /// Only members of this group (or the admin group) may sign in; unset: anyone the
        /// provider signs in.
        #[arg(long)]
        member_group: Option<String>,
        /// Refuse password sign-in for the organisation's domains.
        #[arg(long)]
        required: bool,
    },
    /// Disable an organisation: its tokens and API keys stop working on the next request, and
    /// its Clari exports in flight are cancelled (their results are not kept).
    Disable {
        #[arg(long, value_name = "ORG")]
        org: String,
    },
    /// Enable a disabled organisation (after a kill, nothing revoked comes back).
    Enable {
        #[arg(long, value_name = "ORG")]
        org: String,
    },
    /// Change an organisation's settings.
    Set {
        #[arg(long, value_name = "ORG")]
        org: String,
        /// What to redact from every answer: emails, phones, cards, ssns, ibans (comma-separated),
        /// all, none, or default (follow CLARI_MCP_REDACT).
        #[arg(long, value_name = "KINDS")]
        redact: Option<String>,
        /// A regular expression whose matches are redacted too (repeatable).
        #[arg(long = "redact-pattern", value_name = "REGEX")]
        redact_patterns: Vec<String>,
        /// Forecast tabs whose current-quarter export is kept warm (comma-separated, e.g.
        /// "forecast,renewals"), none, or default (follow CLARI_MCP_PREWARM).
        #[arg(long, value_name = "FORECASTS")]
        prewarm: Option<String>,
        /// Whether the organisation's admins must use two-step sign-in (true or false).
        #[arg(long, value_name = "BOOL")]
        require_admin_mfa: Option<bool>,
        /// Whether every token of the organisation's clients must be DPoP-bound (true or false).
        #[arg(long, value_name = "BOOL")]
        require_dpop: Option<bool>,
    },
    /// The emergency kill switch: disable the organisation, revoke every grant, refresh token,
    /// API key and machine client, cancel its Clari exports in flight; every replica refuses it
    /// at once.
    Kill {
        #[arg(long, value_name = "ORG")]
        org: String,
        /// Why (kept in the audit trail).
        #[arg(long)]
        reason: Option<String>,
    },
}

pub(super) async fn run(state: AppState, cmd: OrgCommand) -> anyhow::Result<()> {
    let now = state.now();
    match cmd {
        OrgCommand::Create { name } => {
            let name = crate::admin::service::validate_org_name(&name)?;
            let org = state.store.create_org(&name, now).await?;
            state.audit.record(
                operator_event(Some(&org.id), "org.created", org.id.as_str())
                    .detail("name", org.name.as_str()),
            );
            println!("{}", org.id);
        }
        OrgCommand::List { json } => {
            let orgs = state.store.list_orgs().await?;
            let mut rows = Vec::with_capacity(orgs.len());
            for o in orgs {
                let cred = state.store.clari_credential(&o.id).await?;
                rows.push((o, cred));
            }
            if json {
                let out: Vec<_> = rows
                    .iter()
                    .map(|(o, c)| {
                        serde_json::json!({
                            "id": o.id, "name": o.name, "disabled": o.disabled,
                            "created_at": rfc3339(o.created_at),
                            "clari_key": c.as_ref().map(|c| serde_json::json!({
                                "hint": c.key_hint, "base_url": c.base_url, "rotated_at": rfc3339(c.rotated_at)
                            })),
                        })
                    })
                    .collect();
                println!("{}", serde_json::to_string_pretty(&out)?);
            } else {
                println!("{:<38} {:<9} {:<12} NAME", "ID", "STATUS", "CLARI KEY");
                for (o, c) in rows {
                    let key =
                        c.map_or_else(|| "not set".to_owned(), |c| format!("****{}", c.key_hint));
                    println!(
                        "{:<38} {:<9} {:<12} {}",
                        o.id,
                        status(o.disabled),
                        key,
                        o.name
                    );
                }
            }
        }
        OrgCommand::Invite {
            who: super::user::Member { org, email, role },
        } => {
            let role = crate::store::Role::parse(&role).map_err(|e| anyhow!(e))?;
            let org = find_org(&state, &org).await?;
            let admin = crate::admin::OrgAdmin {
                state: &state,
                org,
                actor: crate::audit::Actor::operator(),
                meta: crate::http::RequestMeta::default(),
            };
            let created = admin.invite(&email, role).await?;
            match &created.emailed {
                Ok(()) => eprintln!("e-mailed to {}", created.invitation.email),
                Err(why) => eprintln!("not e-mailed: {why}"),
            }
            println!("{}", secrecy::ExposeSecret::expose_secret(&created.link));
        }
        OrgCommand::Sso {
            org,
            issuer,
            client_id,
            domains,
            groups_claim,
            admin_group,
            member_group,
            required,
        } => {
            let org = find_org(&state, &org).await?;
            let secret = read_secret("client secret")?;
            let admin = crate::admin::OrgAdmin {
                state: &state,
                org,
                actor: crate::audit::Actor::operator(),
                meta: crate::http::RequestMeta::default(),
            };
            let s = admin
                .set_sso(crate::admin::service::SsoChange {
                    issuer,
                    client_id,
                    client_secret: Some(secret),
                    domains,
                    groups_claim: Some(groups_claim),
                    admin_group,
                    member_group,
                    required,
                })
                .await?;
            println!(
                "redirect URI to register at the provider: {}",
                s.redirect_uri
            );
        }
        OrgCommand::ScimToken { org, name } => {
            let org = find_org(&state, &org).await?;
            let admin = crate::admin::OrgAdmin {
                state: &state,
                org: org.clone(),
                actor: crate::audit::Actor::operator(),
                meta: crate::http::RequestMeta::default(),
            };
            let (secret, _) = admin.create_scim_token(&name).await?;
            eprintln!(
                "SCIM base URL: {}/scim/v2/{}",
                state.config.public_url, org.slug
            );
            println!("{}", secrecy::ExposeSecret::expose_secret(&secret));
        }
        OrgCommand::SetClariKey { org, base_url } => {
            let org = find_org(&state, &org).await?;
            let key = read_secret("Clari API key")?;
            let admin = crate::admin::OrgAdmin {
                state: &state,
                org: org.clone(),
                actor: crate::audit::Actor::operator(),
                meta: crate::http::RequestMeta::default(),
            };
            let info = admin
                .set_clari_key(key, base_url.as_deref())
                .await
                .map_err(|e| match e {
                    crate::admin::AdminError::Invalid {
                        field: "base_url",
                        message,
                    } => anyhow!("--base-url: {message}"),
                    crate::admin::AdminError::Invalid { message, .. } => anyhow!(message),
                    other => anyhow!(other),
                })?;
            let key_hint = info.key_hint;
            println!(
                "stored Clari API key ****{key_hint} for organisation '{}' ({})",
                org.name, org.id
            );
        }
        OrgCommand::Disable { org } => {
            let org = find_org(&state, &org).await?;
            state.store.set_org_disabled(&org.id, true).await?;
            state.audit.record(operator_event(
                Some(&org.id),
                "org.disabled",
                org.id.as_str(),
            ));
            println!("organisation '{}' disabled", org.name);
        }
        OrgCommand::Enable { org } => {
            let org = find_org(&state, &org).await?;
            state.store.set_org_disabled(&org.id, false).await?;
            state.audit.record(operator_event(
                Some(&org.id),
                "org.enabled",
                org.id.as_str(),
            ));
            println!("organisation '{}' enabled", org.name);
        }
        OrgCommand::Set {
            org,
            redact,
            redact_patterns,
            prewarm,
            require_admin_mfa,
            require_dpop,
        } => {
            let org = find_org(&state, &org).await?;
            if redact.is_none()
                && redact_patterns.is_empty()
                && prewarm.is_none()
                && require_admin_mfa.is_none()
                && require_dpop.is_none()
            {
                bail!(
                    "nothing to set: give --redact, --redact-pattern, --prewarm, --require-admin-mfa and/or --require-dpop"
                );
            }
            if let Some(required) = require_dpop {
                state.store.set_org_requires_dpop(&org.id, required).await?;
                state.audit.record(
                    operator_event(Some(&org.id), "org.dpop_required", org.id.as_str())
                        .detail("required", required),
                );
                println!(
                    "DPoP-bound tokens for the clients of '{}': {}",
                    org.name,
                    if required { "required" } else { "not required" }
                );
            }
            if let Some(required) = require_admin_mfa {
                state.store.set_require_admin_mfa(&org.id, required).await?;
                state.audit.record(
                    operator_event(Some(&org.id), "org.admin_mfa_required", org.id.as_str())
                        .detail("required", required),
                );
                println!(
                    "two-step sign-in for the admins of '{}': {}",
                    org.name,
                    if required { "required" } else { "not required" }
                );
            }
            if let Some(list) = prewarm {
                set_prewarm(&state, &org, &list).await?;
            }
            if redact.is_none() && redact_patterns.is_empty() {
                return Ok(());
            }
            let stored = if redact.as_deref().map(str::trim) == Some("default") {
                if !redact_patterns.is_empty() {
                    bail!("--redact default follows the server's setting and takes no patterns");
                }
                None
            } else {
                let kinds = match &redact {
                    Some(r) => {
                        RedactionPolicy::parse_kinds(r).map_err(|e| anyhow!("--redact: {e}"))?
                    }
                    None => Vec::new(),
                };
                let policy = RedactionPolicy {
                    kinds,
                    custom: redact_patterns,
                };
                Redactor::new(&policy).map_err(|e| anyhow!("--redact-pattern: {e}"))?;
                Some(serde_json::to_string(&policy)?)
            };
            state
                .store
                .set_org_redaction(&org.id, stored.as_deref())
                .await?;
            state.audit.record(
                operator_event(Some(&org.id), "org.redaction_set", org.id.as_str())
                    .detail("policy", stored.as_deref().unwrap_or("default")),
            );
            println!(
                "redaction of '{}': {} (applies to the next tool call on every replica)",
                org.name,
                stored.as_deref().unwrap_or("the server's default"),
            );
        }
        OrgCommand::Kill { org, reason } => {
            let org = find_org(&state, &org).await?;
            let reason = reason.map(|r| r.trim().chars().take(500).collect::<String>());
            let report = crate::governance::kill(
                &state,
                &org.id,
                crate::audit::Actor::operator(),
                reason.as_deref(),
                &crate::http::RequestMeta::default(),
            )
            .await?;
            println!(
                "organisation '{}' killed: disabled; {} grant(s), {} refresh token(s), {} API key(s) and {} machine client(s) revoked; {} Clari export(s) cancelled",
                org.name,
                report.revoked.grants,
                report.revoked.refresh_tokens,
                report.revoked.api_keys,
                report.revoked.service_clients,
                report.exports_cancelled
            );
        }
    }
    Ok(())
}

/// `--prewarm`: `default` (the server's list), `none`, or forecast tabs separated by commas.
async fn set_prewarm(
    state: &AppState,
    org: &crate::store::Organization,
    list: &str,
) -> anyhow::Result<()> {
    let stored = match list.trim() {
        "default" => None,
        "none" => Some(String::new()),
        text => {
            let ids = crate::clari::ForecastId::parse_list(text)
                .map_err(|e| anyhow!("--prewarm: {}", e.reason))?;
            if ids.is_empty() {
                bail!("--prewarm: name forecast tabs, or say none or default");
            }
            Some(ids.iter().map(|f| f.as_str()).collect::<Vec<_>>().join(","))
        }
    };
    state
        .store
        .set_org_prewarm(&org.id, stored.as_deref())
        .await?;
    state.audit.record(
        operator_event(Some(&org.id), "org.prewarm_set", org.id.as_str())
            .detail("forecasts", stored.as_deref().unwrap_or("default")),
    );
    let budget = state.config.prewarm_daily_budget;
    match stored.as_deref() {
        None => println!(
            "pre-warm of '{}': the server's default ({})",
            org.name,
            if state.config.prewarm.is_empty() {
                "none".to_owned()
            } else {
                state
                    .config
                    .prewarm
                    .iter()
                    .map(|f| f.as_str())
                    .collect::<Vec<_>>()
                    .join(",")
            }
        ),
        Some("") => println!("pre-warm of '{}': off", org.name),
        Some(list) => println!(
            "pre-warm of '{}': {list} (current quarter; at most {budget} Clari exports a day; from the next pass, within {} s, on every replica)",
            org.name,
            crate::exports::prewarm::TICK.as_secs()
        ),
    }
    Ok(())
}
