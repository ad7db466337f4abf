//! What a serving process runs so that its credential cache may answer: a thread that hears
//! the other processes' revocations (while it cannot, remembered decisions are not used at
//! all) and a background re-check of everything remembered.

use crate::auth_cache::{AuthCache, Fresh, Revoked, Snapshot};
use crate::error::Result;
use crate::revocation::CHANNEL;
use crate::services::Services;
use crate::store::models::{AccessKeyRow, SessionRow};
use crate::store::schema::{access_keys, revocations, sessions};
use crate::store::{user_rows, Backend, DbConn, Store};
use diesel::prelude::*;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

/// The `application_name` of each replica's listening connection (operators and tests find
/// it in `pg_stat_activity`).
pub const LISTENER_NAME: &str = "accesskeyd-revocations";

/// How often the SQLite table is polled, and the PostgreSQL connection read.
const POLL: Duration = Duration::from_millis(50);

/// What a serving process runs to use its credential cache: the thread that hears other
/// processes' announcements and the background re-check. Stop it before the process exits
/// (a thread still inside libpq while the process tears down TLS state can crash the exit).
pub struct Hearing {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
    recheck: tokio::task::JoinHandle<()>,
}

impl Hearing {
    /// Starts both, unless `[credential_cache] enabled = false` (then memory is never used).
    pub fn start(app: &Arc<Services>) -> std::io::Result<Option<Hearing>> {
        if !app.config.credential_cache.enabled {
            return Ok(None);
        }
        let stop = Arc::new(AtomicBool::new(false));
        let weak = Arc::downgrade(&app.auth_cache);
        let store = app.store.clone();
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("revocations".into())
            .spawn(move || match store.backend().clone() {
                Backend::Postgres(url) => listen_postgres(&weak, &url, &flag),
                Backend::Sqlite(_) => poll_sqlite(&weak, &store, &flag),
            })?;
        let recheck = spawn_recheck(
            app,
            Duration::from_secs(app.config.credential_cache.recheck_seconds),
        );
        Ok(Some(Hearing {
            stop,
            thread: Some(thread),
            recheck,
        }))
    }

    /// Stops hearing (the cache stops deciding) and waits for the thread to end.
    pub fn stop(mut self) {
        self.halt();
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::Release);
        self.recheck.abort();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Hearing {
    fn drop(&mut self) {
        self.halt();
    }
}

/// Waits between attempts to reconnect: doubling, at most 5 s.
fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(250u64.saturating_mul(1 << attempt.min(5)).min(5000))
}

fn listen_postgres(weak: &Weak<AuthCache>, url: &str, stop: &AtomicBool) {
    let url = with_application_name(url);
    let mut failures = 0u32;
    while weak.strong_count() > 0 && !stop.load(Ordering::Acquire) {
        match Backend::Postgres(url.clone()).connect() {
            Ok(DbConn::Pg(mut conn)) => {
                if let Err(e) = diesel::sql_query(format!("LISTEN {CHANNEL}")).execute(&mut conn) {
                    tracing::warn!(error = %e, "cannot listen for revocations");
                } else {
                    failures = 0;
                    if let Some(c) = weak.upgrade() {
                        c.set_live(true);
                        tracing::info!("hearing other replicas' revocations; credential cache on");
                    }
                    let lost = pump_postgres(weak, &mut conn, stop);
                    if let Some(c) = weak.upgrade() {
                        c.set_live(false);
                    }
                    match lost {
                        Some(e) => tracing::warn!(
                            error = %e,
                            "lost the revocation listener; every request reads the database until it is back"
                        ),
                        None => return,
                    }
                }
            }
            Ok(_) => return,
            Err(e) => {
                if failures == 0 {
                    tracing::warn!(error = %e, "cannot connect the revocation listener; retrying");
                }
            }
        }
        sleep_unless_stopped(backoff(failures), stop);
        failures = failures.saturating_add(1);
    }
}

/// Sleeps `d`, in short steps so that a stop is seen promptly.
fn sleep_unless_stopped(d: Duration, stop: &AtomicBool) {
    let until = std::time::Instant::now() + d;
    while !stop.load(Ordering::Acquire) {
        let left = until.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return;
        }
        std::thread::sleep(left.min(POLL));
    }
}

/// Applies notifications until the connection fails (`Some(error)`) or the cache is gone.
fn pump_postgres(
    weak: &Weak<AuthCache>,
    conn: &mut diesel::PgConnection,
    stop: &AtomicBool,
) -> Option<String> {
    loop {
        if stop.load(Ordering::Acquire) {
            return None;
        }
        let cache = weak.upgrade()?;
        for n in conn.notifications_iter() {
            match n {
                Ok(n) => cache.forget(&Revoked::decode(&n.payload)),
                Err(e) => return Some(e.to_string()),
            }
        }
        drop(cache);
        std::thread::sleep(POLL);
    }
}

fn with_application_name(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if !u.query_pairs().any(|(k, _)| k == "application_name") => {
            u.query_pairs_mut()
                .append_pair("application_name", LISTENER_NAME);
            u.to_string()
        }
        _ => url.to_string(),
    }
}

fn poll_sqlite(weak: &Weak<AuthCache>, store: &Store, stop: &AtomicBool) {
    let mut last: Option<i64> = None;
    let mut failures = 0u32;
    while let Some(cache) = weak.upgrade().filter(|_| !stop.load(Ordering::Acquire)) {
        let result = store.blocking_read(|conn| {
            let since = match last {
                Some(id) => id,
                None => revocations::table
                    .select(diesel::dsl::max(revocations::id))
                    .first::<Option<i64>>(conn)?
                    .unwrap_or(0),
            };
            let rows: Vec<(i64, String)> = revocations::table
                .filter(revocations::id.gt(since))
                .order(revocations::id.asc())
                .select((revocations::id, revocations::subject))
                .limit(1000)
                .load(conn)?;
            Ok((since, rows))
        });
        match result {
            Ok((since, rows)) => {
                if last.is_none() || failures > 0 {
                    cache.set_live(true);
                    failures = 0;
                }
                last = Some(rows.last().map_or(since, |(id, _)| *id));
                for (_, subject) in rows {
                    cache.forget(&Revoked::decode(&subject));
                }
            }
            Err(e) => {
                if failures == 0 {
                    cache.set_live(false);
                    tracing::warn!(error = %e, "cannot read revocations; every request reads the database until it can");
                }
                failures = failures.saturating_add(1);
            }
        }
        drop(cache);
        let wait = if failures == 0 {
            POLL
        } else {
            backoff(failures)
        };
        sleep_unless_stopped(wait, stop);
    }
}

/// Compares everything remembered with the database every `every`, off the request path,
/// and drops what no longer agrees: the most an entry can lag behind a change whose
/// announcement was missed.
fn spawn_recheck(app: &Arc<Services>, every: Duration) -> tokio::task::JoinHandle<()> {
    let weak = Arc::downgrade(app);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            let Some(app) = weak.upgrade() else {
                return;
            };
            if let Err(e) = recheck(&app).await {
                tracing::warn!(error = %e, "credential cache re-check failed; starting over");
                app.auth_cache.clear();
            }
        }
    })
}

/// One round of the re-check.
pub async fn recheck(app: &Services) -> Result<usize> {
    let Some(snapshot) = app.auth_cache.snapshot() else {
        return Ok(0);
    };
    if snapshot.key_ids.is_empty()
        && snapshot.session_hashes.is_empty()
        && snapshot.user_ids.is_empty()
    {
        return Ok(0);
    }
    let config = app.config.clone();
    let (snapshot, fresh) = app
        .store
        .read(move |conn| {
            let fresh = read_fresh(conn, &snapshot, &config)?;
            Ok((snapshot, fresh))
        })
        .await?;
    let dropped = app.auth_cache.apply_recheck(&snapshot, &fresh);
    if dropped > 0 {
        tracing::info!(
            dropped,
            "credential cache re-check dropped entries the database no longer agrees with"
        );
    }
    Ok(dropped)
}

/// Rows for a snapshot, in bounded `IN` lists.
fn read_fresh(
    conn: &mut DbConn,
    snapshot: &Snapshot,
    config: &crate::config::Config,
) -> Result<Fresh> {
    const CHUNK: usize = 500;
    let mut fresh = Fresh {
        rules: crate::options::RuntimeOptions::load(conn, config)?.key_rules(),
        ..Fresh::default()
    };
    for chunk in snapshot.key_ids.chunks(CHUNK) {
        fresh.keys.extend(
            access_keys::table
                .filter(access_keys::key_id.eq_any(chunk))
                .select(AccessKeyRow::as_select())
                .load(conn)?,
        );
    }
    let hashes: Vec<String> = snapshot.session_hashes.iter().map(hex::encode).collect();
    for chunk in hashes.chunks(CHUNK) {
        fresh.sessions.extend(
            sessions::table
                .filter(sessions::token_hash.eq_any(chunk))
                .select(SessionRow::as_select())
                .load(conn)?,
        );
    }
    for chunk in snapshot.user_ids.chunks(CHUNK) {
        fresh.users.extend(user_rows::by_ids(conn, chunk)?);
    }
    Ok(fresh)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listener_connections_are_named() {
        assert_eq!(
            with_application_name("postgres://u@h/db"),
            "postgres://u@h/db?application_name=accesskeyd-revocations"
        );
        assert_eq!(
            with_application_name("postgres://u@h/db?application_name=x"),
            "postgres://u@h/db?application_name=x"
        );
    }

    #[test]
    fn backoff_grows_and_is_bounded() {
        assert_eq!(backoff(0), Duration::from_millis(250));
        assert_eq!(backoff(1), Duration::from_millis(500));
        assert_eq!(backoff(30), Duration::from_millis(5000));
    }
}
