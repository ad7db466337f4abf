//! Scheduled jobs: what each does and when it runs. Only the replica that leads runs them
//! (`leadership`).

use crate::app::App;
use crate::error::{Error, Result};
use crate::ids::DirectoryId;
use crate::store::schema::job_runs;
use crate::store::timestamp::Timestamp;
use crate::store::DbConn;
use chrono::Duration as Span;
use diesel::prelude::*;
use std::sync::Arc;
use std::time::Duration;

/// Job runs older than this are removed by the cleanup job.
const KEEP_JOB_RUNS_DAYS: i64 = 7;

/// Expired sessions and old job records go (expired sessions are refused at lookup anyway;
/// this keeps the tables small), and so do users deprovisioned through SCIM whose grace in
/// `scim_graces` (directory, grace) has ended, and the records of warnings whose lapse has
/// passed (a lapse in the past can never be due again).
pub fn cleanup(
    conn: &mut DbConn,
    now: chrono::DateTime<chrono::Utc>,
    scim_graces: &[(DirectoryId, Span)],
) -> Result<String> {
    let sessions = crate::sessions::remove_expired(conn, now)?;
    let cutoff = Timestamp::from(now - Span::days(KEEP_JOB_RUNS_DAYS));
    let runs =
        diesel::delete(job_runs::table.filter(job_runs::started_at.lt(cutoff))).execute(conn)?;
    let mut users = 0;
    for (dir, grace) in scim_graces {
        users += crate::scim::remove_expired_in(conn, dir, *grace, now)?.len();
    }
    crate::signals::state::prune(conn, now)?;
    diesel::delete(crate::store::schema::key_warnings::table.filter(
        crate::store::schema::key_warnings::lapse_at.lt(Timestamp::from(now - Span::days(1))),
    ))
    .execute(conn)?;
    Ok(format!(
        "removed {sessions} expired session(s), {runs} old job record(s) and {users} deprovisioned user(s)"
    ))
}

/// Audit events past `[audit] retention_days`, announcements of revocations no process
/// still needs and days of key use older than `key_usage::KEEP_DAYS` go (inside the
/// cleanup job's connection).
pub fn prune_history(
    conn: &mut DbConn,
    now: chrono::DateTime<chrono::Utc>,
    audit_days: u64,
) -> Result<String> {
    let events = crate::audit::prune(conn, now, audit_days)?;
    let revocations = crate::revocation::prune(conn, now)?;
    let days = crate::key_usage::prune(conn, now)?;
    Ok(format!(
        "removed {events} audit event(s) past retention, {revocations} old revocation notice(s) \
         and {days} old day(s) of key use"
    ))
}

/// Every OpenID Connect directory with its SCIM deprovisioning grace.
pub fn scim_graces(app: &App) -> Vec<(DirectoryId, Span)> {
    app.directories
        .iter()
        .filter_map(|d| match d {
            // Grace 0 included; it removes nobody (an inactive user stays until DELETE).
            crate::directory::Directory::Oidc(o) => Some((
                o.config().id.clone(),
                Span::hours(i64::try_from(o.config().removal_grace_hours).unwrap_or(0)),
            )),
            _ => None,
        })
        .collect()
}

/// Runs the cleanup job every `sessions.cleanup_interval_seconds` on the leading replica.
pub fn spawn_session_cleanup(app: Arc<App>) -> tokio::task::JoinHandle<()> {
    let every = Duration::from_secs(app.config.sessions.cleanup_interval_seconds.max(1));
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let a = app.clone();
            let audit_days = app.config.audit.retention_days;
            let outcome = tokio::task::spawn_blocking(move || {
                let now = a.clock.now();
                let graces = scim_graces(&a);
                let result =
                    a.leadership
                        .run_blocking("session-cleanup", a.clock.as_ref(), |conn| {
                            let done = cleanup(conn, now, &graces)?;
                            let history = prune_history(conn, now, audit_days)?;
                            Ok(format!("{done}; {history}"))
                        });
                // Removals announced themselves; this process hears its own announcements.
                result
            })
            .await;
            match outcome {
                Ok(Ok(Some(detail))) => tracing::debug!(%detail, "session cleanup"),
                Ok(Ok(None)) => {}
                Ok(Err(e)) => tracing::warn!(error = %e, "session cleanup failed"),
                Err(e) => tracing::error!(error = %e, "session cleanup task failed"),
            }
        }
    })
}

/// Writes what the throttle refused with 429 since the last call as one audit event per
/// client address (a flood of refusals costs a bounded number of rows, none of them per
/// request). Every process does this for its own throttle.
pub async fn summarize_refusals(app: &App) -> Result<usize> {
    let refusals = app.throttle.take_refusals();
    if refusals.is_empty() {
        return Ok(0);
    }
    let n = refusals.len();
    let now = app.clock.now();
    app.store
        .write(move |conn| {
            for r in &refusals {
                let actor = crate::audit::Actor {
                    remote_addr: r.addr.map(|a| a.to_string()),
                    ..crate::audit::Actor::system("throttle")
                };
                crate::audit::record(
                    conn,
                    now,
                    &crate::audit::Event::new("login.throttled", &actor)
                        .failed()
                        .detail(format!(
                            "{} attempt(s) from {} refused with 429 between {} and {}",
                            r.count,
                            r.addr
                                .map_or("other addresses".to_string(), |a| a.to_string()),
                            r.first.to_rfc3339(),
                            r.last.to_rfc3339()
                        )),
                )?;
            }
            Ok(())
        })
        .await?;
    Ok(n)
}

/// Summarises the throttle's refusals once per throttle window, on every replica.
pub fn spawn_refusal_summary(app: Arc<App>) -> tokio::task::JoinHandle<()> {
    let every = Duration::from_secs(app.config.login_throttle.window_seconds.clamp(1, 3600));
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(e) = summarize_refusals(&app).await {
                tracing::warn!(error = %e, "could not record the throttle's refusals");
            }
        }
    })
}

/// How often each replica adds its key uses to today's row.
const KEY_USE_FLUSH_EVERY: Duration = Duration::from_secs(60);

/// The key-use tally of this process, shared by the minute's flush and the one at shutdown.
pub type KeyUseTally = Arc<tokio::sync::Mutex<crate::key_usage::Tally>>;

/// Adds this replica's key uses to `key_use_days` every minute, on every replica (each
/// counts its own requests). The tally it returns is what `flush_key_uses` writes at
/// shutdown.
pub fn spawn_key_use_days(app: Arc<App>) -> (tokio::task::JoinHandle<()>, KeyUseTally) {
    let tally: KeyUseTally = Arc::new(tokio::sync::Mutex::new(crate::key_usage::Tally::from(
        crate::key_usage::requests(&app.metrics),
    )));
    let shared = tally.clone();
    let handle = tokio::spawn(async move {
        let mut tick = tokio::time::interval(KEY_USE_FLUSH_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The first tick is at once; nothing has been counted yet.
        tick.tick().await;
        loop {
            tick.tick().await;
            flush_key_uses(&app, &shared).await;
        }
    });
    (handle, tally)
}

/// Writes the key uses counted since the last flush; a failure is logged and the uses are
/// written with the next flush.
pub async fn flush_key_uses(app: &App, tally: &KeyUseTally) {
    if let Err(e) = crate::key_usage::flush(app, tally).await {
        tracing::warn!(error = %e, "could not add the key uses to today's count");
    }
}

/// Runs each LDAP directory's sync on its cron schedule, on the leading replica only. A run
/// already going (started by hand, or by another replica) makes the tick a no-op.
pub fn spawn_sync_schedulers(app: Arc<App>) -> Vec<tokio::task::JoinHandle<()>> {
    let mut handles = Vec::new();
    for d in &app.directories {
        let crate::directory::Directory::Ldap(l) = d else {
            continue;
        };
        if l.config().sync.schedule.is_none() {
            continue;
        }
        let id = l.config().id.clone();
        let app = app.clone();
        handles.push(tokio::spawn(async move {
            loop {
                let Some(cfg) = app.directory(&id).and_then(|d| match d {
                    crate::directory::Directory::Ldap(l) => Some(l.config().clone()),
                    _ => None,
                }) else {
                    return;
                };
                let now = app.clock.now();
                let Some(next) = crate::sync::next_run(&cfg, now) else {
                    return;
                };
                let wait = (next - now).to_std().unwrap_or_default();
                tokio::time::sleep(wait).await;
                let a = app.clone();
                let leads =
                    tokio::task::spawn_blocking(move || a.leadership.claim_blocking()).await;
                if !matches!(leads, Ok(Ok(true))) {
                    continue;
                }
                let request = crate::sync::Request {
                    directory_id: id.clone(),
                    dry_run: false,
                    trigger: crate::sync::Trigger::Schedule,
                    actor: crate::audit::Actor::system("schedule"),
                    approve_run: None,
                };
                match crate::sync::run_detached(app.services.clone(), request).await {
                    Ok(_) => {}
                    Err(Error::Conflict(m)) => tracing::debug!(directory = %id, "{m}"),
                    Err(e) => {
                        tracing::warn!(directory = %id, error = %e, "scheduled sync could not run")
                    }
                }
            }
        }));
    }
    handles
}

/// Runs the check on the configured schedule, on the leader replica only.
pub fn spawn_lapse_warnings(app: Arc<App>) -> Option<tokio::task::JoinHandle<()>> {
    let schedule = app.config.notifications.as_ref()?.schedule.clone();
    Some(tokio::spawn(async move {
        loop {
            let now = app.clock.now();
            let Some(next) = schedule.after(&now).next() else {
                return;
            };
            tokio::time::sleep((next - now).to_std().unwrap_or_default()).await;
            let a = app.clone();
            let leads = tokio::task::spawn_blocking(move || a.leadership.claim_blocking()).await;
            if !matches!(leads, Ok(Ok(true))) {
                continue;
            }
            if let Err(e) = crate::notify::run(&app).await {
                tracing::warn!(error = %e, "key lapse warnings could not run");
            }
        }
    }))
}

/// Polls each OpenID Connect directory's Shared Signals transmitter that has a `poll_url`
/// (RFC 8936), on the leading replica only: every `poll_interval_seconds`, at once again
/// while the transmitter says more are waiting. What a poll took is acknowledged by the next.
pub fn spawn_ssf_pollers(app: Arc<App>) -> Vec<tokio::task::JoinHandle<()>> {
    let mut handles = Vec::new();
    for d in &app.directories {
        let crate::directory::Directory::Oidc(o) = d else {
            continue;
        };
        let Some(poll) = o.config().ssf.as_ref().and_then(|s| s.poll.clone()) else {
            continue;
        };
        let id = o.config().id.clone();
        let app = app.clone();
        handles.push(tokio::spawn(async move {
            let mut acks = crate::ssf::poll::Acks::default();
            loop {
                let a = app.clone();
                let leads =
                    tokio::task::spawn_blocking(move || a.leadership.claim_blocking()).await;
                if !matches!(leads, Ok(Ok(true))) {
                    tokio::time::sleep(poll.interval).await;
                    continue;
                }
                match crate::ssf::poll::poll_once(&app, &id, &poll, &acks).await {
                    Ok(polled) => {
                        acks = polled.acks;
                        if polled.more {
                            continue;
                        }
                    }
                    // The acknowledgements are sent again with the next poll.
                    Err(e) => tracing::warn!(directory = %id, error = %e, "polling the shared signals transmitter failed"),
                }
                tokio::time::sleep(poll.interval).await;
            }
        }));
    }
    handles
}
