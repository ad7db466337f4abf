//! Users: records created by directory logins or the CLI, the per-user validity override,
//! and deletion (which takes the user's keys and sessions in the same transaction).

mod logins;
pub mod managers;
mod provision;

pub(crate) use logins::touch_login;
pub use logins::{upsert_login, upsert_oidc_login};
pub use provision::{
    create_from_event, create_local, ensure_initial_admin, set_local_password, FromEvent,
};

use crate::audit::{self, Actor, Event};
use crate::config::Config;
use crate::directory::DirectoryUser;
use crate::error::{Error, Result};
use crate::ids::{DirectoryId, UserId};
use crate::options::RuntimeOptions;
use crate::revocation::{self, Revoked};
use crate::services::Services;
use crate::store::models::UserRow;
use crate::store::schema::{access_keys, sessions, users};
use crate::store::timestamp::Timestamp;
use crate::store::user_rows;
use crate::store::DbConn;
use crate::validity::{self, Window};
use chrono::{DateTime, Utc};
use diesel::prelude::*;

/// Stable-id prefix of a user created by SCIM who has not logged in yet (the provider's
/// subject is learnt at the first login).
pub const SCIM_PENDING_PREFIX: &str = "scim:";

/// Largest override accepted: 100 years in minutes.
pub const MAX_OVERRIDE_MINUTES: i64 = 100 * 366 * 24 * 60;

/// A user with the validity window in force for them.
#[derive(Clone)]
pub struct UserInfo {
    pub row: UserRow,
    pub window: Window,
    /// The session duration in force for this user, in minutes.
    pub session_minutes: i64,
    /// A service account's manager's username.
    pub manager_name: Option<String>,
}

impl UserInfo {
    /// When this user's keys stop working unless they log in again (None: they do not work).
    pub fn keys_valid_until(&self) -> Option<DateTime<Utc>> {
        validity::valid_until(self.row.interactive_login_for_keys(), self.window)
    }
}

/// The user `id`, given in any case (ids are stored lowercase).
pub(crate) fn find(conn: &mut DbConn, id: &UserId) -> Result<UserRow> {
    user_rows::by_id(conn, id)?.ok_or_else(|| Error::not_found(format!("user `{id}` not found")))
}

pub(crate) fn with_window(conn: &mut DbConn, config: &Config, row: UserRow) -> Result<UserInfo> {
    let system = RuntimeOptions::load(conn, config)?;
    let mut info = info_of(row, system);
    info.manager_name = manager_name(conn, &info.row)?;
    Ok(info)
}

fn manager_name(conn: &mut DbConn, row: &UserRow) -> Result<Option<String>> {
    match &row.manager_id {
        Some(id) => Ok(users::table
            .find(id)
            .select(users::username)
            .first(conn)
            .optional()?),
        None => Ok(None),
    }
}

/// A user with the windows in force, given the system values.
fn info_of(row: UserRow, system: RuntimeOptions) -> UserInfo {
    UserInfo {
        window: validity::window(row.access_key_validity_minutes, system.validity_days),
        session_minutes: session_override(&row).unwrap_or(system.session_minutes),
        manager_name: None,
        row,
    }
}

/// The user's own session duration, if they have one.
fn session_override(row: &UserRow) -> Option<i64> {
    row.session_duration_minutes.filter(|m| *m > 0)
}

pub async fn get(app: &Services, id: &UserId) -> Result<UserInfo> {
    let id = id.clone();
    let config = app.config.clone();
    app.store
        .read(move |conn| {
            let row = find(conn, &id)?;
            with_window(conn, &config, row)
        })
        .await
}

/// A page of users ordered by username, with the total count; `service_accounts`: only those
/// (true) or only people (false).
pub async fn list(
    app: &Services,
    service_accounts: Option<bool>,
    offset: i64,
    limit: i64,
) -> Result<(Vec<UserInfo>, i64)> {
    let config = app.config.clone();
    app.store
        .read(move |conn| {
            let filtered = || {
                let q = users::table.into_boxed();
                match service_accounts {
                    Some(sa) => q.filter(users::is_service_account.eq(sa)),
                    None => q,
                }
            };
            let total: i64 = filtered().count().get_result(conn)?;
            let rows: Vec<UserRow> = filtered()
                .order((users::username.asc(), users::id.asc()))
                .offset(offset)
                .limit(limit)
                .select(UserRow::as_select())
                .load(conn)?;
            let system = RuntimeOptions::load(conn, &config)?;
            let mut infos = Vec::with_capacity(rows.len());
            for row in rows {
                let mut info = info_of(row, system);
                info.manager_name = manager_name(conn, &info.row)?;
                infos.push(info);
            }
            Ok((infos, total))
        })
        .await
}

/// Longest session duration override, in minutes (a year).
pub const MAX_SESSION_MINUTES: i64 = 525_600;

/// A whole number of minutes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Minutes(pub i64);

/// A per-user override of a system value: back to the system value, or a value of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Override {
    Reset,
    Set(Minutes),
}

impl Override {
    /// The API's form (the vendor's convention): a negative number resets.
    pub fn from_api(minutes: i64) -> Override {
        if minutes < 0 {
            Override::Reset
        } else {
            Override::Set(Minutes(minutes))
        }
    }

    /// What is stored: the minutes, or nothing for the system value.
    fn minutes(self) -> Option<i64> {
        match self {
            Override::Reset => None,
            Override::Set(Minutes(m)) => Some(m),
        }
    }
}

/// What an admin changes of a user (`POST /api/users/{id}/update`); None leaves it as is.
#[derive(Debug, Clone, Default)]
pub struct Update {
    /// The key-validity window: minutes ≥ 0 (0 disables the user's keys), or reset.
    pub access_key_validity: Option<Override>,
    /// The session duration: minutes > 0 (0 is refused), or reset.
    pub session_duration: Option<Override>,
    /// A service account's new manager: a user id or `DIRECTORY:USERNAME`.
    pub manager: Option<String>,
}

/// Sets or resets a user's validity override.
pub async fn set_validity_override(
    app: &Services,
    actor: &Actor,
    id: &UserId,
    to: Override,
) -> Result<UserInfo> {
    update(
        app,
        actor,
        id,
        Update {
            access_key_validity: Some(to),
            ..Update::default()
        },
    )
    .await
}

/// Applies an admin's changes to a user in one transaction, an audit event each.
pub async fn update(app: &Services, actor: &Actor, id: &UserId, u: Update) -> Result<UserInfo> {
    if u.access_key_validity.is_none() && u.session_duration.is_none() && u.manager.is_none() {
        return Err(Error::invalid(
            "accessKeyValidityDuration, sessionDuration or manager: give at least one (minutes; negative resets to the system value)",
        ));
    }
    if let Some(Override::Set(Minutes(m))) = u.access_key_validity {
        if m < 0 {
            return Err(Error::invalid(
                "accessKeyValidityDuration: minutes cannot be negative",
            ));
        }
    }
    if u.access_key_validity
        .is_some_and(|o| o > Override::Set(Minutes(MAX_OVERRIDE_MINUTES)))
    {
        return Err(Error::invalid(format!(
            "accessKeyValidityDuration: at most {MAX_OVERRIDE_MINUTES} minutes"
        )));
    }
    match u.session_duration {
        Some(Override::Set(Minutes(m))) if m <= 0 => {
            return Err(Error::invalid(
                "sessionDuration: 0 would end sessions at once; give minutes, or a negative value to reset",
            ))
        }
        Some(Override::Set(Minutes(m))) if m > MAX_SESSION_MINUTES => {
            return Err(Error::invalid(format!(
                "sessionDuration: at most {MAX_SESSION_MINUTES} minutes"
            )))
        }
        _ => {}
    }
    let now = app.clock.now();
    let id = id.clone();
    let actor = actor.clone();
    let config = app.config.clone();
    let info = app
        .store
        .write(move |conn| {
            let row = find(conn, &id)?;
            if let Some(manager) = &u.manager {
                managers::assign_manager_in(conn, &row.id, manager, &actor, now)?;
            }
            let event = |conn: &mut DbConn, action: &str, detail: String| {
                audit::record(
                    conn,
                    now,
                    &Event::new(action, &actor)
                        .target("user", &row.id, &row.username)
                        .detail(detail),
                )
            };
            if let Some(to) = u.access_key_validity {
                let stored = to.minutes();
                diesel::update(users::table.find(&row.id))
                    .set(users::access_key_validity_minutes.eq(stored))
                    .execute(conn)?;
                let detail = match stored {
                    Some(m) => format!("accessKeyValidityDuration = {m} min"),
                    None => "accessKeyValidityDuration reset to the system value".to_string(),
                };
                event(conn, "user.validity_override", detail)?;
            }
            if let Some(to) = u.session_duration {
                let stored = to.minutes();
                diesel::update(users::table.find(&row.id))
                    .set(users::session_duration_minutes.eq(stored))
                    .execute(conn)?;
                let detail = match stored {
                    Some(m) => {
                        format!("sessionDuration = {m} min (for sessions opened from now on)")
                    }
                    None => "sessionDuration reset to the system value".to_string(),
                };
                event(conn, "user.session_duration", detail)?;
            }
            revocation::announce(conn, &Revoked::User(row.id.clone()))?;
            let row = find(conn, &row.id)?;
            with_window(conn, &config, row)
        })
        .await?;
    revocation::changed(app, Revoked::User(info.row.id.clone()));
    Ok(info)
}

/// What a user deletion took with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deleted {
    pub keys: usize,
    pub sessions: usize,
}

/// Removes a user with all keys and sessions inside the caller's transaction and records why:
/// the one path every removal takes (an admin, directory sync, SCIM). The caller tells
/// `revocation::changed` after the commit.
pub(crate) fn remove_in(
    conn: &mut DbConn,
    user_id: &UserId,
    action: &str,
    actor: &Actor,
    now: DateTime<Utc>,
    why: &str,
) -> Result<(UserRow, Deleted)> {
    let row = find(conn, user_id)?;
    // The service accounts this person answered for stop working until someone else does.
    // (`suspend_managed_by` announces each of them.)
    managers::suspend_managed_by(conn, &row, actor, now, why)?;
    // Explicit deletes (rather than relying on the cascade alone) give the counts for the
    // audit trail and keep the behaviour independent of the backend.
    revocation::announce(conn, &Revoked::User(row.id.clone()))?;
    let sessions =
        diesel::delete(sessions::table.filter(sessions::user_id.eq(&row.id))).execute(conn)?;
    let keys = diesel::delete(access_keys::table.filter(access_keys::user_id.eq(&row.id)))
        .execute(conn)?;
    diesel::delete(users::table.find(&row.id)).execute(conn)?;
    audit::record(
        conn,
        now,
        &Event::new(action, actor)
            .target("user", &row.id, &row.username)
            .detail(format!(
                "directory {}; {why}; stable id {}; {keys} access key(s) and {sessions} session(s) deleted",
                row.directory_id, row.external_id
            )),
    )?;
    Ok((row, Deleted { keys, sessions }))
}

/// Deletes a user with all keys and sessions, in one transaction. The id is never reused, so
/// a later user of the same name starts with nothing.
pub async fn delete(app: &Services, actor: &Actor, id: &UserId) -> Result<(UserRow, Deleted)> {
    if actor
        .user_id
        .as_ref()
        .is_some_and(|me| me.eq_ignore_ascii_case(id))
    {
        return Err(Error::conflict(
            "you cannot delete your own user; ask another admin",
        ));
    }
    let now = app.clock.now();
    let id = id.clone();
    let actor = actor.clone();
    let (row, deleted) = app
        .store
        .write(move |conn| remove_in(conn, &id, "user.delete", &actor, now, "deleted by an admin"))
        .await?;
    revocation::changed(app, Revoked::User(row.id.clone()));
    Ok((row, deleted))
}

/// The session duration in force for a user, in minutes: their override, else the system
/// option `Authentication/DefaultSessionDuration`.
pub fn session_minutes(conn: &mut DbConn, config: &Config, row: &UserRow) -> Result<i64> {
    match session_override(row) {
        Some(m) => Ok(m),
        None => Ok(RuntimeOptions::load(conn, config)?.session_minutes),
    }
}

/// A new record for a user a directory describes (no password: the directory checks it).
pub(crate) fn directory_user_row(
    directory_id: &DirectoryId,
    du: DirectoryUser,
    now: DateTime<Utc>,
    last_login: Option<DateTime<Utc>>,
) -> UserRow {
    UserRow {
        id: UserId::generate(),
        directory_id: directory_id.clone(),
        external_id: du.external_id,
        username: du.username,
        display_name: du.display_name,
        first_name: du.first_name,
        last_name: du.last_name,
        email: du.email,
        is_admin: du.is_admin,
        is_enabled: true,
        password_hash: None,
        created_at: Timestamp::from(now),
        last_login_at: last_login.map(Timestamp::from),
        access_key_validity_minutes: None,
        suspended_at: None,
        scim_external_id: None,
        session_duration_minutes: None,
        is_service_account: false,
        manager_id: None,
        suspended_by_signal: None,
        keys_lapsed_at: None,
    }
}

#[cfg(test)]
mod tests {
    use super::{Minutes, Override};

    #[test]
    fn the_api_resets_with_a_negative_number_and_sets_anything_else() {
        assert_eq!(Override::from_api(-1), Override::Reset);
        assert_eq!(Override::from_api(0), Override::Set(Minutes(0)));
        assert_eq!(Override::from_api(90), Override::Set(Minutes(90)));
        assert_eq!(Override::Reset.minutes(), None);
        assert_eq!(Override::Set(Minutes(0)).minutes(), Some(0));
    }
}
