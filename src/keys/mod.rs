//! Access keys: creation (password shown once, stored as argon2id), listing, deletion, and
//! verification of a key and password, including the validity rule.

use crate::audit::{self, Event};
use crate::caller::{Method, Principal};
use crate::error::{Error, Result};
use crate::ids::{KeyRowId, UserId};
use crate::key_format as format;
use crate::metrics::inc;
use crate::options::RuntimeOptions;
use crate::revocation::{self, Revoked};
use crate::secret::Secret;
use crate::services::Services;
use crate::store::key_rows;
use crate::store::models::{AccessKeyRow, UserRow};
use crate::store::schema::{access_keys, users};
use crate::store::timestamp::Timestamp;
use crate::users as users_domain;
use crate::validity;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use std::net::IpAddr;

/// Longest description accepted, in characters.
pub const MAX_DESCRIPTION_LEN: usize = 1000;

/// A key with what the API shows of its owner.
#[derive(Clone)]
pub struct KeyView {
    pub row: AccessKeyRow,
    pub owner_username: String,
    pub owner_is_admin: bool,
    /// When the key stops working unless its owner signs in again, or its expiry; None when
    /// it does not work (disabled, owner inactive, never logged in).
    pub valid_until: Option<DateTime<Utc>>,
}

/// The `validUntil` of a key of `owner` with the system window `days`.
fn key_view(row: AccessKeyRow, owner: &UserRow, days: i64) -> KeyView {
    let window = validity::window(owner.access_key_validity_minutes, days);
    let valid_until = if owner.is_active() {
        validity::key_valid_until(owner.key_holder(&row), window)
    } else {
        None
    };
    KeyView {
        row,
        owner_username: owner.username.clone(),
        owner_is_admin: owner.is_admin,
        valid_until,
    }
}

/// What a caller asks to create.
#[derive(Debug, Clone, Default)]
pub struct NewKey {
    pub name: Option<String>,
    pub description: Option<String>,
    /// Admin only: create for this user instead of oneself.
    pub user_id: Option<UserId>,
    /// Required for a service account's key, refused for a person's.
    pub expiry: Option<DateTime<Utc>>,
}

fn validate_label(name: Option<&str>, max: usize) -> Result<String> {
    let name = name.map(str::trim).unwrap_or_default();
    if name.is_empty() {
        return Err(Error::invalid("name: a label is required"));
    }
    if name.chars().count() > max {
        return Err(Error::invalid(format!("name: at most {max} characters")));
    }
    // Labels are how people and admins tell keys apart: none may pass for another.
    crate::text::check_visible("name", name)?;
    Ok(name.to_string())
}

fn validate_description(d: Option<&str>) -> Result<Option<String>> {
    match d.map(str::trim).filter(|d| !d.is_empty()) {
        Some(d) if d.chars().count() > MAX_DESCRIPTION_LEN => Err(Error::invalid(format!(
            "description: at most {MAX_DESCRIPTION_LEN} characters"
        ))),
        Some(d) => {
            crate::text::check_visible("description", d)?;
            Ok(Some(d.to_string()))
        }
        None => Ok(None),
    }
}

/// A service account's key must end within the maximum lifetime; a person's has no expiry.
fn service_account_expiry(
    owner: &UserRow,
    expiry: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    max_days: i64,
) -> Result<Option<DateTime<Utc>>> {
    match (owner.is_service_account, expiry) {
        (false, None) => Ok(None),
        (false, Some(_)) => Err(Error::invalid(
            "expiry: only service accounts' keys have an expiry; a person's keys follow their logins",
        )),
        (true, None) => Err(Error::invalid(format!(
            "expiry: required for a service account's key (at most {max_days} days from now)"
        ))),
        (true, Some(e)) if e <= now => Err(Error::invalid("expiry: must be in the future")),
        (true, Some(e)) if e > now + chrono::Duration::days(max_days) => Err(Error::invalid(format!(
            "expiry: at most {max_days} days from now (Authentication/AccessKey/ServicePrincipal/MaxLifetime)"
        ))),
        (true, Some(_)) if owner.suspended_at.is_some() => Err(Error::conflict(format!(
            "service account `{}` is suspended until an admin assigns it a manager",
            owner.username
        ))),
        (true, Some(e)) => Ok(Some(e)),
    }
}

/// Creates a key and returns it with its password, which exists nowhere else afterwards.
pub async fn create(
    app: &Services,
    caller: &Principal,
    input: NewKey,
) -> Result<(KeyView, Secret)> {
    if caller.method == Method::AccessKey
        && !app.config.access_keys.allow_key_sessions_to_create_keys
    {
        return Err(Error::forbidden(
            "access keys can only be created from an interactive login, not with an access key",
        ));
    }
    let owner_id = match input.user_id.as_ref().map(UserId::to_ascii_lowercase) {
        Some(id) if id != caller.user.id => {
            if !caller.user.is_admin {
                return Err(Error::forbidden(
                    "userId: only admins create access keys for other users",
                ));
            }
            id
        }
        _ => caller.user.id.clone(),
    };
    let name = validate_label(
        input.name.as_deref(),
        app.config.access_keys.max_label_length,
    )?;
    let description = validate_description(input.description.as_deref())?;
    // Before any hashing: refused requests cost no argon2 work.
    let config = app.config.clone();
    let (enabled, max_days) = app
        .store
        .read(move |conn| {
            let o = RuntimeOptions::load(conn, &config)?;
            Ok((o.key_creation_enabled, o.service_account_max_lifetime_days))
        })
        .await?;
    if !enabled && !caller.user.is_admin {
        return Err(Error::forbidden(
            "access key creation is turned off here (Authentication/AccessKey/Creation/Enabled); \
             an admin can create a key for you",
        ));
    }
    let expiry = input.expiry;
    let password = format::new_password();
    let hash = app.hasher.hash(Secret::new(password.clone())).await?;
    let now = app.clock.now();
    let max = app.config.access_keys.max_per_user;
    let actor = caller.actor();
    let config = app.config.clone();
    let view = app
        .store
        .write(move |conn| {
            let owner = users_domain::find(conn, &owner_id)?;
            let expires_at = service_account_expiry(&owner, expiry, now, max_days)?;
            // Lock the owner's row (a no-op update) so that concurrent creations for one user
            // on PostgreSQL count one after the other; SQLite's IMMEDIATE already serialises.
            diesel::update(users::table.find(&owner.id))
                .set(users::id.eq(users::id))
                .execute(conn)?;
            let held = key_rows::count_held_by(conn, &owner.id)?;
            if held >= max {
                return Err(Error::conflict(format!(
                    "user `{}` already holds {held} access keys, the most allowed; delete one first",
                    owner.username
                )));
            }
            let row = AccessKeyRow {
                id: KeyRowId::generate(),
                key_id: format::new_key_id(),
                user_id: owner.id.clone(),
                name,
                description,
                password_hash: hash,
                created_at: Timestamp::from(now),
                last_used_at: None,
                expires_at: expires_at.map(Timestamp::from),
            };
            diesel::insert_into(access_keys::table)
                .values(&row)
                .execute(conn)?;
            audit::record(
                conn,
                now,
                &Event::new("access_key.create", &actor)
                    .target("access_key", &row.key_id, &row.name)
                    .detail(format!("owner {} ({})", owner.username, owner.id)),
            )?;
            let days = RuntimeOptions::load(conn, &config)?.validity_days;
            Ok(key_view(row, &owner, days))
        })
        .await?;
    inc(&app.metrics.keys_created);
    Ok((view, Secret::new(password)))
}

/// Whose keys to list.
#[derive(Debug, Clone)]
pub enum Scope {
    Mine,
    User(UserId),
    All,
}

diesel::define_sql_function!(fn lower(x: diesel::sql_types::Text) -> diesel::sql_types::Text);

/// A `LIKE` pattern matching `text` anywhere, case-insensitive when both sides are lowered.
fn contains_pattern(text: &str) -> String {
    let escaped: String = text
        .to_lowercase()
        .chars()
        .flat_map(|c| match c {
            '%' | '_' | '\\' => vec!['\\', c],
            c => vec![c],
        })
        .collect();
    format!("%{escaped}%")
}

/// A page of keys (newest first) and the total count. Non-admins see only their own.
/// `search`: only keys whose label, key id or owner's username contains it (any case).
pub async fn list(
    app: &Services,
    caller: &Principal,
    scope: Scope,
    search: Option<&str>,
    offset: i64,
    limit: i64,
) -> Result<(Vec<KeyView>, i64)> {
    let pattern = search
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(contains_pattern);
    let scope = match scope {
        Scope::User(id) if id.eq_ignore_ascii_case(&caller.user.id) => Scope::Mine,
        Scope::User(_) | Scope::All if !caller.user.is_admin => {
            return Err(Error::forbidden(
                "only admins list the access keys of other users",
            ))
        }
        other => other,
    };
    let me = caller.user.id.clone();
    let config = app.config.clone();
    app.store
        .read(move |conn| {
            let filtered = || {
                let q = access_keys::table.inner_join(users::table).into_boxed();
                let q = match &scope {
                    Scope::Mine => q.filter(access_keys::user_id.eq(me.clone())),
                    Scope::User(id) => q.filter(access_keys::user_id.eq(id.to_ascii_lowercase())),
                    Scope::All => q,
                };
                match &pattern {
                    Some(p) => q.filter(
                        lower(access_keys::name)
                            .like(p.clone())
                            .escape('\\')
                            .or(lower(users::username).like(p.clone()).escape('\\'))
                            .or(lower(access_keys::key_id).like(p.clone()).escape('\\')),
                    ),
                    None => q,
                }
            };
            let total: i64 = filtered().count().get_result(conn)?;
            let rows: Vec<(AccessKeyRow, UserRow)> = filtered()
                .order((access_keys::created_at.desc(), access_keys::id.asc()))
                .offset(offset)
                .limit(limit)
                .select((AccessKeyRow::as_select(), UserRow::as_select()))
                .load(conn)?;
            let days = RuntimeOptions::load(conn, &config)?.validity_days;
            Ok((
                rows.into_iter()
                    .map(|(row, owner)| key_view(row, &owner, days))
                    .collect(),
                total,
            ))
        })
        .await
}

/// Deletes a key by its key id. Owners delete their own; admins any. A key that is not the
/// caller's looks the same as one that does not exist.
pub async fn delete(app: &Services, caller: &Principal, key_id: &str) -> Result<AccessKeyRow> {
    let key_id = key_id.to_string();
    let caller_id = caller.user.id.clone();
    let is_admin = caller.user.is_admin;
    let actor = caller.actor();
    let now = app.clock.now();
    let row = app
        .store
        .write(move |conn| {
            let row: AccessKeyRow = key_rows::by_key_id(conn, &key_id)?
                .filter(|k| is_admin || k.user_id == caller_id)
                .ok_or_else(|| Error::not_found(format!("access key `{key_id}` not found")))?;
            // Sessions opened with this key go with it (ON DELETE CASCADE).
            diesel::delete(access_keys::table.find(&row.id)).execute(conn)?;
            revocation::announce(conn, &Revoked::Key(row.id.clone()))?;
            audit::record(
                conn,
                now,
                &Event::new("access_key.delete", &actor)
                    .target("access_key", &row.key_id, &row.name)
                    .detail(format!("owner {}", row.user_id)),
            )?;
            Ok(row)
        })
        .await?;
    inc(&app.metrics.keys_deleted);
    revocation::changed(app, Revoked::Key(row.id.clone()));
    Ok(row)
}

/// A key that passed every check, with its owner.
pub struct Verified {
    pub key: AccessKeyRow,
    pub user: UserRow,
}

const BAD_KEY: &str = "invalid access key or password";

/// Checks an access key and its password, then the validity rule, reading the database.
/// Malformed input is refused before any hashing; unknown keys cost the same hashing time as
/// known ones. A password that already passed argon2 against the same stored hash is known
/// and costs nothing; every other attempt goes through the failed-login throttle of
/// `addr` (checked and reserved in one step) and the fair argon2 queue. A key that is
/// merely not valid now does not count as a failure.
pub async fn verify(
    app: &Services,
    key_id: &str,
    password: Secret,
    addr: Option<IpAddr>,
) -> Result<Verified> {
    let now = app.clock.now();
    if !format::is_key_id(key_id) || !format::is_password(password.expose()) {
        inc(&app.metrics.key_auth_failed);
        return Err(Error::Unauthenticated(BAD_KEY.into()));
    }
    let generation = app.auth_cache.generation();
    let kid = key_id.to_string();
    let config = app.config.clone();
    let found: Option<(AccessKeyRow, UserRow, i64)> = app
        .store
        .read(move |conn| {
            let pair = key_rows::by_key_id_with_owner(conn, &kid)?;
            match pair {
                Some((k, u)) => Ok(Some((
                    k,
                    u,
                    RuntimeOptions::load(conn, &config)?.validity_days,
                ))),
                None => Ok(None),
            }
        })
        .await?;
    let known = found.as_ref().is_some_and(|(key, _, _)| {
        app.auth_cache
            .password_known(key_id, &key.password_hash, &password)
    });
    if !known {
        let attempt = app.throttle.admit(key_id, addr, now)?;
        let stored = found.as_ref().map(|(key, _, _)| key.password_hash.clone());
        let real = stored.is_some();
        match app.hasher.verify_from(password.clone(), stored, addr).await {
            Ok(true) if real => attempt.succeeded(),
            Ok(_) => {
                attempt.failed();
                inc(&app.metrics.key_auth_failed);
                return Err(Error::Unauthenticated(BAD_KEY.into()));
            }
            Err(e) => {
                attempt.abandoned();
                return Err(e.into());
            }
        }
    }
    let Some((key, user, days)) = found else {
        inc(&app.metrics.key_auth_failed);
        return Err(Error::Unauthenticated(BAD_KEY.into()));
    };
    // Remembered whatever the rule says now: memory answers only while the rule says yes.
    // Its next `lastUsed` write is due an interval after the last one, not after this read.
    let written = app.last_used.counted_as_written(key.id.as_str(), now);
    app.auth_cache
        .remember_key(generation, &key, &user, days, &password, written);
    let checked = if user.is_active() {
        validity::check_key(
            user.key_holder(&key),
            validity::window(user.access_key_validity_minutes, days),
            now,
        )
        .map_err(|reason| format!("access key `{}` is not valid now: {reason}", key.key_id))
    } else {
        let why = if user.is_service_account && user.suspended_at.is_some() {
            "its service account is suspended: its manager was removed; an admin must assign a new manager".to_string()
        } else if let Some(signal) = user.suspended_by_signal.as_deref() {
            format!("its owner is suspended ({signal}) until the directory says they are back")
        } else if user.suspended_at.is_some() {
            "its owner is no longer in the directory and is suspended pending removal".to_string()
        } else {
            "its owner is disabled".to_string()
        };
        Err(format!(
            "access key `{}` is not valid now: {why}",
            key.key_id
        ))
    };
    if let Err(message) = checked {
        inc(&app.metrics.key_auth_not_valid_now);
        return Err(Error::Unauthenticated(message));
    }
    inc(&app.metrics.key_auth_ok);
    app.last_used.touch(&app.store, key.id.as_str(), now);
    Ok(Verified { key, user })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels() {
        assert_eq!(
            validate_label(Some("  nightly job "), 20).unwrap(),
            "nightly job"
        );
        assert!(validate_label(None, 20).is_err());
        assert!(validate_label(Some("   "), 20).is_err());
        assert!(validate_label(Some(&"x".repeat(21)), 20).is_err());
        assert!(validate_label(Some("a\nb"), 20).is_err());
        assert!(validate_label(Some("etl\u{202E}gpj.exe"), 20).is_err());
        assert!(validate_label(Some("etl\u{200B}"), 20).is_err());
        assert!(validate_description(Some("cron\u{2066} on etl-1")).is_err());
        assert_eq!(
            validate_description(Some(" cron on etl-1 ")).unwrap(),
            Some("cron on etl-1".to_string())
        );
        assert_eq!(validate_description(Some("  ")).unwrap(), None);
        assert!(validate_description(Some(&"d".repeat(1001))).is_err());
    }
}
