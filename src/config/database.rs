//! `[database]`: which database (the URL's scheme picks the backend) and the pool. The URL
//! may hold a password, so it is never printed whole: [`redact`] masks it.

use super::error::{invalid, ConfigError};
use super::layering::{lenient, read_secret_file};
use serde::Deserialize;
use std::path::PathBuf;

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// `sqlite://PATH` (relative paths are relative to the working directory) or
    /// `postgres://USER:PASSWORD@HOST:PORT/DB`. May hold a password: never printed whole.
    pub url: String,
    /// Read `url` from this file instead (it holds the database password).
    pub url_file: Option<PathBuf>,
    #[serde(deserialize_with = "lenient")]
    pub pool_size: u32,
    /// How long a request waits for a free connection before it gets 503.
    #[serde(deserialize_with = "lenient")]
    pub connect_timeout_seconds: u64,
}

impl std::fmt::Debug for DatabaseConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatabaseConfig")
            .field("url", &redact(&self.url))
            .field("url_file", &self.url_file)
            .field("pool_size", &self.pool_size)
            .field("connect_timeout_seconds", &self.connect_timeout_seconds)
            .finish()
    }
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        DatabaseConfig {
            url: "sqlite://accesskeyd.db".into(),
            url_file: None,
            pool_size: 8,
            connect_timeout_seconds: 5,
        }
    }
}

impl DatabaseConfig {
    /// Replaces `url` with the contents of `url_file`, when that is set.
    pub(super) fn resolve(mut self) -> Result<Self, ConfigError> {
        if let Some(path) = self.url_file.take() {
            self.url = read_secret_file("database.url_file", &path)?
                .expose()
                .trim()
                .to_string();
        }
        Ok(self)
    }

    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if let Err(e) = Backend::parse(&self.url) {
            return Err(invalid("database.url", e.to_string()));
        }
        if self.pool_size == 0 {
            return Err(invalid("database.pool_size", "must be at least 1"));
        }
        if self.connect_timeout_seconds == 0 {
            return Err(invalid(
                "database.connect_timeout_seconds",
                "must be at least 1",
            ));
        }
        Ok(())
    }
}

/// Which database a URL names. Storage opens connections to it (`store`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    /// The file path.
    Sqlite(String),
    /// The full `postgres://` URL.
    Postgres(String),
}

/// Why a database URL names no backend we have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DatabaseUrlError {
    #[error("database.url: sqlite:// needs a file path")]
    NoSqlitePath,
    #[error("database.url: use sqlite://PATH or postgres://USER@HOST/DB")]
    UnknownScheme,
}

impl Backend {
    pub fn parse(url: &str) -> Result<Backend, DatabaseUrlError> {
        if let Some(path) = url.strip_prefix("sqlite://") {
            if path.is_empty() {
                return Err(DatabaseUrlError::NoSqlitePath);
            }
            return Ok(Backend::Sqlite(path.to_string()));
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(Backend::Postgres(url.to_string()));
        }
        Err(DatabaseUrlError::UnknownScheme)
    }

    /// On PostgreSQL, bounds how long opening a connection may take (libpq waits forever by
    /// default), unless the URL sets `connect_timeout` itself.
    pub fn with_connect_timeout(self, seconds: u64) -> Backend {
        match self {
            Backend::Postgres(url) => match url::Url::parse(&url) {
                Ok(mut u) if !u.query_pairs().any(|(k, _)| k == "connect_timeout") => {
                    u.query_pairs_mut()
                        .append_pair("connect_timeout", &seconds.max(1).to_string());
                    Backend::Postgres(u.to_string())
                }
                _ => Backend::Postgres(url),
            },
            other => other,
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Backend::Sqlite(_) => "sqlite",
            Backend::Postgres(_) => "postgres",
        }
    }
}

/// The URL without a password, for messages: the user-info part and any `password=`
/// parameter are masked, also in forms the URL parser rejects (libpq's multi-host lists).
pub fn redact(url: &str) -> String {
    let mut out = match url.split_once("://") {
        Some((scheme, rest)) => match rest.rsplit_once('@') {
            Some((userinfo, host)) => {
                let user = userinfo.split(':').next().unwrap_or_default();
                format!("{scheme}://{user}:***@{host}")
            }
            None => url.to_string(),
        },
        None => url.to_string(),
    };
    if let Some(i) = out.to_ascii_lowercase().find("password=") {
        let start = i + "password=".len();
        let end = out[start..].find('&').map_or(out.len(), |e| start + e);
        out.replace_range(start..end, "***");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_select_the_backend() {
        assert_eq!(
            Backend::parse("sqlite://a.db").unwrap(),
            Backend::Sqlite("a.db".into())
        );
        assert_eq!(
            Backend::parse("sqlite:///var/lib/a.db").unwrap(),
            Backend::Sqlite("/var/lib/a.db".into())
        );
        assert!(matches!(
            Backend::parse("postgres://u@h/db").unwrap(),
            Backend::Postgres(_)
        ));
        assert!(matches!(
            Backend::parse("postgresql://u@h/db").unwrap(),
            Backend::Postgres(_)
        ));
        assert_eq!(
            Backend::parse("postgres://u@h/db")
                .unwrap()
                .with_connect_timeout(3),
            Backend::Postgres("postgres://u@h/db?connect_timeout=3".into())
        );
        assert_eq!(
            Backend::parse("postgres://u@h/db?sslmode=require&connect_timeout=9")
                .unwrap()
                .with_connect_timeout(3),
            Backend::Postgres("postgres://u@h/db?sslmode=require&connect_timeout=9".into())
        );
        assert!(Backend::parse("mysql://x").is_err());
        assert!(Backend::parse("sqlite://").is_err());
        assert!(Backend::parse("accesskeyd.db").is_err());
    }

    #[test]
    fn urls_in_messages_hide_passwords() {
        assert_eq!(
            redact("postgres://akd:s3cret@db:5432/akd"),
            "postgres://akd:***@db:5432/akd"
        );
        assert_eq!(redact("sqlite://a.db"), "sqlite://a.db");
        assert_eq!(
            redact("postgresql://akd:s3cret@h1:5432,h2:5432/akd?target_session_attrs=read-write"),
            "postgresql://akd:***@h1:5432,h2:5432/akd?target_session_attrs=read-write"
        );
        assert_eq!(
            redact("postgres://db/akd?user=akd&password=s3cret&sslmode=require"),
            "postgres://db/akd?user=akd&password=***&sslmode=require"
        );
    }
}
