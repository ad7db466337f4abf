//! The web pages in a real browser: headless Debian Chromium driven by Playwright
//! (tests/ui/run.mjs) against the daemon and slapd, as a person and an admin use them.
//! Screenshots of each main page land in the test output (`ACCESSKEYD_UI_SCREENSHOTS`, by
//! default a directory under the cargo target dir).

use crate::harness::daemon::{Daemon, ADMIN, ADMIN_PASSWORD, LDAP_DIR};
use crate::harness::slapd::Slapd;
use std::path::PathBuf;
use std::process::Command;

fn screenshots() -> PathBuf {
    std::env::var_os("ACCESSKEYD_UI_SCREENSHOTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("ui-screenshots"))
}

/// Runs one scenario of tests/ui/run.mjs; panics with its output when a step fails.
async fn scenario(d: &Daemon, name: &'static str) {
    let ui = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/ui");
    assert!(
        ui.join("node_modules/playwright-core").is_dir(),
        "tests/ui/node_modules is missing: run scripts/test.sh (it runs npm ci there)"
    );
    let url = d.url.clone();
    let out = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg(ui.join("run.mjs"))
            .arg(name)
            .env("ACCESSKEYD_URL", url)
            .env("ACCESSKEYD_ADMIN", ADMIN)
            .env("ACCESSKEYD_ADMIN_PASSWORD", ADMIN_PASSWORD)
            .env("ACCESSKEYD_LDAP_DIR", LDAP_DIR)
            .env("ACCESSKEYD_SCREENSHOTS", screenshots())
            .output()
            .expect("run node")
    })
    .await
    .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "browser scenario `{name}`:\n{text}");
    assert!(text.contains(&format!("scenario {name}: ok")), "{text}");
}

#[tokio::test]
async fn a_person_manages_their_keys_in_the_browser() {
    let slapd = Slapd::start().await;
    let d = Daemon::start(Some(&slapd)).await;
    scenario(&d, "keys").await;
}

#[tokio::test]
async fn a_person_creates_a_read_only_key_and_rotates_one_in_the_browser() {
    let slapd = Slapd::start().await;
    let d = Daemon::start(Some(&slapd)).await;
    scenario(&d, "key-controls").await;
}

#[tokio::test]
async fn an_admin_uses_the_admin_panel_and_others_cannot() {
    let slapd = Slapd::start().await;
    let d = Daemon::start(Some(&slapd)).await;
    scenario(&d, "admin").await;
}

/// Arranges one working, one lapsing and one stopped key, eight key uses over the last
/// days and two sync runs of the LDAP directory; the browser then reads them on the
/// overview and downloads the credential report.
#[tokio::test]
async fn an_admin_reads_the_overview_charts_and_downloads_the_credential_report() {
    use accesskeyd::store::schema::sync_runs;
    use diesel::prelude::*;
    let slapd = Slapd::start().await;
    let d = Daemon::start(Some(&slapd)).await;
    let now = d.app.clock.now();
    // bob signed in now: works for 14 days. carol: 12 days ago, lapses in 2 (within the 3
    // warning days). alice: 20 days ago, stopped.
    for (name, password, signed_in_days_ago) in [
        ("bob", "bob-pw", 0),
        ("carol", "carol-pw", 12),
        ("alice", "alice-pw", 20),
    ] {
        let person = d.login(name, password, Some(LDAP_DIR)).await;
        person.create_key(&format!("{name}'s export")).await;
        let id = person.me().await.body["id"]
            .as_str()
            .expect("an id")
            .to_string();
        if signed_in_days_ago > 0 {
            d.set_last_login(&id, now - chrono::Duration::days(signed_in_days_ago))
                .await;
        }
    }
    let today = accesskeyd::key_usage::day_of(now);
    d.app
        .store
        .write(move |conn| {
            accesskeyd::key_usage::add(conn, today, 5)?;
            accesskeyd::key_usage::add(conn, today - 2, 3)?;
            // Long ago: outside the 30 days drawn.
            accesskeyd::key_usage::add(conn, today - 40, 100)?;
            let started = now.timestamp_millis();
            for (status, removed, days_ago) in [("ok", 2i64, 2i64), ("blocked", 7, 1)] {
                diesel::insert_into(sync_runs::table)
                    .values((
                        sync_runs::directory_id.eq(LDAP_DIR),
                        sync_runs::started_at.eq(started - days_ago * 86_400_000),
                        sync_runs::finished_at.eq(Some(started - days_ago * 86_400_000 + 1_000)),
                        sync_runs::dry_run.eq(false),
                        sync_runs::run_trigger.eq("schedule"),
                        sync_runs::replica.eq("test"),
                        sync_runs::status.eq(status),
                        sync_runs::read_count.eq(10i64),
                        sync_runs::matched.eq(3i64),
                        sync_runs::renamed.eq(0i64),
                        sync_runs::removed.eq(removed),
                        sync_runs::suspended.eq(0i64),
                        sync_runs::restored.eq(0i64),
                        sync_runs::admin_changes.eq(0i64),
                        sync_runs::last_logins.eq(0i64),
                    ))
                    .execute(conn)?;
            }
            Ok(())
        })
        .await
        .expect("arrange uses and runs");
    scenario(&d, "overview").await;
}
