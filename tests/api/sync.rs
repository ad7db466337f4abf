//! Directory sync requests that make no sense are refused before a directory is read.

use crate::app::{assert_error, TestApp};
use axum::http::StatusCode;
use serde_json::json;

/// An LDAP directory that is never read here (nothing answers at its address).
const CORP: &str = r#"
[[directories]]
id = "corp"
kind = "ldap"
name = "Corp LDAP"
url = "ldap://127.0.0.1:1"
user_base = "ou=people,dc=example,dc=org"
timeout_seconds = 2
"#;

#[tokio::test]
async fn sync_requests_for_no_ldap_directory_with_a_bad_body_or_by_a_non_admin_are_refused() {
    let app = TestApp::spawn_with(CORP).await;
    let admin = app.admin().await;
    let sync = |dir: &str| app.post(&format!("/api/directories/{dir}/sync"));

    // Not an LDAP directory, unknown directory, bad body, not an admin.
    let a = sync("builtin").auth(&admin).json(json!({})).send().await;
    assert_error(&a, StatusCode::BAD_REQUEST, "not an LDAP directory");
    let a = sync("nope").auth(&admin).json(json!({})).send().await;
    assert_error(&a, StatusCode::NOT_FOUND, "no directory");
    let a = sync("corp")
        .auth(&admin)
        .json(json!({"dryrun": true}))
        .send()
        .await;
    assert_error(&a, StatusCode::BAD_REQUEST, "dryrun");
    let bob = app.user("bob").await;
    let a = sync("corp").auth(&bob).json(json!({})).send().await;
    assert_error(&a, StatusCode::FORBIDDEN, "admin");
    // Nothing was run.
    let runs = app
        .get("/api/directories/corp/runs")
        .auth(&admin)
        .send()
        .await
        .json();
    assert_eq!(runs["totalResults"], 0, "{runs}");
}
