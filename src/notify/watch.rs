//! The messages others send (a failed certificate order, a failed backup, a start after a
//! crash), the marker that tells a clean stop from a crash, and the rule that tells a crash
//! loop from an old restart. What reads the engine, the certificates and the containers to
//! find news lives with the wiring, in `server/alerts.rs`: this module depends on nothing
//! above it, so the proxy and the databases can call it.

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::Notifier;
use super::message::{Event, Message};

/// A certificate ending within this long, and not renewed, is announced.
pub const EXPIRY_WARNING: Duration = Duration::from_secs(14 * 24 * 3600);
/// This many restarts by the engine ...
pub const CRASH_LOOP_RESTARTS: u64 = 3;
/// ... within this long is a crash loop.
pub const CRASH_LOOP_WINDOW: Duration = Duration::from_secs(600);

/// The file that exists while Rivetr runs; found at start, it means the last run ended
/// without a clean stop (a crash, `kill -9`, a power cut, a watchdog kill).
pub const RUNNING_MARKER: &str = "rivetr.running";

/// Creates the marker; whether it was already there (the previous run did not stop cleanly).
/// A state directory that has no database yet is a first start, never a crash.
pub fn mark_running(state_dir: &Path) -> std::io::Result<bool> {
    let marker = state_dir.join(RUNNING_MARKER);
    let was_there = marker.exists();
    std::fs::write(&marker, std::process::id().to_string())?;
    Ok(was_there)
}

/// Removes the marker: the stop was clean.
pub fn mark_stopped(state_dir: &Path) {
    let marker: PathBuf = state_dir.join(RUNNING_MARKER);
    if let Err(e) = std::fs::remove_file(&marker)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(path = %marker.display(), error = %e, "cannot remove the running marker; the next start will report a crash");
    }
}

impl Notifier {
    /// Rivetr started after a run that did not stop cleanly.
    pub fn started_after_crash(&self) {
        self.emit(Message::new(
            Event::StartedAfterCrash,
            "Rivetr started after a crash",
            "The previous run of Rivetr did not stop cleanly (a crash, kill -9, a power cut or \
             a watchdog kill). Apps were brought back as they were; interrupted deployments \
             and backups are marked failed. The journal has the previous run's last lines: \
             journalctl -u rivetr -b -1.",
        ));
    }

    /// A certificate order for `domain` failed (it is retried after the backoff).
    pub fn certificate_renewal_failed(&self, domain: &str, error: &str, retry_in: Duration) {
        self.emit(Message {
            domain: Some(domain.to_owned()),
            ..Message::new(
                Event::CertificateRenewalFailed,
                format!("{domain}: certificate order failed"),
                format!(
                    "The ACME order failed: {}. It is tried again in {}; GET /api/certificates \
                     shows its state.",
                    error.trim_end_matches('.'),
                    in_words(retry_in)
                ),
            )
        });
    }

    /// A backup of `database` failed; `scheduled` when a schedule took it (and tries again).
    pub fn backup_failed(&self, database: &str, backup: i64, reason: &str, scheduled: bool) {
        self.emit(Message {
            database: Some(database.to_owned()),
            url: Some(format!(
                "{}/databases/{database}",
                self.settings().dashboard_url
            )),
            ..Message::new(
                Event::BackupFailed,
                format!("{database}: backup {backup} failed"),
                format!(
                    "{}.{}",
                    reason.trim_end_matches('.'),
                    if scheduled {
                        " It is tried again at the schedule's next time."
                    } else {
                        ""
                    }
                ),
            )
        });
    }
}

/// `45 seconds`, `1 minute`, `60 minutes`.
fn in_words(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s} second{}", if s == 1 { "" } else { "s" }),
        _ => {
            let m = s.div_ceil(60);
            format!("{m} minute{}", if m == 1 { "" } else { "s" })
        }
    }
}

/// Each container's restart counts as last seen, to tell a loop from an old restart.
#[derive(Default)]
pub struct RestartHistory {
    seen: HashMap<String, ContainerRestarts>,
}

#[derive(Default)]
struct ContainerRestarts {
    /// (when, restart count) samples within the window.
    samples: VecDeque<(Instant, u64)>,
    /// Announced, and not quiet for a whole window since.
    announced: bool,
}

impl RestartHistory {
    /// Records `count` for `id` at `now`; true when this makes a loop not yet announced.
    pub fn observe(&mut self, id: &str, count: u64, now: Instant) -> bool {
        let entry = self.seen.entry(id.to_owned()).or_default();
        entry.samples.push_back((now, count));
        while entry
            .samples
            .front()
            .is_some_and(|(t, _)| now.duration_since(*t) > CRASH_LOOP_WINDOW)
        {
            entry.samples.pop_front();
        }
        let first = entry.samples.front().map_or(count, |(_, c)| *c);
        let restarts = count.saturating_sub(first);
        if restarts == 0 && entry.samples.len() > 1 {
            let oldest = entry.samples.front().map(|(t, _)| *t).unwrap_or(now);
            if now.duration_since(oldest) >= CRASH_LOOP_WINDOW / 2 {
                entry.announced = false;
            }
        }
        if restarts >= CRASH_LOOP_RESTARTS && !entry.announced {
            entry.announced = true;
            return true;
        }
        false
    }

    /// Drops containers that are gone.
    pub fn forget_others(&mut self, seen: &HashSet<String>) {
        self.seen.retain(|id, _| seen.contains(id));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_restarts_within_the_window_are_a_loop_announced_once() {
        let mut h = RestartHistory::default();
        let t0 = Instant::now();
        assert!(!h.observe("c", 0, t0));
        assert!(!h.observe("c", 2, t0 + Duration::from_secs(30)));
        assert!(h.observe("c", 3, t0 + Duration::from_secs(60)));
        assert!(
            !h.observe("c", 5, t0 + Duration::from_secs(90)),
            "said once"
        );
    }

    #[test]
    fn restarts_spread_over_more_than_the_window_are_no_loop() {
        let mut h = RestartHistory::default();
        let t0 = Instant::now();
        let step = CRASH_LOOP_WINDOW / 2 + Duration::from_secs(1);
        for (i, count) in [0u64, 1, 2, 3, 4].into_iter().enumerate() {
            assert!(!h.observe("c", count, t0 + step * i as u32), "sample {i}");
        }
    }

    #[test]
    fn a_container_already_restarted_before_it_was_first_seen_is_no_loop() {
        let mut h = RestartHistory::default();
        assert!(!h.observe("c", 40, Instant::now()));
    }

    #[test]
    fn the_running_marker_tells_a_crash_from_a_first_or_clean_start() {
        let dir = tempfile::tempdir().unwrap();
        assert!(!mark_running(dir.path()).unwrap(), "first start");
        mark_stopped(dir.path());
        assert!(!mark_running(dir.path()).unwrap(), "after a clean stop");
        assert!(mark_running(dir.path()).unwrap(), "no stop in between");
    }
}
