//! The status of a directory sync run, as the `sync_runs.status` column stores it.

use diesel::backend::Backend;
use diesel::deserialize::{self, FromSql, FromSqlRow};
use diesel::expression::AsExpression;
use diesel::serialize::{self, Output, ToSql};
use diesel::sql_types::Text;
use std::fmt;
use std::str::FromStr;

/// Where a sync run stands. The stored strings are also what the API, the web pages, the
/// CLI and the metrics labels show, so they never change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, AsExpression, FromSqlRow)]
#[diesel(sql_type = Text)]
pub enum RunStatus {
    /// Started and not yet finished (at most one per directory: a partial unique index).
    Running,
    /// Finished and applied.
    Ok,
    /// Finished as a dry run: decided, nothing changed.
    DryRun,
    /// Stopped before removing anyone until an admin approves.
    Blocked,
    /// The read or the apply failed (or its process died): nothing changed.
    Failed,
}

impl RunStatus {
    pub const ALL: [RunStatus; 5] = [
        RunStatus::Running,
        RunStatus::Ok,
        RunStatus::DryRun,
        RunStatus::Blocked,
        RunStatus::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Ok => "ok",
            RunStatus::DryRun => "dry-run",
            RunStatus::Blocked => "blocked",
            RunStatus::Failed => "failed",
        }
    }
}

impl fmt::Display for RunStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A stored status this version does not know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownRunStatus(pub String);

impl fmt::Display for UnknownRunStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown sync run status `{}`", self.0)
    }
}

impl std::error::Error for UnknownRunStatus {}

impl FromStr for RunStatus {
    type Err = UnknownRunStatus;

    fn from_str(s: &str) -> Result<RunStatus, UnknownRunStatus> {
        RunStatus::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| UnknownRunStatus(s.to_string()))
    }
}

impl serde::Serialize for RunStatus {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

// Generic over the backend so the same impls serve SQLite, PostgreSQL and the
// multi-backend `DbConn` built from them.
impl<DB: Backend> ToSql<Text, DB> for RunStatus
where
    str: ToSql<Text, DB>,
{
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, DB>) -> serialize::Result {
        self.as_str().to_sql(out)
    }
}

impl<DB: Backend> FromSql<Text, DB> for RunStatus
where
    String: FromSql<Text, DB>,
{
    fn from_sql(bytes: DB::RawValue<'_>) -> deserialize::Result<Self> {
        // Every status ever written is a variant (migrations add none of their own), so an
        // unknown one is a damaged row, not an old one.
        Ok(String::from_sql(bytes)?.parse()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_round_trips_through_its_string() {
        for v in RunStatus::ALL {
            assert_eq!(v.as_str().parse::<RunStatus>(), Ok(v));
            assert_eq!(v.to_string(), v.as_str());
            assert_eq!(
                serde_json::to_value(v).ok(),
                Some(serde_json::Value::from(v.as_str()))
            );
        }
    }

    #[test]
    fn the_stored_strings_stay_as_they_were() {
        let strings: Vec<&str> = RunStatus::ALL.iter().map(|v| v.as_str()).collect();
        assert_eq!(strings, ["running", "ok", "dry-run", "blocked", "failed"]);
    }

    #[test]
    fn an_unknown_status_is_refused() {
        for s in ["", "OK", "dry_run", "approval", "done"] {
            assert_eq!(s.parse::<RunStatus>(), Err(UnknownRunStatus(s.to_string())));
        }
    }

    #[test]
    fn the_column_stores_every_status_and_refuses_an_unknown_one() {
        use crate::store::schema::sync_runs;
        use crate::store::{run_migrations, Backend, DbConn};
        use diesel::prelude::*;

        // Through the multi-backend connection, as the service reads and writes it.
        let mut conn: DbConn = Backend::Sqlite(":memory:".into())
            .connect()
            .expect("open SQLite");
        run_migrations(&mut conn).expect("migrate");
        for (i, v) in RunStatus::ALL.into_iter().enumerate() {
            diesel::insert_into(sync_runs::table)
                .values((
                    // One directory each: a directory has at most one running run.
                    sync_runs::directory_id.eq(format!("d{i}")),
                    sync_runs::started_at.eq(0_i64),
                    sync_runs::dry_run.eq(false),
                    sync_runs::run_trigger.eq("cli"),
                    sync_runs::replica.eq("r"),
                    sync_runs::status.eq(v),
                ))
                .execute(&mut conn)
                .expect("insert");
        }
        let stored: Vec<String> = diesel::sql_query("SELECT status FROM sync_runs ORDER BY id")
            .load::<StatusText>(&mut conn)
            .expect("read as text")
            .into_iter()
            .map(|r| r.status)
            .collect();
        let expected: Vec<&str> = RunStatus::ALL.iter().map(|v| v.as_str()).collect();
        assert_eq!(stored, expected);
        let read: Vec<RunStatus> = sync_runs::table
            .order(sync_runs::id)
            .select(sync_runs::status)
            .load(&mut conn)
            .expect("read");
        assert_eq!(read, RunStatus::ALL);
        let found: Vec<RunStatus> = sync_runs::table
            .filter(sync_runs::status.eq(RunStatus::Blocked))
            .select(sync_runs::status)
            .load(&mut conn)
            .expect("filter");
        assert_eq!(found, [RunStatus::Blocked]);

        diesel::sql_query("UPDATE sync_runs SET status = 'done' WHERE directory_id = 'd1'")
            .execute(&mut conn)
            .expect("damage a row");
        let damaged = sync_runs::table
            .select(sync_runs::status)
            .load::<RunStatus>(&mut conn);
        assert!(damaged.is_err(), "an unknown stored status must not load");
    }

    #[derive(diesel::QueryableByName)]
    struct StatusText {
        #[diesel(sql_type = Text)]
        status: String,
    }
}
