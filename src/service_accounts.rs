//! Service accounts (the vendor's application service principals): non-human built-in users
//! created by admins. They never log in, so their keys carry an explicit expiry instead of
//! the last-login rule; each has a responsible person (its manager), and when that person is
//! removed the account is suspended — its keys refused — until an admin assigns someone else.

use crate::app::App;
use crate::audit::{self, Actor, Event};
use crate::directory::builtin::validate_username;
use crate::error::{Error, Result};
use crate::store::models::{to_ms, UserRow};
use crate::store::schema::users;
use crate::store::DbConn;
use crate::users::{self as users_domain, UserInfo};
use chrono::{DateTime, Utc};
use diesel::prelude::*;

/// What an admin gives to create a service account.
#[derive(Debug, Clone)]
pub struct NewServiceAccount {
    /// Display name, e.g. "Nightly ETL".
    pub name: String,
    /// Login-style name in the built-in directory; derived from `name` when absent.
    pub username: Option<String>,
    /// The responsible person: a user id, or `DIRECTORY:USERNAME`.
    pub manager: String,
}

/// `Nightly ETL` → `nightly-etl`.
fn username_from(name: &str) -> String {
    let mut out = String::new();
    for c in name.trim().chars() {
        if c.is_alphanumeric() || c == '.' || c == '_' || c == '-' {
            out.extend(c.to_lowercase());
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_matches('-').to_string()
}

/// Finds the manager by id or `DIRECTORY:USERNAME`: a person (not a service account) who is
/// active.
fn resolve_manager(conn: &mut DbConn, reference: &str) -> Result<UserRow> {
    let reference = reference.trim();
    if reference.is_empty() {
        return Err(Error::invalid(
            "manager: required (a user id, or DIRECTORY:USERNAME)",
        ));
    }
    let found: Option<UserRow> = match users::table
        .find(reference.to_ascii_lowercase())
        .select(UserRow::as_select())
        .first(conn)
        .optional()?
    {
        Some(u) => Some(u),
        None => match reference.split_once(':') {
            Some((dir, name)) => users::table
                .filter(users::directory_id.eq(dir))
                .filter(users::username.eq(name))
                .select(UserRow::as_select())
                .first(conn)
                .optional()?,
            None => None,
        },
    };
    let manager = found.ok_or_else(|| {
        Error::invalid(format!(
            "manager: no user `{reference}` (give a user id, or DIRECTORY:USERNAME)"
        ))
    })?;
    if manager.is_service_account {
        return Err(Error::invalid(
            "manager: must be a person, not another service account",
        ));
    }
    if !manager.is_active() {
        return Err(Error::invalid(format!(
            "manager: `{}` is disabled or suspended",
            manager.username
        )));
    }
    Ok(manager)
}

/// Creates a service account in the built-in directory: no password, so no interactive login.
pub async fn create(app: &App, actor: &Actor, input: NewServiceAccount) -> Result<UserInfo> {
    let name = input.name.trim().to_string();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(Error::invalid("name: 1 to 200 characters"));
    }
    // Shown in lists, pages and managers' mails: it must not pass for another account.
    crate::text::check_visible("name", &name)?;
    let username = input
        .username
        .map(|u| u.trim().to_string())
        .unwrap_or_else(|| username_from(&name));
    validate_username(&username)?;
    let now = app.clock.now();
    let dir = app.builtin_id().to_string();
    let actor = actor.clone();
    let config = app.config.clone();
    app.store
        .write(move |conn| {
            let manager = resolve_manager(conn, &input.manager)?;
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
            let mut row = users_domain::directory_user_row(
                &dir,
                crate::directory::DirectoryUser {
                    external_id: String::new(),
                    username,
                    display_name: Some(name),
                    first_name: None,
                    last_name: None,
                    email: None,
                    is_admin: false,
                },
                now,
                None,
            );
            // Built-in users are their own stable id.
            row.external_id = row.id.clone();
            row.is_service_account = true;
            row.manager_id = Some(manager.id.clone());
            diesel::insert_into(users::table)
                .values(&row)
                .execute(conn)?;
            audit::record(
                conn,
                now,
                &Event::new("service_account.create", &actor)
                    .target("user", &row.id, &row.username)
                    .detail(format!("manager {} ({})", manager.username, manager.id)),
            )?;
            users_domain::with_window(conn, &config, row)
        })
        .await
}

fn find_service_account(conn: &mut DbConn, id: &str) -> Result<UserRow> {
    let row = users::table
        .find(id.to_ascii_lowercase())
        .select(UserRow::as_select())
        .first(conn)
        .optional()?
        .filter(|u: &UserRow| u.is_service_account)
        .ok_or_else(|| Error::not_found(format!("no service account `{id}`")))?;
    Ok(row)
}

/// Assigns a (new) manager; a suspended account becomes active again.
pub async fn set_manager(app: &App, actor: &Actor, id: &str, manager: &str) -> Result<UserInfo> {
    let update = users_domain::Update {
        manager: Some(manager.to_string()),
        ..users_domain::Update::default()
    };
    users_domain::update(app, actor, id, update).await
}

/// The manager part of an admin's update, inside its transaction: `id` must be a service
/// account; the new manager an active person.
pub(crate) fn assign_manager_in(
    conn: &mut DbConn,
    id: &str,
    manager: &str,
    actor: &Actor,
    now: DateTime<Utc>,
) -> Result<()> {
    let sa = find_service_account(conn, id)?;
    let manager = resolve_manager(conn, manager)?;
    diesel::update(users::table.find(&sa.id))
        .set((
            users::manager_id.eq(Some(&manager.id)),
            users::suspended_at.eq(None::<i64>),
        ))
        .execute(conn)?;
    crate::revocation::announce(conn, &crate::revocation::Revoked::User(sa.id.clone()))?;
    let resumed = if sa.suspended_at.is_some() {
        "; the account was suspended and is active again"
    } else {
        ""
    };
    audit::record(
        conn,
        now,
        &Event::new("service_account.manager", actor)
            .target("user", &sa.id, &sa.username)
            .detail(format!(
                "manager {} ({}){resumed}",
                manager.username, manager.id
            )),
    )
}

/// Suspends the service accounts `removed` was responsible for, inside the removal's own
/// transaction (the one removal path calls this). Each is announced; forgetting the removed
/// manager also forgets, in this process, the accounts they managed (`auth_cache`).
pub(crate) fn suspend_managed_by(
    conn: &mut DbConn,
    removed: &UserRow,
    actor: &Actor,
    now: DateTime<Utc>,
    why: &str,
) -> Result<()> {
    let managed: Vec<UserRow> = users::table
        .filter(users::is_service_account.eq(true))
        .filter(users::manager_id.eq(&removed.id))
        .select(UserRow::as_select())
        .load(conn)?;
    for sa in &managed {
        diesel::update(users::table.find(&sa.id))
            .set((
                users::manager_id.eq(None::<String>),
                users::suspended_at.eq(Some(to_ms(now))),
            ))
            .execute(conn)?;
        crate::revocation::announce(conn, &crate::revocation::Revoked::User(sa.id.clone()))?;
        audit::record(
            conn,
            now,
            &Event::new("service_account.suspend", actor)
                .target("user", &sa.id, &sa.username)
                .detail(format!(
                    "its manager {} ({}) was removed ({why}); its keys are refused until an admin assigns a new manager",
                    removed.username, removed.id
                )),
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn usernames_come_from_names() {
        assert_eq!(super::username_from("Nightly ETL"), "nightly-etl");
        assert_eq!(
            super::username_from("  Power BI / Sales  "),
            "power-bi-sales"
        );
        assert_eq!(super::username_from("etl_v2.1"), "etl_v2.1");
    }
}
