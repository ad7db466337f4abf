//! The web pages' cookies behind HTTPS: every cookie is set `Secure`, and signing out or an
//! expired session clears each with the attributes it was set with, so the browser drops it.

use crate::harness::daemon::{Daemon, ADMIN, ADMIN_PASSWORD};
use reqwest::header::{HeaderMap, COOKIE, SET_COOKIE};
use reqwest::StatusCode;

/// `public_url` says people reach accesskeyd over HTTPS (through a reverse proxy).
const BEHIND_HTTPS: &str = "\n[server]\npublic_url = \"https://akd.example.com\"\n";

fn set_cookies(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect()
}

fn cookie_named<'a>(set: &'a [String], name: &str) -> &'a str {
    set.iter()
        .find(|c| c.starts_with(&format!("{name}=")))
        .unwrap_or_else(|| panic!("no {name} cookie in {set:?}"))
}

/// A `Set-Cookie` value's name=value and attributes, in any order (their order means
/// nothing to a browser).
fn attributes(set_cookie: &str) -> Vec<&str> {
    let mut parts: Vec<&str> = set_cookie.split("; ").collect();
    parts[1..].sort_unstable();
    parts
}

/// The value of `<input type="hidden" name="csrf" value="...">` in a page.
fn csrf_field(page: &str) -> String {
    let at = page.find("name=\"csrf\" value=\"").expect("csrf field") + 19;
    page[at..].split('"').next().unwrap().to_string()
}

#[tokio::test]
async fn signing_out_behind_https_clears_each_cookie_as_it_was_set() {
    let d = Daemon::start_with(None, BEHIND_HTTPS, &[]).await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();

    // The sign-in form's double-submit cookie.
    let r = http
        .get(format!("{}/ui/login", d.url))
        .send()
        .await
        .unwrap();
    let set = set_cookies(r.headers());
    let csrf_cookie = cookie_named(&set, "accesskeyd_login_csrf").to_string();
    assert!(csrf_cookie.contains("SameSite=Strict"), "{csrf_cookie}");
    assert!(csrf_cookie.contains("; Secure"), "{csrf_cookie}");
    let csrf = csrf_field(&r.text().await.unwrap());

    // Signing in sets the session cookie and clears the form's, each as it was set.
    let r = http
        .post(format!("{}/ui/login", d.url))
        .header(COOKIE, format!("accesskeyd_login_csrf={csrf}"))
        .form(&[
            ("csrf", csrf.as_str()),
            ("directory", "builtin"),
            ("username", ADMIN),
            ("password", ADMIN_PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let set = set_cookies(r.headers());
    let session = cookie_named(&set, "accesskeyd_session").to_string();
    assert!(
        session.contains("; Secure") && session.contains("SameSite=Lax"),
        "{session}"
    );
    let cleared = cookie_named(&set, "accesskeyd_login_csrf");
    assert_eq!(
        attributes(cleared),
        attributes(
            "accesskeyd_login_csrf=; Path=/ui/login; HttpOnly; SameSite=Strict; Max-Age=0; Secure"
        )
    );
    let token = session
        .trim_start_matches("accesskeyd_session=")
        .split(';')
        .next()
        .unwrap()
        .to_string();

    // Signing out clears the session cookie with its own attributes.
    let jar = format!("accesskeyd_session={token}");
    let page = http
        .get(format!("{}/ui/keys", d.url))
        .header(COOKIE, &jar)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let r = http
        .post(format!("{}/ui/logout", d.url))
        .header(COOKIE, &jar)
        .form(&[("csrf", csrf_field(&page))])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let set = set_cookies(r.headers());
    assert_eq!(
        attributes(cookie_named(&set, "accesskeyd_session")),
        attributes("accesskeyd_session=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0; Secure")
    );

    // A page opened with the ended session sends the browser to sign in again and clears
    // the cookie, again with `Secure`.
    let r = http
        .get(format!("{}/ui/keys", d.url))
        .header(COOKIE, &jar)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()["location"], "/ui/login?notice=expired");
    let set = set_cookies(r.headers());
    assert_eq!(
        attributes(cookie_named(&set, "accesskeyd_session")),
        attributes("accesskeyd_session=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0; Secure")
    );
}
