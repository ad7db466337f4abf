//! Failed-login throttling: after too many failures for one name from one address (or from
//! one address in all), further attempts are refused with 429 until the window has passed.
//! Counted per process; the window starts at the first attempt counted.
//!
//! Built so that it cannot be turned against the service or its users: counters are fixed
//! size (a keyed hash of the name, never the name itself), there are at most `max_entries`
//! of them (the oldest go first), and an attempt is admitted and reserved in one step, so
//! parallel attempts cannot all slip under a limit.

use crate::config::LoginThrottleConfig;
use crate::error::{Error, Result};
use chrono::{DateTime, Duration, Utc};
use std::collections::hash_map::{Entry, RandomState};
use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, Hasher};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

/// Addresses whose refusals are tallied one by one between two `take_refusals` calls; the
/// refusals of any further address go into the `addr: None` bucket.
const MAX_TALLIED: usize = 10_000;

/// Longest window honoured (about 100 years), so window arithmetic cannot overflow.
const MAX_WINDOW_SECONDS: u64 = 100 * 366 * 24 * 3600;

/// What a counter counts. Fixed size and `Copy`: a long name costs no more than a short one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Key {
    /// One name (lower-cased, hashed with the per-process key) from one address.
    Name(u64, Option<IpAddr>),
    /// All names from one address.
    Address(Option<IpAddr>),
}

#[derive(Debug)]
struct Counter {
    /// Tells this counter from a later one under the same key (after eviction or success),
    /// so an attempt never releases a reservation it did not make.
    id: u64,
    failures: u32,
    /// Attempts admitted and not resolved yet; they count towards the limit.
    pending: u32,
    /// Start of the window.
    since: DateTime<Utc>,
}

impl Counter {
    fn counted(&self) -> u32 {
        self.failures.saturating_add(self.pending)
    }
}

/// How an admitted attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Succeeded,
    Failed,
    Abandoned,
}

/// A reservation: the counter's key and its id when the reservation was made.
type Reserved = [Option<(Key, u64)>; 2];

/// Refusals of one address between two `take_refusals` calls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusals {
    /// None: no address known, or more addresses than are tallied one by one.
    pub addr: Option<IpAddr>,
    pub count: u64,
    pub first: DateTime<Utc>,
    pub last: DateTime<Utc>,
}

/// The throttle's whole state, without locking or time of its own: every decision takes
/// `now`, so it is tested as plain data.
#[derive(Debug)]
struct Book {
    max_failures: u32,
    max_per_address: u32,
    window: Duration,
    max_entries: usize,
    counters: HashMap<Key, Counter>,
    /// (key, counter id, window start) in the order windows started, for O(1) eviction of
    /// the oldest. Entries whose counter has gone or restarted are skipped when reached.
    order: VecDeque<(Key, u64, DateTime<Utc>)>,
    next_id: u64,
    refusals: HashMap<Option<IpAddr>, Refusals>,
}

impl Book {
    fn new(cfg: &LoginThrottleConfig) -> Book {
        let seconds = cfg.window_seconds.clamp(1, MAX_WINDOW_SECONDS);
        Book {
            max_failures: cfg.max_failures,
            max_per_address: cfg.max_failures_per_address,
            window: Duration::seconds(i64::try_from(seconds).unwrap_or(i64::from(u32::MAX))),
            // Two, so the two counters of one attempt never evict each other.
            max_entries: cfg.max_entries.max(2),
            counters: HashMap::new(),
            order: VecDeque::new(),
            next_id: 0,
            refusals: HashMap::new(),
        }
    }

    /// The counters an attempt of `name` (hashed) from `addr` counts in, with their limits;
    /// a limit of 0 is off and has no counter.
    fn keys(&self, name: u64, addr: Option<IpAddr>) -> [Option<(Key, u32)>; 2] {
        let named = (self.max_failures > 0).then_some((Key::Name(name, addr), self.max_failures));
        let wide = (self.max_per_address > 0).then_some((Key::Address(addr), self.max_per_address));
        [named, wide]
    }

    fn until(&self, since: DateTime<Utc>) -> DateTime<Utc> {
        since
            .checked_add_signed(self.window)
            .unwrap_or(DateTime::<Utc>::MAX_UTC)
    }

    fn is_live(&self, key: &Key, id: u64, since: DateTime<Utc>) -> bool {
        matches!(self.counters.get(key), Some(c) if c.id == id && c.since == since)
    }

    /// Forgets counters whose window has passed (oldest first, stopping at the first live
    /// one); a counter with attempts in flight starts a new window instead.
    fn prune(&mut self, now: DateTime<Utc>) {
        while let Some(&(key, id, since)) = self.order.front() {
            let live = self.is_live(&key, id, since);
            if live && now < self.until(since) {
                break;
            }
            self.order.pop_front();
            if !live {
                continue;
            }
            if let Entry::Occupied(mut e) = self.counters.entry(key) {
                if e.get().pending == 0 {
                    e.remove();
                } else {
                    let c = e.get_mut();
                    c.failures = 0;
                    c.since = now;
                    self.order.push_back((key, id, now));
                }
            }
        }
        // Skipped entries of counters removed early (successes) would otherwise pile up
        // behind a live front; compacting after as many again keeps this O(1) amortised.
        if self.order.len() > 2 * self.counters.len() + 64 {
            let counters = &self.counters;
            self.order.retain(
                |(k, id, since)| matches!(counters.get(k), Some(c) if c.id == *id && c.since == *since),
            );
        }
    }

    /// Removes the counter whose window started first. False when there is none.
    fn evict_oldest(&mut self) -> bool {
        while let Some((key, id, since)) = self.order.pop_front() {
            if self.is_live(&key, id, since) {
                self.counters.remove(&key);
                return true;
            }
        }
        false
    }

    /// Seconds until `key` lets an attempt through, or None when it does now.
    fn blocked(&self, key: &Key, limit: u32, now: DateTime<Utc>) -> Option<i64> {
        let c = self.counters.get(key)?;
        let until = self.until(c.since);
        if now >= until || c.counted() < limit {
            return None;
        }
        // Rounded up: a client that waits this long is let through.
        Some(
            ((until - now).num_milliseconds().saturating_add(999))
                .div_euclid(1000)
                .max(1),
        )
    }

    /// The counter of `key`, made (evicting the oldest when full) or restarted as needed.
    fn counter(&mut self, key: Key, now: DateTime<Utc>) -> &mut Counter {
        if !self.counters.contains_key(&key) {
            while self.counters.len() >= self.max_entries && self.evict_oldest() {}
        }
        let until_of = |since: DateTime<Utc>| {
            since
                .checked_add_signed(self.window)
                .unwrap_or(DateTime::<Utc>::MAX_UTC)
        };
        match self.counters.entry(key) {
            Entry::Occupied(e) => {
                let c = e.into_mut();
                if now >= until_of(c.since) {
                    c.failures = 0;
                    c.since = now;
                    self.order.push_back((key, c.id, now));
                }
                c
            }
            Entry::Vacant(e) => {
                let id = self.next_id;
                self.next_id = self.next_id.wrapping_add(1);
                self.order.push_back((key, id, now));
                e.insert(Counter {
                    id,
                    failures: 0,
                    pending: 0,
                    since: now,
                })
            }
        }
    }

    /// Refuses (with the seconds to wait) when a limit is reached; otherwise reserves the
    /// attempt in every counter it counts in.
    fn admit(
        &mut self,
        name: u64,
        addr: Option<IpAddr>,
        now: DateTime<Utc>,
    ) -> std::result::Result<Reserved, u64> {
        self.prune(now);
        let keys = self.keys(name, addr);
        if let Some(wait) = self.check_keys(&keys, now) {
            self.refused(addr, now);
            return Err(wait);
        }
        let mut reserved: Reserved = [None, None];
        for (slot, key) in reserved.iter_mut().zip(keys) {
            if let Some((key, _)) = key {
                let c = self.counter(key, now);
                c.pending = c.pending.saturating_add(1);
                *slot = Some((key, c.id));
            }
        }
        Ok(reserved)
    }

    /// The longest wait any limit of `keys` imposes.
    fn check_keys(&self, keys: &[Option<(Key, u32)>; 2], now: DateTime<Utc>) -> Option<u64> {
        keys.iter()
            .flatten()
            .filter_map(|(key, limit)| self.blocked(key, *limit, now))
            .max()
            .map(|w| u64::try_from(w).unwrap_or(1))
    }

    /// Ends an admitted attempt: releases its reservations and counts a failure.
    fn resolve(&mut self, reserved: &Reserved, outcome: Outcome, at: DateTime<Utc>) {
        for (key, id) in reserved.iter().flatten() {
            let mine = match self.counters.get_mut(key) {
                Some(c) if c.id == *id => {
                    c.pending = c.pending.saturating_sub(1);
                    true
                }
                _ => false,
            };
            match outcome {
                Outcome::Failed => {
                    // A counter evicted meanwhile is made again: the failure still counts.
                    let c = if mine {
                        self.counters.get_mut(key)
                    } else {
                        Some(self.counter(*key, at))
                    };
                    if let Some(c) = c {
                        c.failures = c.failures.saturating_add(1);
                    }
                }
                Outcome::Succeeded => {
                    // The name's count only: a guesser who knows one password does not get
                    // to keep guessing others from the same address.
                    if let (Key::Name(..), Some(c)) = (key, self.counters.get_mut(key)) {
                        c.failures = 0;
                    }
                }
                Outcome::Abandoned => {}
            }
            self.forget_if_empty(key);
        }
    }

    fn forget_if_empty(&mut self, key: &Key) {
        if let Entry::Occupied(e) = self.counters.entry(*key) {
            if e.get().counted() == 0 {
                e.remove();
            }
        }
    }

    fn refused(&mut self, addr: Option<IpAddr>, now: DateTime<Utc>) {
        let bucket = if self.refusals.len() < MAX_TALLIED || self.refusals.contains_key(&addr) {
            addr
        } else {
            None
        };
        self.refusals
            .entry(bucket)
            .and_modify(|r| {
                r.count = r.count.saturating_add(1);
                r.first = r.first.min(now);
                r.last = r.last.max(now);
            })
            .or_insert(Refusals {
                addr: bucket,
                count: 1,
                first: now,
                last: now,
            });
    }

    fn take_refusals(&mut self) -> Vec<Refusals> {
        let mut all: Vec<Refusals> = std::mem::take(&mut self.refusals).into_values().collect();
        all.sort_by_key(|a| (a.first, a.addr));
        all
    }
}

/// Feeds bytes to a hasher in fixed 256-byte chunks, so equal byte streams hash alike
/// however they were produced, without allocating.
struct Chunked<H: Hasher> {
    hasher: H,
    buf: [u8; 256],
    len: usize,
}

impl<H: Hasher> Chunked<H> {
    fn push(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            let room = self.buf.len() - self.len;
            let n = room.min(bytes.len());
            let (head, rest) = bytes.split_at(n);
            if let Some(dst) = self.buf.get_mut(self.len..self.len + n) {
                dst.copy_from_slice(head);
            }
            self.len += n;
            bytes = rest;
            if self.len == self.buf.len() {
                self.hasher.write(&self.buf);
                self.len = 0;
            }
        }
    }

    fn finish(mut self) -> u64 {
        if let Some(tail) = self.buf.get(..self.len) {
            self.hasher.write(tail);
        }
        self.hasher.finish()
    }
}

/// The lower-cased name hashed with the per-process key, streaming (no lower-cased copy).
fn hash_name(key: &RandomState, name: &str) -> u64 {
    let mut out = Chunked {
        hasher: key.build_hasher(),
        buf: [0; 256],
        len: 0,
    };
    if name.is_ascii() {
        // The common case, a byte at a time would be slow for long names.
        let mut piece = [0u8; 256];
        for chunk in name.as_bytes().chunks(piece.len()) {
            if let Some(dst) = piece.get_mut(..chunk.len()) {
                dst.copy_from_slice(chunk);
                dst.make_ascii_lowercase();
                out.push(dst);
            }
        }
    } else {
        let mut utf8 = [0u8; 4];
        for c in name.chars().flat_map(char::to_lowercase) {
            out.push(c.encode_utf8(&mut utf8).as_bytes());
        }
    }
    out.finish()
}

fn rate_limited(wait: u64) -> Error {
    Error::RateLimited(
        format!("too many failed logins; try again in {wait} seconds"),
        wait,
    )
}

pub struct LoginThrottle {
    /// Keys the name hash; random per process, so nobody can aim names at one counter.
    hash_key: RandomState,
    book: Mutex<Book>,
    refused_total: AtomicU64,
}

/// An admitted login attempt, reserved in the throttle's counters until it is resolved.
/// Dropping it unresolved counts as a failure, so a client that hangs up mid-attempt does
/// not get a free guess.
#[must_use = "resolve the attempt with succeeded(), failed() or abandoned()"]
pub struct Attempt<'a> {
    throttle: &'a LoginThrottle,
    reserved: Reserved,
    at: DateTime<Utc>,
    resolved: bool,
}

impl Attempt<'_> {
    /// Releases the reservation and clears the name's failures from this address.
    pub fn succeeded(mut self) {
        self.resolve(Outcome::Succeeded);
    }

    /// Counts the attempt as a failure.
    pub fn failed(mut self) {
        self.resolve(Outcome::Failed);
    }

    /// Releases the reservation without counting it (the credentials were never judged,
    /// e.g. the directory was down).
    pub fn abandoned(mut self) {
        self.resolve(Outcome::Abandoned);
    }

    fn resolve(&mut self, outcome: Outcome) {
        if !self.resolved {
            self.resolved = true;
            self.throttle
                .book()
                .resolve(&self.reserved, outcome, self.at);
        }
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        self.resolve(Outcome::Failed);
    }
}

impl LoginThrottle {
    pub fn new(cfg: &LoginThrottleConfig) -> LoginThrottle {
        LoginThrottle {
            hash_key: RandomState::new(),
            book: Mutex::new(Book::new(cfg)),
            refused_total: AtomicU64::new(0),
        }
    }

    /// The counters stay consistent whatever a panicking holder did, so a poisoned lock is
    /// used as is rather than turning every later login into a panic.
    fn book(&self) -> MutexGuard<'_, Book> {
        self.book.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn refuse(&self, wait: u64) -> Error {
        self.refused_total.fetch_add(1, Ordering::Relaxed);
        rate_limited(wait)
    }

    /// Checks both limits and, when the attempt may go ahead, reserves it (it counts towards
    /// the limits like a failure until resolved) in the same step. Refusal is 429 with the
    /// seconds to wait.
    pub fn admit(
        &self,
        name: &str,
        addr: Option<IpAddr>,
        now: DateTime<Utc>,
    ) -> Result<Attempt<'_>> {
        let name = hash_name(&self.hash_key, name);
        let reserved = self.book().admit(name, addr, now);
        match reserved {
            Ok(reserved) => Ok(Attempt {
                throttle: self,
                reserved,
                at: now,
                resolved: false,
            }),
            Err(wait) => Err(self.refuse(wait)),
        }
    }

    /// Every 429 answered since start.
    pub fn refused_total(&self) -> u64 {
        self.refused_total.load(Ordering::Relaxed)
    }

    /// The refusals per address since the last call (oldest first), and starts afresh.
    pub fn take_refusals(&self) -> Vec<Refusals> {
        self.book().take_refusals()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + s, 0).unwrap()
    }

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    fn cfg(max_failures: u32, per_address: u32, max_entries: usize) -> LoginThrottleConfig {
        LoginThrottleConfig {
            max_failures,
            max_failures_per_address: per_address,
            window_seconds: 60,
            max_entries,
        }
    }

    fn counters(th: &LoginThrottle) -> usize {
        th.book().counters.len()
    }

    fn has_name(th: &LoginThrottle, name: &str, addr: Option<IpAddr>) -> bool {
        let key = Key::Name(hash_name(&th.hash_key, name), addr);
        th.book().counters.contains_key(&key)
    }

    #[test]
    fn limits_per_name_and_address_and_forgets_after_the_window() {
        let th = LoginThrottle::new(&cfg(3, 5, 1000));
        let a = ip("10.0.0.1");
        for i in 0..3 {
            th.admit("Bob", a, t(i)).unwrap().failed();
        }
        let err = th.admit("bob", a, t(10)).err().unwrap();
        assert!(matches!(err, Error::RateLimited(_, 50)), "{err:?}");
        assert_eq!(
            err.to_string(),
            "too many failed logins; try again in 50 seconds"
        );
        th.admit("bob", ip("10.0.0.2"), t(10))
            .expect("other address")
            .failed();
        th.admit("carol", a, t(10)).expect("other name").failed();
        th.admit("dave", a, t(12)).unwrap().failed();
        let err = th.admit("erin", a, t(13)).err().expect("5 failures from a");
        assert!(matches!(err, Error::RateLimited(_, 47)), "{err:?}");
        // Both of bob's windows (name and address) started at t(0) and have passed.
        th.admit("bob", a, t(61))
            .expect("window passed")
            .succeeded();
        assert_eq!(th.refused_total(), 2);
    }

    #[test]
    fn one_names_lockout_does_not_block_other_names() {
        let th = LoginThrottle::new(&cfg(2, 0, 1000));
        let a = ip("10.0.0.1");
        for _ in 0..2 {
            th.admit("victim", a, t(0)).unwrap().failed();
        }
        assert!(th.admit("VICTIM", a, t(1)).is_err());
        for i in 0..20 {
            th.admit(&format!("other{i}"), a, t(1)).unwrap().succeeded();
        }
    }

    #[test]
    fn zero_turns_it_off() {
        let th = LoginThrottle::new(&cfg(0, 0, 1000));
        for i in 0..50 {
            th.admit("bob", None, t(i)).unwrap().failed();
        }
        assert!(th.admit("bob", None, t(51)).is_ok());
        assert_eq!(counters(&th), 0);
    }

    #[test]
    fn parallel_admits_cannot_overshoot_the_limit() {
        for (per_name, per_address) in [(100, 0), (0, 100), (100, 100)] {
            let th = LoginThrottle::new(&cfg(per_name, per_address, 1000));
            let admitted = AtomicU64::new(0);
            std::thread::scope(|s| {
                for thread in 0..8 {
                    let (th, admitted) = (&th, &admitted);
                    s.spawn(move || {
                        let n = if thread < 4 { 38 } else { 37 };
                        // Held until the end: all 300 are in flight together.
                        let mut held = Vec::new();
                        for _ in 0..n {
                            if let Ok(a) = th.admit("bob", ip("10.0.0.1"), t(0)) {
                                admitted.fetch_add(1, Ordering::Relaxed);
                                held.push(a);
                            }
                        }
                        held
                    });
                }
            });
            assert_eq!(admitted.load(Ordering::Relaxed), 100);
            assert_eq!(th.refused_total(), 200);
        }
    }

    #[test]
    fn success_releases_and_clears_the_name_but_not_the_address() {
        let th = LoginThrottle::new(&cfg(2, 3, 1000));
        let a = ip("10.0.0.1");
        th.admit("bob", a, t(0)).unwrap().failed();
        let held = th.admit("bob", a, t(1)).unwrap();
        assert!(th.admit("bob", a, t(1)).is_err(), "reserved counts");
        held.succeeded();
        th.admit("bob", a, t(2)).unwrap().abandoned();
        th.admit("bob", a, t(2)).unwrap().failed();
        // Address: 2 failures + this reservation = 3.
        let last = th.admit("carol", a, t(3)).unwrap();
        assert!(th.admit("dave", a, t(3)).is_err(), "address limit stays");
        last.abandoned();
        th.admit("dave", a, t(3)).unwrap().succeeded();
    }

    #[test]
    fn dropping_an_unresolved_attempt_counts_as_a_failure() {
        let th = LoginThrottle::new(&cfg(2, 0, 1000));
        let a = ip("10.0.0.1");
        drop(th.admit("bob", a, t(0)).unwrap());
        drop(th.admit("bob", a, t(0)).unwrap());
        assert!(th.admit("bob", a, t(1)).is_err());
        let b = th.book();
        let c = b.counters.values().next().unwrap();
        assert_eq!((c.failures, c.pending), (2, 0));
    }

    #[test]
    fn abandoned_attempts_leave_nothing_behind() {
        let th = LoginThrottle::new(&cfg(2, 5, 1000));
        for i in 0..10 {
            th.admit(&format!("n{i}"), ip("10.0.0.1"), t(0))
                .unwrap()
                .abandoned();
        }
        assert_eq!(counters(&th), 0);
    }

    #[test]
    fn memory_is_bounded_and_the_oldest_go_first() {
        let max = 1000;
        let th = LoginThrottle::new(&cfg(5, 0, max));
        let addrs: Vec<_> = (1..=10).map(|i| ip(&format!("10.0.0.{i}"))).collect();
        let mut name = [b'x'; 300];
        // Distinct ASCII names: i in the first 8 bytes.
        fn name_of(name: &mut [u8; 300], mut i: usize) -> &str {
            for d in name[..8].iter_mut().rev() {
                *d = b'0' + (i % 10) as u8;
                i /= 10;
            }
            std::str::from_utf8(name).unwrap()
        }
        let total = 1_000_000;
        for i in 0..total {
            let at = t(0) + Duration::microseconds(i as i64);
            th.admit(name_of(&mut name, i), addrs[i % 10], at)
                .unwrap()
                .failed();
            if i % 1000 == 0 {
                assert!(counters(&th) <= max);
            }
        }
        let book = th.book();
        assert_eq!(book.counters.len(), max);
        assert!(book.order.len() <= 2 * max + 64, "{}", book.order.len());
        drop(book);
        // Exactly the newest `max` are kept.
        for i in [0, 1, total / 2, total - max - 1] {
            assert!(
                !has_name(&th, name_of(&mut name, i), addrs[i % 10]),
                "{i} kept"
            );
        }
        for i in [total - max, total - max / 2, total - 1] {
            assert!(
                has_name(&th, name_of(&mut name, i), addrs[i % 10]),
                "{i} evicted"
            );
        }
    }

    #[test]
    fn the_cap_holds_with_both_limits_on() {
        let th = LoginThrottle::new(&cfg(5, 1_000_000, 100));
        for i in 0..10_000 {
            th.admit(&format!("n{i}"), ip("10.0.0.1"), t(0))
                .unwrap()
                .failed();
        }
        assert_eq!(counters(&th), 100);
    }

    #[test]
    fn a_long_name_costs_no_more_than_a_short_one() {
        fn is_copy<T: Copy>() {}
        is_copy::<Key>();
        assert!(std::mem::size_of::<Key>() <= 32);
        let th = LoginThrottle::new(&cfg(5, 5, 1000));
        let long = "A".repeat(300 * 1024);
        th.admit(&long, ip("10.0.0.1"), t(0)).unwrap().failed();
        th.admit("a", ip("10.0.0.2"), t(0)).unwrap().failed();
        let b = th.book();
        assert_eq!(b.counters.len(), 4);
        assert_eq!(b.order.len(), 4);
        drop(b);
        assert!(has_name(&th, &long.to_lowercase(), ip("10.0.0.1")));
    }

    #[test]
    fn names_compare_without_regard_to_case() {
        let k = RandomState::new();
        assert_eq!(hash_name(&k, "Bob"), hash_name(&k, "bOB"));
        assert_eq!(hash_name(&k, "ÉLODIE"), hash_name(&k, "élodie"));
        // Kelvin sign: a non-ASCII name that lower-cases to an ASCII one.
        assert_eq!(hash_name(&k, "\u{212A}EY"), hash_name(&k, "key"));
        let long = "Ab".repeat(1000);
        assert_eq!(hash_name(&k, &long), hash_name(&k, &long.to_lowercase()));
        assert_ne!(hash_name(&k, "bob"), hash_name(&k, "bob2"));
        assert_ne!(hash_name(&k, "bob"), hash_name(&RandomState::new(), "bob"));
    }

    #[test]
    fn refusals_are_tallied_per_address_and_bounded() {
        let th = LoginThrottle::new(&cfg(0, 1, 100_000));
        let a = ip("10.0.0.1");
        th.admit("x", a, t(0)).unwrap().failed();
        for i in 1..=3 {
            assert!(th.admit("x", a, t(i)).is_err());
        }
        assert!(th.admit("x", a, t(4)).is_err());
        th.admit("x", ip("10.0.0.2"), t(5)).unwrap().failed();
        assert!(th.admit("x", ip("10.0.0.2"), t(6)).is_err());
        assert_eq!(
            th.take_refusals(),
            vec![
                Refusals {
                    addr: a,
                    count: 4,
                    first: t(1),
                    last: t(4)
                },
                Refusals {
                    addr: ip("10.0.0.2"),
                    count: 1,
                    first: t(6),
                    last: t(6)
                },
            ]
        );
        assert!(th.take_refusals().is_empty(), "reset by taking");
        assert_eq!(th.refused_total(), 5);

        let n = MAX_TALLIED + 50;
        for i in 0..n {
            let addr = Some(IpAddr::from([10, 1, (i / 256) as u8, (i % 256) as u8]));
            th.admit("x", addr, t(10)).unwrap().failed();
            assert!(th.admit("x", addr, t(11)).is_err());
        }
        let tally = th.take_refusals();
        assert_eq!(tally.len(), MAX_TALLIED + 1);
        let rest: Vec<_> = tally.iter().filter(|r| r.addr.is_none()).collect();
        assert_eq!(rest.len(), 1);
        assert_eq!(rest[0].count, 50);
        assert_eq!(tally.iter().map(|r| r.count).sum::<u64>(), n as u64);
    }

    #[test]
    fn windows_restart_for_counters_with_attempts_in_flight() {
        let th = LoginThrottle::new(&cfg(2, 0, 1000));
        let a = ip("10.0.0.1");
        let slow = th.admit("bob", a, t(0)).unwrap();
        th.admit("bob", a, t(1)).unwrap().failed();
        assert!(th.admit("bob", a, t(2)).is_err());
        // The window passes with `slow` in flight: it still counts, the old failure not.
        let next = th.admit("bob", a, t(70)).unwrap();
        assert!(th.admit("bob", a, t(70)).is_err());
        slow.abandoned();
        next.abandoned();
        assert_eq!(counters(&th), 0);
    }
}
