//! The web pages in-process: cookies and the CSRF field are plain headers and form fields.
//! Behind HTTPS every cookie is set `Secure`, and signing out or an expired session clears
//! each with the attributes it was set with, so the browser drops it.

use crate::app::{TestApp, ADMIN, ADMIN_PASSWORD};
use axum::http::StatusCode;

/// `public_url` says people reach accesskeyd over HTTPS (through a reverse proxy).
const BEHIND_HTTPS: &str = "\n[server]\npublic_url = \"https://akd.example.com\"\n";

/// The value a `Set-Cookie` sets.
fn value_of(set_cookie: &str) -> String {
    let (_, rest) = set_cookie.split_once('=').expect("name=value");
    rest.split(';').next().unwrap_or_default().to_string()
}

#[tokio::test]
async fn signing_out_behind_https_clears_each_cookie_as_it_was_set() {
    let app = TestApp::spawn_with(BEHIND_HTTPS).await;

    // The sign-in form's double-submit cookie.
    let r = app.get("/ui/login").send().await;
    let csrf_cookie = r.set_cookie("accesskeyd_login_csrf");
    assert!(csrf_cookie.contains("SameSite=Strict"), "{csrf_cookie}");
    assert!(csrf_cookie.contains("; Secure"), "{csrf_cookie}");
    let csrf = r.csrf_field();

    // Signing in sets the session cookie and clears the form's, each as it was set.
    let r = app
        .post("/ui/login")
        .cookie("accesskeyd_login_csrf", &csrf)
        .form(&[
            ("csrf", csrf.as_str()),
            ("directory", "builtin"),
            ("username", ADMIN),
            ("password", ADMIN_PASSWORD),
        ])
        .send()
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let session = r.set_cookie("accesskeyd_session");
    assert!(
        session.contains("; Secure") && session.contains("SameSite=Lax"),
        "{session}"
    );
    assert_eq!(
        r.set_cookie("accesskeyd_login_csrf"),
        "accesskeyd_login_csrf=; Path=/ui/login; HttpOnly; SameSite=Strict; Max-Age=0; Secure"
    );
    let token = value_of(&session);

    // Signing out clears the session cookie with its own attributes.
    let page = app
        .get("/ui/keys")
        .cookie("accesskeyd_session", &token)
        .send()
        .await;
    let r = app
        .post("/ui/logout")
        .cookie("accesskeyd_session", &token)
        .form(&[("csrf", &page.csrf_field())])
        .send()
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(
        r.set_cookie("accesskeyd_session"),
        "accesskeyd_session=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0; Secure"
    );

    // A page opened with the ended session sends the browser to sign in again and clears
    // the cookie, again with `Secure`.
    let r = app
        .get("/ui/keys")
        .cookie("accesskeyd_session", &token)
        .send()
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(r.header("location"), "/ui/login?notice=expired");
    assert_eq!(
        r.set_cookie("accesskeyd_session"),
        "accesskeyd_session=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0; Secure"
    );
}
