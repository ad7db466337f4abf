//! Who answers for a service account, inside the transactions of the user domain: a
//! manager assigned (which resumes a suspended account) and, when a person is removed, the
//! accounts they answered for suspended. The service-account domain builds on these.

use crate::audit::{self, Actor, Event};
use crate::error::{Error, Result};
use crate::ids::{DirectoryId, UserId};
use crate::revocation::{announce, Revoked};
use crate::store::models::UserRow;
use crate::store::schema::users;
use crate::store::timestamp::Timestamp;
use crate::store::user_rows;
use crate::store::DbConn;
use chrono::{DateTime, Utc};
use diesel::prelude::*;

/// Finds the manager by id or `DIRECTORY:USERNAME`: a person (not a service account) who is
/// active.
pub(crate) fn resolve_manager(conn: &mut DbConn, reference: &str) -> Result<UserRow> {
    let reference = reference.trim();
    if reference.is_empty() {
        return Err(Error::invalid(
            "manager: required (a user id, or DIRECTORY:USERNAME)",
        ));
    }
    let found: Option<UserRow> = match user_rows::by_id(conn, &UserId::from(reference))? {
        Some(u) => Some(u),
        None => match reference.split_once(':') {
            Some((dir, name)) => user_rows::by_username(conn, &DirectoryId::from(dir), name)?,
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

fn find_service_account(conn: &mut DbConn, id: &UserId) -> Result<UserRow> {
    let row = user_rows::by_id(conn, id)?
        .filter(|u: &UserRow| u.is_service_account)
        .ok_or_else(|| Error::not_found(format!("no service account `{id}`")))?;
    Ok(row)
}

/// The manager part of an admin's update, inside its transaction: `id` must be a service
/// account; the new manager an active person.
pub(crate) fn assign_manager_in(
    conn: &mut DbConn,
    id: &UserId,
    manager: &str,
    actor: &Actor,
    now: DateTime<Utc>,
) -> Result<()> {
    let sa = find_service_account(conn, id)?;
    let manager = resolve_manager(conn, manager)?;
    diesel::update(users::table.find(&sa.id))
        .set((
            users::manager_id.eq(Some(&manager.id)),
            users::suspended_at.eq(None::<Timestamp>),
        ))
        .execute(conn)?;
    announce(conn, &Revoked::User(sa.id.clone()))?;
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
    let managed = user_rows::service_accounts_of(conn, &removed.id)?;
    for sa in &managed {
        diesel::update(users::table.find(&sa.id))
            .set((
                users::manager_id.eq(None::<UserId>),
                users::suspended_at.eq(Some(Timestamp::from(now))),
            ))
            .execute(conn)?;
        announce(conn, &Revoked::User(sa.id.clone()))?;
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
