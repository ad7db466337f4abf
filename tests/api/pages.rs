//! The web pages in-process: cookies and the CSRF field are plain headers and form fields.
//! Behind HTTPS every cookie is set `Secure`, and signing out or an expired session clears
//! each with the attributes it was set with, so the browser drops it.

use crate::app::{TestApp, ADMIN, ADMIN_PASSWORD};
use axum::http::StatusCode;

/// `public_url` says people reach accesskeyd over HTTPS (through a reverse proxy).
const BEHIND_HTTPS: &str = "\n[server]\npublic_url = \"https://akd.example.com\"\n";

/// A `Set-Cookie` value's name=value and attributes, in any order (their order means
/// nothing to a browser).
fn attributes(set_cookie: &str) -> Vec<&str> {
    let mut parts: Vec<&str> = set_cookie.split("; ").collect();
    parts[1..].sort_unstable();
    parts
}

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
        attributes(&r.set_cookie("accesskeyd_login_csrf")),
        attributes(
            "accesskeyd_login_csrf=; Path=/ui/login; HttpOnly; SameSite=Strict; Max-Age=0; Secure"
        )
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
        attributes(&r.set_cookie("accesskeyd_session")),
        attributes("accesskeyd_session=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0; Secure")
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
        attributes(&r.set_cookie("accesskeyd_session")),
        attributes("accesskeyd_session=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0; Secure")
    );
}

#[tokio::test]
async fn every_page_is_sent_with_a_strict_content_security_policy() {
    let app = TestApp::spawn().await;
    let r = app.get("/ui/login").send().await;
    assert_eq!(r.status, StatusCode::OK);
    let csp = r.header("content-security-policy");
    assert!(csp.contains("default-src 'none'"), "{csp}");
    assert!(csp.contains("script-src 'self'"), "{csp}");
    assert_eq!(r.header("x-frame-options"), "DENY");
}

#[tokio::test]
async fn a_form_without_the_right_csrf_token_changes_nothing() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    let page = app.get("/ui/keys").session_cookie(&alice).send().await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("My access keys"));
    let csrf = page.csrf_field();

    // A form without the CSRF token, or with a guessed one, is refused.
    for form in [
        vec![("label", "forged")],
        vec![("label", "forged"), ("csrf", "guess")],
    ] {
        let r = app
            .post("/ui/keys")
            .session_cookie(&alice)
            .form(&form)
            .send()
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{form:?}: {}", r.body);
    }
    let keys = app.get("/api/accesskeys").auth(&alice).send().await.json();
    assert_eq!(
        keys["keys"].as_array().unwrap().len(),
        0,
        "no key was created by the forged forms"
    );
    // The session's own token works, and the password is on that answer only.
    let r = app
        .post("/ui/keys")
        .session_cookie(&alice)
        .form(&[("csrf", csrf.as_str()), ("label", "Power BI sales report")])
        .send()
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert!(r.body.contains("only this once"), "{}", r.body);
    let keys = app.get("/api/accesskeys").auth(&alice).send().await.json();
    assert_eq!(keys["keys"][0]["name"], "Power BI sales report");

    // The sign-in form is a double-submit: a form without the cookie's token is refused.
    for (cookie, field) in [(None, "form-token"), (Some("other-token"), "form-token")] {
        let mut req = app.post("/ui/login");
        if let Some(c) = cookie {
            req = req.cookie("accesskeyd_login_csrf", c);
        }
        let r = req
            .form(&[
                ("csrf", field),
                ("directory", "builtin"),
                ("username", ADMIN),
                ("password", ADMIN_PASSWORD),
            ])
            .send()
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{cookie:?}");
        assert!(r
            .set_cookies()
            .iter()
            .all(|c| !c.starts_with("accesskeyd_session=")));
    }
}

#[tokio::test]
async fn an_access_key_typed_into_the_sign_in_form_is_refused_with_a_message() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    let key = app.create_key(&alice, "notebook").await;
    let form = app.get("/ui/login").send().await;
    let csrf = form.csrf_field();
    for (username, password) in [
        (key.id.as_str(), key.password.as_str()),
        ("alice", key.password.as_str()),
    ] {
        let r = app
            .post("/ui/login")
            .cookie("accesskeyd_login_csrf", &csrf)
            .form(&[
                ("csrf", csrf.as_str()),
                ("directory", "builtin"),
                ("username", username),
                ("password", password),
            ])
            .send()
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{username}");
        assert!(r.body.contains("That is an access key"), "{}", r.body);
        assert!(
            r.body.contains("scripts, notebooks and OData"),
            "{}",
            r.body
        );
        assert!(r
            .set_cookies()
            .iter()
            .all(|c| !c.starts_with("accesskeyd_session=")));
    }
}

#[tokio::test]
async fn a_session_opened_with_an_access_key_never_reaches_a_page() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    let key = app.create_key(&alice, "notebook").await;
    let key_session = app.key_session(&key).await;
    let r = app
        .get("/ui/keys")
        .session_cookie(&key_session)
        .send()
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(
        r.body.contains("access key cannot use these pages"),
        "{}",
        r.body
    );
    // The person's own session does.
    let r = app.get("/ui/keys").session_cookie(&alice).send().await;
    assert_eq!(r.status, StatusCode::OK);
}

#[tokio::test]
async fn an_ended_session_goes_back_to_sign_in_with_a_notice() {
    let app = TestApp::spawn().await;
    let r = app
        .get("/ui/keys")
        .cookie("accesskeyd_session", "aks_expired-or-revoked")
        .send()
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(r.header("location"), "/ui/login?notice=expired");
    let page = app.get("/ui/login?notice=expired").send().await;
    assert!(page.body.contains("session has ended"), "{}", page.body);
    // Without any cookie: to sign-in, no notice.
    let r = app.get("/ui/keys").send().await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(r.header("location"), "/ui/login");
}

#[tokio::test]
async fn non_admins_get_the_403_page_in_the_admin_panel() {
    let app = TestApp::spawn().await;
    let bob = app.user("bob").await;
    for path in [
        "/ui/admin",
        "/ui/admin/keys",
        "/ui/admin/users",
        "/ui/admin/config",
    ] {
        let r = app.get(path).session_cookie(&bob).send().await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{path}");
        assert!(r.body.contains("administrators only"), "{path}: {}", r.body);
    }
    let admin = app.admin().await;
    let r = app
        .get("/ui/admin/keys")
        .session_cookie(&admin)
        .send()
        .await;
    assert_eq!(r.status, StatusCode::OK);
}

#[tokio::test]
async fn an_admin_changes_a_users_override_session_duration_and_options_through_the_forms() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let bob = app.user("bob").await;
    let bob_id = bob.id();
    let key = app.create_key(&bob, "bob nightly export").await;
    let user_page = format!("/ui/admin/users/{bob_id}");
    let csrf = app
        .get(&user_page)
        .session_cookie(&admin)
        .send()
        .await
        .csrf_field();
    let validity = |fields: &[(&str, &str)]| {
        let mut form = vec![("csrf", csrf.as_str())];
        form.extend_from_slice(fields);
        app.post(&format!("{user_page}/validity"))
            .session_cookie(&admin)
            .form(&form)
            .send()
    };
    let shown = || async {
        app.get(&format!("/api/users/{bob_id}"))
            .auth(&admin)
            .send()
            .await
            .json()
    };
    let saved = format!("{user_page}?notice=saved");

    // An override of 0 stops bob's key; reset, it works again.
    let r = validity(&[("action", "set"), ("minutes", "0")]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert_eq!(r.header("location"), saved);
    assert!(!app.key_works(&key).await, "override 0 stops bob's key");
    let page = app.get(&saved).session_cookie(&admin).send().await;
    assert!(
        page.body
            .contains("data-testid=\"effective-validity\">disabled (override)"),
        "{}",
        page.body
    );
    assert_eq!(
        validity(&[("action", "reset")]).await.header("location"),
        saved
    );
    assert!(app.key_works(&key).await, "reset: the key works again");
    assert_eq!(
        validity(&[("action", "disable")]).await.header("location"),
        saved
    );
    assert_eq!(shown().await["accessKeyValidityDuration"], 0);
    assert!(!app.key_works(&key).await);
    validity(&[("action", "set"), ("minutes", "90")]).await;
    assert_eq!(shown().await["accessKeyValidityDuration"], 90);

    // Session duration: an override of 45 minutes, then the system value again.
    let r = validity(&[("action", "session-set"), ("minutes", "45")]).await;
    assert_eq!(r.header("location"), saved);
    assert_eq!(shown().await["sessionDuration"], 45);
    validity(&[("action", "session-reset")]).await;
    assert!(shown().await["sessionDuration"].is_null());

    // Values that are no number, a negative override, an unknown action: refused, unchanged.
    for (fields, needle) in [
        (
            vec![("action", "set"), ("minutes", "ten")],
            "not a whole number",
        ),
        (
            vec![("action", "set"), ("minutes", "-3")],
            "cannot be negative",
        ),
        (
            vec![("action", "session-set"), ("minutes", "soon")],
            "not a whole number",
        ),
        (vec![("action", "shout")], "unknown action"),
        (vec![], "unknown action"),
    ] {
        let r = validity(&fields).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{fields:?}");
        assert!(r.body.contains(needle), "{fields:?}: {}", r.body);
    }
    assert_eq!(shown().await["accessKeyValidityDuration"], 90);
    assert!(shown().await["sessionDuration"].is_null());

    // Configuration: a valid value is saved, an invalid one explained on the page.
    let path = "Authentication/AccessKey/ValidityWithoutUserLogin";
    let config = app
        .get("/ui/admin/config")
        .session_cookie(&admin)
        .send()
        .await;
    assert!(config.body.contains(path), "{}", config.body);
    let option = |value: &str| {
        app.post("/ui/admin/config")
            .session_cookie(&admin)
            .form(&[("csrf", csrf.as_str()), ("path", path), ("value", value)])
            .send()
    };
    let r = option("30").await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(r.header("location"), "/ui/admin/config?notice=saved");
    let r = option("-3").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.body.contains("between"), "{}", r.body);
    let opts = app
        .get("/api/system/configuration/options")
        .auth(&admin)
        .send()
        .await
        .json();
    assert_eq!(
        opts["configurationOptions"][0]["value"], 30,
        "the API sees the new value"
    );

    // Deleting a user: the confirmation counts the keys that go with the user.
    let confirm = app
        .get(&format!("{user_page}/delete"))
        .session_cookie(&admin)
        .send()
        .await;
    assert!(confirm.body.contains("1 access key"), "{}", confirm.body);
    let r = app
        .post(&format!("{user_page}/delete"))
        .session_cookie(&admin)
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await;
    assert_eq!(r.header("location"), "/ui/admin/users?notice=user-deleted");
    assert_eq!(app.me_with_key(&key).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(app.me(&bob).await.status, StatusCode::UNAUTHORIZED);
}
