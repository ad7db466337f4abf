//! `[login_throttle]`: limits on failed logins.

use super::error::{invalid, ConfigError};
use super::layering::lenient;
use serde::Deserialize;

/// Limits on failed logins, against password guessing (and directory account lockouts that
/// guessing through us would cause) and against forcing argon2 work with bad credentials.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoginThrottleConfig {
    /// Failed attempts for one username or key from one address within the window before
    /// further attempts get 429. 0 turns throttling off.
    #[serde(deserialize_with = "lenient")]
    pub max_failures: u32,
    /// Failed attempts from one address, all names together, within the window before
    /// further attempts get 429. 0 turns this limit off.
    #[serde(deserialize_with = "lenient")]
    pub max_failures_per_address: u32,
    /// The window, in seconds; a throttled caller waits until it has passed.
    #[serde(deserialize_with = "lenient")]
    pub window_seconds: u64,
    /// Counters kept at most (each a fixed few dozen bytes); the oldest go first.
    #[serde(deserialize_with = "lenient")]
    pub max_entries: usize,
}

impl Default for LoginThrottleConfig {
    fn default() -> Self {
        LoginThrottleConfig {
            max_failures: 10,
            max_failures_per_address: 100,
            window_seconds: 300,
            max_entries: 100_000,
        }
    }
}

impl LoginThrottleConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.max_entries < 100 {
            return Err(invalid(
                "login_throttle.max_entries",
                "must be at least 100",
            ));
        }
        if self.window_seconds == 0 {
            return Err(invalid(
                "login_throttle.window_seconds",
                "must be at least 1",
            ));
        }
        Ok(())
    }
}
