//! `[audit]`: the audit trail's upkeep.

use super::layering::lenient;
use serde::Deserialize;

/// The audit trail's upkeep.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// Events older than this many days are removed by the cleanup job. 0 keeps them forever.
    #[serde(deserialize_with = "lenient")]
    pub retention_days: u64,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            retention_days: 400,
        }
    }
}
