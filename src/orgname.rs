//! Organisation names people can tell apart.
//!
//! A person chooses an organisation on the consent page by its name, so two organisations must
//! never look alike there. A name is accepted only when it holds no control, format (bidi,
//! zero-width) or private-use characters, and it is unique by its *key*: the name after Unicode
//! NFKC, case folding and whitespace collapse, reduced to its UTS #39 §4 confusable skeleton, so
//! `Acme`, `ACME`, `Ａｃｍｅ`, ` Acme  ` and `Аcme` (Cyrillic А) are one name. The slug is the
//! plain ASCII handle printed beside the name.

use unicode_normalization::UnicodeNormalization;

/// The longest organisation name, in characters.
pub const MAX_NAME_CHARS: usize = 100;
/// The longest slug (ASCII).
pub const MAX_SLUG_LEN: usize = 40;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OrgNameError {
    #[error("the organisation name must not be empty")]
    Empty,
    #[error("the organisation name is longer than {MAX_NAME_CHARS} characters")]
    TooLong,
    #[error(
        "the organisation name holds an invisible or control character (U+{0:04X}): type it plainly"
    )]
    Invisible(u32),
}

/// A valid organisation name, with the key it is unique by and the slug it suggests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrgName {
    display: String,
    key: String,
    slug: String,
}

impl OrgName {
    /// Trims and collapses runs of white space to one space, then checks the characters.
    pub fn parse(text: &str) -> Result<Self, OrgNameError> {
        if let Some(c) = text.chars().find(|&c| is_invisible(c)) {
            return Err(OrgNameError::Invisible(c as u32));
        }
        let display = collapse_whitespace(&text.nfc().collect::<String>());
        if display.is_empty() {
            return Err(OrgNameError::Empty);
        }
        if display.chars().count() > MAX_NAME_CHARS {
            return Err(OrgNameError::TooLong);
        }
        Ok(Self {
            key: name_key(&display),
            slug: slug_of(&display),
            display,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.display
    }

    /// What two names that look alike have in common.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The slug this name suggests; the store makes it unique.
    pub fn slug(&self) -> &str {
        &self.slug
    }
}

impl std::fmt::Display for OrgName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.display)
    }
}

/// Characters that change how text reads without showing: C0/C1 controls, bidi embeddings,
/// overrides and isolates, zero-width joiners and spaces, the BOM, soft hyphen, and other
/// `Cf` format characters, plus private-use and unassigned-looking specials. White space other
/// than controls is allowed and collapsed.
pub fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{0000}'..='\u{001F}' | '\u{007F}'..='\u{009F}'
        | '\u{00AD}' | '\u{034F}' | '\u{061C}' | '\u{115F}' | '\u{1160}' | '\u{17B4}' | '\u{17B5}'
        | '\u{180B}'..='\u{180F}'
        | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{206F}'
        | '\u{3164}' | '\u{FE00}'..='\u{FE0F}' | '\u{FEFF}' | '\u{FFA0}' | '\u{FFF0}'..='\u{FFFB}'
        | '\u{E000}'..='\u{F8FF}' | '\u{E0000}'..='\u{E007F}' | '\u{F0000}'..='\u{10FFFF}')
}

fn collapse_whitespace(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// NFKC, then lower case (full case mapping), then NFKC again, collapsed, then the confusable
/// skeleton (UTS #39 §4: NFD, each character mapped to its prototype, NFD).
pub fn name_key(display: &str) -> String {
    let folded: String = display.nfkc().flat_map(char::to_lowercase).collect();
    let folded = collapse_whitespace(&folded.nfkc().collect::<String>());
    // Prototypes can be capitals (`0` → `O`): fold once more so `GL0BEX` meets `globex`.
    unicode_security::skeleton(&folded)
        .flat_map(char::to_lowercase)
        .collect()
}

/// ASCII letters and digits of the name (accents dropped), the rest as single dashes.
fn slug_of(display: &str) -> String {
    let mut slug = String::new();
    for c in display.nfkd().flat_map(char::to_lowercase) {
        if c.is_ascii_alphanumeric() {
            slug.push(c);
        } else if !c.is_ascii() && !unicode_normalization::char::is_combining_mark(c) {
            // A letter of another script: no ASCII form, so it separates like punctuation.
            if !slug.ends_with('-') && !slug.is_empty() {
                slug.push('-');
            }
        } else if !c.is_ascii_alphanumeric()
            && !unicode_normalization::char::is_combining_mark(c)
            && !slug.ends_with('-')
            && !slug.is_empty()
        {
            slug.push('-');
        }
        if slug.len() >= MAX_SLUG_LEN {
            break;
        }
    }
    let slug = slug.trim_end_matches('-');
    if slug.is_empty() {
        "org".to_owned()
    } else {
        slug.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: &str) -> String {
        OrgName::parse(s).unwrap().key().to_owned()
    }

    #[test]
    fn names_that_look_alike_share_a_key() {
        let acme = key("Acme");
        for twin in [
            "ACME",
            "  acme ",
            "Ａｃｍｅ",
            "\u{0410}cme", // Cyrillic capital A
            "Acm\u{0435}", // Cyrillic small ie
        ] {
            assert_eq!(key(twin), acme, "{twin:?}");
        }
        assert_eq!(key("Acme  Corp"), key("acme corp"));
        assert_eq!(key("GL0BEX"), key("Globex"));
        assert_eq!(key("Acme\u{00A0}Corp"), key("Acme Corp"));
        assert_ne!(key("Acme"), key("Globex"));
        assert_ne!(key("Acme Corp"), key("AcmeCorp"));
    }

    #[test]
    fn invisible_and_control_characters_are_refused() {
        for bad in [
            "Acme\u{202E}",
            "Ac\u{200B}me",
            "Acme\u{200D}",
            "\u{FEFF}Acme",
            "Acme\u{0007}",
            "Acme\u{2066}x\u{2069}",
            "Ac\u{00AD}me",
        ] {
            assert!(
                matches!(OrgName::parse(bad), Err(OrgNameError::Invisible(_))),
                "{bad:?}"
            );
        }
        assert_eq!(OrgName::parse("    "), Err(OrgNameError::Empty));
        assert_eq!(OrgName::parse(&"x".repeat(101)), Err(OrgNameError::TooLong));
    }

    #[test]
    fn the_display_name_is_collapsed_and_the_slug_is_ascii() {
        let n = OrgName::parse("  Société   Générale ").unwrap();
        assert_eq!(n.as_str(), "Société Générale");
        assert_eq!(n.slug(), "societe-generale");
        assert_eq!(OrgName::parse("Acme, Inc.").unwrap().slug(), "acme-inc");
        assert_eq!(OrgName::parse("東京").unwrap().slug(), "org");
        assert!(OrgName::parse(&"a b ".repeat(20)).unwrap().slug().len() <= MAX_SLUG_LEN);
    }
}
