//! The validity rule: a key works only while its owner has logged in interactively within
//! the window, with the clock moved by the test.

use crate::app::{assert_error, Session, TestApp};
use axum::http::StatusCode;
use chrono::Duration;
use serde_json::{json, Value};

async fn set_override(app: &TestApp, admin: &Session, user_id: &str, minutes: i64) -> Value {
    let a = app
        .post(&format!("/api/users/{user_id}/update"))
        .auth(admin)
        .json(json!({ "accessKeyValidityDuration": minutes }))
        .send()
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    a.json()
}

async fn set_system_days(app: &TestApp, admin: &Session, days: i64) {
    let a = app
        .post("/api/system/configuration/options")
        .auth(admin)
        .json(json!({"configurationOptions": [{
            "path": "Authentication/AccessKey/ValidityWithoutUserLogin", "value": days, "note": "test"
        }]}))
        .send()
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
}

#[tokio::test]
async fn keys_lapse_with_the_system_window_and_revive_on_login() {
    let app = TestApp::spawn().await;
    let bob = app.add_user("bob").await;
    let session = app.login(&bob.name, &bob.password).await;
    let key = app.create_key(&session, "etl").await;
    let key_session = app.key_session(&key).await;
    assert!(app.key_works(&key).await);

    app.advance(Duration::days(14) - Duration::minutes(1));
    assert!(app.key_works(&key).await, "still inside 14 days");
    app.advance(Duration::minutes(2));
    assert!(!app.key_works(&key).await, "14 days passed without a login");
    assert_error(
        &app.me_with_key(&key).await,
        StatusCode::UNAUTHORIZED,
        "not valid now",
    );
    // The session opened with the key dies too, and a new key login is refused.
    assert_eq!(app.me(&key_session).await.status, StatusCode::UNAUTHORIZED);
    let r = app.try_login(&key.id, &key.password, None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(r.json()["statusMessage"]
        .as_str()
        .unwrap()
        .contains("has not logged in"));

    // Bob signs in again: his keys work again.
    app.login(&bob.name, &bob.password).await;
    assert!(app.key_works(&key).await);
}

#[tokio::test]
async fn the_per_user_override_wins_and_a_negative_value_resets_it() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let bob = app.add_user("bob").await;
    let session = app.login(&bob.name, &bob.password).await;
    let bob_id = bob.id.clone();
    let key = app.create_key(&session, "etl").await;

    let user = set_override(&app, &admin, &bob_id, 30).await;
    assert_eq!(user["accessKeyValidityDuration"], 30);
    assert_eq!(
        user["effectiveAccessKeyValidityDuration"],
        json!({"value": 30, "uom": "min"})
    );
    app.advance(Duration::minutes(29));
    assert!(app.key_works(&key).await);
    app.advance(Duration::minutes(2));
    assert!(!app.key_works(&key).await, "30 minutes passed");

    // Reset with a negative value: the system's 14 days apply again.
    let user = set_override(&app, &admin, &bob_id, -1).await;
    assert!(user["accessKeyValidityDuration"].is_null());
    assert_eq!(
        user["effectiveAccessKeyValidityDuration"]["value"],
        14 * 24 * 60
    );
    assert!(app.key_works(&key).await);

    // 0 disables this user's keys (creation still allowed), whatever the login.
    let key_session = app.key_session(&key).await;
    set_override(&app, &admin, &bob_id, 0).await;
    assert!(!app.key_works(&key).await);
    assert_eq!(
        app.me(&key_session).await.status,
        StatusCode::UNAUTHORIZED,
        "key session dies at once"
    );
    let session = app.login(&bob.name, &bob.password).await;
    assert!(
        !app.key_works(&key).await,
        "a login does not undo a 0 override"
    );
    let key2 = app.create_key(&session, "created while disabled").await;
    assert!(!app.key_works(&key2).await);
    assert_error(
        &app.me_with_key(&key).await,
        StatusCode::UNAUTHORIZED,
        "disabled",
    );

    // An override keeps a user's keys alive when the system option is 0.
    set_system_days(&app, &admin, 0).await;
    set_override(&app, &admin, &bob_id, 60).await;
    assert!(app.key_works(&key).await);

    // Bad values change nothing.
    for v in [json!("ten"), json!(1.5), json!(null), json!(i64::MAX)] {
        let a = app
            .post(&format!("/api/users/{bob_id}/update"))
            .auth(&admin)
            .json(json!({ "accessKeyValidityDuration": v }))
            .send()
            .await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{v}: {}", a.body);
    }
    let shown = app
        .get(&format!("/api/users/{bob_id}"))
        .auth(&admin)
        .send()
        .await
        .json();
    assert_eq!(shown["accessKeyValidityDuration"], 60);
    // Ids are compared case-insensitively (the SDK upper-cases them).
    let upper = app
        .get(&format!("/api/users/{}", bob_id.to_uppercase()))
        .auth(&admin)
        .send()
        .await;
    assert_eq!(upper.status, StatusCode::OK);
}

#[tokio::test]
async fn zero_days_system_wide_disables_every_key_until_changed_back() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let bob = app.user("bob").await;
    let carol = app.user("carol").await;
    let k1 = app.create_key(&bob, "a").await;
    let k2 = app.create_key(&carol, "b").await;

    set_system_days(&app, &admin, 0).await;
    assert!(!app.key_works(&k1).await);
    assert!(!app.key_works(&k2).await);
    assert_eq!(
        app.me(&bob).await.json()["effectiveAccessKeyValidityDuration"]["value"],
        0
    );

    set_system_days(&app, &admin, 1).await;
    assert!(app.key_works(&k1).await);
    app.advance(Duration::days(1));
    assert!(!app.key_works(&k1).await, "the new 1-day window applies");

    // A day later the admin's own interactive session has expired (12 h): log in again.
    assert_eq!(
        app.get("/api/system/configuration/options")
            .auth(&admin)
            .send()
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    let admin = app.admin().await;
    let opts = app
        .get("/api/system/configuration/options")
        .auth(&admin)
        .send()
        .await
        .json();
    let opt = &opts["configurationOptions"][0];
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
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    // The admin creates a key for a built-in user who has never logged in.
    let user = app.add_user("svc-report").await;
    let a = app
        .post("/api/accesskeys")
        .auth(&admin)
        .json(json!({"name": "for report", "userId": user.id}))
        .send()
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
    let created = a.json();
    assert_eq!(created["userId"], user.id.as_str());
    let key = crate::app::Key::from_created(&created);
    assert_error(
        &app.me_with_key(&key).await,
        StatusCode::UNAUTHORIZED,
        "never logged in",
    );
    app.login(&user.name, &user.password).await;
    assert!(app.key_works(&key).await);
}
