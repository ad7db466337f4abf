//! The scheduled cleanup on the daemon's own database: expired sessions go, live ones stay,
//! and each run is recorded with the replica that ran it.

use crate::app::TestApp;
use axum::http::StatusCode;

#[tokio::test]
async fn cleanup_removes_expired_sessions_and_records_its_runs() {
    let app = TestApp::spawn().await;
    let old = app.admin().await;
    // 13 hours later the first session has expired (12 h); a new one has not.
    app.advance(chrono::Duration::hours(13));
    let fresh = app.admin().await;
    assert_eq!(app.me(&old).await.status, StatusCode::UNAUTHORIZED);

    let daemon = app.app.clone();
    let detail = tokio::task::spawn_blocking(move || {
        let now = daemon.clock.now();
        daemon
            .leadership
            .run_blocking("session-cleanup", daemon.clock.as_ref(), |conn| {
                accesskeyd::jobs::cleanup(conn, now, &[])
            })
    })
    .await
    .unwrap()
    .unwrap();
    assert_eq!(
        detail.as_deref(),
        Some("removed 1 expired session(s), 0 old job record(s) and 0 deprovisioned user(s)")
    );
    assert!(app.app.leadership.is_leader(), "the only process leads");
    assert_eq!(app.me(&fresh).await.status, StatusCode::OK);

    let runs: Vec<(String, String, Option<String>)> = {
        use accesskeyd::store::schema::job_runs;
        use diesel::prelude::*;
        app.app
            .store
            .read(|c| {
                Ok(job_runs::table
                    .select((job_runs::job, job_runs::replica, job_runs::outcome))
                    .load(c)?)
            })
            .await
            .unwrap()
    };
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].0, "session-cleanup");
    assert_eq!(runs[0].1, accesskeyd::services::replica_id());
    assert_eq!(runs[0].2.as_deref(), Some("success"));
    let metrics = app.metrics().await;
    assert!(metrics.lines().any(|l| l == "accesskeyd_job_leader 1"));
}
