//! PII redaction (DLP) of everything a tool answers: e-mail addresses, phone numbers, card numbers
//! (Luhn-checked), US social security numbers, IBANs (mod-97-checked) and an organisation's own
//! patterns. All kinds are alternatives of one regular expression, so a text is scanned once,
//! whatever is switched on. A redacted value becomes a stable placeholder such as `[email#3f2a]`
//! (a keyed hash: the same address gives the same placeholder within an organisation, so an agent
//! can still tell two people apart without seeing either address).

use std::fmt::Write;

use regex::{Captures, Regex};
use serde_json::Value;

/// The built-in kinds, in the order their patterns are tried at one position.
pub const KINDS: &[&str] = &["email", "card", "iban", "ssn", "phone"];

/// An address in any script (RFC 6531 local parts, IDN domains), with the `@` and the dots as
/// people obfuscate them: full-width `＠` and `．`, small `﹫`, and `[at]`, `(at)`, `{dot}`, …
const EMAIL: &str = concat!(
    r"[\p{L}\p{M}\p{N}._%+\-]+",
    r"(?:@|＠|﹫|\s?[\[({]\s?(?i:at)\s?[\])}]\s?)",
    r"[\p{L}\p{M}\p{N}\-]+",
    r"(?:(?:\.|．|。|\s?[\[({]\s?(?i:dot)\s?[\])}]\s?)[\p{L}\p{M}\p{N}\-]+)*",
    r"(?:\.|．|。|\s?[\[({]\s?(?i:dot)\s?[\])}]\s?)\p{L}{2,}",
);
/// Four groups of four with one kind of separator, or 13–19 digits starting like a card number
/// (3–6): epoch milliseconds (starting with 1) and amounts are never candidates.
const CARD: &str = r"\b(?:\d{4}[ -]\d{4}[ -]\d{4}[ -]\d{1,7}|[3-6]\d{12,18})\b";
const IBAN: &str = r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b";
/// 3-2-4 digits with dashes or spaces (checked: one kind of separator, a number the SSA issues).
const SSN: &str = r"\b\d{3}[ \-]\d{2}[ \-]\d{4}\b";
/// A separator is required, so bare amounts and ids never look like phone numbers: the North
/// American 3-3-4 shape, or a `+` country code and groups (checked: 8 to 15 digits, E.164).
const PHONE: &str = concat!(
    r"(?:\+\d{1,3}[ .\-]?)?(?:\(\d{3}\)|\b\d{3})[ .\-]\d{3}[ .\-]\d{4}\b",
    r"|\+\d{1,3}(?:[ .\-]?\(?\d{1,4}\)?){2,6}\b",
);

/// Why a redaction setting cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RedactError {
    #[error("unknown redaction kind '{0}': use email, phone, card, ssn, iban (or all, none)")]
    UnknownKind(String),
    #[error("the pattern '{pattern}' is not a regular expression: {reason}")]
    BadPattern { pattern: String, reason: String },
    #[error("at most {0} custom patterns")]
    TooManyPatterns(usize),
}

/// The most custom patterns an organisation may add.
pub const MAX_CUSTOM: usize = 20;

/// What an organisation redacts, as stored (JSON) and as set by `org set --redact`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RedactionPolicy {
    pub kinds: Vec<String>,
    #[serde(default)]
    pub custom: Vec<String>,
}

impl RedactionPolicy {
    /// Parses `emails,phones,…` (plurals accepted), `all` or `none`.
    pub fn parse_kinds(text: &str) -> Result<Vec<String>, RedactError> {
        let mut kinds = Vec::new();
        for given in text.split(',').map(str::trim).filter(|k| !k.is_empty()) {
            let k = given.to_ascii_lowercase();
            match k.strip_suffix('s').filter(|s| *s != "ss").unwrap_or(&k) {
                "none" => return Ok(Vec::new()),
                "all" => return Ok(KINDS.iter().map(|k| (*k).to_owned()).collect()),
                k if KINDS.contains(&k) => kinds.push(k.to_owned()),
                _ => return Err(RedactError::UnknownKind(given.to_owned())),
            }
        }
        kinds.sort_by_key(|k| KINDS.iter().position(|x| x == k));
        kinds.dedup();
        Ok(kinds)
    }

    pub fn is_empty(&self) -> bool {
        self.kinds.is_empty() && self.custom.is_empty()
    }
}

/// A compiled policy.
#[derive(Debug, Clone)]
pub struct Redactor {
    regex: Option<Regex>,
    /// The kind of each capture group, in group order.
    groups: Vec<String>,
}

impl Redactor {
    pub fn new(policy: &RedactionPolicy) -> Result<Self, RedactError> {
        if policy.custom.len() > MAX_CUSTOM {
            return Err(RedactError::TooManyPatterns(MAX_CUSTOM));
        }
        let mut parts = Vec::new();
        let mut groups = Vec::new();
        for kind in KINDS
            .iter()
            .filter(|k| policy.kinds.iter().any(|p| p == *k))
        {
            let pattern = match *kind {
                "email" => EMAIL,
                "card" => CARD,
                "iban" => IBAN,
                "ssn" => SSN,
                _ => PHONE,
            };
            parts.push(format!("({pattern})"));
            groups.push((*kind).to_owned());
        }
        for p in &policy.custom {
            // Each custom pattern alone first, so an error names the pattern that is wrong.
            regex::RegexBuilder::new(p)
                .size_limit(1 << 20)
                .build()
                .map_err(|e| RedactError::BadPattern {
                    pattern: p.clone(),
                    reason: e.to_string().lines().last().unwrap_or_default().to_owned(),
                })?;
            parts.push(format!("((?:{p}))"));
            groups.push("custom".to_owned());
        }
        let regex = if parts.is_empty() {
            None
        } else {
            Some(
                regex::RegexBuilder::new(&parts.join("|"))
                    .size_limit(8 << 20)
                    .build()
                    .map_err(|e| RedactError::BadPattern {
                        pattern: policy.custom.join(" | "),
                        reason: e.to_string(),
                    })?,
            )
        };
        Ok(Self { regex, groups })
    }

    pub fn is_off(&self) -> bool {
        self.regex.is_none()
    }

    /// Redacts one text; `pseudonym` gives the keyed hash of a value. Returns the text and how
    /// many values were replaced.
    pub fn text(&self, text: &str, pseudonym: &dyn Fn(&str) -> String) -> (String, u64) {
        let Some(re) = &self.regex else {
            return (text.to_owned(), 0);
        };
        let mut count = 0;
        let out = re.replace_all(text, |c: &Captures| {
            let (kind, m) = self.which(c);
            let valid = match kind {
                "card" => luhn(m),
                "iban" => iban_ok(m),
                "ssn" => ssn_ok(m),
                "phone" => phone_ok(m),
                _ => true,
            };
            if valid {
                count += 1;
                format!("[{kind}#{}]", pseudonym(m))
            } else {
                m.to_owned()
            }
        });
        (out.into_owned(), count)
    }

    /// Redacts a JSON value in place, all of it: strings, object keys, and numbers (a card
    /// number sent as a JSON number is a card number); returns how many values were replaced.
    /// A redacted number becomes its placeholder string.
    pub fn json(&self, value: &mut Value, pseudonym: &dyn Fn(&str) -> String) -> u64 {
        if self.is_off() {
            return 0;
        }
        match value {
            Value::String(s) => {
                let (out, n) = self.text(s, pseudonym);
                if n > 0 {
                    *s = out;
                }
                n
            }
            Value::Number(num) => {
                let (out, n) = self.text(&num.to_string(), pseudonym);
                if n > 0 {
                    *value = Value::String(out);
                }
                n
            }
            Value::Array(items) => items.iter_mut().map(|v| self.json(v, pseudonym)).sum(),
            Value::Object(map) => {
                let mut n = 0;
                let old = std::mem::take(map);
                for (k, mut v) in old {
                    n += self.json(&mut v, pseudonym);
                    let (key, k_n) = self.text(&k, pseudonym);
                    n += k_n;
                    map.insert(if k_n > 0 { key } else { k }, v);
                }
                n
            }
            Value::Bool(_) | Value::Null => 0,
        }
    }

    fn which<'t>(&self, c: &Captures<'t>) -> (&str, &'t str) {
        for (i, kind) in self.groups.iter().enumerate() {
            if let Some(m) = c.get(i + 1) {
                return (kind, m.as_str());
            }
        }
        ("custom", c.get(0).map_or("", |m| m.as_str()))
    }
}

/// Compiled policies by their stored text. The policy itself is read on every call, so a change
/// applies to the very next call on every replica; only compiling it is saved. Bounded: past
/// [`CACHE_ENTRIES`] distinct policies it starts over.
#[derive(Default)]
pub struct RedactionCache(
    std::sync::Mutex<std::collections::HashMap<String, std::sync::Arc<Redactor>>>,
);

pub const CACHE_ENTRIES: usize = 1_000;

impl RedactionCache {
    /// The compiled form of `policy` (its stored JSON, or the server default's key).
    pub fn compiled(
        &self,
        key: &str,
        policy: &RedactionPolicy,
    ) -> Result<std::sync::Arc<Redactor>, RedactError> {
        if let Some(r) = self.0.lock().expect("redaction cache lock").get(key) {
            return Ok(r.clone());
        }
        let r = std::sync::Arc::new(Redactor::new(policy)?);
        let mut map = self.0.lock().expect("redaction cache lock");
        if map.len() >= CACHE_ENTRIES {
            map.clear();
        }
        map.insert(key.to_owned(), r.clone());
        Ok(r)
    }
}

/// A US social security number the SSA could issue, written with one kind of separator.
fn ssn_ok(s: &str) -> bool {
    let seps: Vec<char> = s.chars().filter(|c| !c.is_ascii_digit()).collect();
    if seps.len() != 2 || seps[0] != seps[1] {
        return false;
    }
    let d: String = s.chars().filter(char::is_ascii_digit).collect();
    let (area, group, serial) = (&d[0..3], &d[3..5], &d[5..9]);
    area != "000" && area != "666" && !area.starts_with('9') && group != "00" && serial != "0000"
}

/// A phone number's digits are 7 to 15 (E.164 allows at most 15).
fn phone_ok(s: &str) -> bool {
    let n = s.chars().filter(char::is_ascii_digit).count();
    if s.starts_with('+') {
        (8..=15).contains(&n)
    } else {
        (10..=15).contains(&n)
    }
}

/// The Luhn checksum of the digits in `s`.
pub fn luhn(s: &str) -> bool {
    let digits: Vec<u32> = s.chars().filter_map(|c| c.to_digit(10)).collect();
    if !(13..=19).contains(&digits.len()) {
        return false;
    }
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, d)| {
            if i % 2 == 1 {
                let x = d * 2;
                if x > 9 { x - 9 } else { x }
            } else {
                *d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// ISO 13616 mod-97 check of an IBAN (spaces ignored).
pub fn iban_ok(s: &str) -> bool {
    let compact: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    if !(15..=34).contains(&compact.len()) {
        return false;
    }
    let (head, tail) = compact.split_at(4);
    let mut rem: u32 = 0;
    let mut digits = String::new();
    for c in tail.chars().chain(head.chars()) {
        match c {
            '0'..='9' => digits.push(c),
            'A'..='Z' => {
                let _ = write!(digits, "{}", c as u32 - 'A' as u32 + 10);
            }
            _ => return false,
        }
    }
    for d in digits.chars() {
        rem = (rem * 10 + d.to_digit(10).unwrap_or(0)) % 97;
    }
    rem == 1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all() -> Redactor {
        Redactor::new(&RedactionPolicy {
            kinds: KINDS.iter().map(|k| (*k).to_owned()).collect(),
            custom: vec![r"ACME-\d{6}".into()],
        })
        .unwrap()
    }

    /// A stand-in for the keyed hash: FNV-1a, enough to tell values apart here.
    fn p(v: &str) -> String {
        let h = v.bytes().fold(0x811c_9dc5_u32, |h, b| {
            (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
        });
        format!("{:04x}", h & 0xffff)
    }

    #[test]
    fn each_kind_is_found_and_replaced_by_a_stable_placeholder() {
        let r = all();
        let (out, n) = r.text(
            "Mail ava.king@northwind.example or call +1 415-555-0142; card 4111 1111 1111 1111, \
             SSN 078-05-1120, IBAN GB82 WEST 1234 5698 7654 32, ticket ACME-123456.",
            &p,
        );
        assert_eq!(n, 6, "{out}");
        for gone in [
            "ava.king",
            "555-0142",
            "4111",
            "078-05",
            "GB82",
            "ACME-123456",
        ] {
            assert!(!out.contains(gone), "{gone} in {out}");
        }
        assert!(
            out.contains(&format!("[email#{}]", p("ava.king@northwind.example"))),
            "{out}"
        );
        let (again, _) = r.text("ava.king@northwind.example", &p);
        assert_eq!(
            again,
            format!("[email#{}]", p("ava.king@northwind.example"))
        );
    }

    #[test]
    fn amounts_dates_ids_and_invalid_numbers_are_left_alone() {
        let r = all();
        let keep = "Commit $6,933,000 on 2026-11-22T10:00:00Z for 0065e00000AbCdEAAA, job \
                    6073683781a6da229df71e00, at 1790000000000 ms, scope 1905::MGR, \
                    card 4111 1111 1111 1112, IBAN GB00 WEST 1234 5698 7654 32";
        let (out, n) = r.text(keep, &p);
        assert_eq!((out.as_str(), n), (keep, 0));
    }

    #[test]
    fn json_strings_keys_and_numbers_are_redacted_and_amounts_are_not() {
        let r = all();
        let mut v = serde_json::json!({"email": "a@b.example", "n": 4111111111111111u64,
            "list": ["x", "call 415.555.0142"], "by@owner.example": {"amount": 6933000},
            "ts": 1790000000000u64});
        assert_eq!(r.json(&mut v, &p), 4);
        assert_eq!(v["n"], format!("[card#{}]", p("4111111111111111")));
        assert!(v["list"][1].as_str().unwrap().starts_with("call [phone#"));
        let key = format!("[email#{}]", p("by@owner.example"));
        assert_eq!(v[&key]["amount"], 6933000, "{v}");
        assert_eq!(v["ts"], 1790000000000u64);
    }

    #[test]
    fn international_obfuscated_and_spaced_forms_are_found() {
        let r = all();
        for hard in [
            "josé.núñez@correo.example.es",
            "用户@例子.广告",
            "δοκιμή@παράδειγμα.δοκιμή",
            "ava.king[at]northwind[dot]example",
            "ava.king (at) northwind (dot) example",
            "ava.king＠northwind．example",
            "ava.king﹫northwind.example",
            "+44 20 7946 0958",
            "+33 1 23 45 67 89",
            "+49 (30) 901820",
            "078 05 1120",
        ] {
            let (out, n) = r.text(&format!("contact: {hard}."), &p);
            assert_eq!(n, 1, "{hard} -> {out}");
            assert!(!out.contains(hard), "{out}");
        }
        for keep in [
            "078-05 1120",
            "000-12-3456",
            "meet at noon. dot",
            "+1 2",
            "2026 11 22",
        ] {
            let (out, n) = r.text(keep, &p);
            assert_eq!((out.as_str(), n), (keep, 0), "{keep}");
        }
    }

    #[test]
    fn settings_parse_and_name_what_is_wrong() {
        assert_eq!(
            RedactionPolicy::parse_kinds("emails, phones").unwrap(),
            ["email", "phone"]
        );
        assert_eq!(
            RedactionPolicy::parse_kinds("all").unwrap().len(),
            KINDS.len()
        );
        assert!(RedactionPolicy::parse_kinds("none").unwrap().is_empty());
        assert!(matches!(
            RedactionPolicy::parse_kinds("emails,faxes"),
            Err(RedactError::UnknownKind(k)) if k == "faxes"
        ));
        let bad = Redactor::new(&RedactionPolicy {
            kinds: vec![],
            custom: vec!["(unclosed".into()],
        })
        .unwrap_err();
        assert!(bad.to_string().contains("(unclosed"), "{bad}");
    }
}
