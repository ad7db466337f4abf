//! argon2id hashing on a bounded pool of blocking threads, so a burst of logins cannot
//! take all memory or stall the async runtime.

use crate::config::PasswordHashingConfig;
use crate::secret::Secret;
use argon2::password_hash::{Output, ParamsString, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use rand::RngCore;
use std::sync::{Arc, Mutex, OnceLock};
use subtle::ConstantTimeEq;
use tokio::sync::Semaphore;

#[derive(Debug, thiserror::Error)]
pub enum HashError {
    #[error("password hashing failed: {0}")]
    Failed(String),
}

fn failed(e: impl std::fmt::Display) -> HashError {
    HashError::Failed(e.to_string())
}

const SALT_LEN: usize = 16;
const OUTPUT_LEN: usize = 32;

#[derive(Clone)]
pub struct Hasher {
    params: Params,
    permits: Arc<Semaphore>,
    /// argon2's working memory (memory_kib each), reused. At most one buffer per permit
    /// exists, so argon2 never holds more than `max_concurrent × memory_kib`; allocating it
    /// afresh per hash instead lets the allocator keep freed buffers in per-thread arenas
    /// (measured: ~300 MiB resident after 70 hashes on 2 cores, see docs/performance.md).
    buffers: Arc<Mutex<Vec<Vec<Block>>>>,
    /// A hash of a random password, verified when the user or key does not exist so that
    /// response time does not tell an attacker which names exist.
    /// Made on first need, so commands that never check a password (sync, migrate) never
    /// allocate argon2 memory.
    dummy: Arc<OnceLock<String>>,
}

impl Hasher {
    pub fn new(cfg: &PasswordHashingConfig) -> Result<Hasher, HashError> {
        let params =
            Params::new(cfg.memory_kib, cfg.iterations, cfg.parallelism, None).map_err(failed)?;
        let permits = if cfg.max_concurrent == 0 {
            std::thread::available_parallelism().map_or(2, |n| n.get())
        } else {
            cfg.max_concurrent
        };
        let hasher = Hasher {
            params,
            permits: Arc::new(Semaphore::new(permits)),
            buffers: Arc::new(Mutex::new(Vec::new())),
            dummy: Arc::new(OnceLock::new()),
        };
        Ok(hasher)
    }

    fn dummy(&self) -> Result<String, HashError> {
        if let Some(d) = self.dummy.get() {
            return Ok(d.clone());
        }
        let made = self.hash_blocking(&Secret::new(crate::keys::format::new_password()))?;
        Ok(self.dummy.get_or_init(|| made).clone())
    }

    /// Runs `f` with working memory for `params`: a pooled buffer when the parameters are the
    /// configured ones, a temporary one for hashes made under older parameters.
    fn with_memory<R>(&self, params: &Params, f: impl FnOnce(&mut [Block]) -> R) -> R {
        let blocks = params.block_count();
        if blocks != self.params.block_count() {
            return f(&mut vec![Block::default(); blocks]);
        }
        let pooled = self.buffers.lock().ok().and_then(|mut b| b.pop());
        let mut buffer = pooled.unwrap_or_else(|| vec![Block::default(); blocks]);
        let result = f(&mut buffer);
        if let Ok(mut b) = self.buffers.lock() {
            b.push(buffer);
        }
        result
    }

    fn raw_hash(
        &self,
        algorithm: Algorithm,
        version: Version,
        params: &Params,
        password: &Secret,
        salt: &[u8],
        out: &mut [u8],
    ) -> Result<(), HashError> {
        let argon2 = Argon2::new(algorithm, version, params.clone());
        self.with_memory(params, |memory| {
            argon2.hash_password_into_with_memory(password.expose().as_bytes(), salt, out, memory)
        })
        .map_err(failed)
    }

    fn hash_blocking(&self, password: &Secret) -> Result<String, HashError> {
        let mut salt = [0u8; SALT_LEN];
        rand::rngs::OsRng.fill_bytes(&mut salt);
        let mut out = [0u8; OUTPUT_LEN];
        self.raw_hash(
            Algorithm::Argon2id,
            Version::V0x13,
            &self.params,
            password,
            &salt,
            &mut out,
        )?;
        let salt = SaltString::encode_b64(&salt).map_err(failed)?;
        let phc = PasswordHash {
            algorithm: argon2::ARGON2ID_IDENT,
            version: Some(Version::V0x13.into()),
            params: ParamsString::try_from(&self.params).map_err(failed)?,
            salt: Some(salt.as_salt()),
            hash: Some(Output::new(&out).map_err(failed)?),
        };
        Ok(phc.to_string())
    }

    fn verify_blocking(&self, password: &Secret, stored: &str) -> Result<bool, HashError> {
        let phc = PasswordHash::new(stored).map_err(failed)?;
        let algorithm = Algorithm::try_from(phc.algorithm).map_err(failed)?;
        let version = phc
            .version
            .map(Version::try_from)
            .transpose()
            .map_err(failed)?
            .unwrap_or_default();
        let params = Params::try_from(&phc).map_err(failed)?;
        let (Some(salt), Some(expected)) = (phc.salt, phc.hash) else {
            return Err(HashError::Failed("stored hash lacks salt or output".into()));
        };
        let mut salt_buf = [0u8; 64];
        let salt = salt.decode_b64(&mut salt_buf).map_err(failed)?;
        let mut out = vec![0u8; expected.len()];
        self.raw_hash(algorithm, version, &params, password, salt, &mut out)?;
        Ok(out.ct_eq(expected.as_bytes()).into())
    }

    /// Hashes with the configured parameters (PHC string, `$argon2id$...`).
    pub async fn hash(&self, password: Secret) -> Result<String, HashError> {
        let _permit = self.permits.acquire().await.map_err(failed)?;
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.hash_blocking(&password))
            .await
            .map_err(failed)?
    }

    /// Verifies against a stored PHC string, or against the dummy hash when `hash` is None
    /// (and then always returns false). The parameters are read from the stored hash, so
    /// changing the configuration does not lock out existing passwords.
    pub async fn verify(&self, password: Secret, hash: Option<String>) -> Result<bool, HashError> {
        let _permit = self.permits.acquire().await.map_err(failed)?;
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            let real = hash.is_some();
            let stored = match hash {
                Some(h) => h,
                None => this.dummy()?,
            };
            Ok(this.verify_blocking(&password, &stored)? && real)
        })
        .await
        .map_err(failed)?
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

    #[tokio::test]
    async fn hashes_interoperate_with_the_reference_encoder() {
        use argon2::password_hash::{PasswordHasher, PasswordVerifier};
        let cfg = PasswordHashingConfig {
            memory_kib: 64,
            iterations: 1,
            ..Default::default()
        };
        let h = Hasher::new(&cfg).unwrap();
        // Ours verifies with the crate's own verifier, and the crate's hash with ours, also
        // under parameters other than the configured ones.
        let ours = h.hash(Secret::new("pw")).await.unwrap();
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(Argon2::default().verify_password(b"pw", &parsed).is_ok());
        let salt = SaltString::generate(&mut rand::rngs::OsRng);
        let theirs = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(128, 2, 1, None).unwrap(),
        )
        .hash_password(b"pw", &salt)
        .unwrap()
        .to_string();
        assert!(h
            .verify(Secret::new("pw"), Some(theirs.clone()))
            .await
            .unwrap());
        assert!(!h.verify(Secret::new("pw2"), Some(theirs)).await.unwrap());
        assert!(h
            .verify(Secret::new("pw"), Some("garbage".into()))
            .await
            .is_err());
    }
}
