//! When each key's `lastUsed` was last written, remembered between requests, so key traffic
//! does not turn into a database write per request; with it, the client address and user
//! agent of that use (the key's last distinct addresses).

use crate::ids::KeyRowId;
use crate::store::models::KeyUseRow;
use crate::store::schema::{access_keys, key_uses};
use crate::store::timestamp::Timestamp;
use crate::store::{DbConn, Store};
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

/// Keys whose last write time is remembered at most; the memory starts over when full.
const LAST_USED_CAPACITY: usize = 100_000;

/// Distinct client addresses kept per key.
pub const RECENT_ADDRESSES: usize = 5;

/// Longest user agent kept, in characters.
const MAX_USER_AGENT_CHARS: usize = 200;

/// "At most once per interval per key": a bounded memory of when each key last did
/// something (a write, an audit event).
pub struct OncePer {
    interval_ms: i64,
    last: Mutex<HashMap<String, Timestamp>>,
}

impl OncePer {
    pub fn new(interval_seconds: u64) -> OncePer {
        OncePer {
            interval_ms: i64::try_from(interval_seconds.saturating_mul(1000)).unwrap_or(i64::MAX),
            last: Mutex::new(HashMap::new()),
        }
    }

    /// The last time within the interval before `now`, if any.
    fn within(&self, key: &str, now: Timestamp) -> Option<Timestamp> {
        self.last
            .lock()
            .ok()
            .and_then(|w| w.get(key).copied())
            .filter(|last| now.millis() - last.millis() < self.interval_ms)
    }

    /// Is it `key`'s turn at `now`? If so, `now` is noted as its last time.
    pub fn due(&self, key: &str, now: DateTime<Utc>) -> bool {
        let stamp = Timestamp::from(now);
        let Ok(mut last) = self.last.lock() else {
            return false;
        };
        if last
            .get(key)
            .is_some_and(|l| stamp.millis() - l.millis() < self.interval_ms)
        {
            return false;
        }
        if last.len() >= LAST_USED_CAPACITY {
            last.clear();
        }
        last.insert(key.to_string(), stamp);
        true
    }
}

/// Where a use came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub addr: IpAddr,
    pub user_agent: Option<String>,
}

impl Seen {
    /// The client as a request shows it; the user agent cut to a readable length, without
    /// control characters.
    pub fn new(addr: Option<IpAddr>, user_agent: Option<&str>) -> Option<Seen> {
        let addr = addr?;
        let user_agent = user_agent
            .map(|ua| {
                crate::text::visible(&ua.chars().take(MAX_USER_AGENT_CHARS).collect::<String>())
            })
            .filter(|ua| !ua.is_empty());
        Some(Seen { addr, user_agent })
    }
}

/// Writes `lastUsed` at most once per interval per key, in the background, so key traffic
/// neither waits for nor turns into a database write per request.
pub struct LastUsed {
    written: OncePer,
}

impl LastUsed {
    pub fn new(interval_seconds: u64) -> LastUsed {
        LastUsed {
            written: OncePer::new(interval_seconds),
        }
    }

    /// When this key's use counts as written: its last write if that is within the
    /// interval, else `now` (a use now will write). The credential cache starts from it, so
    /// a key remembered again soon after a write is not written again a full interval late.
    pub fn counted_as_written(&self, key_row_id: &str, now: DateTime<Utc>) -> DateTime<Utc> {
        self.written
            .within(key_row_id, Timestamp::from(now))
            .map_or(now, Timestamp::at)
    }

    /// Notes a use of the key with this row id (`KeyRowId::as_str`: the text the credential
    /// cache shares, so a request decided from memory copies nothing to get here), and
    /// where it came from. A use between two writes is not written: the addresses kept are
    /// those of the uses that were.
    pub fn touch(&self, store: &Store, key_row_id: &str, now: DateTime<Utc>, seen: Option<Seen>) {
        if !self.written.due(key_row_id, now) {
            return;
        }
        let stamp = Timestamp::from(now);
        let store = store.clone();
        let id = KeyRowId::from(key_row_id);
        tokio::spawn(async move {
            let result = store
                .write(move |conn| {
                    diesel::update(access_keys::table.find(&id))
                        .set(access_keys::last_used_at.eq(Some(stamp)))
                        .execute(conn)?;
                    if let Some(seen) = seen {
                        note_address(conn, &id, seen, stamp)?;
                    }
                    Ok(())
                })
                .await;
            if let Err(e) = result {
                tracing::warn!(error = %e, "could not record an access key's last use");
            }
        });
    }
}

/// Records a use from `seen` among the key's last distinct addresses, keeping the newest
/// [`RECENT_ADDRESSES`]. A key deleted meanwhile takes its uses with it (the foreign key
/// refuses the insert, which is then skipped).
fn note_address(
    conn: &mut DbConn,
    key: &KeyRowId,
    seen: Seen,
    at: Timestamp,
) -> crate::error::Result<()> {
    let exists: i64 = access_keys::table.find(key).count().get_result(conn)?;
    if exists == 0 {
        return Ok(());
    }
    let address = seen.addr.to_string();
    diesel::delete(
        key_uses::table
            .filter(key_uses::key_row_id.eq(key))
            .filter(key_uses::address.eq(&address)),
    )
    .execute(conn)?;
    diesel::insert_into(key_uses::table)
        .values(KeyUseRow {
            key_row_id: key.clone(),
            address,
            user_agent: seen.user_agent,
            at,
        })
        .execute(conn)?;
    let older: Vec<String> = key_uses::table
        .filter(key_uses::key_row_id.eq(key))
        .order((key_uses::at.desc(), key_uses::address.asc()))
        .offset(RECENT_ADDRESSES as i64)
        .select(key_uses::address)
        .load(conn)?;
    if !older.is_empty() {
        diesel::delete(
            key_uses::table
                .filter(key_uses::key_row_id.eq(key))
                .filter(key_uses::address.eq_any(older)),
        )
        .execute(conn)?;
    }
    Ok(())
}

/// The last distinct addresses of each of `keys`, newest first.
pub fn recent_uses(
    conn: &mut DbConn,
    keys: &[KeyRowId],
) -> crate::error::Result<HashMap<KeyRowId, Vec<KeyUseRow>>> {
    let mut out: HashMap<KeyRowId, Vec<KeyUseRow>> = HashMap::new();
    for chunk in keys.chunks(500) {
        let rows: Vec<KeyUseRow> = key_uses::table
            .filter(key_uses::key_row_id.eq_any(chunk))
            .order((key_uses::at.desc(), key_uses::address.asc()))
            .select(KeyUseRow::as_select())
            .load(conn)?;
        for row in rows {
            out.entry(row.key_row_id.clone()).or_default().push(row);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_use_counts_as_written_at_the_last_write_within_the_interval() {
        let last_used = LastUsed::new(60);
        let t0 = DateTime::from_timestamp(1_800_000_000, 0).expect("a time");
        last_used
            .written
            .last
            .lock()
            .expect("lock")
            .insert("row-1".into(), Timestamp::from(t0));
        let soon = t0 + chrono::Duration::seconds(30);
        let later = t0 + chrono::Duration::seconds(61);
        assert_eq!(last_used.counted_as_written("row-1", soon), t0);
        assert_eq!(last_used.counted_as_written("row-1", later), later);
        assert_eq!(last_used.counted_as_written("row-2", soon), soon);
    }

    #[test]
    fn once_per_interval_per_key() {
        let once = OncePer::new(60);
        let t0 = DateTime::from_timestamp(1_800_000_000, 0).expect("a time");
        assert!(once.due("k", t0));
        assert!(!once.due("k", t0 + chrono::Duration::seconds(59)));
        assert!(once.due("other", t0));
        assert!(once.due("k", t0 + chrono::Duration::seconds(60)));
    }

    #[test]
    fn a_client_is_seen_with_a_readable_user_agent() {
        let addr: IpAddr = "10.0.0.7".parse().expect("an address");
        assert_eq!(Seen::new(None, Some("curl/8")), None);
        let seen = Seen::new(Some(addr), Some("Excel\u{0}\n 16.0")).expect("seen");
        assert_eq!(seen.user_agent.as_deref(), Some("Excel 16.0"));
        let long = "x".repeat(1000);
        let seen = Seen::new(Some(addr), Some(&long)).expect("seen");
        assert_eq!(seen.user_agent.map(|u| u.len()), Some(MAX_USER_AGENT_CHARS));
        assert_eq!(
            Seen::new(Some(addr), Some(" ")).and_then(|s| s.user_agent),
            None
        );
    }

    #[test]
    fn a_key_keeps_its_newest_distinct_addresses() {
        use crate::store::{run_migrations, Backend};
        let mut conn: DbConn = Backend::Sqlite(":memory:".into())
            .connect()
            .expect("open SQLite");
        run_migrations(&mut conn).expect("migrate");
        diesel::sql_query(
            "INSERT INTO users (id, directory_id, external_id, username, is_admin, is_enabled, \
             created_at, is_service_account) VALUES ('u', 'd', 'u', 'u', false, true, 0, false)",
        )
        .execute(&mut conn)
        .expect("a user");
        diesel::sql_query(
            "INSERT INTO access_keys (id, key_id, user_id, name, password_hash, created_at) \
             VALUES ('k', 'akd_k', 'u', 'k', 'h', 0)",
        )
        .execute(&mut conn)
        .expect("a key");
        let key = KeyRowId::from("k");
        for (i, a) in [
            "10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.1", "10.0.0.4", "10.0.0.5", "10.0.0.6",
        ]
        .iter()
        .enumerate()
        {
            let seen = Seen::new(a.parse().ok(), Some("job")).expect("seen");
            note_address(&mut conn, &key, seen, Timestamp::from_millis(i as i64)).expect("noted");
        }
        let uses = recent_uses(&mut conn, std::slice::from_ref(&key)).expect("read");
        let addresses: Vec<&str> = uses[&key].iter().map(|u| u.address.as_str()).collect();
        assert_eq!(
            addresses,
            ["10.0.0.6", "10.0.0.5", "10.0.0.4", "10.0.0.1", "10.0.0.3"],
            "newest first, one row per address, five at most"
        );
        let gone = KeyRowId::from("deleted");
        note_address(
            &mut conn,
            &gone,
            Seen::new(addresses_first(), None).expect("seen"),
            Timestamp::from_millis(9),
        )
        .expect("a deleted key's use is skipped");
    }

    fn addresses_first() -> Option<IpAddr> {
        "10.0.0.1".parse().ok()
    }
}
