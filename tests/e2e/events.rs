//! Login events from trusted systems where the LDAP directory takes part: users created
//! from events found upstream, tokens scoped to directories (the rules of ingestion are in
//! the fast tier, tests/api/events.rs).

use crate::harness::daemon::{Daemon, LDAP_DIR};
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
    let (_, token) = accesskeyd::events::create_token(&d.app, "portal", &[LDAP_DIR.into()])
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

#[tokio::test]
async fn a_token_reports_only_for_its_directories_and_never_for_built_in_admins() {
    use crate::harness::daemon::ADMIN;
    let slapd = Slapd::start().await;
    let d = Daemon::start(Some(&slapd)).await;
    let bob = d.login("bob", "bob-pw", Some(LDAP_DIR)).await;
    let admin = d.admin().await;
    accesskeyd::users::create_local(
        &d.app,
        &accesskeyd::audit::Actor::system("test"),
        "carl",
        accesskeyd::secret::Secret::new("carl-password-123"),
        false,
    )
    .await
    .unwrap();
    let carl = d.login("carl", "carl-password-123", Some("builtin")).await;
    let last_login = |c: crate::harness::daemon::Client| async move {
        c.me().await.body["lastLoginAt"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let admin_before = last_login(admin.clone()).await;
    let carl_before = last_login(carl.clone()).await;
    let later = Utc::now() + Duration::minutes(2);
    let events = json!([
        {"directoryId": LDAP_DIR, "username": "bob", "at": later},
        {"directoryId": "builtin", "username": "carl", "at": later},
        {"directoryId": "builtin", "username": ADMIN, "at": later}
    ]);
    let statuses = |b: &Value| -> Vec<(String, String)> {
        b["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["status"].as_str().unwrap().to_string(),
                    r["message"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect()
    };

    // The portal's token is for the corporate directory: built-in users are not its to report.
    let (_, portal) = accesskeyd::events::create_token(&d.app, "portal", &[LDAP_DIR.into()])
        .await
        .unwrap();
    let (s, b) = post(&d, portal.expose(), events.clone()).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let r = statuses(&b);
    assert_eq!(r[0].0, "updated", "{b}");
    assert_eq!(r[1].0, "rejected", "{b}");
    assert!(r[1].1.contains("reports logins of corp only"), "{b}");
    assert_eq!(r[2].0, "rejected", "{b}");

    // A token for the built-in directory moves carl, never a built-in admin.
    let (_, local) = accesskeyd::events::create_token(&d.app, "intranet", &["builtin".into()])
        .await
        .unwrap();
    let (_, b) = post(&d, local.expose(), events.clone()).await;
    let r = statuses(&b);
    assert_eq!(r[0].0, "rejected", "{b}");
    assert_eq!(r[1].0, "updated", "{b}");
    assert_eq!(r[2].0, "rejected", "{b}");
    assert!(r[2].1.contains("built-in admin"), "{b}");
    assert!(b["results"][2]["userId"].is_null(), "{b}");

    // A token made before scopes reports for every directory, built-in admins still not.
    let legacy = "akevt_made-before-tokens-had-scopes-0000000000000";
    d.app
        .store
        .write(move |c| {
            use accesskeyd::store::schema::event_tokens;
            use diesel::prelude::*;
            diesel::insert_into(event_tokens::table)
                .values((
                    event_tokens::id.eq("legacy"),
                    event_tokens::token_hash.eq(accesskeyd::sessions::token_hash(legacy)),
                    event_tokens::label.eq("old portal"),
                    event_tokens::created_at.eq(0_i64),
                ))
                .execute(c)?;
            Ok(())
        })
        .await
        .unwrap();
    let even_later = later + Duration::seconds(1);
    let (_, b) = post(
        &d,
        legacy,
        json!([
            {"directoryId": LDAP_DIR, "username": "bob", "at": even_later},
            {"directoryId": "builtin", "username": "carl", "at": even_later},
            {"directoryId": "builtin", "username": ADMIN, "at": even_later}
        ]),
    )
    .await;
    let r = statuses(&b);
    assert_eq!(r[0].0, "updated", "{b}");
    assert_eq!(r[1].0, "updated", "{b}");
    assert_eq!(r[2].0, "rejected", "{b}");
    let listed = accesskeyd::bearer::list(&d.app, accesskeyd::bearer::Kind::Events)
        .await
        .unwrap();
    let old = listed.iter().find(|t| t.id == "legacy").unwrap();
    assert_eq!(
        old.scope,
        accesskeyd::bearer::Scope::Events {
            scope: accesskeyd::events::TokenScope::Every
        }
    );

    // The admin's last login is the one they made themselves; the others' moved.
    assert_eq!(last_login(admin).await, admin_before);
    assert_ne!(last_login(carl).await, carl_before);
    assert!(bob.me().await.body["lastLoginAt"].is_string());
}
