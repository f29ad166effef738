//! What the bearer layer reads of a JSON-RPC body before rmcp parses it: the envelope only.
//!
//! The gate must tell a usable JSON-RPC 2.0 message from one that is not (400 with a JSON-RPC
//! error) and find the tool a `tools/call` names (to check its scope). Building a full
//! `serde_json::Value` for that costs some 30 bytes per JSON element, and the tree lived on while
//! rmcp parsed the same body again: a 64 KiB body of `0,0,0,…` held a megabyte twice over. Here
//! the body is read once, keeping the top-level members and the scalars one level below them
//! (`params.name`, `error.code`, `error.message`); everything deeper is checked for syntax and
//! skipped without being stored, so the gate's memory is bounded by the envelope, not the body.

use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

/// One JSON value as far as the gate looks: scalars kept, containers reduced to their kind or,
/// above the depth the gate reads, to their members.
#[derive(Debug, Clone, PartialEq)]
pub enum Shallow {
    Null,
    Bool,
    /// An integer that fits a signed 64-bit integer.
    Int(i64),
    /// Any other number (fractional, or outside `i64`).
    Number,
    Str(String),
    Array,
    /// An object's members, in order (a repeated key keeps its last value, as JSON parsers do).
    Object(Vec<(String, Shallow)>),
    /// An object below the depth the gate reads: its members were skipped.
    SkippedObject,
}

impl Shallow {
    /// Reads a body: `None` when it is not JSON.
    pub fn parse(body: &[u8]) -> Option<Shallow> {
        let mut de = serde_json::Deserializer::from_slice(body);
        let v = Depth(2).deserialize(&mut de).ok()?;
        de.end().ok()?;
        Some(v)
    }

    /// An object member (the last one with that key).
    pub fn get(&self, key: &str) -> Option<&Shallow> {
        match self {
            Shallow::Object(members) => {
                members.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v)
            }
            _ => None,
        }
    }

    fn as_str(&self) -> Option<&str> {
        match self {
            Shallow::Str(s) => Some(s),
            _ => None,
        }
    }

    fn is_object(&self) -> bool {
        matches!(self, Shallow::Object(_) | Shallow::SkippedObject)
    }

    /// A request id as JSON: a string or a 64-bit integer, otherwise `null`.
    fn id_value(&self) -> Value {
        match self {
            Shallow::Str(s) => Value::String(s.clone()),
            Shallow::Int(i) => Value::from(*i),
            _ => Value::Null,
        }
    }
}

/// Deserializes a [`Shallow`] keeping object members `levels` deep.
#[derive(Clone, Copy)]
struct Depth(u8);

impl<'de> DeserializeSeed<'de> for Depth {
    type Value = Shallow;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Shallow, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Depth {
    type Value = Shallow;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_unit<E>(self) -> Result<Shallow, E> {
        Ok(Shallow::Null)
    }

    fn visit_bool<E>(self, _: bool) -> Result<Shallow, E> {
        Ok(Shallow::Bool)
    }

    fn visit_i64<E>(self, v: i64) -> Result<Shallow, E> {
        Ok(Shallow::Int(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Shallow, E> {
        Ok(i64::try_from(v).map_or(Shallow::Number, Shallow::Int))
    }

    fn visit_f64<E>(self, _: f64) -> Result<Shallow, E> {
        Ok(Shallow::Number)
    }

    fn visit_str<E>(self, v: &str) -> Result<Shallow, E> {
        Ok(Shallow::Str(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Shallow, E> {
        Ok(Shallow::Str(v))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Shallow, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Shallow::Array)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Shallow, A::Error> {
        if self.0 == 0 {
            while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
            return Ok(Shallow::SkippedObject);
        }
        let mut members = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            let value = map.next_value_seed(Depth(self.0 - 1))?;
            members.push((key, value));
        }
        Ok(Shallow::Object(members))
    }
}

/// The tool a message calls, with its request id, when it is a `tools/call`.
pub fn tool_call(message: &Shallow) -> Option<(Value, String)> {
    if message.get("method").and_then(Shallow::as_str) != Some("tools/call") {
        return None;
    }
    let name = message
        .get("params")
        .and_then(|p| p.get("name"))
        .and_then(Shallow::as_str)
        .unwrap_or_default()
        .to_owned();
    let id = message.get("id").map_or(Value::Null, Shallow::id_value);
    Some((id, name))
}

/// Why a message is not a JSON-RPC 2.0 request, notification or response as MCP uses them
/// (`params` an object, `id` a string or integer), if it is not. JSON-RPC batches left MCP in
/// 2025-06-18 (the transport has no form for them), so an array is refused too.
///
/// JSON-RPC 2.0 §4 (request object), §5 (response object) and §5.1 (error object: an integer
/// code and a string message).
pub fn envelope_error(message: &Shallow) -> Option<&'static str> {
    match message {
        Shallow::Array => {
            return Some("batches are not supported: send one message per request");
        }
        Shallow::Object(_) => {}
        _ => return Some("a message must be a JSON object"),
    }
    let m = message;
    if m.get("jsonrpc").and_then(Shallow::as_str) != Some("2.0") {
        return Some("jsonrpc must be \"2.0\"");
    }
    // MCP's RequestId is a string or a number the transport holds as a signed 64-bit integer.
    let id_ok = |id: &Shallow| matches!(id, Shallow::Str(_) | Shallow::Int(_));
    match m.get("method") {
        Some(Shallow::Str(_)) => {
            if m.get("params").is_some_and(|p| !p.is_object()) {
                return Some("params must be an object");
            }
            if m.get("id").is_some_and(|id| !id_ok(id)) {
                return Some("id must be a string or a 64-bit signed integer");
            }
            None
        }
        Some(_) => Some("method must be a string"),
        None if m.get("id").is_some_and(id_ok) => {
            // The protocol's error codes are 32-bit.
            let error_ok = |e: &Shallow| {
                matches!(e.get("code"), Some(Shallow::Int(c)) if i32::try_from(*c).is_ok())
                    && matches!(e.get("message"), Some(Shallow::Str(_)))
            };
            match (m.get("result"), m.get("error")) {
                (Some(r), None) if r.is_object() => None,
                (None, Some(e)) if error_ok(e) => None,
                _ => Some(
                    "a response needs an object result or an error with a 32-bit integer code and a message",
                ),
            }
        }
        None => Some("a request needs a method (a response, an id and a result or error)"),
    }
}

/// The members a request's `params` must have, for the methods MCP defines with required
/// params, and whether each is a string or an object.
const REQUIRED_PARAMS: &[(&str, &[(&str, Kind)])] = &[
    (
        "initialize",
        &[
            ("protocolVersion", Kind::String),
            ("capabilities", Kind::Object),
            ("clientInfo", Kind::Object),
        ],
    ),
    ("tools/call", &[("name", Kind::String)]),
    ("prompts/get", &[("name", Kind::String)]),
    ("resources/read", &[("uri", Kind::String)]),
    ("resources/subscribe", &[("uri", Kind::String)]),
    ("resources/unsubscribe", &[("uri", Kind::String)]),
    ("logging/setLevel", &[("level", Kind::String)]),
    ("tasks/get", &[("taskId", Kind::String)]),
    ("tasks/result", &[("taskId", Kind::String)]),
    ("tasks/cancel", &[("taskId", Kind::String)]),
];

#[derive(Clone, Copy)]
enum Kind {
    String,
    Object,
}

impl Kind {
    fn holds(self, v: &Shallow) -> bool {
        match self {
            Kind::String => matches!(v, Shallow::Str(_)),
            Kind::Object => v.is_object(),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Kind::String => "a string",
            Kind::Object => "an object",
        }
    }
}

/// Why a request's params do not fit its method, for the methods MCP defines (a missing or
/// ill-typed member: `tools/call` without a string `name`, `arguments` that is not an object, a
/// list's `cursor` that is not a string). The transport would otherwise answer such a request
/// as an unknown method (-32601), which sends a client looking for the wrong mistake; JSON-RPC
/// 2.0 §5.1 has -32602 "Invalid params" for it. MCP 2025-11-25, Schema: `CallToolRequest`,
/// `InitializeRequest`, `ReadResourceRequest`, `PaginatedRequest`.
pub fn params_error(message: &Shallow) -> Option<String> {
    let method = message.get("method").and_then(Shallow::as_str)?;
    let params = message.get("params");
    let member = |name: &str| params.and_then(|p| p.get(name));
    if let Some((_, required)) = REQUIRED_PARAMS.iter().find(|(m, _)| *m == method) {
        for (name, kind) in *required {
            if !member(name).is_some_and(|v| kind.holds(v)) {
                return Some(format!("{method} needs params.{name}, {}", kind.name()));
            }
        }
    }
    if matches!(method, "tools/call" | "prompts/get")
        && member("arguments").is_some_and(|a| !a.is_object() && *a != Shallow::Null)
    {
        return Some(format!("{method}: params.arguments must be an object"));
    }
    if method.ends_with("/list")
        && member("cursor").is_some_and(|c| !matches!(c, Shallow::Str(_) | Shallow::Null))
    {
        return Some(format!("{method}: params.cursor must be a string"));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn shallow(v: &Value) -> Shallow {
        Shallow::parse(&serde_json::to_vec(v).unwrap()).unwrap()
    }

    #[test]
    fn only_json_rpc_messages_pass() {
        let ok = [
            json!({"jsonrpc":"2.0","id":1,"method":"tools/list"}),
            json!({"jsonrpc":"2.0","id":"a","method":"tools/call","params":{}}),
            json!({"jsonrpc":"2.0","method":"notifications/initialized"}),
            json!({"jsonrpc":"2.0","id":3,"result":{}}),
            json!({"jsonrpc":"2.0","id":3,"error":{"code":-32601,"message":"x","data":{"a":[1]}}}),
        ];
        for m in ok {
            assert_eq!(envelope_error(&shallow(&m)), None, "{m}");
        }
        let bad = [
            json!([1]),
            json!({"id":1,"method":"x"}),
            json!({"jsonrpc":"2.0","id":1,"method":"x","params":null}),
            json!({"jsonrpc":"2.0","id":1,"method":"x","params":[1]}),
            json!({"jsonrpc":"2.0","id":null,"method":"x"}),
            json!({"jsonrpc":"2.0","id":1.5,"method":"x"}),
            json!({"jsonrpc":"2.0","id":u64::MAX,"method":"x"}),
            json!({"jsonrpc":"2.0","method":7}),
            json!({"jsonrpc":"2.0","id":1}),
            json!({"jsonrpc":"2.0","id":"","error":null}),
            json!({"jsonrpc":"2.0","id":"","error":{"code":4_294_967_296_i64,"message":"x"}}),
            json!({"jsonrpc":"2.0","id":1,"result":{},"error":{"code":1,"message":"x"}}),
        ];
        for m in bad {
            assert!(envelope_error(&shallow(&m)).is_some(), "{m}");
        }
    }

    #[test]
    fn the_tool_called_and_its_id_are_found() {
        let m = shallow(&json!({"jsonrpc":"2.0","id":7,"method":"tools/call",
            "params":{"name":"get_forecast","arguments":{"name":"not this one"}}}));
        assert_eq!(tool_call(&m), Some((json!(7), "get_forecast".to_owned())));
        let list = shallow(&json!({"jsonrpc":"2.0","id":1,"method":"tools/list"}));
        assert_eq!(tool_call(&list), None);
    }

    #[test]
    fn ill_typed_params_of_known_methods_are_named() {
        let says = |v: Value| params_error(&shallow(&v));
        assert_eq!(
            says(json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":5}})),
            Some("tools/call needs params.name, a string".into())
        );
        assert!(
            says(json!({"jsonrpc":"2.0","id":1,"method":"tools/call",
                "params":{"name":"t","arguments":[1]}}))
            .unwrap()
            .contains("params.arguments")
        );
        assert!(
            says(json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}))
                .unwrap()
                .contains("params.protocolVersion")
        );
        assert!(
            says(json!({"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"cursor":1}}))
                .unwrap()
                .contains("params.cursor")
        );
        for fine in [
            json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"t"}}),
            json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"t","arguments":{}}}),
            json!({"jsonrpc":"2.0","id":1,"method":"tools/list"}),
            json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25",
                "capabilities":{},"clientInfo":{"name":"c","version":"1"}}}),
            json!({"jsonrpc":"2.0","method":"notifications/initialized"}),
            json!({"jsonrpc":"2.0","id":1,"method":"vendor/thing","params":{"name":5}}),
        ] {
            assert_eq!(says(fine.clone()), None, "{fine}");
        }
    }

    #[test]
    fn deep_members_are_skipped_and_bad_json_is_refused() {
        let m = shallow(&json!({"params":{"arguments":{"x":[0,0,0]},"name":"t"}}));
        assert_eq!(
            m.get("params").and_then(|p| p.get("arguments")),
            Some(&Shallow::SkippedObject)
        );
        assert_eq!(Shallow::parse(b"{\"a\":[1,}"), None);
        assert_eq!(Shallow::parse(b"{} trailing"), None);
        // A repeated key keeps its last value, as serde_json's Value does.
        let twice = Shallow::parse(br#"{"method":"tools/list","method":"tools/call"}"#).unwrap();
        assert_eq!(
            twice.get("method"),
            Some(&Shallow::Str("tools/call".into()))
        );
    }
}
