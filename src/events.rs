//! Login events reported by trusted systems (the application accesskeyd sits beside, an
//! identity provider's event hook): each moves a user's `lastLoginAt` forward, never back,
//! so people who sign in elsewhere keep their keys alive.

use crate::audit::{self, Actor, Event};
use crate::bearer;
pub use crate::bearer::TokenScope;
use crate::directory::{Directory, DirectoryError};
use crate::error::{Error, Result};
use crate::ids::{DirectoryId, UserId};
use crate::secret::Secret;
use crate::services::Services;
use crate::store::models::UserRow;
use crate::store::schema::users as users_t;
use crate::store::timestamp::Timestamp;
use crate::store::user_rows;
use crate::users;
use chrono::{DateTime, Duration, Utc};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};

/// Most events accepted in one request.
pub const MAX_BATCH: usize = 1000;
/// How far in the future an event's time may be (clocks differ a little).
pub const FUTURE_SKEW: Duration = Duration::minutes(5);

/// One reported login.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LoginEvent {
    pub directory_id: DirectoryId,
    pub username: Option<String>,
    pub external_id: Option<String>,
    pub at: DateTime<Utc>,
    /// How the person signed in (free text, e.g. "windows", "okta"), for the audit trail.
    pub method: Option<String>,
}

/// What became of one event; the JSON names are `updated`, `created`, `unchanged`,
/// `unknown_user` and `rejected`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EventStatus {
    /// `lastLoginAt` moved forward.
    Updated,
    /// The user was created from the directory, then updated.
    Created,
    /// An equal or later login is known.
    Unchanged,
    UnknownUser,
    Rejected,
}

/// What became of one event.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventResult {
    pub index: usize,
    pub status: EventStatus,
    #[schema(nullable = false)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<UserId>,
    #[schema(nullable = false)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
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
    let scope = bearer::Scope::Events {
        scope: TokenScope::Only(ids),
    };
    bearer::create(app, label, scope).await
}

/// Checks an ingestion token; returns who reports. An unknown token never takes the write
/// lock (`bearer::authenticate`).
pub async fn authenticate(app: &Services, presented: Option<&str>) -> Result<Reporter> {
    let token = bearer::authenticate(app, bearer::Kind::Events, presented).await?;
    let bearer::Scope::Events { scope } = token.scope else {
        return Err(Error::Internal(
            "an ingestion token read as another kind".into(),
        ));
    };
    Ok(Reporter {
        label: token.label,
        scope,
    })
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
    for r in results
        .iter_mut()
        .filter(|r| r.status == EventStatus::UnknownUser)
    {
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
            if new && r.status == EventStatus::Updated {
                r.status = EventStatus::Created;
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
                        EventStatus::Rejected,
                        None,
                        Some(format!("no directory `{}`", e.directory_id)),
                    ));
                    continue;
                };
                if !scope.covers(dir) {
                    results.push(result(
                        EventStatus::Rejected,
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
                        EventStatus::Rejected,
                        None,
                        Some("the time is in the future".into()),
                    ));
                    continue;
                }
                let found = match (&e.external_id, &e.username) {
                    (Some(x), _) => user_rows::by_external_id(conn, dir, x)?,
                    (None, Some(u)) => user_rows::by_username(conn, dir, u)?,
                    (None, None) => {
                        results.push(result(
                            EventStatus::Rejected,
                            None,
                            Some("username or externalId is required".into()),
                        ));
                        continue;
                    }
                };
                let Some(UserRow {
                    id,
                    last_login_at: last,
                    is_admin,
                    ..
                }) = found
                else {
                    results.push(result(EventStatus::UnknownUser, None, None));
                    continue;
                };
                if let Some(why) = refusal(is_admin && dir.eq_ignore_ascii_case(&builtin)) {
                    results.push(result(EventStatus::Rejected, None, Some(why.into())));
                    continue;
                }
                let at = Timestamp::from(e.at);
                if last.is_some_and(|l| l >= at) {
                    results.push(result(EventStatus::Unchanged, Some(id), None));
                    continue;
                }
                diesel::update(users_t::table.find(&id))
                    .set(users_t::last_login_at.eq(Some(at)))
                    .execute(conn)?;
                updated += 1;
                results.push(result(
                    EventStatus::Updated,
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
    fn only_built_in_admins_are_refused_whatever_the_scope() {
        assert!(refusal(true).unwrap().contains("built-in admin"));
        assert_eq!(refusal(false), None);
    }

    #[test]
    fn every_event_status_round_trips_through_its_json_string() {
        let all = [
            (EventStatus::Updated, "updated"),
            (EventStatus::Created, "created"),
            (EventStatus::Unchanged, "unchanged"),
            (EventStatus::UnknownUser, "unknown_user"),
            (EventStatus::Rejected, "rejected"),
        ];
        for (v, s) in all {
            let json = serde_json::to_value(v).unwrap();
            assert_eq!(
                json,
                serde_json::Value::from(s),
                "the API's string for {v:?}"
            );
            assert_eq!(serde_json::from_value::<EventStatus>(json).unwrap(), v);
        }
        for unknown in ["", "Updated", "unknownUser", "unknown-user", "ok"] {
            assert!(
                serde_json::from_value::<EventStatus>(serde_json::Value::from(unknown)).is_err(),
                "`{unknown}` must be refused"
            );
        }
    }
}
