//! `[password_hashing]`: argon2id's cost, and how many hashes run or wait at once.

use super::error::{invalid, ConfigError};
use super::layering::lenient;
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PasswordHashingConfig {
    /// argon2id memory cost in KiB (OWASP: 19456 = 19 MiB).
    #[serde(deserialize_with = "lenient")]
    pub memory_kib: u32,
    #[serde(deserialize_with = "lenient")]
    pub iterations: u32,
    #[serde(deserialize_with = "lenient")]
    pub parallelism: u32,
    /// Hashes computed at once; bounds the memory argon2 can take (this × memory_kib).
    /// 0 = the number of CPUs.
    #[serde(deserialize_with = "lenient")]
    pub max_concurrent: usize,
    /// Hashes that may wait for a free slot; past this, work is refused at once with 503
    /// and Retry-After. Each client address gets a fair share. 0 = 4 × max_concurrent.
    #[serde(deserialize_with = "lenient")]
    pub max_queue: usize,
}

impl Default for PasswordHashingConfig {
    fn default() -> Self {
        PasswordHashingConfig {
            memory_kib: 19 * 1024,
            iterations: 2,
            parallelism: 1,
            max_concurrent: 0,
            max_queue: 0,
        }
    }
}

impl PasswordHashingConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.memory_kib < 8 * self.parallelism.max(1)
            || self.iterations < 1
            || self.parallelism < 1
        {
            return Err(invalid(
                "password_hashing",
                "memory_kib must be ≥ 8 × parallelism, iterations and parallelism ≥ 1",
            ));
        }
        Ok(())
    }
}
