//! A stored point in time: every timestamp column is BIGINT milliseconds since the Unix
//! epoch; rows hold this type so the domain sees a `DateTime<Utc>` and never the millis.

use chrono::{DateTime, TimeZone, Utc};
use diesel::backend::Backend;
use diesel::deserialize::{self, FromSql, FromSqlRow};
use diesel::expression::AsExpression;
use diesel::serialize::{self, Output, ToSql};
use diesel::sql_types::BigInt;

/// A timestamp as a row holds it. The millis are kept inside (not the `DateTime`) because
/// `ToSql` must hand diesel a reference to the stored value, and so a value read back is the
/// very value written, even one outside chrono's range. `Default` is the epoch.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, AsExpression, FromSqlRow,
)]
#[diesel(sql_type = BigInt)]
pub struct Timestamp {
    ms: i64,
}

impl Timestamp {
    /// The earliest storable time: a bound that every stored row is at or after.
    pub const MIN: Timestamp = Timestamp { ms: i64::MIN };

    /// A stored value as it is in the column.
    pub const fn from_millis(ms: i64) -> Timestamp {
        Timestamp { ms }
    }

    /// Milliseconds since the epoch, as stored.
    pub const fn millis(self) -> i64 {
        self.ms
    }

    /// The point in time (the epoch for a stored value chrono cannot represent).
    pub fn at(self) -> DateTime<Utc> {
        Utc.timestamp_millis_opt(self.ms)
            .single()
            .unwrap_or_default()
    }
}

impl From<DateTime<Utc>> for Timestamp {
    fn from(t: DateTime<Utc>) -> Timestamp {
        Timestamp {
            ms: t.timestamp_millis(),
        }
    }
}

impl From<Timestamp> for DateTime<Utc> {
    fn from(t: Timestamp) -> DateTime<Utc> {
        t.at()
    }
}

// Generic over the backend so the same impls serve SQLite, PostgreSQL and the
// multi-backend `DbConn` built from them.
impl<DB: Backend> ToSql<BigInt, DB> for Timestamp
where
    i64: ToSql<BigInt, DB>,
{
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, DB>) -> serialize::Result {
        self.ms.to_sql(out)
    }
}

impl<DB: Backend> FromSql<BigInt, DB> for Timestamp
where
    i64: FromSql<BigInt, DB>,
{
    fn from_sql(bytes: DB::RawValue<'_>) -> deserialize::Result<Self> {
        i64::from_sql(bytes).map(Timestamp::from_millis)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    #[test]
    fn converts_to_and_from_date_time_at_millisecond_precision() {
        let t = Utc
            .timestamp_millis_opt(1_800_000_000_123)
            .single()
            .expect("in range");
        let stored = Timestamp::from(t);
        assert_eq!(stored.millis(), 1_800_000_000_123);
        assert_eq!(stored.at(), t);
        assert_eq!(DateTime::<Utc>::from(stored), t);
        // Below a millisecond is dropped, as the column always did.
        let finer = t + Duration::microseconds(456);
        assert_eq!(Timestamp::from(finer), stored);
        assert_eq!(Timestamp::from_millis(0).at(), DateTime::<Utc>::UNIX_EPOCH);
        // A value chrono cannot hold reads as the epoch instead of failing.
        assert_eq!(Timestamp::MIN.at(), DateTime::<Utc>::UNIX_EPOCH);
    }

    #[test]
    fn orders_as_the_times_do() {
        let t = Utc
            .timestamp_millis_opt(1_700_000_000_000)
            .single()
            .expect("in range");
        let earlier = Timestamp::from(t - Duration::milliseconds(1));
        let later = Timestamp::from(t + Duration::days(1));
        assert!(earlier < Timestamp::from(t));
        assert!(Timestamp::from(t) < later);
        assert!(Timestamp::MIN < earlier);
        assert!(Timestamp::from_millis(-1) < Timestamp::from_millis(0));
    }

    #[test]
    fn the_column_stores_the_millis_and_filters_by_them() {
        use crate::store::schema::revocations;
        use crate::store::{run_migrations, Backend, DbConn};
        use diesel::prelude::*;

        // Through the multi-backend connection, as the service reads and writes it.
        let mut conn: DbConn = Backend::Sqlite(":memory:".into())
            .connect()
            .expect("open SQLite");
        run_migrations(&mut conn).expect("migrate");
        let millis = [1_800_000_000_123_i64, -5, 0, 1_700_000_000_000];
        for (i, ms) in millis.into_iter().enumerate() {
            diesel::insert_into(revocations::table)
                .values((
                    revocations::at.eq(Timestamp::from_millis(ms)),
                    revocations::subject.eq(format!("s{i}")),
                ))
                .execute(&mut conn)
                .expect("insert");
        }
        let raw: Vec<i64> = diesel::sql_query("SELECT at FROM revocations ORDER BY id")
            .load::<AtMillis>(&mut conn)
            .expect("read as BIGINT")
            .into_iter()
            .map(|r| r.at)
            .collect();
        assert_eq!(raw, millis);
        let read: Vec<Timestamp> = revocations::table
            .order(revocations::id)
            .select(revocations::at)
            .load(&mut conn)
            .expect("read");
        assert_eq!(read, millis.map(Timestamp::from_millis));

        let cutoff = Timestamp::from(
            Utc.timestamp_millis_opt(1_750_000_000_000)
                .single()
                .expect("in range"),
        );
        let before: Vec<Timestamp> = revocations::table
            .filter(revocations::at.lt(cutoff))
            .order(revocations::at)
            .select(revocations::at)
            .load(&mut conn)
            .expect("filter");
        assert_eq!(
            before,
            [-5, 0, 1_700_000_000_000].map(Timestamp::from_millis)
        );
    }

    #[derive(diesel::QueryableByName)]
    struct AtMillis {
        #[diesel(sql_type = BigInt)]
        at: i64,
    }
}
