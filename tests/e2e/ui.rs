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
