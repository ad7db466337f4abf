//! The domain's one error type. The HTTP layer maps each variant to a status in one place
//! (`http::error`); messages are for the person who sent the request and never hold secrets.
//! What a failure below us says (a database's SQL text, a directory's address, bind DN or
//! OS error) is a [`Message::Hidden`] detail: callers read a fixed text and an error id,
//! the log line with the same id holds the detail.

use http::StatusCode;

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
    Conflict(Message),
    /// A dependency (database, directory) cannot be reached right now.
    #[error("{0}")]
    Unavailable(Message),
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

/// What a `Conflict` or an `Unavailable` says, split at construction into what a caller may
/// read and what only the log may: the type, not a look at the text, decides.
#[derive(Debug)]
pub enum Message {
    /// Our own words (a rule, a limit, a name the caller gave): shown as they are.
    Public(String),
    /// A failure below us. Callers read `public` (fixed, written here) and an error id; the
    /// log line with that id holds `detail`, which may name hosts, addresses, DNs, SQL or OS
    /// errors. `Display` (the CLI, the log, the audit trail) shows the detail.
    Hidden {
        public: &'static str,
        detail: String,
    },
}

impl Message {
    /// The text a caller may read.
    pub fn public(&self) -> &str {
        match self {
            Message::Public(m) => m,
            Message::Hidden { public, .. } => public,
        }
    }
}

impl std::fmt::Display for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Message::Public(m) => f.write_str(m),
            Message::Hidden { detail, .. } => f.write_str(detail),
        }
    }
}

/// What callers read when the database cannot be reached.
pub const DATABASE_UNAVAILABLE: &str = "the database is unavailable; try again shortly";
/// What callers read when a directory cannot be reached or is misconfigured.
pub const DIRECTORY_UNAVAILABLE: &str = "the directory is unavailable; try again later";
/// What callers read of a 500.
pub const INTERNAL: &str = "internal error; the server log has the details";

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
    /// A conflict with a rule of ours; the message is shown as is.
    pub fn conflict(msg: impl Into<String>) -> Error {
        Error::Conflict(Message::Public(msg.into()))
    }
    /// A 503 in our own words (too much pending, migrations pending); shown as is.
    pub fn unavailable(msg: impl Into<String>) -> Error {
        Error::Unavailable(Message::Public(msg.into()))
    }
    /// A dependency that failed: callers read `public`, the log gets `detail`.
    pub fn outage(public: &'static str, detail: impl Into<String>) -> Error {
        Error::Unavailable(Message::Hidden {
            public,
            detail: detail.into(),
        })
    }

    /// The text a caller may read: our own words as they are, for a failure below us only
    /// its fixed text (the detail stays in the process).
    pub fn public_message(&self) -> &str {
        match self {
            Error::Invalid(m)
            | Error::Unauthenticated(m)
            | Error::Forbidden(m)
            | Error::NotFound(m)
            | Error::RateLimited(m, _)
            | Error::Overloaded(m, _) => m,
            Error::Conflict(m) | Error::Unavailable(m) => m.public(),
            Error::Internal(_) => INTERNAL,
        }
    }

    /// What only the log may read, if anything: it goes there with an error id.
    pub fn detail(&self) -> Option<&str> {
        match self {
            Error::Conflict(Message::Hidden { detail, .. })
            | Error::Unavailable(Message::Hidden { detail, .. })
            | Error::Internal(detail) => Some(detail),
            _ => None,
        }
    }
}

/// What a client is told when its text holds U+0000 (PostgreSQL cannot store it, so it is
/// refused on every backend alike).
pub const NUL_REFUSED: &str = "text may not contain the NUL character (U+0000)";

impl From<diesel::result::Error> for Error {
    fn from(e: diesel::result::Error) -> Error {
        use diesel::result::{DatabaseErrorKind, Error as D};
        // The database's words (constraint names, SQL) are details for the log; callers
        // read only the fixed texts below.
        let hidden = |public: &'static str, info: &dyn diesel::result::DatabaseErrorInformation| {
            Message::Hidden {
                public,
                detail: format!("{public}: {}", info.message()),
            }
        };
        match e {
            D::NotFound => Error::NotFound("not found".into()),
            D::DatabaseError(DatabaseErrorKind::UniqueViolation, info) => {
                Error::Conflict(Message::Hidden {
                    public: "this conflicts with a record that already exists",
                    detail: format!("already exists: {}", info.message()),
                })
            }
            // PostgreSQL cannot store U+0000 in text ("invalid byte sequence for encoding
            // \"UTF8\": 0x00"). Bodies are checked before this; a path or query that carries
            // one to the database is the client's error too, not a server failure.
            D::DatabaseError(_, ref info) if info.message().contains(": 0x00") => {
                Error::Invalid(NUL_REFUSED.into())
            }
            // SQLite reports a writer that waited out busy_timeout as "database is locked".
            D::DatabaseError(_, ref info)
                if info.message().contains("locked") || info.message().contains("busy") =>
            {
                Error::Unavailable(hidden("the database is busy; try again", info.as_ref()))
            }
            D::DatabaseError(
                DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand,
                ref info,
            ) => Error::Unavailable(hidden(
                "the database connection was lost; try again",
                info.as_ref(),
            )),
            // Two PostgreSQL transactions collided; the client may simply retry.
            D::DatabaseError(DatabaseErrorKind::SerializationFailure, ref info) => {
                Error::Unavailable(hidden(
                    "the database was busy with a conflicting change; try again",
                    info.as_ref(),
                ))
            }
            D::DatabaseError(_, ref info) if info.message().contains("deadlock detected") => {
                Error::Unavailable(hidden(
                    "the database was busy with a conflicting change; try again",
                    info.as_ref(),
                ))
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
                Error::Unavailable(hidden(
                    "the database connection was lost; try again",
                    info.as_ref(),
                ))
            }
            other => Error::Internal(format!("database: {other}")),
        }
    }
}

impl From<diesel::r2d2::PoolError> for Error {
    fn from(e: diesel::r2d2::PoolError) -> Error {
        // The pool's reason names hosts and addresses: for the log, not for clients.
        Error::outage(
            DATABASE_UNAVAILABLE,
            format!("the database is unavailable: {e}"),
        )
    }
}

/// A domain error as it is answered over HTTP (the API, the web pages and SCIM).
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    /// For the caller: the domain's own words, or a fixed text naming `error_id`.
    pub message: String,
    /// Seconds for `Retry-After` (a 429, a shed 503).
    pub retry_after: Option<u64>,
    /// Set when a detail went to the log under this id.
    pub error_id: Option<String>,
}

impl Error {
    /// The one mapping of domain errors to HTTP: status, the message for the client, the
    /// Retry-After seconds of a 429 or a shed 503, and the error id of a detail that went
    /// to the log. The API, the web pages and SCIM all answer with it.
    pub fn answer(self) -> Answer {
        let e = self;
        let (status, retry_after) = match &e {
            Error::Invalid(_) => (StatusCode::BAD_REQUEST, None),
            Error::Unauthenticated(_) => (StatusCode::UNAUTHORIZED, None),
            Error::Forbidden(_) => (StatusCode::FORBIDDEN, None),
            Error::NotFound(_) => (StatusCode::NOT_FOUND, None),
            Error::Conflict(_) => (StatusCode::CONFLICT, None),
            Error::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, None),
            Error::RateLimited(_, after) => (StatusCode::TOO_MANY_REQUESTS, Some(*after)),
            Error::Overloaded(_, after) => (StatusCode::SERVICE_UNAVAILABLE, Some(*after)),
            Error::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, None),
        };
        let Some(detail) = e.detail() else {
            return Answer {
                status,
                message: e.public_message().to_string(),
                retry_after,
                error_id: None,
            };
        };
        // Random, not a counter: ids from several replicas must not collide in one log store,
        // and must not tell a caller how many errors there were.
        let id = format!("{:016x}", rand::random::<u64>());
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!(error_id = %id, error = %detail, status = status.as_u16(), "internal error");
        } else {
            tracing::warn!(error_id = %id, error = %detail, status = status.as_u16(), "request failed");
        }
        Answer {
            status,
            message: format!("{} (error id {id})", e.public_message()),
            retry_after,
            error_id: Some(id),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_own_words_are_shown_as_they_are() {
        let e = Error::conflict("user `ann` already holds 20 access keys");
        assert_eq!(
            e.public_message(),
            "user `ann` already holds 20 access keys"
        );
        assert_eq!(e.detail(), None);
        let e = Error::unavailable("database migrations are pending");
        assert_eq!(e.public_message(), "database migrations are pending");
        assert_eq!(e.detail(), None);
    }

    #[test]
    fn a_bug_shows_a_fixed_text() {
        let e = Error::Internal("database: relation \"users\" does not exist".into());
        assert_eq!(e.public_message(), INTERNAL);
        assert_eq!(
            e.detail(),
            Some("database: relation \"users\" does not exist")
        );
    }

    #[test]
    fn a_hidden_detail_becomes_an_error_id_and_a_fixed_text() {
        let a = Error::answer(Error::outage(
            DATABASE_UNAVAILABLE,
            "the database is unavailable: could not connect to server at 10.0.0.9",
        ));
        assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE);
        let id = a.error_id.expect("an error id");
        assert_eq!(id.len(), 16);
        assert_eq!(
            a.message,
            format!("the database is unavailable; try again shortly (error id {id})")
        );
        assert!(!a.message.contains("10.0.0.9"));
    }

    #[test]
    fn a_rule_of_ours_keeps_its_message_and_gets_no_id() {
        let a = Error::answer(Error::conflict(
            "a sync of directory `corp` is already running",
        ));
        assert_eq!(a.status, StatusCode::CONFLICT);
        assert_eq!(a.message, "a sync of directory `corp` is already running");
        assert_eq!(a.error_id, None);
        let a = Error::answer(Error::Overloaded("too many password checks".into(), 2));
        assert_eq!(a.retry_after, Some(2));
        assert_eq!(a.error_id, None);
    }
}
