//! Users: records created by directory logins or the CLI, the per-user validity override,
//! and deletion (which takes the user's keys and sessions in the same transaction).

pub mod managers;

use crate::audit::{self, Actor, Event};
use crate::config::Config;
use crate::directory::builtin::{validate_password, validate_username};
use crate::directory::DirectoryUser;
use crate::error::{Error, Result};
use crate::options;
use crate::revocation::{self, Revoked};
use crate::secret::Secret;
use crate::services::Services;
use crate::store::models::{to_ms, UserRow};
use crate::store::schema::{access_keys, sessions, users};
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
        validity::valid_until(self.row.last_login(), self.window)
    }
}

pub(crate) fn find(conn: &mut DbConn, id: &str) -> Result<UserRow> {
    users::table
        .find(id.to_ascii_lowercase())
        .select(UserRow::as_select())
        .first(conn)
        .optional()?
        .ok_or_else(|| Error::not_found(format!("user `{id}` not found")))
}

pub(crate) fn with_window(conn: &mut DbConn, config: &Config, row: UserRow) -> Result<UserInfo> {
    let system = options::system_windows(conn, config)?;
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
fn info_of(row: UserRow, system: options::SystemWindows) -> UserInfo {
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

pub async fn get(app: &Services, id: &str) -> Result<UserInfo> {
    let id = id.to_string();
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
            let system = options::system_windows(conn, &config)?;
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

/// What an admin changes of a user (`POST /api/users/{id}/update`); None leaves it as is.
#[derive(Debug, Clone, Default)]
pub struct Update {
    /// Minutes ≥ 0 (0 disables the user's keys); negative removes the override.
    pub access_key_validity_minutes: Option<i64>,
    /// Minutes > 0; negative removes the override; 0 is refused.
    pub session_duration_minutes: Option<i64>,
    /// A service account's new manager: a user id or `DIRECTORY:USERNAME`.
    pub manager: Option<String>,
}

/// Sets (minutes ≥ 0) or removes (negative) a user's validity override.
pub async fn set_validity_override(
    app: &Services,
    actor: &Actor,
    id: &str,
    minutes: i64,
) -> Result<UserInfo> {
    update(
        app,
        actor,
        id,
        Update {
            access_key_validity_minutes: Some(minutes),
            ..Update::default()
        },
    )
    .await
}

/// Applies an admin's changes to a user in one transaction, an audit event each.
pub async fn update(app: &Services, actor: &Actor, id: &str, u: Update) -> Result<UserInfo> {
    if u.access_key_validity_minutes.is_none()
        && u.session_duration_minutes.is_none()
        && u.manager.is_none()
    {
        return Err(Error::invalid(
            "accessKeyValidityDuration, sessionDuration or manager: give at least one (minutes; negative resets to the system value)",
        ));
    }
    if u.access_key_validity_minutes
        .is_some_and(|m| m > MAX_OVERRIDE_MINUTES)
    {
        return Err(Error::invalid(format!(
            "accessKeyValidityDuration: at most {MAX_OVERRIDE_MINUTES} minutes"
        )));
    }
    match u.session_duration_minutes {
        Some(0) => {
            return Err(Error::invalid(
                "sessionDuration: 0 would end sessions at once; give minutes, or a negative value to reset",
            ))
        }
        Some(m) if m > MAX_SESSION_MINUTES => {
            return Err(Error::invalid(format!(
                "sessionDuration: at most {MAX_SESSION_MINUTES} minutes"
            )))
        }
        _ => {}
    }
    let now = app.clock.now();
    let id = id.to_string();
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
            if let Some(minutes) = u.access_key_validity_minutes {
                let stored = (minutes >= 0).then_some(minutes);
                diesel::update(users::table.find(&row.id))
                    .set(users::access_key_validity_minutes.eq(stored))
                    .execute(conn)?;
                let detail = match stored {
                    Some(m) => format!("accessKeyValidityDuration = {m} min"),
                    None => "accessKeyValidityDuration reset to the system value".to_string(),
                };
                event(conn, "user.validity_override", detail)?;
            }
            if let Some(minutes) = u.session_duration_minutes {
                let stored = (minutes > 0).then_some(minutes);
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
    user_id: &str,
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
pub async fn delete(app: &Services, actor: &Actor, id: &str) -> Result<(UserRow, Deleted)> {
    if actor
        .user_id
        .as_deref()
        .is_some_and(|me| me.eq_ignore_ascii_case(id))
    {
        return Err(Error::conflict(
            "you cannot delete your own user; ask another admin",
        ));
    }
    let now = app.clock.now();
    let id = id.to_string();
    let actor = actor.clone();
    let (row, deleted) = app
        .store
        .write(move |conn| remove_in(conn, &id, "user.delete", &actor, now, "deleted by an admin"))
        .await?;
    revocation::changed(app, Revoked::User(row.id.clone()));
    Ok((row, deleted))
}

/// Sets `lastLoginAt` (inside the caller's transaction) and announces the moved window; the
/// caller tells `revocation::changed` after the commit. Only interactive logins call this.
pub(crate) fn touch_login(conn: &mut DbConn, user_id: &str, now: DateTime<Utc>) -> Result<()> {
    diesel::update(users::table.find(user_id))
        .set(users::last_login_at.eq(Some(to_ms(now))))
        .execute(conn)?;
    revocation::announce(conn, &Revoked::User(user_id.to_string()))
}

/// Creates or refreshes the local record of a directory user after a successful login,
/// keyed by directory + stable id, and records the login time. An OpenID Connect directory
/// takes [`upsert_oidc_login`]'s rules (never by name).
pub async fn upsert_login(
    app: &Services,
    directory_id: &str,
    du: DirectoryUser,
) -> Result<UserInfo> {
    let du = visible_names(du);
    if matches!(
        app.directory(directory_id),
        Some(crate::directory::Directory::Oidc(_))
    ) {
        return upsert_oidc_login(app, directory_id, du, &Actor::system("login")).await;
    }
    match upsert_login_once(app, directory_id, du.clone()).await {
        // The person's first logins on two replicas at once: one inserted, the other's
        // insert hit the unique index. The retry finds the record and refreshes it.
        Err(Error::Conflict(_)) => upsert_login_once(app, directory_id, du).await,
        other => other,
    }
}

async fn upsert_login_once(
    app: &Services,
    directory_id: &str,
    du: DirectoryUser,
) -> Result<UserInfo> {
    let now = app.clock.now();
    // A bind to an LDAP directory proves the account is there, ending a suspension by sync.
    // An OpenID provider may still sign in someone SCIM deprovisioned: that does not.
    let login_restores = matches!(
        app.directory(directory_id),
        Some(crate::directory::Directory::Ldap(_))
    );
    let dir = directory_id.to_string();
    let config = app.config.clone();
    let (info, superseded) = app
        .store
        .write(move |conn| {
            let mut superseded = None;
            // SCIM provisions only OpenID Connect directories, so nothing here waits to be
            // linked: the stable id alone finds the record.
            let existing: Option<UserRow> = users::table
                .filter(users::directory_id.eq(&dir))
                .filter(users::external_id.eq(&du.external_id))
                .select(UserRow::as_select())
                .first(conn)
                .optional()?;
            // An LDAP directory is authoritative for its names. Another record holding this
            // name is a person upstream deleted or renamed, whose name now belongs to this
            // account. It keeps its data (its keys stop working at once: it is disabled) but
            // gives up the name, so nothing passes to this person.
            let this_id = existing.as_ref().map(|r| r.id.clone());
            let holder: Option<UserRow> = users::table
                .filter(users::directory_id.eq(&dir))
                .filter(users::username.eq(&du.username))
                .select(UserRow::as_select())
                .first(conn)
                .optional()?;
            if let Some(old) = holder.filter(|h| Some(&h.id) != this_id.as_ref()) {
                let renamed = format!("{}#{}", old.username, &old.id[..8]);
                diesel::update(users::table.find(&old.id))
                    .set((users::username.eq(&renamed), users::is_enabled.eq(false)))
                    .execute(conn)?;
                audit::record(
                    conn,
                    now,
                    &Event::new("user.superseded", &Actor::system("login"))
                        .target("user", &old.id, &renamed)
                        .detail(format!(
                            "directory {dir}: another account (stable id {}) now has the name `{}`; this record was renamed and disabled",
                            du.external_id, du.username
                        )),
                )?;
                revocation::announce(conn, &Revoked::User(old.id.clone()))?;
                superseded = Some(old.id);
            }
            let id = match existing {
                Some(row) => refresh_in(conn, &dir, row, &du, now, login_restores)?,
                None => {
                    let row = directory_user_row(&dir, du.clone(), now, Some(now));
                    diesel::insert_into(users::table).values(&row).execute(conn)?;
                    row.id
                }
            };
            let row = find(conn, &id)?;
            Ok((with_window(conn, &config, row)?, superseded))
        })
        .await?;
    if let Some(old) = superseded {
        revocation::changed(app, Revoked::User(old));
    }
    revocation::changed(app, Revoked::User(info.row.id.clone()));
    Ok(info)
}

/// Refreshes the record a login found (inside the caller's transaction) with what the
/// directory says now, and returns its id. `login_restores`: the login itself proves the
/// account is live (an LDAP bind), so it ends a suspension.
fn refresh_in(
    conn: &mut DbConn,
    dir: &str,
    row: UserRow,
    du: &DirectoryUser,
    now: DateTime<Utc>,
    login_restores: bool,
) -> Result<String> {
    // Deprovisioned by SCIM, signing in at the provider anyway: nothing changes (not even
    // lastLoginAt); the caller refuses the login.
    if row.suspended_at.is_some() && !login_restores {
        return Ok(row.id);
    }
    // A successful login proves the account is live: re-enable a record that was superseded
    // earlier and has now come back under a new name.
    diesel::update(users::table.find(&row.id))
        .set((
            users::username.eq(&du.username),
            users::display_name.eq(&du.display_name),
            users::first_name.eq(&du.first_name),
            users::last_name.eq(&du.last_name),
            users::email.eq(&du.email),
            users::is_admin.eq(du.is_admin),
            users::is_enabled.eq(true),
            users::last_login_at.eq(Some(to_ms(now))),
        ))
        .execute(conn)?;
    if login_restores && row.suspended_at.is_some() {
        diesel::update(users::table.find(&row.id))
            .set(users::suspended_at.eq(None::<i64>))
            .execute(conn)?;
    }
    revocation::announce(conn, &Revoked::User(row.id.clone()))?;
    if (login_restores && row.suspended_at.is_some()) || !row.is_enabled {
        audit::record(
            conn,
            now,
            &Event::new("user.restore", &Actor::system("login"))
                .target("user", &row.id, &du.username)
                .detail(format!(
                    "directory {dir}: a successful login proves the account is back"
                )),
        )?;
    }
    Ok(row.id)
}

/// Whose record an OpenID Connect login gets ([`decide_oidc_login`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum OidcRecord {
    /// The identity's own record: found by `sub`, or a SCIM-provisioned one that this login
    /// links to its `sub` (`link`).
    Own { id: String, link: bool },
    /// The identity has no record yet: a new one under the claimed name.
    New,
    /// Another record holds the claimed name: the login is refused and nothing changes.
    NameTaken,
}

/// The rule of an OpenID Connect login, pure. The identity is the directory (issuer) plus
/// `sub`, always; the username claim is only a label that, at many providers, people can
/// edit. So a name never renames, disables or hands over another record. Inputs:
/// - `by_sub`: the record with this directory and stable id `sub`;
/// - `by_external_id`: a record provisioned through SCIM with `externalId` = `sub`;
/// - `by_name`: the record holding the claimed username in this directory;
/// - `names_trusted`: the directory's `username_claim_is_provider_controlled`: only then may
///   a provisioned record waiting under the claimed name be linked.
///
/// Only records still waiting for their first login (stable id `scim:...`) are ever linked.
pub(crate) fn decide_oidc_login(
    by_sub: Option<&UserRow>,
    by_external_id: Option<&UserRow>,
    by_name: Option<&UserRow>,
    names_trusted: bool,
) -> OidcRecord {
    let waiting = |r: &&UserRow| r.external_id.starts_with(SCIM_PENDING_PREFIX);
    let own = match by_sub {
        Some(r) => Some((r, false)),
        None => by_external_id
            .filter(waiting)
            .or(by_name.filter(|r| names_trusted && waiting(r)))
            .map(|r| (r, true)),
    };
    // A deprovisioned record is left exactly as it is; the caller refuses the login.
    if let Some((r, _)) = own.filter(|(r, _)| r.suspended_at.is_some()) {
        return OidcRecord::Own {
            id: r.id.clone(),
            link: false,
        };
    }
    if by_name.is_some_and(|n| own.is_none_or(|(o, _)| o.id != n.id)) {
        return OidcRecord::NameTaken;
    }
    match own {
        Some((r, link)) => OidcRecord::Own {
            id: r.id.clone(),
            link,
        },
        None => OidcRecord::New,
    }
}

/// What one attempt of an OpenID Connect upsert came to.
enum OidcUpsert {
    Done(Box<UserInfo>),
    /// Refused for a name conflict (already in the audit trail): the message for the person.
    NameTaken(String),
}

/// Creates, links or refreshes the record of an OpenID Connect login ([`decide_oidc_login`]).
/// A claimed name that another record holds refuses the login with 409 and records
/// `login.name_conflict` (outcome failure, both stable ids); nothing else changes.
pub async fn upsert_oidc_login(
    app: &Services,
    directory_id: &str,
    du: DirectoryUser,
    actor: &Actor,
) -> Result<UserInfo> {
    let du = visible_names(du);
    let once = match upsert_oidc_once(app, directory_id, du.clone(), actor).await {
        // The person's first logins on two replicas at once: one inserted, the other's
        // insert hit the unique index. The retry finds the record (or the name's holder).
        Err(Error::Conflict(_)) => upsert_oidc_once(app, directory_id, du, actor).await?,
        other => other?,
    };
    match once {
        OidcUpsert::Done(info) => Ok(*info),
        OidcUpsert::NameTaken(message) => Err(Error::conflict(message)),
    }
}

async fn upsert_oidc_once(
    app: &Services,
    directory_id: &str,
    du: DirectoryUser,
    actor: &Actor,
) -> Result<OidcUpsert> {
    let now = app.clock.now();
    let names_trusted = match app.directory(directory_id) {
        Some(crate::directory::Directory::Oidc(o)) => {
            o.config().username_claim_is_provider_controlled
        }
        _ => false,
    };
    let dir = directory_id.to_string();
    let config = app.config.clone();
    let actor = actor.clone();
    let out = app
        .store
        .write(move |conn| {
            let in_dir = || users::table.filter(users::directory_id.eq(&dir)).into_boxed();
            let by_sub: Option<UserRow> = in_dir()
                .filter(users::external_id.eq(&du.external_id))
                .select(UserRow::as_select())
                .first(conn)
                .optional()?;
            // Only a first login looks for a provisioned record to link.
            let by_external_id: Option<UserRow> = match by_sub {
                Some(_) => None,
                None => in_dir()
                    .filter(users::external_id.like(format!("{SCIM_PENDING_PREFIX}%")))
                    .filter(users::scim_external_id.eq(&du.external_id))
                    .order(users::created_at.asc())
                    .select(UserRow::as_select())
                    .first(conn)
                    .optional()?,
            };
            let by_name: Option<UserRow> = in_dir()
                .filter(users::username.eq(&du.username))
                .select(UserRow::as_select())
                .first(conn)
                .optional()?;
            let decision = decide_oidc_login(
                by_sub.as_ref(),
                by_external_id.as_ref(),
                by_name.as_ref(),
                names_trusted,
            );
            let id = match decision {
                OidcRecord::NameTaken => {
                    let holder = by_name.ok_or_else(|| {
                        Error::Internal("a name conflict without the name's holder".into())
                    })?;
                    audit::record(
                        conn,
                        now,
                        &Event::new("login.name_conflict", &actor)
                            .failed()
                            .target("user", &holder.id, &holder.username)
                            .detail(format!(
                                "directory {dir}: the identity with stable id {} signed in with the name `{}`, which the record with stable id {} holds; the login was refused and neither record changed",
                                du.external_id, du.username, holder.external_id
                            )),
                    )?;
                    return Ok(OidcUpsert::NameTaken(format!(
                        "login refused: the name `{}` that the provider sent for you belongs to another account of directory `{dir}`; nothing was changed. Ask an administrator (the audit trail has it as login.name_conflict)",
                        du.username
                    )));
                }
                OidcRecord::Own { id, link } => {
                    let row = find(conn, &id)?;
                    if link {
                        diesel::update(users::table.find(&id))
                            .set(users::external_id.eq(&du.external_id))
                            .execute(conn)?;
                    }
                    // An OpenID provider may still sign in someone SCIM deprovisioned:
                    // that restores nothing.
                    refresh_in(conn, &dir, row, &du, now, false)?
                }
                OidcRecord::New => {
                    let row = directory_user_row(&dir, du.clone(), now, Some(now));
                    diesel::insert_into(users::table).values(&row).execute(conn)?;
                    row.id
                }
            };
            let row = find(conn, &id)?;
            Ok(OidcUpsert::Done(Box::new(with_window(conn, &config, row)?)))
        })
        .await?;
    if let OidcUpsert::Done(info) = &out {
        revocation::changed(app, Revoked::User(info.row.id.clone()));
    }
    Ok(out)
}

/// A directory's names as stored: without control and format characters (bidi overrides,
/// zero-width spaces), which could make one person's name pass for another's in the pages,
/// lists and mails. We cannot refuse what a directory sends, so we drop them; the username
/// stays as sent, since logins and lookups match on it.
fn visible_names(mut du: DirectoryUser) -> DirectoryUser {
    let clean = |v: Option<String>| {
        v.map(|s| crate::text::visible(&s))
            .filter(|s| !s.is_empty())
    };
    du.display_name = clean(du.display_name);
    du.first_name = clean(du.first_name);
    du.last_name = clean(du.last_name);
    du
}

/// The session duration in force for a user, in minutes: their override, else the system
/// option `Authentication/DefaultSessionDuration`.
pub fn session_minutes(conn: &mut DbConn, config: &Config, row: &UserRow) -> Result<i64> {
    match session_override(row) {
        Some(m) => Ok(m),
        None => options::current_i64(conn, config, options::DEFAULT_SESSION_DURATION),
    }
}

/// A new record for a user a directory describes (no password: the directory checks it).
pub(crate) fn directory_user_row(
    directory_id: &str,
    du: DirectoryUser,
    now: DateTime<Utc>,
    last_login: Option<DateTime<Utc>>,
) -> UserRow {
    UserRow {
        id: uuid::Uuid::new_v4().to_string(),
        directory_id: directory_id.to_string(),
        external_id: du.external_id,
        username: du.username,
        display_name: du.display_name,
        first_name: du.first_name,
        last_name: du.last_name,
        email: du.email,
        is_admin: du.is_admin,
        is_enabled: true,
        password_hash: None,
        created_at: to_ms(now),
        last_login_at: last_login.map(to_ms),
        access_key_validity_minutes: None,
        suspended_at: None,
        scim_external_id: None,
        session_duration_minutes: None,
        is_service_account: false,
        manager_id: None,
    }
}

/// What [`create_from_event`] found or did.
#[derive(Debug, PartialEq, Eq)]
pub enum FromEvent {
    Created(String),
    /// A record with this stable id exists already (the event spelled the name differently).
    Exists(String),
    /// Another record holds the name: left for that person's next login or sync to sort out.
    NameTaken,
}

/// Creates the record of a directory user whom a trusted system reported signing in before
/// their first login here (`create_users_from_events`). No `lastLoginAt` yet: the event that
/// caused it sets that, forward-only like any other.
pub async fn create_from_event(
    app: &Services,
    actor: &Actor,
    directory_id: &str,
    du: DirectoryUser,
) -> Result<FromEvent> {
    let du = visible_names(du);
    let now = app.clock.now();
    let dir = directory_id.to_string();
    let actor = actor.clone();
    app.store
        .write(move |conn| {
            let existing: Option<String> = users::table
                .filter(users::directory_id.eq(&dir))
                .filter(users::external_id.eq(&du.external_id))
                .select(users::id)
                .first(conn)
                .optional()?;
            if let Some(id) = existing {
                return Ok(FromEvent::Exists(id));
            }
            let taken: i64 = users::table
                .filter(users::directory_id.eq(&dir))
                .filter(users::username.eq(&du.username))
                .count()
                .get_result(conn)?;
            if taken > 0 {
                return Ok(FromEvent::NameTaken);
            }
            let row = directory_user_row(&dir, du, now, None);
            diesel::insert_into(users::table)
                .values(&row)
                .execute(conn)?;
            audit::record(
                conn,
                now,
                &Event::new("user.create", &actor)
                    .target("user", &row.id, &row.username)
                    .detail(format!("directory {dir}: from a reported login event")),
            )?;
            Ok(FromEvent::Created(row.id))
        })
        .await
}

/// Creates a user in the built-in directory.
pub async fn create_local(
    app: &Services,
    actor: &Actor,
    username: &str,
    password: Secret,
    is_admin: bool,
) -> Result<UserRow> {
    validate_username(username)?;
    validate_password(&password)?;
    let hash = app.hasher.hash(password).await?;
    let now = app.clock.now();
    let dir = app.builtin_id().to_string();
    let username = username.to_string();
    let actor = actor.clone();
    app.store
        .write(move |conn| {
            let taken: i64 = users::table
                .filter(users::directory_id.eq(&dir))
                .filter(users::username.eq(&username))
                .count()
                .get_result(conn)?;
            if taken > 0 {
                return Err(Error::conflict(format!(
                    "a built-in user named `{username}` already exists"
                )));
            }
            let id = uuid::Uuid::new_v4().to_string();
            let row = UserRow {
                id: id.clone(),
                directory_id: dir,
                // The built-in directory is its own upstream: the stable id is the user id.
                external_id: id,
                username,
                display_name: None,
                first_name: None,
                last_name: None,
                email: None,
                is_admin,
                is_enabled: true,
                password_hash: Some(hash),
                created_at: to_ms(now),
                last_login_at: None,
                access_key_validity_minutes: None,
                suspended_at: None,
                scim_external_id: None,
                session_duration_minutes: None,
                is_service_account: false,
                manager_id: None,
            };
            diesel::insert_into(users::table)
                .values(&row)
                .execute(conn)?;
            audit::record(
                conn,
                now,
                &Event::new("user.create", &actor)
                    .target("user", &row.id, &row.username)
                    .detail(if is_admin {
                        "built-in admin"
                    } else {
                        "built-in user"
                    }),
            )?;
            Ok(row)
        })
        .await
}

/// Sets a built-in user's password and ends that user's sessions.
pub async fn set_local_password(
    app: &Services,
    actor: &Actor,
    username: &str,
    password: Secret,
) -> Result<()> {
    validate_password(&password)?;
    let hash = app.hasher.hash(password).await?;
    let now = app.clock.now();
    let dir = app.builtin_id().to_string();
    let username = username.to_string();
    let actor = actor.clone();
    let id = app
        .store
        .write(move |conn| {
            let row: UserRow = users::table
                .filter(users::directory_id.eq(&dir))
                .filter(users::username.eq(&username))
                .select(UserRow::as_select())
                .first(conn)
                .optional()?
                .ok_or_else(|| Error::not_found(format!("no built-in user named `{username}`")))?;
            if row.is_service_account {
                return Err(Error::invalid(format!(
                    "`{username}` is a service account: it has no password and never logs in; give it access keys with an expiry"
                )));
            }
            diesel::update(users::table.find(&row.id))
                .set(users::password_hash.eq(Some(hash)))
                .execute(conn)?;
            // Interactive sessions end with the old password; key sessions are not tied to it.
            revocation::announce(conn, &Revoked::User(row.id.clone()))?;
            diesel::delete(
                sessions::table
                    .filter(sessions::user_id.eq(&row.id))
                    .filter(sessions::access_key_id.is_null()),
            )
            .execute(conn)?;
            audit::record(
                conn,
                now,
                &Event::new("user.password", &actor).target("user", &row.id, &row.username),
            )?;
            Ok(row.id)
        })
        .await?;
    revocation::changed(app, Revoked::User(id));
    Ok(())
}

/// On the very first start (no admin at all) creates the built-in `admin` with a random
/// password and returns that password, to be shown once.
pub async fn ensure_initial_admin(app: &Services) -> Result<Option<Secret>> {
    let admins: i64 = app
        .store
        .read(|conn| {
            Ok(users::table
                .filter(users::is_admin.eq(true))
                .count()
                .get_result(conn)?)
        })
        .await?;
    if admins > 0 {
        return Ok(None);
    }
    let password = Secret::new(crate::keys::format::new_password()[4..].to_string());
    match create_local(
        app,
        &Actor::system("first start"),
        "admin",
        password.clone(),
        true,
    )
    .await
    {
        Ok(_) => Ok(Some(password)),
        Err(Error::Conflict(_)) => {
            tracing::warn!(
                "no admin exists and a built-in user `admin` is already there; \
                 create one with `accesskeyd local-user add NAME --admin`"
            );
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(external_id: &str, username: &str) -> UserRow {
        let du = DirectoryUser {
            external_id: external_id.into(),
            username: username.into(),
            display_name: None,
            first_name: None,
            last_name: None,
            email: None,
            is_admin: false,
        };
        directory_user_row("idp", du, Utc::now(), None)
    }

    fn own(r: &UserRow, link: bool) -> OidcRecord {
        OidcRecord::Own {
            id: r.id.clone(),
            link,
        }
    }

    #[test]
    fn a_name_someone_else_holds_never_moves_their_record() {
        // mallory (sub-mallory) sets her username to `tom` at the provider.
        let tom = row("sub-tom", "tom");
        assert_eq!(
            decide_oidc_login(None, None, Some(&tom), false),
            OidcRecord::NameTaken,
            "her first login"
        );
        assert_eq!(
            decide_oidc_login(None, None, Some(&tom), true),
            OidcRecord::NameTaken,
            "trusting names links provisioned records only, never someone's live one"
        );
        let mallory = row("sub-mallory", "mallory");
        assert_eq!(
            decide_oidc_login(Some(&mallory), None, Some(&tom), false),
            OidcRecord::NameTaken,
            "a later login, renamed at the provider"
        );
    }

    #[test]
    fn the_identity_is_the_subject_whatever_the_name() {
        let ann = row("sub-ann", "ann");
        assert_eq!(
            decide_oidc_login(Some(&ann), None, Some(&ann), false),
            own(&ann, false)
        );
        assert_eq!(
            decide_oidc_login(Some(&ann), None, None, false),
            own(&ann, false),
            "renamed at the provider to a free name"
        );
        assert_eq!(decide_oidc_login(None, None, None, false), OidcRecord::New);
    }

    #[test]
    fn provisioned_records_link_by_external_id_or_by_a_trusted_name() {
        let waiting = row("scim:1", "ben");
        assert_eq!(
            decide_oidc_login(None, Some(&waiting), Some(&waiting), false),
            own(&waiting, true),
            "externalId = sub"
        );
        assert_eq!(
            decide_oidc_login(None, None, Some(&waiting), false),
            OidcRecord::NameTaken,
            "a name alone does not link unless the admin trusts the claim"
        );
        assert_eq!(
            decide_oidc_login(None, None, Some(&waiting), true),
            own(&waiting, true)
        );
        let other = row("scim:2", "ben2");
        assert_eq!(
            decide_oidc_login(None, Some(&other), Some(&waiting), true),
            OidcRecord::NameTaken,
            "linked by externalId, but the name is another record's"
        );
        let linked = row("sub-x", "ben");
        assert_eq!(
            decide_oidc_login(None, Some(&linked), None, false),
            OidcRecord::New,
            "a record already linked to another subject is never taken over"
        );
    }

    #[test]
    fn a_deprovisioned_record_stays_as_it_is() {
        let mut ben = row("sub-ben", "ben");
        ben.suspended_at = Some(1);
        let tom = row("sub-tom", "tom");
        assert_eq!(
            decide_oidc_login(Some(&ben), None, Some(&tom), false),
            own(&ben, false)
        );
        let mut waiting = row("scim:1", "ben");
        waiting.suspended_at = Some(1);
        assert_eq!(
            decide_oidc_login(None, Some(&waiting), Some(&waiting), false),
            own(&waiting, false),
            "not even linked"
        );
    }
}
