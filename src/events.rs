//! Login events reported by trusted systems (the application accesskeyd sits beside, an
//! identity provider's event hook): each moves a user's `lastLoginAt` forward, never back,
//! so people who sign in elsewhere keep their keys alive.

use crate::audit::{self, Actor, Event};
use crate::directory::{Directory, DirectoryError};
use crate::error::{Error, Result};
use crate::ids::{DirectoryId, UserId};
use crate::secret::Secret;
use crate::services::Services;
use crate::sessions::token_hash;
use crate::store::models::to_ms;
use crate::store::schema::{event_tokens, users as users_t};
use crate::users;
use chrono::{DateTime, Duration, Utc};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};

/// Prefix of ingestion tokens, recognisable to secret scanners.
pub const TOKEN_PREFIX: &str = "akevt_";
/// Most events accepted in one request.
pub const MAX_BATCH: usize = 1000;
/// How far in the future an event's time may be (clocks differ a little).
pub const FUTURE_SKEW: Duration = Duration::minutes(5);

/// One reported login.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LoginEvent {
    pub directory_id: DirectoryId,
    pub username: Option<String>,
    pub external_id: Option<String>,
    pub at: DateTime<Utc>,
    /// How the person signed in (free text, e.g. "windows", "okta"), for the audit trail.
    pub method: Option<String>,
}

/// What became of one event.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct EventResult {
    pub index: usize,
    /// `updated`, `created` (the user was created from the directory, then updated),
    /// `unchanged` (an equal or later login is known), `unknown_user`, `rejected`.
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<UserId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
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
            TokenScope::Only(ids) => join(ids),
        }
    }
}

/// `corp, builtin`.
fn join(ids: &[DirectoryId]) -> String {
    ids.iter()
        .map(DirectoryId::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Who reports: a token's label (the reporting system's name) and its scope.
#[derive(Debug, Clone)]
pub struct Reporter {
    pub label: String,
    pub scope: TokenScope,
}

/// Why a token may not move this user's `lastLoginAt`, if it may not. Built-in admins sign
/// in themselves: a reported login would keep the admin's keys alive, and the keys of the
/// one account that can change every rule. Nobody else is refused.
pub fn refusal(is_builtin_admin: bool) -> Option<&'static str> {
    is_builtin_admin.then_some(
        "a built-in admin's lastLoginAt moves only when they sign in themselves, never by a reported login",
    )
}

/// A new ingestion token for the directories `directories` (at least one; each must be
/// configured), shown once; only its hash is stored.
pub async fn create_token(
    app: &Services,
    label: &str,
    directories: &[DirectoryId],
) -> Result<(String, Secret)> {
    if directories.is_empty() {
        return Err(Error::invalid(
            "directory: name at least one directory whose logins the token reports",
        ));
    }
    let mut ids: Vec<DirectoryId> = Vec::new();
    for d in directories {
        let dir = app
            .directory(d)
            .ok_or_else(|| Error::invalid(format!("directory: no directory `{d}`")))?;
        if !ids.iter().any(|i| i == dir.id()) {
            ids.push(dir.id().clone());
        }
    }
    let scope = serde_json::to_string(&ids).map_err(|e| Error::Internal(e.to_string()))?;
    let token = crate::sessions::random_token(TOKEN_PREFIX);
    let id = uuid::Uuid::new_v4().to_string();
    let now = app.clock.now();
    let (hash, label, tid) = (token_hash(&token), label.to_string(), id.clone());
    let detail = format!("directories {}", join(&ids));
    app.store
        .write(move |conn| {
            diesel::insert_into(event_tokens::table)
                .values((
                    event_tokens::id.eq(&tid),
                    event_tokens::token_hash.eq(&hash),
                    event_tokens::label.eq(&label),
                    event_tokens::created_at.eq(to_ms(now)),
                    event_tokens::directory_ids.eq(Some(&scope)),
                ))
                .execute(conn)?;
            audit::record(
                conn,
                now,
                &Event::new("event_token.create", &Actor::system("cli"))
                    .target("event_token", &tid, &label)
                    .detail(detail),
            )
        })
        .await?;
    Ok((id, Secret::new(token)))
}

/// An ingestion token as `event-token list` shows it (never the token itself).
#[derive(Debug, Clone)]
pub struct TokenInfo {
    pub id: String,
    pub label: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    pub scope: TokenScope,
}

/// Every ingestion token.
pub async fn list_tokens(app: &Services) -> Result<Vec<TokenInfo>> {
    type Row = (String, String, i64, Option<i64>, Option<String>);
    let rows: Vec<Row> = app
        .store
        .read(|conn| {
            Ok(event_tokens::table
                .order(event_tokens::created_at)
                .select((
                    event_tokens::id,
                    event_tokens::label,
                    event_tokens::created_at,
                    event_tokens::last_used_at,
                    event_tokens::directory_ids,
                ))
                .load(conn)?)
        })
        .await?;
    rows.into_iter()
        .map(|(id, label, created_at, last_used_at, scope)| {
            Ok(TokenInfo {
                id,
                label,
                created_at,
                last_used_at,
                scope: TokenScope::from_column(scope.as_deref())?,
            })
        })
        .collect()
}

pub async fn revoke_token(app: &Services, id: &str) -> Result<()> {
    let id = id.to_string();
    let now = app.clock.now();
    app.store
        .write(move |conn| {
            if diesel::delete(event_tokens::table.find(&id)).execute(conn)? == 0 {
                return Err(Error::not_found(format!(
                    "no ingestion token with id `{id}`"
                )));
            }
            audit::record(
                conn,
                now,
                &Event::new("event_token.revoke", &Actor::system("cli")).target(
                    "event_token",
                    &id,
                    &id,
                ),
            )
        })
        .await
}

/// Checks an ingestion token; returns who reports. The token is looked up with a read: an
/// unknown one (anyone can send those) never takes the write lock. Only a found token's
/// last use is written.
pub async fn authenticate(app: &Services, bearer: Option<&str>) -> Result<Reporter> {
    let token = bearer
        .filter(|t| t.starts_with(TOKEN_PREFIX))
        .ok_or_else(|| Error::Unauthenticated("an ingestion token is required".into()))?;
    let hash = token_hash(token);
    let h = hash.clone();
    let found: Option<(String, String, Option<String>)> = app
        .store
        .read(move |conn| {
            Ok(event_tokens::table
                .filter(event_tokens::token_hash.eq(&h))
                .select((
                    event_tokens::id,
                    event_tokens::label,
                    event_tokens::directory_ids,
                ))
                .first(conn)
                .optional()?)
        })
        .await?;
    let Some((id, label, scope)) = found else {
        return Err(Error::Unauthenticated(
            "unknown or revoked ingestion token".into(),
        ));
    };
    let scope = TokenScope::from_column(scope.as_deref())?;
    let now = to_ms(app.clock.now());
    app.store
        .write(move |conn| {
            diesel::update(event_tokens::table.find(&id))
                .set(event_tokens::last_used_at.eq(Some(now)))
                .execute(conn)?;
            Ok(())
        })
        .await?;
    Ok(Reporter { label, scope })
}

/// Applies a batch: known users in one transaction, forward only (replaying a batch changes
/// nothing more). Then, for LDAP directories with `create_users_from_events`, unknown
/// usernames are looked up upstream; those found are created and their events applied
/// (status `created`). A directory that cannot be asked leaves its events `unknown_user`.
pub async fn ingest(
    app: &Services,
    source: &Reporter,
    events: Vec<LoginEvent>,
) -> Result<Vec<EventResult>> {
    let mut results = apply(app, source, events.clone()).await?;
    let actor = Actor::system(&format!("events:{}", source.label));
    let mut created = Vec::new();
    for r in results.iter_mut().filter(|r| r.status == "unknown_user") {
        let e = &events[r.index];
        let Some(Directory::Ldap(dir)) = app.directory(&e.directory_id) else {
            continue;
        };
        if !dir.config().create_users_from_events {
            continue;
        }
        let Some(username) = &e.username else {
            r.message = Some("creating users from events needs a username".into());
            continue;
        };
        match dir.lookup(username).await {
            Ok(du) => {
                let external_id = du.external_id.clone();
                let outcome = users::create_from_event(app, &actor, &dir.config().id, du).await?;
                if outcome == users::FromEvent::NameTaken {
                    r.message = Some(
                        "another record holds this name; it is sorted out at the next login or sync"
                            .into(),
                    );
                    continue;
                }
                // Applied by the stable id: the directory may spell the name differently.
                let mut e = e.clone();
                e.external_id = Some(external_id);
                created.push((r.index, matches!(outcome, users::FromEvent::Created(_)), e));
            }
            Err(DirectoryError::InvalidCredentials) => {
                r.message = Some("not found in the directory".into());
            }
            Err(other) => {
                tracing::warn!(directory = %dir.config().id, error = %other, "login event: directory lookup failed");
                // The detail (addresses, DNs) stays in the log line above.
                r.message =
                    Some("the directory could not be asked; the server log has the details".into());
            }
        }
    }
    if !created.is_empty() {
        let marks: Vec<(usize, bool)> = created.iter().map(|(i, new, _)| (*i, *new)).collect();
        let batch: Vec<LoginEvent> = created.into_iter().map(|(_, _, e)| e).collect();
        for ((index, new), mut r) in marks.into_iter().zip(apply(app, source, batch).await?) {
            r.index = index;
            if new && r.status == "updated" {
                r.status = "created";
            }
            results[index] = r;
        }
    }
    Ok(results)
}

async fn apply(
    app: &Services,
    source: &Reporter,
    events: Vec<LoginEvent>,
) -> Result<Vec<EventResult>> {
    if events.is_empty() {
        return Err(Error::invalid("events: at least one event is required"));
    }
    if events.len() > MAX_BATCH {
        return Err(Error::invalid(format!(
            "events: at most {MAX_BATCH} per request, got {}",
            events.len()
        )));
    }
    let now = app.clock.now();
    let known: Vec<DirectoryId> = app.directories.iter().map(|d| d.id().clone()).collect();
    let builtin = app.builtin_id().clone();
    let scope = source.scope.clone();
    let actor = Actor::system(&format!("events:{}", source.label));
    app.store
        .write(move |conn| {
            let mut results = Vec::with_capacity(events.len());
            let mut updated = 0;
            for (index, e) in events.into_iter().enumerate() {
                let result =
                    |status, user_id: Option<UserId>, message: Option<String>| EventResult {
                        index,
                        status,
                        user_id,
                        message,
                    };
                let Some(dir) = known
                    .iter()
                    .find(|k| k.eq_ignore_ascii_case(&e.directory_id))
                else {
                    results.push(result(
                        "rejected",
                        None,
                        Some(format!("no directory `{}`", e.directory_id)),
                    ));
                    continue;
                };
                if !scope.covers(dir) {
                    results.push(result(
                        "rejected",
                        None,
                        Some(format!(
                            "this token reports logins of {} only, not of directory `{dir}`",
                            scope.describe()
                        )),
                    ));
                    continue;
                }
                if e.at > now + FUTURE_SKEW {
                    results.push(result(
                        "rejected",
                        None,
                        Some("the time is in the future".into()),
                    ));
                    continue;
                }
                let mut q = users_t::table
                    .filter(users_t::directory_id.eq(dir))
                    .into_boxed();
                q = match (&e.external_id, &e.username) {
                    (Some(x), _) => q.filter(users_t::external_id.eq(x.clone())),
                    (None, Some(u)) => q.filter(users_t::username.eq(u.clone())),
                    (None, None) => {
                        results.push(result(
                            "rejected",
                            None,
                            Some("username or externalId is required".into()),
                        ));
                        continue;
                    }
                };
                let found: Option<(UserId, Option<i64>, bool)> = q
                    .select((users_t::id, users_t::last_login_at, users_t::is_admin))
                    .first(conn)
                    .optional()?;
                let Some((id, last, is_admin)) = found else {
                    results.push(result("unknown_user", None, None));
                    continue;
                };
                if let Some(why) = refusal(is_admin && dir.eq_ignore_ascii_case(&builtin)) {
                    results.push(result("rejected", None, Some(why.into())));
                    continue;
                }
                let at = to_ms(e.at);
                if last.is_some_and(|l| l >= at) {
                    results.push(result("unchanged", Some(id), None));
                    continue;
                }
                diesel::update(users_t::table.find(&id))
                    .set(users_t::last_login_at.eq(Some(at)))
                    .execute(conn)?;
                updated += 1;
                results.push(result(
                    "updated",
                    Some(id),
                    e.method.map(|m| format!("method {m}")),
                ));
            }
            if updated > 0 {
                audit::record(
                    conn,
                    now,
                    &Event::new("login.event", &actor).detail(format!(
                        "{updated} of {} reported login(s) moved lastLoginAt forward",
                        results.len()
                    )),
                )?;
            }
            Ok(results)
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn only_built_in_admins_are_refused_whatever_the_scope() {
        assert!(refusal(true).unwrap().contains("built-in admin"));
        assert_eq!(refusal(false), None);
    }
}
