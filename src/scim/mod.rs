//! SCIM 2.0 provisioning (RFC 7643/7644) for OpenID Connect directories: the identity
//! provider creates, updates and deprovisions users. `active` set to false suspends the user
//! (keys refused, sessions ended) and keeps the record until a DELETE, or until the
//! directory's removal grace ends; a DELETE removes the user with keys and sessions on the
//! same path as every removal (after the grace, if the directory has one).

pub mod protocol;

use crate::audit::{self, Actor, Event};
use crate::bearer;
use crate::directory::Directory;
use crate::error::{Error, Result};
use crate::ids::{DirectoryId, UserId};
use crate::revocation::{self, Revoked};
use crate::secret::Secret;
use crate::services::Services;
use crate::store::models::UserRow;
use crate::store::schema::{sessions, users};
use crate::store::timestamp::Timestamp;
use crate::store::user_rows;
use crate::users::{self as user_domain, SCIM_PENDING_PREFIX};
use diesel::prelude::*;
use protocol::{Email, Filter, ScimError, ScimUser};

impl From<Error> for ScimError {
    /// The status and text of the API's one mapping (`Error::answer`): a
    /// detail for the log only (SQL text, a bug) reaches the provider as a fixed text with
    /// the error id of the log line that holds it.
    fn from(e: Error) -> ScimError {
        let scim_type = match &e {
            Error::Invalid(_) => Some("invalidValue"),
            Error::Conflict(_) => Some("uniqueness"),
            _ => None,
        };
        let answer = e.answer();
        ScimError {
            status: answer.status.as_u16(),
            scim_type,
            detail: answer.message,
        }
    }
}

/// Names a provider sends are shown in the pages and in mails: invisible and control
/// characters (bidi overrides, zero-width) go, as for names read from directories.
fn visible_names(mut u: ScimUser) -> ScimUser {
    let clean = |v: Option<String>| v.map(|s| crate::text::visible(&s));
    u.display_name = clean(u.display_name);
    u.given_name = clean(u.given_name);
    u.family_name = clean(u.family_name);
    u
}

fn actor(directory: &DirectoryId) -> Actor {
    Actor::system(&format!("scim:{directory}"))
}

/// A new SCIM token for an OpenID Connect directory, shown once; only its hash is stored.
pub async fn create_token(
    app: &Services,
    directory: &DirectoryId,
    label: &str,
) -> Result<(String, Secret)> {
    match app.directory(directory) {
        Some(Directory::Oidc(_)) => {}
        Some(_) => {
            return Err(Error::invalid(format!(
                "directory `{directory}` is not an OpenID Connect directory; SCIM provisions those only"
            )))
        }
        None => return Err(Error::not_found(format!("no directory with id `{directory}`"))),
    }
    let scope = bearer::Scope::Scim {
        directory: directory.clone(),
    };
    bearer::create(app, label, scope).await
}

/// The directory a SCIM bearer token belongs to.
pub async fn authenticate(
    app: &Services,
    presented: Option<&str>,
) -> std::result::Result<DirectoryId, ScimError> {
    let token = bearer::authenticate(app, bearer::Kind::Scim, presented).await?;
    let bearer::Scope::Scim { directory: dir } = token.scope else {
        return Err(Error::Internal("a SCIM token read as another kind".into()).into());
    };
    // The directory may have been removed from the configuration since.
    match app.directory(&dir) {
        Some(Directory::Oidc(_)) => Ok(dir),
        _ => Err(ScimError::unauthorized(format!(
            "the token's directory `{dir}` is not configured"
        ))),
    }
}

/// A user as SCIM shows them; `email_primary` is their `scim_email_primary`.
fn to_scim(r: &UserRow, email_primary: bool) -> ScimUser {
    ScimUser {
        id: Some(r.id.clone()),
        external_id: r.scim_external_id.clone(),
        user_name: r.username.clone(),
        active: r.is_active(),
        given_name: r.first_name.clone(),
        family_name: r.last_name.clone(),
        display_name: r.display_name.clone(),
        email: r.email.clone().map(|value| Email {
            value,
            primary: email_primary,
        }),
        created: Some(r.created_at.at()),
        last_modified: Some(
            r.last_login_at
                .unwrap_or(r.created_at)
                .max(r.created_at)
                .at(),
        ),
    }
}

/// The directory's `removal_grace_hours`, as a duration (zero: no timed deletion).
fn grace(app: &Services, dir: &DirectoryId) -> chrono::Duration {
    match app.directory(dir) {
        Some(Directory::Oidc(o)) => {
            chrono::Duration::hours(i64::try_from(o.config().removal_grace_hours).unwrap_or(0))
        }
        _ => chrono::Duration::zero(),
    }
}

/// Suspends inside a transaction: keys are refused and sessions end from now, the record
/// stays (SCIM shows it with `active: false`). The state of a user the provider set inactive,
/// and of one it deleted while the directory has a grace; the cleanup job deletes them when
/// the grace ends (`remove_expired_in`), and `active: true` restores them before. A user
/// already suspended keeps their first suspension time, so the grace is not restarted.
/// Returns the ended sessions (announced), for the caller to forget after the commit.
fn suspend_in(
    conn: &mut crate::store::DbConn,
    row: &UserRow,
    who: &Actor,
    now: chrono::DateTime<chrono::Utc>,
    grace: chrono::Duration,
    why: &str,
) -> Result<Vec<Revoked>> {
    // A suspension by a change signal becomes the provider's, with its grace from now.
    if row.suspended_at.is_some() && row.suspended_by_signal.is_none() {
        return Ok(Vec::new());
    }
    diesel::update(users::table.find(&row.id))
        .set((
            users::suspended_at.eq(Some(Timestamp::from(now))),
            users::suspended_by_signal.eq(None::<String>),
        ))
        .execute(conn)?;
    revocation::announce(conn, &Revoked::User(row.id.clone()))?;
    // Sessions end rather than wait: a person re-activated later signs in again, so a session
    // opened before the suspension (on a lost laptop, say) never comes back with them. Each
    // is announced: a remembered session would otherwise outlive its row once the user is
    // back.
    let ended: Vec<String> = sessions::table
        .filter(sessions::user_id.eq(&row.id))
        .select(sessions::token_hash)
        .load(conn)?;
    diesel::delete(sessions::table.filter(sessions::user_id.eq(&row.id))).execute(conn)?;
    let ended: Vec<Revoked> = ended.into_iter().map(Revoked::Session).collect();
    for s in &ended {
        revocation::announce(conn, s)?;
    }
    let until = if grace.is_zero() {
        "kept until deleted or re-activated via SCIM".to_string()
    } else {
        format!("deleted in {} h unless re-activated", grace.num_hours())
    };
    audit::record(
        conn,
        now,
        &Event::new("user.suspend", who)
            .target("user", &row.id, &row.username)
            .detail(format!(
                "directory {}; {why}; keys refused, {} session(s) ended; {until}",
                row.directory_id,
                ended.len()
            )),
    )?;
    Ok(ended)
}

/// DELETE inside a transaction: the user goes with keys and sessions at once, or, with a
/// grace, is suspended until it ends (`suspend_in`, whose ended sessions it returns).
fn deprovision_in(
    conn: &mut crate::store::DbConn,
    row: &UserRow,
    who: &Actor,
    now: chrono::DateTime<chrono::Utc>,
    grace: chrono::Duration,
    why: &str,
) -> Result<Vec<Revoked>> {
    if grace.is_zero() {
        user_domain::remove_in(conn, &row.id, "user.deprovision", who, now, why)?;
        return Ok(Vec::new());
    }
    suspend_in(conn, row, who, now, grace, why)
}

fn find_in(conn: &mut crate::store::DbConn, dir: &DirectoryId, id: &UserId) -> Result<UserRow> {
    user_domain::find(conn, id)
        .ok()
        .filter(|r| r.directory_id == *dir)
        .ok_or_else(|| Error::not_found(format!("no user `{id}`")))
}

/// The user of `dir` with this id as SCIM shows them.
fn scim_user_in(
    conn: &mut crate::store::DbConn,
    dir: &DirectoryId,
    id: &UserId,
) -> Result<ScimUser> {
    let row = find_in(conn, dir, id)?;
    let primary = users::table
        .find(&row.id)
        .select(users::scim_email_primary)
        .first(conn)?;
    Ok(to_scim(&row, primary))
}

/// Users of the directory that match `filter`, paged (1-based `start`).
pub async fn list(
    app: &Services,
    dir: &DirectoryId,
    filter: Option<Filter>,
    start: u64,
    count: u64,
) -> Result<(Vec<ScimUser>, u64)> {
    let dir = dir.clone();
    // Providers look users up one by one (`userName eq "..."` before each create): narrow
    // those in the database so a lookup does not read the whole directory. The exact
    // (case-insensitive, and-ed) match still happens below.
    let narrow = filter.as_ref().and_then(first_eq);
    let all: Vec<(UserRow, bool)> = app
        .store
        .read(move |conn| {
            let mut q = users::table
                .filter(users::directory_id.eq(&dir))
                .into_boxed();
            q = match narrow {
                Some((protocol::Attr::UserName, v)) => {
                    q.filter(lower(users::username).eq(v.to_lowercase()))
                }
                Some((protocol::Attr::ExternalId, v)) => q.filter(users::scim_external_id.eq(v)),
                Some((protocol::Attr::Id, v)) => q.filter(users::id.eq(v.to_ascii_lowercase())),
                None => q,
            };
            Ok(q.order(users::created_at)
                .select((UserRow::as_select(), users::scim_email_primary))
                .load(conn)?)
        })
        .await?;
    let matching: Vec<ScimUser> = all
        .iter()
        .map(|(r, primary)| to_scim(r, *primary))
        .filter(|u| filter.as_ref().is_none_or(|f| protocol::matches(f, u)))
        .collect();
    let total = matching.len() as u64;
    let page = matching
        .into_iter()
        .skip(start.saturating_sub(1) as usize)
        .take(count as usize)
        .collect();
    Ok((page, total))
}

diesel::define_sql_function!(fn lower(x: diesel::sql_types::Text) -> diesel::sql_types::Text);

/// One equality every match must satisfy (the left-most of an `and` chain).
fn first_eq(f: &Filter) -> Option<(protocol::Attr, String)> {
    match f {
        Filter::Eq(a, v) => Some((*a, v.clone())),
        Filter::And(l, r) => first_eq(l).or_else(|| first_eq(r)),
    }
}

pub async fn get(app: &Services, dir: &DirectoryId, id: &UserId) -> Result<ScimUser> {
    let (dir, id) = (dir.clone(), id.to_ascii_lowercase());
    app.store
        .read(move |conn| scim_user_in(conn, &dir, &id))
        .await
}

fn check_user_name(name: &str) -> Result<()> {
    if name.trim() != name || name.chars().any(char::is_control) || name.chars().count() > 256 {
        return Err(Error::invalid(
            "userName: no surrounding spaces or control characters, at most 256 characters",
        ));
    }
    Ok(())
}

/// Provisions a user. They exist without keys until they log in (the first login links the
/// record to the provider's subject by userName). `active: false` creates them disabled.
pub async fn create(app: &Services, dir: &DirectoryId, u: ScimUser) -> Result<ScimUser> {
    check_user_name(&u.user_name)?;
    let u = visible_names(u);
    let now = app.clock.now();
    let dir = dir.clone();
    app.store
        .write(move |conn| {
            if user_rows::username_taken(conn, &dir, &u.user_name)? {
                return Err(Error::conflict(format!(
                    "userName `{}` already exists",
                    u.user_name
                )));
            }
            let id = UserId::generate();
            let row = UserRow {
                id: id.clone(),
                directory_id: dir.clone(),
                external_id: format!("{SCIM_PENDING_PREFIX}{id}"),
                username: u.user_name.clone(),
                display_name: u.display_name.clone(),
                first_name: u.given_name.clone(),
                last_name: u.family_name.clone(),
                email: u.email.as_ref().map(|e| e.value.clone()),
                is_admin: false,
                is_enabled: u.active,
                password_hash: None,
                created_at: Timestamp::from(now),
                last_login_at: None,
                access_key_validity_minutes: None,
                suspended_at: None,
                scim_external_id: u.external_id.clone(),
                session_duration_minutes: None,
                is_service_account: false,
                manager_id: None,
                suspended_by_signal: None,
                keys_lapsed_at: None,
            };
            let primary = u.email.as_ref().is_none_or(|e| e.primary);
            diesel::insert_into(users::table)
                .values((&row, users::scim_email_primary.eq(primary)))
                .execute(conn)?;
            audit::record(
                conn,
                now,
                &Event::new("user.provision", &actor(&dir))
                    .target("user", &row.id, &row.username)
                    .detail(format!("directory {dir} via SCIM")),
            )?;
            Ok(to_scim(&row, primary))
        })
        .await
}

/// Replaces a user's attributes (PUT, or the result of a PATCH) and returns the user as
/// stored. `active: false` suspends an active user (`suspend_in`); `active: true` restores a
/// suspended one, keys intact.
pub async fn update(
    app: &Services,
    dir: &DirectoryId,
    id: &UserId,
    u: ScimUser,
) -> Result<ScimUser> {
    check_user_name(&u.user_name)?;
    let u = visible_names(u);
    let now = app.clock.now();
    let grace = grace(app, dir);
    let (dir, id) = (dir.clone(), id.to_ascii_lowercase());
    let who = actor(&dir);
    let revoked = id.clone();
    let (out, ended) = app
        .store
        .write(move |conn| {
            let row = find_in(conn, &dir, &id)?;
            revocation::announce(conn, &Revoked::User(row.id.clone()))?;
            // Suspension is the change from active to inactive; a user who is already
            // inactive (created so, or suspended) only has attributes updated.
            let mut ended = Vec::new();
            if !u.active && (row.is_active() || row.suspended_by_signal.is_some()) {
                ended = suspend_in(conn, &row, &who, now, grace, "set inactive via SCIM")?;
            }
            if u.active && row.suspended_at.is_some() {
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
                        .detail(format!("directory {dir}: re-activated via SCIM")),
                )?;
            }
            if u.user_name != row.username && user_rows::username_taken(conn, &dir, &u.user_name)? {
                return Err(Error::conflict(format!(
                    "userName `{}` already exists",
                    u.user_name
                )));
            }
            diesel::update(users::table.find(&row.id))
                .set((
                    users::username.eq(&u.user_name),
                    users::display_name.eq(&u.display_name),
                    users::first_name.eq(&u.given_name),
                    users::last_name.eq(&u.family_name),
                    users::email.eq(u.email.as_ref().map(|e| &e.value)),
                    users::scim_email_primary.eq(u.email.as_ref().is_none_or(|e| e.primary)),
                    users::scim_external_id.eq(&u.external_id),
                    // A suspended user stays suspended (and otherwise as is) until re-activated;
                    // anyone else is enabled exactly when the provider says active.
                    users::is_enabled.eq(if row.suspended_at.is_some() && !u.active {
                        row.is_enabled
                    } else {
                        u.active
                    }),
                ))
                .execute(conn)?;
            audit::record(
                conn,
                now,
                &Event::new("user.provision", &who)
                    .target("user", &row.id, &u.user_name)
                    .detail(format!("directory {dir}: attributes updated via SCIM")),
            )?;
            Ok((scim_user_in(conn, &dir, &row.id)?, ended))
        })
        .await?;
    // Suspended or restored: standing changed either way.
    revocation::changed(app, Revoked::User(revoked));
    for s in ended {
        revocation::changed(app, s);
    }
    Ok(out)
}

/// PATCH: applies the operations to the current user, then stores the result.
pub async fn patch(
    app: &Services,
    dir: &DirectoryId,
    id: &UserId,
    body: &serde_json::Value,
) -> std::result::Result<ScimUser, ScimError> {
    let mut u = get(app, dir, id).await?;
    protocol::apply_patch(&mut u, body)?;
    Ok(update(app, dir, id, u).await?)
}

/// DELETE: deprovisions the user with keys and sessions (after the grace, if any).
pub async fn delete(app: &Services, dir: &DirectoryId, id: &UserId) -> Result<()> {
    let now = app.clock.now();
    let grace = grace(app, dir);
    let (dir, id) = (dir.clone(), id.to_ascii_lowercase());
    let who = actor(&dir);
    let i = id.clone();
    let ended = app
        .store
        .write(move |conn| {
            let row = find_in(conn, &dir, &i)?;
            deprovision_in(conn, &row, &who, now, grace, "deleted via SCIM")
        })
        .await?;
    revocation::changed(app, Revoked::User(id));
    for s in ended {
        revocation::changed(app, s);
    }
    Ok(())
}

/// Deletes users of `directory` whose SCIM deprovisioning grace has ended (inside the caller's
/// transaction); returns their ids. Without a grace nothing ends: a user set inactive stays
/// suspended until the provider deletes or re-activates them (its DELETE removes at once).
pub fn remove_expired_in(
    conn: &mut crate::store::DbConn,
    directory: &DirectoryId,
    grace: chrono::Duration,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Vec<UserId>> {
    if grace.is_zero() {
        return Ok(Vec::new());
    }
    let due: Vec<UserId> = users::table
        .filter(users::directory_id.eq(directory))
        .filter(users::suspended_at.le(Timestamp::from(now - grace)))
        // A change signal's suspension waits for the provider's DELETE or a reconciliation.
        .filter(users::suspended_by_signal.is_null())
        .select(users::id)
        .load(conn)?;
    let who = actor(directory);
    for id in &due {
        user_domain::remove_in(
            conn,
            id,
            "user.deprovision",
            &who,
            now,
            "SCIM deprovisioning grace ended",
        )?;
    }
    Ok(due)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_identity_provider_reads_an_error_id_not_the_database_text() {
        let e = ScimError::from(Error::outage(
            crate::error::DATABASE_UNAVAILABLE,
            "the database is unavailable: connection to server at \"db.internal\" failed",
        ));
        assert_eq!(e.status, 503);
        assert!(e
            .detail
            .starts_with("the database is unavailable; try again shortly (error id "));
        assert!(!e.detail.contains("db.internal"));

        let e = ScimError::from(Error::conflict("userName `ann` already exists"));
        assert_eq!((e.status, e.scim_type), (409, Some("uniqueness")));
        assert_eq!(e.detail, "userName `ann` already exists");
    }
}
