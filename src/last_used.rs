//! When each key's `lastUsed` was last written, remembered between requests, so key traffic
//! does not turn into a database write per request.

use crate::store::schema::access_keys;
use crate::store::timestamp::Timestamp;
use crate::store::Store;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use std::collections::HashMap;
use std::sync::Mutex;

/// Keys whose last write time is remembered at most; the memory starts over when full.
const LAST_USED_CAPACITY: usize = 100_000;

/// Writes `lastUsed` at most once per interval per key, in the background, so key traffic
/// neither waits for nor turns into a database write per request.
pub struct LastUsed {
    interval_ms: i64,
    written: Mutex<HashMap<String, Timestamp>>,
}

impl LastUsed {
    pub fn new(interval_seconds: u64) -> LastUsed {
        LastUsed {
            interval_ms: i64::try_from(interval_seconds.saturating_mul(1000)).unwrap_or(i64::MAX),
            written: Mutex::new(HashMap::new()),
        }
    }

    /// When this key's use counts as written: its last write if that is within the
    /// interval, else `now` (a use now will write). The credential cache starts from it, so
    /// a key remembered again soon after a write is not written again a full interval late.
    pub fn counted_as_written(&self, key_row_id: &str, now: DateTime<Utc>) -> DateTime<Utc> {
        let stamp = Timestamp::from(now);
        let last = self
            .written
            .lock()
            .ok()
            .and_then(|w| w.get(key_row_id).copied())
            .filter(|last| stamp.millis() - last.millis() < self.interval_ms);
        last.map_or(now, Timestamp::at)
    }

    /// Notes a use of the key with this row id (`KeyRowId::as_str`: the text the credential
    /// cache shares, so a request decided from memory copies nothing to get here).
    pub fn touch(&self, store: &Store, key_row_id: &str, now: DateTime<Utc>) {
        let stamp = Timestamp::from(now);
        {
            let Ok(mut written) = self.written.lock() else {
                return;
            };
            if written
                .get(key_row_id)
                .is_some_and(|last| stamp.millis() - last.millis() < self.interval_ms)
            {
                return;
            }
            if written.len() >= LAST_USED_CAPACITY {
                written.clear();
            }
            written.insert(key_row_id.to_string(), stamp);
        }
        let store = store.clone();
        let id = key_row_id.to_string();
        tokio::spawn(async move {
            let result = store
                .write(move |conn| {
                    diesel::update(access_keys::table.find(id))
                        .set(access_keys::last_used_at.eq(Some(stamp)))
                        .execute(conn)?;
                    Ok(())
                })
                .await;
            if let Err(e) = result {
                tracing::warn!(error = %e, "could not record an access key's last use");
            }
        });
    }
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
            .lock()
            .expect("lock")
            .insert("row-1".into(), Timestamp::from(t0));
        let soon = t0 + chrono::Duration::seconds(30);
        let later = t0 + chrono::Duration::seconds(61);
        assert_eq!(last_used.counted_as_written("row-1", soon), t0);
        assert_eq!(last_used.counted_as_written("row-1", later), later);
        assert_eq!(last_used.counted_as_written("row-2", soon), soon);
    }
}
