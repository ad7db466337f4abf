//! Directories people log in through: one interface, a built-in and an LDAP implementation.

pub mod builtin;
pub mod ldap;
pub mod oidc;

/// What a directory knows about a person after a successful password check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectoryUser {
    /// Stable id upstream (`entryUUID`, `objectGUID` as a GUID string, or the local user id).
    pub external_id: String,
    pub username: String,
    pub display_name: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub email: Option<String>,
    /// Member of the directory's admin group.
    pub is_admin: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    /// Unknown user, wrong password, empty password, ambiguous username: all look the same
    /// to the caller so that nobody can probe which usernames exist.
    #[error("invalid credentials")]
    InvalidCredentials,
    /// A login the directory refused for a reason worth telling (an invalid ID token, a
    /// replayed code, not in an allowed group): a 401 with that reason.
    #[error("{0}")]
    Refused(String),
    /// The directory could not be reached or answered with an error: a 503, never a 401.
    #[error("directory unavailable: {0}")]
    Unavailable(String),
    /// The configuration cannot work (unreadable CA file, bad URL).
    #[error("directory misconfigured: {0}")]
    Misconfigured(String),
}

use crate::config::BuiltinDirectoryConfig;

/// A configured directory, ready to check passwords.
pub enum Directory {
    Builtin(BuiltinDirectoryConfig),
    Ldap(Box<ldap::LdapDirectory>),
    Oidc(Box<oidc::OidcDirectory>),
}

impl Directory {
    pub fn id(&self) -> &str {
        match self {
            Directory::Builtin(b) => &b.id,
            Directory::Ldap(l) => &l.config().id,
            Directory::Oidc(o) => &o.config().id,
        }
    }

    pub fn name(&self) -> &str {
        match self {
            Directory::Builtin(b) => &b.name,
            Directory::Ldap(l) => &l.config().name,
            Directory::Oidc(o) => &o.config().name,
        }
    }

    /// The `datasourceClass` clients see in `/api/auth/providers`.
    pub fn class(&self) -> &'static str {
        match self {
            Directory::Builtin(_) => "Auth",
            Directory::Ldap(_) => "LDAP",
            Directory::Oidc(_) => "OpenIDConnect",
        }
    }

    pub fn is_builtin(&self) -> bool {
        matches!(self, Directory::Builtin(_))
    }
}
