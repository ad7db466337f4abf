//! Counters exposed at `/metrics` in the Prometheus text format.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;

#[derive(Debug, Default)]
pub struct Metrics {
    pub logins_interactive_ok: AtomicU64,
    pub logins_interactive_failed: AtomicU64,
    pub key_auth_ok: AtomicU64,
    /// Key uses refused because the client was outside the key's networks.
    pub key_auth_network_refused: AtomicU64,
    /// Requests authenticated by a session opened with a key, from memory or not (Basic key
    /// requests are `key_auth_ok`).
    pub key_session_requests: AtomicU64,
    pub key_auth_failed: AtomicU64,
    pub key_auth_not_valid_now: AtomicU64,
    pub keys_created: AtomicU64,
    pub keys_deleted: AtomicU64,
    /// Keys deleted because a secret scanner found them in public (also in `keys_deleted`).
    pub keys_leaked: AtomicU64,
    pub users_deleted: AtomicU64,
    pub directory_unavailable: AtomicU64,
    /// Per directory: runs by status, users removed, last run's duration.
    sync: Mutex<BTreeMap<String, SyncMetrics>>,
    /// Per directory: change signals applied by effect and outcome, feed changes seen, feed
    /// reconnects. Labels come from the configuration and fixed names, so they stay few.
    signals: Mutex<BTreeMap<String, SignalMetrics>>,
    /// Shared signals: events by (directory, event type, outcome) and refused SETs by
    /// (directory, error code). Only configured directories and fixed names are labels.
    ssf_events: Mutex<BTreeMap<(String, &'static str, &'static str), u64>>,
    ssf_refused: Mutex<BTreeMap<(String, &'static str), u64>>,
    /// The HTTPS certificate's end (Unix seconds); 0 = no HTTPS listener.
    tls_certificate_expiry: AtomicI64,
}

#[derive(Debug, Default, Clone)]
struct SignalMetrics {
    applied: BTreeMap<(&'static str, &'static str), u64>,
    changes: u64,
    reconnects: u64,
}

#[derive(Debug, Default, Clone)]
struct SyncMetrics {
    runs: BTreeMap<&'static str, u64>,
    removed: u64,
    last_duration_ms: i64,
    /// Domain controllers of the last run that read them (`lastLogon`): read or not.
    controllers: BTreeMap<String, bool>,
}

/// A label value as the exposition format wants it: backslash, quote and newline escaped
/// (controller names come from DNS).
fn label_value(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
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

    /// The domain controllers a sync run read `lastLogon` from (true) or could not (false);
    /// replaces the last run's, so a controller gone from DNS stops being reported.
    pub fn controllers_read(&self, directory: &str, controllers: &[(String, bool)]) {
        if let Ok(mut s) = self.sync.lock() {
            let m = s.entry(directory.to_string()).or_default();
            m.controllers = controllers.iter().cloned().collect();
        }
    }

    fn signals(&self, directory: &str, f: impl FnOnce(&mut SignalMetrics)) {
        if let Ok(mut s) = self.signals.lock() {
            f(s.entry(directory.to_string()).or_default());
        }
    }

    /// A change signal was applied (`effect` and `outcome` are fixed names).
    pub fn signal_applied(&self, directory: &str, effect: &'static str, outcome: &'static str) {
        self.signals(directory, |m| {
            *m.applied.entry((effect, outcome)).or_default() += 1
        });
    }

    /// A change feed delivered `n` changes.
    pub fn feed_changes(&self, directory: &str, n: u64) {
        self.signals(directory, |m| m.changes += n);
    }

    /// A change feed lost its connection (or could not open it) and will reconnect.
    pub fn feed_reconnect(&self, directory: &str) {
        self.signals(directory, |m| m.reconnects += 1);
    }

    /// A shared-signals event was handled (`event` and `outcome` are fixed names).
    pub fn ssf_event(&self, directory: &str, event: &'static str, outcome: &'static str) {
        if let Ok(mut m) = self.ssf_events.lock() {
            *m.entry((directory.to_string(), event, outcome))
                .or_default() += 1;
        }
    }

    /// A SET sent to a directory with shared signals was refused with error code `err`.
    pub fn ssf_refused(&self, directory: &str, err: &'static str) {
        if let Ok(mut m) = self.ssf_refused.lock() {
            *m.entry((directory.to_string(), err)).or_default() += 1;
        }
    }

    /// The HTTPS certificate now served ends at `not_after` (Unix seconds).
    pub fn set_tls_certificate_expiry(&self, not_after: i64) {
        self.tls_certificate_expiry
            .store(not_after, Ordering::Relaxed);
    }

    pub fn render(&self, is_leader: bool) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP accesskeyd_job_leader Whether this replica runs the scheduled jobs (1) or not (0).\n\
             # TYPE accesskeyd_job_leader gauge\naccesskeyd_job_leader {}",
            u8::from(is_leader)
        );
        let not_after = self.tls_certificate_expiry.load(Ordering::Relaxed);
        if not_after != 0 {
            let _ = writeln!(
                out,
                "# HELP accesskeyd_tls_certificate_expiry_timestamp_seconds When the HTTPS \
                 certificate now served expires (Unix time).\n\
                 # TYPE accesskeyd_tls_certificate_expiry_timestamp_seconds gauge\n\
                 accesskeyd_tls_certificate_expiry_timestamp_seconds {not_after}"
            );
        }
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
                (
                    "{outcome=\"network_refused\"}",
                    g(&self.key_auth_network_refused),
                ),
            ],
        );
        counter(
            "access_key_session_requests_total",
            "Requests authenticated by a session opened with an access key.",
            &[("", g(&self.key_session_requests))],
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
            "access_keys_leaked_total",
            "Access keys deleted because a secret scanner reported them found in public.",
            &[("", g(&self.keys_leaked))],
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
        let _ = writeln!(
            out,
            "# HELP accesskeyd_domain_controller_up Whether the last sync read lastLogon from this domain controller (1) or could not (0)."
        );
        let _ = writeln!(out, "# TYPE accesskeyd_domain_controller_up gauge");
        for (dir, m) in &sync {
            for (controller, up) in &m.controllers {
                let _ = writeln!(
                    out,
                    "accesskeyd_domain_controller_up{{directory=\"{dir}\",controller=\"{}\"}} {}",
                    label_value(controller),
                    u8::from(*up)
                );
            }
        }
        let signals = self.signals.lock().map(|s| s.clone()).unwrap_or_default();
        let family = |out: &mut String, name: &str, help: &str| {
            let _ = writeln!(out, "# HELP accesskeyd_{name} {help}");
            let _ = writeln!(out, "# TYPE accesskeyd_{name} counter");
        };
        family(
            &mut out,
            "signals_total",
            "Change signals (feeds, shared signals) applied, by effect and outcome.",
        );
        for (dir, m) in &signals {
            for ((effect, outcome), n) in &m.applied {
                let _ = writeln!(
                    out,
                    "accesskeyd_signals_total{{directory=\"{dir}\",effect=\"{effect}\",outcome=\"{outcome}\"}} {n}"
                );
            }
        }
        family(
            &mut out,
            "feed_changes_total",
            "Changes delivered by directory change feeds.",
        );
        for (dir, m) in &signals {
            let _ = writeln!(
                out,
                "accesskeyd_feed_changes_total{{directory=\"{dir}\"}} {}",
                m.changes
            );
        }
        family(
            &mut out,
            "feed_reconnects_total",
            "Times a directory change feed lost its connection and reconnected.",
        );
        for (dir, m) in &signals {
            let _ = writeln!(
                out,
                "accesskeyd_feed_reconnects_total{{directory=\"{dir}\"}} {}",
                m.reconnects
            );
        }
        let ssf_events = self
            .ssf_events
            .lock()
            .map(|m| m.clone())
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "# HELP accesskeyd_ssf_events_total Shared-signals events received, by event type and outcome."
        );
        let _ = writeln!(out, "# TYPE accesskeyd_ssf_events_total counter");
        for ((dir, event, outcome), n) in &ssf_events {
            let _ = writeln!(
                out,
                "accesskeyd_ssf_events_total{{directory=\"{dir}\",event=\"{event}\",outcome=\"{outcome}\"}} {n}"
            );
        }
        let ssf_refused = self
            .ssf_refused
            .lock()
            .map(|m| m.clone())
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "# HELP accesskeyd_ssf_sets_refused_total Security Event Tokens refused, by RFC 8935 error code."
        );
        let _ = writeln!(out, "# TYPE accesskeyd_ssf_sets_refused_total counter");
        for ((dir, err), n) in &ssf_refused {
            let _ = writeln!(
                out,
                "accesskeyd_ssf_sets_refused_total{{directory=\"{dir}\",err=\"{err}\"}} {n}"
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domain_controllers_of_the_last_run_only_are_reported_with_escaped_names() {
        let m = Metrics::default();
        m.controllers_read(
            "corp",
            &[
                ("ldap://dc1:389".into(), true),
                ("ldap://dc\"2\\:389".into(), false),
            ],
        );
        let out = m.render(true);
        assert!(out.contains(
            "accesskeyd_domain_controller_up{directory=\"corp\",controller=\"ldap://dc1:389\"} 1"
        ));
        assert!(out.contains(
            "accesskeyd_domain_controller_up{directory=\"corp\",controller=\"ldap://dc\\\"2\\\\:389\"} 0"
        ));
        m.controllers_read("corp", &[("ldap://dc1:389".into(), false)]);
        let out = m.render(true);
        assert!(out.contains("controller=\"ldap://dc1:389\"} 0"));
        assert!(
            !out.contains("dc\\\"2"),
            "a controller no longer read is no longer reported"
        );
    }
}
