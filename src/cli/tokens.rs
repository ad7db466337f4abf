//! `scim-token` and `event-token`: bearer tokens for identity providers and login reporters,
//! created (printed once), listed and revoked through one path for both kinds.

use crate::app::App;
use crate::bearer;
use crate::clock::SystemClock;
use crate::config::Config;
use crate::ids::DirectoryId;
use clap::Subcommand;
use std::sync::Arc;

#[derive(Debug, Subcommand)]
pub enum ScimToken {
    /// Create a token for a directory and print it once.
    Create {
        /// The OpenID Connect directory the provider provisions.
        directory: DirectoryId,
        /// What the token is for (e.g. "Entra ID provisioning").
        #[arg(long, default_value = "SCIM provisioning")]
        label: String,
    },
    /// List tokens (never the tokens themselves) with their last use.
    List,
    /// Revoke a token by its id.
    Revoke {
        /// The token's id (from `list`).
        id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum EventToken {
    /// Create a token for one or more directories and print it once.
    Create {
        /// The reporting system (e.g. "intranet portal").
        #[arg(long, default_value = "login events")]
        label: String,
        /// A directory whose users' logins the token reports (repeat for several). Built-in
        /// admins are never moved by a token.
        #[arg(long = "directory", value_name = "ID", required = true)]
        directories: Vec<DirectoryId>,
    },
    /// List tokens (never the tokens themselves) with their last use.
    List,
    /// Revoke a token by its id.
    Revoke {
        /// The token's id (from `list`).
        id: String,
    },
}

/// `scim-token` and `event-token` alike: what to do with a token of either kind.
pub(super) enum TokenCommand {
    Create(NewToken),
    List,
    Revoke(String),
}

/// A token to create, with what its kind needs.
pub(super) enum NewToken {
    Scim {
        directory: DirectoryId,
        label: String,
    },
    Events {
        label: String,
        directories: Vec<DirectoryId>,
    },
}

impl From<ScimToken> for TokenCommand {
    fn from(cmd: ScimToken) -> Self {
        match cmd {
            ScimToken::Create { directory, label } => {
                TokenCommand::Create(NewToken::Scim { directory, label })
            }
            ScimToken::List => TokenCommand::List,
            ScimToken::Revoke { id } => TokenCommand::Revoke(id),
        }
    }
}

impl From<EventToken> for TokenCommand {
    fn from(cmd: EventToken) -> Self {
        match cmd {
            EventToken::Create { label, directories } => {
                TokenCommand::Create(NewToken::Events { label, directories })
            }
            EventToken::List => TokenCommand::List,
            EventToken::Revoke { id } => TokenCommand::Revoke(id),
        }
    }
}

/// One line of `scim-token list` / `event-token list` (never the token itself).
fn token_line(t: &bearer::TokenInfo) -> String {
    let what = match &t.scope {
        bearer::Scope::Scim { directory } => format!("{directory}  {}", t.label),
        bearer::Scope::Events { scope } => {
            format!("{}  directories {}", t.label, scope.describe())
        }
    };
    format!(
        "{}  {what}  created {}  last used {}",
        t.id,
        t.created_at.to_rfc3339(),
        t.last_used_at
            .map_or("never".to_string(), |u| u.to_rfc3339())
    )
}

pub(super) async fn bearer_token(
    config: Config,
    kind: bearer::Kind,
    cmd: TokenCommand,
) -> anyhow::Result<()> {
    let app = App::new(config, Arc::new(SystemClock)).await?;
    let noun = kind.noun();
    match cmd {
        TokenCommand::Create(new) => {
            // For whom, as the command line named them.
            let (id, token, whom) = match new {
                NewToken::Scim { directory, label } => {
                    let (id, token) = crate::scim::create_token(&app, &directory, &label).await?;
                    (id, token, format!("directory `{directory}`"))
                }
                NewToken::Events { label, directories } => {
                    let (id, token) =
                        crate::events::create_token(&app, &label, &directories).await?;
                    let names: Vec<&str> = directories.iter().map(DirectoryId::as_str).collect();
                    (id, token, format!("directories {}", names.join(", ")))
                }
            };
            println!(
                "{noun} {id} for {whom} (shown only this once):\n\n    {}\n",
                token.expose()
            );
            if kind == bearer::Kind::Scim {
                println!("SCIM base URL: {}/scim/v2", app.config.server.public_url());
            }
        }
        TokenCommand::List => {
            for t in bearer::list(&app, kind).await? {
                println!("{}", token_line(&t));
            }
        }
        TokenCommand::Revoke(id) => {
            bearer::revoke(&app, kind, &id).await?;
            println!("{noun} {id} revoked");
        }
    }
    Ok(())
}
