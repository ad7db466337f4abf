//! What this process remembers of credentials it has verified, so that a known key (Basic or
//! a key session) or a live session token is decided without a database read.
//!
//! Only positive decisions are remembered, and each is re-decided on every request by the
//! same pure rule (`validity::check_key`) from what the rule needs: the owner's row, the key's
//! expiry and the system window. A key entry is bound to the stored argon2 hash it was
//! verified against and to a peppered digest of the password, compared in constant time.
//!
//! Every change that can alter a decision reaches this cache through `revocation` (locally
//! after the commit, from other processes through PostgreSQL NOTIFY or the SQLite
//! `revocations` table). A fill that read the database before an invalidation is dropped
//! (the generation counter), and a background re-check (`recheck`) caps how stale an entry
//! can be if an announcement was ever missed. While changes from other processes cannot be
//! heard, the cache is not trusted for decisions at all (`set_live(false)`).

use crate::config::CredentialCacheConfig;
use crate::ids::{KeyRowId, UserId};
use crate::secret::Secret;
use crate::store::models::{AccessKeyRow, SessionRow, UserRow};
use crate::store::timestamp::Timestamp;
use crate::validity;
use chrono::{DateTime, Utc};
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use subtle::ConstantTimeEq;

/// What changed, as far as remembered decisions are concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Revoked {
    /// One key (its row id); sessions opened with it go too.
    Key(KeyRowId),
    /// Anything about one user (row id): deleted, disabled, suspended, renamed, admin
    /// standing, overrides, a login that moved the window.
    User(UserId),
    /// One session (the hex SHA-256 of its token): logout.
    Session(String),
    /// Something system-wide (a runtime option).
    All,
}

impl Revoked {
    /// The compact form sent between processes (`k:ID`, `u:ID`, `s:HASH`, `*`).
    pub fn encode(&self) -> String {
        match self {
            Revoked::Key(id) => format!("k:{id}"),
            Revoked::User(id) => format!("u:{id}"),
            Revoked::Session(hash) => format!("s:{hash}"),
            Revoked::All => "*".into(),
        }
    }

    /// Reads [`Revoked::encode`]'s form; anything unknown is read as `All` (forgetting too
    /// much is always safe).
    pub fn decode(text: &str) -> Revoked {
        match text.split_once(':') {
            Some(("k", id)) if !id.is_empty() => Revoked::Key(KeyRowId::from(id)),
            Some(("u", id)) if !id.is_empty() => Revoked::User(UserId::from(id)),
            Some(("s", h)) if !h.is_empty() => Revoked::Session(h.into()),
            _ => Revoked::All,
        }
    }
}

/// A key whose password passed argon2.
struct KnownKey {
    row_id: Arc<str>,
    /// The map's key again, shared: a hit hands it out without allocating.
    key_id: Arc<str>,
    user_id: Arc<str>,
    stored_hash: String,
    digest: [u8; 32],
    expires_at: Option<Timestamp>,
    /// Filled while the cache was live, right after a fresh read: usable for decisions.
    /// Entries learned while it was not only spare argon2 (the row is read every time).
    decides: bool,
    /// When a use was last handed on for `lastUsed` (ms): most uses need no write, and
    /// deciding that here costs one read of a number, not a lock.
    use_noted_at: AtomicI64,
}

#[derive(Clone)]
struct KnownSession {
    user_id: Arc<str>,
    /// (row id, key id, key expiry) of the key a key session was opened with.
    key: Option<(Arc<str>, Arc<str>, Option<Timestamp>)>,
    expires_at: Timestamp,
}

#[derive(Default)]
struct State {
    keys: HashMap<String, KnownKey>,
    sessions: HashMap<[u8; 32], KnownSession>,
    users: HashMap<Arc<str>, Arc<UserRow>>,
    validity_days: Option<i64>,
}

/// A decision taken from memory.
pub struct Hit {
    pub user: Arc<UserRow>,
    /// (row id, key id) of the key behind the caller, if any.
    pub key: Option<(Arc<str>, Arc<str>)>,
    /// Whether this use should be handed on to `keys::LastUsed` (at most once per
    /// interval per key from memory).
    pub use_due: bool,
}

/// The snapshot of what is remembered, for the background re-check.
pub struct Snapshot {
    pub generation: u64,
    pub key_ids: Vec<String>,
    pub session_hashes: Vec<[u8; 32]>,
    pub user_ids: Vec<UserId>,
}

/// What the database says now about a snapshot.
#[derive(Default)]
pub struct Fresh {
    pub keys: Vec<AccessKeyRow>,
    pub sessions: Vec<SessionRow>,
    pub users: Vec<UserRow>,
    pub validity_days: i64,
}

pub struct AuthCache {
    enabled: bool,
    max_entries: usize,
    use_note_interval_ms: i64,
    pepper: [u8; 32],
    state: RwLock<State>,
    generation: AtomicU64,
    live: AtomicBool,
    hits: AtomicU64,
    misses: AtomicU64,
}

/// The SHA-256 of a session token: the key of remembered sessions (its hex form is the
/// database key, `sessions::token_hash`).
pub fn token_digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl AuthCache {
    /// `last_used_interval_seconds`: how often a remembered key's use is handed on for
    /// `lastUsed` (`access_keys.last_used_write_interval_seconds`).
    pub fn new(cfg: &CredentialCacheConfig, last_used_interval_seconds: u64) -> AuthCache {
        let mut pepper = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut pepper);
        AuthCache {
            enabled: cfg.enabled,
            max_entries: cfg.max_entries.max(1),
            use_note_interval_ms: i64::try_from(last_used_interval_seconds.saturating_mul(1000))
                .unwrap_or(i64::MAX),
            pepper,
            state: RwLock::new(State::default()),
            generation: AtomicU64::new(0),
            // Not live until the process hears other processes' changes (see `revocation`).
            live: AtomicBool::new(false),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    fn digest(&self, password: &Secret) -> [u8; 32] {
        Sha256::new()
            .chain_update(self.pepper)
            .chain_update(password.expose().as_bytes())
            .finalize()
            .into()
    }

    /// May remembered decisions be used now?
    pub fn is_live(&self) -> bool {
        self.enabled && self.live.load(Ordering::Acquire)
    }

    /// Decisions are trusted only while changes from every process can be heard. Either
    /// way the state starts over.
    pub fn set_live(&self, live: bool) {
        self.clear();
        self.live.store(live, Ordering::Release);
        // A fill racing with this switch carries the old generation and is dropped.
        self.clear();
    }

    /// Read before a database read whose result may be remembered.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// (hits, misses) of decisions asked from memory.
    pub fn counts(&self) -> (u64, u64) {
        (
            self.hits.load(Ordering::Relaxed),
            self.misses.load(Ordering::Relaxed),
        )
    }

    fn miss<T>(&self) -> Option<T> {
        self.misses.fetch_add(1, Ordering::Relaxed);
        None
    }

    /// The decision for a key and password from memory: `Some` only when the key, its owner
    /// and the window are known and the rule says yes now. Everything else (unknown key,
    /// another password, not valid now) is `None`, and the caller reads the database.
    pub fn key(&self, key_id: &str, password: &Secret, now: DateTime<Utc>) -> Option<Hit> {
        if !self.is_live() {
            return None;
        }
        let digest = self.digest(password);
        let Ok(state) = self.state.read() else {
            return None;
        };
        let Some(k) = state.keys.get(key_id).filter(|k| k.decides) else {
            return self.miss();
        };
        if !bool::from(k.digest.ct_eq(&digest)) {
            return self.miss();
        }
        let (Some(user), Some(days)) = (state.users.get(&k.user_id), state.validity_days) else {
            return self.miss();
        };
        if !key_may_act(user, k.expires_at, days, now) {
            return self.miss();
        }
        let now_ms = now.timestamp_millis();
        let noted = k.use_noted_at.load(Ordering::Relaxed);
        let use_due = now_ms.saturating_sub(noted) >= self.use_note_interval_ms
            && k.use_noted_at
                .compare_exchange(noted, now_ms, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok();
        self.hits.fetch_add(1, Ordering::Relaxed);
        Some(Hit {
            user: user.clone(),
            key: Some((k.row_id.clone(), k.key_id.clone())),
            use_due,
        })
    }

    /// The decision for a session from memory (see [`AuthCache::key`]).
    pub fn session(&self, digest: &[u8; 32], now: DateTime<Utc>) -> Option<Hit> {
        if !self.is_live() {
            return None;
        }
        let Ok(state) = self.state.read() else {
            return None;
        };
        let Some(s) = state.sessions.get(digest) else {
            return self.miss();
        };
        let (Some(user), Some(days)) = (state.users.get(&s.user_id), state.validity_days) else {
            return self.miss();
        };
        if Timestamp::from(now) >= s.expires_at || !user.is_active() {
            return self.miss();
        }
        if let Some((_, _, expires_at)) = &s.key {
            if !key_may_act(user, *expires_at, days, now) {
                return self.miss();
            }
        }
        self.hits.fetch_add(1, Ordering::Relaxed);
        Some(Hit {
            user: user.clone(),
            key: s
                .key
                .as_ref()
                .map(|(row, kid, _)| (row.clone(), kid.clone())),
            use_due: s.key.is_some(),
        })
    }

    /// Whether `password` is the one that last passed argon2 for this key, with the stored
    /// hash just read from the database: spares argon2, decides nothing else.
    pub fn password_known(&self, key_id: &str, stored_hash: &str, password: &Secret) -> bool {
        if !self.enabled {
            return false;
        }
        let digest = self.digest(password);
        let Ok(state) = self.state.read() else {
            return false;
        };
        state
            .keys
            .get(key_id)
            .is_some_and(|k| k.stored_hash == stored_hash && bool::from(k.digest.ct_eq(&digest)))
    }

    /// Remembers a key that passed argon2 and the rule, with what was read at `generation`.
    /// Dropped if anything was invalidated since; kept only for argon2's sake while the cache
    /// is not live.
    /// `now`: the read's time, when this use was also handed on for `lastUsed`.
    pub fn remember_key(
        &self,
        generation: u64,
        key: &AccessKeyRow,
        user: &UserRow,
        days: i64,
        password: &Secret,
        use_written_at: DateTime<Utc>,
    ) {
        if !self.enabled {
            return;
        }
        let digest = self.digest(password);
        let Ok(mut state) = self.state.write() else {
            return;
        };
        let decides = self.is_live() && self.generation() == generation;
        let user_id: Arc<str> = Arc::from(user.id.as_str());
        if decides {
            remember_user(&mut state, self.max_entries, &user_id, user, days);
        }
        if !state.keys.contains_key(&key.key_id) {
            make_room(&mut state.keys, self.max_entries);
        }
        state.keys.insert(
            key.key_id.clone(),
            KnownKey {
                row_id: Arc::from(key.id.as_str()),
                key_id: Arc::from(key.key_id.as_str()),
                user_id,
                stored_hash: key.password_hash.clone(),
                digest,
                expires_at: key.expires_at,
                decides,
                use_noted_at: AtomicI64::new(use_written_at.timestamp_millis()),
            },
        );
    }

    /// Remembers a live session read at `generation` (with its key, for a key session).
    pub fn remember_session(
        &self,
        generation: u64,
        digest: [u8; 32],
        session: &SessionRow,
        user: &UserRow,
        key: Option<&AccessKeyRow>,
        days: i64,
    ) {
        if !self.is_live() {
            return;
        }
        let Ok(mut state) = self.state.write() else {
            return;
        };
        if self.generation() != generation {
            return;
        }
        let user_id: Arc<str> = Arc::from(user.id.as_str());
        remember_user(&mut state, self.max_entries, &user_id, user, days);
        if !state.sessions.contains_key(&digest) {
            make_room(&mut state.sessions, self.max_entries);
        }
        state.sessions.insert(
            digest,
            KnownSession {
                user_id,
                key: key.map(|k| {
                    (
                        Arc::from(k.id.as_str()),
                        Arc::from(k.key_id.as_str()),
                        k.expires_at,
                    )
                }),
                expires_at: session.expires_at,
            },
        );
    }

    /// Forgets what `what` may have changed. Also bumps the generation, so fills that read
    /// the database before the change was committed are not remembered.
    pub fn forget(&self, what: &Revoked) {
        let Ok(mut state) = self.state.write() else {
            return;
        };
        self.generation.fetch_add(1, Ordering::AcqRel);
        match what {
            // A user's keys and sessions are decided with the user's entry: without it they
            // miss, read the database, and find the truth.
            // The service accounts a user managed are suspended with the user's removal.
            Revoked::User(id) => {
                state
                    .users
                    .retain(|k, u| **k != *id.as_str() && u.manager_id.as_ref() != Some(id));
            }
            Revoked::Key(row_id) => {
                state.keys.retain(|_, k| *k.row_id != *row_id.as_str());
                state.sessions.retain(|_, s| {
                    s.key
                        .as_ref()
                        .is_none_or(|(r, _, _)| **r != *row_id.as_str())
                });
            }
            Revoked::Session(hex_hash) => {
                if let Some(d) = decode_hex32(hex_hash) {
                    state.sessions.remove(&d);
                }
            }
            Revoked::All => *state = State::default(),
        }
    }

    pub fn clear(&self) {
        self.forget(&Revoked::All);
    }

    /// What the background re-check should compare with the database.
    pub fn snapshot(&self) -> Option<Snapshot> {
        let state = self.state.read().ok()?;
        Some(Snapshot {
            generation: self.generation(),
            key_ids: state.keys.keys().cloned().collect(),
            session_hashes: state.sessions.keys().copied().collect(),
            user_ids: state.users.keys().map(|u| UserId::from(&**u)).collect(),
        })
    }

    /// Drops every remembered entry the database no longer agrees with. Removal is always
    /// safe, so this needs no generation check; entries added since the snapshot are left
    /// for the next round.
    pub fn apply_recheck(&self, snapshot: &Snapshot, fresh: &Fresh) -> usize {
        let Ok(mut state) = self.state.write() else {
            return 0;
        };
        if state
            .validity_days
            .is_some_and(|d| d != fresh.validity_days)
        {
            let n = state.keys.len() + state.sessions.len() + state.users.len();
            *state = State::default();
            self.generation.fetch_add(1, Ordering::AcqRel);
            return n;
        }
        let mut dropped = 0;
        let keys: HashMap<&str, &AccessKeyRow> =
            fresh.keys.iter().map(|k| (k.key_id.as_str(), k)).collect();
        for key_id in &snapshot.key_ids {
            let agrees = match (state.keys.get(key_id), keys.get(key_id.as_str())) {
                (Some(k), Some(row)) => {
                    *k.row_id == *row.id.as_str()
                        && *k.user_id == *row.user_id.as_str()
                        && k.stored_hash == row.password_hash
                        && k.expires_at == row.expires_at
                }
                (None, _) => true,
                (Some(_), None) => false,
            };
            if !agrees {
                state.keys.remove(key_id);
                dropped += 1;
            }
        }
        let sessions: HashMap<[u8; 32], &SessionRow> = fresh
            .sessions
            .iter()
            .filter_map(|s| decode_hex32(&s.token_hash).map(|d| (d, s)))
            .collect();
        for digest in &snapshot.session_hashes {
            let agrees = match (state.sessions.get(digest), sessions.get(digest)) {
                (Some(s), Some(row)) => {
                    *s.user_id == *row.user_id.as_str()
                        && s.expires_at == row.expires_at
                        && s.key.as_ref().map(|(r, _, _)| &**r)
                            == row.access_key_id.as_ref().map(KeyRowId::as_str)
                }
                (None, _) => true,
                (Some(_), None) => false,
            };
            if !agrees {
                state.sessions.remove(digest);
                dropped += 1;
            }
        }
        let users: HashMap<&str, &UserRow> =
            fresh.users.iter().map(|u| (u.id.as_str(), u)).collect();
        for id in &snapshot.user_ids {
            let agrees = match (state.users.get(id.as_str()), users.get(id.as_str())) {
                (Some(u), Some(row)) => u.as_ref() == *row,
                (None, _) => true,
                (Some(_), None) => false,
            };
            if !agrees {
                state.users.remove(id.as_str());
                dropped += 1;
            }
        }
        if dropped > 0 {
            self.generation.fetch_add(1, Ordering::AcqRel);
        }
        dropped
    }

    /// Entries remembered now: (keys, sessions, users).
    pub fn sizes(&self) -> (usize, usize, usize) {
        self.state
            .read()
            .map(|s| (s.keys.len(), s.sessions.len(), s.users.len()))
            .unwrap_or_default()
    }
}

/// The rule for a key of `user` with the key's expiry, the system window `days`, at `now`.
fn key_may_act(
    user: &UserRow,
    expires_at: Option<Timestamp>,
    days: i64,
    now: DateTime<Utc>,
) -> bool {
    if !user.is_active() {
        return false;
    }
    let holder = if user.is_service_account {
        validity::Holder::ServiceAccount {
            key_expires_at: expires_at.map(Timestamp::at),
        }
    } else {
        validity::Holder::Person {
            last_login: user.interactive_login_for_keys(),
        }
    };
    let window = validity::window(user.access_key_validity_minutes, days);
    validity::check_key(holder, window, now).is_ok()
}

fn remember_user(state: &mut State, max: usize, id: &Arc<str>, user: &UserRow, days: i64) {
    state.validity_days = Some(days);
    if !state.users.contains_key(id) {
        make_room(&mut state.users, max);
    }
    state.users.insert(id.clone(), Arc::new(user.clone()));
}

/// Keeps a map under its cap by dropping one entry: whatever it was is read again on its
/// next use.
fn make_room<K: Clone + Eq + std::hash::Hash, V>(map: &mut HashMap<K, V>, max: usize) {
    if map.len() >= max {
        if let Some(k) = map.keys().next().cloned() {
            map.remove(&k);
        }
    }
}

fn decode_hex32(text: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(text, &mut out).ok()?;
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    fn cache() -> AuthCache {
        let c = AuthCache::new(&CredentialCacheConfig::default(), 60);
        c.set_live(true);
        c
    }

    fn key(id: &str, user: &str) -> AccessKeyRow {
        AccessKeyRow {
            id: KeyRowId::from(format!("row-{id}")),
            key_id: id.into(),
            user_id: user.into(),
            name: "k".into(),
            description: None,
            password_hash: "$argon2id$h1".into(),
            created_at: Timestamp::default(),
            last_used_at: None,
            expires_at: None,
        }
    }

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap()
    }

    fn person(id: &str) -> UserRow {
        let mut u = UserRow::fixture(id);
        u.last_login_at = Some(Timestamp::from(now() - Duration::days(1)));
        u
    }

    #[test]
    fn a_verified_key_is_decided_from_memory_by_the_rule() {
        let c = cache();
        let pw = Secret::new("akp_right");
        c.remember_key(
            c.generation(),
            &key("akd_1", "u1"),
            &person("u1"),
            14,
            &pw,
            now(),
        );
        let hit = c.key("akd_1", &pw, now()).expect("known");
        assert_eq!(hit.user.id, "u1");
        assert!(c.key("akd_1", &Secret::new("akp_wrong"), now()).is_none());
        assert!(c.key("akd_2", &pw, now()).is_none());
        // Past the window the rule says no, and memory does not answer.
        assert!(c.key("akd_1", &pw, now() + Duration::days(14)).is_none());
    }

    #[test]
    fn invalidations_reach_keys_users_and_sessions() {
        let c = cache();
        let pw = Secret::new("akp_right");
        let u = person("u1");
        c.remember_key(c.generation(), &key("akd_1", "u1"), &u, 14, &pw, now());
        c.forget(&Revoked::User("u1".into()));
        assert!(c.key("akd_1", &pw, now()).is_none(), "user forgotten");

        c.remember_key(c.generation(), &key("akd_1", "u1"), &u, 14, &pw, now());
        let token_hash = hex::encode(token_digest("aks_t"));
        let s = SessionRow {
            token_hash: token_hash.clone(),
            user_id: "u1".into(),
            access_key_id: Some("row-akd_1".into()),
            created_at: Timestamp::default(),
            expires_at: Timestamp::from(now() + Duration::hours(1)),
        };
        let k = key("akd_1", "u1");
        c.remember_session(c.generation(), token_digest("aks_t"), &s, &u, Some(&k), 14);
        assert!(c.session(&token_digest("aks_t"), now()).is_some());
        assert!(
            c.session(&token_digest("aks_t"), now() + Duration::hours(1))
                .is_none(),
            "expired"
        );
        c.forget(&Revoked::Key("row-akd_1".into()));
        assert!(c.key("akd_1", &pw, now()).is_none(), "key forgotten");
        assert!(
            c.session(&token_digest("aks_t"), now()).is_none(),
            "its session too"
        );

        let plain = SessionRow {
            access_key_id: None,
            ..s
        };
        c.remember_session(c.generation(), token_digest("aks_t"), &plain, &u, None, 14);
        assert!(c.session(&token_digest("aks_t"), now()).is_some());
        c.forget(&Revoked::Session(token_hash));
        assert!(c.session(&token_digest("aks_t"), now()).is_none(), "logout");
    }

    #[test]
    fn a_fill_that_raced_with_an_invalidation_is_dropped() {
        let c = cache();
        let pw = Secret::new("akp_right");
        let read_at = c.generation();
        c.forget(&Revoked::User("u1".into()));
        c.remember_key(read_at, &key("akd_1", "u1"), &person("u1"), 14, &pw, now());
        assert!(c.key("akd_1", &pw, now()).is_none());
        // The password itself is still known against the same stored hash (argon2 spared).
        assert!(c.password_known("akd_1", "$argon2id$h1", &pw));
        assert!(!c.password_known("akd_1", "$argon2id$h2", &pw));
    }

    #[test]
    fn nothing_is_decided_while_other_processes_cannot_be_heard() {
        let c = cache();
        let pw = Secret::new("akp_right");
        c.remember_key(
            c.generation(),
            &key("akd_1", "u1"),
            &person("u1"),
            14,
            &pw,
            now(),
        );
        c.set_live(false);
        assert!(c.key("akd_1", &pw, now()).is_none());
        c.remember_key(
            c.generation(),
            &key("akd_1", "u1"),
            &person("u1"),
            14,
            &pw,
            now(),
        );
        c.set_live(true);
        assert!(c.key("akd_1", &pw, now()).is_none(), "starts over");
    }

    #[test]
    fn disabled_suspended_and_service_account_owners() {
        let c = cache();
        let pw = Secret::new("akp_right");
        let mut u = person("u1");
        u.suspended_at = Some(Timestamp::from_millis(1));
        c.remember_key(c.generation(), &key("akd_1", "u1"), &u, 14, &pw, now());
        assert!(c.key("akd_1", &pw, now()).is_none());

        let mut sa = UserRow::fixture("sa");
        sa.is_service_account = true;
        let mut k = key("akd_2", "sa");
        k.expires_at = Some(Timestamp::from(now() + Duration::hours(1)));
        c.remember_key(c.generation(), &k, &sa, 14, &pw, now());
        assert!(c.key("akd_2", &pw, now()).is_some());
        assert!(c.key("akd_2", &pw, now() + Duration::hours(2)).is_none());
    }

    #[test]
    fn the_recheck_drops_what_the_database_no_longer_says() {
        let c = cache();
        let pw = Secret::new("akp_right");
        let u = person("u1");
        c.remember_key(c.generation(), &key("akd_1", "u1"), &u, 14, &pw, now());
        c.remember_key(c.generation(), &key("akd_2", "u1"), &u, 14, &pw, now());
        let snap = c.snapshot().unwrap();
        let mut changed = key("akd_2", "u1");
        changed.password_hash = "$argon2id$h2".into();
        let fresh = Fresh {
            keys: vec![key("akd_1", "u1"), changed],
            sessions: vec![],
            users: vec![u.clone()],
            validity_days: 14,
        };
        assert_eq!(c.apply_recheck(&snap, &fresh), 1);
        assert!(c.key("akd_1", &pw, now()).is_some());
        assert!(c.key("akd_2", &pw, now()).is_none());
        let mut admin = u.clone();
        admin.is_admin = true;
        let fresh = Fresh {
            keys: vec![key("akd_1", "u1")],
            users: vec![admin],
            validity_days: 14,
            ..Fresh::default()
        };
        assert_eq!(c.apply_recheck(&c.snapshot().unwrap(), &fresh), 1);
        assert!(c.key("akd_1", &pw, now()).is_none(), "owner changed");
    }

    #[test]
    fn caps_hold() {
        let c = AuthCache::new(
            &CredentialCacheConfig {
                max_entries: 10,
                ..CredentialCacheConfig::default()
            },
            60,
        );
        c.set_live(true);
        let pw = Secret::new("akp_right");
        for i in 0..100 {
            let u = person(&format!("u{i}"));
            c.remember_key(
                c.generation(),
                &key(&format!("akd_{i}"), u.id.as_str()),
                &u,
                14,
                &pw,
                now(),
            );
        }
        let (k, s, u) = c.sizes();
        assert!(k <= 10 && s == 0 && u <= 10, "{k} {s} {u}");
    }

    #[test]
    fn announcements_round_trip() {
        for r in [
            Revoked::Key("a".into()),
            Revoked::User("b:c".into()),
            Revoked::Session("ff".into()),
            Revoked::All,
        ] {
            assert_eq!(Revoked::decode(&r.encode()), r);
        }
        assert_eq!(Revoked::decode("garbage"), Revoked::All);
    }
}
