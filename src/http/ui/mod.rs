//! The web pages under `/ui`: sign-in, a person's own access keys, and the Admin Panel.
//! Server-rendered with askama, a little plain JavaScript, every asset served here. The
//! pages call the same domain operations as the API; only presentation lives here.
//!
//! This file only assembles the router. Below the page modules (`account`, `admin`) are
//! `session` (who is signed in, CSRF), `page` (rendering, redirects, error pages, security
//! headers), `views` (the view models) and `charts` (the overview's chart geometry, which
//! `views` and `admin` use); none of them imports this file.

mod account;
mod admin;
mod charts;
pub(super) mod page;
mod session;
mod views;

use super::state::AppState;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use page::{security_headers, see_other};

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
