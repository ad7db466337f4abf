//! The one rule of the product: a key works only while its owner has logged in
//! interactively within the validity window. Pure: no I/O, time is an argument.

use chrono::{DateTime, Duration, Utc};

/// The window in force for one user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    /// Keys work for this long after the owner's last interactive login.
    Minutes(i64),
    /// Keys do not work at all (override 0, or the system option 0).
    Disabled,
}

impl Window {
    pub fn minutes(self) -> i64 {
        match self {
            Window::Minutes(m) => m,
            Window::Disabled => 0,
        }
    }
}

/// The user's override (minutes; `None` = use the system value) wins over the system option
/// `Authentication/AccessKey/ValidityWithoutUserLogin` (days). Zero disables either way.
/// Negative overrides are never stored (they mean "reset"), but are read as "no override".
pub fn window(user_override_minutes: Option<i64>, system_days: i64) -> Window {
    let minutes = match user_override_minutes {
        Some(m) if m >= 0 => m,
        _ => system_days.max(0).saturating_mul(24 * 60),
    };
    if minutes == 0 {
        Window::Disabled
    } else {
        Window::Minutes(minutes)
    }
}

/// How long a key may go unused before it stops (`MaxIdleDays`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Idle {
    /// When the key was last used (its creation if never).
    pub last_active: DateTime<Utc>,
    /// Days; 0 or less: idle keys never stop.
    pub max_days: i64,
}

impl Idle {
    /// No idle limit (for keys whose use the caller does not track).
    pub fn off(last_active: DateTime<Utc>) -> Idle {
        Idle {
            last_active,
            max_days: 0,
        }
    }

    /// When the key stops for idleness; None: never.
    pub fn until(self) -> Option<DateTime<Utc>> {
        if self.max_days <= 0 {
            return None;
        }
        // An unrepresentably far end never comes.
        self.last_active
            .checked_add_signed(Duration::try_days(self.max_days)?)
    }
}

/// The system-wide options the rule reads, as in force.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KeyRules {
    /// `ValidityWithoutUserLogin`, days.
    pub validity_days: i64,
    /// `MaxIdleDays` (0: off).
    pub max_idle_days: i64,
}

impl KeyRules {
    /// The window of a user with this override.
    pub fn window(self, user_override_minutes: Option<i64>) -> Window {
        window(user_override_minutes, self.validity_days)
    }

    /// The idle limit of a key last active at `last_active`.
    pub fn idle(self, last_active: DateTime<Utc>) -> Idle {
        Idle {
            last_active,
            max_days: self.max_idle_days,
        }
    }
}

/// Why a key may not act now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Invalid {
    #[error("access keys are disabled for this user")]
    Disabled,
    #[error("the key's owner has never logged in interactively")]
    NeverLoggedIn,
    #[error("the key's owner has not logged in interactively since {last_login}; keys stopped working at {until}")]
    Expired {
        last_login: DateTime<Utc>,
        until: DateTime<Utc>,
    },
    #[error("the service account's key expired at {until}")]
    KeyExpired { until: DateTime<Utc> },
    #[error("the service account's key has no expiry")]
    NoExpiry,
    #[error("the key was last used at {last_active} and stopped at {until}, unused for longer than the idle limit")]
    Idle {
        last_active: DateTime<Utc>,
        until: DateTime<Utc>,
    },
}

/// Whose key it is, as far as the rule is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Holder {
    /// A person: keys work until last interactive login + window.
    Person { last_login: Option<DateTime<Utc>> },
    /// A service account, which never logs in: its keys work until their own expiry.
    ServiceAccount {
        key_expires_at: Option<DateTime<Utc>>,
    },
}

/// When a key stops working (unless a person signs in again, or the key is used, first): the
/// earliest of the owner's window (or a service account key's expiry) and the idle limit.
/// None: it does not work. A disabled window (override 0, or the system option 0 without
/// override) stops every key, service accounts' too.
pub fn key_valid_until(holder: Holder, window: Window, idle: Idle) -> Option<DateTime<Utc>> {
    let rule = match (holder, window) {
        (_, Window::Disabled) => None,
        (Holder::Person { last_login }, w) => valid_until(last_login, w),
        (Holder::ServiceAccount { key_expires_at }, _) => key_expires_at,
    }?;
    Some(idle.until().map_or(rule, |idle_end| idle_end.min(rule)))
}

/// May this key act at `now`? The one decision for people's and service accounts' keys:
/// the owner's window (a service account key's expiry), then the idle limit.
pub fn check_key(
    holder: Holder,
    window: Window,
    idle: Idle,
    now: DateTime<Utc>,
) -> Result<(), Invalid> {
    check_holder(holder, window, now)?;
    match idle.until() {
        Some(until) if now >= until => Err(Invalid::Idle {
            last_active: idle.last_active,
            until,
        }),
        _ => Ok(()),
    }
}

fn check_holder(holder: Holder, window: Window, now: DateTime<Utc>) -> Result<(), Invalid> {
    match holder {
        Holder::Person { last_login } => check(last_login, window, now),
        Holder::ServiceAccount { key_expires_at } => {
            if window == Window::Disabled {
                return Err(Invalid::Disabled);
            }
            match key_expires_at {
                None => Err(Invalid::NoExpiry),
                Some(until) if now >= until => Err(Invalid::KeyExpired { until }),
                Some(_) => Ok(()),
            }
        }
    }
}

/// The instant the owner's keys stop working, if they work at all.
pub fn valid_until(last_login: Option<DateTime<Utc>>, window: Window) -> Option<DateTime<Utc>> {
    match (last_login, window) {
        (Some(at), Window::Minutes(m)) => at.checked_add_signed(Duration::try_minutes(m)?),
        _ => None,
    }
}

/// May a key of a user whose last interactive login was `last_login` act at `now`?
pub fn check(
    last_login: Option<DateTime<Utc>>,
    window: Window,
    now: DateTime<Utc>,
) -> Result<(), Invalid> {
    if window == Window::Disabled {
        return Err(Invalid::Disabled);
    }
    let last_login = last_login.ok_or(Invalid::NeverLoggedIn)?;
    // An unrepresentably large window never ends.
    match valid_until(Some(last_login), window) {
        Some(until) if now >= until => Err(Invalid::Expired { last_login, until }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap()
    }

    #[test]
    fn service_account_keys_follow_their_expiry_not_logins() {
        let until = t0() + Duration::days(30);
        let sa = Holder::ServiceAccount {
            key_expires_at: Some(until),
        };
        let w = window(None, 14);
        let idle = Idle::off(t0());
        assert_eq!(check_key(sa, w, idle, t0()), Ok(()));
        assert_eq!(
            check_key(sa, w, idle, until),
            Err(Invalid::KeyExpired { until }),
            "expires at the instant"
        );
        assert_eq!(
            check_key(sa, Window::Disabled, idle, t0()),
            Err(Invalid::Disabled)
        );
        let none = Holder::ServiceAccount {
            key_expires_at: None,
        };
        assert_eq!(check_key(none, w, idle, t0()), Err(Invalid::NoExpiry));
        assert_eq!(key_valid_until(sa, w, idle), Some(until));
        assert_eq!(key_valid_until(sa, Window::Disabled, idle), None);
        let person = Holder::Person {
            last_login: Some(t0()),
        };
        assert_eq!(
            key_valid_until(person, w, idle),
            Some(t0() + Duration::days(14))
        );
        assert_eq!(
            check_key(person, w, idle, t0() + Duration::days(14)),
            check(Some(t0()), w, t0() + Duration::days(14))
        );
    }

    #[test]
    fn an_idle_key_stops_at_its_limit_and_the_earliest_end_is_shown() {
        let person = Holder::Person {
            last_login: Some(t0()),
        };
        let w = window(None, 14);
        let rules = KeyRules {
            validity_days: 14,
            max_idle_days: 5,
        };
        let used = t0() - Duration::days(2);
        let idle = rules.idle(used);
        let end = used + Duration::days(5);
        assert_eq!(idle.until(), Some(end));
        assert_eq!(
            check_key(person, w, idle, end - Duration::seconds(1)),
            Ok(())
        );
        assert_eq!(
            check_key(person, w, idle, end),
            Err(Invalid::Idle {
                last_active: used,
                until: end
            })
        );
        assert_eq!(
            key_valid_until(person, w, idle),
            Some(end),
            "idle ends first"
        );
        let recent = rules.idle(t0() + Duration::days(13));
        assert_eq!(
            key_valid_until(person, w, recent),
            Some(t0() + Duration::days(14)),
            "the window ends first"
        );
        assert_eq!(Idle::off(used).until(), None);
        assert_eq!(rules.idle(used).max_days, 5);
        assert_eq!(
            KeyRules {
                validity_days: 14,
                max_idle_days: i64::MAX
            }
            .idle(t0())
            .until(),
            None,
            "an unrepresentable end never comes"
        );
        let sa = Holder::ServiceAccount {
            key_expires_at: Some(t0() + Duration::days(30)),
        };
        assert!(matches!(
            check_key(sa, w, idle, end),
            Err(Invalid::Idle { .. })
        ));
        assert_eq!(
            key_valid_until(person, Window::Disabled, idle),
            None,
            "a key that does not work has no end"
        );
    }

    #[test]
    fn window_rules() {
        assert_eq!(window(None, 14), Window::Minutes(14 * 24 * 60));
        assert_eq!(window(None, 0), Window::Disabled);
        assert_eq!(window(Some(30), 14), Window::Minutes(30));
        assert_eq!(
            window(Some(30), 0),
            Window::Minutes(30),
            "override wins over system 0"
        );
        assert_eq!(window(Some(0), 14), Window::Disabled);
        assert_eq!(window(Some(-1), 14), Window::Minutes(14 * 24 * 60));
        assert_eq!(window(None, i64::MAX), Window::Minutes(i64::MAX));
    }

    #[test]
    fn boundaries() {
        let w = Window::Minutes(60);
        let login = Some(t0());
        assert_eq!(check(login, w, t0()), Ok(()));
        assert_eq!(check(login, w, t0() + Duration::minutes(59)), Ok(()));
        let end = t0() + Duration::minutes(60);
        assert_eq!(
            check(login, w, end),
            Err(Invalid::Expired {
                last_login: t0(),
                until: end
            })
        );
        assert_eq!(check(None, w, t0()), Err(Invalid::NeverLoggedIn));
        assert_eq!(check(login, Window::Disabled, t0()), Err(Invalid::Disabled));
        assert_eq!(
            check(
                login,
                Window::Minutes(i64::MAX),
                t0() + Duration::days(10_000)
            ),
            Ok(())
        );
        assert_eq!(valid_until(login, w), Some(end));
        assert_eq!(valid_until(login, Window::Disabled), None);
    }

    #[test]
    fn a_new_login_revives() {
        let w = window(None, 14);
        let later = t0() + Duration::days(20);
        assert!(check(Some(t0()), w, later).is_err());
        assert!(check(Some(later - Duration::hours(1)), w, later).is_ok());
    }
}
