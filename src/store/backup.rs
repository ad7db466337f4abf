//! Consistent online copies of the embedded SQLite database (`accesskeyd backup`). Copying
//! the file of a live WAL database can give a torn copy; SQLite's `VACUUM INTO` instead
//! writes one read snapshot into a new file while the daemon keeps serving and writing.

use std::fs::OpenOptions;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use diesel::prelude::*;
use diesel::sql_types::Text;

use super::schema::{access_keys, users};
use super::{Backend, DbConn};
use crate::error::{Error, Result};

/// What a backup wrote, read back from the copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backup {
    pub path: PathBuf,
    pub bytes: u64,
    pub users: i64,
    pub access_keys: i64,
}

#[derive(QueryableByName)]
struct Check {
    #[diesel(sql_type = Text)]
    integrity_check: String,
}

/// Writes a consistent copy of the SQLite database to `to`, which must not exist (a backup
/// never overwrites anything). The copy is made under a temporary name beside `to`, readable
/// only by its owner from the first byte, checked (`PRAGMA integrity_check`), synced, and
/// only then given its name. On PostgreSQL there is nothing to do here: the error says what
/// to use instead. Blocking: call it off the async threads.
pub fn sqlite(backend: &Backend, to: &Path) -> Result<Backup> {
    let source = match backend {
        Backend::Sqlite(path) => path,
        Backend::Postgres(_) => {
            return Err(Error::invalid(
                "the database is PostgreSQL: back it up with pg_dump, or with continuous \
                 archiving for point-in-time recovery (docs/install.md#backups)",
            ))
        }
    };
    // Opening a missing SQLite file would create an empty database and back that up.
    if !Path::new(source).is_file() {
        return Err(Error::invalid(format!(
            "no database at {source} (database.url); is this the daemon's configuration?"
        )));
    }
    if to.exists() {
        return Err(Error::invalid(format!(
            "{} exists; a backup never overwrites, name a new file",
            to.display()
        )));
    }
    let file_name = to
        .file_name()
        .ok_or_else(|| Error::invalid(format!("{} is not a file name", to.display())))?;
    let dir = match to.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let partial = dir.join(format!(
        ".{}.partial-{}",
        file_name.to_string_lossy(),
        std::process::id()
    ));
    let result = write(backend, &partial, to);
    if result.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    result
}

fn write(backend: &Backend, partial: &Path, to: &Path) -> Result<Backup> {
    let io = |what: &str, path: &Path, e: std::io::Error| {
        Error::invalid(format!("{what} {}: {e}", path.display()))
    };
    // Empty and 0600 before SQLite writes into it (VACUUM INTO accepts an empty file): the
    // copy holds key hashes and the audit trail.
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(partial)
        .map_err(|e| io("cannot create", partial, e))?;
    let target = partial
        .to_str()
        .ok_or_else(|| Error::invalid(format!("{} is not UTF-8", partial.display())))?;
    let mut conn = backend
        .connect()
        .map_err(|e| Error::unavailable(format!("cannot open the database: {e}")))?;
    // One read transaction: the snapshot of the moment it starts, whatever is written
    // meanwhile (WAL lets the daemon go on writing).
    diesel::sql_query("VACUUM INTO ?")
        .bind::<Text, _>(target)
        .execute(&mut conn)?;
    drop(conn);

    let mut copy = Backend::Sqlite(target.to_owned())
        .connect()
        .map_err(|e| Error::unavailable(format!("cannot open the copy: {e}")))?;
    let check: Vec<Check> = diesel::sql_query("PRAGMA integrity_check").load(&mut copy)?;
    if check.len() != 1 || check[0].integrity_check != "ok" {
        return Err(Error::Internal(format!(
            "the copy failed SQLite's integrity check: {}",
            check
                .iter()
                .map(|c| c.integrity_check.as_str())
                .collect::<Vec<_>>()
                .join("; ")
        )));
    }
    let (user_count, key_count) = counts(&mut copy)?;
    // The copy is a complete database file of its own: no WAL to carry along.
    diesel::sql_query("PRAGMA journal_mode = DELETE").execute(&mut copy)?;
    drop(copy);
    let file = OpenOptions::new()
        .read(true)
        .open(partial)
        .map_err(|e| io("cannot reopen", partial, e))?;
    file.sync_all().map_err(|e| io("cannot sync", partial, e))?;
    let bytes = file
        .metadata()
        .map_err(|e| io("cannot read", partial, e))?
        .len();
    // A hard link fails where the name exists, so a file made meanwhile is never replaced.
    std::fs::hard_link(partial, to).map_err(|e| io("cannot name the backup", to, e))?;
    let _ = std::fs::remove_file(partial);
    Ok(Backup {
        path: to.to_path_buf(),
        bytes,
        users: user_count,
        access_keys: key_count,
    })
}

fn counts(conn: &mut DbConn) -> Result<(i64, i64)> {
    let u: i64 = users::table.count().get_result(conn)?;
    let k: i64 = access_keys::table.count().get_result(conn)?;
    Ok((u, k))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn migrated(dir: &Path) -> Backend {
        let backend = Backend::Sqlite(dir.join("live.db").to_string_lossy().into_owned());
        let mut conn = backend.connect().unwrap();
        super::super::run_migrations(&mut conn).unwrap();
        backend
    }

    #[test]
    fn a_backup_is_a_checked_database_of_its_own_readable_only_by_its_owner() {
        let dir = tempfile::tempdir().unwrap();
        let backend = migrated(dir.path());
        let to = dir.path().join("backup.db");
        let b = sqlite(&backend, &to).unwrap();
        assert_eq!((b.users, b.access_keys), (0, 0));
        assert!(b.bytes > 0);
        let mode = std::fs::metadata(&to).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{mode:o}");
        assert!(!dir.path().join("backup.db-wal").exists());
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().contains("partial"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }

    #[test]
    fn a_backup_never_overwrites_and_never_backs_up_a_missing_database() {
        let dir = tempfile::tempdir().unwrap();
        let backend = migrated(dir.path());
        let to = dir.path().join("backup.db");
        std::fs::write(&to, b"precious").unwrap();
        let err = sqlite(&backend, &to).unwrap_err().to_string();
        assert!(err.contains("never overwrites"), "{err}");
        assert_eq!(std::fs::read(&to).unwrap(), b"precious");

        let missing = Backend::Sqlite(dir.path().join("nope.db").to_string_lossy().into_owned());
        let err = sqlite(&missing, &dir.path().join("b2.db"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("no database at"), "{err}");
        assert!(!dir.path().join("nope.db").exists(), "nothing was created");

        let pg = Backend::Postgres("postgres://u@h/db".into());
        let err = sqlite(&pg, &dir.path().join("b3.db"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("pg_dump"), "{err}");
    }
}
