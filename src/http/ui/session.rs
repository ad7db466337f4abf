//! The signed-in person on a page: an interactive session from the session cookie (for
//! every method, unlike the API), an admin for the Admin Panel, and the CSRF token every
//! form of theirs carries.

use super::page::{error_page, see_other};
use super::views::{Nav, Page};
use crate::auth::{self, Credentials};
use crate::caller::{Method, Principal};
use crate::error::Error;
use crate::http::cookies;
use crate::http::extract::{client_ip, user_agent};
use crate::http::state::AppState;
use crate::secret::Secret;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum_extra::extract::cookie::CookieJar;
use base64::Engine;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

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
pub fn tokens_match(expected: &str, submitted: Option<&str>) -> bool {
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
pub struct UiUser {
    pub p: Principal,
    pub csrf: String,
}

impl UiUser {
    /// The layout of a page for this person, `section` highlighted in the navigation.
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
                directory: self.p.user.directory_id.to_string(),
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
pub enum NoPage {
    /// Not signed in: to the sign-in page.
    SignIn,
    /// The session ended: to the sign-in page with a notice, and the cookie that clears
    /// the session cookie (it is of no use any more).
    Expired(CookieJar),
    Error(Error),
}

impl IntoResponse for NoPage {
    fn into_response(self) -> Response {
        match self {
            NoPage::SignIn => see_other("/ui/login"),
            NoPage::Expired(clear) => {
                (clear, see_other("/ui/login?notice=expired")).into_response()
            }
            NoPage::Error(e) => error_page(e),
        }
    }
}

impl FromRequestParts<AppState> for UiUser {
    type Rejection = NoPage;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, NoPage> {
        let jar = CookieJar::from_headers(&parts.headers);
        let Some(token) = cookies::SESSION.read(&jar) else {
            return Err(NoPage::SignIn);
        };
        let creds = Credentials::Session(Secret::new(token.clone()));
        let addr = client_ip(parts, &state.0);
        let p = match auth::authenticate(&state.0, creds, addr, user_agent(parts)).await {
            Ok(p) => p,
            Err(Error::Unauthenticated(_)) => {
                // Cleared with the attributes it was set with (`Secure` behind HTTPS).
                return Err(NoPage::Expired(cookies::SESSION.clear(state, jar)));
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
pub struct UiAdmin(pub UiUser);

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
}
