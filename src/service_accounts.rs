//! Service accounts (the vendor's application service principals): non-human built-in users
//! created by admins. They never log in, so their keys carry an explicit expiry instead of
//! the last-login rule; each has a responsible person (its manager), and when that person is
//! removed the account is suspended — its keys refused — until an admin assigns someone else.

use crate::audit::{self, Actor, Event};
use crate::directory::builtin::validate_username;
use crate::error::{Error, Result};
use crate::ids::UserId;
use crate::services::Services;
use crate::store::schema::users;
use crate::store::user_rows;
use crate::users::{self as users_domain, UserInfo};
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

/// Creates a service account in the built-in directory: no password, so no interactive login.
pub async fn create(app: &Services, actor: &Actor, input: NewServiceAccount) -> Result<UserInfo> {
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
    let dir = app.builtin_id().clone();
    let actor = actor.clone();
    let config = app.config.clone();
    app.store
        .write(move |conn| {
            let manager = users_domain::managers::resolve_manager(conn, &input.manager)?;
            if user_rows::username_taken(conn, &dir, &username)? {
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
            row.external_id = row.id.to_string();
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

/// Assigns a (new) manager; a suspended account becomes active again.
pub async fn set_manager(
    app: &Services,
    actor: &Actor,
    id: &UserId,
    manager: &str,
) -> Result<UserInfo> {
    let update = users_domain::Update {
        manager: Some(manager.to_string()),
        ..users_domain::Update::default()
    };
    users_domain::update(app, actor, id, update).await
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
