//! The routers: the whole API and pages for the public listener, and the management
//! listener's few routes; the fallbacks for unknown paths and methods.

use super::error::status_message;
use super::openapi::{self, ApiDoc};
use super::state::AppState;
use super::{
    audit, auth, directories, events, health, key_report, keys, scim, secret_scanning, ssf, system,
    ui, users,
};
use crate::app::App;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Router;
use std::sync::Arc;
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The API's routes with their operations: `/api` and `/scim/v2`, and the document itself.
pub fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(auth::router())
        .merge(keys::router())
        .merge(key_report::router())
        .merge(users::router())
        .merge(system::router())
        .merge(audit::router())
        .merge(directories::router())
        .merge(events::router())
        .merge(scim::router())
        .merge(ssf::router())
        .merge(secret_scanning::router())
        .routes(routes!(openapi::document))
}

/// The whole API.
pub fn router(app: Arc<App>) -> Router {
    let limit = app.config.server.max_body_bytes;
    let (api, document) = api().split_for_parts();
    openapi::keep(document);
    // The probes and the pages are no API: plain routes, outside the document.
    let router = api
        .merge(health::router())
        .merge(ui::router())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(limit));
    traced(router).with_state(AppState(app))
}

/// Request spans and tower-http's per-request lines, only when its debug logging is on
/// (`RUST_LOG=tower_http=debug,info`): otherwise they cost every request time and say
/// nothing (failures are logged by the error mapping, with their errorId).
fn traced(router: Router<AppState>) -> Router<AppState> {
    if tracing::enabled!(target: "tower_http::trace", tracing::Level::DEBUG) {
        router.layer(TraceLayer::new_for_http())
    } else {
        router
    }
}

/// The management listener's routes: `/metrics`, `/healthz` and `/readyz`, nothing else.
pub fn management_router(app: Arc<App>) -> Router {
    Router::new()
        .merge(health::management_router())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(TraceLayer::new_for_http())
        .with_state(AppState(app))
}

async fn not_found() -> Response {
    status_message(StatusCode::NOT_FOUND, "no such endpoint")
}

async fn method_not_allowed(uri: axum::http::Uri) -> Response {
    // An identity provider reads every answer under /scim/v2 as SCIM JSON.
    if uri.path() == "/scim/v2" || uri.path().starts_with("/scim/v2/") {
        return scim::method_not_allowed();
    }
    status_message(
        StatusCode::METHOD_NOT_ALLOWED,
        "method not allowed on this endpoint",
    )
    .into_response()
}
