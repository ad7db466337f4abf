//! Counters exposed at `/metrics` in the Prometheus text format.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

#[derive(Debug, Default)]
pub struct Metrics {
    pub logins_interactive_ok: AtomicU64,
    pub logins_interactive_failed: AtomicU64,
    pub key_auth_ok: AtomicU64,
    pub key_auth_failed: AtomicU64,
    pub key_auth_not_valid_now: AtomicU64,
    pub keys_created: AtomicU64,
    pub keys_deleted: AtomicU64,
    pub users_deleted: AtomicU64,
    pub directory_unavailable: AtomicU64,
    /// Per directory: runs by status, users removed, last run's duration.
    sync: Mutex<BTreeMap<String, SyncMetrics>>,
}

#[derive(Debug, Default, Clone)]
struct SyncMetrics {
    runs: BTreeMap<&'static str, u64>,
    removed: u64,
    last_duration_ms: i64,
}

pub fn inc(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

impl Metrics {
    /// Records a finished directory sync run. `status` is the run status's own string
    /// (`RunStatus::as_str`), so the label values are a fixed few.
    pub fn sync_finished(
        &self,
        directory: &str,
        status: &'static str,
        removed: u64,
        duration_ms: i64,
    ) {
        if let Ok(mut s) = self.sync.lock() {
            let m = s.entry(directory.to_string()).or_default();
            *m.runs.entry(status).or_default() += 1;
            m.removed += removed;
            m.last_duration_ms = duration_ms;
        }
    }

    pub fn render(&self, is_leader: bool) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP accesskeyd_job_leader Whether this replica runs the scheduled jobs (1) or not (0).\n\
             # TYPE accesskeyd_job_leader gauge\naccesskeyd_job_leader {}",
            u8::from(is_leader)
        );
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let mut counter = |name: &str, help: &str, rows: &[(&str, u64)]| {
            let _ = writeln!(out, "# HELP accesskeyd_{name} {help}");
            let _ = writeln!(out, "# TYPE accesskeyd_{name} counter");
            for (labels, v) in rows {
                let _ = writeln!(out, "accesskeyd_{name}{labels} {v}");
            }
        };
        counter(
            "logins_total",
            "Interactive logins by outcome.",
            &[
                ("{outcome=\"success\"}", g(&self.logins_interactive_ok)),
                ("{outcome=\"failure\"}", g(&self.logins_interactive_failed)),
            ],
        );
        counter(
            "access_key_authentications_total",
            "Access-key authentications by outcome.",
            &[
                ("{outcome=\"success\"}", g(&self.key_auth_ok)),
                ("{outcome=\"failure\"}", g(&self.key_auth_failed)),
                (
                    "{outcome=\"not_valid_now\"}",
                    g(&self.key_auth_not_valid_now),
                ),
            ],
        );
        counter(
            "access_keys_created_total",
            "Access keys created.",
            &[("", g(&self.keys_created))],
        );
        counter(
            "access_keys_deleted_total",
            "Access keys deleted.",
            &[("", g(&self.keys_deleted))],
        );
        counter(
            "users_deleted_total",
            "Users deleted.",
            &[("", g(&self.users_deleted))],
        );
        counter(
            "directory_unavailable_total",
            "Logins that failed because a directory could not be reached.",
            &[("", g(&self.directory_unavailable))],
        );
        let sync = self.sync.lock().map(|s| s.clone()).unwrap_or_default();
        let _ = writeln!(
            out,
            "# HELP accesskeyd_sync_runs_total Directory sync runs by outcome."
        );
        let _ = writeln!(out, "# TYPE accesskeyd_sync_runs_total counter");
        for (dir, m) in &sync {
            for (status, n) in &m.runs {
                let _ = writeln!(
                    out,
                    "accesskeyd_sync_runs_total{{directory=\"{dir}\",status=\"{status}\"}} {n}"
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP accesskeyd_sync_removed_users_total Users removed by directory sync."
        );
        let _ = writeln!(out, "# TYPE accesskeyd_sync_removed_users_total counter");
        for (dir, m) in &sync {
            let _ = writeln!(
                out,
                "accesskeyd_sync_removed_users_total{{directory=\"{dir}\"}} {}",
                m.removed
            );
        }
        let _ = writeln!(
            out,
            "# HELP accesskeyd_sync_last_duration_seconds Duration of the last sync run."
        );
        let _ = writeln!(out, "# TYPE accesskeyd_sync_last_duration_seconds gauge");
        for (dir, m) in &sync {
            let _ = writeln!(
                out,
                "accesskeyd_sync_last_duration_seconds{{directory=\"{dir}\"}} {:.3}",
                m.last_duration_ms as f64 / 1000.0
            );
        }
        out
    }
}
