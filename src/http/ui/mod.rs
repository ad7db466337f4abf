//! The web pages under `/ui`: sign-in, a person's own access keys, and the Admin Panel.
//! Server-rendered with askama, a little plain JavaScript, every asset served here. The
//! pages call the same domain operations as the API; only presentation lives here.

mod account;
mod admin;

use super::auth::SESSION_COOKIE;
use super::error::domain_status;
use super::extract::{client_ip, cookie};
use super::AppState;
use crate::auth::{self, Credentials};
use crate::caller::{Method, Principal};
use crate::error::Error;
use crate::secret::Secret;
use askama::Template;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use base64::Engine;
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/ui", get(|| async { see_other("/ui/keys") }))
        .route("/ui/", get(|| async { see_other("/ui/keys") }))
        .route("/ui/static/app.css", get(css))
        .route("/ui/static/app.js", get(js))
        .merge(account::router())
        .merge(admin::router())
        .layer(axum::middleware::map_response(security_headers))
}

/// No inline script or style, nothing from elsewhere, no framing.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                   connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

async fn security_headers(response: Response) -> Response {
    with_security_headers(response)
}

/// The headers every page is sent with (also the pages the OIDC callback answers with).
pub(super) fn with_security_headers(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    // Pages hold personal data and, once, a password: never cached.
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}

async fn css() -> Response {
    asset("text/css; charset=utf-8", include_str!("static/app.css"))
}

async fn js() -> Response {
    asset(
        "text/javascript; charset=utf-8",
        include_str!("static/app.js"),
    )
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        body,
    )
        .into_response()
}

/// 303 to a page of ours.
pub(super) fn see_other(path: &str) -> Response {
    Redirect::to(path).into_response()
}

/// What every page's layout shows.
pub(super) struct Page {
    pub title: String,
    pub nav: Option<Nav>,
    /// `keys` or `admin`: the highlighted main navigation entry.
    pub section: &'static str,
    pub csrf: String,
    pub notice: Option<String>,
    pub error: Option<String>,
}

pub(super) struct Nav {
    pub name: String,
    pub directory: String,
    pub is_admin: bool,
}

impl Page {
    /// A page for someone not signed in.
    pub fn anonymous(title: &str) -> Page {
        Page {
            title: title.to_string(),
            nav: None,
            section: "",
            csrf: String::new(),
            notice: None,
            error: None,
        }
    }
}

#[derive(Template)]
#[template(path = "error.html", config = "src/http/ui/askama.toml")]
struct ErrorPage {
    page: Page,
    heading: String,
    message: String,
    back: &'static str,
    back_label: &'static str,
}

/// Renders a template; a rendering failure is a 500 page, never a panic.
pub(super) fn render(status: StatusCode, t: &impl Template) -> Response {
    match t.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "rendering a page failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal error; the server log has the details",
            )
                .into_response()
        }
    }
}

/// The page for a failed request, with the status the API would answer.
pub(super) fn error_page(e: Error) -> Response {
    let (status, message, _) = domain_status(e);
    let heading = match status {
        StatusCode::FORBIDDEN => "Not allowed",
        StatusCode::NOT_FOUND => "Not found",
        StatusCode::UNAUTHORIZED => "Not signed in",
        StatusCode::BAD_REQUEST => "Cannot do that",
        StatusCode::SERVICE_UNAVAILABLE => "Temporarily unavailable",
        StatusCode::TOO_MANY_REQUESTS => "Too many attempts",
        _ => "Something went wrong",
    };
    render(
        status,
        &ErrorPage {
            page: Page::anonymous(heading),
            heading: heading.to_string(),
            message,
            back: "/ui/keys",
            back_label: "Back to my access keys",
        },
    )
}

/// A domain error on a page.
pub(super) struct UiError(pub Error);

impl From<Error> for UiError {
    fn from(e: Error) -> Self {
        UiError(e)
    }
}

impl IntoResponse for UiError {
    fn into_response(self) -> Response {
        error_page(self.0)
    }
}

pub(super) type UiResult = Result<Response, UiError>;

/// A page's CSRF token: derived from the session token, which only this browser holds
/// (HttpOnly cookie), so another site cannot know it; nothing to store, same on every
/// replica.
fn csrf_for(session_token: &str) -> String {
    let digest = Sha256::new()
        .chain_update(b"accesskeyd-ui-csrf\0")
        .chain_update(session_token.as_bytes())
        .finalize();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest)
}

/// Constant-time comparison of a submitted token with the expected one.
fn tokens_match(expected: &str, submitted: Option<&str>) -> bool {
    submitted.is_some_and(|s| {
        !expected.is_empty() && bool::from(s.as_bytes().ct_eq(expected.as_bytes()))
    })
}

fn csrf_refused() -> Error {
    Error::forbidden(
        "this form has expired or did not come from accesskeyd's own page; reload the page and try again",
    )
}

/// The signed-in person on a page: an interactive session from the browser cookie. A
/// session opened with an access key never reaches a page.
pub(super) struct UiUser {
    pub p: Principal,
    pub csrf: String,
}

impl UiUser {
    pub fn page(&self, title: &str, section: &'static str) -> Page {
        Page {
            title: title.to_string(),
            nav: Some(Nav {
                name: self
                    .p
                    .user
                    .display_name
                    .clone()
                    .unwrap_or_else(|| self.p.user.username.clone()),
                directory: self.p.user.directory_id.clone(),
                is_admin: self.p.user.is_admin,
            }),
            section,
            csrf: self.csrf.clone(),
            notice: None,
            error: None,
        }
    }

    /// Refuses a form whose CSRF token is missing or wrong.
    pub fn check(&self, submitted: Option<&str>) -> Result<(), Error> {
        if tokens_match(&self.csrf, submitted) {
            Ok(())
        } else {
            Err(csrf_refused())
        }
    }
}

/// Why there is no page: not signed in (to the sign-in page), or an error page.
pub(super) enum NoPage {
    /// To the sign-in page; for a session that expired, with the cookie that clears it.
    SignIn {
        expired: Option<HeaderValue>,
    },
    Error(Error),
}

impl IntoResponse for NoPage {
    fn into_response(self) -> Response {
        match self {
            NoPage::SignIn { expired } => {
                let mut r = see_other(if expired.is_some() {
                    "/ui/login?notice=expired"
                } else {
                    "/ui/login"
                });
                if let Some(clear) = expired {
                    // The cookie is of no use any more.
                    r.headers_mut().insert(header::SET_COOKIE, clear);
                }
                r
            }
            NoPage::Error(e) => error_page(e),
        }
    }
}

impl FromRequestParts<AppState> for UiUser {
    type Rejection = NoPage;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, NoPage> {
        let Some(token) = cookie(&parts.headers, SESSION_COOKIE) else {
            return Err(NoPage::SignIn { expired: None });
        };
        let creds = Credentials::Session(Secret::new(token.clone()));
        let p = match auth::authenticate(&state.0, creds, client_ip(parts, &state.0)).await {
            Ok(p) => p,
            Err(Error::Unauthenticated(_)) => {
                // Cleared with the attributes it was set with (`Secure` behind HTTPS).
                let clear = super::auth::clear_cookie(state, SESSION_COOKIE, "/");
                return Err(NoPage::SignIn {
                    expired: Some(clear),
                });
            }
            Err(e) => return Err(NoPage::Error(e)),
        };
        if p.method != Method::Interactive {
            return Err(NoPage::Error(Error::forbidden(
                "a session opened with an access key cannot use these pages: access keys are \
                 for scripts, notebooks and OData clients; sign in with your own account",
            )));
        }
        Ok(UiUser {
            csrf: csrf_for(&token),
            p,
        })
    }
}

/// An admin on a page; anyone else gets the 403 page.
pub(super) struct UiAdmin(pub UiUser);

impl FromRequestParts<AppState> for UiAdmin {
    type Rejection = NoPage;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, NoPage> {
        let u = UiUser::from_request_parts(parts, state).await?;
        if !u.p.user.is_admin {
            return Err(NoPage::Error(Error::forbidden(
                "the Admin Panel is for administrators only",
            )));
        }
        Ok(UiAdmin(u))
    }
}

/// A submitted form (`application/x-www-form-urlencoded`); a malformed one is a 400 page.
pub(super) struct Form<T>(pub T);

impl<T: serde::de::DeserializeOwned, S: Send + Sync> FromRequest<S> for Form<T> {
    type Rejection = UiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, UiError> {
        axum::Form::<T>::from_request(req, state)
            .await
            .map(|f| Form(f.0))
            .map_err(|e| {
                UiError(Error::invalid(format!(
                    "the form is incomplete: {}",
                    e.body_text()
                )))
            })
    }
}

/// Date and time as the pages show them.
pub(super) fn when(t: Option<DateTime<Utc>>, none: &str) -> String {
    t.map_or_else(
        || none.to_string(),
        |t| t.format("%Y-%m-%d %H:%M UTC").to_string(),
    )
}

/// A validity window in words: `14 days`, `90 minutes`, `disabled`.
pub(super) fn window_text(w: crate::validity::Window) -> String {
    match w {
        crate::validity::Window::Disabled => "disabled".into(),
        crate::validity::Window::Minutes(m) if m % 1440 == 0 => plural(m / 1440, "day"),
        crate::validity::Window::Minutes(m) if m % 60 == 0 => plural(m / 60, "hour"),
        crate::validity::Window::Minutes(m) => plural(m, "minute"),
    }
}

pub(super) fn plural(n: i64, unit: &str) -> String {
    if n == 1 {
        format!("1 {unit}")
    } else {
        format!("{n} {unit}s")
    }
}

/// Previous / next links of a paged list.
pub(super) struct Pager {
    pub prev: Option<String>,
    pub next: Option<String>,
    pub range: String,
}

pub(super) const PAGE_SIZE: i64 = 50;

impl Pager {
    /// `base` ends in `?` or `&` so that `offset=` can follow.
    pub fn new(base: &str, offset: i64, shown: usize, total: i64) -> Pager {
        let end = offset + shown as i64;
        Pager {
            prev: (offset > 0).then(|| format!("{base}offset={}", (offset - PAGE_SIZE).max(0))),
            next: (end < total).then(|| format!("{base}offset={end}")),
            range: if shown == 0 {
                String::new()
            } else {
                format!("{}–{end} of {total}", offset + 1)
            },
        }
    }
}

/// Fixed texts for `?notice=` after a redirect (never text from the request itself).
pub(super) fn notice_text(code: Option<&str>) -> Option<String> {
    let text = match code? {
        "expired" => "Your session has ended. Please sign in again.",
        "signed-out" => "You are signed out.",
        "key-deleted" => "The access key was deleted; it no longer works.",
        "user-deleted" => "The user was deleted with their access keys and sessions.",
        "saved" => "Saved.",
        "approved" => "The removals were approved and applied.",
        _ => return None,
    };
    Some(text.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csrf_tokens_belong_to_one_session() {
        let a = csrf_for("aks_one");
        assert_eq!(a, csrf_for("aks_one"));
        assert_ne!(a, csrf_for("aks_two"));
        assert!(tokens_match(&a, Some(&a)));
        assert!(!tokens_match(&a, Some("x")));
        assert!(!tokens_match(&a, None));
        assert!(!tokens_match("", Some("")));
    }

    #[test]
    fn windows_read_in_whole_units() {
        use crate::validity::Window;
        assert_eq!(window_text(Window::Minutes(14 * 1440)), "14 days");
        assert_eq!(window_text(Window::Minutes(120)), "2 hours");
        assert_eq!(window_text(Window::Minutes(1)), "1 minute");
        assert_eq!(window_text(Window::Disabled), "disabled");
    }

    #[test]
    fn pager_links() {
        let p = Pager::new("/ui/admin/keys?", 0, 50, 120);
        assert_eq!(p.prev, None);
        assert_eq!(p.next.as_deref(), Some("/ui/admin/keys?offset=50"));
        let p = Pager::new("/x?q=a&", 100, 20, 120);
        assert_eq!(p.prev.as_deref(), Some("/x?q=a&offset=50"));
        assert_eq!(p.next, None);
        assert_eq!(p.range, "101–120 of 120");
    }
}
