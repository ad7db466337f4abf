//! `service-account` and `local-user`: accounts an admin manages from the command line
//! (passwords read from standard input, never from arguments).

use crate::app::App;
use crate::audit::Actor;
use crate::clock::SystemClock;
use crate::config::Config;
use crate::ids::UserId;
use crate::secret::Secret;
use crate::users;
use clap::Subcommand;
use std::io::{BufRead, IsTerminal};
use std::sync::Arc;

#[derive(Debug, Subcommand)]
pub enum ServiceAccount {
    /// Create a service account (no password; its keys carry an expiry).
    Create {
        /// Display name, e.g. "Nightly ETL".
        #[arg(long)]
        name: String,
        /// Username in the built-in directory (default: derived from the name).
        #[arg(long)]
        username: Option<String>,
        /// The responsible person: a user id, or DIRECTORY:USERNAME (e.g. corp:alice).
        #[arg(long)]
        manager: String,
    },
    /// List service accounts with their managers and state.
    List,
    /// Assign a new manager; a suspended account becomes active again.
    Reassign {
        /// The service account's user id.
        id: UserId,
        /// A user id, or DIRECTORY:USERNAME.
        #[arg(long)]
        manager: String,
    },
    /// Delete a service account with its keys.
    Delete {
        /// The service account's user id.
        id: UserId,
    },
}

#[derive(Debug, Subcommand)]
pub enum LocalUser {
    /// Create a built-in user. The password is read from standard input (prompted twice on
    /// a terminal), never from the command line.
    Add {
        /// Username.
        name: String,
        /// Make the user an admin.
        #[arg(long)]
        admin: bool,
    },
    /// Set a built-in user's password (read from standard input) and end their sessions.
    Passwd {
        /// Username.
        name: String,
    },
}

pub(super) async fn service_account(config: Config, cmd: ServiceAccount) -> anyhow::Result<()> {
    use crate::service_accounts as sa;
    let app = App::new(config, Arc::new(SystemClock)).await?;
    let actor = Actor::system("cli");
    let show = |u: &users::UserInfo| {
        let state = match (&u.row.suspended_at, &u.manager_name) {
            (Some(_), _) => "SUSPENDED (no manager)".to_string(),
            (None, Some(m)) => format!("manager {m}"),
            (None, None) => "no manager".to_string(),
        };
        println!(
            "{}  {}  {}  {state}",
            u.row.id,
            u.row.username,
            u.row.display_name.as_deref().unwrap_or("")
        );
    };
    match cmd {
        ServiceAccount::Create {
            name,
            username,
            manager,
        } => {
            let info = sa::create(
                &app,
                &actor,
                sa::NewServiceAccount {
                    name,
                    username,
                    manager,
                },
            )
            .await?;
            print!("created service account ");
            show(&info);
        }
        ServiceAccount::List => {
            let (list, _) = users::list(&app, Some(true), 0, i64::MAX).await?;
            for u in &list {
                show(u);
            }
        }
        ServiceAccount::Reassign { id, manager } => {
            let info = sa::set_manager(&app, &actor, &id, &manager).await?;
            show(&info);
        }
        ServiceAccount::Delete { id } => {
            let target = users::get(&app, &id).await?;
            if !target.row.is_service_account {
                anyhow::bail!("`{id}` is not a service account");
            }
            let (row, deleted) = users::delete(&app, &actor, &id).await?;
            println!(
                "service account {} deleted with {} access key(s)",
                row.username, deleted.keys
            );
        }
    }
    Ok(())
}

/// Reads a password from standard input: prompted twice without echo on a terminal, else
/// the first line.
fn read_password() -> anyhow::Result<Secret> {
    if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password("Password: ")?;
        let second = rpassword::prompt_password("Repeat password: ")?;
        if first != second {
            anyhow::bail!("the passwords do not match");
        }
        return Ok(Secret::new(first));
    }
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    let password = line.trim_end_matches(['\n', '\r']).to_string();
    if password.is_empty() {
        anyhow::bail!("no password on standard input");
    }
    Ok(Secret::new(password))
}

pub(super) async fn local_user(config: Config, cmd: LocalUser) -> anyhow::Result<()> {
    let app = App::new(config, Arc::new(SystemClock)).await?;
    let actor = Actor::system("cli");
    match cmd {
        LocalUser::Add { name, admin } => {
            let password = read_password()?;
            let row = users::create_local(&app, &actor, &name, password, admin).await?;
            println!(
                "created built-in {} `{}` (id {})",
                if admin { "admin" } else { "user" },
                row.username,
                row.id
            );
        }
        LocalUser::Passwd { name } => {
            let password = read_password()?;
            users::set_local_password(&app, &actor, &name, password).await?;
            println!("password of `{name}` changed; their interactive sessions were ended");
        }
    }
    Ok(())
}
