//! Directory sync at scale: reconciles a real slapd of N users (every one also a local user)
//! and compares the wall time with `ldapsearch -E pr=1000/noprompt` reading the same entries
//! (the floor), and records the peak RSS of the `accesskeyd sync` process alone (its
//! `VmHWM`, see [`timed_sync`]). Run: `cargo bench --bench sync`.
//!
//! - `ACCESSKEYD_BENCH_SYNC_SIZES=10000,100000,1000000` (default `10000,100000`)
//! - `ACCESSKEYD_BENCH_SYNC_REPEAT=3` runs per size and backend (default 2)
//! - PostgreSQL as well when `ACCESSKEYD_BENCH_POSTGRES_URL` (or the test suite's
//!   `ACCESSKEYD_TEST_POSTGRES_URL`) names a server: a fresh database per bench run, dropped
//!   at the end.
//! - `ACCESSKEYD_BENCH_BEFORE=/path/to/accesskeyd` also times another build's `sync` (e.g.
//!   the previous one) on the same data, the same way, alternating with this build's.
//! - `ACCESSKEYD_BENCH_WRAP="heaptrack -o /tmp/sync"` runs each sync under a profiler.
//!
//! Method and results: docs/performance.md.

#[path = "../tests/e2e/harness/process.rs"]
mod process;
#[path = "../tests/e2e/harness/slapd.rs"]
mod slapd;

use accesskeyd::store::schema::users;
use diesel::prelude::*;
use slapd::Slapd;
use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

const BIN: &str = env!("CARGO_BIN_EXE_accesskeyd");

/// The binaries whose `sync` is timed: this build's, and `ACCESSKEYD_BENCH_BEFORE` when set
/// (another build, e.g. the previous release, measured the same way on the same data).
fn bins() -> Vec<(&'static str, String)> {
    let mut bins = vec![("this build", BIN.to_string())];
    if let Ok(before) = std::env::var("ACCESSKEYD_BENCH_BEFORE") {
        bins.push(("before", before));
    }
    bins
}
/// `bin` without the bench's own `ACCESSKEYD_*` settings, which it would read as
/// configuration.
fn accesskeyd(bin: &str) -> Command {
    let mut c = Command::new(bin);
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("ACCESSKEYD_") {
            c.env_remove(k);
        }
    }
    c
}

/// Rows per INSERT: 7 columns stay under SQLite's 32,766 and PostgreSQL's 65,535 parameters.
const INSERT_BATCH: usize = 4000;

fn ldapsearch(slapd: &Slapd, attrs: &[&str], out: Stdio) -> std::process::Child {
    Command::new("ldapsearch")
        .env("LDAPNOINIT", "1")
        .args([
            "-x",
            "-LLL",
            "-H",
            &slapd.url(),
            "-D",
            slapd.service_dn(),
            "-w",
            slapd.service_password(),
        ])
        .args([
            "-b",
            slapd.user_base(),
            "-E",
            "pr=1000/noprompt",
            "(objectClass=inetOrgPerson)",
        ])
        .args(attrs)
        .stdout(out)
        .spawn()
        .expect("ldapsearch")
}

fn ids(slapd: &Slapd) -> Vec<(String, String)> {
    let out = ldapsearch(slapd, &["entryUUID", "uid"], Stdio::piped())
        .wait_with_output()
        .expect("ldapsearch");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut result = Vec::new();
    let (mut id, mut uid) = (None, None);
    for line in text.lines().chain(std::iter::once("")) {
        if let Some(v) = line.strip_prefix("entryUUID: ") {
            id = Some(v.to_string());
        } else if let Some(v) = line.strip_prefix("uid: ") {
            uid = Some(v.to_string());
        } else if line.is_empty() {
            if let (Some(i), Some(u)) = (id.take(), uid.take()) {
                result.push((i, u));
            }
        }
    }
    result
}

/// A database the bench's daemon uses.
enum Db {
    Sqlite(String),
    Postgres { server: String, name: String },
}

impl Db {
    fn label(&self) -> &'static str {
        match self {
            Db::Sqlite(_) => "SQLite",
            Db::Postgres { .. } => "PostgreSQL",
        }
    }

    fn url(&self) -> String {
        match self {
            Db::Sqlite(path) => format!("sqlite://{path}"),
            Db::Postgres { server, name } => {
                let mut url = url::Url::parse(server).expect("server URL");
                url.set_path(&format!("/{name}"));
                url.to_string()
            }
        }
    }

    fn postgres(server: &str) -> Db {
        let name = format!(
            "akd_bench_{}",
            &uuid::Uuid::new_v4().simple().to_string()[..12]
        );
        let mut admin = PgConnection::establish(server).expect("reach PostgreSQL");
        diesel::sql_query(format!("CREATE DATABASE \"{name}\""))
            .execute(&mut admin)
            .expect("create bench database");
        Db::Postgres {
            server: server.to_string(),
            name,
        }
    }

    /// Replaces the local users with one per directory entry, in batches, in one transaction.
    fn load_users(&self, entries: &[(String, String)]) {
        match self {
            Db::Sqlite(path) => {
                let mut c = SqliteConnection::establish(path).expect("sqlite");
                c.transaction::<_, diesel::result::Error, _>(|c| {
                    diesel::delete(users::table).execute(c)?;
                    for (n, batch) in entries.chunks(INSERT_BATCH).enumerate() {
                        diesel::insert_into(users::table)
                            .values(rows(n, batch))
                            .execute(c)?;
                    }
                    Ok(())
                })
                .expect("insert local users");
            }
            Db::Postgres { .. } => {
                let mut c = PgConnection::establish(&self.url()).expect("postgres");
                c.transaction::<_, diesel::result::Error, _>(|c| {
                    diesel::delete(users::table).execute(c)?;
                    for (n, batch) in entries.chunks(INSERT_BATCH).enumerate() {
                        diesel::insert_into(users::table)
                            .values(rows(n, batch))
                            .execute(c)?;
                    }
                    Ok(())
                })
                .expect("insert local users");
                diesel::sql_query("VACUUM ANALYZE users")
                    .execute(&mut c)
                    .expect("analyze");
            }
        }
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        if let Db::Postgres { server, name } = self {
            if let Ok(mut admin) = PgConnection::establish(server) {
                let _ =
                    diesel::sql_query(format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                        .execute(&mut admin);
            }
        }
    }
}

#[allow(clippy::type_complexity)]
fn rows(
    batch_no: usize,
    batch: &[(String, String)],
) -> Vec<(
    diesel::dsl::Eq<users::id, String>,
    diesel::dsl::Eq<users::directory_id, &'static str>,
    diesel::dsl::Eq<users::external_id, &String>,
    diesel::dsl::Eq<users::username, &String>,
    diesel::dsl::Eq<users::is_admin, bool>,
    diesel::dsl::Eq<users::is_enabled, bool>,
    diesel::dsl::Eq<users::created_at, i64>,
)> {
    batch
        .iter()
        .enumerate()
        .map(|(i, (ext, uid))| {
            let n = batch_no * INSERT_BATCH + i;
            (
                users::id.eq(format!("00000000-0000-4000-8000-{n:012}")),
                users::directory_id.eq("corp"),
                users::external_id.eq(ext),
                users::username.eq(uid),
                users::is_admin.eq(false),
                users::is_enabled.eq(true),
                users::created_at.eq(0i64),
            )
        })
        .collect()
}

fn config(dir: &Path, db: &Db, slapd: &Slapd) -> std::path::PathBuf {
    let cfg = dir.join(format!("bench-{}.toml", db.label()));
    std::fs::write(
        &cfg,
        format!(
            "[database]\nurl = \"{}\"\n\n[[directories]]\nid = \"corp\"\nkind = \"ldap\"\n\
             url = \"{}\"\nbind_dn = \"{}\"\nbind_password = \"{}\"\nuser_base = \"{}\"\n\
             user_filter = \"(objectClass=inetOrgPerson)\"\npage_size = 1000\nsync_schedule = \"\"\n\
             deletion_threshold = 10000000\n",
            db.url(),
            slapd.url(),
            slapd.service_dn(),
            slapd.service_password(),
            slapd.user_base()
        ),
    )
    .expect("config");
    let status = accesskeyd(BIN)
        .arg("--config")
        .arg(&cfg)
        .arg("migrate")
        .stdout(Stdio::null())
        .status()
        .expect("migrate");
    assert!(status.success());
    cfg
}

/// The process's peak resident set so far (`VmHWM`), in KiB; None once it is gone.
fn vm_hwm_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Runs `accesskeyd sync corp` and returns (seconds, its own peak RSS in MiB, its output).
///
/// The peak is the largest `VmHWM` of the process read every 5 ms while it runs, not the
/// `ru_maxrss` of wait4/getrusage: on exec Linux keeps the high-water mark of the memory the
/// child had before (the bench's own, a copy of a million entries), so `ru_maxrss` of any
/// child of a large parent is at least the parent's size. `VmHWM` starts afresh at exec.
fn timed_sync(bin: &str, cfg: &Path) -> (f64, f64, String) {
    let t = Instant::now();
    // A heap profiler (e.g. `heaptrack -o /tmp/sync`) in front of the sync, to see where its
    // memory goes; its time and RSS are then the profiler's.
    let wrap = std::env::var("ACCESSKEYD_BENCH_WRAP").unwrap_or_default();
    let mut words = wrap.split_whitespace();
    let mut cmd = match words.next() {
        Some(tool) => {
            let mut c = accesskeyd(tool);
            c.args(words).arg(bin);
            c
        }
        None => accesskeyd(bin),
    };
    let mut child = cmd
        .arg("--config")
        .arg(cfg)
        .args(["sync", "corp"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .expect("sync");
    let mut out = child.stdout.take().expect("stdout");
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        out.read_to_string(&mut text).expect("read output");
        text
    });
    let mut peak_kib = 0;
    let status = loop {
        if let Some(kib) = vm_hwm_kib(child.id()) {
            peak_kib = peak_kib.max(kib);
        }
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    };
    let took = t.elapsed().as_secs_f64();
    let text = reader.join().expect("output");
    assert!(status.success(), "sync failed: {text}");
    (took, peak_kib as f64 / 1024.0, text)
}

#[tokio::main]
async fn main() {
    let sizes: Vec<usize> = std::env::var("ACCESSKEYD_BENCH_SYNC_SIZES")
        .unwrap_or_else(|_| "10000,100000".into())
        .split(',')
        .map(|s| {
            s.trim()
                .parse()
                .expect("ACCESSKEYD_BENCH_SYNC_SIZES: numbers")
        })
        .collect();
    let repeat: usize = std::env::var("ACCESSKEYD_BENCH_SYNC_REPEAT")
        .map(|r| r.parse().expect("ACCESSKEYD_BENCH_SYNC_REPEAT: a number"))
        .unwrap_or(2);
    let pg_server = std::env::var("ACCESSKEYD_BENCH_POSTGRES_URL")
        .or_else(|_| std::env::var("ACCESSKEYD_TEST_POSTGRES_URL"))
        .ok();

    let slapd = Slapd::start().await;
    let dir = tempfile::tempdir().expect("tmp");
    let mut dbs = vec![Db::Sqlite(
        dir.path().join("bench.db").display().to_string(),
    )];
    if let Some(server) = &pg_server {
        dbs.push(Db::postgres(server));
    }
    let cfgs: Vec<_> = dbs
        .iter()
        .map(|db| config(dir.path(), db, &slapd))
        .collect();

    let mut loaded = 3; // the harness's alice, bob, carol
    for target in sizes {
        assert!(target >= loaded, "sizes must grow");
        let t = Instant::now();
        slapd
            .add_users_bulk(&format!("u{target}-"), target - loaded, "pw")
            .await;
        loaded = target;
        eprintln!(
            "loaded {target} users into slapd in {:.1} s",
            t.elapsed().as_secs_f64()
        );

        // Every directory user has a local record (the worst case for the reconciler).
        let entries = ids(&slapd);
        for (db, cfg) in dbs.iter().zip(&cfgs) {
            let t = Instant::now();
            db.load_users(&entries);
            eprintln!(
                "{} local users into {} in {:.1} s",
                entries.len(),
                db.label(),
                t.elapsed().as_secs_f64()
            );
            for _ in 0..repeat {
                for (label, bin) in bins() {
                    let t = Instant::now();
                    let status = ldapsearch(&slapd, &["entryUUID", "uid"], Stdio::null())
                        .wait()
                        .expect("ldapsearch");
                    assert!(status.success());
                    let floor = t.elapsed().as_secs_f64();
                    let (took, rss, text) = timed_sync(&bin, cfg);
                    // The sync's own lines: how long it listed, read, decided; the summary.
                    let lines: Vec<&str> = text.lines().map(str::trim).collect();
                    println!(
                        "{target} users, {}, {label}: ldapsearch {floor:.2} s, accesskeyd sync {took:.2} s ({:.2}x), sync peak RSS {rss:.1} MiB\n  {}",
                        db.label(),
                        took / floor,
                        lines.join("\n  ")
                    );
                }
            }
        }
    }
}
