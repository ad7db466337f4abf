//! Windows sign-in's rules that need no directory answer: what is missing when nothing is
//! configured, and a proxy's user header ignored from any other address.

use crate::app::{Resp, TestApp};
use axum::http::StatusCode;

const SECRET: &str = "proxy-shared-secret-0123456789";

/// `[proxy_auth]` trusting `trusted`, for an LDAP directory that is never asked here.
fn proxy(trusted: &str) -> String {
    format!(
        r#"
[[directories]]
id = "corp"
kind = "ldap"
name = "Corp LDAP"
url = "ldap://127.0.0.1:1"
user_base = "ou=people,dc=example,dc=org"
timeout_seconds = 2

[proxy_auth]
directory = "corp"
secret = "{SECRET}"
trusted_addresses = ["{trusted}"]
"#
    )
}

async fn windows(app: &TestApp, headers: &[(&str, &str)]) -> Resp {
    let mut req = app.get("/api/auth/windows");
    for (k, v) in headers {
        req = req.header(k, v);
    }
    req.send().await
}

#[tokio::test]
async fn from_an_address_that_is_not_the_proxy_the_header_is_ignored() {
    let app = TestApp::spawn_with(&proxy("10.1.2.3")).await;
    let r = windows(
        &app,
        &[("X-Remote-User", "bob"), ("X-Proxy-Secret", SECRET)],
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.body);
    assert!(r.headers.get("x-sq-auth").is_none());
}

#[tokio::test]
async fn without_proxy_or_kerberos_configured_windows_sign_in_says_what_is_missing() {
    let app = TestApp::spawn().await;
    let r = windows(&app, &[("Authorization", "Negotiate YWJj")]).await;
    // Not there, rather than a 5xx: nothing failed, and monitoring must not page anyone.
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(r.headers.get("x-sq-auth").is_none());
    let body = r.json();
    let message = body["statusMessage"].as_str().unwrap();
    // A build with the feature names the setting; one without names the feature.
    let needle = if cfg!(feature = "kerberos") {
        "[windows]"
    } else {
        "`kerberos`"
    };
    assert!(
        message.contains(needle) && message.contains("[proxy_auth]"),
        "{message}"
    );
}
