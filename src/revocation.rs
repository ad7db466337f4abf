//! The one road every change that can alter an authentication decision takes: a key, user or
//! session removed, a user disabled, suspended, renamed or promoted, an override or a runtime
//! option changed, a login that moved a window.
//!
//! Inside the write transaction, [`announce`] tells the other processes on the database
//! (PostgreSQL: `NOTIFY`, delivered at commit; SQLite: a row in `revocations` that they poll).
//! After the commit, [`changed`] drops what this process remembers. A serving process hears
//! the others through `hearing`.

pub use crate::auth_cache::Revoked;
use crate::error::Result;
use crate::services::Services;
use crate::store::schema::revocations;
use crate::store::timestamp::Timestamp;
use crate::store::DbConn;
use diesel::prelude::*;

/// The PostgreSQL channel replicas announce changes on.
pub const CHANNEL: &str = "accesskeyd_revocations";

/// Announcements kept in the SQLite table, for processes that poll it.
pub const KEEP_MINUTES: i64 = 60;

/// Inside the transaction that makes the change: tells every other process on the database,
/// at commit (and not at all if the transaction rolls back).
pub fn announce(conn: &mut DbConn, what: &Revoked) -> Result<()> {
    let subject = what.encode();
    match conn {
        DbConn::Pg(c) => {
            diesel::sql_query("SELECT pg_notify($1, $2)")
                .bind::<diesel::sql_types::Text, _>(CHANNEL)
                .bind::<diesel::sql_types::Text, _>(subject)
                .execute(c)?;
        }
        DbConn::Sqlite(_) => {
            diesel::insert_into(revocations::table)
                .values((
                    revocations::at.eq(Timestamp::from(chrono::Utc::now())),
                    revocations::subject.eq(subject),
                ))
                .execute(conn)?;
        }
    }
    Ok(())
}

/// After the commit: forgets here what the change may have altered.
pub fn changed(app: &Services, what: Revoked) {
    tracing::debug!(?what, "revocation");
    app.auth_cache.forget(&what);
}

/// Runs `f` in one write transaction, announces what it reports as revoked in the same
/// transaction, and forgets it here after the commit.
pub async fn write<T, F>(app: &Services, f: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce(&mut DbConn) -> Result<(T, Vec<Revoked>)> + Send + 'static,
{
    let (value, revoked) = app
        .store
        .write(move |conn| {
            let (value, revoked) = f(conn)?;
            for r in &revoked {
                announce(conn, r)?;
            }
            Ok((value, revoked))
        })
        .await?;
    for r in revoked {
        changed(app, r);
    }
    Ok(value)
}

/// Removes announcements no poller needs any more (inside the cleanup job's connection).
pub fn prune(conn: &mut DbConn, now: chrono::DateTime<chrono::Utc>) -> Result<usize> {
    let cutoff = Timestamp::from(now - chrono::Duration::minutes(KEEP_MINUTES));
    Ok(diesel::delete(revocations::table.filter(revocations::at.lt(cutoff))).execute(conn)?)
}
