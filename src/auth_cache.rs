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
use crate::store::key_columns::{KeyScope, Networks};
use crate::store::models::{AccessKeyRow, SessionRow, UserRow};
use crate::store::timestamp::Timestamp;
use crate::validity::{self, KeyRules};
use chrono::{DateTime, Utc};
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::net::IpAddr;
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

/// What the rule needs of a key beside its owner, copied from its row at a fill.
#[derive(Clone)]
struct KeyTerms {
    row_id: Arc<str>,
    /// The map's key again, shared: a hit hands it out without allocating.
    key_id: Arc<str>,
    expires_at: Option<Timestamp>,
    scope: KeyScope,
    networks: Option<Networks>,
    /// Its last use as stored (its creation if never), where idle time counts from.
    last_active: Timestamp,
}

impl KeyTerms {
    fn of(key: &AccessKeyRow) -> KeyTerms {
        KeyTerms {
            row_id: Arc::from(key.id.as_str()),
            key_id: Arc::from(key.key_id.as_str()),
            expires_at: key.expires_at,
            scope: key.scope,
            networks: key.allowed_networks.clone(),
            last_active: key.last_used_at.unwrap_or(key.created_at),
        }
    }

    /// Do these terms still say what `row` says?
    fn agree_with(&self, row: &AccessKeyRow) -> bool {
        *self.row_id == *row.id.as_str()
            && self.expires_at == row.expires_at
            && self.scope == row.scope
            && self.networks == row.allowed_networks
    }
}

/// A password of a key that passed argon2 against `stored_hash`.
struct KnownPassword {
    stored_hash: String,
    digest: [u8; 32],
    /// A rotation's old password stops at the overlap's end; None for the current one.
    until: Option<Timestamp>,
}

/// A key whose password passed argon2.
struct KnownKey {
    terms: KeyTerms,
    user_id: Arc<str>,
    /// The key's current password hash at the fill: a rotation changes it.
    current_hash: String,
    /// The passwords that passed: the current one and, while a rotation's overlap lasts,
    /// the old one (at most two).
    passwords: Vec<KnownPassword>,
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
    /// The key a key session was opened with.
    key: Option<KeyTerms>,
    expires_at: Timestamp,
}

#[derive(Default)]
struct State {
    keys: HashMap<String, KnownKey>,
    sessions: HashMap<[u8; 32], KnownSession>,
    users: HashMap<Arc<str>, Arc<UserRow>>,
    rules: Option<KeyRules>,
}

/// A decision taken from memory.
pub struct Hit {
    pub user: Arc<UserRow>,
    /// (row id, key id) of the key behind the caller, if any.
    pub key: Option<(Arc<str>, Arc<str>)>,
    /// What the caller may do: a key's scope; `Full` for an interactive session.
    pub scope: KeyScope,
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
    pub rules: KeyRules,
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
    /// `addr`: the client's address, for a key restricted to networks.
    pub fn key(
        &self,
        key_id: &str,
        password: &Secret,
        addr: Option<IpAddr>,
        now: DateTime<Utc>,
    ) -> Option<Hit> {
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
        let stamp = Timestamp::from(now);
        let known = k.passwords.iter().fold(false, |found, p| {
            // Every entry compared, in constant time, whichever matches.
            let same = bool::from(p.digest.ct_eq(&digest)) && p.until.is_none_or(|u| stamp < u);
            found | same
        });
        if !known {
            return self.miss();
        }
        let (Some(user), Some(rules)) = (state.users.get(&k.user_id), state.rules) else {
            return self.miss();
        };
        let noted = k.use_noted_at.load(Ordering::Relaxed);
        if !key_may_act(user, &k.terms, noted, rules, addr, now) {
            return self.miss();
        }
        let now_ms = now.timestamp_millis();
        let use_due = now_ms.saturating_sub(noted) >= self.use_note_interval_ms
            && k.use_noted_at
                .compare_exchange(noted, now_ms, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok();
        self.hits.fetch_add(1, Ordering::Relaxed);
        Some(Hit {
            user: user.clone(),
            key: Some((k.terms.row_id.clone(), k.terms.key_id.clone())),
            scope: k.terms.scope,
            use_due,
        })
    }

    /// The decision for a session from memory (see [`AuthCache::key`]).
    pub fn session(
        &self,
        digest: &[u8; 32],
        addr: Option<IpAddr>,
        now: DateTime<Utc>,
    ) -> Option<Hit> {
        if !self.is_live() {
            return None;
        }
        let Ok(state) = self.state.read() else {
            return None;
        };
        let Some(s) = state.sessions.get(digest) else {
            return self.miss();
        };
        let (Some(user), Some(rules)) = (state.users.get(&s.user_id), state.rules) else {
            return self.miss();
        };
        if Timestamp::from(now) >= s.expires_at || !user.is_active() {
            return self.miss();
        }
        if let Some(terms) = &s.key {
            // A key session is a use of its key: it is not idle while the session works.
            if !key_may_act(user, terms, now.timestamp_millis(), rules, addr, now) {
                return self.miss();
            }
        }
        self.hits.fetch_add(1, Ordering::Relaxed);
        Some(Hit {
            user: user.clone(),
            key: s.key.as_ref().map(|t| (t.row_id.clone(), t.key_id.clone())),
            scope: s.key.as_ref().map_or(KeyScope::Full, |t| t.scope),
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
        state.keys.get(key_id).is_some_and(|k| {
            k.passwords
                .iter()
                .any(|p| p.stored_hash == stored_hash && bool::from(p.digest.ct_eq(&digest)))
        })
    }

    /// Remembers a key that passed argon2 and the rule, with what was read at `generation`.
    /// Dropped if anything was invalidated since; kept only for argon2's sake while the cache
    /// is not live.
    /// `verified_hash`: the stored hash the password passed (the key's current one, or a
    /// rotation's old one). `use_written_at`: when this key's use counts as written.
    #[allow(clippy::too_many_arguments)]
    pub fn remember_key(
        &self,
        generation: u64,
        key: &AccessKeyRow,
        user: &UserRow,
        rules: KeyRules,
        password: &Secret,
        verified_hash: &str,
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
            remember_user(&mut state, self.max_entries, &user_id, user, rules);
        }
        let until = if verified_hash == key.password_hash {
            None
        } else {
            key.previous_until
        };
        let password = KnownPassword {
            stored_hash: verified_hash.to_string(),
            digest,
            until,
        };
        // The other password of the same key, as the same row says, stays known: during a
        // rotation's overlap old and new jobs alternate without reaching argon2.
        let mut passwords: Vec<KnownPassword> = match state.keys.remove(&key.key_id) {
            Some(old) if old.current_hash == key.password_hash && old.terms.agree_with(key) => old
                .passwords
                .into_iter()
                .filter(|p| p.stored_hash != verified_hash)
                .collect(),
            _ => Vec::new(),
        };
        passwords.truncate(1);
        passwords.push(password);
        make_room(&mut state.keys, self.max_entries);
        state.keys.insert(
            key.key_id.clone(),
            KnownKey {
                terms: KeyTerms::of(key),
                user_id,
                current_hash: key.password_hash.clone(),
                passwords,
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
        rules: KeyRules,
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
        remember_user(&mut state, self.max_entries, &user_id, user, rules);
        if !state.sessions.contains_key(&digest) {
            make_room(&mut state.sessions, self.max_entries);
        }
        state.sessions.insert(
            digest,
            KnownSession {
                user_id,
                key: key.map(KeyTerms::of),
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
                state
                    .keys
                    .retain(|_, k| *k.terms.row_id != *row_id.as_str());
                state
                    .sessions
                    .retain(|_, s| s.key.as_ref().is_none_or(|t| *t.row_id != *row_id.as_str()));
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
        if state.rules.is_some_and(|r| r != fresh.rules) {
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
                    k.terms.agree_with(row)
                        && *k.user_id == *row.user_id.as_str()
                        && k.current_hash == row.password_hash
                        && k.passwords.iter().all(|p| {
                            p.stored_hash == row.password_hash
                                || (row.previous_password_hash.as_deref()
                                    == Some(p.stored_hash.as_str())
                                    && p.until == row.previous_until)
                        })
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
                        && s.key.as_ref().map(|t| &*t.row_id)
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

/// The rule for a key of `user` with `terms`, last noted in use at `noted_ms`, under `rules`,
/// used from `addr` at `now`: the validity rule, then the key's networks.
fn key_may_act(
    user: &UserRow,
    terms: &KeyTerms,
    noted_ms: i64,
    rules: KeyRules,
    addr: Option<IpAddr>,
    now: DateTime<Utc>,
) -> bool {
    if !user.is_active() {
        return false;
    }
    let last_active = terms.last_active.max(Timestamp::from_millis(noted_ms));
    let decided = validity::check_key(
        user.key_holder_with(terms.expires_at),
        rules.window(user.access_key_validity_minutes),
        rules.idle(last_active.at()),
        now,
    );
    decided.is_ok() && terms.networks.as_ref().is_none_or(|n| n.admits(addr))
}

fn remember_user(state: &mut State, max: usize, id: &Arc<str>, user: &UserRow, rules: KeyRules) {
    state.rules = Some(rules);
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

    const R14: KeyRules = KeyRules {
        validity_days: 14,
        max_idle_days: 0,
    };
    const H1: &str = "$argon2id$h1";

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
            ..AccessKeyRow::new_for_tests()
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
            R14,
            &pw,
            H1,
            now(),
        );
        let hit = c.key("akd_1", &pw, None, now()).expect("known");
        assert_eq!(hit.user.id, "u1");
        assert!(c
            .key("akd_1", &Secret::new("akp_wrong"), None, now())
            .is_none());
        assert!(c.key("akd_2", &pw, None, now()).is_none());
        // Past the window the rule says no, and memory does not answer.
        assert!(c
            .key("akd_1", &pw, None, now() + Duration::days(14))
            .is_none());
    }

    #[test]
    fn invalidations_reach_keys_users_and_sessions() {
        let c = cache();
        let pw = Secret::new("akp_right");
        let u = person("u1");
        c.remember_key(c.generation(), &key("akd_1", "u1"), &u, R14, &pw, H1, now());
        c.forget(&Revoked::User("u1".into()));
        assert!(c.key("akd_1", &pw, None, now()).is_none(), "user forgotten");

        c.remember_key(c.generation(), &key("akd_1", "u1"), &u, R14, &pw, H1, now());
        let token_hash = hex::encode(token_digest("aks_t"));
        let s = SessionRow {
            token_hash: token_hash.clone(),
            user_id: "u1".into(),
            access_key_id: Some("row-akd_1".into()),
            created_at: Timestamp::default(),
            expires_at: Timestamp::from(now() + Duration::hours(1)),
        };
        let k = key("akd_1", "u1");
        c.remember_session(c.generation(), token_digest("aks_t"), &s, &u, Some(&k), R14);
        assert!(c.session(&token_digest("aks_t"), None, now()).is_some());
        assert!(
            c.session(&token_digest("aks_t"), None, now() + Duration::hours(1))
                .is_none(),
            "expired"
        );
        c.forget(&Revoked::Key("row-akd_1".into()));
        assert!(c.key("akd_1", &pw, None, now()).is_none(), "key forgotten");
        assert!(
            c.session(&token_digest("aks_t"), None, now()).is_none(),
            "its session too"
        );

        let plain = SessionRow {
            access_key_id: None,
            ..s
        };
        c.remember_session(c.generation(), token_digest("aks_t"), &plain, &u, None, R14);
        assert!(c.session(&token_digest("aks_t"), None, now()).is_some());
        c.forget(&Revoked::Session(token_hash));
        assert!(
            c.session(&token_digest("aks_t"), None, now()).is_none(),
            "logout"
        );
    }

    #[test]
    fn a_fill_that_raced_with_an_invalidation_is_dropped() {
        let c = cache();
        let pw = Secret::new("akp_right");
        let read_at = c.generation();
        c.forget(&Revoked::User("u1".into()));
        c.remember_key(
            read_at,
            &key("akd_1", "u1"),
            &person("u1"),
            R14,
            &pw,
            H1,
            now(),
        );
        assert!(c.key("akd_1", &pw, None, now()).is_none());
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
            R14,
            &pw,
            H1,
            now(),
        );
        c.set_live(false);
        assert!(c.key("akd_1", &pw, None, now()).is_none());
        c.remember_key(
            c.generation(),
            &key("akd_1", "u1"),
            &person("u1"),
            R14,
            &pw,
            H1,
            now(),
        );
        c.set_live(true);
        assert!(c.key("akd_1", &pw, None, now()).is_none(), "starts over");
    }

    #[test]
    fn disabled_suspended_and_service_account_owners() {
        let c = cache();
        let pw = Secret::new("akp_right");
        let mut u = person("u1");
        u.suspended_at = Some(Timestamp::from_millis(1));
        c.remember_key(c.generation(), &key("akd_1", "u1"), &u, R14, &pw, H1, now());
        assert!(c.key("akd_1", &pw, None, now()).is_none());

        let mut sa = UserRow::fixture("sa");
        sa.is_service_account = true;
        let mut k = key("akd_2", "sa");
        k.expires_at = Some(Timestamp::from(now() + Duration::hours(1)));
        c.remember_key(c.generation(), &k, &sa, R14, &pw, H1, now());
        assert!(c.key("akd_2", &pw, None, now()).is_some());
        assert!(c
            .key("akd_2", &pw, None, now() + Duration::hours(2))
            .is_none());
    }

    #[test]
    fn the_recheck_drops_what_the_database_no_longer_says() {
        let c = cache();
        let pw = Secret::new("akp_right");
        let u = person("u1");
        c.remember_key(c.generation(), &key("akd_1", "u1"), &u, R14, &pw, H1, now());
        c.remember_key(c.generation(), &key("akd_2", "u1"), &u, R14, &pw, H1, now());
        let snap = c.snapshot().unwrap();
        let mut changed = key("akd_2", "u1");
        changed.password_hash = "$argon2id$h2".into();
        let fresh = Fresh {
            keys: vec![key("akd_1", "u1"), changed],
            sessions: vec![],
            users: vec![u.clone()],
            rules: R14,
        };
        assert_eq!(c.apply_recheck(&snap, &fresh), 1);
        assert!(c.key("akd_1", &pw, None, now()).is_some());
        assert!(c.key("akd_2", &pw, None, now()).is_none());
        let mut admin = u.clone();
        admin.is_admin = true;
        let fresh = Fresh {
            keys: vec![key("akd_1", "u1")],
            users: vec![admin],
            rules: R14,
            ..Fresh::default()
        };
        assert_eq!(c.apply_recheck(&c.snapshot().unwrap(), &fresh), 1);
        assert!(c.key("akd_1", &pw, None, now()).is_none(), "owner changed");
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
                R14,
                &pw,
                H1,
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
