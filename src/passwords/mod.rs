//! argon2id hashing on a bounded pool of blocking threads, so a burst of logins cannot
//! take all memory or stall the async runtime.
//!
//! Admission is bounded and fair: at most `max_concurrent` hashes run and `max_queue` wait;
//! past that, work is refused at once (503 + Retry-After) instead of making everyone wait.
//! Waiters queue per client address and free slots go round-robin across addresses, so
//! one flooding address cannot starve an admin's login from elsewhere.

use crate::config::PasswordHashingConfig;
use crate::error::Error;
use crate::secret::Secret;
use argon2::password_hash::{Output, ParamsString, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use rand::RngCore;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;
use subtle::ConstantTimeEq;

mod queue;

use queue::Gate;
pub use queue::HashStats;

#[derive(Debug, thiserror::Error)]
pub enum HashError {
    #[error("password hashing failed: {0}")]
    Failed(String),
    /// Too much hashing is waiting already; refused without waiting.
    #[error("password hashing is busy; retry in {retry_after_seconds} seconds")]
    Busy { retry_after_seconds: u64 },
}

fn failed(e: impl std::fmt::Display) -> HashError {
    HashError::Failed(e.to_string())
}

const SALT_LEN: usize = 16;
const OUTPUT_LEN: usize = 32;

#[derive(Clone)]
pub struct Hasher {
    params: Params,
    gate: Arc<Gate>,
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
        let running = if cfg.max_concurrent == 0 {
            std::thread::available_parallelism().map_or(2, |n| n.get())
        } else {
            cfg.max_concurrent
        };
        let queue = if cfg.max_queue == 0 {
            running.saturating_mul(4)
        } else {
            cfg.max_queue
        };
        let hasher = Hasher {
            params,
            gate: Arc::new(Gate::new(running, queue)),
            buffers: Arc::new(Mutex::new(Vec::new())),
            dummy: Arc::new(OnceLock::new()),
        };
        Ok(hasher)
    }

    fn dummy(&self) -> Result<String, HashError> {
        if let Some(d) = self.dummy.get() {
            return Ok(d.clone());
        }
        let made = self.hash_blocking(&Secret::new(crate::key_format::new_password()))?;
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

    /// Runs `work` on a blocking thread once a slot is free (or refuses with Busy). The
    /// permit travels with the work, so the slot is freed when it ends, panics included.
    async fn run<R: Send + 'static>(
        &self,
        from: Option<IpAddr>,
        work: impl FnOnce(&Hasher) -> Result<R, HashError> + Send + 'static,
    ) -> Result<R, HashError> {
        let permit = self.gate.slot(from).await?;
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            let started = Instant::now();
            let result = work(&this);
            permit.done(started.elapsed());
            result
        })
        .await
        .map_err(failed)?
    }

    /// Hashes with the configured parameters (PHC string, `$argon2id$...`).
    pub async fn hash(&self, password: Secret) -> Result<String, HashError> {
        self.hash_from(password, None).await
    }

    /// `hash`, queued in the fair share of the client address `from`.
    pub async fn hash_from(
        &self,
        password: Secret,
        from: Option<IpAddr>,
    ) -> Result<String, HashError> {
        self.run(from, move |this| this.hash_blocking(&password))
            .await
    }

    /// Verifies against a stored PHC string, or against the dummy hash when `hash` is None
    /// (and then always returns false). The parameters are read from the stored hash, so
    /// changing the configuration does not lock out existing passwords.
    pub async fn verify(&self, password: Secret, hash: Option<String>) -> Result<bool, HashError> {
        self.verify_from(password, hash, None).await
    }

    /// `verify`, queued in the fair share of the client address `from`.
    pub async fn verify_from(
        &self,
        password: Secret,
        hash: Option<String>,
        from: Option<IpAddr>,
    ) -> Result<bool, HashError> {
        self.run(from, move |this| {
            let real = hash.is_some();
            let stored = match hash {
                Some(h) => h,
                None => this.dummy()?,
            };
            Ok(this.verify_blocking(&password, &stored)? && real)
        })
        .await
    }

    /// Hashes running and waiting now, and work refused since start.
    pub fn stats(&self) -> HashStats {
        self.gate.stats()
    }
}

/// What a refused or failed hash means to the caller.
impl From<HashError> for Error {
    fn from(e: HashError) -> Error {
        match e {
            HashError::Busy {
                retry_after_seconds: n,
            } => Error::Overloaded(
                format!("too many password checks are waiting; try again in {n} seconds"),
                n,
            ),
            HashError::Failed(_) => Error::Internal(e.to_string()),
        }
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
    fn addr(last: u8) -> Option<IpAddr> {
        Some(IpAddr::from([10, 0, 0, last]))
    }

    fn cheap(max_concurrent: usize, max_queue: usize) -> Hasher {
        Hasher::new(&PasswordHashingConfig {
            memory_kib: 64,
            iterations: 1,
            max_concurrent,
            max_queue,
            ..Default::default()
        })
        .unwrap()
    }

    async fn until(h: &Hasher, what: impl Fn(HashStats) -> bool) {
        for _ in 0..100_000 {
            if what(h.stats()) {
                return;
            }
            tokio::task::yield_now().await;
        }
        panic!("not reached: {:?}", h.stats());
    }

    #[tokio::test]
    async fn a_flood_from_one_address_is_shed_while_another_is_served() {
        let h = cheap(1, 4);
        let hash = h.hash(Secret::new("pw")).await.unwrap();
        // The one slot is taken, so everything below queues.
        let held = h.gate.slot(None).await.unwrap();
        let flood: Vec<_> = (0..10)
            .map(|_| {
                let (h, hash) = (h.clone(), hash.clone());
                tokio::spawn(async move {
                    h.verify_from(Secret::new("guess"), Some(hash), addr(1))
                        .await
                })
            })
            .collect();
        until(&h, |s| s.queued == 4 && s.shed_total == 6).await;
        let admin = {
            let h = h.clone();
            tokio::spawn(async move { h.verify_from(Secret::new("pw"), Some(hash), addr(2)).await })
        };
        until(&h, |s| s.shed_total == 7).await;
        assert_eq!(h.stats().queued, 4);
        drop(held);
        assert!(admin.await.unwrap().unwrap(), "the other address is served");
        let mut busy = 0;
        for f in flood {
            match f.await.unwrap() {
                Ok(ok) => assert!(!ok),
                Err(HashError::Busy {
                    retry_after_seconds,
                }) => {
                    assert!(retry_after_seconds >= 1);
                    busy += 1;
                }
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(busy, 7);
        assert_eq!(
            h.stats(),
            HashStats {
                running: 0,
                queued: 0,
                shed_total: 7
            }
        );
        let e = crate::error::Error::from(HashError::Busy {
            retry_after_seconds: 3,
        });
        assert!(
            matches!(&e, crate::error::Error::Overloaded(m, 3) if m == "too many password checks are waiting; try again in 3 seconds"),
            "{e:?}"
        );
    }

    #[tokio::test]
    async fn callers_that_go_away_free_their_place_and_slot() {
        let h = cheap(1, 4);
        let held = h.gate.slot(None).await.unwrap();
        let waiting = {
            let h = h.clone();
            tokio::spawn(async move { h.hash_from(Secret::new("pw"), addr(1)).await })
        };
        until(&h, |s| s.queued == 1).await;
        waiting.abort();
        until(&h, |s| s.queued == 0).await;
        drop(held);
        assert_eq!(h.stats().running, 0);
        // A panic in the blocking task frees the slot as well.
        let panicked = h
            .run(None, |_| -> Result<(), HashError> { panic!("boom") })
            .await;
        assert!(matches!(panicked, Err(HashError::Failed(_))));
        assert_eq!(h.stats().running, 0);
        assert!(h.hash(Secret::new("pw")).await.is_ok());
    }
}
