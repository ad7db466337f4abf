//! Change signals: a directory change feed or a shared signal says a person left, was
//! disabled, came back, or had a credential revoked. A signal suspends (keys and sessions stop
//! at once, reversibly) or lifts its own suspension; it never deletes anyone: deletion stays
//! with reconciliation and SCIM, with their thresholds, approvals and dry runs. A guard stops a
//! directory's signals from suspending more people than its threshold within a window.

pub mod feed;
pub mod state;

use crate::audit::{self, Actor, Event};
use crate::auth_cache::Revoked;
use crate::config::PERCENT_THRESHOLD_MIN_USERS;
use crate::directory::Directory;
use crate::error::{Error, Result};
use crate::ids::{DirectoryId, UserId};
use crate::revocation;
use crate::services::Services;
use crate::store::models::UserRow;
use crate::store::schema::{sessions, signal_suspensions, users};
use crate::store::timestamp::Timestamp;
use crate::store::{user_rows, DbConn};
use chrono::{DateTime, Duration, Utc};
use diesel::prelude::*;

/// What a signal does to a person.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// Keys and sessions stop; reversible by a signal that they are back.
    Suspend,
    /// Lifts a suspension a signal made (never one made by reconciliation, SCIM or an admin).
    Lift,
    /// Interactive and key sessions end; keys keep working.
    EndSessions,
    /// Sessions end and keys are refused until the person signs in interactively again.
    LapseKeys,
}

impl Effect {
    pub fn as_str(self) -> &'static str {
        match self {
            Effect::Suspend => "suspend",
            Effect::Lift => "lift",
            Effect::EndSessions => "end_sessions",
            Effect::LapseKeys => "lapse_keys",
        }
    }

    /// Whether the guard counts it: what stops someone's keys.
    fn stops_keys(self) -> bool {
        matches!(self, Effect::Suspend | Effect::LapseKeys)
    }
}

/// Where a directory's change signals come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// OpenLDAP's content-synchronization search (RFC 4533).
    Syncrepl,
    /// Active Directory's DirSync control, polled.
    DirSync,
    /// OpenID Shared Signals (SETs pushed or polled).
    SharedSignals,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Syncrepl => "syncrepl",
            Source::DirSync => "dirsync",
            Source::SharedSignals => "shared-signals",
        }
    }
}

/// The change signals a directory has, if any.
pub fn source(d: &Directory) -> Option<Source> {
    match d {
        Directory::Ldap(l) => l.config().change_feed.as_ref().map(|_| {
            if l.config().active_directory {
                Source::DirSync
            } else {
                Source::Syncrepl
            }
        }),
        Directory::Builtin(_) | Directory::Oidc(_) => None,
    }
}

/// One signal about one person, already resolved to their record.
#[derive(Debug, Clone)]
pub struct Signal {
    pub directory: DirectoryId,
    pub user: UserId,
    pub effect: Effect,
    /// A short name for the audit trail and the suspension, e.g. "LDAP change feed: deleted"
    /// or "RISC account-disabled".
    pub name: String,
    /// Free text for the audit detail (a SET's jti and issuer, a DN).
    pub detail: String,
}

/// What applying a signal did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    Changed,
    /// Already so (suspended, not suspended by a signal, no sessions…).
    Unchanged,
    /// The directory's guard has tripped: the signal was not applied (lifts always are).
    Withheld,
}

/// How a signal names a person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    /// The directory's stable id (`sub` of an OpenID Connect directory, `entryUUID`…).
    ExternalId(String),
    Email(String),
}

/// How many suspensions a directory's signals may make within a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Guard {
    pub threshold: u64,
    pub threshold_percent: u64,
    pub window: Duration,
}

/// The guard's verdict on one more suspension.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Allow,
    /// Trip: stop suspending, and say why.
    Trip(String),
}

/// Decides whether one more suspension may happen, given how many the directory's signals
/// made within the window and how many local users the directory has. Pure.
pub fn guard_verdict(recent: u64, local_users: u64, guard: &Guard) -> Verdict {
    let next = recent + 1;
    if next > guard.threshold {
        return Verdict::Trip(format!(
            "{next} suspensions within {} min exceed deletion_threshold = {}",
            guard.window.num_minutes(),
            guard.threshold
        ));
    }
    if local_users >= PERCENT_THRESHOLD_MIN_USERS
        && next.saturating_mul(100) > guard.threshold_percent.saturating_mul(local_users)
    {
        return Verdict::Trip(format!(
            "{next} suspensions of {local_users} local users within {} min exceed deletion_threshold_percent = {}%",
            guard.window.num_minutes(),
            guard.threshold_percent
        ));
    }
    Verdict::Allow
}

/// The guard of a directory's signals: an LDAP directory's deletion thresholds over its
/// change-feed window; an OpenID Connect directory's shared-signals settings.
pub fn guard_of(app: &Services, dir: &DirectoryId) -> Guard {
    match app.directory(dir) {
        Some(Directory::Ldap(l)) => {
            let c = l.config();
            Guard {
                threshold: c.sync.deletion_threshold,
                threshold_percent: c.sync.deletion_threshold_percent,
                window: c
                    .change_feed
                    .as_ref()
                    .map_or(Duration::minutes(60), |f| f.window),
            }
        }
        _ => Guard {
            threshold: 100,
            threshold_percent: 25,
            window: Duration::minutes(60),
        },
    }
}

/// Finds the person a signal names in directory `dir`.
pub async fn resolve(
    app: &Services,
    dir: &DirectoryId,
    subject: &Subject,
) -> Result<Option<UserId>> {
    let (dir, subject) = (dir.clone(), subject.clone());
    app.store
        .read(move |conn| {
            Ok(match &subject {
                Subject::ExternalId(id) => user_rows::by_external_id(conn, &dir, id)?.map(|r| r.id),
                Subject::Email(email) => {
                    // Only an unambiguous address names someone.
                    let ids: Vec<UserId> = users::table
                        .filter(users::directory_id.eq(&dir))
                        .filter(users::email.eq(email))
                        .select(users::id)
                        .limit(2)
                        .load(conn)?;
                    match ids.as_slice() {
                        [one] => Some(one.clone()),
                        _ => None,
                    }
                }
            })
        })
        .await
}

/// Applies a signal in one transaction, audited, and announced to every process.
pub async fn apply(app: &Services, actor: &Actor, signal: Signal) -> Result<Applied> {
    let guard = guard_of(app, &signal.directory);
    let now = app.clock.now();
    let actor = actor.clone();
    let effect = signal.effect;
    let dir = signal.directory.clone();
    let applied = revocation::write(app, move |conn| {
        apply_in(conn, &actor, &signal, &guard, now)
    })
    .await?;
    app.metrics
        .signal_applied(dir.as_str(), effect.as_str(), applied_str(applied));
    Ok(applied)
}

fn applied_str(a: Applied) -> &'static str {
    match a {
        Applied::Changed => "changed",
        Applied::Unchanged => "unchanged",
        Applied::Withheld => "withheld",
    }
}

fn apply_in(
    conn: &mut DbConn,
    actor: &Actor,
    signal: &Signal,
    guard: &Guard,
    now: DateTime<Utc>,
) -> Result<(Applied, Vec<Revoked>)> {
    let row = user_rows::by_id(conn, &signal.user)?
        .filter(|r| r.directory_id.eq_ignore_ascii_case(&signal.directory))
        .ok_or_else(|| {
            Error::not_found(format!(
                "no user `{}` in directory `{}`",
                signal.user, signal.directory
            ))
        })?;
    let who = Actor {
        name: Some(format!("signal: {}", signal.name)),
        ..actor.clone()
    };
    let unchanged = Ok((Applied::Unchanged, Vec::new()));
    match signal.effect {
        Effect::Lift => {
            if row.suspended_at.is_none() || row.suspended_by_signal.is_none() {
                return unchanged;
            }
            diesel::update(users::table.find(&row.id))
                .set((
                    users::suspended_at.eq(None::<Timestamp>),
                    users::suspended_by_signal.eq(None::<String>),
                ))
                .execute(conn)?;
            audit::record(
                conn,
                now,
                &Event::new("user.restore", &who)
                    .target("user", &row.id, &row.username)
                    .detail(format!(
                        "directory {}; {}; lifts the suspension by {}; {}",
                        row.directory_id,
                        signal.name,
                        row.suspended_by_signal.as_deref().unwrap_or(""),
                        signal.detail
                    )),
            )?;
            Ok((Applied::Changed, vec![Revoked::User(row.id.clone())]))
        }
        Effect::Suspend if row.suspended_at.is_some() => unchanged,
        Effect::Suspend | Effect::LapseKeys => {
            if let Some(withheld) = check_guard(conn, &row, &who, signal, guard, now)? {
                return Ok((withheld, Vec::new()));
            }
            let action = if signal.effect == Effect::Suspend {
                diesel::update(users::table.find(&row.id))
                    .set((
                        users::suspended_at.eq(Some(Timestamp::from(now))),
                        users::suspended_by_signal.eq(Some(&signal.name)),
                    ))
                    .execute(conn)?;
                "user.suspend"
            } else {
                diesel::update(users::table.find(&row.id))
                    .set(users::keys_lapsed_at.eq(Some(Timestamp::from(now))))
                    .execute(conn)?;
                "user.keys_lapsed"
            };
            diesel::insert_into(signal_suspensions::table)
                .values((
                    signal_suspensions::directory_id.eq(&row.directory_id),
                    signal_suspensions::user_id.eq(&row.id),
                    signal_suspensions::at.eq(Timestamp::from(now)),
                    signal_suspensions::signal.eq(&signal.name),
                ))
                .execute(conn)?;
            let mut revoked = end_sessions(conn, &row.id)?;
            let ended = revoked.len();
            revoked.push(Revoked::User(row.id.clone()));
            let what = if signal.effect == Effect::Suspend {
                "keys refused until a signal or the next sync says they are back"
            } else {
                "keys refused until they sign in interactively again"
            };
            audit::record(
                conn,
                now,
                &Event::new(action, &who)
                    .target("user", &row.id, &row.username)
                    .detail(format!(
                        "directory {}; {}; {what}; {ended} session(s) ended; {}",
                        row.directory_id, signal.name, signal.detail
                    )),
            )?;
            Ok((Applied::Changed, revoked))
        }
        Effect::EndSessions => {
            let revoked = end_sessions(conn, &row.id)?;
            if revoked.is_empty() {
                return unchanged;
            }
            audit::record(
                conn,
                now,
                &Event::new("user.sessions_ended", &who)
                    .target("user", &row.id, &row.username)
                    .detail(format!(
                        "directory {}; {}; {} session(s) ended; {}",
                        row.directory_id,
                        signal.name,
                        revoked.len(),
                        signal.detail
                    )),
            )?;
            Ok((Applied::Changed, revoked))
        }
    }
}

/// Withholds the signal when the directory's guard has tripped, or trips it now.
fn check_guard(
    conn: &mut DbConn,
    row: &UserRow,
    who: &Actor,
    signal: &Signal,
    guard: &Guard,
    now: DateTime<Utc>,
) -> Result<Option<Applied>> {
    debug_assert!(signal.effect.stops_keys());
    let dir = &row.directory_id;
    if state::tripped(conn, dir)?.is_some() {
        return Ok(Some(Applied::Withheld));
    }
    let recent: i64 = signal_suspensions::table
        .filter(signal_suspensions::directory_id.eq(dir))
        .filter(signal_suspensions::at.ge(Timestamp::from(now - guard.window)))
        .count()
        .get_result(conn)?;
    let local: i64 = users::table
        .filter(users::directory_id.eq(dir))
        .count()
        .get_result(conn)?;
    let count = |n: i64| u64::try_from(n).unwrap_or(0);
    match guard_verdict(count(recent), count(local), guard) {
        Verdict::Allow => Ok(None),
        Verdict::Trip(why) => {
            state::trip(conn, dir, &why, now)?;
            audit::record(
                conn,
                now,
                &Event::new("signals.tripped", who)
                    .failed()
                    .target("directory", dir, dir.as_str())
                    .detail(format!(
                        "{why}; signals stop suspending until an admin resumes them; withheld: {} for `{}`",
                        signal.name, row.username
                    )),
            )?;
            tracing::warn!(directory = %dir, reason = %why, "change signals tripped the deletion threshold; suspensions stop until an admin resumes them");
            Ok(Some(Applied::Withheld))
        }
    }
}

/// Ends every session of a user (interactive and key sessions) and returns them, to announce.
fn end_sessions(conn: &mut DbConn, user: &UserId) -> Result<Vec<Revoked>> {
    let ended: Vec<String> = sessions::table
        .filter(sessions::user_id.eq(user))
        .select(sessions::token_hash)
        .load(conn)?;
    diesel::delete(sessions::table.filter(sessions::user_id.eq(user))).execute(conn)?;
    Ok(ended.into_iter().map(Revoked::Session).collect())
}

/// An admin lets a tripped directory's signals suspend again.
pub async fn resume(app: &Services, actor: &Actor, dir: &DirectoryId) -> Result<()> {
    if app.directory(dir).is_none() {
        return Err(Error::not_found(format!("no directory with id `{dir}`")));
    }
    let (actor, dir) = (actor.clone(), dir.clone());
    let now = app.clock.now();
    app.store
        .write(move |conn| {
            let Some(reason) = state::tripped(conn, &dir)? else {
                return Err(Error::conflict(format!(
                    "the signals of directory `{dir}` are not stopped; there is nothing to resume"
                )));
            };
            state::untrip(conn, &dir)?;
            audit::record(
                conn,
                now,
                &Event::new("signals.resume", &actor)
                    .target("directory", &dir, dir.as_str())
                    .detail(format!("resumed after: {reason}")),
            )
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard(threshold: u64, percent: u64) -> Guard {
        Guard {
            threshold,
            threshold_percent: percent,
            window: Duration::minutes(60),
        }
    }

    #[test]
    fn suspensions_up_to_the_threshold_pass_and_the_next_trips() {
        let g = guard(3, 100);
        assert_eq!(guard_verdict(0, 10, &g), Verdict::Allow);
        assert_eq!(guard_verdict(2, 10, &g), Verdict::Allow);
        let Verdict::Trip(why) = guard_verdict(3, 10, &g) else {
            panic!("the fourth suspension must trip")
        };
        assert!(why.contains("deletion_threshold = 3"), "{why}");
    }

    #[test]
    fn the_percentage_counts_only_from_enough_users() {
        let g = guard(1000, 10);
        // Few users: the percentage does not apply.
        assert_eq!(
            guard_verdict(5, PERCENT_THRESHOLD_MIN_USERS - 1, &g),
            Verdict::Allow
        );
        let users = 200.max(PERCENT_THRESHOLD_MIN_USERS);
        let limit = users / 10;
        assert_eq!(guard_verdict(limit - 1, users, &g), Verdict::Allow);
        assert!(matches!(guard_verdict(limit, users, &g), Verdict::Trip(w) if w.contains("10%")));
    }

    #[test]
    fn only_what_stops_keys_is_counted() {
        assert!(Effect::Suspend.stops_keys());
        assert!(Effect::LapseKeys.stops_keys());
        assert!(!Effect::Lift.stops_keys());
        assert!(!Effect::EndSessions.stops_keys());
    }
}
