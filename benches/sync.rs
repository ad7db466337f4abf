//! Directory sync at scale: reconciles 10k and 100k users from a real slapd and compares the
//! wall time with `ldapsearch -E pr=1000/noprompt` reading the same entries (the floor), and
//! records the peak RSS of the `accesskeyd sync` process. Run: `cargo bench --bench sync`.
//! Method and results: docs/performance.md.

#[path = "../tests/e2e/harness/process.rs"]
mod process;
#[path = "../tests/e2e/harness/slapd.rs"]
mod slapd;

use accesskeyd::store::schema::users;
use diesel::prelude::*;
use slapd::Slapd;
use std::process::{Command, Stdio};
use std::time::Instant;

const BIN: &str = env!("CARGO_BIN_EXE_accesskeyd");

/// Peak resident set of all waited-for children so far, in MiB.
fn children_peak_rss_mib() -> f64 {
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage writes into the struct we own.
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) };
    usage.ru_maxrss as f64 / 1024.0
}

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

#[tokio::main]
async fn main() {
    let slapd = Slapd::start().await;
    let dir = tempfile::tempdir().expect("tmp");
    let db = dir.path().join("bench.db");
    let cfg = dir.path().join("bench.toml");
    std::fs::write(
        &cfg,
        format!(
            "[database]\nurl = \"sqlite://{}\"\n\n[[directories]]\nid = \"corp\"\nkind = \"ldap\"\n\
             url = \"{}\"\nbind_dn = \"{}\"\nbind_password = \"{}\"\nuser_base = \"{}\"\n\
             user_filter = \"(objectClass=inetOrgPerson)\"\npage_size = 1000\nsync_schedule = \"\"\n\
             deletion_threshold = 1000000\n",
            db.display(),
            slapd.url(),
            slapd.service_dn(),
            slapd.service_password(),
            slapd.user_base()
        ),
    )
    .expect("config");
    let status = Command::new(BIN)
        .arg("--config")
        .arg(&cfg)
        .arg("migrate")
        .stdout(Stdio::null())
        .status()
        .expect("migrate");
    assert!(status.success());

    let mut loaded = 3; // the harness's alice, bob, carol
    for target in [10_000usize, 100_000] {
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
        let url = format!("{}", db.display());
        let mut conn = diesel::SqliteConnection::establish(&url).expect("sqlite");
        conn.transaction::<_, diesel::result::Error, _>(|c| {
            diesel::delete(users::table).execute(c)?;
            for (i, (ext, uid)) in entries.iter().enumerate() {
                diesel::insert_into(users::table)
                    .values((
                        users::id.eq(format!("00000000-0000-4000-8000-{i:012}")),
                        users::directory_id.eq("corp"),
                        users::external_id.eq(ext),
                        users::username.eq(uid),
                        users::is_admin.eq(false),
                        users::is_enabled.eq(true),
                        users::created_at.eq(0i64),
                    ))
                    .execute(c)?;
            }
            Ok(())
        })
        .expect("insert local users");

        let t = Instant::now();
        let status = ldapsearch(&slapd, &["entryUUID", "uid"], Stdio::null())
            .wait()
            .expect("ldapsearch");
        assert!(status.success());
        let floor = t.elapsed().as_secs_f64();

        let t = Instant::now();
        let out = Command::new(BIN)
            .arg("--config")
            .arg(&cfg)
            .args(["sync", "corp"])
            .env("RUST_LOG", "warn")
            .output()
            .expect("sync");
        let took = t.elapsed().as_secs_f64();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{text}");
        let summary = text
            .lines()
            .find(|l| l.contains(" — read "))
            .unwrap_or_default();
        println!(
            "{target} users: ldapsearch {floor:.2} s, accesskeyd sync {took:.2} s ({:.2}x), peak RSS of children so far {:.1} MiB\n  {summary}",
            took / floor,
            children_peak_rss_mib()
        );
    }
}
