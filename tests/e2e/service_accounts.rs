//! Session duration, the key-creation switch, and service accounts whose keys carry an
//! expiry and whose manager answers for them — as admins and scripts use them.

use crate::harness::daemon::{assert_error, Client, Daemon, LDAP_DIR};
use crate::harness::slapd::Slapd;
use chrono::{Duration, SubsecRound, Utc};
use reqwest::StatusCode;
use serde_json::{json, Value};

async fn set_option(admin: &Client, path: &str, value: Value) -> crate::harness::daemon::Answer {
    admin
        .post(
            "/api/system/configuration/options",
            json!({"configurationOptions": [{"path": path, "value": value}]}),
        )
        .await
}

#[tokio::test]
async fn interactive_sessions_end_at_login_plus_the_effective_duration() {
    let slapd = Slapd::start().await;
    let d = Daemon::start(Some(&slapd)).await;
    let admin = d.admin().await;
    let a = set_option(&admin, "Authentication/DefaultSessionDuration", json!(90)).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);

    let bob = d.login("bob", "bob-pw", Some(LDAP_DIR)).await;
    let me = bob.me().await.body;
    assert_eq!(
        me["effectiveSessionDuration"],
        json!({"value": 90, "uom": "min"})
    );
    assert_eq!(me["sessionDuration"], Value::Null);
    let bob_id = me["id"].as_str().unwrap().to_string();
    d.advance(Duration::minutes(89));
    assert_eq!(
        bob.me().await.status,
        StatusCode::OK,
        "busy or not, still inside 90 min"
    );
    d.advance(Duration::minutes(2));
    assert_eq!(
        bob.me().await.status,
        StatusCode::UNAUTHORIZED,
        "ended at login + 90 min"
    );

    // A per-user override wins, for sessions opened after it.
    let admin = d.admin().await;
    let path = format!("/api/users/{bob_id}/update");
    let a = admin.post(&path, json!({"sessionDuration": 30})).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(a.body["sessionDuration"], 30);
    assert_eq!(
        a.body["effectiveSessionDuration"],
        json!({"value": 30, "uom": "min"})
    );
    let bob = d.login("bob", "bob-pw", Some(LDAP_DIR)).await;
    d.advance(Duration::minutes(29));
    assert_eq!(bob.me().await.status, StatusCode::OK);
    d.advance(Duration::minutes(2));
    assert_eq!(bob.me().await.status, StatusCode::UNAUTHORIZED);

    let admin = d.admin().await;
    assert_error(
        &admin.post(&path, json!({"sessionDuration": 0})).await,
        StatusCode::BAD_REQUEST,
        "sessionDuration",
    );
    let a = admin.post(&path, json!({"sessionDuration": -1})).await;
    assert_eq!(a.body["sessionDuration"], Value::Null, "{}", a.body);
    assert_eq!(a.body["effectiveSessionDuration"]["value"], 90);
    assert_error(
        &set_option(&admin, "Authentication/DefaultSessionDuration", json!(0)).await,
        StatusCode::BAD_REQUEST,
        "between",
    );
}

#[tokio::test]
async fn with_creation_switched_off_only_admins_create_keys_and_old_keys_work() {
    let slapd = Slapd::start().await;
    let d = Daemon::start(Some(&slapd)).await;
    let bob = d.login("bob", "bob-pw", Some(LDAP_DIR)).await;
    let bob_id = bob.me().await.body["id"].as_str().unwrap().to_string();
    let (old_key, old_pw, _) = bob.create_key("before the switch").await;

    let admin = d.admin().await;
    let path = "Authentication/AccessKey/Creation/Enabled";
    assert_error(
        &set_option(&admin, path, json!("no")).await,
        StatusCode::BAD_REQUEST,
        "true or false",
    );
    let a = set_option(&admin, path, json!(false)).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);

    let refused = bob.post("/api/accesskeys", json!({"name": "after"})).await;
    assert_error(&refused, StatusCode::FORBIDDEN, "Creation/Enabled");
    assert_eq!(
        d.client().with_basic(&old_key, &old_pw).me().await.status,
        StatusCode::OK
    );

    // The admin creates one on bob's behalf, and one for themself.
    let made = admin
        .post(
            "/api/accesskeys",
            json!({"name": "for bob", "userId": bob_id}),
        )
        .await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.body);
    let (k, p) = (
        made.body["keyId"].as_str().unwrap(),
        made.body["password"].as_str().unwrap(),
    );
    assert_eq!(
        d.client().with_basic(k, p).me().await.body["username"],
        "bob"
    );
    let own = admin
        .post("/api/accesskeys", json!({"name": "admin's own"}))
        .await;
    assert_eq!(own.status, StatusCode::CREATED, "{}", own.body);
    // Key lists say until when each key works.
    let list = bob.get("/api/accesskeys").await.body;
    for k in list["keys"].as_array().unwrap() {
        assert!(k["validUntil"].is_string(), "{k}");
        assert_eq!(k["expiry"], Value::Null);
    }
}

#[tokio::test]
async fn service_accounts_use_expiring_keys_and_stop_when_their_manager_goes() {
    let slapd = Slapd::start().await;
    let d = Daemon::start(Some(&slapd)).await;
    d.login("bob", "bob-pw", Some(LDAP_DIR)).await;
    let alice = d.login("alice", "alice-pw", Some(LDAP_DIR)).await;
    let alice_id = alice.me().await.body["id"].as_str().unwrap().to_string();
    let admin = d.admin().await;

    assert_error(
        &admin
            .post("/api/users", json!({"name": "x", "manager": "corp:bob"}))
            .await,
        StatusCode::BAD_REQUEST,
        "isApplicationServicePrincipal",
    );
    assert_error(
        &admin
            .post("/api/users", json!({"name": "x", "isApplicationServicePrincipal": true, "manager": "corp:nobody"}))
            .await,
        StatusCode::BAD_REQUEST,
        "manager",
    );
    let carol = d.login("carol", "carol-pw", Some(LDAP_DIR)).await;
    let refused = carol
        .post(
            "/api/users",
            json!({"name": "x", "isApplicationServicePrincipal": true, "manager": "corp:bob"}),
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "not an admin");
    let sa = admin
        .post(
            "/api/users",
            json!({"name": "Nightly ETL", "isApplicationServicePrincipal": true, "manager": "corp:bob"}),
        )
        .await;
    assert_eq!(sa.status, StatusCode::CREATED, "{}", sa.body);
    assert_eq!(sa.body["isApplicationServicePrincipal"], true);
    assert_eq!(sa.body["username"], "nightly-etl");
    assert_eq!(sa.body["manager"]["name"], "bob");
    let sa_id = sa.body["id"].as_str().unwrap().to_string();

    // No interactive login: it has no password, and none can be given.
    let (s, _, _) = d
        .client()
        .login("nightly-etl", "anything-at-all", Some("builtin"))
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let listed = admin
        .get("/api/users?isApplicationServicePrincipal=true")
        .await
        .body;
    assert_eq!(listed["users"].as_array().unwrap().len(), 1, "{listed}");

    // Its keys need an expiry within the maximum lifetime; people's keys take none.
    assert_error(
        &admin
            .post("/api/accesskeys", json!({"name": "etl", "userId": sa_id}))
            .await,
        StatusCode::BAD_REQUEST,
        "expiry: required",
    );
    let too_late = d.app.clock.now() + Duration::days(400);
    assert_error(
        &admin
            .post(
                "/api/accesskeys",
                json!({"name": "etl", "userId": sa_id, "expiry": too_late}),
            )
            .await,
        StatusCode::BAD_REQUEST,
        "at most 365 days",
    );
    assert_error(
        &admin.post("/api/accesskeys", json!({"name": "etl", "userId": sa_id, "expiry": d.app.clock.now() - Duration::hours(1)})).await,
        StatusCode::BAD_REQUEST,
        "future",
    );
    assert_error(
        &admin
            .post(
                "/api/accesskeys",
                json!({"name": "mine", "expiry": d.app.clock.now() + Duration::days(1)}),
            )
            .await,
        StatusCode::BAD_REQUEST,
        "only service accounts",
    );
    let expiry = (d.app.clock.now() + Duration::days(10)).trunc_subsecs(0);
    let made = admin
        .post(
            "/api/accesskeys",
            json!({"name": "etl", "userId": sa_id, "expiry": expiry}),
        )
        .await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.body);
    assert_eq!(made.body["expiry"], json!(expiry));
    assert_eq!(made.body["validUntil"], json!(expiry));
    let (k, p) = (
        made.body["keyId"].as_str().unwrap().to_string(),
        made.body["password"].as_str().unwrap().to_string(),
    );
    let script = d.client().with_basic(&k, &p);
    let me = script.me().await;
    assert_eq!(
        me.status,
        StatusCode::OK,
        "never logged in, works by its expiry: {}",
        me.body
    );
    assert_eq!(me.body["username"], "nightly-etl");
    // Logging in with the key (what the SDK does) gives a session that works the same way.
    let (s, body, token) = d.client().login(&k, &p, None).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let session = d.client().with_token(&token.unwrap());
    assert_eq!(
        session.me().await.status,
        StatusCode::OK,
        "key session of a service account"
    );

    // Past the expiry: refused, with Basic and on the key's session.
    d.advance(Duration::days(10) + Duration::seconds(1));
    assert_error(&script.me().await, StatusCode::UNAUTHORIZED, "expired");
    assert_error(&session.me().await, StatusCode::UNAUTHORIZED, "expired");
    let admin = d.admin().await;
    let fresh = admin
        .post(
            "/api/accesskeys",
            json!({"name": "etl 2", "userId": sa_id, "expiry": d.app.clock.now() + Duration::days(30)}),
        )
        .await;
    assert_eq!(fresh.status, StatusCode::CREATED, "{}", fresh.body);
    let script = d.client().with_basic(
        fresh.body["keyId"].as_str().unwrap(),
        fresh.body["password"].as_str().unwrap(),
    );
    assert_eq!(script.me().await.status, StatusCode::OK);

    // Bob, the manager, is deleted: the account is suspended and says why.
    let bob_id = admin.get("/api/users").await.body["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["username"] == "bob")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        admin.delete(&format!("/api/users/{bob_id}")).await.status,
        StatusCode::OK
    );
    assert_error(
        &script.me().await,
        StatusCode::UNAUTHORIZED,
        "manager was removed",
    );
    let shown = admin.get(&format!("/api/users/{sa_id}")).await.body;
    assert!(shown["suspendedAt"].is_string(), "{shown}");
    assert_eq!(shown["manager"], Value::Null);
    let audit = admin
        .get("/api/audit?action=service_account.suspend")
        .await
        .body;
    let detail = audit["events"][0]["detail"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        detail.contains("manager bob") && detail.contains("deleted by an admin"),
        "{audit}"
    );

    // An update refused in part changes nothing at all (one transaction).
    let refused = admin
        .post(
            &format!("/api/users/{sa_id}/update"),
            json!({"manager": alice_id, "sessionDuration": 0}),
        )
        .await;
    assert_error(&refused, StatusCode::BAD_REQUEST, "sessionDuration");
    let shown = admin.get(&format!("/api/users/{sa_id}")).await.body;
    assert!(
        shown["suspendedAt"].is_string() && shown["manager"].is_null(),
        "{shown}"
    );

    // A new manager: the keys work again.
    let a = admin
        .post(
            &format!("/api/users/{sa_id}/update"),
            json!({"manager": alice_id}),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(a.body["manager"]["name"], "alice");
    assert_eq!(a.body["suspendedAt"], Value::Null);
    assert_eq!(script.me().await.status, StatusCode::OK);

    // Alice leaves the directory: the sync removes her and suspends the account again.
    slapd.delete_user("alice").await;
    let run = admin
        .post(&format!("/api/directories/{LDAP_DIR}/sync"), json!({}))
        .await;
    let run = if run.body["status"] == "blocked" {
        let id = run.body["id"].as_i64().unwrap();
        admin
            .post(
                &format!("/api/directories/{LDAP_DIR}/runs/{id}/approve"),
                json!({}),
            )
            .await
    } else {
        run
    };
    assert_eq!(run.body["status"], "ok", "{}", run.body);
    assert_error(
        &script.me().await,
        StatusCode::UNAUTHORIZED,
        "manager was removed",
    );
    let shown = admin.get(&format!("/api/users/{sa_id}")).await.body;
    assert!(shown["suspendedAt"].is_string(), "{shown}");
    let _ = Utc::now();
}
