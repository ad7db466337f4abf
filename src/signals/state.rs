//! What each directory's change signals are doing, kept in `change_feeds` so every replica
//! (and the admin pages) can show it and a restart resumes where the feed stopped.

use crate::error::Result;
use crate::ids::DirectoryId;
use crate::services::Services;
use crate::store::schema::{change_feeds, signal_suspensions};
use crate::store::timestamp::Timestamp;
use crate::store::DbConn;
use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use diesel::prelude::*;

/// Suspension records are kept this long (the window is at most a week).
const KEEP_SUSPENSIONS_DAYS: i64 = 8;

/// A directory's change-signal state, as shown to admins.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FeedState {
    /// Since when the feed is connected, and on which replica; None when it is not.
    pub connected_at: Option<DateTime<Utc>>,
    pub replica: Option<String>,
    pub last_event_at: Option<DateTime<Utc>>,
    /// When the stored cookie was written (its age says how far behind a restart starts).
    pub cookie_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub reconnects: i64,
    /// Set when the guard tripped: signals no longer suspend until an admin resumes them.
    pub tripped_at: Option<DateTime<Utc>>,
    pub tripped_reason: Option<String>,
    /// Suspensions (and key lapses) signals made since midnight UTC.
    pub suspensions_today: i64,
}

fn ensure(conn: &mut DbConn, dir: &DirectoryId) -> Result<()> {
    let exists: i64 = change_feeds::table
        .filter(change_feeds::directory_id.eq(dir))
        .count()
        .get_result(conn)?;
    if exists == 0 {
        diesel::insert_into(change_feeds::table)
            .values(change_feeds::directory_id.eq(dir))
            .execute(conn)?;
    }
    Ok(())
}

/// A signal arrived for `dir` (a shared signal taken): its last event is now. Inside the
/// caller's transaction.
pub fn event_seen(conn: &mut DbConn, dir: &DirectoryId, now: DateTime<Utc>) -> Result<()> {
    ensure(conn, dir)?;
    diesel::update(change_feeds::table.find(dir))
        .set(change_feeds::last_event_at.eq(Some(Timestamp::from(now))))
        .execute(conn)?;
    Ok(())
}

/// The tripped reason, when the directory's guard has tripped.
pub fn tripped(conn: &mut DbConn, dir: &DirectoryId) -> Result<Option<String>> {
    let row: Option<(Option<Timestamp>, Option<String>)> = change_feeds::table
        .filter(change_feeds::directory_id.eq(dir))
        .select((change_feeds::tripped_at, change_feeds::tripped_reason))
        .first(conn)
        .optional()?;
    Ok(match row {
        Some((Some(_), reason)) => Some(reason.unwrap_or_default()),
        _ => None,
    })
}

pub(super) fn trip(
    conn: &mut DbConn,
    dir: &DirectoryId,
    why: &str,
    now: DateTime<Utc>,
) -> Result<()> {
    ensure(conn, dir)?;
    diesel::update(change_feeds::table.find(dir))
        .set((
            change_feeds::tripped_at.eq(Some(Timestamp::from(now))),
            change_feeds::tripped_reason.eq(Some(why)),
        ))
        .execute(conn)?;
    Ok(())
}

pub(super) fn untrip(conn: &mut DbConn, dir: &DirectoryId) -> Result<()> {
    diesel::update(change_feeds::table.find(dir))
        .set((
            change_feeds::tripped_at.eq(None::<Timestamp>),
            change_feeds::tripped_reason.eq(None::<String>),
        ))
        .execute(conn)?;
    Ok(())
}

/// The state of a directory's signals (default: never ran).
pub async fn of(app: &Services, dir: &DirectoryId) -> Result<FeedState> {
    let dir = dir.clone();
    let now = app.clock.now();
    app.store
        .read(move |conn| {
            type Row = (
                Option<Timestamp>,
                Option<String>,
                Option<Timestamp>,
                Option<Timestamp>,
                Option<String>,
                i64,
                Option<Timestamp>,
                Option<String>,
            );
            let row: Option<Row> = change_feeds::table
                .filter(change_feeds::directory_id.eq(&dir))
                .select((
                    change_feeds::connected_at,
                    change_feeds::replica,
                    change_feeds::last_event_at,
                    change_feeds::cookie_at,
                    change_feeds::last_error,
                    change_feeds::reconnects,
                    change_feeds::tripped_at,
                    change_feeds::tripped_reason,
                ))
                .first(conn)
                .optional()?;
            let midnight = now
                .date_naive()
                .and_hms_opt(0, 0, 0)
                .map_or(now, |m| m.and_utc());
            let today: i64 = signal_suspensions::table
                .filter(signal_suspensions::directory_id.eq(&dir))
                .filter(signal_suspensions::at.ge(Timestamp::from(midnight)))
                .count()
                .get_result(conn)?;
            let at = |t: Option<Timestamp>| t.map(Timestamp::at);
            Ok(match row {
                None => FeedState {
                    suspensions_today: today,
                    ..FeedState::default()
                },
                Some((
                    connected,
                    replica,
                    last_event,
                    cookie_at,
                    error,
                    reconnects,
                    tripped,
                    reason,
                )) => FeedState {
                    connected_at: at(connected),
                    replica,
                    last_event_at: at(last_event),
                    cookie_at: at(cookie_at),
                    last_error: error,
                    reconnects,
                    tripped_at: at(tripped),
                    tripped_reason: reason,
                    suspensions_today: today,
                },
            })
        })
        .await
}

/// The stored cookie a feed resumes from.
pub async fn cookie(app: &Services, dir: &DirectoryId) -> Result<Option<Vec<u8>>> {
    let dir = dir.clone();
    app.store
        .read(move |conn| {
            let c: Option<Option<String>> = change_feeds::table
                .filter(change_feeds::directory_id.eq(&dir))
                .select(change_feeds::cookie)
                .first(conn)
                .optional()?;
            // A cookie this build cannot read restarts the feed from scratch (no suspensions
            // come from a fresh start: it only learns the current state).
            Ok(c.flatten().and_then(|c| {
                base64::engine::general_purpose::STANDARD
                    .decode(c.as_bytes())
                    .ok()
            }))
        })
        .await
}

/// Stores the cookie after the changes before it were applied; `events` changes were seen.
pub async fn save_cookie(
    app: &Services,
    dir: &DirectoryId,
    cookie: Option<Vec<u8>>,
    events: usize,
) -> Result<()> {
    let dir = dir.clone();
    let now = Timestamp::from(app.clock.now());
    app.store
        .write(move |conn| {
            ensure(conn, &dir)?;
            if let Some(c) = cookie {
                diesel::update(change_feeds::table.find(&dir))
                    .set((
                        change_feeds::cookie
                            .eq(Some(base64::engine::general_purpose::STANDARD.encode(c))),
                        change_feeds::cookie_at.eq(Some(now)),
                    ))
                    .execute(conn)?;
            }
            if events > 0 {
                diesel::update(change_feeds::table.find(&dir))
                    .set(change_feeds::last_event_at.eq(Some(now)))
                    .execute(conn)?;
            }
            Ok(())
        })
        .await
}

/// Forgets the cookie (the server no longer knows it): the feed starts over.
pub async fn drop_cookie(app: &Services, dir: &DirectoryId) -> Result<()> {
    let dir = dir.clone();
    app.store
        .write(move |conn| {
            diesel::update(change_feeds::table.find(&dir))
                .set((
                    change_feeds::cookie.eq(None::<String>),
                    change_feeds::cookie_at.eq(None::<Timestamp>),
                ))
                .execute(conn)?;
            Ok(())
        })
        .await
}

/// The feed connected on this replica.
pub async fn connected(app: &Services, dir: &DirectoryId) -> Result<()> {
    let dir = dir.clone();
    let (now, replica) = (Timestamp::from(app.clock.now()), app.replica.clone());
    app.store
        .write(move |conn| {
            ensure(conn, &dir)?;
            diesel::update(change_feeds::table.find(&dir))
                .set((
                    change_feeds::connected_at.eq(Some(now)),
                    change_feeds::replica.eq(Some(replica)),
                    change_feeds::last_error.eq(None::<String>),
                ))
                .execute(conn)?;
            Ok(())
        })
        .await
}

/// The feed stopped: why (None when this replica stopped leading), counted as a reconnect.
pub async fn disconnected(app: &Services, dir: &DirectoryId, error: Option<String>) -> Result<()> {
    let dir = dir.clone();
    app.store
        .write(move |conn| {
            ensure(conn, &dir)?;
            diesel::update(change_feeds::table.find(&dir))
                .set((
                    change_feeds::connected_at.eq(None::<Timestamp>),
                    change_feeds::last_error.eq(error),
                    change_feeds::reconnects.eq(change_feeds::reconnects + 1),
                ))
                .execute(conn)?;
            Ok(())
        })
        .await
}

/// Old suspension records go (inside the cleanup job's connection).
pub fn prune(conn: &mut DbConn, now: DateTime<Utc>) -> Result<usize> {
    let cutoff = Timestamp::from(now - Duration::days(KEEP_SUSPENSIONS_DAYS));
    Ok(
        diesel::delete(signal_suspensions::table.filter(signal_suspensions::at.lt(cutoff)))
            .execute(conn)?,
    )
}
