//! Session duration, the key-creation switch, and service accounts whose keys carry an
//! expiry and whose manager answers for them — as admins and scripts use them.

use crate::app::{assert_error, Key, Session, TestApp};
use axum::http::StatusCode;
use chrono::{Duration, SubsecRound};
use serde_json::{json, Value};

#[tokio::test]
async fn interactive_sessions_end_at_login_plus_the_effective_duration() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let a = app
        .set_option(&admin, "Authentication/DefaultSessionDuration", json!(90))
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);

    let bob_user = app.add_user("bob").await;
    let bob = app.login(&bob_user.name, &bob_user.password).await;
    let me = app.me(&bob).await.json();
    assert_eq!(
        me["effectiveSessionDuration"],
        json!({"value": 90, "uom": "min"})
    );
    assert_eq!(me["sessionDuration"], Value::Null);
    let bob_id = me["id"].as_str().unwrap().to_string();
    app.advance(Duration::minutes(89));
    assert_eq!(
        app.me(&bob).await.status,
        StatusCode::OK,
        "busy or not, still inside 90 min"
    );
    app.advance(Duration::minutes(2));
    assert_eq!(
        app.me(&bob).await.status,
        StatusCode::UNAUTHORIZED,
        "ended at login + 90 min"
    );

    // A per-user override wins, for sessions opened after it.
    let admin = app.admin().await;
    let path = format!("/api/users/{bob_id}/update");
    let update = |admin: &Session, body: Value| app.post(&path).auth(admin).json(body).send();
    let a = update(&admin, json!({"sessionDuration": 30})).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let shown = a.json();
    assert_eq!(shown["sessionDuration"], 30);
    assert_eq!(
        shown["effectiveSessionDuration"],
        json!({"value": 30, "uom": "min"})
    );
    let bob = app.login(&bob_user.name, &bob_user.password).await;
    app.advance(Duration::minutes(29));
    assert_eq!(app.me(&bob).await.status, StatusCode::OK);
    app.advance(Duration::minutes(2));
    assert_eq!(app.me(&bob).await.status, StatusCode::UNAUTHORIZED);

    let admin = app.admin().await;
    assert_error(
        &update(&admin, json!({"sessionDuration": 0})).await,
        StatusCode::BAD_REQUEST,
        "sessionDuration",
    );
    let a = update(&admin, json!({"sessionDuration": -1})).await.json();
    assert_eq!(a["sessionDuration"], Value::Null, "{a}");
    assert_eq!(a["effectiveSessionDuration"]["value"], 90);
    assert_error(
        &app.set_option(&admin, "Authentication/DefaultSessionDuration", json!(0))
            .await,
        StatusCode::BAD_REQUEST,
        "between",
    );
}

#[tokio::test]
async fn with_creation_switched_off_only_admins_create_keys_and_old_keys_work() {
    let app = TestApp::spawn().await;
    let bob = app.user("bob").await;
    let bob_id = bob.id();
    let old_key = app.create_key(&bob, "before the switch").await;

    let admin = app.admin().await;
    let path = "Authentication/AccessKey/Creation/Enabled";
    assert_error(
        &app.set_option(&admin, path, json!("no")).await,
        StatusCode::BAD_REQUEST,
        "true or false",
    );
    let a = app.set_option(&admin, path, json!(false)).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);

    let refused = app
        .post("/api/accesskeys")
        .auth(&bob)
        .json(json!({"name": "after"}))
        .send()
        .await;
    assert_error(&refused, StatusCode::FORBIDDEN, "Creation/Enabled");
    assert_eq!(app.me_with_key(&old_key).await.status, StatusCode::OK);

    // The admin creates one on bob's behalf, and one for themself.
    let made = app
        .post("/api/accesskeys")
        .auth(&admin)
        .json(json!({"name": "for bob", "userId": bob_id}))
        .send()
        .await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.body);
    let for_bob = Key::from_created(&made.json());
    assert_eq!(app.me_with_key(&for_bob).await.json()["username"], "bob");
    let own = app
        .post("/api/accesskeys")
        .auth(&admin)
        .json(json!({"name": "admin's own"}))
        .send()
        .await;
    assert_eq!(own.status, StatusCode::CREATED, "{}", own.body);
    // Key lists say until when each key works.
    let list = app.get("/api/accesskeys").auth(&bob).send().await.json();
    for k in list["keys"].as_array().unwrap() {
        assert!(k["validUntil"].is_string(), "{k}");
        assert_eq!(k["expiry"], Value::Null);
    }
}

#[tokio::test]
async fn service_accounts_use_expiring_keys_and_stop_when_their_manager_goes() {
    let app = TestApp::spawn().await;
    app.user("bob").await;
    let alice = app.user("alice").await;
    let alice_id = app.me(&alice).await.json()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let admin = app.admin().await;
    let new_user = |who: &Session, body: Value| app.post("/api/users").auth(who).json(body).send();

    assert_error(
        &new_user(&admin, json!({"name": "x", "manager": "builtin:bob"})).await,
        StatusCode::BAD_REQUEST,
        "isApplicationServicePrincipal",
    );
    assert_error(
        &new_user(
            &admin,
            json!({"name": "x", "isApplicationServicePrincipal": true, "manager": "builtin:nobody"}),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "manager",
    );
    let carol = app.user("carol").await;
    let refused = new_user(
        &carol,
        json!({"name": "x", "isApplicationServicePrincipal": true, "manager": "builtin:bob"}),
    )
    .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "not an admin");
    let sa = new_user(
        &admin,
        json!({"name": "Nightly ETL", "isApplicationServicePrincipal": true, "manager": "builtin:bob"}),
    )
    .await;
    assert_eq!(sa.status, StatusCode::CREATED, "{}", sa.body);
    let sa = sa.json();
    assert_eq!(sa["isApplicationServicePrincipal"], true);
    assert_eq!(sa["username"], "nightly-etl");
    assert_eq!(sa["manager"]["name"], "bob");
    let sa_id = sa["id"].as_str().unwrap().to_string();

    // No interactive login: it has no password, and none can be given.
    let r = app
        .try_login("nightly-etl", "anything-at-all", Some("builtin"))
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let listed = app
        .get("/api/users?isApplicationServicePrincipal=true")
        .auth(&admin)
        .send()
        .await
        .json();
    assert_eq!(listed["users"].as_array().unwrap().len(), 1, "{listed}");

    // Its keys need an expiry within the maximum lifetime; people's keys take none.
    let new_key = |body: Value| app.post("/api/accesskeys").auth(&admin).json(body).send();
    assert_error(
        &new_key(json!({"name": "etl", "userId": sa_id})).await,
        StatusCode::BAD_REQUEST,
        "expiry: required",
    );
    let too_late = app.now() + Duration::days(400);
    assert_error(
        &new_key(json!({"name": "etl", "userId": sa_id, "expiry": too_late})).await,
        StatusCode::BAD_REQUEST,
        "at most 365 days",
    );
    assert_error(
        &new_key(json!({"name": "etl", "userId": sa_id, "expiry": app.now() - Duration::hours(1)}))
            .await,
        StatusCode::BAD_REQUEST,
        "future",
    );
    assert_error(
        &new_key(json!({"name": "mine", "expiry": app.now() + Duration::days(1)})).await,
        StatusCode::BAD_REQUEST,
        "only service accounts",
    );
    let expiry = (app.now() + Duration::days(10)).trunc_subsecs(0);
    let made = new_key(json!({"name": "etl", "userId": sa_id, "expiry": expiry})).await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.body);
    let made = made.json();
    assert_eq!(made["expiry"], json!(expiry));
    assert_eq!(made["validUntil"], json!(expiry));
    let script = Key::from_created(&made);
    let me = app.me_with_key(&script).await;
    assert_eq!(
        me.status,
        StatusCode::OK,
        "never logged in, works by its expiry: {}",
        me.body
    );
    assert_eq!(me.json()["username"], "nightly-etl");
    // Logging in with the key (what the SDK does) gives a session that works the same way.
    let session = app.key_session(&script).await;
    assert_eq!(
        app.me(&session).await.status,
        StatusCode::OK,
        "key session of a service account"
    );

    // Past the expiry: refused, with Basic and on the key's session.
    app.advance(Duration::days(10) + Duration::seconds(1));
    assert_error(
        &app.me_with_key(&script).await,
        StatusCode::UNAUTHORIZED,
        "expired",
    );
    assert_error(&app.me(&session).await, StatusCode::UNAUTHORIZED, "expired");
    let admin = app.admin().await;
    let fresh = app
        .post("/api/accesskeys")
        .auth(&admin)
        .json(json!({"name": "etl 2", "userId": sa_id, "expiry": app.now() + Duration::days(30)}))
        .send()
        .await;
    assert_eq!(fresh.status, StatusCode::CREATED, "{}", fresh.body);
    let script = Key::from_created(&fresh.json());
    assert_eq!(app.me_with_key(&script).await.status, StatusCode::OK);

    // Bob, the manager, is deleted: the account is suspended and says why.
    let users = app.get("/api/users").auth(&admin).send().await.json();
    let bob_id = users["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["username"] == "bob")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        app.delete(&format!("/api/users/{bob_id}"))
            .auth(&admin)
            .send()
            .await
            .status,
        StatusCode::OK
    );
    assert_error(
        &app.me_with_key(&script).await,
        StatusCode::UNAUTHORIZED,
        "manager was removed",
    );
    let show = || async {
        app.get(&format!("/api/users/{sa_id}"))
            .auth(&admin)
            .send()
            .await
            .json()
    };
    let shown = show().await;
    assert!(shown["suspendedAt"].is_string(), "{shown}");
    assert_eq!(shown["manager"], Value::Null);
    let audit = app
        .get("/api/audit?action=service_account.suspend")
        .auth(&admin)
        .send()
        .await
        .json();
    let detail = audit["events"][0]["detail"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        detail.contains("manager bob") && detail.contains("deleted by an admin"),
        "{audit}"
    );

    // An update refused in part changes nothing at all (one transaction).
    let update = |body: Value| {
        app.post(&format!("/api/users/{sa_id}/update"))
            .auth(&admin)
            .json(body)
            .send()
    };
    let refused = update(json!({"manager": alice_id, "sessionDuration": 0})).await;
    assert_error(&refused, StatusCode::BAD_REQUEST, "sessionDuration");
    let shown = show().await;
    assert!(
        shown["suspendedAt"].is_string() && shown["manager"].is_null(),
        "{shown}"
    );

    // A new manager: the keys work again.
    let a = update(json!({"manager": alice_id})).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let a = a.json();
    assert_eq!(a["manager"]["name"], "alice");
    assert_eq!(a["suspendedAt"], Value::Null);
    assert_eq!(app.me_with_key(&script).await.status, StatusCode::OK);
}
