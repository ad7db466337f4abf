//! `[sessions]`: how long sign-ins last, and how often expired ones are cleared away.

use super::error::{invalid, ConfigError};
use super::layering::lenient;
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SessionsConfig {
    /// Lifetime of a session opened by an interactive login, in minutes.
    #[serde(deserialize_with = "lenient")]
    pub interactive_ttl_minutes: i64,
    /// Lifetime of a session opened by logging in with an access key, in minutes. The key's
    /// validity is checked on every request as well.
    #[serde(deserialize_with = "lenient")]
    pub access_key_ttl_minutes: i64,
    /// How often expired sessions are removed from the database, in seconds.
    #[serde(deserialize_with = "lenient")]
    pub cleanup_interval_seconds: u64,
}

impl Default for SessionsConfig {
    fn default() -> Self {
        SessionsConfig {
            interactive_ttl_minutes: 12 * 60,
            access_key_ttl_minutes: 60,
            cleanup_interval_seconds: 300,
        }
    }
}

impl SessionsConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.interactive_ttl_minutes < 1 {
            return Err(invalid(
                "sessions.interactive_ttl_minutes",
                "must be at least 1",
            ));
        }
        if self.access_key_ttl_minutes < 1 {
            return Err(invalid(
                "sessions.access_key_ttl_minutes",
                "must be at least 1",
            ));
        }
        Ok(())
    }
}
