//! Time-based one-time passwords (RFC 6238) for the second sign-in factor, and recovery codes.
//!
//! The code is HOTP (RFC 4226 §5.3) over the number of 30-second steps since the epoch, six
//! digits, HMAC-SHA1: what every authenticator app speaks. A code is accepted for the current
//! step and one step either side (RFC 6238 §5.2: "at most one time step" of network delay and
//! clock drift); the caller records the step that matched and refuses it, or any earlier one,
//! the next time (§5.2: "the verifier MUST NOT accept the second attempt of the same OTP").

use hmac::{Hmac, Mac};
use sha1::Sha1;
use zeroize::Zeroizing;

use super::token::{constant_time_eq, random_token};

/// Seconds per step (RFC 6238 §4.1 `X`, the recommended default).
pub const STEP_SECONDS: i64 = 30;
pub const DIGITS: usize = 6;
/// Bytes of a new shared secret: 160 bits, the HMAC-SHA1 output size (RFC 4226 §4 R6).
pub const SECRET_BYTES: usize = 20;
/// How many recovery codes an enrolment makes.
pub const RECOVERY_CODES: usize = 10;

/// HOTP (RFC 4226 §5.3): HMAC-SHA1 of the 8-byte big-endian counter, dynamic truncation to 31
/// bits, the last `DIGITS` decimal digits.
fn hotp(secret: &[u8], counter: u64) -> String {
    let mut mac = Hmac::<Sha1>::new_from_slice(secret).expect("HMAC takes a key of any length");
    mac.update(&counter.to_be_bytes());
    let digest = mac.finalize().into_bytes();
    let offset = usize::from(digest[19] & 0x0f);
    let binary = u32::from_be_bytes([
        digest[offset] & 0x7f,
        digest[offset + 1],
        digest[offset + 2],
        digest[offset + 3],
    ]);
    format!(
        "{:0width$}",
        binary % 10u32.pow(DIGITS as u32),
        width = DIGITS
    )
}

/// A new shared secret.
pub fn new_secret() -> Zeroizing<Vec<u8>> {
    let mut bytes = Zeroizing::new(vec![0u8; SECRET_BYTES]);
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut bytes);
    bytes
}

/// The secret as authenticator apps take it typed in: RFC 4648 base32 without padding.
pub fn base32(secret: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::new();
    let mut buffer: u32 = 0;
    let mut bits = 0;
    for &b in secret {
        buffer = (buffer << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            out.push(ALPHABET[((buffer >> (bits - 5)) & 31) as usize] as char);
            bits -= 5;
        }
    }
    if bits > 0 {
        out.push(ALPHABET[((buffer << (5 - bits)) & 31) as usize] as char);
    }
    out
}

/// The `otpauth://` URI authenticator apps read (the Key URI Format), for a QR code or a link.
pub fn otpauth_uri(secret: &[u8], issuer: &str, account: &str) -> String {
    let enc = |s: &str| -> String { url::form_urlencoded::byte_serialize(s.as_bytes()).collect() };
    format!(
        "otpauth://totp/{}:{}?secret={}&issuer={}&algorithm=SHA1&digits={DIGITS}&period={STEP_SECONDS}",
        enc(issuer).replace('+', "%20"),
        enc(account).replace('+', "%20"),
        base32(secret),
        enc(issuer).replace('+', "%20"),
    )
}

/// The step `now` falls in.
pub fn step_of(now: i64) -> i64 {
    now.div_euclid(STEP_SECONDS)
}

/// The code of one step.
pub fn code_at(secret: &[u8], step: i64) -> String {
    hotp(secret, step.max(0) as u64)
}

/// The step whose code `code` is, among the current one and one either side; `None` when it is
/// none of them. Compared in constant time.
pub fn matching_step(secret: &[u8], code: &str, now: i64) -> Option<i64> {
    let code = code.trim();
    if code.len() != DIGITS || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let current = step_of(now);
    // Every candidate is computed, whichever matches, so timing says nothing about which.
    let mut found = None;
    for step in [current - 1, current, current + 1] {
        if constant_time_eq(code_at(secret, step).as_bytes(), code.as_bytes()) {
            found = Some(step);
        }
    }
    found
}

/// New recovery codes, as shown to the person once (`xxxxx-xxxxx`, lower-case letters and
/// digits); store only their digests ([`recovery_digest`]).
pub fn new_recovery_codes() -> Vec<String> {
    (0..RECOVERY_CODES)
        .map(|_| {
            let raw: String = random_token(32)
                .chars()
                .filter(char::is_ascii_alphanumeric)
                .map(|c| c.to_ascii_lowercase())
                .take(10)
                .collect();
            format!("{}-{}", &raw[..5], &raw[5..])
        })
        .collect()
}

/// What a recovery code is stored as: SHA-256 of its normalised form (case, spaces and dashes
/// do not matter when typed).
pub fn recovery_digest(code: &str) -> String {
    let normal: String = code
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect();
    super::token::sha256_hex(&normal)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 Appendix B, SHA-1 rows (the 8-digit values' last six digits).
    #[test]
    fn the_rfc_6238_test_vectors_hold() {
        let secret = b"12345678901234567890";
        for (time, eight) in [
            (59, "94287082"),
            (1_111_111_109, "07081804"),
            (1_111_111_111, "14050471"),
            (1_234_567_890, "89005924"),
            (2_000_000_000, "69279037"),
        ] {
            assert_eq!(code_at(secret, step_of(time)), eight[2..], "T={time}");
        }
    }

    #[test]
    fn a_code_matches_its_step_and_one_either_side_only() {
        let secret = new_secret();
        let now = 1_790_000_000;
        let step = step_of(now);
        for s in [step - 1, step, step + 1] {
            assert_eq!(matching_step(&secret, &code_at(&secret, s), now), Some(s));
        }
        for s in [step - 2, step + 2] {
            let code = code_at(&secret, s);
            let neighbours = [step - 1, step, step + 1].map(|n| code_at(&secret, n));
            if !neighbours.contains(&code) {
                assert_eq!(matching_step(&secret, &code, now), None);
            }
        }
        assert_eq!(matching_step(&secret, "12345", now), None);
        assert_eq!(matching_step(&secret, "abcdef", now), None);
    }

    #[test]
    fn base32_and_the_uri_are_what_apps_read() {
        assert_eq!(
            base32(b"12345678901234567890"),
            "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
        );
        let uri = otpauth_uri(b"12345678901234567890", "clari-mcp", "ava@acme.test");
        assert!(
            uri.starts_with("otpauth://totp/clari-mcp:ava%40acme.test?secret=GEZDG"),
            "{uri}"
        );
    }

    #[test]
    fn recovery_codes_are_distinct_and_typed_loosely() {
        let codes = new_recovery_codes();
        assert_eq!(codes.len(), RECOVERY_CODES);
        let mut set = codes.clone();
        set.sort();
        set.dedup();
        assert_eq!(set.len(), RECOVERY_CODES);
        let c = &codes[0];
        assert_eq!(
            recovery_digest(c),
            recovery_digest(&format!(" {} ", c.to_uppercase()))
        );
        assert_eq!(recovery_digest(c), recovery_digest(&c.replace('-', "")));
    }
}
