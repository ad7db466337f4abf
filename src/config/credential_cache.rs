//! `[credential_cache]`: what each process remembers of credentials it has verified.

use super::error::{invalid, ConfigError};
use super::layering::lenient;
use serde::Deserialize;

/// What each process remembers of credentials it has verified, so that known keys and
/// sessions are decided without a database read.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CredentialCacheConfig {
    /// Off: every request reads the database (as before).
    #[serde(deserialize_with = "lenient")]
    pub enabled: bool,
    /// A background re-check compares every remembered entry with the database this often,
    /// in seconds: the most an entry can lag behind a change that was not announced.
    #[serde(deserialize_with = "lenient")]
    pub recheck_seconds: u64,
    /// Keys, sessions and users remembered at most (each kind).
    #[serde(deserialize_with = "lenient")]
    pub max_entries: usize,
}

impl Default for CredentialCacheConfig {
    fn default() -> Self {
        CredentialCacheConfig {
            enabled: true,
            recheck_seconds: 30,
            max_entries: 100_000,
        }
    }
}

impl CredentialCacheConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.recheck_seconds == 0 {
            return Err(invalid(
                "credential_cache.recheck_seconds",
                "must be at least 1",
            ));
        }
        Ok(())
    }
}
