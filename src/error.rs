//! The domain's one error type. The HTTP layer maps each variant to a status in one place
//! (`http::error`); messages are for the person who sent the request and never hold secrets.

use crate::directory::DirectoryError;
use crate::passwords::HashError;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Malformed or invalid input; the message names the field.
    #[error("{0}")]
    Invalid(String),
    /// No credentials, or credentials that are wrong, expired or not valid now.
    #[error("{0}")]
    Unauthenticated(String),
    /// Authenticated, but not allowed to do this.
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    /// The request conflicts with the current state (a limit reached, a name taken).
    #[error("{0}")]
    Conflict(String),
    /// A dependency (database, directory) cannot be reached right now.
    #[error("{0}")]
    Unavailable(String),
    /// Too many failed attempts; try again after this many seconds.
    #[error("{0}")]
    RateLimited(String, u64),
    /// Too much work is waiting (password hashing); refused at once, retry after this many
    /// seconds.
    #[error("{0}")]
    Overloaded(String, u64),
    /// A bug or an unexpected failure; details go to the log, not to the client.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    pub fn invalid(msg: impl Into<String>) -> Error {
        Error::Invalid(msg.into())
    }
    pub fn forbidden(msg: impl Into<String>) -> Error {
        Error::Forbidden(msg.into())
    }
    pub fn not_found(msg: impl Into<String>) -> Error {
        Error::NotFound(msg.into())
    }
}

impl From<diesel::result::Error> for Error {
    fn from(e: diesel::result::Error) -> Error {
        use diesel::result::{DatabaseErrorKind, Error as D};
        match e {
            D::NotFound => Error::NotFound("not found".into()),
            D::DatabaseError(DatabaseErrorKind::UniqueViolation, info) => {
                Error::Conflict(format!("already exists: {}", info.message()))
            }
            // SQLite reports a writer that waited out busy_timeout as "database is locked".
            D::DatabaseError(_, ref info)
                if info.message().contains("locked") || info.message().contains("busy") =>
            {
                Error::Unavailable("the database is busy; try again".into())
            }
            D::DatabaseError(
                DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand,
                _,
            ) => Error::Unavailable("the database connection was lost; try again".into()),
            // Two PostgreSQL transactions collided; the client may simply retry.
            D::DatabaseError(DatabaseErrorKind::SerializationFailure, _) => Error::Unavailable(
                "the database was busy with a conflicting change; try again".into(),
            ),
            D::DatabaseError(_, ref info) if info.message().contains("deadlock detected") => {
                Error::Unavailable(
                    "the database was busy with a conflicting change; try again".into(),
                )
            }
            // libpq reports a server that went away mid-query as an unclassified error.
            D::DatabaseError(_, ref info)
                if [
                    "terminating connection",
                    "server closed the connection",
                    "no connection to the server",
                    "connection to server",
                ]
                .iter()
                .any(|m| info.message().contains(m)) =>
            {
                Error::Unavailable("the database connection was lost; try again".into())
            }
            other => Error::Internal(format!("database: {other}")),
        }
    }
}

impl From<diesel::r2d2::PoolError> for Error {
    fn from(e: diesel::r2d2::PoolError) -> Error {
        // The pool's reason names hosts and addresses: for the log, not for clients.
        tracing::warn!(error = %e, "no database connection");
        Error::Unavailable("the database is unavailable; try again shortly".into())
    }
}

impl From<HashError> for Error {
    fn from(e: HashError) -> Error {
        match e {
            HashError::Busy {
                retry_after_seconds: n,
            } => Error::Overloaded(
                format!("too many password checks are waiting; try again in {n} seconds"),
                n,
            ),
            HashError::Failed(_) => Error::Internal(e.to_string()),
        }
    }
}

impl From<DirectoryError> for Error {
    fn from(e: DirectoryError) -> Error {
        match e {
            DirectoryError::InvalidCredentials => {
                Error::Unauthenticated("invalid username or password".into())
            }
            DirectoryError::Refused(m) => Error::Unauthenticated(format!("login refused: {m}")),
            DirectoryError::Unavailable(m) | DirectoryError::Misconfigured(m) => {
                Error::Unavailable(format!("the directory is unavailable: {m}"))
            }
        }
    }
}
