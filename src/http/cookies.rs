//! Our cookies: each one's name and the attributes it is set and cleared with, read from
//! requests and written to responses through axum-extra's `CookieJar`.

use super::state::AppState;
use crate::auth;
use axum::http::HeaderMap;
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use time::Duration;

/// One of our cookies: its name and the attributes it is always set with. Setting and
/// clearing both go through it: a clearing that differs from the cookie it clears (a
/// `Secure` cookie cleared without it, another path) may leave the browser holding it.
#[derive(Debug, Clone, Copy)]
pub struct Spec {
    pub name: &'static str,
    path: &'static str,
    same_site: SameSite,
}

/// The browser session of an interactive login. `Lax`: it comes along when a person
/// follows a link to the pages.
pub const SESSION: Spec = Spec {
    name: "accesskeyd_session",
    path: "/",
    same_site: SameSite::Lax,
};

/// Binds an OpenID Connect login to the browser that started it. `Lax`, so it comes along
/// on the provider's top-level redirect to the callback but not on a cross-site POST; its
/// path holds both ways to finish a login, the callback and `POST /api/auth/login`.
pub const OIDC_BINDING: Spec = Spec {
    name: auth::OIDC_BINDING_COOKIE,
    path: "/api/auth",
    same_site: SameSite::Lax,
};

/// Set by the web pages' OpenID Connect button: the callback then returns to the pages.
pub const UI_RETURN: Spec = Spec {
    name: "accesskeyd_ui_return",
    path: "/api/auth/oidc",
    same_site: SameSite::Lax,
};

/// How long [`UI_RETURN`] lasts: long enough to sign in at the provider.
pub const UI_RETURN_SECONDS: i64 = 600;

/// Double-submit token of the sign-in form (there is no session to derive one from yet).
pub const LOGIN_CSRF: Spec = Spec {
    name: "accesskeyd_login_csrf",
    path: "/ui/login",
    same_site: SameSite::Strict,
};

impl Spec {
    /// The value the request carries for this cookie.
    pub fn read(self, jar: &CookieJar) -> Option<String> {
        jar.get(self.name).map(|c| c.value().to_string())
    }

    /// [`Spec::read`] straight from a request's headers.
    pub fn read_headers(self, headers: &HeaderMap) -> Option<String> {
        self.read(&CookieJar::from_headers(headers))
    }

    /// The cookie with `value`, as this deployment sets it (`Secure` behind HTTPS);
    /// `max_age` in seconds, none: until the browser closes.
    pub fn set(
        self,
        state: &AppState,
        value: impl Into<String>,
        max_age: Option<i64>,
    ) -> Cookie<'static> {
        self.cookie(
            value.into(),
            max_age.map(Duration::seconds),
            is_https(state),
        )
    }

    /// Adds the cookie that clears this one to `jar` if the request carried it: empty,
    /// `Max-Age=0`, and otherwise the attributes it was set with.
    pub fn clear(self, state: &AppState, jar: CookieJar) -> CookieJar {
        self.clear_in(jar, is_https(state))
    }

    fn clear_in(self, jar: CookieJar, secure: bool) -> CookieJar {
        if jar.get(self.name).is_none() {
            return jar;
        }
        jar.add(self.cookie(String::new(), Some(Duration::ZERO), secure))
    }

    fn cookie(self, value: String, max_age: Option<Duration>, secure: bool) -> Cookie<'static> {
        let mut cookie = Cookie::build((self.name, value))
            .path(self.path)
            .http_only(true)
            .same_site(self.same_site)
            .secure(secure)
            .build();
        cookie.set_max_age(max_age);
        cookie
    }
}

/// The session cookie of an interactive login.
pub fn session(state: &AppState, done: &auth::LoggedIn) -> Cookie<'static> {
    SESSION.set(state, done.token.expose(), Some(done.ttl_seconds))
}

/// Cookies are `Secure` when people reach accesskeyd over HTTPS (`server.public_url`).
fn is_https(state: &AppState) -> bool {
    state.0.config.server.public_url().starts_with("https://")
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::{header, HeaderValue};

    /// The attributes of a `Set-Cookie` value, whatever their order.
    fn attributes(set_cookie: &str) -> Vec<String> {
        let mut parts: Vec<String> = set_cookie.split("; ").map(str::to_string).collect();
        parts.sort();
        parts
    }

    #[test]
    fn a_cookie_is_cleared_with_the_attributes_it_was_set_with() {
        let set = LOGIN_CSRF.cookie("v".into(), None, true).to_string();
        let cleared = LOGIN_CSRF
            .cookie(String::new(), Some(Duration::ZERO), true)
            .to_string();
        assert_eq!(
            attributes(&set),
            attributes(
                "accesskeyd_login_csrf=v; Path=/ui/login; HttpOnly; SameSite=Strict; Secure"
            )
        );
        assert_eq!(
            attributes(&cleared),
            attributes(
                "accesskeyd_login_csrf=; Path=/ui/login; HttpOnly; SameSite=Strict; Max-Age=0; Secure"
            )
        );
        let session = SESSION.cookie("t".into(), Some(Duration::seconds(60)), false);
        assert_eq!(
            attributes(&session.to_string()),
            attributes("accesskeyd_session=t; Path=/; HttpOnly; SameSite=Lax; Max-Age=60")
        );
    }

    #[test]
    fn cookies_are_read_by_name_from_every_cookie_header() {
        let mut headers = HeaderMap::new();
        headers.append(
            header::COOKIE,
            HeaderValue::from_static("a=1; accesskeyd_ui_return=1"),
        );
        headers.append(
            header::COOKIE,
            HeaderValue::from_static("accesskeyd_session=aks_x-y_z"),
        );
        assert_eq!(SESSION.read_headers(&headers).as_deref(), Some("aks_x-y_z"));
        assert_eq!(UI_RETURN.read_headers(&headers).as_deref(), Some("1"));
        assert_eq!(LOGIN_CSRF.read_headers(&headers), None);
        assert_eq!(SESSION.read_headers(&HeaderMap::new()), None);
    }

    #[test]
    fn only_a_cookie_the_request_carried_is_cleared() {
        let none = LOGIN_CSRF.clear_in(CookieJar::new(), false);
        assert_eq!(none.iter().count(), 0);
        let mut headers = HeaderMap::new();
        headers.append(
            header::COOKIE,
            HeaderValue::from_static("accesskeyd_login_csrf=v"),
        );
        let jar = LOGIN_CSRF.clear_in(CookieJar::from_headers(&headers), false);
        let mut response = axum::response::IntoResponse::into_response(jar);
        let set: Vec<_> = response
            .headers_mut()
            .get_all(header::SET_COOKIE)
            .iter()
            .cloned()
            .collect();
        assert_eq!(set.len(), 1);
        let set = set[0].to_str().expect("ascii");
        assert_eq!(
            attributes(set),
            attributes(
                "accesskeyd_login_csrf=; Path=/ui/login; HttpOnly; SameSite=Strict; Max-Age=0"
            )
        );
    }
}
