//! Directories people log in through: one interface, a built-in and an LDAP implementation.

pub mod builtin;
pub mod fetched;
pub mod ldap;
pub mod oidc;
pub mod scanner;
pub mod ssf;

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
    /// A change feed's server will not continue from the cookie it was given (LDAP
    /// e-syncRefreshRequired, or a cookie it cannot read): start the feed again without a
    /// cookie. Changes made in between are left to the scheduled sync.
    #[error("change feed must start over without its cookie: {0}")]
    FeedReset(String),
}

use crate::config::BuiltinDirectoryConfig;
use crate::error::{Error, DIRECTORY_UNAVAILABLE};
use crate::ids::DirectoryId;

/// A configured directory, ready to check passwords.
pub enum Directory {
    Builtin(BuiltinDirectoryConfig),
    Ldap(Box<ldap::LdapDirectory>),
    Oidc(Box<oidc::OidcDirectory>),
}

impl Directory {
    pub fn id(&self) -> &DirectoryId {
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

/// What a directory's failure means to the caller (conversions live beside their source).
impl From<DirectoryError> for Error {
    fn from(e: DirectoryError) -> Error {
        match e {
            DirectoryError::InvalidCredentials => {
                Error::Unauthenticated("invalid username or password".into())
            }
            DirectoryError::Refused(m) => Error::Unauthenticated(format!("login refused: {m}")),
            // The reason names the URL, the address, often the bind DN: for the log only.
            DirectoryError::Unavailable(m)
            | DirectoryError::Misconfigured(m)
            | DirectoryError::FeedReset(m) => Error::outage(
                DIRECTORY_UNAVAILABLE,
                format!("the directory is unavailable: {m}"),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::DIRECTORY_UNAVAILABLE;

    #[test]
    fn a_directory_outage_keeps_its_reason_from_callers_but_not_from_the_log() {
        let e = Error::from(DirectoryError::Unavailable(
            "connect on ldap://10.0.0.5:389: I/O error: Connection refused (os error 111)".into(),
        ));
        assert_eq!(e.public_message(), DIRECTORY_UNAVAILABLE);
        assert!(e
            .detail()
            .is_some_and(|d| d.contains("ldap://10.0.0.5:389")));
        // The CLI and the log lines that print the error see the whole reason.
        assert_eq!(
            e.to_string(),
            "the directory is unavailable: connect on ldap://10.0.0.5:389: I/O error: \
             Connection refused (os error 111)"
        );
    }
}
