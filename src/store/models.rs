//! Row types, one per table. Hash columns are not secrets, but rows still skip `Debug` so
//! a stray `{:?}` never prints them.

use super::key_columns::{KeyScope, Networks};
use super::run_status::RunStatus;
use super::schema::{access_keys, audit_events, key_uses, options, sessions, sync_runs, users};
use super::timestamp::Timestamp;
use crate::ids::{DirectoryId, KeyRowId, UserId};
use chrono::{DateTime, Utc};
use diesel::prelude::*;

#[derive(Queryable, Selectable, Insertable, Identifiable, Clone, PartialEq)]
#[diesel(table_name = users)]
pub struct UserRow {
    pub id: UserId,
    pub directory_id: DirectoryId,
    pub external_id: String,
    pub username: String,
    pub display_name: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub email: Option<String>,
    pub is_admin: bool,
    pub is_enabled: bool,
    pub password_hash: Option<String>,
    pub created_at: Timestamp,
    pub last_login_at: Option<Timestamp>,
    pub access_key_validity_minutes: Option<i64>,
    pub suspended_at: Option<Timestamp>,
    pub scim_external_id: Option<String>,
    /// The user's session duration override in minutes (None: the system option).
    pub session_duration_minutes: Option<i64>,
    /// A non-human built-in user (the vendor's application service principal).
    pub is_service_account: bool,
    /// The person responsible for a service account; None once that person was removed.
    pub manager_id: Option<UserId>,
    /// The change signal that suspended the user (a directory change feed, a shared signal);
    /// None when not suspended, or suspended otherwise (sync grace, SCIM, no manager).
    pub suspended_by_signal: Option<String>,
    /// Keys are refused until an interactive login after this time (a credential revoked or
    /// compromised upstream).
    pub keys_lapsed_at: Option<Timestamp>,
}

impl UserRow {
    pub fn last_login(&self) -> Option<DateTime<Utc>> {
        self.last_login_at.map(Timestamp::at)
    }

    /// The last login that keeps keys alive: none from before a lapse of their keys.
    pub fn interactive_login_for_keys(&self) -> Option<DateTime<Utc>> {
        let lapsed = self.keys_lapsed_at.map(Timestamp::at);
        self.last_login()
            .filter(|at| lapsed.is_none_or(|lapsed| *at > lapsed))
    }

    /// May this user act at all (not disabled, not suspended pending removal)?
    pub fn is_active(&self) -> bool {
        self.is_enabled && self.suspended_at.is_none()
    }

    /// An active directory user `id` (username and stable id alike, e-mail id@example.org)
    /// for unit tests of rules over users.
    #[cfg(test)]
    pub fn fixture(id: &str) -> UserRow {
        UserRow {
            id: UserId::from(id),
            directory_id: DirectoryId::from("corp"),
            external_id: id.into(),
            username: id.into(),
            display_name: None,
            first_name: None,
            last_name: None,
            email: Some(format!("{id}@example.org")),
            is_admin: false,
            is_enabled: true,
            password_hash: None,
            created_at: Timestamp::from_millis(0),
            last_login_at: None,
            access_key_validity_minutes: None,
            suspended_at: None,
            scim_external_id: None,
            session_duration_minutes: None,
            is_service_account: false,
            manager_id: None,
            suspended_by_signal: None,
            keys_lapsed_at: None,
        }
    }

    /// How the validity rule sees this user's key.
    pub fn key_holder(&self, key: &AccessKeyRow) -> crate::validity::Holder {
        self.key_holder_with(key.expires_at)
    }

    /// [`UserRow::key_holder`] of a key that expires at `key_expires_at`.
    pub fn key_holder_with(&self, key_expires_at: Option<Timestamp>) -> crate::validity::Holder {
        if self.is_service_account {
            crate::validity::Holder::ServiceAccount {
                key_expires_at: key_expires_at.map(Timestamp::at),
            }
        } else {
            crate::validity::Holder::Person {
                last_login: self.interactive_login_for_keys(),
            }
        }
    }
}

#[derive(Queryable, Selectable, Insertable, Identifiable, Clone)]
#[diesel(table_name = access_keys)]
pub struct AccessKeyRow {
    pub id: KeyRowId,
    pub key_id: String,
    pub user_id: UserId,
    pub name: String,
    pub description: Option<String>,
    pub password_hash: String,
    pub created_at: Timestamp,
    pub last_used_at: Option<Timestamp>,
    /// Service-account keys stop working at this time; None for people's keys.
    pub expires_at: Option<Timestamp>,
    /// What the key may do (`full` unless created `read`).
    pub scope: KeyScope,
    /// The client networks the key may be used from; None: anywhere.
    pub allowed_networks: Option<Networks>,
    /// Keyed HMAC of the password (see `key_lookup`), for leaked-key reports.
    pub lookup_hash: Option<String>,
    /// A rotation's old password: accepted until `previous_until`.
    pub previous_password_hash: Option<String>,
    pub previous_lookup_hash: Option<String>,
    pub previous_until: Option<Timestamp>,
    /// When the password was last rotated.
    pub rotated_at: Option<Timestamp>,
}

impl AccessKeyRow {
    /// The old password's hash while a rotation's overlap lasts at `now`.
    pub fn previous_hash_at(&self, now: DateTime<Utc>) -> Option<&str> {
        match (&self.previous_password_hash, self.previous_until) {
            (Some(hash), Some(until)) if Timestamp::from(now) < until => Some(hash),
            _ => None,
        }
    }

    /// A key with every column empty or zero, for unit tests to fill in.
    #[cfg(test)]
    pub fn new_for_tests() -> AccessKeyRow {
        AccessKeyRow {
            id: KeyRowId::from("row"),
            key_id: String::new(),
            user_id: UserId::from("user"),
            name: String::new(),
            description: None,
            password_hash: String::new(),
            created_at: Timestamp::default(),
            last_used_at: None,
            expires_at: None,
            scope: KeyScope::Full,
            allowed_networks: None,
            lookup_hash: None,
            previous_password_hash: None,
            previous_lookup_hash: None,
            previous_until: None,
            rotated_at: None,
        }
    }

    /// When the key was last known in use (its creation if never): where idle time counts from.
    pub fn last_active(&self) -> DateTime<Utc> {
        self.last_used_at.unwrap_or(self.created_at).at()
    }
}

/// One of the last distinct client addresses a key was used from.
#[derive(Queryable, Selectable, Insertable, Clone, Debug, PartialEq)]
#[diesel(table_name = key_uses)]
pub struct KeyUseRow {
    pub key_row_id: KeyRowId,
    pub address: String,
    pub user_agent: Option<String>,
    pub at: Timestamp,
}

#[derive(Queryable, Selectable, Insertable, Clone)]
#[diesel(table_name = sessions)]
pub struct SessionRow {
    pub token_hash: String,
    pub user_id: UserId,
    pub access_key_id: Option<KeyRowId>,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
}

#[derive(Queryable, Selectable, Insertable, Clone, Debug)]
#[diesel(table_name = options)]
pub struct OptionRow {
    pub path: String,
    pub value: String,
    pub updated_at: Timestamp,
    pub updated_by: Option<String>,
}

#[derive(Queryable, Selectable, Insertable, Clone, Debug)]
#[diesel(table_name = audit_events)]
pub struct AuditRow {
    pub id: i64,
    pub at: Timestamp,
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

#[derive(Insertable, Clone, Debug, Default)]
#[diesel(table_name = audit_events)]
pub struct NewAuditRow {
    pub at: Timestamp,
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

#[derive(Queryable, Selectable, Clone, Debug)]
#[diesel(table_name = sync_runs)]
pub struct SyncRunRow {
    pub id: i64,
    pub directory_id: DirectoryId,
    pub started_at: Timestamp,
    pub finished_at: Option<Timestamp>,
    pub dry_run: bool,
    pub run_trigger: String,
    pub actor: Option<String>,
    pub replica: String,
    pub status: RunStatus,
    pub read_count: i64,
    pub matched: i64,
    pub renamed: i64,
    pub removed: i64,
    pub suspended: i64,
    pub restored: i64,
    pub admin_changes: i64,
    pub last_logins: i64,
    pub error: Option<String>,
    pub plan: Option<String>,
    pub approves_run_id: Option<i64>,
    pub approved_by: Option<String>,
    pub approved_at: Option<Timestamp>,
    /// JSON array of "url: reason": domain controllers whose lastLogon was not read.
    pub unread_controllers: Option<String>,
}
