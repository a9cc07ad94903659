//! The sd_notify protocol: what Rivetr tells systemd about its state.
//!
//! Failures to notify are logged and otherwise ignored: a missing notify socket must never
//! stop Rivetr from serving.

use sd_notify::NotifyState;

fn send(states: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::warn!(error = %e, "sd_notify failed");
    }
}

/// `READY=1` with a status line: Rivetr serves from now on.
pub fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// A `STATUS=` line for `systemctl status`.
pub fn status(status: &str) {
    send(&[NotifyState::Status(status)]);
}

/// `RELOADING=1` with the monotonic timestamp systemd expects alongside it.
pub fn reloading() {
    match NotifyState::monotonic_usec_now() {
        Ok(now) => send(&[
            NotifyState::Reloading,
            now,
            NotifyState::Status("reloading configuration"),
        ]),
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the monotonic clock");
            send(&[NotifyState::Reloading]);
        }
    }
}

/// `STOPPING=1`: shutdown has begun.
pub fn stopping() {
    send(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
}

/// `WATCHDOG=1`: one heartbeat.
pub fn watchdog() {
    send(&[NotifyState::Watchdog]);
}
