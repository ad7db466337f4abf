//! `kind = "builtin"`: accesskeyd's own directory (the break-glass admin, service accounts,
//! local users). There is always exactly one.

use crate::ids::DirectoryId;
use serde::Deserialize;

#[derive(Debug, Clone)]
pub struct BuiltinDirectoryConfig {
    pub id: DirectoryId,
    /// Shown in `/api/auth/providers`. SPy selects a provider by this name and defaults to
    /// "Seeq", so that is our default too.
    pub name: String,
}

impl Default for BuiltinDirectoryConfig {
    fn default() -> Self {
        BuiltinDirectoryConfig {
            id: DirectoryId::from("builtin"),
            name: "Seeq".into(),
        }
    }
}

/// A `builtin` entry as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(in crate::config) struct RawBuiltin {
    pub(super) id: String,
    name: Option<String>,
}

impl RawBuiltin {
    pub(super) fn validate(self) -> BuiltinDirectoryConfig {
        BuiltinDirectoryConfig {
            name: self.name.unwrap_or_else(|| "Seeq".into()),
            id: DirectoryId::from(self.id),
        }
    }
}
