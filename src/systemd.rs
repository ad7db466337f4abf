//! Telling systemd how the service is doing (`Type=notify`): ready, reloading, stopping, and
//! the watchdog fed from the runtime. Without `NOTIFY_SOCKET` (not started by systemd, or
//! by a unit of another type) every function here does nothing.

use std::time::Duration;

/// The variable systemd sets to the socket it listens on for this service's notifications.
const NOTIFY_SOCKET: &str = "NOTIFY_SOCKET";

/// Whether systemd listens for this process's notifications.
fn notifying() -> bool {
    std::env::var_os(NOTIFY_SOCKET).is_some_and(|s| !s.is_empty())
}

fn send(states: &[sd_notify::NotifyState]) {
    if !notifying() {
        return;
    }
    // A lost notification is worth a log line, never worth stopping the service for:
    // systemd's own timeouts say what went wrong.
    if let Err(e) = sd_notify::notify(states) {
        tracing::warn!(error = %e, "cannot notify systemd");
    }
}

/// The listeners are bound and the database is migrated: systemd may start what depends
/// on the service (`READY=1`).
pub fn ready() {
    send(&[
        sd_notify::NotifyState::Ready,
        sd_notify::NotifyState::Status("serving"),
    ]);
}

/// Shutdown has begun (`STOPPING=1`): open requests are being finished.
pub fn stopping() {
    send(&[
        sd_notify::NotifyState::Stopping,
        sd_notify::NotifyState::Status("stopping: finishing open requests"),
    ]);
}

/// A reload (SIGHUP) has begun (`RELOADING=1` with the monotonic time, as systemd 253's
/// `Type=notify-reload` wants it; older versions ignore the time). Follow it with
/// [`ready_after_reload`] whether the reload worked or not.
pub fn reloading() {
    let mut states = vec![
        sd_notify::NotifyState::Reloading,
        sd_notify::NotifyState::Status("reloading"),
    ];
    if let Ok(now) = sd_notify::NotifyState::monotonic_usec_now() {
        states.push(now);
    }
    send(&states);
}

/// The reload is over (`READY=1`); `outcome` goes to `systemctl status` (e.g. "serving" or
/// "serving with the old certificate: ...").
pub fn ready_after_reload(outcome: &str) {
    send(&[
        sd_notify::NotifyState::Ready,
        sd_notify::NotifyState::Status(outcome),
    ]);
}

/// How often to feed the watchdog: half its timeout, so one late tick is not fatal. None
/// when there is no watchdog for this process: `WATCHDOG_USEC` unset, zero or not a number,
/// or `WATCHDOG_PID` naming another process (a child that inherited the variables).
pub fn watchdog_period(usec: Option<&str>, pid: Option<&str>, own_pid: u32) -> Option<Duration> {
    let usec: u64 = usec?.trim().parse().ok().filter(|u| *u > 0)?;
    if let Some(pid) = pid {
        if pid.trim().parse::<u32>().ok()? != own_pid {
            return None;
        }
    }
    Some(Duration::from_micros(usec / 2).max(Duration::from_millis(1)))
}

/// Feeds systemd's watchdog (`WATCHDOG=1`) from a task on the runtime, at half the
/// `WatchdogSec` of the unit. The task runs only while the runtime schedules tasks: a
/// runtime that hangs (every worker blocked) stops feeding, and systemd restarts the
/// service. None (no task) without a watchdog or without `NOTIFY_SOCKET`.
pub fn spawn_watchdog() -> Option<tokio::task::JoinHandle<()>> {
    if !notifying() {
        return None;
    }
    let usec = std::env::var("WATCHDOG_USEC").ok();
    let pid = std::env::var("WATCHDOG_PID").ok();
    let period = watchdog_period(usec.as_deref(), pid.as_deref(), std::process::id())?;
    tracing::info!(
        period_ms = period.as_millis() as u64,
        "feeding the systemd watchdog"
    );
    Some(tokio::spawn(async move {
        let mut tick = tokio::time::interval(period);
        // After a stall, one feed now, not a burst of the missed ones.
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            send(&[sd_notify::NotifyState::Watchdog]);
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_watchdog_is_fed_at_half_its_timeout() {
        assert_eq!(
            watchdog_period(Some("30000000"), None, 7),
            Some(Duration::from_secs(15))
        );
        assert_eq!(
            watchdog_period(Some("1000000"), Some("7"), 7),
            Some(Duration::from_millis(500))
        );
    }

    #[test]
    fn no_watchdog_when_unset_zero_garbage_or_for_another_process() {
        assert_eq!(watchdog_period(None, None, 7), None);
        assert_eq!(watchdog_period(Some("0"), None, 7), None);
        assert_eq!(watchdog_period(Some("soon"), None, 7), None);
        assert_eq!(watchdog_period(Some("-5"), None, 7), None);
        // Inherited by a child: the parent is the one systemd watches.
        assert_eq!(watchdog_period(Some("1000000"), Some("8"), 7), None);
        assert_eq!(watchdog_period(Some("1000000"), Some("x"), 7), None);
    }

    #[test]
    fn a_tiny_timeout_still_gives_a_period_tokio_accepts() {
        assert_eq!(
            watchdog_period(Some("1"), None, 7),
            Some(Duration::from_millis(1))
        );
    }
}
