//! The one place every revocation ends: a key deleted, a user deleted, an override or the
//! system option changed. It drops what this process remembers about the affected keys.
//!
//! Every request re-reads the key, its owner and the option from the database, so nothing
//! here is needed for correctness today; it exists so that caches added later (and, with
//! PostgreSQL, notifications to other replicas) have exactly one hook to join.

use crate::app::App;

#[derive(Debug, Clone)]
pub enum Revoked {
    /// One key (its row id).
    Key(String),
    /// Everything of one user (row id).
    User(String),
    /// A system-wide change (the validity option).
    All,
}

pub fn changed(app: &App, what: Revoked) {
    tracing::debug!(?what, "revocation");
    match &what {
        Revoked::Key(id) => app.verified.forget_key(id),
        Revoked::User(id) => app.verified.forget_user(id),
        Revoked::All => app.verified.clear(),
    }
}
