//! The HTTP API: one router per area, thin handlers (extract → call the domain → map the
//! result), one error mapping.
//!
//! Imports between these files point one way, down this list (none imports this file):
//! - `serve` (the accept loop), over `tls` (the HTTPS certificate and its reload) and
//!   `routes` (the public and management routers)
//! - the areas: the API's (`auth`, `keys` and `key_report`, `users`, `system`, `audit`, `directories`,
//!   `events`, `scim`, `ssf`, `secret_scanning`, `health`) and the pages' (`ui`, which assembles `ui::account` and
//!   `ui::admin` over `ui::session`, `ui::page` and `ui::views`)
//! - `sign_in` (the OpenID Connect start and Windows sign-in, shared by `auth` and the pages)
//! - `openapi` (the document's shared parts: security schemes, error answers; it serves
//!   the document that `routes` assembles from the areas' operations)
//! - `extract` (credentials, the caller, our rejections) and `output` (shared answers)
//! - `cookies` (our cookies, their attributes), `paging`, `client_addr`
//! - `state` (`AppState`), `error` (the one error mapping)

pub mod audit;
pub mod auth;
pub mod client_addr;
pub mod cookies;
pub mod directories;
pub mod error;
pub mod events;
pub mod extract;
pub mod health;
pub mod key_report;
pub mod keys;
pub mod openapi;
pub mod output;
pub mod paging;
mod routes;
pub mod scim;
pub mod secret_scanning;
pub mod serve;
pub mod sign_in;
pub mod ssf;
pub mod state;
pub mod system;
pub mod tls;
pub mod ui;
pub mod users;

use crate::app::App;
use std::sync::Arc;

pub use routes::{api, management_router, router};

/// Serves the API on `listener` until `shutdown` completes, with the connection deadlines
/// and cap of `[server]` ([`serve::serve`]).
pub async fn serve(
    app: Arc<App>,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_listeners(app, listener, None, None, shutdown).await
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
/// both stop together. Plain HTTP on both.
pub async fn serve_with_management(
    app: Arc<App>,
    public: tokio::net::TcpListener,
    management: Option<tokio::net::TcpListener>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_listeners(app, public, None, management, shutdown).await
}

/// As [`serve_with_management`], with HTTPS on `public` when `tls` is given (the
/// management listener stays plain HTTP: it is meant for local scrapers and probes).
pub async fn serve_listeners(
    app: Arc<App>,
    public: tokio::net::TcpListener,
    tls: Option<Arc<tls::ServerTls>>,
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
            None,
            stopped(stopping.clone()),
        ))
    });
    let public = serve::serve(app, serve::Listener::Public, public, tls, stopped(stopping));
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
