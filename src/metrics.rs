//! Counters exposed at `/metrics` in the Prometheus text format.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

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
}

pub fn inc(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

impl Metrics {
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
        out
    }
}
