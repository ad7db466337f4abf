//! Background jobs of a running daemon.

use crate::app::App;
use std::sync::Arc;
use std::time::Duration;

/// Removes expired sessions every `sessions.cleanup_interval_seconds`. Expired sessions are
/// already refused at lookup; this only keeps the table small.
pub fn spawn_session_cleanup(app: Arc<App>) -> tokio::task::JoinHandle<()> {
    let every = Duration::from_secs(app.config.sessions.cleanup_interval_seconds.max(1));
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            match crate::sessions::remove_expired(&app.store, app.clock.now()).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(removed = n, "expired sessions removed"),
                Err(e) => tracing::warn!(error = %e, "session cleanup failed"),
            }
        }
    })
}
