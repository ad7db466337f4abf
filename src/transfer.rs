//! Copies an installation's data between databases (SQLite → PostgreSQL when a single machine
//! is outgrown): users, keys (hashes only), options and the audit trail, verified by counts.
//! Sessions are not copied (people log in again; keys keep working).

use crate::config::redact;
use crate::error::{Error, Result};
use crate::store::models::{AccessKeyRow, AuditRow, KeyUseRow, OptionRow, UserRow};
use crate::store::schema::{access_keys, audit_events, key_use_days, key_uses, options, users};
use crate::store::{run_migrations, write_transaction, Backend, DbConn};
use diesel::prelude::*;

/// Rows per read from the source, so memory stays bounded on large audit trails.
const CHUNK: i64 = 1000;

/// Row counts of the tables that are copied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counts {
    pub users: i64,
    pub access_keys: i64,
    pub options: i64,
    pub audit_events: i64,
}

impl std::fmt::Display for Counts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} user(s), {} access key(s), {} option(s), {} audit event(s)",
            self.users, self.access_keys, self.options, self.audit_events
        )
    }
}

pub fn counts(conn: &mut DbConn) -> Result<Counts> {
    Ok(Counts {
        users: users::table.count().get_result(conn)?,
        access_keys: access_keys::table.count().get_result(conn)?,
        options: options::table.count().get_result(conn)?,
        audit_events: audit_events::table.count().get_result(conn)?,
    })
}

fn connect(url: &str) -> Result<DbConn> {
    let backend = Backend::parse(url).map_err(|e| Error::invalid(e.to_string()))?;
    backend.connect().map_err(|e| {
        Error::outage(
            crate::error::DATABASE_UNAVAILABLE,
            format!("cannot connect to {}: {e}", redact(url)),
        )
    })
}

/// Copies everything from `from` into `to`, which must be empty (its schema is created or
/// migrated first). All of it lands in one transaction, and only if the counts match.
pub fn copy(from: &str, to: &str) -> Result<Counts> {
    let mut src = connect(from)?;
    let mut dst = connect(to)?;
    run_migrations(&mut src)?;
    run_migrations(&mut dst)?;
    let expected = counts(&mut src)?;
    let present = counts(&mut dst)?;
    if present != Counts::default() {
        return Err(Error::conflict(format!(
            "the target database is not empty ({present}); copy only into a new database"
        )));
    }
    write_transaction(&mut dst, |dst| {
        // Parents before children: keys reference users.
        // `scim_email_primary` is not in UserRow (only SCIM reads it): copied beside it.
        let all_users: Vec<(UserRow, bool)> = users::table
            .select((UserRow::as_select(), users::scim_email_primary))
            .load(&mut src)?;
        for (row, email_primary) in &all_users {
            diesel::insert_into(users::table)
                .values((row, users::scim_email_primary.eq(email_primary)))
                .execute(dst)?;
        }
        let all_options: Vec<OptionRow> = options::table
            .select(OptionRow::as_select())
            .load(&mut src)?;
        for row in &all_options {
            diesel::insert_into(options::table)
                .values(row)
                .execute(dst)?;
        }
        copy_chunks(
            &mut src,
            dst,
            |src, offset| {
                Ok(access_keys::table
                    .order(access_keys::id)
                    .offset(offset)
                    .limit(CHUNK)
                    .select(AccessKeyRow::as_select())
                    .load(src)?)
            },
            |dst, row: &AccessKeyRow| {
                diesel::insert_into(access_keys::table)
                    .values(row)
                    .execute(dst)?;
                Ok(())
            },
        )?;
        // Where keys were used from, and uses per day (small: at most 5 rows per key, one
        // per day).
        let uses: Vec<KeyUseRow> = key_uses::table
            .select(KeyUseRow::as_select())
            .load(&mut src)?;
        for row in &uses {
            diesel::insert_into(key_uses::table)
                .values(row)
                .execute(dst)?;
        }
        let days: Vec<(i64, i64)> = key_use_days::table
            .select((key_use_days::day, key_use_days::uses))
            .load(&mut src)?;
        for (day, n) in days {
            diesel::insert_into(key_use_days::table)
                .values((key_use_days::day.eq(day), key_use_days::uses.eq(n)))
                .execute(dst)?;
        }
        copy_chunks(
            &mut src,
            dst,
            |src, offset| {
                Ok(audit_events::table
                    .order(audit_events::id)
                    .offset(offset)
                    .limit(CHUNK)
                    .select(AuditRow::as_select())
                    .load(src)?)
            },
            |dst, row: &AuditRow| {
                diesel::insert_into(audit_events::table)
                    .values(row)
                    .execute(dst)?;
                Ok(())
            },
        )?;
        if let DbConn::Pg(pg) = dst {
            // Ids were copied; the sequence must continue after the highest one.
            diesel::sql_query(
                "SELECT setval(pg_get_serial_sequence('audit_events', 'id'), \
                 COALESCE((SELECT MAX(id) FROM audit_events), 0) + 1, false)",
            )
            .execute(pg)?;
        }
        let copied = counts(dst)?;
        if copied != expected {
            return Err(Error::Internal(format!(
                "copied counts differ from the source: {copied} vs {expected}; nothing was kept"
            )));
        }
        Ok(copied)
    })
}

fn copy_chunks<T>(
    src: &mut DbConn,
    dst: &mut DbConn,
    read: impl Fn(&mut DbConn, i64) -> Result<Vec<T>>,
    write: impl Fn(&mut DbConn, &T) -> Result<()>,
) -> Result<()> {
    let mut offset = 0;
    loop {
        let rows = read(src, offset)?;
        for row in &rows {
            write(dst, row)?;
        }
        if (rows.len() as i64) < CHUNK {
            return Ok(());
        }
        offset += CHUNK;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scim_email_sent_as_not_primary_stays_so_in_the_copy() {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = |name: &str| format!("sqlite://{}", dir.path().join(name).display());
        let (from, to) = (url("from.db"), url("to.db"));
        let mut src = connect(&from).expect("source");
        run_migrations(&mut src).expect("migrate");
        for (id, primary) in [("u-1", false), ("u-2", true)] {
            diesel::insert_into(users::table)
                .values((&UserRow::fixture(id), users::scim_email_primary.eq(primary)))
                .execute(&mut src)
                .expect("insert");
        }
        copy(&from, &to).expect("copy");
        let mut dst = connect(&to).expect("target");
        let copied: Vec<(String, bool)> = users::table
            .order(users::id)
            .select((users::id, users::scim_email_primary))
            .load(&mut dst)
            .expect("read");
        assert_eq!(
            copied,
            [("u-1".to_string(), false), ("u-2".to_string(), true)]
        );
    }
}
