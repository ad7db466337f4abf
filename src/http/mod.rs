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
    let router = Router::new()
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
    serve_with_management(app, listener, None, shutdown).await
}

/// Binds the management listener at `address` (`server.management_listen`); None when
/// the address is empty, which turns it off.
pub async fn bind_management(address: &str) -> std::io::Result<Option<tokio::net::TcpListener>> {
    let address = address.trim();
    if address.is_empty() {
        return Ok(None);
    }
    tokio::net::TcpListener::bind(address).await.map(Some)
}

/// Serves the API on `public` and, if there is one, the management routes on
/// `management` (with a small connection cap of its own), until `shutdown` completes;
/// both stop together.
pub async fn serve_with_management(
    app: Arc<App>,
    public: tokio::net::TcpListener,
    management: Option<tokio::net::TcpListener>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    // Known credentials are decided from memory only while this process hears other
    // processes' revocations; that lasts exactly as long as it serves.
    let hearing = crate::hearing::Hearing::start(&app.services)?;
    let (stop, stopping) = tokio::sync::watch::channel(false);
    let management = management.map(|listener| {
        tokio::spawn(serve::serve(
            app.clone(),
            serve::Listener::Management,
            listener,
            stopped(stopping.clone()),
        ))
    });
    let public = serve::serve(app, serve::Listener::Public, public, stopped(stopping));
    tokio::pin!(public, shutdown);
    let result = tokio::select! {
        // Only ends early on an error; the management listener stops with it.
        r = &mut public => r,
        () = &mut shutdown => {
            let _ = stop.send(true);
            public.await
        }
    };
    let _ = stop.send(true);
    if let Some(task) = management {
        match task.await {
            Ok(Err(e)) => tracing::warn!(error = %e, "the management listener failed"),
            Err(e) => tracing::warn!(error = %e, "the management listener's task failed"),
            Ok(Ok(())) => {}
        }
    }
    if let Some(h) = hearing {
        let _ = tokio::task::spawn_blocking(move || h.stop()).await;
    }
    result
}

/// Completes when `true` is sent, or when the sender is gone.
async fn stopped(mut stopping: tokio::sync::watch::Receiver<bool>) {
    while !*stopping.borrow_and_update() {
        if stopping.changed().await.is_err() {
            return;
        }
    }
}
