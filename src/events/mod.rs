//! Login events reported by trusted systems (the application accesskeyd sits beside, an
//! identity provider's event hook): each moves a user's `lastLoginAt` forward, never back,
//! so people who sign in elsewhere keep their keys alive. Windows Security events from the
//! domain controllers' forwarders are mapped to such logins in [`windows`].

pub mod windows;

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
use std::collections::{BTreeMap, HashMap};

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
            let mut methods: BTreeMap<String, usize> = BTreeMap::new();
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
                if let Some(m) = &e.method {
                    *methods.entry(m.clone()).or_default() += 1;
                }
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
                        "{updated} of {} reported login(s) moved lastLoginAt forward{}",
                        results.len(),
                        by_method(&methods)
                    )),
                )?;
            }
            Ok(results)
        })
        .await
}

/// The methods of an audit detail: ` (windows 4768: 3, okta: 1)`, the 5 most frequent (the
/// method is free text from the reporting system), or nothing when none was given.
fn by_method(methods: &BTreeMap<String, usize>) -> String {
    if methods.is_empty() {
        return String::new();
    }
    let mut sorted: Vec<(&String, &usize)> = methods.iter().collect();
    sorted.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    let mut parts: Vec<String> = sorted
        .iter()
        .take(5)
        .map(|(m, n)| format!("{}: {n}", m.chars().take(64).collect::<String>()))
        .collect();
    if sorted.len() > 5 {
        parts.push(format!("{} other methods", sorted.len() - 5));
    }
    format!(" ({})", parts.join(", "))
}

/// Most distinct reasons the answer to a Windows batch lists.
pub const MAX_REASONS: usize = 20;

/// What became of records of a Windows batch that moved nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReasonKind {
    /// Not an interactive sign-in of the directory's people (another event, a network
    /// logon, a machine account, another domain, a refused Kerberos request).
    Ignored,
    /// Not readable as a 4624 or 4768 record, or refused like any reported login (a time
    /// in the future).
    Rejected,
    /// A sign-in of a name with no record here (with `create_users_from_events`, why none
    /// was created).
    UnknownUser,
}

/// One reason records were not applied, and how many records it applies to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Reason {
    pub outcome: ReasonKind,
    pub message: String,
    pub count: usize,
}

/// What became of a batch of Windows Security events. Every record is counted once:
/// `records` = `updated` + `created` + `unchanged` + `unknownUsers` + `collapsed` +
/// `ignored` + `rejected`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WindowsOutcome {
    /// The directory whose people the sign-ins were of.
    pub directory_id: DirectoryId,
    /// Records in the body.
    pub records: usize,
    /// People whose `lastLoginAt` moved forward.
    pub updated: usize,
    /// People created from the directory, then updated (`create_users_from_events`).
    pub created: usize,
    /// People whose `lastLoginAt` was already at or after their newest sign-in here.
    pub unchanged: usize,
    /// Sign-ins of names with no record in the directory.
    pub unknown_users: usize,
    /// Sign-ins folded into a newer (or the same) sign-in of the same person in this batch:
    /// several domain controllers report one sign-in, and one person signs in many times.
    pub collapsed: usize,
    /// Records that are no interactive sign-in of the directory's people.
    pub ignored: usize,
    /// Records that cannot be read, and sign-ins refused (a time in the future).
    pub rejected: usize,
    /// Why records were ignored, rejected or of unknown users: each distinct reason once with
    /// its count, at most 20 (further ones counted under `other reasons`).
    pub reasons: Vec<Reason>,
}

/// Reasons counted by their text, a bounded number of them.
#[derive(Default)]
struct Tally(Vec<Reason>);

impl Tally {
    fn add(&mut self, outcome: ReasonKind, message: String, count: usize) {
        if let Some(r) = self
            .0
            .iter_mut()
            .find(|r| r.outcome == outcome && r.message == message)
        {
            r.count += count;
            return;
        }
        let distinct = self.0.iter().filter(|r| r.message != OTHER_REASONS).count();
        if distinct < MAX_REASONS || message == OTHER_REASONS {
            self.0.push(Reason {
                outcome,
                message,
                count,
            });
            return;
        }
        self.add(outcome, OTHER_REASONS.to_string(), count);
    }
}

const OTHER_REASONS: &str = "other reasons";

/// The LDAP directory a Windows batch is for: `named` (`?directory=`), or the token's only
/// directory. Refused: an unknown or non-LDAP directory, one the token does not report for,
/// and no name when the token covers several.
pub fn windows_directory<'a>(
    app: &'a Services,
    source: &Reporter,
    named: Option<&str>,
) -> Result<&'a crate::config::LdapDirectoryConfig> {
    let id = match (named.map(str::trim), &source.scope) {
        (Some(n), _) if !n.is_empty() => DirectoryId::from(n.to_string()),
        (_, TokenScope::Only(ids)) if ids.len() == 1 => ids[0].clone(),
        (_, scope) => {
            let covers = scope.describe();
            return Err(Error::invalid(format!(
                "directory: this token reports logins of {covers}: name the directory with ?directory=<id>"
            )));
        }
    };
    let dir = app
        .directory(&id)
        .ok_or_else(|| Error::invalid(format!("directory: no directory `{id}`")))?;
    if !source.scope.covers(dir.id()) {
        return Err(Error::Forbidden(format!(
            "this token reports logins of {} only, not of directory `{}`",
            source.scope.describe(),
            dir.id()
        )));
    }
    match dir {
        Directory::Ldap(l) => Ok(l.config()),
        _ => Err(Error::invalid(format!(
            "directory: `{}` is not an LDAP directory; Windows sign-ins are read for LDAP (Active Directory) directories",
            dir.id()
        ))),
    }
}

/// Applies the sign-ins among Windows Security event records (see [`windows::map`]) to
/// directory `dir`: each person's newest sign-in of the batch, names compared without
/// regard to case as Windows does, through [`ingest`] in chunks of [`MAX_BATCH`]. Records
/// that are no sign-in are counted, never an error: forwarders resend a refused batch whole.
pub async fn ingest_windows(
    app: &Services,
    source: &Reporter,
    dir: &crate::config::LdapDirectoryConfig,
    records: Vec<serde_json::Value>,
) -> Result<WindowsOutcome> {
    let mut out = WindowsOutcome {
        directory_id: dir.id.clone(),
        records: records.len(),
        updated: 0,
        created: 0,
        unchanged: 0,
        unknown_users: 0,
        collapsed: 0,
        ignored: 0,
        rejected: 0,
        reasons: Vec::new(),
    };
    let mut tally = Tally::default();
    let mut newest: HashMap<String, windows::Login> = HashMap::new();
    let mut logins = 0;
    for record in records {
        match windows::map(&record, &dir.windows_domains) {
            windows::Mapped::Login(login) => {
                logins += 1;
                let key = login.username.to_lowercase();
                match newest.get(&key) {
                    Some(known) if known.at >= login.at => {}
                    _ => {
                        newest.insert(key, login);
                    }
                }
            }
            windows::Mapped::Ignored(why) => {
                out.ignored += 1;
                tally.add(ReasonKind::Ignored, why, 1);
            }
            windows::Mapped::Malformed(why) => {
                out.rejected += 1;
                tally.add(ReasonKind::Rejected, why, 1);
            }
        }
    }
    out.collapsed = logins - newest.len();
    let mut people: Vec<(String, windows::Login)> = newest.into_iter().collect();
    people.sort_by(|a, b| a.0.cmp(&b.0));
    let mut events = Vec::with_capacity(people.len());
    // Bound parameters per query stay far below SQLite's limit.
    for chunk in people.chunks(500) {
        let names: Vec<String> = chunk.iter().map(|(k, _)| k.clone()).collect();
        let id = dir.id.clone();
        let found = app
            .store
            .read(move |c| user_rows::by_usernames_ignoring_case(c, &id, &names))
            .await?;
        for (key, login) in chunk {
            // Two records whose names differ only in case: leave it to the exact match.
            let mut matches = found.iter().filter(|(u, _)| u.to_lowercase() == *key);
            let external_id = match (matches.next(), matches.next()) {
                (Some((_, x)), None) => Some(x.clone()),
                _ => None,
            };
            events.push(LoginEvent {
                directory_id: dir.id.clone(),
                username: Some(login.username.clone()),
                external_id,
                at: login.at,
                method: Some(login.what.clone()),
            });
        }
    }
    for chunk in events.chunks(MAX_BATCH) {
        for r in ingest(app, source, chunk.to_vec()).await? {
            match r.status {
                EventStatus::Updated => out.updated += 1,
                EventStatus::Created => out.created += 1,
                EventStatus::Unchanged => out.unchanged += 1,
                EventStatus::UnknownUser => {
                    out.unknown_users += 1;
                    let why = r
                        .message
                        .unwrap_or_else(|| "no record with this name".into());
                    tally.add(ReasonKind::UnknownUser, why, 1);
                }
                EventStatus::Rejected => {
                    out.rejected += 1;
                    let why = r.message.unwrap_or_else(|| "rejected".into());
                    tally.add(ReasonKind::Rejected, why, 1);
                }
            }
        }
    }
    for r in &tally.0 {
        tracing::debug!(
            directory = %dir.id,
            reporter = %source.label,
            outcome = ?r.outcome,
            count = r.count,
            reason = %r.message,
            "windows events: records not applied"
        );
    }
    out.reasons = tally.0;
    Ok(out)
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
