//! The tamper evidence, as pure functions: the canonical form of an event and its hash, what a
//! checkpoint signature covers, and the verification of a chain.
//!
//! Canonical form (version 1): the JSON array
//! `[1, chain, seq, at, actor_kind, actor_id, actor_name, action, target, outcome, request_id,
//! client_ip, details, prev_hash]`, serialised compactly (no spaces; `null` for absent values;
//! `details` as its stored JSON text, a string). The event's hash is the lower-case hex SHA-256 of
//! those bytes; the first event's `prev_hash` is 64 zeros. A checkpoint signs, with Ed25519, the
//! UTF-8 text `clari-mcp audit checkpoint v1\n{chain}\n{seq}\n{head_hash}\n{at}`.

use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::{Signature, Verifier, VerifyingKey};

use sha2::{Digest, Sha256};

use crate::crypto::token::hex;
use crate::store::{AuditCheckpoint, AuditRecord, NewAuditEvent};

/// The `prev_hash` of a chain's first event.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// An event's canonical form, ready to be serialised (a tuple serialises as the JSON array).
type Canonical<'a> = (
    u8,
    &'a str,
    i64,
    i64,
    &'a str,
    Option<&'a str>,
    Option<&'a str>,
    &'a str,
    Option<&'a str>,
    &'a str,
    Option<&'a str>,
    Option<&'a str>,
    &'a str,
    &'a str,
);

#[allow(clippy::too_many_arguments)]
fn canonical<'a>(
    chain: &'a str,
    seq: i64,
    at: i64,
    actor: (&'a str, Option<&'a str>, Option<&'a str>),
    action: &'a str,
    target: Option<&'a str>,
    outcome: &'a str,
    from: (Option<&'a str>, Option<&'a str>),
    details: &'a str,
    prev: &'a str,
) -> Canonical<'a> {
    (
        1, chain, seq, at, actor.0, actor.1, actor.2, action, target, outcome, from.0, from.1,
        details, prev,
    )
}

/// The lower-case hex SHA-256 of the canonical form's bytes. They are written straight into the
/// hash, never gathered into a string first: every event of the trail passes here.
fn hash(form: &Canonical<'_>) -> String {
    struct Hashing(Sha256);
    impl std::io::Write for Hashing {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.update(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut out = Hashing(Sha256::new());
    serde_json::to_writer(&mut out, form).expect("strings and numbers serialise");
    hex(&out.0.finalize())
}

/// The hash of a new event at `seq` after `prev`.
pub fn event_hash(prev: &str, seq: i64, e: &NewAuditEvent) -> String {
    hash(&canonical(
        &e.chain,
        seq,
        e.at,
        (
            &e.actor_kind,
            e.actor_id.as_deref(),
            e.actor_name.as_deref(),
        ),
        &e.action,
        e.target.as_deref(),
        &e.outcome,
        (e.request_id.as_deref(), e.client_ip.as_deref()),
        &e.details,
        prev,
    ))
}

/// The hash a stored event must have.
pub fn record_hash(r: &AuditRecord) -> String {
    hash(&canonical(
        &r.chain,
        r.seq,
        r.at,
        (
            &r.actor_kind,
            r.actor_id.as_deref(),
            r.actor_name.as_deref(),
        ),
        &r.action,
        r.target.as_deref(),
        &r.outcome,
        (r.request_id.as_deref(), r.client_ip.as_deref()),
        &r.details,
        &r.prev_hash,
    ))
}

/// What a checkpoint signature covers.
pub fn checkpoint_message(chain: &str, seq: i64, head_hash: &str, at: i64) -> String {
    format!("clari-mcp audit checkpoint v1\n{chain}\n{seq}\n{head_hash}\n{at}")
}

/// Checks a checkpoint's signature with the published keys (base64url, no padding).
pub fn checkpoint_signature_ok(cp: &AuditCheckpoint, keys: &HashMap<String, VerifyingKey>) -> bool {
    let Some(key) = keys.get(&cp.key_id) else {
        return false;
    };
    let Ok(bytes) = URL_SAFE_NO_PAD.decode(&cp.signature) else {
        return false;
    };
    let Ok(sig) = Signature::from_slice(&bytes) else {
        return false;
    };
    key.verify(
        checkpoint_message(&cp.chain, cp.seq, &cp.head_hash, cp.at).as_bytes(),
        &sig,
    )
    .is_ok()
}

/// Decodes a published public key.
pub fn verifying_key(public_key: &str) -> Option<VerifyingKey> {
    let bytes: [u8; 32] = URL_SAFE_NO_PAD.decode(public_key).ok()?.try_into().ok()?;
    VerifyingKey::from_bytes(&bytes).ok()
}

/// A chain that verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainReport {
    pub chain: String,
    pub events: usize,
    pub first_seq: Option<i64>,
    pub last_seq: Option<i64>,
    pub checkpoints: usize,
}

/// The first place a chain does not hold.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("chain {chain}: broken at seq {seq}: {reason}")]
pub struct Break {
    pub chain: String,
    pub seq: i64,
    pub reason: String,
}

/// Verifies one chain: every event's hash, every link, every checkpoint's signature and that it
/// matches the event it names; a chain that does not start at seq 1 must start right after a
/// signed checkpoint (a retention cut). `head` (the stored head, or the exported one) catches
/// events deleted from the end.
pub fn verify_chain(
    chain: &str,
    events: &[AuditRecord],
    checkpoints: &[AuditCheckpoint],
    keys: &HashMap<String, VerifyingKey>,
    head: Option<(i64, &str)>,
) -> Result<ChainReport, Break> {
    let broken = |seq: i64, reason: String| Break {
        chain: chain.to_owned(),
        seq,
        reason,
    };
    for cp in checkpoints {
        if !checkpoint_signature_ok(cp, keys) {
            return Err(broken(
                cp.seq,
                format!(
                    "the checkpoint's signature does not verify with key {} (forged or altered)",
                    cp.key_id
                ),
            ));
        }
    }
    let by_seq: HashMap<i64, &AuditCheckpoint> = checkpoints.iter().map(|c| (c.seq, c)).collect();
    let mut prev: Option<&AuditRecord> = None;
    for e in events {
        if e.chain != chain {
            return Err(broken(
                e.seq,
                format!("the row belongs to chain {}", e.chain),
            ));
        }
        match prev {
            None if e.seq == 1 => {
                if e.prev_hash != GENESIS {
                    return Err(broken(
                        e.seq,
                        "the first row does not start the chain".into(),
                    ));
                }
            }
            None => match by_seq.get(&(e.seq - 1)) {
                Some(cp) if cp.head_hash == e.prev_hash => {}
                Some(_) => {
                    return Err(broken(
                        e.seq,
                        format!(
                            "the row does not follow the signed checkpoint at {}",
                            e.seq - 1
                        ),
                    ));
                }
                None => {
                    return Err(broken(
                        e.seq,
                        format!(
                            "rows before {} are missing and no signed checkpoint vouches for the cut",
                            e.seq
                        ),
                    ));
                }
            },
            Some(p) if e.seq != p.seq + 1 => {
                return Err(broken(
                    p.seq + 1,
                    format!("row {} is missing (deleted)", p.seq + 1),
                ));
            }
            Some(p) if e.prev_hash != p.hash => {
                return Err(broken(
                    e.seq,
                    "the row does not link to the row before".into(),
                ));
            }
            Some(_) => {}
        }
        if record_hash(e) != e.hash {
            return Err(broken(
                e.seq,
                "the row was altered (its hash does not match)".into(),
            ));
        }
        if let Some(cp) = by_seq.get(&e.seq)
            && cp.head_hash != e.hash
        {
            return Err(broken(
                e.seq,
                "the row does not match the signed checkpoint at its seq".into(),
            ));
        }
        prev = Some(e);
    }
    let last = prev.map(|p| (p.seq, p.hash.as_str()));
    if events.is_empty() {
        // Everything was pruned: the head must be vouched for by a signed checkpoint.
        return match head {
            Some((seq, hash))
                if seq > 0 && by_seq.get(&seq).is_none_or(|cp| cp.head_hash != hash) =>
            {
                Err(broken(
                    seq,
                    format!(
                        "rows up to {seq} are missing and no signed checkpoint vouches for them"
                    ),
                ))
            }
            _ => Ok(ChainReport {
                chain: chain.to_owned(),
                events: 0,
                first_seq: None,
                last_seq: None,
                checkpoints: checkpoints.len(),
            }),
        };
    }
    if let Some(max_cp) = checkpoints.iter().map(|c| c.seq).max()
        && last.is_none_or(|(seq, _)| max_cp > seq)
        && events.first().is_none_or(|f| max_cp >= f.seq)
    {
        return Err(broken(
            last.map_or(max_cp, |(s, _)| s + 1),
            format!("rows up to the signed checkpoint at {max_cp} are missing (deleted)"),
        ));
    }
    if let (Some((head_seq, head_hash)), Some((seq, hash))) = (head, last)
        && (head_seq != seq || head_hash != hash)
    {
        return Err(broken(
            seq + 1,
            format!("the chain's head is at {head_seq}: rows after {seq} are missing (deleted)"),
        ));
    }
    Ok(ChainReport {
        chain: chain.to_owned(),
        events: events.len(),
        first_seq: events.first().map(|e| e.seq),
        last_seq: last.map(|(s, _)| s),
        checkpoints: checkpoints.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::{Signer, SigningKey};

    fn event(chain: &str, action: &str) -> NewAuditEvent {
        NewAuditEvent {
            chain: chain.into(),
            at: 1_800_000_000,
            actor_kind: "user".into(),
            actor_id: Some("u1".into()),
            actor_name: Some("ava@acme.test".into()),
            action: action.into(),
            target: None,
            outcome: "success".into(),
            request_id: Some("r1".into()),
            client_ip: Some("203.0.113.7".into()),
            details: "{}".into(),
        }
    }

    fn chain_of(n: i64) -> Vec<AuditRecord> {
        let mut prev = GENESIS.to_owned();
        (1..=n)
            .map(|seq| {
                let e = event("o", &format!("a{seq}"));
                let hash = event_hash(&prev, seq, &e);
                let r = AuditRecord {
                    chain: e.chain,
                    seq,
                    at: e.at,
                    actor_kind: e.actor_kind,
                    actor_id: e.actor_id,
                    actor_name: e.actor_name,
                    action: e.action,
                    target: e.target,
                    outcome: e.outcome,
                    request_id: e.request_id,
                    client_ip: e.client_ip,
                    details: e.details,
                    prev_hash: prev.clone(),
                    hash: hash.clone(),
                };
                prev = hash;
                r
            })
            .collect()
    }

    fn signer() -> (SigningKey, HashMap<String, VerifyingKey>) {
        let k = SigningKey::from_bytes(&[7; 32]);
        (
            k.clone(),
            HashMap::from([("k1".to_owned(), k.verifying_key())]),
        )
    }

    fn checkpoint(k: &SigningKey, r: &AuditRecord) -> AuditCheckpoint {
        let sig = k.sign(checkpoint_message(&r.chain, r.seq, &r.hash, 5).as_bytes());
        AuditCheckpoint {
            chain: r.chain.clone(),
            seq: r.seq,
            head_hash: r.hash.clone(),
            at: 5,
            key_id: "k1".into(),
            signature: URL_SAFE_NO_PAD.encode(sig.to_bytes()),
        }
    }

    #[test]
    fn an_untouched_chain_verifies() {
        let (k, keys) = signer();
        let rows = chain_of(5);
        let cps = vec![checkpoint(&k, &rows[2])];
        let head = (5, rows[4].hash.as_str());
        let report = verify_chain("o", &rows, &cps, &keys, Some(head)).unwrap();
        assert_eq!((report.events, report.last_seq), (5, Some(5)));
    }

    #[test]
    fn an_altered_row_is_named() {
        let (_, keys) = signer();
        let mut rows = chain_of(5);
        rows[2].outcome = "failure".into();
        let e = verify_chain("o", &rows, &[], &keys, None).unwrap_err();
        assert_eq!(e.seq, 3);
        assert!(e.reason.contains("altered"), "{e}");
    }

    #[test]
    fn a_deleted_row_is_named_in_the_middle_and_at_the_end() {
        let (k, keys) = signer();
        let mut rows = chain_of(5);
        rows.remove(1);
        let e = verify_chain("o", &rows, &[], &keys, None).unwrap_err();
        assert_eq!(e.seq, 2);
        let rows = chain_of(5);
        let head = (5, rows[4].hash.as_str());
        let e = verify_chain("o", &rows[..4], &[], &keys, Some(head)).unwrap_err();
        assert_eq!(e.seq, 5);
        let cps = vec![checkpoint(&k, &rows[4])];
        let e = verify_chain("o", &rows[..4], &cps, &keys, None).unwrap_err();
        assert_eq!(e.seq, 5, "{e}");
    }

    #[test]
    fn a_forged_checkpoint_is_named() {
        let (_, keys) = signer();
        let rows = chain_of(3);
        let forger = SigningKey::from_bytes(&[9; 32]);
        let cps = vec![checkpoint(&forger, &rows[1])];
        let e = verify_chain("o", &rows, &cps, &keys, None).unwrap_err();
        assert_eq!(e.seq, 2);
        assert!(e.reason.contains("signature"), "{e}");
    }

    #[test]
    fn a_retention_cut_verifies_only_after_a_signed_checkpoint() {
        let (k, keys) = signer();
        let rows = chain_of(6);
        let cps = vec![checkpoint(&k, &rows[2])];
        assert!(verify_chain("o", &rows[3..], &cps, &keys, None).is_ok());
        let e = verify_chain("o", &rows[3..], &[], &keys, None).unwrap_err();
        assert_eq!(e.seq, 4);
    }

    #[test]
    fn a_fully_pruned_chain_verifies_only_with_a_checkpoint_at_its_head() {
        let (k, keys) = signer();
        let rows = chain_of(3);
        let head = (3, rows[2].hash.as_str());
        let cps = vec![checkpoint(&k, &rows[2])];
        assert!(verify_chain("o", &[], &cps, &keys, Some(head)).is_ok());
        assert!(verify_chain("o", &[], &[], &keys, Some(head)).is_err());
    }

    #[test]
    fn the_canonical_form_is_stable() {
        // Changing the canonical form breaks every stored chain: this pins it.
        let e = event("o", "tool.call");
        let form = canonical(
            &e.chain,
            1,
            e.at,
            ("user", Some("u1"), None),
            &e.action,
            None,
            "success",
            (None, None),
            "{}",
            GENESIS,
        );
        let text = serde_json::to_string(&form).unwrap();
        assert_eq!(
            text,
            format!(
                "[1,\"o\",1,1800000000,\"user\",\"u1\",null,\"tool.call\",null,\"success\",null,null,\"{{}}\",\"{GENESIS}\"]"
            )
        );
        // The hash is of exactly those bytes, however they reach it.
        assert_eq!(hash(&form), crate::crypto::sha256_hex(&text));
    }
}
