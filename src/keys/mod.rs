//! Access keys: creation (password shown once, stored as argon2id), listing, deletion, and
//! verification of a key and password, including the validity rule; `leaked`: keys a
//! secret scanner found in public.

pub mod leaked;

use crate::audit::{self, Actor, Event};
use crate::caller::{Method, Principal};
use crate::error::{Error, Result};
use crate::ids::{KeyRowId, UserId};
use crate::key_format as format;
use crate::key_lookup::KeyLookup;
use crate::last_used::Seen;
use crate::metrics::inc;
use crate::options::RuntimeOptions;
use crate::revocation::{self, Revoked};
use crate::secret::Secret;
use crate::services::Services;
use crate::store::key_columns::{KeyScope, Networks};
use crate::store::key_rows;
use crate::store::models::{AccessKeyRow, KeyUseRow, UserRow};
use crate::store::schema::{access_keys, sessions, users};
use crate::store::timestamp::Timestamp;
use crate::users as users_domain;
use crate::validity::{self, KeyRules};
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
    /// When the key stops working unless its owner signs in again (or it is used), or its
    /// expiry; None when it does not work (disabled, owner inactive, never logged in).
    pub valid_until: Option<DateTime<Utc>>,
    /// The last distinct client addresses it was used from, newest first.
    pub recent_uses: Vec<KeyUseRow>,
}

/// The `validUntil` of a key of `owner` under `rules`.
pub fn key_view(row: AccessKeyRow, owner: &UserRow, rules: KeyRules) -> KeyView {
    let valid_until = if owner.is_active() {
        validity::key_valid_until(
            owner.key_holder(&row),
            rules.window(owner.access_key_validity_minutes),
            rules.idle(row.last_active()),
        )
    } else {
        None
    };
    KeyView {
        row,
        owner_username: owner.username.clone(),
        owner_is_admin: owner.is_admin,
        valid_until,
        recent_uses: Vec::new(),
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
    /// `read` keys only read; `full` (the default) do what their owner may.
    pub scope: KeyScope,
    /// The client networks the key may be used from; None: anywhere.
    pub allowed_networks: Option<Networks>,
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

/// What the audit trail says of a new key: its owner and what narrows it.
fn creation_detail(owner: &UserRow, row: &AccessKeyRow) -> String {
    let mut detail = format!(
        "owner {} ({}); scope {}",
        owner.username, owner.id, row.scope
    );
    if let Some(nets) = &row.allowed_networks {
        detail.push_str(&format!("; networks {nets}"));
    }
    detail
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
    let scope = input.scope;
    let allowed_networks = input.allowed_networks;
    let password = format::new_password();
    let lookup_hash = app.key_lookup.as_ref().map(|l| l.hash(&password));
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
                scope,
                allowed_networks,
                lookup_hash,
                previous_password_hash: None,
                previous_lookup_hash: None,
                previous_until: None,
                rotated_at: None,
            };
            diesel::insert_into(access_keys::table)
                .values(&row)
                .execute(conn)?;
            audit::record(
                conn,
                now,
                &Event::new("access_key.create", &actor)
                    .target("access_key", &row.key_id, &row.name)
                    .detail(creation_detail(&owner, &row)),
            )?;
            let rules = RuntimeOptions::load(conn, &config)?.key_rules();
            Ok(key_view(row, &owner, rules))
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
            let rules = RuntimeOptions::load(conn, &config)?.key_rules();
            let ids: Vec<KeyRowId> = rows.iter().map(|(k, _)| k.id.clone()).collect();
            let mut uses = crate::last_used::recent_uses(conn, &ids)?;
            Ok((
                rows.into_iter()
                    .map(|(row, owner)| {
                        let recent = uses.remove(&row.id).unwrap_or_default();
                        KeyView {
                            recent_uses: recent,
                            ..key_view(row, &owner, rules)
                        }
                    })
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

/// May `caller` rotate or edit the key `row`? Its owner and admins may; a caller who came
/// with an access key may touch only that very key (a leaked key must not lock out its
/// owner's other jobs). A key the caller may not touch looks like one that does not exist.
fn may_manage(caller: &Principal, row: &AccessKeyRow, key_itself_allowed: bool) -> bool {
    let by_key = caller.key.as_ref().map(|(row_id, _)| &**row_id);
    match (caller.method, by_key) {
        (Method::AccessKey, Some(id)) if id == row.id.as_str() => key_itself_allowed,
        (Method::AccessKey, _) => false,
        (Method::Interactive, _) => caller.user.is_admin || row.user_id == caller.user.id,
    }
}

/// The key `key_id` with its owner, if `caller` may manage it ([`may_manage`]); else 404.
fn managed(
    conn: &mut crate::store::DbConn,
    caller: &Principal,
    key_id: &str,
    key_itself_allowed: bool,
) -> Result<(AccessKeyRow, UserRow)> {
    key_rows::by_key_id_with_owner(conn, key_id)?
        .filter(|(row, _)| may_manage(caller, row, key_itself_allowed))
        .ok_or_else(|| Error::not_found(format!("access key `{key_id}` not found")))
}

/// Gives the key `key_id` a new password, returned once. The old one keeps working for
/// `RotationOverlapMinutes` (0: not at all, and sessions opened with the key end). Nothing
/// else changes: the key's validity (owner's window, expiry, idle time) is not extended.
pub async fn rotate(app: &Services, caller: &Principal, key_id: &str) -> Result<(KeyView, Secret)> {
    let password = format::new_password();
    let lookup_hash = app.key_lookup.as_ref().map(|l| l.hash(&password));
    // Who may is checked before hashing: a refused rotation costs no argon2 work.
    let kid = key_id.to_string();
    let me = caller.clone();
    app.store
        .read(move |conn| managed(conn, &me, &kid, true).map(|_| ()))
        .await?;
    let hash = app.hasher.hash(Secret::new(password.clone())).await?;
    let now = app.clock.now();
    let actor = caller.actor();
    let config = app.config.clone();
    let kid = key_id.to_string();
    let me = caller.clone();
    let view = app
        .store
        .write(move |conn| {
            let (row, owner) = managed(conn, &me, &kid, true)?;
            let options = RuntimeOptions::load(conn, &config)?;
            let overlap = options.rotation_overlap_minutes.max(0);
            let previous_until = (overlap > 0).then(|| now + chrono::Duration::minutes(overlap));
            let (previous_password_hash, previous_lookup_hash) = match previous_until {
                Some(_) => (Some(row.password_hash.clone()), row.lookup_hash.clone()),
                None => (None, None),
            };
            let row = AccessKeyRow {
                password_hash: hash,
                lookup_hash,
                previous_password_hash,
                previous_lookup_hash,
                previous_until: previous_until.map(Timestamp::from),
                rotated_at: Some(Timestamp::from(now)),
                ..row
            };
            diesel::update(access_keys::table.find(&row.id))
                .set((
                    access_keys::password_hash.eq(&row.password_hash),
                    access_keys::lookup_hash.eq(&row.lookup_hash),
                    access_keys::previous_password_hash.eq(&row.previous_password_hash),
                    access_keys::previous_lookup_hash.eq(&row.previous_lookup_hash),
                    access_keys::previous_until.eq(row.previous_until),
                    access_keys::rotated_at.eq(row.rotated_at),
                ))
                .execute(conn)?;
            if previous_until.is_none() {
                diesel::delete(sessions::table.filter(sessions::access_key_id.eq(&row.id)))
                    .execute(conn)?;
            }
            revocation::announce(conn, &Revoked::Key(row.id.clone()))?;
            let overlap_text = match previous_until {
                Some(until) => format!("the old password works until {}", until.to_rfc3339()),
                None => "the old password stopped at once".to_string(),
            };
            audit::record(
                conn,
                now,
                &Event::new("access_key.rotate", &actor)
                    .target("access_key", &row.key_id, &row.name)
                    .detail(format!("owner {}; {overlap_text}", owner.username)),
            )?;
            Ok(key_view(row, &owner, options.key_rules()))
        })
        .await?;
    revocation::changed(app, Revoked::Key(view.row.id.clone()));
    Ok((view, Secret::new(password)))
}

/// Sets the networks a key may be used from (None: anywhere again). Owners and admins, from
/// an interactive login: with a key, a restriction could be lifted by the very key it binds.
pub async fn set_networks(
    app: &Services,
    caller: &Principal,
    key_id: &str,
    networks: Option<Networks>,
) -> Result<KeyView> {
    if caller.method == Method::AccessKey {
        return Err(Error::forbidden(
            "allowedNetworks cannot be changed with an access key; sign in interactively",
        ));
    }
    let now = app.clock.now();
    let actor = caller.actor();
    let config = app.config.clone();
    let kid = key_id.to_string();
    let me = caller.clone();
    let view = app
        .store
        .write(move |conn| {
            let (row, owner) = managed(conn, &me, &kid, false)?;
            diesel::update(access_keys::table.find(&row.id))
                .set(access_keys::allowed_networks.eq(&networks))
                .execute(conn)?;
            revocation::announce(conn, &Revoked::Key(row.id.clone()))?;
            let detail = match &networks {
                Some(n) => format!("allowed networks: {n}"),
                None => "allowed networks: anywhere".to_string(),
            };
            audit::record(
                conn,
                now,
                &Event::new("access_key.update", &actor)
                    .target("access_key", &row.key_id, &row.name)
                    .detail(detail),
            )?;
            let rules = RuntimeOptions::load(conn, &config)?.key_rules();
            let mut uses = crate::last_used::recent_uses(conn, std::slice::from_ref(&row.id))?;
            let recent = uses.remove(&row.id).unwrap_or_default();
            Ok(KeyView {
                recent_uses: recent,
                ..key_view(
                    AccessKeyRow {
                        allowed_networks: networks,
                        ..row
                    },
                    &owner,
                    rules,
                )
            })
        })
        .await?;
    revocation::changed(app, Revoked::Key(view.row.id.clone()));
    Ok(view)
}

/// A key that passed every check, with its owner.
pub struct Verified {
    pub key: AccessKeyRow,
    pub user: UserRow,
}

const BAD_KEY: &str = "invalid access key or password";

/// The stored hashes a password is checked against, in order. With lookup hashes, only the
/// one whose lookup matches (a rotation's old password costs one argon2 run, not two); a
/// password neither matches is still checked against the current hash, so that it costs
/// what any wrong password costs. Without them: the current hash, then the old one while a
/// rotation's overlap lasts.
pub fn hashes_to_check(
    key: &AccessKeyRow,
    lookup: Option<&KeyLookup>,
    password: &str,
    now: DateTime<Utc>,
) -> Vec<String> {
    let previous = key.previous_hash_at(now);
    let Some(lookup) = lookup else {
        return std::iter::once(key.password_hash.as_str())
            .chain(previous)
            .map(str::to_string)
            .collect();
    };
    let matches = |stored: Option<&String>| stored.is_some_and(|h| lookup.matches(h, password));
    if matches(key.lookup_hash.as_ref()) {
        return vec![key.password_hash.clone()];
    }
    if let Some(previous) = previous {
        if matches(key.previous_lookup_hash.as_ref()) {
            return vec![previous.to_string()];
        }
        if key.previous_lookup_hash.is_none() {
            return vec![key.password_hash.clone(), previous.to_string()];
        }
    }
    vec![key.password_hash.clone()]
}

/// Checks an access key and its password, then the validity rule and the key's networks,
/// reading the database. Malformed input is refused before any hashing; unknown keys cost
/// the same hashing time as known ones. A password that already passed argon2 against the
/// same stored hash is known and costs nothing; every other attempt goes through the
/// failed-login throttle of `addr` (checked and reserved in one step) and the fair argon2
/// queue. A key that is merely not valid now does not count as a failure.
pub async fn verify(
    app: &Services,
    key_id: &str,
    password: Secret,
    addr: Option<IpAddr>,
    user_agent: Option<&str>,
) -> Result<Verified> {
    let now = app.clock.now();
    if !format::is_key_id(key_id) || !format::is_password(password.expose()) {
        inc(&app.metrics.key_auth_failed);
        return Err(Error::Unauthenticated(BAD_KEY.into()));
    }
    let generation = app.auth_cache.generation();
    let kid = key_id.to_string();
    let config = app.config.clone();
    let found: Option<(AccessKeyRow, UserRow, KeyRules)> = app
        .store
        .read(move |conn| {
            let pair = key_rows::by_key_id_with_owner(conn, &kid)?;
            match pair {
                Some((k, u)) => Ok(Some((
                    k,
                    u,
                    RuntimeOptions::load(conn, &config)?.key_rules(),
                ))),
                None => Ok(None),
            }
        })
        .await?;
    let candidates = found.as_ref().map_or_else(Vec::new, |(key, _, _)| {
        hashes_to_check(key, app.key_lookup.as_ref(), password.expose(), now)
    });
    let known = found.as_ref().and_then(|_| {
        candidates
            .iter()
            .find(|h| app.auth_cache.password_known(key_id, h, &password))
            .cloned()
    });
    let verified_hash = match known {
        Some(hash) => hash,
        None => {
            let attempt = app.throttle.admit(key_id, addr, now)?;
            let mut passed = None;
            // An unknown key runs one dummy hash, as a known key's wrong password does.
            let mut queue: Vec<Option<String>> = if candidates.is_empty() {
                vec![None]
            } else {
                candidates.into_iter().map(Some).collect()
            };
            for stored in queue.drain(..) {
                match app
                    .hasher
                    .verify_from(password.clone(), stored.clone(), addr)
                    .await
                {
                    Ok(true) => {
                        passed = stored;
                        break;
                    }
                    Ok(false) => {}
                    Err(e) => {
                        attempt.abandoned();
                        return Err(e.into());
                    }
                }
            }
            match passed {
                Some(hash) => {
                    attempt.succeeded();
                    hash
                }
                None => {
                    attempt.failed();
                    inc(&app.metrics.key_auth_failed);
                    return Err(Error::Unauthenticated(BAD_KEY.into()));
                }
            }
        }
    };
    let Some((key, user, rules)) = found else {
        inc(&app.metrics.key_auth_failed);
        return Err(Error::Unauthenticated(BAD_KEY.into()));
    };
    backfill_lookup_hash(app, &key, &verified_hash, &password);
    // Remembered whatever the rule says now: memory answers only while the rule says yes.
    // Its next `lastUsed` write is due an interval after the last one, not after this read.
    let written = app.last_used.counted_as_written(key.id.as_str(), now);
    app.auth_cache.remember_key(
        generation,
        &key,
        &user,
        rules,
        &password,
        &verified_hash,
        written,
    );
    if let Err(message) = may_act(&key, &user, rules, now) {
        inc(&app.metrics.key_auth_not_valid_now);
        return Err(Error::Unauthenticated(message));
    }
    admit_network(app, &key, &user, addr, now)?;
    inc(&app.metrics.key_auth_ok);
    app.last_used.touch(
        &app.store,
        key.id.as_str(),
        now,
        Seen::new(addr, user_agent),
    );
    Ok(Verified { key, user })
}

/// The validity rule for `key` of `user` at `now`, with what the caller reads when it says
/// no.
pub fn may_act(
    key: &AccessKeyRow,
    user: &UserRow,
    rules: KeyRules,
    now: DateTime<Utc>,
) -> std::result::Result<(), String> {
    if user.is_active() {
        return validity::check_key(
            user.key_holder(key),
            rules.window(user.access_key_validity_minutes),
            rules.idle(key.last_active()),
            now,
        )
        .map_err(|reason| format!("access key `{}` is not valid now: {reason}", key.key_id));
    }
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
}

/// Refuses a key used from outside its networks: 401, and an audit event (at most one per
/// key per `last_used_write_interval_seconds`, so a misconfigured job is not a flood of rows).
pub fn admit_network(
    app: &Services,
    key: &AccessKeyRow,
    user: &UserRow,
    addr: Option<IpAddr>,
    now: DateTime<Utc>,
) -> Result<()> {
    let Some(networks) = &key.allowed_networks else {
        return Ok(());
    };
    if networks.admits(addr) {
        return Ok(());
    }
    inc(&app.metrics.key_auth_network_refused);
    let from = addr.map_or_else(|| "an unknown address".to_string(), |a| a.to_string());
    tracing::warn!(key_id = %key.key_id, remote_addr = %from, "access key used from outside its networks");
    if app.network_refusals.due(key.id.as_str(), now) {
        let store = app.store.clone();
        let actor = Actor {
            user_id: Some(user.id.clone()),
            name: Some(user.username.clone()),
            remote_addr: addr.map(|a| a.to_string()),
            key_id: Some(key.key_id.clone()),
        };
        let (key_id, name) = (key.key_id.clone(), key.name.clone());
        let detail = format!("used from {from}; allowed: {networks}");
        tokio::spawn(async move {
            let ev = Event::new("access_key.network_refused", &actor)
                .failed()
                .target("access_key", &key_id, &name)
                .detail(detail);
            if let Err(e) = audit::record_alone(&store, now, &ev).await {
                tracing::warn!(error = %e, "could not record a refused access key use");
            }
        });
    }
    Err(Error::Unauthenticated(format!(
        "access key `{}` may not be used from {from}: it is restricted to other networks",
        key.key_id
    )))
}

/// Stores the lookup hash of a key's proven current password when the stored one is missing
/// (a key from before lookup hashes or the pepper) or was made under another pepper (the
/// pepper was changed), in the background.
fn backfill_lookup_hash(
    app: &Services,
    key: &AccessKeyRow,
    verified_hash: &str,
    password: &Secret,
) {
    let Some(lookup) = &app.key_lookup else {
        return;
    };
    if verified_hash != key.password_hash
        || key
            .lookup_hash
            .as_deref()
            .is_some_and(|h| lookup.matches(h, password.expose()))
    {
        return;
    }
    let hash = lookup.hash(password.expose());
    let (id, stored) = (key.id.clone(), key.password_hash.clone());
    let store = app.store.clone();
    tokio::spawn(async move {
        let result = store
            .write(move |conn| {
                // Only if the password was not rotated meanwhile.
                diesel::update(
                    access_keys::table
                        .find(&id)
                        .filter(access_keys::password_hash.eq(stored)),
                )
                .set(access_keys::lookup_hash.eq(Some(hash)))
                .execute(conn)?;
                Ok(())
            })
            .await;
        if let Err(e) = result {
            tracing::warn!(error = %e, "could not store an access key's lookup hash");
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;

    fn at(ms: i64) -> DateTime<Utc> {
        Timestamp::from_millis(ms).at()
    }

    #[test]
    fn a_password_is_checked_against_the_hash_its_lookup_names() {
        let lookup = KeyLookup::new(Secret::new("p".repeat(32)));
        let mut key = AccessKeyRow::new_for_tests();
        key.password_hash = "$argon2id$new".into();
        key.lookup_hash = Some(lookup.hash("akp_new"));
        key.previous_password_hash = Some("$argon2id$old".into());
        key.previous_lookup_hash = Some(lookup.hash("akp_old"));
        key.previous_until = Some(Timestamp::from_millis(1_000));
        let l = Some(&lookup);
        assert_eq!(
            hashes_to_check(&key, l, "akp_new", at(0)),
            ["$argon2id$new"]
        );
        assert_eq!(
            hashes_to_check(&key, l, "akp_old", at(0)),
            ["$argon2id$old"]
        );
        // Wrong, or the old one after the overlap: one run against the current hash.
        assert_eq!(
            hashes_to_check(&key, l, "akp_bad", at(0)),
            ["$argon2id$new"]
        );
        assert_eq!(
            hashes_to_check(&key, l, "akp_old", at(1_000)),
            ["$argon2id$new"]
        );
        // Without lookup hashes (no pepper, or keys from before): both, current first.
        assert_eq!(
            hashes_to_check(&key, None, "akp_old", at(0)),
            ["$argon2id$new", "$argon2id$old"]
        );
        assert_eq!(
            hashes_to_check(&key, None, "akp_old", at(1_000)),
            ["$argon2id$new"]
        );
        key.previous_lookup_hash = None;
        assert_eq!(
            hashes_to_check(&key, l, "akp_old", at(0)),
            ["$argon2id$new", "$argon2id$old"],
            "an old password without a lookup hash is still tried"
        );
    }

    fn principal(user: &str, admin: bool, by_key: Option<&str>) -> Principal {
        let mut u = UserRow::fixture(user);
        u.is_admin = admin;
        Principal {
            user: std::sync::Arc::new(u),
            method: if by_key.is_some() {
                Method::AccessKey
            } else {
                Method::Interactive
            },
            key: by_key.map(|k| (std::sync::Arc::from(k), std::sync::Arc::from("akd_x"))),
            session_hash: None,
            remote_addr: None,
            scope: KeyScope::Full,
        }
    }

    #[test]
    fn owners_admins_and_the_key_itself_manage_a_key() {
        let mut key = AccessKeyRow::new_for_tests();
        key.id = KeyRowId::from("k1");
        key.user_id = UserId::from("bob");
        assert!(may_manage(&principal("bob", false, None), &key, true));
        assert!(may_manage(&principal("root", true, None), &key, true));
        assert!(!may_manage(&principal("eve", false, None), &key, true));
        assert!(may_manage(&principal("bob", false, Some("k1")), &key, true));
        assert!(!may_manage(
            &principal("bob", false, Some("k1")),
            &key,
            false
        ));
        assert!(
            !may_manage(&principal("bob", false, Some("k2")), &key, true),
            "a sibling key of the owner"
        );
        assert!(
            !may_manage(&principal("root", true, Some("k2")), &key, true),
            "an admin's key is not an admin's session"
        );
    }

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
