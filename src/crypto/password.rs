//! Password hashing with argon2id at the OWASP parameters (m = 19 MiB, t = 2, p = 1), stored as PHC
//! strings so the parameters can be raised later. Hashing runs in `spawn_blocking` behind a semaphore
//! sized to the cores, so a burst of logins queues instead of starving the async workers.

use std::sync::Arc;

use argon2::{Algorithm, Argon2, Params, PasswordHash, PasswordHasher, PasswordVerifier, Version};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::Semaphore;

pub const MIN_PASSWORD_CHARS: usize = 12;
pub const MAX_PASSWORD_BYTES: usize = 1024;

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("the password must be at least {MIN_PASSWORD_CHARS} characters long")]
    TooShort,
    #[error("the password must be at most {MAX_PASSWORD_BYTES} bytes long")]
    TooLong,
    #[error("password hashing failed: {0}")]
    Hash(String),
    #[error("the password hashing task stopped unexpectedly")]
    Join,
}

#[derive(Clone)]
pub struct Passwords {
    permits: Arc<Semaphore>,
    params: Params,
}

impl std::fmt::Debug for Passwords {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Passwords")
            .field("available_permits", &self.permits.available_permits())
            .finish()
    }
}

impl Default for Passwords {
    fn default() -> Self {
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2);
        Self::new(cores)
    }
}

impl Passwords {
    /// `concurrency` argon2 computations may run at once; more wait for a permit.
    pub fn new(concurrency: usize) -> Self {
        let params = Params::new(19 * 1024, 2, 1, None).expect("OWASP argon2 parameters are valid");
        Self {
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
            params,
        }
    }

    fn hasher(params: Params) -> Argon2<'static> {
        Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
    }

    /// Checks the length policy without hashing.
    pub fn check_policy(password: &SecretString) -> Result<(), PasswordError> {
        let p = password.expose_secret();
        if p.len() > MAX_PASSWORD_BYTES {
            return Err(PasswordError::TooLong);
        }
        if p.chars().count() < MIN_PASSWORD_CHARS {
            return Err(PasswordError::TooShort);
        }
        Ok(())
    }

    /// Hashes a new password (after checking the policy) into a PHC string.
    pub async fn hash(&self, password: SecretString) -> Result<String, PasswordError> {
        Self::check_policy(&password)?;
        self.on_a_blocking_thread(move |hasher| {
            hasher
                .hash_password(password.expose_secret().as_bytes())
                .map(|h| h.to_string())
                .map_err(|e| PasswordError::Hash(e.to_string()))
        })
        .await
    }

    /// Verifies a password against a stored PHC string. With no stored hash (unknown user) it still
    /// spends the same work on a fixed hash, so response time does not reveal whether an account exists.
    pub async fn verify(
        &self,
        password: SecretString,
        stored: Option<String>,
    ) -> Result<bool, PasswordError> {
        if password.expose_secret().len() > MAX_PASSWORD_BYTES {
            return Ok(false);
        }
        self.on_a_blocking_thread(move |hasher| {
            let known = stored.is_some();
            let phc = stored.unwrap_or_else(|| DUMMY_HASH.to_owned());
            let parsed = PasswordHash::new(&phc).map_err(|e| PasswordError::Hash(e.to_string()))?;
            let ok = hasher
                .verify_password(password.expose_secret().as_bytes(), &parsed)
                .is_ok();
            Ok(ok && known)
        })
        .await
    }

    /// Runs argon2 work off the async threads, at most one job per core at a time.
    async fn on_a_blocking_thread<T: Send + 'static>(
        &self,
        work: impl FnOnce(Argon2<'static>) -> Result<T, PasswordError> + Send + 'static,
    ) -> Result<T, PasswordError> {
        let params = self.params.clone();
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| PasswordError::Join)?;
        tokio::task::spawn_blocking(move || work(Self::hasher(params)))
            .await
            .map_err(|_| PasswordError::Join)?
    }
}

/// argon2id (m=19456, t=2, p=1) of a random string nobody knows; used to equalise timing.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRmb3JkdW1teQ$1xJqd5mbnxyBEXP1H05hnzW0y9ibD07SWeDdYVMvfA0";

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(s: &str) -> SecretString {
        SecretString::from(s.to_owned())
    }

    #[tokio::test]
    async fn hash_then_verify_round_trips_and_uses_owasp_parameters() {
        let p = Passwords::new(2);
        let phc = p.hash(secret("correct horse battery")).await.unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(
            p.verify(secret("correct horse battery"), Some(phc.clone()))
                .await
                .unwrap()
        );
        assert!(
            !p.verify(secret("wrong horse battery"), Some(phc))
                .await
                .unwrap()
        );
    }

    #[tokio::test]
    async fn unknown_user_never_verifies() {
        let p = Passwords::new(1);
        assert!(!p.verify(secret("anything at all"), None).await.unwrap());
    }

    #[tokio::test]
    async fn policy_rejects_short_and_huge_passwords() {
        let p = Passwords::new(1);
        assert!(matches!(
            p.hash(secret("short")).await,
            Err(PasswordError::TooShort)
        ));
        let huge = "x".repeat(MAX_PASSWORD_BYTES + 1);
        assert!(matches!(
            p.hash(secret(&huge)).await,
            Err(PasswordError::TooLong)
        ));
    }
}
