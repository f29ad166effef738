//! The module layering, checked: a module may use only modules in layers below its own (and
//! itself), so there is no way back up and no import cycle. A new `use crate::…` that points up or
//! sideways fails here, naming the file.

use std::collections::BTreeSet;
use std::path::Path;

/// Top to bottom. Modules within one layer do not use each other.
const LAYERS: &[&[&str]] = &[
    &["main"],
    &["cli"],
    // Everything on one machine, and one person's agent over stdio.
    &["demo", "stdio"],
    // Composes the routers; runs the server and housekeeping.
    &["app"],
    // Provisioning by the organisation's identity provider (SCIM), and the pages where every
    // signed-in person manages their own access (`/account`).
    &["scim", "account"],
    // Running an organisation from the browser and `/api/v1`.
    &["admin"],
    // The kill switch.
    &["governance"],
    // The three faces: the MCP resource server, the authorization server…
    &["mcp", "oauth", "sso"],
    // Who presents a credential: the one check both doors (/mcp and /api/v1) use.
    &["bearer"],
    // …and the browser pages, which the authorization server renders through.
    &["web"],
    // What drives a Clari export: the pipeline the tools call, the queue across replicas, and
    // pre-warming.
    &["exports"],
    // What every request holds.
    &["state"],
    // Services and the HTTP edge.
    &[
        "audit",
        "exports::cache",
        "exports::limits",
        "exports::view",
        "oauth::cimd",
        "signing",
        "dpop",
        "http",
        "apikeys",
        "telemetry",
    ],
    &["config"],
    &["clari", "jose"],
    &["principal", "net"],
    &["store"],
    &["crypto"],
    &["serve"],
    &[
        "clock",
        "scope",
        "ids",
        "metrics",
        "redact",
        "orgname",
        "mail",
        "files",
        "exports::kept",
    ],
];

/// Modules whose files sit on two floors: a file `m/f.rs` is placed as `m::f` when LAYERS names
/// that, and as `m` otherwise; so are the paths that name it (`crate::m::f`, and `super::f`
/// inside `m`).
const SPLIT: &[&str] = &["exports", "oauth"];

fn placed(module: &str, part: &str) -> String {
    let joined = format!("{module}::{part}");
    if SPLIT.contains(&module) && layer_of(&joined).is_some() {
        joined
    } else {
        module.to_owned()
    }
}

fn ident(text: &str) -> String {
    text.chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect()
}

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|l| l.contains(&module))
}

/// Every `crate::<module>` a source text names (and, in a file of a split module `own`, every
/// `super::<part>`).
fn used_modules(text: &str, own: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find("crate::") {
        rest = &rest[i + "crate::".len()..];
        let name = ident(rest);
        if !name.is_empty() {
            let part = rest[name.len()..]
                .strip_prefix("::")
                .map(ident)
                .unwrap_or_default();
            out.insert(placed(&name, &part));
        }
    }
    if let Some(split) = SPLIT.iter().find(|m| own.split("::").next() == Some(**m)) {
        let mut rest = text;
        while let Some(i) = rest.find("super::") {
            rest = &rest[i + "super::".len()..];
            let part = ident(rest);
            if !part.is_empty() {
                out.insert(placed(split, &part));
            }
        }
    }
    // `use crate::{a, b}` form.
    let mut rest = text;
    while let Some(i) = rest.find("crate::{") {
        rest = &rest[i + "crate::{".len()..];
        let group = rest.split('}').next().unwrap_or_default();
        for part in group.split(',') {
            let name: String = part
                .trim()
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                out.insert(name);
            }
        }
    }
    out
}

fn sources(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn no_module_uses_a_module_above_or_beside_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let mut violations = Vec::new();
    for file in &files {
        let rel = file.strip_prefix(&src).unwrap();
        let first = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy();
        let first = first.trim_end_matches(".rs");
        let part = rel
            .components()
            .nth(1)
            .map(|c| {
                c.as_os_str()
                    .to_string_lossy()
                    .trim_end_matches(".rs")
                    .to_owned()
            })
            .unwrap_or_default();
        let module = placed(first, &part);
        if module == "lib" {
            continue;
        }
        let Some(own) = layer_of(&module) else {
            violations.push(format!(
                "{}: module `{module}` is in no layer; add it to LAYERS",
                rel.display()
            ));
            continue;
        };
        let text = std::fs::read_to_string(file).unwrap();
        for used in used_modules(&text, &module) {
            if used == module {
                continue;
            }
            // Items of the crate root (such as `init_crypto`) are below every module.
            let Some(theirs) = layer_of(&used) else {
                continue;
            };
            if theirs <= own {
                violations.push(format!(
                    "{}: `{module}` (layer {own}) uses `{used}` (layer {theirs})",
                    rel.display()
                ));
            }
        }
    }
    assert!(
        violations.is_empty(),
        "layering broken:\n{}",
        violations.join("\n")
    );
}

#[test]
fn every_module_of_the_crate_is_in_a_layer() {
    let lib =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/lib.rs")).unwrap();
    for line in lib.lines() {
        if let Some(name) = line
            .strip_prefix("pub mod ")
            .and_then(|l| l.strip_suffix(';'))
        {
            assert!(layer_of(name).is_some(), "`{name}` is in no layer");
        }
    }
}
