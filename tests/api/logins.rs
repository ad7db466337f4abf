//! Password logins' rules: guessing throttled with 429 and Retry-After, and a directory
//! outage answered with an error id while the details go to the log.

use crate::app::{assert_error, TestApp};
use crate::log::CapturedLog;
use axum::http::StatusCode;
use serde_json::json;

#[tokio::test]
async fn password_guessing_is_throttled_with_429_and_retry_after() {
    let app =
        TestApp::spawn_with("\n[login_throttle]\nmax_failures = 5\nwindow_seconds = 300\n").await;
    let bob = app.add_user("bob").await;
    let carol = app.add_user("carol").await;
    for _ in 0..5 {
        let r = app.try_login("bob", "guess", Some("builtin")).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    }
    // Now even the right password waits: the directory is not asked.
    let a = app
        .post("/api/auth/login")
        .json(json!({"username": "bob", "password": bob.password, "authProviderId": "builtin"}))
        .send()
        .await;
    assert_error(&a, StatusCode::TOO_MANY_REQUESTS, "too many failed logins");
    let wait: i64 = a.header("retry-after").parse().unwrap();
    assert!((1..=300).contains(&wait), "{wait}");
    // Others are not affected.
    app.login(&carol.name, &carol.password).await;

    // Wrong key passwords are throttled per key the same way; the key's owner is not.
    let carol = app.login(&carol.name, &carol.password).await;
    let key = app.create_key(&carol, "poller").await;
    // A well-formed wrong password (a malformed one is refused without any work and counts
    // for nothing).
    let wrong = accesskeyd::key_format::new_password();
    for _ in 0..5 {
        let s = app
            .get("/api/users/me")
            .basic(&key.id, &wrong)
            .send()
            .await
            .status;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
    }
    let a = app.me_with_key(&key).await;
    assert_eq!(a.status, StatusCode::TOO_MANY_REQUESTS, "{}", a.body);
    assert_eq!(app.me(&carol).await.status, StatusCode::OK);

    app.advance(chrono::Duration::seconds(wait));
    app.login(&bob.name, &bob.password).await;
    assert_eq!(app.me_with_key(&key).await.status, StatusCode::OK);
}

/// An LDAP directory nothing answers for, whose settings name a host, a bind DN and a base
/// that must not reach callers.
const DOWN_DIRECTORY: &str = r#"
[[directories]]
id = "down"
kind = "ldap"
name = "Down LDAP"
url = "ldap://127.0.0.1:1"
bind_dn = "cn=svc-accesskeyd,ou=service,dc=secret-corp,dc=example"
bind_password = "service-password-123"
user_base = "ou=people,dc=secret-corp,dc=example"
user_filter = "(objectClass=inetOrgPerson)"
timeout_seconds = 2
"#;

/// Fragments of the down directory's settings and of the failure; none may be in an answer.
const INTERNALS: [&str; 7] = [
    "ldap://",
    "127.0.0.1",
    "secret-corp",
    "svc-accesskeyd",
    "os error",
    "Connection refused",
    "I/O error",
];

#[tokio::test]
async fn a_directory_outage_gives_a_caller_an_error_id_and_the_log_the_details() {
    let log = CapturedLog::start();
    let app = TestApp::spawn_with(DOWN_DIRECTORY).await;

    // Anyone may try to log in: the answer says what failed, not where or how.
    let r = app.try_login("alice", "alice-pw", Some("down")).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.body);
    assert!(r.headers.get("x-sq-auth").is_none());
    let body = r.json();
    let message = body["statusMessage"].as_str().unwrap();
    let id = body["errorId"].as_str().expect("an errorId").to_string();
    assert!(
        message.starts_with("the directory is unavailable; try again later"),
        "{message}"
    );
    assert!(message.contains(&format!("(error id {id})")), "{message}");
    for internal in INTERNALS {
        assert!(!r.body.contains(internal), "{internal:?} in {}", r.body);
    }

    // The admin finds the details under that id in the log.
    let line = log.line_with(&id);
    assert!(line.contains("WARN"), "{line}");
    assert!(line.contains("ldap://127.0.0.1:1"), "{line}");

    // Each failure has an id of its own.
    let again = app.try_login("alice", "alice-pw", Some("down")).await;
    assert_ne!(again.json()["errorId"].as_str().unwrap(), id);

    // The sign-in page says the same, with the id, and no more.
    let page = app
        .post("/ui/login")
        .cookie("accesskeyd_login_csrf", "form-token")
        .form(&[
            ("csrf", "form-token"),
            ("directory", "down"),
            ("username", "alice"),
            ("password", "alice-pw"),
        ])
        .send()
        .await;
    assert_eq!(page.status, StatusCode::SERVICE_UNAVAILABLE);
    let html = &page.body;
    assert!(html.contains("the directory is unavailable"), "{html}");
    assert!(html.contains("error id "), "{html}");
    for internal in INTERNALS {
        assert!(
            !html.contains(internal),
            "{internal:?} in the page:\n{html}"
        );
    }
}
