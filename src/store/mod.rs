//! Storage: the connection pool, embedded migrations, schema and row types. All database work
//! runs on blocking threads through [`Store::read`] and [`Store::write`].

pub mod models;
pub mod schema;

use crate::config::DatabaseConfig;
use crate::error::{Error, Result};
use diesel::connection::SimpleConnection;
use diesel::r2d2::{ConnectionManager, CustomizeConnection, Pool};
use diesel::sqlite::SqliteConnection;
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};
use std::time::Duration;

pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");

/// The connection type every query is written against. PostgreSQL slots in here as a
/// diesel `MultiConnection` enum; the queries use only portable DSL.
pub type DbConn = SqliteConnection;

#[derive(Debug)]
struct SqlitePragmas;

impl CustomizeConnection<SqliteConnection, diesel::r2d2::Error> for SqlitePragmas {
    fn on_acquire(
        &self,
        conn: &mut SqliteConnection,
    ) -> std::result::Result<(), diesel::r2d2::Error> {
        // busy_timeout first: it makes this connection wait for locks instead of failing at
        // once, also for the journal_mode switch below. WAL lets readers proceed while one
        // writer writes; foreign keys make deletes cascade.
        conn.batch_execute(
            "PRAGMA busy_timeout = 5000; PRAGMA foreign_keys = ON; \
             PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;",
        )
        .map_err(diesel::r2d2::Error::QueryError)
    }
}

#[derive(Clone)]
pub struct Store {
    pool: Pool<ConnectionManager<DbConn>>,
}

impl Store {
    /// Opens the pool (creating the SQLite file if needed). Does not migrate.
    pub fn open(cfg: &DatabaseConfig) -> Result<Store> {
        let path = cfg
            .url
            .strip_prefix("sqlite://")
            .ok_or_else(|| Error::invalid("database.url: expected sqlite://PATH"))?;
        let manager = ConnectionManager::<DbConn>::new(path);
        let pool = Pool::builder()
            .max_size(cfg.pool_size)
            .connection_timeout(Duration::from_secs(cfg.connect_timeout_seconds.max(1)))
            .connection_customizer(Box::new(SqlitePragmas))
            .build(manager)
            .map_err(|e| Error::Unavailable(format!("cannot open the database {path}: {e}")))?;
        Ok(Store { pool })
    }

    /// Applies pending migrations; returns the names of those applied.
    pub async fn migrate(&self) -> Result<Vec<String>> {
        self.with_conn(|conn| {
            conn.run_pending_migrations(MIGRATIONS)
                .map(|v| v.iter().map(|m| m.to_string()).collect())
                .map_err(|e| Error::Internal(format!("migration failed: {e}")))
        })
        .await
    }

    /// Ready = reachable and fully migrated.
    pub async fn ready(&self) -> Result<()> {
        self.with_conn(|conn| {
            let pending = conn
                .has_pending_migration(MIGRATIONS)
                .map_err(|e| Error::Unavailable(format!("cannot read migrations: {e}")))?;
            if pending {
                return Err(Error::Unavailable("database migrations are pending".into()));
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

    /// Runs read-only work on a pooled connection off the async threads.
    pub async fn read<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut DbConn) -> Result<T> + Send + 'static,
    {
        self.with_conn(f).await
    }

    /// Runs a state change in one transaction: all of it happens or none. On SQLite the
    /// transaction takes the write lock up front (IMMEDIATE), so check-then-insert sequences
    /// such as the per-user key limit cannot race.
    pub async fn write<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut DbConn) -> Result<T> + Send + 'static,
    {
        self.with_conn(|conn| conn.immediate_transaction(f)).await
    }
}
