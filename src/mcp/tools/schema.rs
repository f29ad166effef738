//! Tool schemas generated from the same Rust types that produce the values, then made portable:
//! every `$ref` inlined (draft-07 validators ignore keywords beside a `$ref`, and some hosts do
//! not resolve references at all), only standard `format`s kept (schemars writes `uint32`,
//! `double`… which validators warn about), every property schema an object (MCP requires it),
//! and `"type": "object"` at the root.

use rmcp::model::JsonObject;
use rmcp::schemars::{self, JsonSchema};
use serde_json::{Map, Value, json};

/// The JSON Schema formats defined by the 2020-12 specification.
const STANDARD_FORMATS: &[&str] = &[
    "date-time",
    "date",
    "time",
    "duration",
    "email",
    "idn-email",
    "hostname",
    "idn-hostname",
    "ipv4",
    "ipv6",
    "uri",
    "uri-reference",
    "iri",
    "iri-reference",
    "uuid",
    "uri-template",
    "json-pointer",
    "relative-json-pointer",
    "regex",
];

/// Types nest a few levels; a reference chain longer than this would be a recursive type.
const MAX_DEPTH: usize = 32;

pub fn schema_for<T: JsonSchema>() -> JsonObject {
    let mut root = serde_json::to_value(schemars::schema_for!(T)).expect("schema serializes");
    let defs = root
        .as_object_mut()
        .and_then(|m| m.remove("$defs"))
        .and_then(|d| match d {
            Value::Object(m) => Some(m),
            _ => None,
        })
        .unwrap_or_default();
    inline(&mut root, &defs, 0);
    clean(&mut root);
    let mut obj = match root {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    obj.entry("type").or_insert_with(|| json!("object"));
    obj
}

/// Replaces every `{"$ref": "#/$defs/X", …siblings}` with X merged with the siblings.
fn inline(v: &mut Value, defs: &Map<String, Value>, depth: usize) {
    assert!(depth < MAX_DEPTH, "recursive tool schema");
    match v {
        Value::Object(map) => {
            if let Some(Value::String(r)) = map.get("$ref").cloned() {
                let name = r.trim_start_matches("#/$defs/");
                let mut target = defs
                    .get(name)
                    .cloned()
                    .unwrap_or_else(|| panic!("unresolved schema reference {r}"));
                inline(&mut target, defs, depth + 1);
                map.remove("$ref");
                if let Value::Object(t) = target {
                    merge(map, t);
                }
            }
            for child in map.values_mut() {
                inline(child, defs, depth + 1);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|i| inline(i, defs, depth + 1)),
        _ => {}
    }
}

/// Merges a referenced schema into the object that referenced it: properties and required lists
/// are united, any other keyword of the referencing object wins.
fn merge(into: &mut Map<String, Value>, from: Map<String, Value>) {
    for (k, v) in from {
        match (k.as_str(), into.get_mut(&k), v) {
            ("properties", Some(Value::Object(mine)), Value::Object(theirs)) => {
                for (p, s) in theirs {
                    mine.entry(p).or_insert(s);
                }
            }
            ("required", Some(Value::Array(mine)), Value::Array(theirs)) => {
                for r in theirs {
                    if !mine.contains(&r) {
                        mine.push(r);
                    }
                }
            }
            (_, Some(_), _) => {}
            (_, None, v) => {
                into.insert(k, v);
            }
        }
    }
}

fn clean(v: &mut Value) {
    match v {
        Value::Object(map) => {
            if map
                .get("format")
                .and_then(Value::as_str)
                .is_some_and(|f| !STANDARD_FORMATS.contains(&f))
            {
                map.remove("format");
            }
            for (key, child) in map.iter_mut() {
                if key == "properties" {
                    if let Value::Object(props) = child {
                        for p in props.values_mut() {
                            if *p == Value::Bool(true) {
                                *p = json!({});
                            }
                        }
                    }
                } else if key == "items" && *child == Value::Bool(true) {
                    *child = json!({});
                }
                clean(child);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(clean),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Serialize;

    #[derive(Serialize, JsonSchema)]
    struct Inner {
        count: u32,
        ratio: f64,
        any: Value,
    }

    #[derive(Serialize, JsonSchema)]
    struct Outer {
        inner: Option<Inner>,
        rows: Vec<Inner>,
    }

    #[derive(Serialize, JsonSchema)]
    #[serde(tag = "status", rename_all = "snake_case")]
    #[allow(dead_code)]
    enum Tagged {
        Ready(Inner),
        Running { job_id: String },
    }

    fn text(o: &JsonObject) -> String {
        serde_json::to_string(o).unwrap()
    }

    #[test]
    fn references_are_inlined_and_only_standard_formats_remain() {
        let s = text(&schema_for::<Outer>());
        assert!(!s.contains("$ref") && !s.contains("$defs"), "{s}");
        for bad in ["uint32", "double", "\"uint\"", "int64"] {
            assert!(!s.contains(bad), "{bad} in {s}");
        }
        assert!(!s.contains(":true"), "{s}");
    }

    #[test]
    fn a_tagged_enum_keeps_each_variants_fields_and_the_root_is_an_object() {
        let s = schema_for::<Tagged>();
        if std::env::var("SHOW_SCHEMA").is_ok() {
            println!("{}", serde_json::to_string_pretty(&s).unwrap());
        }
        assert_eq!(s["type"], "object");
        let text = text(&s);
        assert!(
            text.contains("\"ready\"") && text.contains("\"running\""),
            "{text}"
        );
        assert!(
            text.contains("\"count\"") && text.contains("\"job_id\""),
            "{text}"
        );
        assert!(!text.contains("$ref"), "{text}");
    }
}
