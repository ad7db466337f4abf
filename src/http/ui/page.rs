//! What every page handler answers with: a rendered template, a 303 to another page, or an
//! error page with the status the API would answer; the security headers every page is
//! sent with; the form extractor whose rejection is a page.

use super::views::{ErrorPage, Page};
use crate::error::Error;
use crate::http::error::domain_status;
use askama::Template;
use axum::extract::{FromRequest, Request};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde::Deserialize;

/// No inline script or style, nothing from elsewhere, no framing.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                   connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The response layer of every page.
pub async fn security_headers(response: Response) -> Response {
    with_security_headers(response)
}

/// The headers every page is sent with (also the pages the OIDC callback answers with).
pub fn with_security_headers(mut response: Response) -> Response {
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

/// 303 to a page of ours.
pub fn see_other(path: &str) -> Response {
    Redirect::to(path).into_response()
}

/// Renders a template; a rendering failure is a 500 page, never a panic.
pub fn render(status: StatusCode, t: &impl Template) -> Response {
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
pub fn error_page(e: Error) -> Response {
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
pub struct UiError(pub Error);

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

/// What a page handler returns.
pub type UiResult = Result<Response, UiError>;

/// A submitted form (`application/x-www-form-urlencoded`); a malformed one is a 400 page.
pub struct Form<T>(pub T);

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

/// A form that carries nothing but its CSRF token (sign out, delete, approve).
#[derive(Deserialize)]
pub struct CsrfOnly {
    pub csrf: Option<String>,
}
