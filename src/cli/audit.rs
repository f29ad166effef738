//! `clari-mcp audit`: verify the trail (from the database or an exported file) and export it as
//! JSON Lines that anyone can verify offline with the published keys.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, Write};
use std::path::PathBuf;

use anyhow::{Context, anyhow, bail};
use clap::Subcommand;
use serde_json::{Value, json};

use super::find_org;
use crate::app::AppState;
use crate::audit::INSTANCE_CHAIN;
use crate::audit::chain::{verify_chain, verifying_key};
use crate::store::{AuditCheckpoint, AuditRecord};

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Recompute every hash chain and checkpoint signature; name the first broken row. Exit 1 on
    /// any break.
    Verify {
        /// One organisation (id or name; `-` for the instance's own chain); default: every chain.
        #[arg(long, value_name = "ORG")]
        org: Option<String>,
        /// Verify an exported JSON Lines file instead of the database.
        #[arg(long, value_name = "FILE")]
        from: Option<PathBuf>,
    },
    /// Write the trail as JSON Lines (keys, checkpoints, events with their chain fields, heads).
    Export {
        #[arg(long, value_name = "ORG")]
        org: Option<String>,
        /// Only events from this date (YYYY-MM-DD or RFC 3339) on; the export then starts at the
        /// signed checkpoint before it, so it still verifies on its own.
        #[arg(long, value_name = "DATE")]
        since: Option<String>,
        /// Write here instead of standard output.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
}

const PAGE: i64 = 10_000;

pub(super) async fn run(state: AppState, cmd: AuditCommand) -> anyhow::Result<()> {
    match cmd {
        AuditCommand::Verify { org, from } => {
            let chains = match from {
                Some(path) => read_export(&path)?,
                None => {
                    let names = chains(&state, org.as_deref()).await?;
                    let mut all = Vec::new();
                    for name in names {
                        all.push(load_chain(&state, &name, None).await?);
                    }
                    Loaded {
                        keys: state.audit.keys().verifying_keys(),
                        chains: all,
                    }
                }
            };
            let mut broken = 0;
            for c in &chains.chains {
                let head = c.head.as_ref().map(|(s, h)| (*s, h.as_str()));
                match verify_chain(&c.name, &c.events, &c.checkpoints, &chains.keys, head) {
                    Ok(r) => println!(
                        "chain {}: OK ({} event(s){}, {} signed checkpoint(s))",
                        r.chain,
                        r.events,
                        match (r.first_seq, r.last_seq) {
                            (Some(a), Some(b)) => format!(", seq {a}..{b}"),
                            _ => String::new(),
                        },
                        r.checkpoints
                    ),
                    Err(e) => {
                        broken += 1;
                        println!("{e}");
                    }
                }
            }
            if broken > 0 {
                // The failing exit code is the contract: scripts and SIEM jobs check it.
                std::io::stdout().flush().ok();
                std::process::exit(1);
            }
            Ok(())
        }
        AuditCommand::Export { org, since, out } => {
            let since = since
                .map(|s| {
                    crate::clari::client::parse_date(s.trim()).ok_or_else(|| {
                        anyhow!("--since: '{s}' is not a date (YYYY-MM-DD) or RFC 3339 time")
                    })
                })
                .transpose()?;
            let mut w: Box<dyn Write> = match &out {
                Some(p) => Box::new(std::io::BufWriter::new(
                    std::fs::File::create(p)
                        .with_context(|| format!("creating {}", p.display()))?,
                )),
                None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
            };
            for k in state.audit.keys().public_keys()["keys"]
                .as_array()
                .into_iter()
                .flatten()
            {
                let mut line = k.clone();
                line["type"] = json!("key");
                writeln!(w, "{line}")?;
            }
            for name in chains(&state, org.as_deref()).await? {
                let c = load_chain(&state, &name, since).await?;
                for cp in &c.checkpoints {
                    writeln!(w, "{}", tagged("checkpoint", cp)?)?;
                }
                for e in &c.events {
                    writeln!(w, "{}", tagged("event", e)?)?;
                }
                if let Some((seq, hash)) = &c.head {
                    writeln!(
                        w,
                        "{}",
                        json!({"type": "head", "chain": name, "seq": seq, "hash": hash})
                    )?;
                }
            }
            w.flush()?;
            Ok(())
        }
    }
}

fn tagged(kind: &str, v: &impl serde::Serialize) -> anyhow::Result<Value> {
    let mut v = serde_json::to_value(v)?;
    v["type"] = json!(kind);
    Ok(v)
}

struct Chain {
    name: String,
    events: Vec<AuditRecord>,
    checkpoints: Vec<AuditCheckpoint>,
    head: Option<(i64, String)>,
}

struct Loaded {
    keys: HashMap<String, ed25519_dalek::VerifyingKey>,
    chains: Vec<Chain>,
}

async fn chains(state: &AppState, org: Option<&str>) -> anyhow::Result<Vec<String>> {
    Ok(match org {
        None => state.store.audit_chains().await?,
        Some(INSTANCE_CHAIN) => vec![INSTANCE_CHAIN.to_owned()],
        Some(o) => vec![find_org(state, o).await?.id.into_string()],
    })
}

/// One chain from the database; with `since`, from the signed checkpoint before that time.
async fn load_chain(state: &AppState, name: &str, since: Option<i64>) -> anyhow::Result<Chain> {
    let checkpoints = state.store.audit_checkpoints(name).await?;
    let mut after = 0;
    if let Some(since) = since {
        let first = state
            .store
            .audit_last_before(name, since.saturating_sub(1))
            .await?
            .map_or(0, |e| e.seq);
        after = checkpoints
            .iter()
            .map(|c| c.seq)
            .filter(|s| *s <= first)
            .max()
            .unwrap_or(0);
    }
    let mut events = Vec::new();
    loop {
        let page = state.store.audit_events(name, after, PAGE).await?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        events.extend(page);
    }
    Ok(Chain {
        name: name.to_owned(),
        events,
        checkpoints,
        head: state.store.audit_head(name).await?,
    })
}

/// Reads an export: keys, then per chain its checkpoints, events and head.
fn read_export(path: &PathBuf) -> anyhow::Result<Loaded> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut keys = HashMap::new();
    let mut chains: BTreeMap<String, Chain> = BTreeMap::new();
    for (n, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.with_context(|| format!("reading line {}", n + 1))?;
        if line.trim().is_empty() {
            continue;
        }
        let v: Value =
            serde_json::from_str(&line).with_context(|| format!("line {} is not JSON", n + 1))?;
        let at = |what: &str| format!("line {}: {what}", n + 1);
        match v["type"].as_str() {
            Some("key") => {
                let (Some(kid), Some(pk)) = (v["kid"].as_str(), v["public_key"].as_str()) else {
                    bail!(at("a key needs kid and public_key"));
                };
                let key = verifying_key(pk).ok_or_else(|| anyhow!(at("unreadable public key")))?;
                keys.insert(kid.to_owned(), key);
            }
            Some("event") => {
                let e: AuditRecord = serde_json::from_value(v).with_context(|| at("event"))?;
                entry(&mut chains, &e.chain.clone()).events.push(e);
            }
            Some("checkpoint") => {
                let c: AuditCheckpoint =
                    serde_json::from_value(v).with_context(|| at("checkpoint"))?;
                entry(&mut chains, &c.chain.clone()).checkpoints.push(c);
            }
            Some("head") => {
                let (Some(name), Some(seq), Some(hash)) =
                    (v["chain"].as_str(), v["seq"].as_i64(), v["hash"].as_str())
                else {
                    bail!(at("a head needs chain, seq and hash"));
                };
                entry(&mut chains, name).head = Some((seq, hash.to_owned()));
            }
            _ => bail!(at("unknown line type")),
        }
    }
    for c in chains.values_mut() {
        c.events.sort_by_key(|e| e.seq);
    }
    Ok(Loaded {
        keys,
        chains: chains.into_values().collect(),
    })
}

fn entry<'a>(chains: &'a mut BTreeMap<String, Chain>, name: &str) -> &'a mut Chain {
    chains.entry(name.to_owned()).or_insert_with(|| Chain {
        name: name.to_owned(),
        events: Vec::new(),
        checkpoints: Vec::new(),
        head: None,
    })
}
