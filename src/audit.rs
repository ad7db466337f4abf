//! The audit trail: append-only events written in the same transaction as the change they
//! describe, and mirrored as tracing events. Never holds a secret.

use crate::error::Result;
use crate::ids::UserId;
use crate::store::models::{AuditRow, NewAuditRow};
use crate::store::schema::audit_events;
use crate::store::timestamp::Timestamp;
use crate::store::{DbConn, Store};
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use std::borrow::Cow;

/// Who did it (a user, or the system for start-up and CLI work).
#[derive(Debug, Clone, Default)]
pub struct Actor {
    pub user_id: Option<UserId>,
    pub name: Option<String>,
    pub remote_addr: Option<String>,
    /// The access key the actor used, when they acted with one.
    pub key_id: Option<String>,
}

impl Actor {
    pub fn system(name: &str) -> Actor {
        Actor {
            user_id: None,
            name: Some(name.to_string()),
            remote_addr: None,
            key_id: None,
        }
    }
}

/// One event. `target_*` name what was acted on; `detail` is free text for people.
#[derive(Debug, Clone)]
pub struct Event<'a> {
    pub action: &'a str,
    pub outcome: &'a str,
    pub actor: &'a Actor,
    pub target_type: Option<&'a str>,
    pub target_id: Option<&'a str>,
    pub target: Option<&'a str>,
    pub detail: Option<String>,
}

impl<'a> Event<'a> {
    pub fn new(action: &'a str, actor: &'a Actor) -> Event<'a> {
        Event {
            action,
            outcome: "success",
            actor,
            target_type: None,
            target_id: None,
            target: None,
            detail: None,
        }
    }
    pub fn failed(mut self) -> Self {
        self.outcome = "failure";
        self
    }
    /// `id`: a typed id or any other text naming the target.
    pub fn target(
        mut self,
        kind: &'a str,
        id: &'a (impl AsRef<str> + ?Sized),
        name: &'a str,
    ) -> Self {
        self.target_type = Some(kind);
        self.target_id = Some(id.as_ref());
        self.target = Some(name);
        self
    }
    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }
}

/// Longest name (actor, target) kept in audit rows and log lines, in characters: whatever a
/// caller sends as a username, a refusal costs a bounded row and line.
pub const MAX_NAME_CHARS: usize = 256;

/// Longest free-text detail kept, in characters (it may quote a name).
pub const MAX_DETAIL_CHARS: usize = 1024;

/// `text` cut to `max` characters, with a marker saying how much was cut.
pub fn cut(text: &str, max: usize) -> Cow<'_, str> {
    match text.char_indices().nth(max) {
        None => Cow::Borrowed(text),
        Some((at, _)) => Cow::Owned(format!(
            "{}…[cut, {} more bytes]",
            &text[..at],
            text.len() - at
        )),
    }
}

fn cut_owned(text: Option<&str>, max: usize) -> Option<String> {
    text.map(|t| cut(t, max).into_owned())
}

/// Records `event` on `conn` (inside the caller's transaction) and as a tracing event. Names
/// and details are cut to a bounded length first.
pub fn record(conn: &mut DbConn, at: DateTime<Utc>, event: &Event<'_>) -> Result<()> {
    let detail = match (&event.actor.key_id, &event.detail) {
        (Some(k), Some(d)) => Some(format!("{d} (with access key {k})")),
        (Some(k), None) => Some(format!("with access key {k}")),
        (None, d) => d.clone(),
    };
    let detail = cut_owned(detail.as_deref(), MAX_DETAIL_CHARS);
    let actor = cut_owned(event.actor.name.as_deref(), MAX_NAME_CHARS);
    let target = cut_owned(event.target, MAX_NAME_CHARS);
    let target_id = cut_owned(event.target_id, MAX_NAME_CHARS);
    tracing::info!(
        target: "accesskeyd::audit",
        action = event.action,
        outcome = event.outcome,
        actor = actor.as_deref().unwrap_or("-"),
        actor_user_id = event.actor.user_id.as_ref().map_or("-", UserId::as_str),
        target_type = event.target_type.unwrap_or("-"),
        target_id = target_id.as_deref().unwrap_or("-"),
        target = target.as_deref().unwrap_or("-"),
        detail = detail.as_deref().unwrap_or(""),
        remote_addr = event.actor.remote_addr.as_deref().unwrap_or("-"),
        "audit"
    );
    let row = NewAuditRow {
        at: Timestamp::from(at),
        action: event.action.to_string(),
        outcome: event.outcome.to_string(),
        actor_user_id: event.actor.user_id.clone(),
        actor,
        target_type: event.target_type.map(str::to_string),
        target_id,
        target,
        detail,
        remote_addr: event.actor.remote_addr.clone(),
    };
    diesel::insert_into(audit_events::table)
        .values(&row)
        .execute(conn)?;
    Ok(())
}

/// Records an event on its own (for facts with no other state change, like a failed login).
pub async fn record_alone(store: &Store, at: DateTime<Utc>, event: &Event<'_>) -> Result<()> {
    let action = event.action.to_string();
    let outcome = event.outcome.to_string();
    let actor = event.actor.clone();
    let target_type = event.target_type.map(str::to_string);
    let target_id = event.target_id.map(str::to_string);
    let target = event.target.map(str::to_string);
    let detail = event.detail.clone();
    store
        .write(move |conn| {
            let ev = Event {
                action: &action,
                outcome: &outcome,
                actor: &actor,
                target_type: target_type.as_deref(),
                target_id: target_id.as_deref(),
                target: target.as_deref(),
                detail,
            };
            record(conn, at, &ev)
        })
        .await
}

/// Removes events older than `days` (inside the cleanup job's connection); 0 keeps all.
pub fn prune(conn: &mut DbConn, now: DateTime<Utc>, days: u64) -> Result<usize> {
    if days == 0 {
        return Ok(0);
    }
    let days = i64::try_from(days).unwrap_or(i64::MAX / 86_400_000);
    let cutoff = now
        .checked_sub_signed(chrono::Duration::days(days))
        .map_or(Timestamp::MIN, Timestamp::from);
    Ok(diesel::delete(audit_events::table.filter(audit_events::at.lt(cutoff))).execute(conn)?)
}

/// One stored event, for `GET /api/audit`.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditEntry {
    pub id: i64,
    pub at: DateTime<Utc>,
    pub action: String,
    pub outcome: String,
    pub actor_user_id: Option<UserId>,
    pub actor: Option<String>,
    pub target_type: Option<String>,
    pub target_id: Option<String>,
    pub target: Option<String>,
    pub detail: Option<String>,
    pub remote_addr: Option<String>,
}

impl From<AuditRow> for AuditEntry {
    fn from(r: AuditRow) -> Self {
        AuditEntry {
            id: r.id,
            at: r.at.at(),
            action: r.action,
            outcome: r.outcome,
            actor_user_id: r.actor_user_id,
            actor: r.actor,
            target_type: r.target_type,
            target_id: r.target_id,
            target: r.target,
            detail: r.detail,
            remote_addr: r.remote_addr,
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub action: Option<String>,
    pub actor: Option<String>,
}

/// Newest first, with the total matching count.
pub async fn list(
    store: &Store,
    filter: Filter,
    offset: i64,
    limit: i64,
) -> Result<(Vec<AuditEntry>, i64)> {
    store
        .read(move |conn| {
            let query = || {
                let mut q = audit_events::table.into_boxed();
                if let Some(a) = &filter.action {
                    q = q.filter(audit_events::action.eq(a.clone()));
                }
                if let Some(a) = &filter.actor {
                    q = q.filter(audit_events::actor.eq(a.clone()));
                }
                q
            };
            let total: i64 = query().count().get_result(conn)?;
            let rows: Vec<AuditRow> = query()
                .order(audit_events::id.desc())
                .offset(offset)
                .limit(limit)
                .select(AuditRow::as_select())
                .load(conn)?;
            Ok((rows.into_iter().map(AuditEntry::from).collect(), total))
        })
        .await
}

#[cfg(test)]
mod tests {
    #[test]
    fn long_names_are_cut_with_a_marker() {
        assert_eq!(super::cut("bob", 256), "bob");
        let long = "é".repeat(300);
        let cut = super::cut(&long, 256);
        assert!(cut.starts_with(&"é".repeat(256)));
        assert!(cut.ends_with("…[cut, 88 more bytes]"), "{cut}");
    }
}
