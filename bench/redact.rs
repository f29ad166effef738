//! What redaction costs per KB of answer: `cargo run --release --example redact`.
//! A realistic answer (people with e-mail addresses and phone numbers among ids, amounts and
//! dates) is redacted with every kind on, and with the policy off, many times over.

use std::time::Instant;

use clari_mcp::redact::{KINDS, RedactionPolicy, Redactor};

/// The server's own allocator, so the comparison is of the code, not of the allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn answer() -> String {
    let mut s = String::from("{\"status\":\"ready\",\"users\":[");
    for i in 0..400 {
        s.push_str(&format!(
            "{{\"user_id\":\"{}\",\"name\":\"Person {i}\",\"email\":\"person.{i}@northwind.example\",\
             \"phone\":\"+1 415-555-{:04}\",\"commit\":{},\"updated\":\"2026-11-{:02}T10:00:00Z\",\
             \"crm_id\":\"0055e00000ioKx{:04}\"}},",
            1000 + i,
            i,
            250_000 + i * 1_300,
            1 + i % 28,
            i
        ));
    }
    s.push_str("{}]}");
    s
}

fn main() {
    let text = answer();
    let kb = text.len() as f64 / 1024.0;
    let pseudonym = |v: &str| clari_mcp::crypto::sha256_hex(v)[..4].to_owned();
    for (label, kinds) in [
        (
            "every kind on",
            KINDS.iter().map(|k| (*k).to_owned()).collect(),
        ),
        ("off", Vec::new()),
    ] {
        let r = Redactor::new(&RedactionPolicy {
            kinds,
            custom: Vec::new(),
        })
        .unwrap();
        let rounds = 200;
        let started = Instant::now();
        let mut replaced = 0;
        for _ in 0..rounds {
            replaced = r.text(&text, &pseudonym).1;
        }
        let per_kb = started.elapsed().as_secs_f64() * 1e6 / (rounds as f64 * kb);
        println!(
            "{label:>14}: {per_kb:.1} µs per KB ({kb:.0} KB answer, {replaced} values replaced)"
        );
    }
}
