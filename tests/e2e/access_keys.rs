//! Access keys where an LDAP directory is part of the story (the rules of keys are in the
//! fast tier, tests/api/access_keys.rs).

use crate::harness::daemon::{Daemon, LDAP_DIR};
use crate::harness::slapd::Slapd;
use reqwest::StatusCode;

#[tokio::test]
async fn through_an_ldap_directory_a_key_is_just_a_wrong_username() {
    let slapd = Slapd::start().await;
    let d = Daemon::start(Some(&slapd)).await;
    let bob = d.login("bob", "bob-pw", Some(LDAP_DIR)).await;
    let (key, password, _) = bob.create_key("nightly export").await;
    let (status, _, _) = d.client().login(&key, &password, Some(LDAP_DIR)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // Not named, the built-in directory takes it.
    let (status, body, _) = d.client().login(&key, &password, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["username"], "bob");
}

#[tokio::test]
async fn a_directory_display_name_loses_reversed_or_invisible_text() {
    let slapd = Slapd::start().await;
    let d = Daemon::start(Some(&slapd)).await;
    // A directory's display name cannot be refused: it is stored without them.
    slapd
        .replace_attribute("carol", "cn", "Carol \u{202E}nimdA\u{200B}")
        .await;
    let carol = d.login("carol", "carol-pw", Some(LDAP_DIR)).await;
    assert_eq!(carol.me().await.body["name"], "Carol nimdA");
}
