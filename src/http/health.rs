//! Liveness, readiness and metrics. `/healthz` and `/readyz` are on both listeners (load
//! balancers probe the public one); `/metrics` only on the management listener
//! (`server.management_listen`), so that its numbers are not for everyone who can reach
//! the API.

use super::state::AppState;
use crate::passwords::HashStats;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use std::fmt::Write;

/// The probes, for the public listener.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
}

/// The probes and `/metrics`, for the management listener.
pub fn management_router() -> Router<AppState> {
    router().route("/metrics", get(metrics))
}

async fn healthz() -> impl IntoResponse {
    (StatusCode::OK, "ok\n")
}

/// Ready when the database answers and every migration is applied.
async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    match state.0.store.ready().await {
        Ok(()) => (StatusCode::OK, "ready\n".to_string()),
        Err(e) => {
            // Probed every few seconds by load balancers: the detail (hosts, addresses) goes
            // to the debug log, the answer says only what is wrong.
            tracing::debug!(error = %e, "not ready");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("not ready: {}\n", e.public_message()),
            )
        }
    }
}

async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let mut body = state.0.metrics.render(state.0.leadership.is_leader());
    body.push_str(&hashing_metrics(&state.0.hasher.stats()));
    body.push_str(&request_path_metrics(&state.0));
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body)
}

/// Password hashing load, in the style of `Metrics::render`.
fn hashing_metrics(s: &HashStats) -> String {
    let rows = [
        (
            "password_hashing_shed_total",
            "counter",
            "Password hashing work refused with 503 because the queue was full.",
            s.shed_total,
        ),
        (
            "password_hashing_running",
            "gauge",
            "Password hashes running now.",
            u64::try_from(s.running).unwrap_or(u64::MAX),
        ),
        (
            "password_hashing_queued",
            "gauge",
            "Password hashes waiting for a free slot now.",
            u64::try_from(s.queued).unwrap_or(u64::MAX),
        ),
    ];
    prometheus(&rows)
}

/// (name, counter or gauge, help, value) rows as Prometheus text.
fn prometheus(rows: &[(&str, &str, &str, u64)]) -> String {
    let mut out = String::new();
    for (name, kind, help, v) in rows {
        let _ = writeln!(out, "# HELP accesskeyd_{name} {help}");
        let _ = writeln!(out, "# TYPE accesskeyd_{name} {kind}");
        let _ = writeln!(out, "accesskeyd_{name} {v}");
    }
    out
}

/// The credential cache and the throttle, in the same style.
fn request_path_metrics(app: &crate::app::App) -> String {
    let (hits, misses) = app.auth_cache.counts();
    let (keys, sessions, users) = app.auth_cache.sizes();
    let rows: [(&str, &str, &str, u64); 5] = [
        (
            "credential_cache_hits_total",
            "counter",
            "Authentications decided from memory.",
            hits,
        ),
        (
            "credential_cache_misses_total",
            "counter",
            "Authentications that read the database although memory was asked.",
            misses,
        ),
        (
            "credential_cache_live",
            "gauge",
            "Whether remembered decisions are used (1): 0 while other replicas' revocations cannot be heard.",
            u64::from(app.auth_cache.is_live()),
        ),
        (
            "credential_cache_entries",
            "gauge",
            "Keys, sessions and users remembered.",
            u64::try_from(keys + sessions + users).unwrap_or(u64::MAX),
        ),
        (
            "throttle_refusals_total",
            "counter",
            "Attempts refused with 429 by the failed-login throttle.",
            app.throttle.refused_total(),
        ),
    ];
    prometheus(&rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashing_metrics_are_prometheus_text() {
        let text = hashing_metrics(&HashStats {
            running: 2,
            queued: 5,
            shed_total: 7,
        });
        assert!(text.contains(
            "# TYPE accesskeyd_password_hashing_shed_total counter\naccesskeyd_password_hashing_shed_total 7\n"
        ));
        assert!(text.contains("# TYPE accesskeyd_password_hashing_running gauge\naccesskeyd_password_hashing_running 2\n"));
        assert!(text.contains("accesskeyd_password_hashing_queued 5\n"));
    }
}
