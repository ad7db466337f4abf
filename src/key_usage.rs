//! Key uses per day (`key_use_days`): every replica adds what its key-request counters (`key_auth_ok`: Basic; `key_session_requests`)
//! grew by since its last flush to today's row, once a minute; the Admin Panel's overview
//! reads the last days back, zero days included.

use crate::error::Result;
use crate::metrics::Metrics;
use crate::services::Services;
use crate::store::schema::key_use_days;
use crate::store::DbConn;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::upsert::excluded;
use std::sync::atomic::Ordering;

/// Days kept: a little more than a year, so that a year-on-year look still works.
pub const KEEP_DAYS: i64 = 400;

/// Seconds in a UTC day.
const DAY_SECONDS: i64 = 86_400;

/// The day `t` falls on: whole days since the Unix epoch, UTC.
pub fn day_of(t: DateTime<Utc>) -> i64 {
    t.timestamp().div_euclid(DAY_SECONDS)
}

/// The first moment of `day` (as `day_of` counts).
pub fn start_of(day: i64) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(day.checked_mul(DAY_SECONDS)?, 0)
}

/// How much of a monotonic counter has been written: what the next flush adds is the
/// difference. A failed write leaves it where it was, so the next flush writes both.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Tally {
    flushed: u64,
}

impl Tally {
    /// Starts from the counter as it is now (uses before this replica counted, none).
    pub fn from(counter: u64) -> Tally {
        Tally { flushed: counter }
    }

    /// Uses not yet written when the counter reads `counter`.
    pub fn pending(&self, counter: u64) -> u64 {
        counter.saturating_sub(self.flushed)
    }

    /// The write of everything up to `counter` committed.
    pub fn written(&mut self, counter: u64) {
        self.flushed = self.flushed.max(counter);
    }
}

/// Adds `uses` to `day`'s row, creating it: one statement, `INSERT … ON CONFLICT DO UPDATE`
/// on both backends, so replicas adding at once cannot lose each other's counts.
pub fn add(conn: &mut DbConn, day: i64, uses: i64) -> Result<()> {
    let row = (key_use_days::day.eq(day), key_use_days::uses.eq(uses));
    let sum = key_use_days::uses.eq(key_use_days::uses + excluded(key_use_days::uses));
    match conn {
        DbConn::Pg(c) => diesel::insert_into(key_use_days::table)
            .values(row)
            .on_conflict(key_use_days::day)
            .do_update()
            .set(sum)
            .execute(c)?,
        DbConn::Sqlite(c) => diesel::insert_into(key_use_days::table)
            .values(row)
            .on_conflict(key_use_days::day)
            .do_update()
            .set(sum)
            .execute(c)?,
    };
    Ok(())
}

/// Deletes the days older than [`KEEP_DAYS`] before `now`'s day; how many.
pub fn prune(conn: &mut DbConn, now: DateTime<Utc>) -> Result<usize> {
    let oldest = day_of(now) - KEEP_DAYS;
    Ok(diesel::delete(key_use_days::table.filter(key_use_days::day.lt(oldest))).execute(conn)?)
}

/// The uses of each of the `days` days up to and including `last_day`, oldest first; a day
/// without a row counts 0.
pub fn last_days(conn: &mut DbConn, last_day: i64, days: i64) -> Result<Vec<(i64, i64)>> {
    let first = last_day - days + 1;
    let rows: Vec<(i64, i64)> = key_use_days::table
        .filter(key_use_days::day.ge(first))
        .filter(key_use_days::day.le(last_day))
        .select((key_use_days::day, key_use_days::uses))
        .load(conn)?;
    Ok(fill_days(&rows, first, days))
}

/// Every day from `first` for `days` days with its uses from `rows`, 0 where none.
pub fn fill_days(rows: &[(i64, i64)], first: i64, days: i64) -> Vec<(i64, i64)> {
    (first..first + days.max(0))
        .map(|d| {
            let uses = rows.iter().filter(|(day, _)| *day == d).map(|r| r.1).sum();
            (d, uses)
        })
        .collect()
}

/// Writes what the key-request counters grew by since `tally` to today's row. Nothing to
/// write writes nothing.
pub async fn flush(app: &Services, tally: &tokio::sync::Mutex<Tally>) -> Result<u64> {
    // Held across the write: the minute's flush and the one at shutdown never both add.
    let mut t = tally.lock().await;
    let counter = requests(&app.metrics);
    let pending = t.pending(counter);
    if pending == 0 {
        return Ok(0);
    }
    let day = day_of(app.clock.now());
    let uses = i64::try_from(pending).unwrap_or(i64::MAX);
    app.store.write(move |conn| add(conn, day, uses)).await?;
    t.written(counter);
    Ok(pending)
}

/// The counter as it reads now.
pub fn requests(metrics: &Metrics) -> u64 {
    // Two counters the request path keeps anyway, not a third: every shared atomic a
    // request touches bounces between the cores under load.
    metrics
        .key_auth_ok
        .load(Ordering::Relaxed)
        .wrapping_add(metrics.key_session_requests.load(Ordering::Relaxed))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{run_migrations, Backend};

    #[test]
    fn days_are_whole_utc_days_since_the_epoch() {
        let t = DateTime::from_timestamp(86_400 * 20_000 + 86_399, 0).expect("a time");
        assert_eq!(day_of(t), 20_000);
        assert_eq!(day_of(t + chrono::Duration::seconds(1)), 20_001);
        assert_eq!(start_of(20_001), Some(t + chrono::Duration::seconds(1)));
        let before = DateTime::from_timestamp(-1, 0).expect("a time");
        assert_eq!(day_of(before), -1);
    }

    #[test]
    fn a_flush_writes_what_the_counter_grew_by_and_a_failed_one_is_written_later() {
        let mut t = Tally::from(7);
        assert_eq!(
            t.pending(7),
            0,
            "uses from before the replica counted are not added"
        );
        assert_eq!(t.pending(10), 3);
        // The write failed: nothing is marked written, the next flush carries it.
        assert_eq!(t.pending(12), 5);
        t.written(12);
        assert_eq!(t.pending(12), 0);
        assert_eq!(t.pending(13), 1);
        // A counter that somehow reads lower never makes a negative or huge delta.
        assert_eq!(t.pending(5), 0);
        t.written(5);
        assert_eq!(t.pending(13), 1, "written never moves back");
    }

    #[test]
    fn missing_days_count_zero() {
        let rows = [(102, 4), (100, 1)];
        assert_eq!(
            fill_days(&rows, 99, 5),
            vec![(99, 0), (100, 1), (101, 0), (102, 4), (103, 0)]
        );
        assert!(fill_days(&rows, 99, 0).is_empty());
    }

    #[test]
    fn adds_to_the_day_and_prunes_old_days() {
        let mut conn: DbConn = Backend::Sqlite(":memory:".into())
            .connect()
            .expect("open SQLite");
        run_migrations(&mut conn).expect("migrate");
        add(&mut conn, 20_000, 3).expect("insert");
        add(&mut conn, 20_000, 4).expect("add");
        add(&mut conn, 19_000, 9).expect("an old day");
        assert_eq!(
            last_days(&mut conn, 20_001, 3).expect("read"),
            vec![(19_999, 0), (20_000, 7), (20_001, 0)]
        );
        let now = start_of(20_001).expect("a time");
        assert_eq!(prune(&mut conn, now).expect("prune"), 1);
        assert_eq!(
            last_days(&mut conn, 20_000, 1_001).expect("read")[..1_001 - 1]
                .iter()
                .map(|d| d.1)
                .sum::<i64>(),
            0,
            "the old day went"
        );
    }
}
