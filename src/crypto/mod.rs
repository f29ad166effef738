//! Cryptographic building blocks: password hashing (argon2id), the credential vault (Fernet), and
//! random tokens with their SHA-256 digests.

pub mod password;
pub mod token;
pub mod totp;
pub mod vault;

pub use password::{PasswordError, Passwords};
pub use token::{constant_time_eq, random_token, sha256_hex};
pub use vault::{Sealed, Vault, VaultError};
