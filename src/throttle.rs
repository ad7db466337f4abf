//! Failed-login throttling: after too many failures for one name from one address (or from
//! one address in all), further attempts are refused with 429 until the window has passed.
//! Counted per process; the window starts at the first failure.

use crate::config::LoginThrottleConfig;
use crate::error::{Error, Result};
use chrono::{DateTime, Duration, Utc};
use std::collections::HashMap;
use std::sync::Mutex;

/// Tracked (name, address) pairs at most; expired entries are dropped when it is reached.
const MAX_ENTRIES: usize = 100_000;

/// (lower-cased name, address) → (failures, start of the window).
type Failures = HashMap<(String, String), (u32, DateTime<Utc>)>;

pub struct LoginThrottle {
    cfg: LoginThrottleConfig,
    window: Duration,
    /// Key: (lower-cased name, address); the empty name counts all names of an address.
    failures: Mutex<Failures>,
}

impl LoginThrottle {
    pub fn new(cfg: &LoginThrottleConfig) -> LoginThrottle {
        LoginThrottle {
            window: Duration::seconds(i64::try_from(cfg.window_seconds).unwrap_or(i64::MAX / 1000)),
            cfg: cfg.clone(),
            failures: Mutex::new(HashMap::new()),
        }
    }

    fn keys(name: &str, addr: Option<&str>) -> [(String, String); 2] {
        let addr = addr.unwrap_or("-").to_string();
        [(name.to_lowercase(), addr.clone()), (String::new(), addr)]
    }

    fn limit(&self, key: &(String, String)) -> u32 {
        if key.0.is_empty() {
            self.cfg.max_failures_per_address
        } else {
            self.cfg.max_failures
        }
    }

    /// Refuses with 429 (and the seconds to wait) when a limit has been reached.
    pub fn check(&self, name: &str, addr: Option<&str>, now: DateTime<Utc>) -> Result<()> {
        let Ok(failures) = self.failures.lock() else {
            return Ok(());
        };
        for key in Self::keys(name, addr) {
            let limit = self.limit(&key);
            if limit == 0 {
                continue;
            }
            if let Some((count, since)) = failures.get(&key) {
                let until = *since + self.window;
                if *count >= limit && now < until {
                    // Rounded up: a client that waits this long is let through.
                    let wait = ((until - now).num_milliseconds() + 999)
                        .div_euclid(1000)
                        .max(1);
                    return Err(Error::RateLimited(
                        format!("too many failed logins; try again in {wait} seconds"),
                        u64::try_from(wait).unwrap_or(1),
                    ));
                }
            }
        }
        Ok(())
    }

    pub fn failed(&self, name: &str, addr: Option<&str>, now: DateTime<Utc>) {
        let Ok(mut failures) = self.failures.lock() else {
            return;
        };
        if failures.len() >= MAX_ENTRIES {
            let window = self.window;
            failures.retain(|_, (_, since)| now < *since + window);
        }
        for key in Self::keys(name, addr) {
            let entry = failures.entry(key).or_insert((0, now));
            if now >= entry.1 + self.window {
                *entry = (0, now);
            }
            entry.0 = entry.0.saturating_add(1);
        }
    }

    /// A success clears the name's count (not the address's: a guesser who knows one
    /// password does not get to keep guessing others).
    pub fn succeeded(&self, name: &str, addr: Option<&str>) {
        if let Ok(mut failures) = self.failures.lock() {
            let [named, _] = Self::keys(name, addr);
            failures.remove(&named);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + s, 0).unwrap()
    }

    #[test]
    fn limits_per_name_and_address_and_forgets_after_the_window() {
        let th = LoginThrottle::new(&LoginThrottleConfig {
            max_failures: 3,
            max_failures_per_address: 5,
            window_seconds: 60,
            max_entries: 1000,
        });
        let a = Some("10.0.0.1");
        for i in 0..3 {
            assert!(th.check("Bob", a, t(i)).is_ok());
            th.failed("Bob", a, t(i));
        }
        let err = th.check("bob", a, t(10)).unwrap_err();
        assert!(matches!(err, Error::RateLimited(_, 50)), "{err:?}");
        assert!(
            th.check("bob", Some("10.0.0.2"), t(10)).is_ok(),
            "other address"
        );
        assert!(th.check("carol", a, t(10)).is_ok(), "other name");
        th.failed("carol", a, t(11));
        th.failed("dave", a, t(12));
        assert!(
            th.check("erin", a, t(13)).is_err(),
            "5 failures from the address"
        );
        assert!(th.check("bob", a, t(61)).is_ok(), "window passed");
        th.succeeded("carol", a);
    }

    #[test]
    fn zero_turns_it_off() {
        let th = LoginThrottle::new(&LoginThrottleConfig {
            max_failures: 0,
            max_failures_per_address: 0,
            window_seconds: 60,
            max_entries: 1000,
        });
        for i in 0..50 {
            th.failed("bob", None, t(i));
        }
        assert!(th.check("bob", None, t(51)).is_ok());
    }
}
