//! Bearer tokens other systems present: SCIM provisioning tokens and login-event ingestion
//! tokens. A token is a random secret with a recognisable prefix, shown once and stored only
//! as its SHA-256 hash; here it is made, listed, revoked and checked, for both kinds.

use crate::audit::{self, Actor, Event};
use crate::error::{Error, Result};
use crate::ids::DirectoryId;
use crate::secret::Secret;
use crate::services::Services;
use crate::sessions::{random_token, token_hash};
use crate::store::schema::{event_tokens, scim_tokens};
use crate::store::timestamp::Timestamp;
use crate::store::DbConn;
use chrono::{DateTime, Utc};
use diesel::prelude::*;

/// Which kind of token, and so which table holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An identity provider's SCIM provisioning token (`scim_tokens`).
    Scim,
    /// A trusted system's login-event ingestion token (`event_tokens`).
    Events,
}

impl Kind {
    /// The start of every token of this kind, recognisable to secret scanners.
    pub const fn prefix(self) -> &'static str {
        match self {
            Kind::Scim => "akscim_",
            Kind::Events => "akevt_",
        }
    }

    /// What people call it in messages: `SCIM token`, `ingestion token`.
    pub const fn noun(self) -> &'static str {
        match self {
            Kind::Scim => "SCIM token",
            Kind::Events => "ingestion token",
        }
    }

    /// The answer to a request without a token of this kind.
    const fn required(self) -> &'static str {
        match self {
            Kind::Scim => "a SCIM bearer token is required",
            Kind::Events => "an ingestion token is required",
        }
    }

    /// The audit trail's target type; its actions are `<this>.create` and `<this>.revoke`.
    const fn audit_target(self) -> &'static str {
        match self {
            Kind::Scim => "scim_token",
            Kind::Events => "event_token",
        }
    }
}

/// The directories a token may report logins for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenScope {
    /// Made before tokens had scopes: every directory (built-in admins never).
    Every,
    /// These directory ids only.
    Only(Vec<DirectoryId>),
}

impl TokenScope {
    /// From the stored column: NULL is a token made before scopes. A value that cannot be
    /// read refuses the token rather than widening it.
    fn from_column(column: Option<&str>) -> Result<TokenScope> {
        match column {
            None => Ok(TokenScope::Every),
            Some(json) => serde_json::from_str(json)
                .map(TokenScope::Only)
                .map_err(|e| {
                    Error::Internal(format!(
                        "an ingestion token's directories are unreadable: {e}"
                    ))
                }),
        }
    }

    /// Whether events of `directory_id` may be reported with this token.
    pub fn covers(&self, directory_id: &DirectoryId) -> bool {
        match self {
            TokenScope::Every => true,
            TokenScope::Only(ids) => ids.iter().any(|d| d.eq_ignore_ascii_case(directory_id)),
        }
    }

    /// For people: `corp, builtin` or `every directory (made before scopes)`.
    pub fn describe(&self) -> String {
        match self {
            TokenScope::Every => "every directory (made before tokens had scopes)".into(),
            TokenScope::Only(ids) => ids
                .iter()
                .map(DirectoryId::as_str)
                .collect::<Vec<_>>()
                .join(", "),
        }
    }
}

/// What a token is for: the kind with what it may reach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// A SCIM token provisions this one OpenID Connect directory.
    Scim { directory: DirectoryId },
    /// An ingestion token reports logins of these directories.
    Events { scope: TokenScope },
}

impl Scope {
    pub fn kind(&self) -> Kind {
        match self {
            Scope::Scim { .. } => Kind::Scim,
            Scope::Events { .. } => Kind::Events,
        }
    }

    /// From a row's scope column (`scim_tokens.directory_id`, `event_tokens.directory_ids`).
    fn from_column(kind: Kind, column: Option<String>) -> Result<Scope> {
        match kind {
            Kind::Scim => column
                .map(|directory| Scope::Scim {
                    directory: directory.into(),
                })
                .ok_or_else(|| Error::Internal("a SCIM token without a directory".into())),
            Kind::Events => Ok(Scope::Events {
                scope: TokenScope::from_column(column.as_deref())?,
            }),
        }
    }

    /// The audit detail of a new token: `directory idp`, `directories corp, builtin`.
    fn detail(&self) -> String {
        match self {
            Scope::Scim { directory } => format!("directory {directory}"),
            Scope::Events { scope } => format!("directories {}", scope.describe()),
        }
    }
}

/// A token as lists show it (never the token itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenInfo {
    pub id: String,
    pub label: String,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub scope: Scope,
}

/// A stored token as read: id, label, created, last used and the scope column.
type Row = (String, String, Timestamp, Option<Timestamp>, Option<String>);

impl TokenInfo {
    fn from_row(kind: Kind, (id, label, created, used, scope): Row) -> Result<TokenInfo> {
        Ok(TokenInfo {
            id,
            label,
            created_at: created.at(),
            last_used_at: used.map(Timestamp::at),
            scope: Scope::from_column(kind, scope)?,
        })
    }
}

/// A new token of `kind`: its prefix and 256 random bits. Only [`hash`] of it is stored.
pub fn new_token(kind: Kind) -> Secret {
    Secret::new(random_token(kind.prefix()))
}

/// Stores a new token with its scope and records `<kind>_token.create`; returns its id and
/// the token, which is shown once. The caller has checked the scope's directories.
pub async fn create(app: &Services, label: &str, scope: Scope) -> Result<(String, Secret)> {
    // Tokens made today name their directories; only old rows reach every directory.
    let directory_ids = match &scope {
        Scope::Events {
            scope: TokenScope::Every,
        } => {
            return Err(Error::invalid(
                "directory: name at least one directory whose logins the token reports",
            ))
        }
        Scope::Events {
            scope: TokenScope::Only(ids),
        } => Some(serde_json::to_string(ids).map_err(|e| Error::Internal(e.to_string()))?),
        Scope::Scim { .. } => None,
    };
    let kind = scope.kind();
    let token = new_token(kind);
    let id = uuid::Uuid::new_v4().to_string();
    let now = app.clock.now();
    let (hash, label, tid) = (token_hash(token.expose()), label.to_string(), id.clone());
    app.store
        .write(move |conn| {
            match &scope {
                Scope::Scim { directory } => diesel::insert_into(scim_tokens::table)
                    .values((
                        scim_tokens::id.eq(&tid),
                        scim_tokens::directory_id.eq(directory),
                        scim_tokens::token_hash.eq(&hash),
                        scim_tokens::label.eq(&label),
                        scim_tokens::created_at.eq(Timestamp::from(now)),
                    ))
                    .execute(conn)?,
                Scope::Events { .. } => diesel::insert_into(event_tokens::table)
                    .values((
                        event_tokens::id.eq(&tid),
                        event_tokens::token_hash.eq(&hash),
                        event_tokens::label.eq(&label),
                        event_tokens::created_at.eq(Timestamp::from(now)),
                        event_tokens::directory_ids.eq(&directory_ids),
                    ))
                    .execute(conn)?,
            };
            let action = format!("{}.create", kind.audit_target());
            audit::record(
                conn,
                now,
                &Event::new(&action, &Actor::system("cli"))
                    .target(kind.audit_target(), &tid, &label)
                    .detail(scope.detail()),
            )
        })
        .await?;
    Ok((id, token))
}

/// Tokens of `kind` whose hash is `hash`, or all of them, oldest first.
fn load(conn: &mut DbConn, kind: Kind, hash: Option<&str>) -> Result<Vec<Row>> {
    Ok(match kind {
        Kind::Scim => {
            let mut q = scim_tokens::table.into_boxed();
            if let Some(h) = hash {
                q = q.filter(scim_tokens::token_hash.eq(h.to_string()));
            }
            q.order(scim_tokens::created_at)
                .select((
                    scim_tokens::id,
                    scim_tokens::label,
                    scim_tokens::created_at,
                    scim_tokens::last_used_at,
                    scim_tokens::directory_id.nullable(),
                ))
                .load(conn)?
        }
        Kind::Events => {
            let mut q = event_tokens::table.into_boxed();
            if let Some(h) = hash {
                q = q.filter(event_tokens::token_hash.eq(h.to_string()));
            }
            q.order(event_tokens::created_at)
                .select((
                    event_tokens::id,
                    event_tokens::label,
                    event_tokens::created_at,
                    event_tokens::last_used_at,
                    event_tokens::directory_ids,
                ))
                .load(conn)?
        }
    })
}

/// Every token of `kind`, oldest first.
pub async fn list(app: &Services, kind: Kind) -> Result<Vec<TokenInfo>> {
    let rows = app.store.read(move |conn| load(conn, kind, None)).await?;
    rows.into_iter()
        .map(|row| TokenInfo::from_row(kind, row))
        .collect()
}

/// Deletes a token of `kind` by its id and records `<kind>_token.revoke`.
pub async fn revoke(app: &Services, kind: Kind, id: &str) -> Result<()> {
    let id = id.to_string();
    let now = app.clock.now();
    app.store
        .write(move |conn| {
            let deleted = match kind {
                Kind::Scim => diesel::delete(scim_tokens::table.find(&id)).execute(conn)?,
                Kind::Events => diesel::delete(event_tokens::table.find(&id)).execute(conn)?,
            };
            if deleted == 0 {
                return Err(Error::not_found(format!(
                    "no {} with id `{id}`",
                    kind.noun()
                )));
            }
            let action = format!("{}.revoke", kind.audit_target());
            audit::record(
                conn,
                now,
                &Event::new(&action, &Actor::system("cli")).target(kind.audit_target(), &id, &id),
            )
        })
        .await
}

/// Checks a bearer value as a token of `kind` and records its use. The token is looked up
/// with a read: an unknown one (anyone can send those) never takes the write lock. Only a
/// found token's last use is written, on every use.
pub async fn authenticate(app: &Services, kind: Kind, bearer: Option<&str>) -> Result<TokenInfo> {
    let token = bearer
        .filter(|t| t.starts_with(kind.prefix()))
        .ok_or_else(|| Error::Unauthenticated(kind.required().into()))?;
    // Found by the hash of what was presented: raw secrets are never compared, and timing
    // reveals nothing of a stored one.
    let hash = token_hash(token);
    let found = app
        .store
        .read(move |conn| load(conn, kind, Some(&hash)))
        .await?
        .into_iter()
        .next();
    let Some(row) = found else {
        return Err(Error::Unauthenticated(format!(
            "unknown or revoked {}",
            kind.noun()
        )));
    };
    let mut info = TokenInfo::from_row(kind, row)?;
    let now = app.clock.now();
    let id = info.id.clone();
    app.store
        .write(move |conn| {
            let used = Some(Timestamp::from(now));
            match kind {
                Kind::Scim => diesel::update(scim_tokens::table.find(&id))
                    .set(scim_tokens::last_used_at.eq(used))
                    .execute(conn)?,
                Kind::Events => diesel::update(event_tokens::table.find(&id))
                    .set(event_tokens::last_used_at.eq(used))
                    .execute(conn)?,
            };
            Ok(())
        })
        .await?;
    info.last_used_at = Some(now);
    Ok(info)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_token_is_its_prefix_and_256_random_bits() {
        for kind in [Kind::Scim, Kind::Events] {
            let a = new_token(kind);
            let b = new_token(kind);
            let rest = a.expose().strip_prefix(kind.prefix()).unwrap();
            // 32 bytes in unpadded base64url.
            assert_eq!(rest.len(), 43, "{}", a.expose());
            assert!(rest
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
            assert_ne!(a.expose(), b.expose());
            assert_eq!(format!("{a:?}"), "[redacted]");
        }
        assert_eq!(Kind::Scim.prefix(), "akscim_");
        assert_eq!(Kind::Events.prefix(), "akevt_");
    }

    #[test]
    fn the_hash_is_stable_sha256_hex() {
        // Stored hashes of existing tokens must keep matching.
        assert_eq!(
            token_hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let t = new_token(Kind::Events);
        assert_eq!(token_hash(t.expose()), token_hash(t.expose()));
        assert_ne!(
            token_hash(t.expose()),
            token_hash(new_token(Kind::Events).expose())
        );
    }

    #[test]
    fn a_scoped_token_covers_its_directories_only() {
        let scope = TokenScope::Only(vec!["corp".into(), "builtin".into()]);
        assert!(scope.covers(&"corp".into()));
        assert!(
            scope.covers(&"CORP".into()),
            "directory ids compare in any case"
        );
        assert!(scope.covers(&"builtin".into()));
        assert!(!scope.covers(&"partner".into()));
        assert_eq!(scope.describe(), "corp, builtin");
    }

    #[test]
    fn a_token_from_before_scopes_covers_every_directory() {
        assert_eq!(TokenScope::from_column(None).unwrap(), TokenScope::Every);
        assert!(TokenScope::Every.covers(&"partner".into()));
        assert_eq!(
            TokenScope::from_column(Some(r#"["corp"]"#)).unwrap(),
            TokenScope::Only(vec!["corp".into()])
        );
        // Unreadable is refused, never widened to every directory.
        assert!(TokenScope::from_column(Some("corp")).is_err());
    }

    #[test]
    fn the_scope_column_is_read_by_kind() {
        assert_eq!(
            Scope::from_column(Kind::Scim, Some("idp".into())).unwrap(),
            Scope::Scim {
                directory: "idp".into()
            }
        );
        assert!(Scope::from_column(Kind::Scim, None).is_err());
        assert_eq!(
            Scope::from_column(Kind::Events, None).unwrap(),
            Scope::Events {
                scope: TokenScope::Every
            }
        );
        let scim = Scope::Scim {
            directory: "idp".into(),
        };
        assert_eq!(
            (scim.kind(), scim.detail()),
            (Kind::Scim, "directory idp".into())
        );
        let events = Scope::Events {
            scope: TokenScope::Only(vec!["corp".into(), "builtin".into()]),
        };
        assert_eq!(
            (events.kind(), events.detail()),
            (Kind::Events, "directories corp, builtin".into())
        );
    }
}
