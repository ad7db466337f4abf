//! Login events reported by trusted systems (the application accesskeyd sits beside, an
//! identity provider's event hook): each moves a user's `lastLoginAt` forward, never back,
//! so people who sign in elsewhere keep their keys alive.

use crate::app::App;
use crate::audit::{self, Actor, Event};
use crate::directory::{Directory, DirectoryError};
use crate::error::{Error, Result};
use crate::secret::Secret;
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
    pub directory_id: String,
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
    pub user_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// A new ingestion token, shown once; only its hash is stored.
pub async fn create_token(app: &App, label: &str) -> Result<(String, Secret)> {
    let token = crate::sessions::random_token(TOKEN_PREFIX);
    let id = uuid::Uuid::new_v4().to_string();
    let now = app.clock.now();
    let (hash, label, tid) = (token_hash(&token), label.to_string(), id.clone());
    app.store
        .write(move |conn| {
            diesel::insert_into(event_tokens::table)
                .values((
                    event_tokens::id.eq(&tid),
                    event_tokens::token_hash.eq(&hash),
                    event_tokens::label.eq(&label),
                    event_tokens::created_at.eq(to_ms(now)),
                ))
                .execute(conn)?;
            audit::record(
                conn,
                now,
                &Event::new("event_token.create", &Actor::system("cli")).target(
                    "event_token",
                    &tid,
                    &label,
                ),
            )
        })
        .await?;
    Ok((id, Secret::new(token)))
}

/// (id, label, created, last used) of every ingestion token.
pub async fn list_tokens(app: &App) -> Result<Vec<(String, String, i64, Option<i64>)>> {
    app.store
        .read(|conn| {
            Ok(event_tokens::table
                .order(event_tokens::created_at)
                .select((
                    event_tokens::id,
                    event_tokens::label,
                    event_tokens::created_at,
                    event_tokens::last_used_at,
                ))
                .load(conn)?)
        })
        .await
}

pub async fn revoke_token(app: &App, id: &str) -> Result<()> {
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

/// Checks an ingestion token; returns its label (the reporting system's name).
pub async fn authenticate(app: &App, bearer: Option<&str>) -> Result<String> {
    let token = bearer
        .filter(|t| t.starts_with(TOKEN_PREFIX))
        .ok_or_else(|| Error::Unauthenticated("an ingestion token is required".into()))?;
    let hash = token_hash(token);
    let now = to_ms(app.clock.now());
    let label: Option<String> = app
        .store
        .write(move |conn| {
            let label = event_tokens::table
                .filter(event_tokens::token_hash.eq(&hash))
                .select(event_tokens::label)
                .first(conn)
                .optional()?;
            if label.is_some() {
                diesel::update(event_tokens::table.filter(event_tokens::token_hash.eq(&hash)))
                    .set(event_tokens::last_used_at.eq(Some(now)))
                    .execute(conn)?;
            }
            Ok(label)
        })
        .await?;
    label.ok_or_else(|| Error::Unauthenticated("unknown or revoked ingestion token".into()))
}

/// Applies a batch: known users in one transaction, forward only (replaying a batch changes
/// nothing more). Then, for LDAP directories with `create_users_from_events`, unknown
/// usernames are looked up upstream; those found are created and their events applied
/// (status `created`). A directory that cannot be asked leaves its events `unknown_user`.
pub async fn ingest(app: &App, source: &str, events: Vec<LoginEvent>) -> Result<Vec<EventResult>> {
    let mut results = apply(app, source, events.clone()).await?;
    let actor = Actor::system(&format!("events:{source}"));
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
                r.message = Some(format!("the directory could not be asked: {other}"));
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

async fn apply(app: &App, source: &str, events: Vec<LoginEvent>) -> Result<Vec<EventResult>> {
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
    let known: Vec<String> = app.directories.iter().map(|d| d.id().to_string()).collect();
    let actor = Actor::system(&format!("events:{source}"));
    app.store
        .write(move |conn| {
            let mut results = Vec::with_capacity(events.len());
            let mut updated = 0;
            for (index, e) in events.into_iter().enumerate() {
                let result =
                    |status, user_id: Option<String>, message: Option<String>| EventResult {
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
                let found: Option<(String, Option<i64>)> = q
                    .select((users_t::id, users_t::last_login_at))
                    .first(conn)
                    .optional()?;
                let Some((id, last)) = found else {
                    results.push(result("unknown_user", None, None));
                    continue;
                };
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
