//! Login events from trusted systems: forward-only last logins that revive keys, future
//! times refused, unknown users reported, replays harmless, tokens and batch limits enforced.

use crate::app::{assert_error, TestApp};
use axum::http::StatusCode;
use chrono::{Duration, Utc};
use serde_json::{json, Value};

/// POST /api/events/logins with an ingestion token; the status and the JSON (or null).
async fn report(app: &TestApp, token: &str, body: Value) -> (StatusCode, Value) {
    let r = app
        .post("/api/events/logins")
        .bearer(token)
        .json(body)
        .send()
        .await;
    (
        r.status,
        serde_json::from_str(&r.body).unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn reported_logins_move_last_login_forward_and_revive_keys() {
    let app = TestApp::spawn().await;
    let bob = app.user("bob").await;
    let bob_id = bob.id();
    let key = app.create_key(&bob, "etl").await;
    let old = app.now() - Duration::days(20);
    app.set_last_login(&bob_id, old).await;
    assert_eq!(app.me_with_key(&key).await.status, StatusCode::UNAUTHORIZED);

    let (_, token) = accesskeyd::events::create_token(&app.app, "portal", &["builtin".into()])
        .await
        .unwrap();
    let token = token.expose().to_string();
    let recent = Utc::now() - Duration::hours(1);
    let batch = json!({"events": [
        {"directoryId": "builtin", "username": "bob", "at": recent, "method": "windows"},
        {"directoryId": "builtin", "username": "nobody", "at": recent},
        {"directoryId": "builtin", "username": "bob", "at": Utc::now() + Duration::hours(1)},
        {"directoryId": "nope", "username": "bob", "at": recent},
        {"directoryId": "builtin", "at": recent}
    ]});
    let (s, b) = report(&app, &token, batch.clone()).await;
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
        app.me_with_key(&key).await.status,
        StatusCode::OK,
        "the key revived"
    );

    // Replayed: nothing changes. An older event never moves the time back.
    let (_, b) = report(&app, &token, batch).await;
    assert_eq!(b["results"][0]["status"], "unchanged");
    let (_, b) = report(
        &app,
        &token,
        json!([{"directoryId": "builtin", "username": "bob", "at": old}]),
    )
    .await;
    assert_eq!(
        b["results"][0]["status"], "unchanged",
        "bare arrays are accepted too"
    );
    let last: chrono::DateTime<Utc> = app.me(&bob).await.json()["lastLoginAt"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (last - recent).num_seconds().abs() < 1,
        "{last} vs {recent}"
    );

    // Tokens, limits, malformed input.
    let (s, _) = report(&app, "akevt_wrong", json!([])).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, _) = report(&app, &bob.token, json!([])).await;
    assert_eq!(
        s,
        StatusCode::UNAUTHORIZED,
        "a session token is no ingestion token"
    );
    let many: Vec<Value> = (0..1001)
        .map(|_| json!({"directoryId": "builtin", "username": "bob", "at": recent}))
        .collect();
    let (s, b) = report(&app, &token, json!({"events": many})).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    assert!(b["statusMessage"]
        .as_str()
        .unwrap()
        .contains("at most 1000"));
    let (s, b) = report(
        &app,
        &token,
        json!({"events": [{"directoryId": "builtin", "username": "bob", "at": "yesterday"}]}),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    let (s, _) = report(&app, &token, json!({"events": []})).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let huge = json!({"events": [], "padding": "x".repeat(2 * 1024 * 1024)});
    let (s, b) = report(&app, &token, huge).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(b["statusMessage"].is_string(), "our error shape: {b}");

    // Revoked tokens stop working; the audit trail says who reported what.
    let admin = app.admin().await;
    let audit = app
        .get("/api/audit?action=login.event")
        .auth(&admin)
        .send()
        .await
        .json();
    assert_eq!(audit["totalResults"], 1);
    assert_eq!(audit["events"][0]["actor"], "events:portal");
    let tokens = accesskeyd::bearer::list(&app.app, accesskeyd::bearer::Kind::Events)
        .await
        .unwrap();
    assert!(tokens[0].last_used_at.is_some(), "last use recorded");
    accesskeyd::bearer::revoke(&app.app, accesskeyd::bearer::Kind::Events, &tokens[0].id)
        .await
        .unwrap();
    let r = app
        .post("/api/events/logins")
        .bearer(&token)
        .json(json!([]))
        .send()
        .await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "revoked");
}

#[tokio::test]
async fn an_unknown_ingestion_token_never_waits_for_the_write_lock() {
    let app = TestApp::spawn().await;
    let (_, token) = accesskeyd::events::create_token(&app.app, "portal", &["builtin".into()])
        .await
        .unwrap();
    // Another writer holds the SQLite write lock (a sync run, a burst of logins). Anyone
    // may send unknown tokens: checking one must not queue behind it for the lock.
    let holder = match &app.db {
        crate::db::TestDatabase::Sqlite(url) => {
            use diesel::connection::SimpleConnection;
            use diesel::Connection;
            let path = url.strip_prefix("sqlite://").unwrap().to_string();
            let mut c = diesel::SqliteConnection::establish(&path).unwrap();
            c.batch_execute("BEGIN IMMEDIATE").unwrap();
            Some(c)
        }
        // PostgreSQL has no database-wide write lock; the answer is the same.
        crate::db::TestDatabase::Postgres(_) => None,
    };
    let started = std::time::Instant::now();
    let (s, b) = report(
        &app,
        "akevt_unknown-token-from-anyone-000000000000000",
        json!([]),
    )
    .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{b}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(2),
        "waited {:?} for the write lock",
        started.elapsed()
    );
    drop(holder);

    // A known token's last use is still recorded.
    let (s, b) = report(
        &app,
        token.expose(),
        json!([{"directoryId": "builtin", "username": "nobody", "at": Utc::now()}]),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let listed = accesskeyd::bearer::list(&app.app, accesskeyd::bearer::Kind::Events)
        .await
        .unwrap();
    assert!(listed[0].last_used_at.is_some());
}
