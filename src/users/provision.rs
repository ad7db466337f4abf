//! Users created here rather than by a login: built-in users and their passwords, people a
//! trusted system reports before their first login, and the first admin.

use super::*;
use crate::audit::{self, Actor, Event};
use crate::directory::builtin::{validate_password, validate_username};
use crate::directory::DirectoryUser;
use crate::error::{Error, Result};
use crate::ids::{DirectoryId, UserId};
use crate::revocation::{self, Revoked};
use crate::secret::Secret;
use crate::services::Services;
use crate::store::models::UserRow;
use crate::store::schema::{sessions, users};
use crate::store::timestamp::Timestamp;
use crate::store::user_rows;
use diesel::prelude::*;

/// What [`create_from_event`] found or did.
#[derive(Debug, PartialEq, Eq)]
pub enum FromEvent {
    Created(UserId),
    /// A record with this stable id exists already (the event spelled the name differently).
    Exists(UserId),
    /// Another record holds the name: left for that person's next login or sync to sort out.
    NameTaken,
}

/// Creates the record of a directory user whom a trusted system reported signing in before
/// their first login here (`create_users_from_events`). No `lastLoginAt` yet: the event that
/// caused it sets that, forward-only like any other.
pub async fn create_from_event(
    app: &Services,
    actor: &Actor,
    directory_id: &DirectoryId,
    du: DirectoryUser,
) -> Result<FromEvent> {
    let du = logins::visible_names(du);
    let now = app.clock.now();
    let dir = directory_id.clone();
    let actor = actor.clone();
    app.store
        .write(move |conn| {
            if let Some(existing) = user_rows::by_external_id(conn, &dir, &du.external_id)? {
                return Ok(FromEvent::Exists(existing.id));
            }
            if user_rows::username_taken(conn, &dir, &du.username)? {
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
    let dir = app.builtin_id().clone();
    let username = username.to_string();
    let actor = actor.clone();
    app.store
        .write(move |conn| {
            if user_rows::username_taken(conn, &dir, &username)? {
                return Err(Error::conflict(format!(
                    "a built-in user named `{username}` already exists"
                )));
            }
            let id = UserId::generate();
            let row = UserRow {
                id: id.clone(),
                directory_id: dir,
                // The built-in directory is its own upstream: the stable id is the user id.
                external_id: id.into_string(),
                username,
                display_name: None,
                first_name: None,
                last_name: None,
                email: None,
                is_admin,
                is_enabled: true,
                password_hash: Some(hash),
                created_at: Timestamp::from(now),
                last_login_at: None,
                access_key_validity_minutes: None,
                suspended_at: None,
                scim_external_id: None,
                session_duration_minutes: None,
                is_service_account: false,
                manager_id: None,
                suspended_by_signal: None,
                keys_lapsed_at: None,
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
    let dir = app.builtin_id().clone();
    let username = username.to_string();
    let actor = actor.clone();
    let id = app
        .store
        .write(move |conn| {
            let row: UserRow = user_rows::by_username(conn, &dir, &username)?
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
    let password = Secret::new(crate::key_format::new_password()[4..].to_string());
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
