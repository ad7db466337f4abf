//! Login events from trusted systems: forward-only last logins that revive keys, future
//! times refused, unknown users reported, replays harmless, tokens and batch limits enforced.

use crate::harness::daemon::{assert_error, Daemon, LDAP_DIR};
use crate::harness::slapd::Slapd;
use chrono::{Duration, Utc};
use reqwest::StatusCode;
use serde_json::{json, Value};

async fn post(d: &Daemon, token: &str, body: Value) -> (StatusCode, Value) {
    let r = reqwest::Client::new()
        .post(format!("{}/api/events/logins", d.url))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn reported_logins_move_last_login_forward_and_revive_keys() {
    let slapd = Slapd::start().await;
    let d = Daemon::start(Some(&slapd)).await;
    let bob = d.login("bob", "bob-pw", Some(LDAP_DIR)).await;
    let bob_id = bob.me().await.body["id"].as_str().unwrap().to_string();
    let (key, pw, _) = bob.create_key("etl").await;
    let old = d.app.clock.now() - Duration::days(20);
    d.set_last_login(&bob_id, old).await;
    assert_eq!(
        d.client().with_basic(&key, &pw).me().await.status,
        StatusCode::UNAUTHORIZED
    );

    let (_, token) = accesskeyd::events::create_token(&d.app, "portal")
        .await
        .unwrap();
    let token = token.expose().to_string();
    let recent = Utc::now() - Duration::hours(1);
    let batch = json!({"events": [
        {"directoryId": LDAP_DIR, "username": "bob", "at": recent, "method": "windows"},
        {"directoryId": LDAP_DIR, "username": "nobody", "at": recent},
        {"directoryId": LDAP_DIR, "username": "bob", "at": Utc::now() + Duration::hours(1)},
        {"directoryId": "nope", "username": "bob", "at": recent},
        {"directoryId": LDAP_DIR, "at": recent}
    ]});
    let (s, b) = post(&d, &token, batch.clone()).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let statuses: Vec<&str> = b["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses,
        [
            "updated",
            "unknown_user",
            "rejected",
            "rejected",
            "rejected"
        ]
    );
    assert!(b["results"][2]["message"]
        .as_str()
        .unwrap()
        .contains("future"));
    assert_eq!(b["updated"], 1);
    assert_eq!(
        d.client().with_basic(&key, &pw).me().await.status,
        StatusCode::OK,
        "the key revived"
    );

    // Replayed: nothing changes. An older event never moves the time back.
    let (_, b) = post(&d, &token, batch).await;
    assert_eq!(b["results"][0]["status"], "unchanged");
    let (_, b) = post(
        &d,
        &token,
        json!([{"directoryId": LDAP_DIR, "username": "bob", "at": old}]),
    )
    .await;
    assert_eq!(
        b["results"][0]["status"], "unchanged",
        "bare arrays are accepted too"
    );
    let last: chrono::DateTime<Utc> = bob.me().await.body["lastLoginAt"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (last - recent).num_seconds().abs() < 1,
        "{last} vs {recent}"
    );

    // Tokens, limits, malformed input.
    let (s, _) = post(&d, "akevt_wrong", json!([])).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, _) = post(&d, &bob.token(), json!([])).await;
    assert_eq!(
        s,
        StatusCode::UNAUTHORIZED,
        "a session token is no ingestion token"
    );
    let many: Vec<Value> = (0..1001)
        .map(|_| json!({"directoryId": LDAP_DIR, "username": "bob", "at": recent}))
        .collect();
    let (s, b) = post(&d, &token, json!({"events": many})).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    assert!(b["statusMessage"]
        .as_str()
        .unwrap()
        .contains("at most 1000"));
    let (s, b) = post(
        &d,
        &token,
        json!({"events": [{"directoryId": LDAP_DIR, "username": "bob", "at": "yesterday"}]}),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    let (s, _) = post(&d, &token, json!({"events": []})).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let huge = json!({"events": [], "padding": "x".repeat(2 * 1024 * 1024)});
    let (s, b) = post(&d, &token, huge).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(b["statusMessage"].is_string(), "our error shape: {b}");

    // Revoked tokens stop working; the audit trail says who reported what.
    let audit = d.admin().await.get("/api/audit?action=login.event").await;
    assert_eq!(audit.body["totalResults"], 1);
    assert_eq!(audit.body["events"][0]["actor"], "events:portal");
    let tokens = accesskeyd::events::list_tokens(&d.app).await.unwrap();
    assert!(tokens[0].3.is_some(), "last use recorded");
    accesskeyd::events::revoke_token(&d.app, &tokens[0].0)
        .await
        .unwrap();
    let r = reqwest::Client::new()
        .post(format!("{}/api/events/logins", d.url))
        .bearer_auth(&token)
        .json(&json!([]))
        .send()
        .await
        .unwrap();
    let a = crate::harness::daemon::Answer {
        status: r.status(),
        headers: r.headers().clone(),
        body: r.json().await.unwrap(),
    };
    assert_error(&a, StatusCode::UNAUTHORIZED, "revoked");
}

#[tokio::test]
async fn a_directory_that_allows_it_gets_users_created_from_events() {
    let slapd = Slapd::start().await;
    let d = Daemon::start_with(
        Some(&slapd),
        "",
        &[(
            "ACCESSKEYD_DIRECTORIES__1__CREATE_USERS_FROM_EVENTS",
            "true",
        )],
    )
    .await;
    let (_, token) = accesskeyd::events::create_token(&d.app, "portal")
        .await
        .unwrap();
    let token = token.expose().to_string();
    let at = Utc::now() - Duration::hours(2);
    let (s, b) = post(
        &d,
        &token,
        json!([
            {"directoryId": LDAP_DIR, "username": "carol", "at": at},
            {"directoryId": LDAP_DIR, "username": "nobody", "at": at},
            {"directoryId": LDAP_DIR, "externalId": "0000-unknown", "at": at}
        ]),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["created"], 1, "{b}");
    assert_eq!(b["results"][0]["status"], "created", "{b}");
    assert_eq!(b["results"][1]["status"], "unknown_user");
    assert_eq!(b["results"][1]["message"], "not found in the directory");
    assert_eq!(b["results"][2]["status"], "unknown_user");
    assert!(
        b["results"][2]["message"]
            .as_str()
            .unwrap()
            .contains("username"),
        "{b}"
    );
    let carol_id = b["results"][0]["userId"].as_str().unwrap().to_string();

    // The record is the one her first password login finds (same stable id), and it
    // carries the reported time, not the time of creation.
    let admin = d.admin().await;
    let user = admin.get(&format!("/api/users/{carol_id}")).await.body;
    assert_eq!(user["username"], "carol");
    let last = chrono::DateTime::parse_from_rfc3339(user["lastLoginAt"].as_str().unwrap()).unwrap();
    assert!(
        (last.with_timezone(&Utc) - at).num_seconds().abs() <= 1,
        "{last} vs {at}"
    );
    let carol = d.login("carol", "carol-pw", Some(LDAP_DIR)).await;
    assert_eq!(carol.me().await.body["id"], carol_id.as_str());

    // Replaying the batch creates nobody new.
    let (_, b) = post(
        &d,
        &token,
        json!([{"directoryId": LDAP_DIR, "username": "carol", "at": at}]),
    )
    .await;
    assert_eq!(b["results"][0]["status"], "unchanged", "{b}");
    // Another spelling of her name finds the same person upstream: updated, not created.
    let later = Utc::now();
    let (_, b) = post(
        &d,
        &token,
        json!([{"directoryId": LDAP_DIR, "username": "Carol", "at": later}]),
    )
    .await;
    assert_eq!(b["results"][0]["status"], "updated", "{b}");
    assert_eq!(b["results"][0]["userId"], carol_id.as_str());
    assert_eq!(b["created"], 0);

    // The directory down: nothing created, the event reported unknown with the reason.
    let mut slapd = slapd;
    slapd.stop();
    let (s, b) = post(
        &d,
        &token,
        json!([{"directoryId": LDAP_DIR, "username": "alice", "at": at}]),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["results"][0]["status"], "unknown_user", "{b}");
    assert!(
        b["results"][0]["message"]
            .as_str()
            .unwrap()
            .contains("could not be asked"),
        "{b}"
    );
}
