//! Admins and LDAP accounts replaced or renamed upstream (the admin rules are in the fast
//! tier, tests/api/admin.rs).

use crate::harness::daemon::{Daemon, LDAP_DIR};
use crate::harness::slapd::Slapd;
use reqwest::StatusCode;

#[tokio::test]
async fn after_an_admin_deletes_an_ldap_user_a_new_upstream_account_of_that_name_starts_with_nothing(
) {
    let slapd = Slapd::start().await;
    let d = Daemon::start(Some(&slapd)).await;
    let admin = d.admin().await;
    let bob = d.login("bob", "bob-pw", Some(LDAP_DIR)).await;
    let bob_id = bob.me().await.body["id"].as_str().unwrap().to_string();
    let (key, pw, _) = bob.create_key("etl").await;
    let del = admin.delete(&format!("/api/users/{bob_id}")).await;
    assert_eq!(del.status, StatusCode::OK, "{}", del.body);

    // Upstream, bob leaves and a new bob joins (new entryUUID).
    slapd.delete_user("bob").await;
    slapd.add_user("bob", "new-bob-pw").await;
    let new_bob = d.login("bob", "new-bob-pw", Some(LDAP_DIR)).await;
    let me = new_bob.me().await;
    assert_ne!(me.body["id"], bob_id.as_str(), "a new id, never reused");
    assert_eq!(
        new_bob.get("/api/accesskeys").await.body["keys"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
    assert_eq!(
        d.client().with_basic(&key, &pw).me().await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn a_recreated_upstream_account_does_not_inherit_the_old_record() {
    let slapd = Slapd::start().await;
    let d = Daemon::start(Some(&slapd)).await;
    let bob = d.login("bob", "bob-pw", Some(LDAP_DIR)).await;
    let old_id = bob.me().await.body["id"].as_str().unwrap().to_string();
    let (key, pw, _) = bob.create_key("etl").await;
    // Nobody deleted bob here; upstream simply replaced the account.
    slapd.delete_user("bob").await;
    slapd.add_user("bob", "new-bob-pw").await;
    let new_bob = d.login("bob", "new-bob-pw", Some(LDAP_DIR)).await;
    assert_ne!(new_bob.me().await.body["id"], old_id.as_str());
    assert_eq!(
        new_bob.get("/api/accesskeys").await.body["keys"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
    // The old record is disabled, so its key stops working at once.
    assert_eq!(
        d.client().with_basic(&key, &pw).me().await.status,
        StatusCode::UNAUTHORIZED
    );
    let old = d.admin().await.get(&format!("/api/users/{old_id}")).await;
    assert_eq!(old.body["isEnabled"], false);
}

#[tokio::test]
async fn a_renamed_person_keeps_their_record_and_the_new_holder_of_the_name_gets_none() {
    let slapd = Slapd::start().await;
    let d = Daemon::start(Some(&slapd)).await;
    let bob = d.login("bob", "bob-pw", Some(LDAP_DIR)).await;
    let old_id = bob.me().await.body["id"].as_str().unwrap().to_string();
    let (key, pw, _) = bob.create_key("etl").await;

    // Upstream: bob becomes robert, and a different person is hired as bob.
    slapd.rename_user("bob", "robert").await;
    slapd.add_user("bob", "second-bob-pw").await;
    let second = d.login("bob", "second-bob-pw", Some(LDAP_DIR)).await;
    assert_ne!(second.me().await.body["id"], old_id.as_str());
    assert_eq!(
        second.get("/api/accesskeys").await.body["keys"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
    assert_eq!(
        d.client().with_basic(&key, &pw).me().await.status,
        StatusCode::UNAUTHORIZED
    );

    // Robert signs in: same record (stable id), new name, enabled again, his key works.
    let robert = d.login("robert", "bob-pw", Some(LDAP_DIR)).await;
    let me = robert.me().await;
    assert_eq!(me.status, StatusCode::OK, "{}", me.body);
    assert_eq!(me.body["id"], old_id.as_str());
    assert_eq!(me.body["username"], "robert");
    assert_eq!(me.body["isEnabled"], true);
    assert_eq!(
        d.client().with_basic(&key, &pw).me().await.body["username"],
        "robert"
    );
    let audit = d
        .admin()
        .await
        .get("/api/audit?action=user.superseded")
        .await;
    assert_eq!(audit.body["totalResults"], 1, "{}", audit.body);
}
