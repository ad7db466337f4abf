//! The validity rule end to end: a key works only while its owner has logged in
//! interactively within the window, with the clock moved by the test.

use crate::harness::daemon::{assert_error, Client, Daemon, LDAP_DIR};
use crate::harness::slapd::Slapd;
use chrono::Duration;
use reqwest::StatusCode;
use serde_json::json;

async fn works(d: &Daemon, key: &str, password: &str) -> bool {
    let status = d.client().with_basic(key, password).me().await.status;
    assert!(
        status == StatusCode::OK || status == StatusCode::UNAUTHORIZED,
        "unexpected {status}"
    );
    status == StatusCode::OK
}

async fn set_override(admin: &Client, user_id: &str, minutes: i64) -> serde_json::Value {
    let a = admin
        .post(
            &format!("/api/users/{user_id}/update"),
            json!({ "accessKeyValidityDuration": minutes }),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    a.body
}

async fn set_system_days(admin: &Client, days: i64) {
    let a = admin
        .post(
            "/api/system/configuration/options",
            json!({"configurationOptions": [{
                "path": "Authentication/AccessKey/ValidityWithoutUserLogin", "value": days, "note": "test"
            }]}),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
}

#[tokio::test]
async fn keys_lapse_with_the_system_window_and_revive_on_login() {
    let slapd = Slapd::start().await;
    let d = Daemon::start(Some(&slapd)).await;
    let bob = d.login("bob", "bob-pw", Some(LDAP_DIR)).await;
    let (key, pw, _) = bob.create_key("etl").await;
    let key_session = d.login(&key, &pw, None).await;
    assert!(works(&d, &key, &pw).await);

    d.advance(Duration::days(14) - Duration::minutes(1));
    assert!(works(&d, &key, &pw).await, "still inside 14 days");
    d.advance(Duration::minutes(2));
    assert!(
        !works(&d, &key, &pw).await,
        "14 days passed without a login"
    );
    let a = d.client().with_basic(&key, &pw).me().await;
    assert_error(&a, StatusCode::UNAUTHORIZED, "not valid now");
    // The session opened with the key dies too, and a new key login is refused.
    assert_eq!(key_session.me().await.status, StatusCode::UNAUTHORIZED);
    let (status, body, _) = d.client().login(&key, &pw, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(body["statusMessage"]
        .as_str()
        .unwrap()
        .contains("has not logged in"));

    // Bob signs in again: his keys work again.
    d.login("bob", "bob-pw", Some(LDAP_DIR)).await;
    assert!(works(&d, &key, &pw).await);
}

#[tokio::test]
async fn the_per_user_override_wins_and_a_negative_value_resets_it() {
    let slapd = Slapd::start().await;
    let d = Daemon::start(Some(&slapd)).await;
    let admin = d.admin().await;
    let bob = d.login("bob", "bob-pw", Some(LDAP_DIR)).await;
    let bob_id = bob.me().await.body["id"].as_str().unwrap().to_string();
    let (key, pw, _) = bob.create_key("etl").await;

    let user = set_override(&admin, &bob_id, 30).await;
    assert_eq!(user["accessKeyValidityDuration"], 30);
    assert_eq!(
        user["effectiveAccessKeyValidityDuration"],
        json!({"value": 30, "uom": "min"})
    );
    d.advance(Duration::minutes(29));
    assert!(works(&d, &key, &pw).await);
    d.advance(Duration::minutes(2));
    assert!(!works(&d, &key, &pw).await, "30 minutes passed");

    // Reset with a negative value: the system's 14 days apply again.
    let user = set_override(&admin, &bob_id, -1).await;
    assert!(user["accessKeyValidityDuration"].is_null());
    assert_eq!(
        user["effectiveAccessKeyValidityDuration"]["value"],
        14 * 24 * 60
    );
    assert!(works(&d, &key, &pw).await);

    // 0 disables this user's keys (creation still allowed), whatever the login.
    let key_session = d.login(&key, &pw, None).await;
    set_override(&admin, &bob_id, 0).await;
    assert!(!works(&d, &key, &pw).await);
    assert_eq!(
        key_session.me().await.status,
        StatusCode::UNAUTHORIZED,
        "key session dies at once"
    );
    let bob = d.login("bob", "bob-pw", Some(LDAP_DIR)).await;
    assert!(
        !works(&d, &key, &pw).await,
        "a login does not undo a 0 override"
    );
    let (key2, pw2, _) = bob.create_key("created while disabled").await;
    assert!(!works(&d, &key2, &pw2).await);
    let a = d.client().with_basic(&key, &pw).me().await;
    assert_error(&a, StatusCode::UNAUTHORIZED, "disabled");

    // An override keeps a user's keys alive when the system option is 0.
    set_system_days(&admin, 0).await;
    set_override(&admin, &bob_id, 60).await;
    assert!(works(&d, &key, &pw).await);

    // Bad values change nothing.
    for v in [json!("ten"), json!(1.5), json!(null), json!(i64::MAX)] {
        let a = admin
            .post(
                &format!("/api/users/{bob_id}/update"),
                json!({ "accessKeyValidityDuration": v }),
            )
            .await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{v}: {}", a.body);
    }
    assert_eq!(
        admin.get(&format!("/api/users/{bob_id}")).await.body["accessKeyValidityDuration"],
        60
    );
    // Ids are compared case-insensitively (the SDK upper-cases them).
    let upper = admin
        .get(&format!("/api/users/{}", bob_id.to_uppercase()))
        .await;
    assert_eq!(upper.status, StatusCode::OK);
}

#[tokio::test]
async fn zero_days_system_wide_disables_every_key_until_changed_back() {
    let slapd = Slapd::start().await;
    let d = Daemon::start(Some(&slapd)).await;
    let admin = d.admin().await;
    let bob = d.login("bob", "bob-pw", Some(LDAP_DIR)).await;
    let carol = d.login("carol", "carol-pw", Some(LDAP_DIR)).await;
    let (k1, p1, _) = bob.create_key("a").await;
    let (k2, p2, _) = carol.create_key("b").await;

    set_system_days(&admin, 0).await;
    assert!(!works(&d, &k1, &p1).await);
    assert!(!works(&d, &k2, &p2).await);
    assert_eq!(
        bob.me().await.body["effectiveAccessKeyValidityDuration"]["value"],
        0
    );

    set_system_days(&admin, 1).await;
    assert!(works(&d, &k1, &p1).await);
    d.advance(Duration::days(1));
    assert!(!works(&d, &k1, &p1).await, "the new 1-day window applies");

    // A day later the admin's own interactive session has expired (12 h): log in again.
    assert_eq!(
        admin.get("/api/system/configuration/options").await.status,
        StatusCode::UNAUTHORIZED
    );
    let admin = d.admin().await;
    let opts = admin.get("/api/system/configuration/options").await;
    let opt = &opts.body["configurationOptions"][0];
    assert_eq!(
        opt["path"],
        "Authentication/AccessKey/ValidityWithoutUserLogin"
    );
    assert_eq!(opt["value"], 1);
    assert_eq!(opt["defaultValue"], 14);
    assert_eq!(opt["units"], "days");
}

#[tokio::test]
async fn a_user_who_never_logged_in_has_no_working_keys() {
    let d = Daemon::start(None).await;
    let admin = d.admin().await;
    // The admin creates a key for a built-in user who has never logged in.
    let pw = "carefully chosen";
    let user = accesskeyd::users::create_local(
        &d.app,
        &accesskeyd::audit::Actor::system("test"),
        "svc-report",
        accesskeyd::secret::Secret::new(pw),
        false,
    )
    .await
    .unwrap();
    let a = admin
        .post(
            "/api/accesskeys",
            json!({"name": "for report", "userId": user.id}),
        )
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
    assert_eq!(a.body["userId"], user.id.as_str());
    let (key, kpw) = (
        a.body["keyId"].as_str().unwrap(),
        a.body["password"].as_str().unwrap(),
    );
    let r = d.client().with_basic(key, kpw).me().await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "never logged in");
    d.login("svc-report", pw, Some("builtin")).await;
    assert!(works(&d, key, kpw).await);
}
