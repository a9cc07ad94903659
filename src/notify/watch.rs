//! Where messages come from besides direct calls: the engine's deployment events, the
//! certificates' validity, containers restarted by their engine over and over, and the
//! marker that tells a clean stop from a crash.

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use super::Notifier;
use super::message::{Event, Message};
use crate::db::Db;
use crate::engine::events::{Event as EngineEvent, EventKind};
use crate::proxy::tls::CertStore;
use crate::runtime::{LabelFilter, SharedDetection};

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

    /// Announces finished deployments from the engine's events until shutdown.
    pub async fn watch_deployments(
        self,
        mut events: broadcast::Receiver<EngineEvent>,
        db: Db,
        shutdown: CancellationToken,
    ) {
        loop {
            let event = tokio::select! {
                _ = shutdown.cancelled() => return,
                e = events.recv() => e,
            };
            match event {
                Ok(e) if e.kind == EventKind::DeploymentFinished => {
                    if let Some(id) = e.deployment {
                        self.announce_deployment(&db, id, &e.status).await;
                    }
                }
                Ok(_) => {}
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!(
                        missed = n,
                        "deployment events came faster than notifications were queued; some were not announced"
                    );
                }
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    }

    /// Announces deployment `id`, which ended as `status` (the event's word: by the time the
    /// row is read, a newer deployment may already have replaced it).
    async fn announce_deployment(&self, db: &Db, id: i64, status: &str) {
        let found = db
            .call(move |c| {
                let Some(d) = crate::db::deployments::get(c, id)? else {
                    return Ok(None);
                };
                let serving = crate::db::deployments::running(c, d.app_id)?;
                Ok(Some((d, serving)))
            })
            .await;
        let Ok(Some((d, serving))) = found else {
            return;
        };
        let (event, title, text) = match status {
            "running" if d.rollback_of.is_some() => (
                Event::DeploymentRolledBack,
                format!(
                    "{}: rolled back to deployment {}",
                    d.app,
                    d.rollback_of.unwrap_or(0)
                ),
                format!(
                    "Deployment {} put the image of deployment {} back into service.",
                    d.id,
                    d.rollback_of.unwrap_or(0)
                ),
            ),
            "running" => (
                Event::DeploymentSucceeded,
                format!("{}: deployment {} is live", d.app, d.id),
                match &d.commit_subject {
                    Some(subject) => format!("Now serving: {subject}"),
                    None => "The new version is serving.".to_owned(),
                },
            ),
            "failed" => (
                Event::DeploymentFailed,
                format!("{}: deployment {} failed", d.app, d.id),
                format!(
                    "{}\n\n{}",
                    d.reason.as_deref().unwrap_or("No reason was recorded."),
                    match serving {
                        Some(s) => format!("Deployment {} keeps serving.", s.id),
                        None =>
                            "Nothing of the app was serving before it, so nothing is served now."
                                .to_owned(),
                    }
                ),
            ),
            // Cancelled, superseded or replaced: someone's choice, nothing to tell.
            _ => return,
        };
        self.emit(Message {
            app: Some(d.app.clone()),
            deployment: Some(d.id),
            commit: d.commit_sha.clone(),
            url: Some(self.deployment_url(d.id)),
            ..Message::new(event, title, text)
        });
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

    /// Looks at certificates and containers every `[notifications] check_seconds`.
    pub async fn watch_health(
        self,
        certs: Arc<CertStore>,
        runtime: SharedDetection,
        shutdown: CancellationToken,
    ) {
        let mut expiring = HashSet::new();
        let mut restarts = RestartHistory::default();
        loop {
            self.check_certificates(&certs, &mut expiring).await;
            if let Some(rt) = runtime.load().runtime.clone() {
                self.check_containers(rt.as_ref(), &mut restarts).await;
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(self.settings().check_every) => {}
            }
        }
    }

    /// Announces each certificate ending within [`EXPIRY_WARNING`], once per certificate
    /// (once it reached a channel: one added later still hears of it).
    async fn check_certificates(
        &self,
        certs: &CertStore,
        announced: &mut HashSet<(String, SystemTime)>,
    ) {
        let now = SystemTime::now();
        for state in certs.certificate_states() {
            let Some(until) = state.valid_until else {
                continue;
            };
            let key = (state.domain.clone(), until);
            if until > now + EXPIRY_WARNING || announced.contains(&key) {
                continue;
            }
            let left = until.duration_since(now).unwrap_or_default();
            let ends = chrono::DateTime::<chrono::Utc>::from(until)
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
            let why = match &state.last_error {
                Some(e) => format!(" The last renewal failed: {e}."),
                None => String::new(),
            };
            let message = Message {
                domain: Some(state.domain.clone()),
                ..Message::new(
                    Event::CertificateExpiring,
                    format!(
                        "{}: certificate expires in {} days",
                        state.domain,
                        left.as_secs() / 86400
                    ),
                    format!(
                        "The {} certificate of {} is valid until {ends} and has not been renewed.{why}",
                        state.source.as_str(),
                        state.domain
                    ),
                )
            };
            match self.enqueue(message).await {
                Ok(0) => {}
                Ok(_) => {
                    announced.insert(key);
                }
                Err(e) => tracing::warn!(error = %e, "cannot queue a certificate notification"),
            }
        }
    }

    /// Announces containers of Rivetr's that their engine restarted
    /// [`CRASH_LOOP_RESTARTS`] times within [`CRASH_LOOP_WINDOW`], once per loop.
    async fn check_containers(
        &self,
        runtime: &dyn crate::runtime::ContainerRuntime,
        history: &mut RestartHistory,
    ) {
        // This installation's containers: its apps' and its databases' (which carry no
        // app label, and are the ones the engine restarts).
        let filter = [LabelFilter::eq(
            crate::runtime::LABEL_INSTANCE,
            self.db().instance_id(),
        )];
        let containers = match runtime.list(&filter).await {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!(error = %e, "cannot list containers for the crash-loop check");
                return;
            }
        };
        let now = Instant::now();
        let mut seen = HashSet::new();
        for c in containers {
            if !c.labels.contains_key(crate::runtime::LABEL_APP)
                && !c.labels.contains_key(crate::databases::LABEL_DATABASE)
            {
                continue;
            }
            let Ok(info) = runtime.inspect(&c.id).await else {
                continue;
            };
            seen.insert(info.id.clone());
            if history.observe(&info.id, info.restart_count, now) {
                let app = info
                    .labels
                    .get(crate::runtime::LABEL_APP)
                    .cloned()
                    .unwrap_or_default();
                let database = info.labels.get(crate::databases::LABEL_DATABASE).cloned();
                let what = database
                    .clone()
                    .map(|d| format!("database {d}"))
                    .unwrap_or_else(|| format!("app {app}"));
                let exit = info
                    .exit_code
                    .map(|c| format!(" Its last exit code was {c}."))
                    .unwrap_or_default();
                self.emit(Message {
                    app: database.is_none().then_some(app),
                    database,
                    ..Message::new(
                        Event::ContainerCrashLooping,
                        format!("{what}: container {} is crash looping", info.name),
                        format!(
                            "The engine restarted it {} times in {} minutes.{exit} Its output: \
                             GET the logs of the {what}.",
                            info.restart_count,
                            CRASH_LOOP_WINDOW.as_secs() / 60
                        ),
                    )
                });
            }
        }
        history.forget_others(&seen);
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
