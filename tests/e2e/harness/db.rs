//! The database a test daemon uses: an SQLite file in the test's temp dir, or, when the suite
//! runs on PostgreSQL (`ACCESSKEYD_TEST_BACKEND=postgres`), a fresh database on the server
//! named by `ACCESSKEYD_TEST_POSTGRES_URL`, dropped when the test ends (also on failure).

#![allow(dead_code)]

use diesel::{Connection, PgConnection, RunQueryDsl};
use std::path::Path;

pub const BACKEND_VAR: &str = "ACCESSKEYD_TEST_BACKEND";
pub const POSTGRES_URL_VAR: &str = "ACCESSKEYD_TEST_POSTGRES_URL";

/// Is this run of the suite on PostgreSQL?
pub fn on_postgres() -> bool {
    match std::env::var(BACKEND_VAR).as_deref() {
        Ok("postgres") => true,
        Ok("sqlite") | Err(_) => false,
        Ok(other) => panic!("{BACKEND_VAR}={other}: use sqlite or postgres"),
    }
}

/// The server URL; a PostgreSQL run without it fails rather than skipping.
pub fn postgres_server_url() -> String {
    std::env::var(POSTGRES_URL_VAR).unwrap_or_else(|_| {
        panic!("{POSTGRES_URL_VAR} must name a PostgreSQL server (e.g. postgres://postgres@127.0.0.1:5432/postgres)")
    })
}

/// A fresh PostgreSQL database, dropped on drop.
pub struct PgDatabase {
    server: String,
    pub name: String,
    pub url: String,
}

impl PgDatabase {
    pub fn create() -> PgDatabase {
        let server = postgres_server_url();
        let name = format!(
            "akd_test_{}",
            &uuid::Uuid::new_v4().simple().to_string()[..12]
        );
        let mut admin = PgConnection::establish(&server)
            .unwrap_or_else(|e| panic!("cannot reach PostgreSQL at {server}: {e}"));
        diesel::sql_query(format!("CREATE DATABASE \"{name}\""))
            .execute(&mut admin)
            .expect("create test database");
        let mut url = url::Url::parse(&server).expect("server URL");
        url.set_path(&format!("/{name}"));
        PgDatabase {
            server,
            name,
            url: url.to_string(),
        }
    }

    /// Runs SQL on the server's admin database (e.g. to terminate our connections).
    pub fn admin_sql(&self, sql: &str) {
        let mut admin = PgConnection::establish(&self.server).expect("admin connection");
        diesel::sql_query(sql)
            .execute(&mut admin)
            .expect("admin SQL");
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        if let Ok(mut admin) = PgConnection::establish(&self.server) {
            let _ = diesel::sql_query(format!(
                "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
                self.name
            ))
            .execute(&mut admin);
        }
    }
}

/// The database of one test daemon.
pub enum TestDatabase {
    Sqlite(String),
    Postgres(PgDatabase),
}

impl TestDatabase {
    /// SQLite in `dir`, or a fresh PostgreSQL database when the suite runs on PostgreSQL.
    pub fn new(dir: &Path) -> TestDatabase {
        if on_postgres() {
            TestDatabase::Postgres(PgDatabase::create())
        } else {
            TestDatabase::Sqlite(format!("sqlite://{}/accesskeyd.db", dir.display()))
        }
    }

    pub fn url(&self) -> &str {
        match self {
            TestDatabase::Sqlite(u) => u,
            TestDatabase::Postgres(p) => &p.url,
        }
    }
}
