//! `[access_keys]`: limits on keys, and the first values of the key options that admins
//! change at run time.

use super::error::{invalid, ConfigError};
use super::layering::{lenient, secret_or_file};
use crate::secret::Secret;
use serde::Deserialize;
use std::path::PathBuf;

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
    /// Initial value of `Authentication/AccessKey/RotationOverlapMinutes`: how long a rotated
    /// key's old password keeps working (0: it stops at once).
    #[serde(deserialize_with = "lenient")]
    pub rotation_overlap_minutes: i64,
    /// Initial value of `Authentication/AccessKey/MaxIdleDays`: a key unused this long stops
    /// (0: never).
    #[serde(deserialize_with = "lenient")]
    pub max_idle_days: i64,
    /// The secret key (at least 32 bytes) of the lookup hash stored beside each key's argon2
    /// hash, so a leaked password reported by a secret scanner is matched without hashing
    /// every key. The same on every replica. Without it only leaked key ids are matched.
    pub lookup_pepper: Option<Secret>,
    /// Read `lookup_pepper` from this file (e.g. `$CREDENTIALS_DIRECTORY/lookup-pepper`).
    pub lookup_pepper_file: Option<PathBuf>,
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
            rotation_overlap_minutes: 60,
            max_idle_days: 0,
            lookup_pepper: None,
            lookup_pepper_file: None,
        }
    }
}

/// Shortest lookup pepper accepted, in bytes.
pub const MIN_PEPPER_BYTES: usize = 32;

impl AccessKeysConfig {
    /// Reads `lookup_pepper_file` into `lookup_pepper`, when that is set.
    pub(super) fn resolve(mut self) -> Result<Self, ConfigError> {
        self.lookup_pepper = secret_or_file(
            "access_keys.lookup_pepper",
            self.lookup_pepper.take(),
            self.lookup_pepper_file.take(),
            false,
        )?;
        Ok(self)
    }

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
        if !(0..=RANGE_ROTATION_OVERLAP_MAX).contains(&self.rotation_overlap_minutes) {
            return Err(invalid(
                "access_keys.rotation_overlap_minutes",
                format!("must be 0 to {RANGE_ROTATION_OVERLAP_MAX}"),
            ));
        }
        if !(0..=RANGE_MAX_IDLE_MAX).contains(&self.max_idle_days) {
            return Err(invalid(
                "access_keys.max_idle_days",
                format!("must be 0 (off) to {RANGE_MAX_IDLE_MAX}"),
            ));
        }
        if self
            .lookup_pepper
            .as_ref()
            .is_some_and(|p| p.expose().len() < MIN_PEPPER_BYTES)
        {
            return Err(invalid(
                "access_keys.lookup_pepper",
                format!("must be at least {MIN_PEPPER_BYTES} bytes (e.g. `openssl rand -hex 32`)"),
            ));
        }
        Ok(())
    }
}

/// Largest `rotation_overlap_minutes` (a week) and `max_idle_days` (ten years); the runtime
/// options take the same ranges.
pub const RANGE_ROTATION_OVERLAP_MAX: i64 = 10_080;
pub const RANGE_MAX_IDLE_MAX: i64 = 3_650;
