//! Storage: one code path over SQLite (embedded default) and PostgreSQL (several replicas),
//! with the pool, embedded migrations per backend, schema and row types. All database work
//! runs on blocking threads through [`Store::read`] and [`Store::write`].

pub mod backup;
pub mod key_columns;
pub mod key_rows;
pub mod models;
pub mod run_status;
pub mod schema;
pub mod timestamp;
pub mod user_rows;

use crate::config::DatabaseConfig;
use crate::error::{Error, Result};
use diesel::connection::{AnsiTransactionManager, SimpleConnection, TransactionManager};
use diesel::pg::PgConnection;
use diesel::r2d2::{ManageConnection, Pool, R2D2Connection};
use diesel::sqlite::SqliteConnection;
use diesel::{Connection, RunQueryDsl};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};
use std::time::Duration;

pub const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
pub const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");

/// Advisory-lock key that serialises migrations across replicas ("akd-migr").
const MIGRATION_LOCK: i64 = 0x616b_642d_6d69_6772;

/// The connection every query is written against: diesel's multi-backend connection, so
/// each query is written once and runs on both backends.
#[derive(diesel::MultiConnection)]
pub enum DbConn {
    Sqlite(SqliteConnection),
    Pg(PgConnection),
}

// The URL's kind is configuration (`crate::config::Backend`); opening a connection to it
// is storage's, so that half of its methods lives here.
pub use crate::config::Backend;

impl Backend {
    /// Opens one connection, configured for our use.
    pub fn connect(&self) -> std::result::Result<DbConn, diesel::ConnectionError> {
        match self {
            Backend::Sqlite(path) => {
                let mut conn = SqliteConnection::establish(path)?;
                // busy_timeout first: it makes this connection wait for locks instead of
                // failing at once, also for the journal_mode switch. WAL lets readers proceed
                // while one writer writes; foreign keys make deletes cascade.
                conn.batch_execute(
                    "PRAGMA busy_timeout = 5000; PRAGMA foreign_keys = ON; \
                     PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;",
                )
                .map_err(diesel::ConnectionError::CouldntSetupConfiguration)?;
                Ok(DbConn::Sqlite(conn))
            }
            Backend::Postgres(url) => Ok(DbConn::Pg(PgConnection::establish(url)?)),
        }
    }
}

/// Builds pooled connections from a [`Backend`] (diesel's own manager would try each backend
/// in turn, and SQLite accepts any string as a file name).
#[derive(Debug, Clone)]
pub struct Manager(Backend);

impl ManageConnection for Manager {
    type Connection = DbConn;
    type Error = diesel::r2d2::Error;

    fn connect(&self) -> std::result::Result<DbConn, Self::Error> {
        self.0
            .connect()
            .map_err(diesel::r2d2::Error::ConnectionError)
    }

    fn is_valid(&self, conn: &mut DbConn) -> std::result::Result<(), Self::Error> {
        conn.ping().map_err(diesel::r2d2::Error::QueryError)
    }

    fn has_broken(&self, conn: &mut DbConn) -> bool {
        conn.is_broken()
    }
}

/// Runs `f` in a transaction. On SQLite it takes the write lock up front (BEGIN IMMEDIATE), so
/// check-then-write sequences cannot race and writers queue on busy_timeout instead of failing
/// when a read lock would have to be upgraded.
pub fn write_transaction<T>(
    conn: &mut DbConn,
    f: impl FnOnce(&mut DbConn) -> Result<T>,
) -> Result<T> {
    match conn {
        DbConn::Pg(_) => conn.transaction(f),
        DbConn::Sqlite(inner) => {
            AnsiTransactionManager::begin_transaction_sql(inner, "BEGIN IMMEDIATE")?;
            end_transaction(conn, f)
        }
    }
}

/// Runs read-only work that sees one snapshot of the database from its first statement to
/// its end, however many statements it takes: PostgreSQL's REPEATABLE READ (READ COMMITTED
/// would take a new snapshot per statement); on SQLite a deferred transaction keeps the
/// snapshot its first read took.
pub fn snapshot_transaction<T>(
    conn: &mut DbConn,
    f: impl FnOnce(&mut DbConn) -> Result<T>,
) -> Result<T> {
    match conn {
        DbConn::Pg(inner) => AnsiTransactionManager::begin_transaction_sql(
            inner,
            "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
        )?,
        DbConn::Sqlite(inner) => AnsiTransactionManager::begin_transaction_sql(inner, "BEGIN")?,
    }
    end_transaction(conn, f)
}

/// Runs `f` in the transaction just begun: commits when it succeeds, rolls back when not.
fn end_transaction<T>(conn: &mut DbConn, f: impl FnOnce(&mut DbConn) -> Result<T>) -> Result<T> {
    match f(conn) {
        Ok(value) => {
            <DbConn as Connection>::TransactionManager::commit_transaction(conn)?;
            Ok(value)
        }
        Err(e) => {
            if let Err(rollback) =
                <DbConn as Connection>::TransactionManager::rollback_transaction(conn)
            {
                tracing::warn!(error = %rollback, "rollback failed");
            }
            Err(e)
        }
    }
}

/// Applies pending migrations on one connection. On PostgreSQL an advisory lock makes
/// replicas that start (or run `accesskeyd migrate`) together take turns.
pub fn run_migrations(conn: &mut DbConn) -> Result<Vec<String>> {
    let failed = |e: Box<dyn std::error::Error + Send + Sync>| {
        Error::Internal(format!("migration failed: {e}"))
    };
    let names = |v: Vec<diesel::migration::MigrationVersion<'_>>| {
        v.iter().map(|m| m.to_string()).collect::<Vec<_>>()
    };
    match conn {
        DbConn::Sqlite(c) => c
            .run_pending_migrations(SQLITE_MIGRATIONS)
            .map(names)
            .map_err(failed),
        DbConn::Pg(c) => {
            diesel::sql_query(format!("SELECT pg_advisory_lock({MIGRATION_LOCK})")).execute(c)?;
            let result = c
                .run_pending_migrations(POSTGRES_MIGRATIONS)
                .map(names)
                .map_err(failed);
            diesel::sql_query(format!("SELECT pg_advisory_unlock({MIGRATION_LOCK})")).execute(c)?;
            result
        }
    }
}

fn pending_migrations(conn: &mut DbConn) -> Result<bool> {
    let r = match conn {
        DbConn::Sqlite(c) => c.has_pending_migration(SQLITE_MIGRATIONS),
        DbConn::Pg(c) => c.has_pending_migration(POSTGRES_MIGRATIONS),
    };
    r.map_err(|e| {
        Error::outage(
            crate::error::DATABASE_UNAVAILABLE,
            format!("cannot read migrations: {e}"),
        )
    })
}

#[derive(Clone)]
pub struct Store {
    backend: Backend,
    pool: Pool<Manager>,
}

impl Store {
    /// Opens the pool. Does not migrate. Connections are made lazily; a database that goes
    /// away later gives 503s until it is back (`serve` itself migrates first, so it needs the
    /// database to start).
    pub fn open(cfg: &DatabaseConfig) -> Result<Store> {
        let backend = Backend::parse(&cfg.url)
            .map_err(|e| Error::invalid(e.to_string()))?
            .with_connect_timeout(cfg.connect_timeout_seconds);
        let pool = Pool::builder()
            .max_size(cfg.pool_size)
            .min_idle(Some(0))
            .connection_timeout(Duration::from_secs(cfg.connect_timeout_seconds.max(1)))
            .build_unchecked(Manager(backend.clone()));
        Ok(Store { backend, pool })
    }

    pub fn backend(&self) -> &Backend {
        &self.backend
    }

    /// Applies pending migrations; returns the names of those applied.
    pub async fn migrate(&self) -> Result<Vec<String>> {
        self.with_conn(run_migrations).await
    }

    /// Ready = reachable and fully migrated.
    pub async fn ready(&self) -> Result<()> {
        self.with_conn(|conn| {
            if pending_migrations(conn)? {
                return Err(Error::unavailable("database migrations are pending"));
            }
            Ok(())
        })
        .await
    }

    async fn with_conn<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut DbConn) -> Result<T> + Send + 'static,
    {
        let pool = self.pool.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = pool.get()?;
            f(&mut conn)
        })
        .await
        .map_err(|e| Error::Internal(format!("database task failed: {e}")))?
    }

    /// Runs work on a pooled connection on the calling thread (background threads only).
    pub fn blocking_read<T>(&self, f: impl FnOnce(&mut DbConn) -> Result<T>) -> Result<T> {
        let mut conn = self.pool.get()?;
        f(&mut conn)
    }

    /// Runs read-only work on a pooled connection off the async threads.
    pub async fn read<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut DbConn) -> Result<T> + Send + 'static,
    {
        self.with_conn(f).await
    }

    /// Runs a state change in one transaction: all of it happens or none.
    pub async fn write<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut DbConn) -> Result<T> + Send + 'static,
    {
        self.with_conn(|conn| write_transaction(conn, f)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use diesel::sql_types::BigInt;

    fn count(conn: &mut DbConn, table: &str) -> i64 {
        diesel::select(diesel::dsl::sql::<BigInt>(&format!(
            "(SELECT count(*) FROM {table})"
        )))
        .get_result(conn)
        .unwrap()
    }

    /// A row written by another connection between two statements of a snapshot
    /// transaction is not seen by the second statement, and is seen after it ends.
    fn keeps_one_snapshot(backend: Backend, table: &str) {
        let mut reader = backend.connect().unwrap();
        let mut writer = backend.connect().unwrap();
        writer
            .batch_execute(&format!(
                "DROP TABLE IF EXISTS {table}; CREATE TABLE {table} (x BIGINT); INSERT INTO {table} VALUES (1);"
            ))
            .unwrap();
        let (first, second) = snapshot_transaction(&mut reader, |conn| {
            let first = count(conn, table);
            writer
                .batch_execute(&format!("INSERT INTO {table} VALUES (2)"))
                .unwrap();
            Ok((first, count(conn, table)))
        })
        .unwrap();
        assert_eq!((first, second), (1, 1), "one snapshot throughout");
        assert_eq!(count(&mut reader, table), 2, "a new snapshot afterwards");
        writer
            .batch_execute(&format!("DROP TABLE {table}"))
            .unwrap();
    }

    #[test]
    fn a_snapshot_transaction_reads_one_snapshot_on_sqlite() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("snap.db").to_string_lossy().into_owned();
        keeps_one_snapshot(Backend::Sqlite(path), "snapshot_probe");
    }

    /// On the suite's PostgreSQL server when one is named (CI names it).
    #[test]
    fn a_snapshot_transaction_reads_one_snapshot_on_postgres() {
        let Ok(url) = std::env::var("ACCESSKEYD_TEST_POSTGRES_URL") else {
            eprintln!("ACCESSKEYD_TEST_POSTGRES_URL not set: PostgreSQL not checked");
            return;
        };
        let table = format!("snapshot_probe_{}", std::process::id());
        keeps_one_snapshot(Backend::Postgres(url), &table);
    }
}
