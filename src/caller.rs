//! Who a request acts as once authenticated: the principal every domain call is given.

use crate::audit::Actor;
use crate::error::{Error, Result};
use crate::store::key_columns::KeyScope;
use crate::store::models::UserRow;
use std::net::IpAddr;
use std::sync::Arc;

/// How the caller proved who they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// A person logged in through a directory.
    Interactive,
    /// An access key (Basic credentials, or a session opened with a key).
    AccessKey,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Interactive => "interactive",
            Method::AccessKey => "access-key",
        }
    }
}

/// An authenticated caller.
#[derive(Clone)]
pub struct Principal {
    /// Shared with the credential cache: a request decided from memory copies nothing.
    pub user: Arc<UserRow>,
    pub method: Method,
    /// The key behind an access-key caller: (row id, key id). Text shared with the credential
    /// cache rather than a `KeyRowId`, for the same reason as `user`.
    pub key: Option<(Arc<str>, Arc<str>)>,
    /// The session token's hash, when the caller came with a session.
    pub session_hash: Option<String>,
    /// The client's address (behind trusted proxies, the client they name).
    pub remote_addr: Option<IpAddr>,
    /// What the caller may do: an access key's scope; `Full` for an interactive login.
    pub scope: KeyScope,
}

impl Principal {
    pub fn actor(&self) -> Actor {
        Actor {
            user_id: Some(self.user.id.clone()),
            name: Some(self.user.username.clone()),
            remote_addr: self.remote_addr.map(|a| a.to_string()),
            key_id: self.key.as_ref().map(|(_, k)| k.to_string()),
        }
    }

    /// Refuses an HTTP `method` the caller's key scope does not allow (a read key writes
    /// nothing).
    pub fn require_method(&self, method: &str) -> Result<()> {
        if self.scope.allows(method) {
            return Ok(());
        }
        Err(Error::forbidden(format!(
            "this access key has scope `{}`: it may only GET, HEAD and OPTIONS, not {method}",
            self.scope
        )))
    }

    pub fn require_admin(&self) -> Result<()> {
        if self.user.is_admin {
            Ok(())
        } else {
            Err(Error::forbidden("this needs an admin"))
        }
    }
}
