//! Who runs the scheduled jobs. On PostgreSQL exactly one replica at a time runs them: the
//! one whose dedicated connection holds an advisory lock. The jobs run on that very
//! connection, so a job can only run while its replica holds the lock; when the replica dies
//! PostgreSQL ends its session, frees the lock, and another replica takes over at its next
//! tick. On SQLite there is one process and it always leads.

use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::store::schema::job_runs;
use crate::store::timestamp::Timestamp;
use crate::store::{Backend, DbConn};
use diesel::prelude::*;
use diesel::sql_types::Bool;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

/// Advisory-lock key of job leadership ("akd-jobs").
const LEADER_LOCK: i64 = 0x616b_642d_6a6f_6273;

#[derive(QueryableByName)]
struct Locked {
    #[diesel(sql_type = Bool)]
    locked: bool,
}

/// This replica's claim to run the scheduled jobs.
pub struct Leadership {
    backend: Backend,
    replica: String,
    conn: Mutex<Option<DbConn>>,
    leader: AtomicBool,
}

impl Leadership {
    pub fn new(backend: Backend, replica: String) -> Leadership {
        Leadership {
            backend,
            replica,
            conn: Mutex::new(None),
            leader: AtomicBool::new(false),
        }
    }

    pub fn is_leader(&self) -> bool {
        self.leader.load(Ordering::Relaxed)
    }

    pub fn replica(&self) -> &str {
        &self.replica
    }

    fn lose(&self, conn: &mut Option<DbConn>, why: &str) {
        if self.leader.swap(false, Ordering::Relaxed) {
            tracing::warn!(replica = %self.replica, reason = why, "lost job leadership");
        }
        // Dropping the connection ends the session, which frees the lock if it still held it.
        *conn = None;
    }

    /// Takes the lead if it is free (or keeps it) and says whether this replica leads.
    pub fn claim_blocking(&self) -> Result<bool> {
        let mut guard = self
            .conn
            .lock()
            .map_err(|_| Error::Internal("leadership lock poisoned".into()))?;
        self.claim(&mut guard)
    }

    fn claim(&self, guard: &mut Option<DbConn>) -> Result<bool> {
        if guard.is_none() {
            let conn = self.backend.connect().map_err(|e| {
                Error::outage(
                    crate::error::DATABASE_UNAVAILABLE,
                    format!("cannot connect for scheduled jobs: {e}"),
                )
            })?;
            *guard = Some(conn);
        }
        if self.is_leader() {
            return Ok(true);
        }
        let got = match guard.as_mut() {
            None => false,
            Some(DbConn::Sqlite(_)) => true,
            Some(DbConn::Pg(pg)) => {
                match diesel::sql_query(format!(
                    "SELECT pg_try_advisory_lock({LEADER_LOCK}) AS locked"
                ))
                .get_result::<Locked>(pg)
                {
                    Ok(l) => l.locked,
                    Err(e) => {
                        self.lose(guard, "connection failed");
                        return Err(e.into());
                    }
                }
            }
        };
        if got {
            self.leader.store(true, Ordering::Relaxed);
            tracing::info!(replica = %self.replica, backend = self.backend.name(), "this replica now runs the scheduled jobs");
        }
        Ok(got)
    }

    /// Runs `job` if this replica leads (taking the lead if it is free), records the run in
    /// `job_runs`, and returns the job's detail; `Ok(None)` when another replica leads.
    pub fn run_blocking(
        &self,
        name: &str,
        clock: &dyn Clock,
        job: impl FnOnce(&mut DbConn) -> Result<String>,
    ) -> Result<Option<String>> {
        let mut guard = self
            .conn
            .lock()
            .map_err(|_| Error::Internal("leadership lock poisoned".into()))?;
        if !self.claim(&mut guard)? {
            return Ok(None);
        }
        let Some(conn) = guard.as_mut() else {
            return Ok(None);
        };
        let started = clock.now();
        let result = job(conn);
        let finished = clock.now();
        let (outcome, detail) = match &result {
            Ok(d) => ("success", d.clone()),
            Err(e) => ("failure", e.to_string()),
        };
        let recorded = diesel::insert_into(job_runs::table)
            .values((
                job_runs::job.eq(name),
                job_runs::replica.eq(&self.replica),
                job_runs::started_at.eq(Timestamp::from(started)),
                job_runs::finished_at.eq(Some(Timestamp::from(finished))),
                job_runs::outcome.eq(Some(outcome)),
                job_runs::detail.eq(Some(&detail)),
            ))
            .execute(conn);
        if result.is_err() || recorded.is_err() {
            // A failed job or record may mean the connection (and so the lock) is gone; start
            // over with a new connection and a new claim at the next tick.
            self.lose(&mut guard, "a job or its record failed");
        }
        result.map(Some)
    }
}
