//! Runtime options that admins change through the API (`/api/system/configuration/options`).
//! Stored in the database; an option never set takes its default from the configuration.

use crate::audit::{self, Actor, Event};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::revocation::{self, Revoked};
use crate::services::Services;
use crate::store::models::{to_ms, OptionRow};
use crate::store::schema::options;
use crate::store::{DbConn, Store};
use diesel::prelude::*;
use serde_json::Value;

pub const VALIDITY_WITHOUT_USER_LOGIN: &str = "Authentication/AccessKey/ValidityWithoutUserLogin";

pub const DEFAULT_SESSION_DURATION: &str = "Authentication/DefaultSessionDuration";
pub const KEY_CREATION_ENABLED: &str = "Authentication/AccessKey/Creation/Enabled";
pub const SERVICE_ACCOUNT_MAX_LIFETIME: &str =
    "Authentication/AccessKey/ServicePrincipal/MaxLifetime";
pub const WARNING_DAYS: &str = "Authentication/AccessKey/WarningDays";

/// The type and range of an option's value.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    Integer { min: i64, max: i64 },
    Boolean,
}

/// The definition of one option.
#[derive(Debug, Clone, Copy)]
pub struct Definition {
    pub path: &'static str,
    pub description: &'static str,
    pub units: &'static str,
    pub kind: Kind,
    /// The default, from the configuration file.
    pub default: fn(&Config) -> Value,
}

/// Every option this build knows. Adding one is adding a line here.
pub const DEFINITIONS: &[Definition] = &[
    Definition {
        path: VALIDITY_WITHOUT_USER_LOGIN,
        description: "Days an access key keeps working after its owner's last interactive login. \
                  0 disables every access key. A user's accessKeyValidityDuration (minutes) \
                  overrides it.",
        units: "days",
        kind: Kind::Integer {
            min: 0,
            max: 36_500,
        },
        default: |c| Value::from(c.access_keys.validity_without_user_login_days),
    },
    Definition {
        path: DEFAULT_SESSION_DURATION,
        description: "Minutes an interactive session lasts from its login, whatever the activity. \
                  A user's sessionDuration overrides it. Applies to sessions opened after a \
                  change.",
        units: "min",
        kind: Kind::Integer {
            min: 1,
            max: 525_600,
        },
        default: |c| Value::from(c.sessions.interactive_ttl_minutes),
    },
    Definition {
        path: KEY_CREATION_ENABLED,
        description: "Whether people create their own access keys. When false only admins create \
                  keys (for themselves or on behalf of a user); existing keys keep working.",
        units: "",
        kind: Kind::Boolean,
        default: |c| Value::from(c.access_keys.creation_enabled),
    },
    Definition {
        path: SERVICE_ACCOUNT_MAX_LIFETIME,
        description: "Longest lifetime of a service account's access key, in days from its \
                  creation; every such key needs an expiry within it.",
        units: "days",
        kind: Kind::Integer { min: 1, max: 3_650 },
        default: |c| Value::from(c.access_keys.service_account_max_lifetime_days),
    },
    Definition {
        path: WARNING_DAYS,
        description: "Days before access keys stop working that their owner (or a service \
                  account's manager) is warned; 0 sends no warnings.",
        units: "days",
        kind: Kind::Integer { min: 0, max: 365 },
        default: |c| Value::from(c.access_keys.warning_days),
    },
];

fn definition(path: &str) -> Option<&'static Definition> {
    DEFINITIONS
        .iter()
        .find(|d| d.path.eq_ignore_ascii_case(path))
}

/// An option as the API shows it.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OptionOutput {
    pub path: String,
    pub value: Value,
    pub default_value: Value,
    pub description: String,
    pub modifiable: bool,
    pub units: String,
}

/// A requested change.
#[derive(Debug, Clone)]
pub struct Change {
    pub path: String,
    pub value: Value,
    pub note: Option<String>,
}

fn validate(def: &Definition, value: &Value) -> Result<Value> {
    match def.kind {
        Kind::Integer { min, max } => {
            let n = value
                .as_i64()
                .or_else(|| {
                    value
                        .as_f64()
                        .filter(|f| f.fract() == 0.0)
                        .map(|f| f as i64)
                })
                .ok_or_else(|| {
                    Error::invalid(format!(
                        "configurationOptions: `{}` takes an integer number of {}, not {value}",
                        def.path, def.units
                    ))
                })?;
            if n < min || n > max {
                return Err(Error::invalid(format!(
                    "configurationOptions: `{}` must be between {min} and {max} {}",
                    def.path, def.units
                )));
            }
            Ok(Value::from(n))
        }
        Kind::Boolean => value.as_bool().map(Value::from).ok_or_else(|| {
            Error::invalid(format!(
                "configurationOptions: `{}` takes true or false, not {value}",
                def.path
            ))
        }),
    }
}

/// The system values every user's windows derive from.
#[derive(Debug, Clone, Copy)]
pub struct SystemWindows {
    /// `ValidityWithoutUserLogin`, days.
    pub validity_days: i64,
    /// `DefaultSessionDuration`, minutes.
    pub session_minutes: i64,
}

/// Both values in one read (every user shown needs both).
pub fn system_windows(conn: &mut DbConn, config: &Config) -> Result<SystemWindows> {
    let rows: Vec<(String, String)> = options::table
        .filter(options::path.eq_any([VALIDITY_WITHOUT_USER_LOGIN, DEFAULT_SESSION_DURATION]))
        .select((options::path, options::value))
        .load(conn)?;
    let stored = |path: &str| {
        rows.iter()
            .find(|(p, _)| p == path)
            .and_then(|(_, v)| serde_json::from_str::<Value>(v).ok())
            .and_then(|v| v.as_i64())
    };
    Ok(SystemWindows {
        validity_days: stored(VALIDITY_WITHOUT_USER_LOGIN)
            .unwrap_or(config.access_keys.validity_without_user_login_days),
        session_minutes: stored(DEFAULT_SESSION_DURATION)
            .unwrap_or(config.sessions.interactive_ttl_minutes),
    })
}

/// The current value of an option (stored, or its default), inside a caller's connection.
pub fn current(conn: &mut DbConn, config: &Config, path: &str) -> Result<Value> {
    let def = definition(path)
        .ok_or_else(|| Error::Internal(format!("no option definition for {path}")))?;
    Ok(stored(conn, def.path)?.unwrap_or_else(|| (def.default)(config)))
}

pub fn current_i64(conn: &mut DbConn, config: &Config, path: &str) -> Result<i64> {
    current(conn, config, path)?
        .as_i64()
        .ok_or_else(|| Error::Internal(format!("option {path} is not an integer")))
}

pub fn current_bool(conn: &mut DbConn, config: &Config, path: &str) -> Result<bool> {
    current(conn, config, path)?
        .as_bool()
        .ok_or_else(|| Error::Internal(format!("option {path} is not a boolean")))
}

fn stored(conn: &mut DbConn, path: &str) -> Result<Option<Value>> {
    let row: Option<String> = options::table
        .filter(options::path.eq(path))
        .select(options::value)
        .first(conn)
        .optional()?;
    Ok(row.and_then(|v| serde_json::from_str(&v).ok()))
}

/// The current system validity window in days (inside a caller's connection, so a key check
/// reads key, user and option in one round trip).
pub fn validity_days(conn: &mut DbConn, config: &Config) -> Result<i64> {
    Ok(stored(conn, VALIDITY_WITHOUT_USER_LOGIN)?
        .and_then(|v| v.as_i64())
        .unwrap_or(config.access_keys.validity_without_user_login_days))
}

fn output(conn: &mut DbConn, config: &Config, def: &Definition) -> Result<OptionOutput> {
    let default = (def.default)(config);
    Ok(OptionOutput {
        path: def.path.to_string(),
        value: stored(conn, def.path)?.unwrap_or_else(|| default.clone()),
        default_value: default,
        description: def.description.to_string(),
        modifiable: true,
        units: def.units.to_string(),
    })
}

pub async fn list(store: &Store, config: &Config) -> Result<Vec<OptionOutput>> {
    let config = config.clone();
    store
        .read(move |conn| {
            DEFINITIONS
                .iter()
                .map(|d| output(conn, &config, d))
                .collect()
        })
        .await
}

/// Validates every change first (nothing is written if any is wrong), then applies all in
/// one transaction with an audit event each. With `dry_run` it only answers what would be.
pub async fn set(
    app: &Services,
    actor: &Actor,
    changes: Vec<Change>,
    dry_run: bool,
) -> Result<Vec<OptionOutput>> {
    match set_once(app, actor, changes.clone(), dry_run).await {
        // Two replicas set an option for the first time at once: one insert lost the race
        // on the primary key. Again, it finds the row and updates it.
        Err(Error::Conflict(_)) => set_once(app, actor, changes, dry_run).await,
        other => other,
    }
}

async fn set_once(
    app: &Services,
    actor: &Actor,
    changes: Vec<Change>,
    dry_run: bool,
) -> Result<Vec<OptionOutput>> {
    if changes.is_empty() {
        return Err(Error::invalid(
            "configurationOptions: at least one option is required",
        ));
    }
    let mut valid = Vec::with_capacity(changes.len());
    for c in changes {
        let def = definition(&c.path).ok_or_else(|| {
            Error::invalid(format!("configurationOptions: unknown option `{}`", c.path))
        })?;
        valid.push((def, validate(def, &c.value)?, c.note));
    }
    let now = app.clock.now();
    let config = app.config.clone();
    let actor = actor.clone();
    let out = app
        .store
        .write(move |conn| {
            let mut out = Vec::new();
            for (def, value, note) in &valid {
                if dry_run {
                    let mut o = output(conn, &config, def)?;
                    o.value = value.clone();
                    out.push(o);
                    continue;
                }
                let old = output(conn, &config, def)?.value;
                let row = OptionRow {
                    path: def.path.to_string(),
                    value: value.to_string(),
                    updated_at: to_ms(now),
                    updated_by: actor.name.clone(),
                };
                // Update, else insert: portable, and safe inside the write transaction.
                let updated = diesel::update(options::table.find(&row.path))
                    .set((
                        options::value.eq(&row.value),
                        options::updated_at.eq(row.updated_at),
                        options::updated_by.eq(&row.updated_by),
                    ))
                    .execute(conn)?;
                if updated == 0 {
                    diesel::insert_into(options::table)
                        .values(&row)
                        .execute(conn)?;
                }
                let mut detail = format!("{old} -> {value}");
                if let Some(n) = note.as_deref().filter(|n| !n.is_empty()) {
                    detail.push_str(&format!(" ({n})"));
                }
                audit::record(
                    conn,
                    now,
                    &Event::new("option.set", &actor)
                        .target("option", def.path, def.path)
                        .detail(detail),
                )?;
                out.push(output(conn, &config, def)?);
            }
            if !dry_run {
                revocation::announce(conn, &Revoked::All)?;
            }
            Ok(out)
        })
        .await?;
    if !dry_run {
        revocation::changed(app, Revoked::All);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integer_validation() {
        let def = definition("authentication/accesskey/validitywithoutuserlogin").unwrap();
        assert_eq!(validate(def, &Value::from(7)).unwrap(), Value::from(7));
        assert_eq!(validate(def, &Value::from(7.0)).unwrap(), Value::from(7));
        assert!(validate(def, &Value::from(7.5)).is_err());
        assert!(validate(def, &Value::from(-1)).is_err());
        assert!(validate(def, &Value::from("7")).is_err());
        assert!(validate(def, &Value::Null).is_err());
        assert!(definition("Nope/Nope").is_none());
    }
}
