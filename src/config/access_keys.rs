//! `[access_keys]`: limits on keys, and the first values of the key options that admins
//! change at run time.

use super::error::{invalid, ConfigError};
use super::layering::lenient;
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AccessKeysConfig {
    /// Initial value of the runtime option `Authentication/AccessKey/ValidityWithoutUserLogin`
    /// (days). Used only until an admin changes the option; the database value wins after that.
    #[serde(deserialize_with = "lenient")]
    pub validity_without_user_login_days: i64,
    /// Most keys one user may hold at once.
    #[serde(deserialize_with = "lenient")]
    pub max_per_user: i64,
    /// Longest label accepted, in characters.
    #[serde(deserialize_with = "lenient")]
    pub max_label_length: usize,
    /// Let a session opened with an access key create further keys. Off: a leaked key cannot
    /// mint itself a successor that outlives its deletion.
    #[serde(deserialize_with = "lenient")]
    pub allow_key_sessions_to_create_keys: bool,
    /// `lastUsed` is written at most this often per key, so key traffic does not turn into
    /// one database write per request.
    #[serde(deserialize_with = "lenient")]
    pub last_used_write_interval_seconds: u64,
    /// Initial value of `Authentication/AccessKey/Creation/Enabled`: people create their own
    /// keys (false: only admins create keys).
    #[serde(deserialize_with = "lenient")]
    pub creation_enabled: bool,
    /// Initial value of `Authentication/AccessKey/ServicePrincipal/MaxLifetime` (days).
    #[serde(deserialize_with = "lenient")]
    pub service_account_max_lifetime_days: i64,
    /// Initial value of `Authentication/AccessKey/WarningDays`.
    #[serde(deserialize_with = "lenient")]
    pub warning_days: i64,
}

impl Default for AccessKeysConfig {
    fn default() -> Self {
        AccessKeysConfig {
            validity_without_user_login_days: 14,
            max_per_user: 20,
            max_label_length: 200,
            allow_key_sessions_to_create_keys: false,
            last_used_write_interval_seconds: 60,
            creation_enabled: true,
            service_account_max_lifetime_days: 365,
            warning_days: 3,
        }
    }
}

impl AccessKeysConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.validity_without_user_login_days < 0 {
            return Err(invalid(
                "access_keys.validity_without_user_login_days",
                "must be 0 (keys disabled) or more",
            ));
        }
        if self.max_per_user < 1 {
            return Err(invalid("access_keys.max_per_user", "must be at least 1"));
        }
        if self.max_label_length < 1 {
            return Err(invalid(
                "access_keys.max_label_length",
                "must be at least 1",
            ));
        }
        Ok(())
    }
}
