//! The HTTP API: one router per area, thin handlers (extract → call the domain → map the
//! result), one error mapping.

pub mod audit;
pub mod auth;
pub mod client_addr;
pub mod directories;
pub mod error;
pub mod events;
pub mod extract;
pub mod health;
pub mod keys;
pub mod paging;
pub mod scim;
pub mod serve;
pub mod system;
pub mod ui;
pub mod users;

use crate::app::App;
use axum::extract::{DefaultBodyLimit, FromRef};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Router;
use std::sync::Arc;
use tower_http::trace::TraceLayer;

/// What every handler receives.
#[derive(Clone)]
pub struct AppState(pub Arc<App>);

impl FromRef<AppState> for Arc<App> {
    fn from_ref(s: &AppState) -> Arc<App> {
        s.0.clone()
    }
}

/// The whole API.
pub fn router(app: Arc<App>) -> Router {
    let limit = app.config.server.max_body_bytes;
    Router::new()
        .merge(auth::router())
        .merge(keys::router())
        .merge(users::router())
        .merge(system::router())
        .merge(audit::router())
        .merge(directories::router())
        .merge(events::router())
        .merge(scim::router())
        .merge(health::router())
        .merge(ui::router())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(limit))
        .layer(TraceLayer::new_for_http())
        .with_state(AppState(app))
}

async fn not_found() -> Response {
    error::status_message(StatusCode::NOT_FOUND, "no such endpoint")
}

async fn method_not_allowed() -> Response {
    error::status_message(
        StatusCode::METHOD_NOT_ALLOWED,
        "method not allowed on this endpoint",
    )
    .into_response()
}

/// Serves the API on `listener` until `shutdown` completes, with the connection deadlines
/// and cap of `[server]` ([`serve::serve`]).
pub async fn serve(
    app: Arc<App>,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve::serve(app, listener, shutdown).await
}
