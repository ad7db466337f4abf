//! argon2id hashing on a bounded pool of blocking threads, so a burst of logins cannot
//! take all memory or stall the async runtime.

use crate::config::PasswordHashingConfig;
use crate::secret::Secret;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use std::sync::Arc;
use tokio::sync::Semaphore;

#[derive(Debug, thiserror::Error)]
pub enum HashError {
    #[error("password hashing failed: {0}")]
    Failed(String),
}

#[derive(Clone)]
pub struct Hasher {
    params: Params,
    permits: Arc<Semaphore>,
    /// A hash of a random password, verified when the user or key does not exist so that
    /// response time does not tell an attacker which names exist.
    dummy: Arc<String>,
}

impl Hasher {
    pub fn new(cfg: &PasswordHashingConfig) -> Result<Hasher, HashError> {
        let params = Params::new(cfg.memory_kib, cfg.iterations, cfg.parallelism, None)
            .map_err(|e| HashError::Failed(e.to_string()))?;
        let permits = if cfg.max_concurrent == 0 {
            std::thread::available_parallelism().map_or(2, |n| n.get())
        } else {
            cfg.max_concurrent
        };
        let mut hasher = Hasher {
            params,
            permits: Arc::new(Semaphore::new(permits)),
            dummy: Arc::new(String::new()),
        };
        hasher.dummy =
            Arc::new(hasher.hash_blocking(&Secret::new(crate::keys::format::new_password()))?);
        Ok(hasher)
    }

    fn argon2(&self) -> Argon2<'static> {
        Argon2::new(Algorithm::Argon2id, Version::V0x13, self.params.clone())
    }

    fn hash_blocking(&self, password: &Secret) -> Result<String, HashError> {
        let salt = SaltString::generate(&mut rand::rngs::OsRng);
        self.argon2()
            .hash_password(password.expose().as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| HashError::Failed(e.to_string()))
    }

    /// Hashes with the configured parameters (PHC string, `$argon2id$...`).
    pub async fn hash(&self, password: Secret) -> Result<String, HashError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|e| HashError::Failed(e.to_string()))?;
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.hash_blocking(&password))
            .await
            .map_err(|e| HashError::Failed(e.to_string()))?
    }

    /// Verifies against a stored PHC string, or against the dummy hash when `hash` is None
    /// (and then always returns false). The parameters are read from the stored hash, so
    /// changing the configuration does not lock out existing passwords.
    pub async fn verify(&self, password: Secret, hash: Option<String>) -> Result<bool, HashError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|e| HashError::Failed(e.to_string()))?;
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            let real = hash.is_some();
            let stored = hash.unwrap_or_else(|| this.dummy.as_str().to_string());
            let parsed =
                PasswordHash::new(&stored).map_err(|e| HashError::Failed(e.to_string()))?;
            let ok = this
                .argon2()
                .verify_password(password.expose().as_bytes(), &parsed)
                .is_ok();
            Ok(ok && real)
        })
        .await
        .map_err(|e| HashError::Failed(e.to_string()))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_are_argon2id_with_configured_parameters() {
        let h = Hasher::new(&PasswordHashingConfig::default()).unwrap();
        let hash = h.hash(Secret::new("correct horse")).await.unwrap();
        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
        assert!(h
            .verify(Secret::new("correct horse"), Some(hash.clone()))
            .await
            .unwrap());
        assert!(!h.verify(Secret::new("wrong"), Some(hash)).await.unwrap());
        assert!(!h.verify(Secret::new("anything"), None).await.unwrap());
    }
}
