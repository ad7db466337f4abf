//! Runtime options that admins change through the API (`/api/system/configuration/options`).
//! Stored in the database; an option never set takes its default from the configuration.

use crate::audit::{self, Actor, Event};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::revocation::{self, Revoked};
use crate::services::Services;
use crate::store::models::OptionRow;
use crate::store::schema::options;
use crate::store::timestamp::Timestamp;
use crate::store::DbConn;
use diesel::prelude::*;
use serde_json::Value;

pub const VALIDITY_WITHOUT_USER_LOGIN: &str = "Authentication/AccessKey/ValidityWithoutUserLogin";

pub const DEFAULT_SESSION_DURATION: &str = "Authentication/DefaultSessionDuration";
pub const KEY_CREATION_ENABLED: &str = "Authentication/AccessKey/Creation/Enabled";
pub const SERVICE_ACCOUNT_MAX_LIFETIME: &str =
    "Authentication/AccessKey/ServicePrincipal/MaxLifetime";
pub const WARNING_DAYS: &str = "Authentication/AccessKey/WarningDays";
pub const ROTATION_OVERLAP_MINUTES: &str = "Authentication/AccessKey/RotationOverlapMinutes";
pub const MAX_IDLE_DAYS: &str = "Authentication/AccessKey/MaxIdleDays";

/// Every runtime option, typed, as in force: the stored value where an admin set one, else
/// the default from the configuration. Read in one query ([`RuntimeOptions::load`]) by every
/// handler, page, job and command that needs an option.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RuntimeOptions {
    /// `ValidityWithoutUserLogin`, days (0 disables every access key).
    pub validity_days: i64,
    /// `DefaultSessionDuration`, minutes.
    pub session_minutes: i64,
    /// `Creation/Enabled`: people create their own keys.
    pub key_creation_enabled: bool,
    /// `ServicePrincipal/MaxLifetime`, days.
    pub service_account_max_lifetime_days: i64,
    /// `WarningDays`, days (0 sends no warnings).
    pub warning_days: i64,
    /// `RotationOverlapMinutes`: how long a rotated key's old password keeps working.
    pub rotation_overlap_minutes: i64,
    /// `MaxIdleDays`: a key unused this long stops (0: never).
    pub max_idle_days: i64,
}

impl RuntimeOptions {
    /// What the key rule reads of the options.
    pub fn key_rules(&self) -> crate::validity::KeyRules {
        crate::validity::KeyRules {
            validity_days: self.validity_days,
            max_idle_days: self.max_idle_days,
        }
    }

    /// The values when no admin has set any option: the configuration's.
    pub fn defaults(config: &Config) -> RuntimeOptions {
        RuntimeOptions {
            validity_days: config.access_keys.validity_without_user_login_days,
            session_minutes: config.sessions.interactive_ttl_minutes,
            key_creation_enabled: config.access_keys.creation_enabled,
            service_account_max_lifetime_days: config.access_keys.service_account_max_lifetime_days,
            warning_days: config.access_keys.warning_days,
            rotation_overlap_minutes: config.access_keys.rotation_overlap_minutes,
            max_idle_days: config.access_keys.max_idle_days,
        }
    }

    /// Every option in one read, inside a caller's connection (so a key check reads key,
    /// user and options in one round trip).
    pub fn load(conn: &mut DbConn, config: &Config) -> Result<RuntimeOptions> {
        let rows: Vec<(String, String)> = options::table
            .select((options::path, options::value))
            .load(conn)?;
        Ok(Self::from_stored(Self::defaults(config), &rows))
    }

    /// The defaults overlaid with stored `(path, JSON value)` rows. A stored value this build
    /// cannot read (edited by hand, or an option of another version) keeps the default rather
    /// than failing every request that reads options.
    pub fn from_stored(defaults: RuntimeOptions, rows: &[(String, String)]) -> RuntimeOptions {
        let mut out = defaults;
        for (path, value) in rows {
            let Some(def) = definition(path) else {
                continue;
            };
            let Ok(value) = serde_json::from_str::<Value>(value) else {
                tracing::warn!(option = %def.path, "stored option value is not JSON; default used");
                continue;
            };
            if let Err(e) = def.assign(&mut out, &value) {
                tracing::warn!(option = %def.path, error = %e, "stored option value refused; default used");
            }
        }
        out
    }
}

/// Where an option lives in [`RuntimeOptions`], with its type and range.
#[derive(Clone, Copy)]
pub enum Field {
    Integer {
        min: i64,
        max: i64,
        at: fn(&mut RuntimeOptions) -> &mut i64,
    },
    Boolean {
        at: fn(&mut RuntimeOptions) -> &mut bool,
    },
}

impl std::fmt::Debug for Field {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Field::Integer { min, max, .. } => write!(f, "Integer {{ min: {min}, max: {max} }}"),
            Field::Boolean { .. } => f.write_str("Boolean"),
        }
    }
}

/// The definition of one option.
#[derive(Debug, Clone, Copy)]
pub struct Definition {
    pub path: &'static str,
    pub description: &'static str,
    pub units: &'static str,
    pub field: Field,
}

/// Every option this build knows. Adding one is a field in [`RuntimeOptions`], its default
/// in [`RuntimeOptions::defaults`] and a line here.
pub const DEFINITIONS: &[Definition] = &[
    Definition {
        path: VALIDITY_WITHOUT_USER_LOGIN,
        description: "Days an access key keeps working after its owner's last interactive login. \
                  0 disables every access key. A user's accessKeyValidityDuration (minutes) \
                  overrides it.",
        units: "days",
        field: Field::Integer {
            min: 0,
            max: 36_500,
            at: |o| &mut o.validity_days,
        },
    },
    Definition {
        path: DEFAULT_SESSION_DURATION,
        description: "Minutes an interactive session lasts from its login, whatever the activity. \
                  A user's sessionDuration overrides it. Applies to sessions opened after a \
                  change.",
        units: "min",
        field: Field::Integer {
            min: 1,
            max: 525_600,
            at: |o| &mut o.session_minutes,
        },
    },
    Definition {
        path: KEY_CREATION_ENABLED,
        description: "Whether people create their own access keys. When false only admins create \
                  keys (for themselves or on behalf of a user); existing keys keep working.",
        units: "",
        field: Field::Boolean {
            at: |o| &mut o.key_creation_enabled,
        },
    },
    Definition {
        path: SERVICE_ACCOUNT_MAX_LIFETIME,
        description: "Longest lifetime of a service account's access key, in days from its \
                  creation; every such key needs an expiry within it.",
        units: "days",
        field: Field::Integer {
            min: 1,
            max: 3_650,
            at: |o| &mut o.service_account_max_lifetime_days,
        },
    },
    Definition {
        path: WARNING_DAYS,
        description: "Days before access keys stop working that their owner (or a service \
                  account's manager) is warned; 0 sends no warnings.",
        units: "days",
        field: Field::Integer {
            min: 0,
            max: 365,
            at: |o| &mut o.warning_days,
        },
    },
    Definition {
        path: ROTATION_OVERLAP_MINUTES,
        description: "Minutes a rotated access key's old password keeps working beside the new \
                  one, so running jobs finish; 0 stops it at once. Rotation never extends how \
                  long a key works.",
        units: "min",
        field: Field::Integer {
            min: 0,
            max: crate::config::RANGE_ROTATION_OVERLAP_MAX,
            at: |o| &mut o.rotation_overlap_minutes,
        },
    },
    Definition {
        path: MAX_IDLE_DAYS,
        description: "Days an access key may go unused before it stops (a key never used counts \
                  from its creation); 0 never stops idle keys. Owners are warned WarningDays \
                  before.",
        units: "days",
        field: Field::Integer {
            min: 0,
            max: crate::config::RANGE_MAX_IDLE_MAX,
            at: |o| &mut o.max_idle_days,
        },
    },
];

impl Definition {
    /// This option's value in `o`, as the API shows it.
    fn get(&self, o: &RuntimeOptions) -> Value {
        let mut o = *o;
        match self.field {
            Field::Integer { at, .. } => Value::from(*at(&mut o)),
            Field::Boolean { at } => Value::from(*at(&mut o)),
        }
    }

    /// `value` checked against the type and range, in its canonical form (7.0 is 7).
    fn validate(&self, value: &Value) -> Result<Value> {
        match self.field {
            Field::Integer { min, max, .. } => self.integer(value, min, max).map(Value::from),
            Field::Boolean { .. } => self.boolean(value).map(Value::from),
        }
    }

    /// Checks `value`, then sets it in `o`.
    fn assign(&self, o: &mut RuntimeOptions, value: &Value) -> Result<()> {
        match self.field {
            Field::Integer { min, max, at } => *at(o) = self.integer(value, min, max)?,
            Field::Boolean { at } => *at(o) = self.boolean(value)?,
        }
        Ok(())
    }

    fn output(&self, current: &RuntimeOptions, defaults: &RuntimeOptions) -> OptionOutput {
        OptionOutput {
            path: self.path.to_string(),
            value: self.get(current),
            default_value: self.get(defaults),
            description: self.description.to_string(),
            modifiable: true,
            units: self.units.to_string(),
        }
    }

    fn integer(&self, value: &Value, min: i64, max: i64) -> Result<i64> {
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
                    self.path, self.units
                ))
            })?;
        if n < min || n > max {
            return Err(Error::invalid(format!(
                "configurationOptions: `{}` must be between {min} and {max} {}",
                self.path, self.units
            )));
        }
        Ok(n)
    }

    fn boolean(&self, value: &Value) -> Result<bool> {
        value.as_bool().ok_or_else(|| {
            Error::invalid(format!(
                "configurationOptions: `{}` takes true or false, not {value}",
                self.path
            ))
        })
    }
}

fn definition(path: &str) -> Option<&'static Definition> {
    DEFINITIONS
        .iter()
        .find(|d| d.path.eq_ignore_ascii_case(path))
}

/// An option as the API shows it.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OptionOutput {
    pub path: String,
    /// The value in force (a number, a boolean or a string, by option).
    pub value: Value,
    pub default_value: Value,
    pub description: String,
    pub modifiable: bool,
    /// `days`, `minutes`, ... or empty.
    pub units: String,
}

/// A requested change.
#[derive(Debug, Clone)]
pub struct Change {
    pub path: String,
    pub value: Value,
    pub note: Option<String>,
}

/// Every option as the API shows it, from the values in force.
pub fn outputs(current: &RuntimeOptions, config: &Config) -> Vec<OptionOutput> {
    let defaults = RuntimeOptions::defaults(config);
    DEFINITIONS
        .iter()
        .map(|def| def.output(current, &defaults))
        .collect()
}

/// The options in force now, in a read of their own.
pub async fn current(app: &Services) -> Result<RuntimeOptions> {
    let config = app.config.clone();
    app.store
        .read(move |conn| RuntimeOptions::load(conn, &config))
        .await
}

/// Every option as the API shows it, in a read of its own.
pub async fn list(app: &Services) -> Result<Vec<OptionOutput>> {
    Ok(outputs(&current(app).await?, &app.config))
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
        valid.push((def, def.validate(&c.value)?, c.note));
    }
    let now = app.clock.now();
    let config = app.config.clone();
    let actor = actor.clone();
    let out = app
        .store
        .write(move |conn| {
            let defaults = RuntimeOptions::defaults(&config);
            let mut current = RuntimeOptions::load(conn, &config)?;
            let mut out = Vec::with_capacity(valid.len());
            for (def, value, note) in &valid {
                let old = def.get(&current);
                def.assign(&mut current, value)?;
                out.push(def.output(&current, &defaults));
                if dry_run {
                    continue;
                }
                let row = OptionRow {
                    path: def.path.to_string(),
                    value: value.to_string(),
                    updated_at: Timestamp::from(now),
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

    fn defaults() -> RuntimeOptions {
        RuntimeOptions {
            validity_days: 90,
            session_minutes: 480,
            key_creation_enabled: true,
            service_account_max_lifetime_days: 365,
            warning_days: 14,
            rotation_overlap_minutes: 60,
            max_idle_days: 0,
        }
    }

    fn row(path: &str, value: &str) -> (String, String) {
        (path.to_string(), value.to_string())
    }

    #[test]
    fn integer_validation() {
        let def = definition("authentication/accesskey/validitywithoutuserlogin").unwrap();
        assert_eq!(def.validate(&Value::from(7)).unwrap(), Value::from(7));
        assert_eq!(def.validate(&Value::from(7.0)).unwrap(), Value::from(7));
        assert!(def.validate(&Value::from(7.5)).is_err());
        assert!(def.validate(&Value::from(-1)).is_err());
        assert!(def.validate(&Value::from("7")).is_err());
        assert!(def.validate(&Value::Null).is_err());
        assert!(definition("Nope/Nope").is_none());
    }

    #[test]
    fn boolean_validation() {
        let def = definition(KEY_CREATION_ENABLED).unwrap();
        assert_eq!(
            def.validate(&Value::from(false)).unwrap(),
            Value::from(false)
        );
        assert!(def.validate(&Value::from(0)).is_err());
        assert!(def.validate(&Value::from("false")).is_err());
    }

    #[test]
    fn nothing_stored_is_the_configuration() {
        assert_eq!(RuntimeOptions::from_stored(defaults(), &[]), defaults());
    }

    #[test]
    fn stored_values_override_their_defaults_only() {
        let o = RuntimeOptions::from_stored(
            defaults(),
            &[
                row(VALIDITY_WITHOUT_USER_LOGIN, "7"),
                row(KEY_CREATION_ENABLED, "false"),
                row(WARNING_DAYS, "0"),
            ],
        );
        assert_eq!(
            o,
            RuntimeOptions {
                validity_days: 7,
                key_creation_enabled: false,
                warning_days: 0,
                ..defaults()
            }
        );
    }

    #[test]
    fn an_unreadable_stored_value_keeps_the_default() {
        let o = RuntimeOptions::from_stored(
            defaults(),
            &[
                row(VALIDITY_WITHOUT_USER_LOGIN, "not json"),
                row(DEFAULT_SESSION_DURATION, "0"),
                row(KEY_CREATION_ENABLED, "1"),
                row("Some/Option/Of/Another/Version", "5"),
            ],
        );
        assert_eq!(o, defaults());
    }

    #[test]
    fn the_api_shows_value_and_default_of_every_option() {
        let current = RuntimeOptions {
            validity_days: 7,
            ..defaults()
        };
        let shown: Vec<(String, Value, Value)> = DEFINITIONS
            .iter()
            .map(|d| d.output(&current, &defaults()))
            .map(|o| (o.path, o.value, o.default_value))
            .collect();
        assert_eq!(shown.len(), DEFINITIONS.len());
        assert_eq!(
            shown[0],
            (
                VALIDITY_WITHOUT_USER_LOGIN.to_string(),
                Value::from(7),
                Value::from(90)
            )
        );
        assert!(shown[1..].iter().all(|(_, v, d)| v == d));
    }
}
