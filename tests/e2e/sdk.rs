//! The vendor's generated Python SDK (PyPI `seeq`) against the daemon: options and per-user
//! overrides parse in its models and round-trip unchanged (tests/sdk/session_options.py).

use crate::harness::daemon::{Daemon, ADMIN, ADMIN_PASSWORD, LDAP_DIR};
use crate::harness::slapd::Slapd;
use std::process::Command;

#[tokio::test]
async fn the_seeq_sdk_reads_and_sets_session_options_and_overrides() {
    let slapd = Slapd::start().await;
    let d = Daemon::start(Some(&slapd)).await;
    let bob = d.login("bob", "bob-pw", Some(LDAP_DIR)).await;
    let bob_id = bob.me().await.body["id"].as_str().unwrap().to_string();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sdk/session_options.py");
    let url = d.url.clone();
    let out = tokio::task::spawn_blocking(move || {
        Command::new("python3")
            .args([script, &url, ADMIN, ADMIN_PASSWORD, &bob_id])
            .output()
            .expect("run python3")
    })
    .await
    .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success() && text.contains("sdk: ok"), "{text}");
    // What the SDK set is what the daemon does: creation is off for people now.
    let refused = bob
        .post("/api/accesskeys", serde_json::json!({"name": "mine"}))
        .await;
    assert_eq!(
        refused.status,
        reqwest::StatusCode::FORBIDDEN,
        "{}",
        refused.body
    );
}
