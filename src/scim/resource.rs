//! The SCIM User resource as this server keeps it: the attributes it advertises (RFC 7643 §4.1)
//! checked and stored as given, PATCH operations (RFC 7644 §3.5.2), the `eq` filters identity
//! providers send (RFC 7644 §3.4.2.2), and attribute selection (RFC 7644 §3.4.2.5). Pure
//! functions: no I/O.

use serde_json::{Map, Value, json};

pub const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
pub const LIST_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
pub const ERROR_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:Error";
pub const PATCH_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

/// The longest string attribute we keep.
const MAX_STRING: usize = 256;
/// Most e-mail addresses on one user.
const MAX_EMAILS: usize = 10;

/// A SCIM error (RFC 7644 §3.12): the HTTP status, the `scimType` where one applies, and a
/// detail in words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScimError {
    pub status: u16,
    pub scim_type: Option<&'static str>,
    pub detail: String,
}

impl ScimError {
    pub fn new(status: u16, scim_type: Option<&'static str>, detail: impl Into<String>) -> Self {
        Self {
            status,
            scim_type,
            detail: detail.into(),
        }
    }

    pub fn invalid_value(detail: impl Into<String>) -> Self {
        Self::new(400, Some("invalidValue"), detail)
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(404, None, format!("{what} not found"))
    }

    /// The body of the error.
    pub fn body(&self) -> Value {
        let mut v = json!({
            "schemas": [ERROR_SCHEMA],
            "status": self.status.to_string(),
            "detail": self.detail,
        });
        if let Some(t) = self.scim_type {
            v["scimType"] = json!(t);
        }
        v
    }
}

/// The top-level attributes of a User this server keeps, in their canonical spelling.
const TOP: &[&str] = &[
    "userName",
    "externalId",
    "name",
    "displayName",
    "active",
    "emails",
];
const NAME_SUBS: &[&str] = &["formatted", "familyName", "givenName"];
const EMAIL_SUBS: &[&str] = &["value", "type", "primary"];

/// The canonical spelling of an attribute name among `known` (attribute names are
/// case-insensitive, RFC 7643 §2.1).
fn canonical(name: &str, known: &[&'static str]) -> Option<&'static str> {
    known.iter().copied().find(|k| k.eq_ignore_ascii_case(name))
}

fn string(value: &Value, what: &str) -> Result<Value, ScimError> {
    match value {
        Value::String(s) if s.chars().count() <= MAX_STRING && !s.chars().any(char::is_control) => {
            Ok(value.clone())
        }
        Value::String(_) => Err(ScimError::invalid_value(format!(
            "{what} must be at most {MAX_STRING} characters without control characters"
        ))),
        _ => Err(ScimError::invalid_value(format!("{what} must be a string"))),
    }
}

/// Booleans, also as the strings `"True"`/`"False"` that some providers send.
fn boolean(value: &Value, what: &str) -> Result<Value, ScimError> {
    match value {
        Value::Bool(_) => Ok(value.clone()),
        Value::String(s) if s.eq_ignore_ascii_case("true") => Ok(Value::Bool(true)),
        Value::String(s) if s.eq_ignore_ascii_case("false") => Ok(Value::Bool(false)),
        _ => Err(ScimError::invalid_value(format!(
            "{what} must be true or false"
        ))),
    }
}

/// Checks one attribute's value and puts it in its canonical form.
fn attribute(name: &'static str, value: &Value) -> Result<Option<Value>, ScimError> {
    if value.is_null() {
        return Ok(None);
    }
    let v = match name {
        "userName" | "externalId" | "displayName" => string(value, name)?,
        "active" => boolean(value, name)?,
        "name" => {
            let Value::Object(o) = value else {
                return Err(ScimError::invalid_value("name must be an object"));
            };
            let mut out = Map::new();
            for (k, v) in o {
                if let Some(sub) = canonical(k, NAME_SUBS)
                    && !v.is_null()
                {
                    out.insert(sub.to_owned(), string(v, &format!("name.{sub}"))?);
                }
            }
            if out.is_empty() {
                return Ok(None);
            }
            Value::Object(out)
        }
        "emails" => {
            let Value::Array(items) = value else {
                return Err(ScimError::invalid_value("emails must be a list"));
            };
            if items.len() > MAX_EMAILS {
                return Err(ScimError::invalid_value(format!(
                    "at most {MAX_EMAILS} emails"
                )));
            }
            let mut out = Vec::new();
            for item in items {
                let Value::Object(o) = item else {
                    return Err(ScimError::invalid_value("each of emails must be an object"));
                };
                let mut e = Map::new();
                for (k, v) in o {
                    match canonical(k, EMAIL_SUBS) {
                        Some("primary") if !v.is_null() => {
                            e.insert("primary".into(), boolean(v, "emails.primary")?);
                        }
                        Some(sub) if !v.is_null() => {
                            e.insert(sub.into(), string(v, &format!("emails.{sub}"))?);
                        }
                        _ => {}
                    }
                }
                out.push(Value::Object(e));
            }
            if out.is_empty() {
                return Ok(None);
            }
            Value::Array(out)
        }
        _ => return Ok(None),
    };
    Ok(Some(v))
}

/// A User from a POST or PUT body: the attributes we keep, checked; `userName` required
/// (RFC 7643 §4.1.1). `id`, `meta`, `schemas` and unknown attributes are ignored (§3.1:
/// read-only values sent by a client are ignored).
pub fn user_from_body(body: &Value) -> Result<Map<String, Value>, ScimError> {
    let Value::Object(o) = body else {
        return Err(ScimError::new(
            400,
            Some("invalidSyntax"),
            "the body must be a JSON object",
        ));
    };
    let mut out = Map::new();
    for (k, v) in o {
        if let Some(name) = canonical(k, TOP)
            && let Some(v) = attribute(name, v)?
        {
            out.insert(name.to_owned(), v);
        }
    }
    check_user_name(&out)?;
    Ok(out)
}

fn check_user_name(user: &Map<String, Value>) -> Result<(), ScimError> {
    match user.get("userName").and_then(Value::as_str) {
        Some(n) if !n.trim().is_empty() => Ok(()),
        _ => Err(ScimError::invalid_value("userName is required")),
    }
}

/// What a PATCH path names: a top-level attribute, or one of its sub-attributes.
#[derive(Debug, PartialEq, Eq)]
enum Path {
    Top(&'static str),
    Sub(&'static str, &'static str),
}

fn parse_path(path: &str) -> Result<Path, ScimError> {
    let bad = || {
        ScimError::new(
            400,
            Some("invalidPath"),
            format!("unsupported path '{path}'"),
        )
    };
    let path = path
        .strip_prefix(USER_SCHEMA)
        .map(|p| p.trim_start_matches(':'))
        .unwrap_or(path);
    if path.contains('[') {
        return Err(bad());
    }
    match path.split_once('.') {
        None => canonical(path, TOP).map(Path::Top).ok_or_else(bad),
        Some((top, sub)) => match canonical(top, TOP) {
            Some("name") => canonical(sub, NAME_SUBS)
                .map(|s| Path::Sub("name", s))
                .ok_or_else(bad),
            _ => Err(bad()),
        },
    }
}

/// Applies a PatchOp (RFC 7644 §3.5.2) to a stored user. `op` is matched without regard to
/// case; an operation without `path` merges its object value (§3.5.2.1, §3.5.2.3), as
/// providers send `{"op": "replace", "value": {"active": false}}`.
pub fn apply_patch(
    mut user: Map<String, Value>,
    body: &Value,
) -> Result<Map<String, Value>, ScimError> {
    let syntax = |d: &str| ScimError::new(400, Some("invalidSyntax"), d.to_owned());
    let ops = body
        .get("Operations")
        .or_else(|| body.get("operations"))
        .and_then(Value::as_array)
        .ok_or_else(|| syntax("a PatchOp needs Operations"))?;
    if ops.is_empty() || ops.len() > 100 {
        return Err(syntax("a PatchOp needs 1 to 100 Operations"));
    }
    for op in ops {
        let kind = op
            .get("op")
            .and_then(Value::as_str)
            .map(str::to_ascii_lowercase)
            .ok_or_else(|| syntax("each operation needs op"))?;
        let path = op
            .get("path")
            .and_then(Value::as_str)
            .map(parse_path)
            .transpose()?;
        let value = op.get("value");
        match (kind.as_str(), path) {
            ("add" | "replace", None) => {
                let Some(Value::Object(o)) = value else {
                    return Err(ScimError::invalid_value(
                        "an operation without path needs an object value",
                    ));
                };
                for (k, v) in o {
                    if let Ok(p) = parse_path(k) {
                        set(&mut user, p, v)?;
                    }
                }
            }
            ("add" | "replace", Some(p)) => {
                let v = value
                    .ok_or_else(|| ScimError::invalid_value("add and replace need a value"))?;
                set(&mut user, p, v)?;
            }
            ("remove", Some(Path::Top(name))) => {
                if name == "userName" {
                    return Err(ScimError::new(
                        400,
                        Some("mutability"),
                        "userName cannot be removed",
                    ));
                }
                user.remove(name);
            }
            ("remove", Some(Path::Sub(top, sub))) => {
                if let Some(Value::Object(o)) = user.get_mut(top) {
                    o.remove(sub);
                    if o.is_empty() {
                        user.remove(top);
                    }
                }
            }
            ("remove", None) => {
                return Err(ScimError::new(400, Some("noTarget"), "remove needs a path"));
            }
            (other, _) => {
                return Err(syntax(&format!(
                    "unknown op '{other}': use add, replace or remove"
                )));
            }
        }
    }
    check_user_name(&user)?;
    Ok(user)
}

fn set(user: &mut Map<String, Value>, path: Path, value: &Value) -> Result<(), ScimError> {
    match path {
        Path::Top(name) => match attribute(name, value)? {
            Some(v) => {
                user.insert(name.to_owned(), v);
            }
            None => {
                user.remove(name);
            }
        },
        Path::Sub(top, sub) => {
            let v = string(value, &format!("{top}.{sub}"))?;
            let entry = user
                .entry(top.to_owned())
                .or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(o) = entry {
                o.insert(sub.to_owned(), v);
            }
        }
    }
    Ok(())
}

/// The attribute a supported filter compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilterAttr {
    UserName,
    ExternalId,
    Id,
}

/// `attr eq "value"` (RFC 7644 §3.4.2.2), the form provisioning clients use to find a user;
/// attribute names and the operator are case-insensitive. Anything else is `invalidFilter`.
pub fn parse_filter(text: &str) -> Result<(FilterAttr, String), ScimError> {
    let bad = || {
        ScimError::new(
            400,
            Some("invalidFilter"),
            format!(
                "unsupported filter '{text}': use userName eq \"…\", externalId eq \"…\" or id eq \"…\""
            ),
        )
    };
    let text = text.trim();
    let (attr, rest) = text.split_once(char::is_whitespace).ok_or_else(bad)?;
    let (op, value) = rest
        .trim_start()
        .split_once(char::is_whitespace)
        .ok_or_else(bad)?;
    if !op.eq_ignore_ascii_case("eq") {
        return Err(bad());
    }
    let value: String = serde_json::from_str(value.trim()).map_err(|_| bad())?;
    let attr = match attr.to_ascii_lowercase().as_str() {
        "username" => FilterAttr::UserName,
        "externalid" => FilterAttr::ExternalId,
        "id" => FilterAttr::Id,
        _ => return Err(bad()),
    };
    Ok((attr, value))
}

/// Keeps only what `attributes` names, or drops what `excluded` names (RFC 7644 §3.4.2.5);
/// `id` and `schemas` always stay.
pub fn select(mut resource: Value, attributes: Option<&str>, excluded: Option<&str>) -> Value {
    let names = |list: &str| -> Vec<String> {
        list.split(',')
            .map(|a| {
                let a = a.trim();
                let a = a
                    .strip_prefix(USER_SCHEMA)
                    .map(|p| p.trim_start_matches(':'))
                    .unwrap_or(a);
                a.split('.').next().unwrap_or(a).to_ascii_lowercase()
            })
            .filter(|a| !a.is_empty())
            .collect()
    };
    let Value::Object(o) = &mut resource else {
        return resource;
    };
    let always = |k: &str| k == "id" || k == "schemas";
    if let Some(list) = attributes.filter(|a| !a.trim().is_empty()) {
        let keep = names(list);
        o.retain(|k, _| always(k) || keep.contains(&k.to_ascii_lowercase()));
    } else if let Some(list) = excluded.filter(|a| !a.trim().is_empty()) {
        let drop = names(list);
        o.retain(|k, _| always(k) || !drop.contains(&k.to_ascii_lowercase()));
    }
    resource
}

/// Whether the stored user is active: an absent `active` is not a deactivation.
pub fn is_active(user: &Map<String, Value>) -> bool {
    user.get("active").and_then(Value::as_bool) != Some(false)
}

/// The address to invite or find: `userName` when it is an e-mail address, else the primary (or
/// first) of `emails`.
pub fn email_of(user: &Map<String, Value>) -> Option<String> {
    let user_name = user.get("userName").and_then(Value::as_str)?;
    if crate::store::Email::parse(user_name).is_ok() {
        return Some(user_name.to_owned());
    }
    let emails = user.get("emails").and_then(Value::as_array)?;
    emails
        .iter()
        .find(|e| e.get("primary").and_then(Value::as_bool) == Some(true))
        .or_else(|| emails.first())
        .and_then(|e| e.get("value"))
        .and_then(Value::as_str)
        .filter(|v| crate::store::Email::parse(v).is_ok())
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(v: Value) -> Map<String, Value> {
        user_from_body(&v).unwrap()
    }

    #[test]
    fn a_body_keeps_known_attributes_in_canonical_case() {
        let u = user(json!({
            "schemas": [USER_SCHEMA], "id": "ignored", "USERNAME": "ann@acme.test",
            "Name": {"GivenName": "Ann", "nickName": "x"}, "active": "False", "title": "dropped"
        }));
        assert_eq!(
            Value::Object(u),
            json!({"userName": "ann@acme.test", "name": {"givenName": "Ann"}, "active": false})
        );
        assert_eq!(
            user_from_body(&json!({"active": true})).unwrap_err().status,
            400
        );
        assert_eq!(
            user_from_body(&json!({"userName": 5}))
                .unwrap_err()
                .scim_type,
            Some("invalidValue")
        );
    }

    #[test]
    fn patches_deactivate_the_way_providers_send_it() {
        let base = user(json!({"userName": "ann@acme.test", "active": true}));
        // Okta: no path, an object value.
        let okta = json!({"schemas": [PATCH_SCHEMA], "Operations": [
            {"op": "replace", "value": {"active": false}}]});
        assert!(!is_active(&apply_patch(base.clone(), &okta).unwrap()));
        // Entra ID: capitalised op, path, the boolean as a string.
        let entra = json!({"schemas": [PATCH_SCHEMA], "Operations": [
            {"op": "Replace", "path": "active", "value": "False"}]});
        assert!(!is_active(&apply_patch(base.clone(), &entra).unwrap()));
        let sub = json!({"Operations": [{"op": "add", "path": "name.familyName", "value": "Lee"}]});
        assert_eq!(
            apply_patch(base.clone(), &sub).unwrap()["name"],
            json!({"familyName": "Lee"})
        );
        let remove = json!({"Operations": [{"op": "remove", "path": "active"}]});
        assert!(
            apply_patch(base.clone(), &remove)
                .unwrap()
                .get("active")
                .is_none()
        );
        for bad in [
            json!({"Operations": [{"op": "remove", "path": "userName"}]}),
            json!({"Operations": [{"op": "replace", "path": "emails[type eq \"work\"].value", "value": "x"}]}),
            json!({"Operations": [{"op": "move", "path": "active"}]}),
            json!({"Operations": []}),
        ] {
            assert_eq!(
                apply_patch(base.clone(), &bad).unwrap_err().status,
                400,
                "{bad}"
            );
        }
    }

    #[test]
    fn filters_are_eq_on_user_name_external_id_or_id() {
        assert_eq!(
            parse_filter(r#"userName eq "Ann@Acme.test""#).unwrap(),
            (FilterAttr::UserName, "Ann@Acme.test".to_owned())
        );
        assert_eq!(
            parse_filter(r#"EXTERNALID EQ "00u1""#).unwrap().0,
            FilterAttr::ExternalId
        );
        for bad in [
            r#"userName co "a""#,
            "userName eq",
            r#"title eq "x""#,
            r#"userName eq x"#,
        ] {
            assert_eq!(
                parse_filter(bad).unwrap_err().scim_type,
                Some("invalidFilter"),
                "{bad}"
            );
        }
    }

    #[test]
    fn selection_keeps_id_and_schemas() {
        let r = json!({"id": "1", "schemas": [], "userName": "a", "name": {"givenName": "A"}});
        assert_eq!(
            select(r.clone(), Some("name.givenName"), None),
            json!({"id": "1", "schemas": [], "name": {"givenName": "A"}})
        );
        assert_eq!(
            select(r, None, Some("name")),
            json!({"id": "1", "schemas": [], "userName": "a"})
        );
    }

    #[test]
    fn the_address_is_the_user_name_or_the_primary_email() {
        assert_eq!(
            email_of(&user(json!({"userName": "ann@acme.test"}))).as_deref(),
            Some("ann@acme.test")
        );
        let u = user(json!({"userName": "00u1", "emails": [
            {"value": "w@acme.test"}, {"value": "p@acme.test", "primary": true}]}));
        assert_eq!(email_of(&u).as_deref(), Some("p@acme.test"));
        assert_eq!(email_of(&user(json!({"userName": "00u1"}))), None);
    }
}
