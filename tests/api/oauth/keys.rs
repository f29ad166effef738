//! Keys and JWTs of others (a machine client, an identity provider, a DPoP client), made with
//! the `jsonwebtoken` and `p256` crates as a Rust client would make them.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use p256::pkcs8::EncodePrivateKey;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// A P-256 key pair.
pub struct Key {
    pub kid: String,
    encoding: EncodingKey,
    /// The public JWK (with `kid`).
    pub jwk: Value,
}

impl Key {
    pub fn new(kid: &str) -> Self {
        let secret = loop {
            let bytes: [u8; 32] = rand::random();
            if let Ok(s) = p256::SecretKey::from_slice(&bytes) {
                break s;
            }
        };
        let der = secret.to_pkcs8_der().unwrap();
        let point = p256::elliptic_curve::sec1::ToEncodedPoint::to_encoded_point(
            &secret.public_key(),
            false,
        );
        let b64 = |b: &[u8]| URL_SAFE_NO_PAD.encode(b);
        let jwk = json!({
            "kty": "EC", "crv": "P-256", "kid": kid, "alg": "ES256", "use": "sig",
            "x": b64(point.x().unwrap()), "y": b64(point.y().unwrap()),
        });
        Self {
            kid: kid.to_owned(),
            encoding: EncodingKey::from_ec_der(der.as_bytes()),
            jwk,
        }
    }

    pub fn jwks(&self) -> Value {
        json!({ "keys": [self.jwk] })
    }

    /// RFC 7638 thumbprint of the public key.
    pub fn thumbprint(&self) -> String {
        let canonical = format!(
            r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
            self.jwk["x"].as_str().unwrap(),
            self.jwk["y"].as_str().unwrap()
        );
        URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
    }

    /// A JWT with `typ` and this key's `kid` in the header.
    pub fn sign(&self, typ: &str, claims: &Value) -> String {
        let mut h = Header::new(Algorithm::ES256);
        h.typ = Some(typ.to_owned());
        h.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&h, claims, &self.encoding).unwrap()
    }

    /// A DPoP proof (RFC 9449 §4.2) with the public key in the header.
    pub fn proof(
        &self,
        method: &str,
        url: &str,
        iat: i64,
        nonce: Option<&str>,
        token: Option<&str>,
    ) -> String {
        let mut h = Header::new(Algorithm::ES256);
        h.typ = Some("dpop+jwt".into());
        let mut public = self.jwk.clone();
        public.as_object_mut().unwrap().remove("kid");
        h.jwk = Some(serde_json::from_value(public).unwrap());
        let mut claims = json!({
            "jti": random_id(), "htm": method, "htu": url, "iat": iat,
        });
        if let Some(n) = nonce {
            claims["nonce"] = json!(n);
        }
        if let Some(t) = token {
            claims["ath"] = json!(URL_SAFE_NO_PAD.encode(Sha256::digest(t.as_bytes())));
        }
        jsonwebtoken::encode(&h, &claims, &self.encoding).unwrap()
    }
}

pub fn random_id() -> String {
    clari_mcp::crypto::random_token(12)
}

/// The claims of a JWT (unverified: the test reads what the server signed).
pub fn claims_of(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}
