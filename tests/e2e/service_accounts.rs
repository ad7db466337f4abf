//! A service account whose manager leaves the LDAP directory (the rules of service accounts
//! are in the fast tier, tests/api/service_accounts.rs).

use crate::harness::daemon::{assert_error, Daemon, LDAP_DIR};
use crate::harness::slapd::Slapd;
use chrono::Duration;
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test]
async fn a_service_account_is_suspended_when_the_sync_removes_its_manager() {
    let slapd = Slapd::start().await;
    let d = Daemon::start(Some(&slapd)).await;
    d.login("alice", "alice-pw", Some(LDAP_DIR)).await;
    let admin = d.admin().await;
    let sa = admin
        .post(
            "/api/users",
            json!({"name": "Nightly ETL", "isApplicationServicePrincipal": true, "manager": "corp:alice"}),
        )
        .await;
    assert_eq!(sa.status, StatusCode::CREATED, "{}", sa.body);
    assert_eq!(sa.body["manager"]["name"], "alice");
    let sa_id = sa.body["id"].as_str().unwrap().to_string();
    let made = admin
        .post(
            "/api/accesskeys",
            json!({"name": "etl", "userId": sa_id, "expiry": d.app.clock.now() + Duration::days(30)}),
        )
        .await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.body);
    let script = d.client().with_basic(
        made.body["keyId"].as_str().unwrap(),
        made.body["password"].as_str().unwrap(),
    );
    assert_eq!(script.me().await.status, StatusCode::OK);

    // Alice leaves the directory: the sync removes her and suspends the account.
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
}
