//! `/metrics`: Rivetr's numbers in the Prometheus text format, for Prometheus and Grafana.
//!
//! Nothing here sits on a hot path. The proxy counts in its own sharded counters
//! ([`crate::proxy::metrics`]); deployments are counted here from the engine's events; the
//! certificates' states are read from the certificate store. A scrape gathers all of it into a
//! [`Snapshot`] and encodes that with `prometheus-client` (the Prometheus organisation's
//! crate) through a collector, so no value is kept twice.
//!
//! Label sets stay bounded: apps (an app's domains are summed; a `[[proxy.routes]]` entry, or
//! a host no longer routed, is labelled by its host), methods from a fixed list, status
//! classes, deployment results and stages, certificate domains. No path, no request host.

mod encode;
pub use encode::CONTENT_TYPE;
pub mod process;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::db::Db;
use crate::db::deployments::{Deployment, Status};
use crate::engine::events::{Event as EngineEvent, EventKind};
use crate::proxy::metrics::Detail;
use crate::proxy::routes::Owner;

/// Stages of a deployment, as their durations are labelled.
pub const STAGES: [&str; 5] = ["clone", "build", "start", "health_check", "switch"];
/// Upper bounds (seconds) of the stage-duration histogram's buckets.
pub const STAGE_BUCKETS: [f64; 11] = [
    0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0,
];

/// Counters kept in this process since it started.
#[derive(Clone, Default)]
pub struct Metrics {
    inner: Arc<Mutex<Counted>>,
}

#[derive(Debug, Clone, Default)]
struct Counted {
    /// (app, result) -> deployments ended so.
    deployments: BTreeMap<(String, &'static str), u64>,
    /// Per stage: bucket counts (the last past every bound), and the sum of seconds.
    stages: [([u64; STAGE_BUCKETS.len() + 1], f64); STAGES.len()],
}

/// Everything one scrape shows.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// Proxy counters by app label.
    pub routes: BTreeMap<String, Detail>,
    pub open_connections: (i64, i64),
    deployments: BTreeMap<(String, &'static str), u64>,
    stages: [([u64; STAGE_BUCKETS.len() + 1], f64); STAGES.len()],
    pub queued: usize,
    /// (domain, valid until as Unix seconds, failed orders).
    pub certificates: Vec<(String, Option<f64>, u64)>,
    pub process: process::Process,
    /// Per app: (CPU seconds, memory bytes) of its running containers; absent when the
    /// engine cannot say (never zeros in their place).
    pub containers: Option<BTreeMap<String, (f64, u64)>>,
}

/// What a deployment that ended as `status` counts as in `rivetr_deployments_total`; `None`
/// for a status that is no end of its own (`replaced`: an older deployment a newer one took
/// over from).
fn result_of(status: Status, rollback: bool) -> Option<&'static str> {
    Some(match status {
        Status::Running if rollback => "rolled_back",
        Status::Running => "succeeded",
        Status::Failed => "failed",
        Status::Cancelled => "cancelled",
        Status::Superseded => "superseded",
        _ => return None,
    })
}

/// Seconds between two stored timestamps, when both are there.
fn seconds_between(from: Option<&str>, to: Option<&str>) -> Option<f64> {
    let parse = |t: &str| chrono::DateTime::parse_from_rfc3339(t).ok();
    let (a, b) = (parse(from?)?, parse(to?)?);
    let ms = (b - a).num_milliseconds();
    (ms >= 0).then_some(ms as f64 / 1000.0)
}

/// Each stage the deployment went through, and how long it took.
fn stage_durations(d: &Deployment) -> [Option<f64>; STAGES.len()] {
    [
        seconds_between(d.cloning_at.as_deref(), d.building_at.as_deref()),
        seconds_between(d.building_at.as_deref(), d.starting_at.as_deref()),
        seconds_between(d.starting_at.as_deref(), d.health_checking_at.as_deref()),
        seconds_between(d.health_checking_at.as_deref(), d.switching_at.as_deref()),
        seconds_between(d.switching_at.as_deref(), d.running_at.as_deref()),
    ]
}

impl Metrics {
    pub fn new() -> Metrics {
        Metrics::default()
    }

    /// Counts a deployment that ended as `status` (the event's: the row may have moved on to
    /// `replaced` since).
    pub fn count_deployment(&self, d: &Deployment, status: Status) {
        let Some(result) = result_of(status, d.rollback_of.is_some()) else {
            return;
        };
        let mut counted = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        *counted
            .deployments
            .entry((d.app.clone(), result))
            .or_default() += 1;
        for (stage, seconds) in stage_durations(d).into_iter().enumerate() {
            if let Some(s) = seconds {
                let bucket = STAGE_BUCKETS
                    .iter()
                    .position(|&b| s <= b)
                    .unwrap_or(STAGE_BUCKETS.len());
                counted.stages[stage].0[bucket] += 1;
                counted.stages[stage].1 += s;
            }
        }
    }

    /// Counts deployments as the engine ends them, until shutdown.
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
                    let Some(id) = e.deployment else { continue };
                    let Some(status) = Status::parse(&e.status) else {
                        continue;
                    };
                    if let Ok(Some(d)) = db.call(move |c| crate::db::deployments::get(c, id)).await
                    {
                        self.count_deployment(&d, status);
                    }
                }
                Ok(_) => {}
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!(
                        missed = n,
                        "deployment events came faster than they were counted"
                    );
                }
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    }

    /// Gathers a scrape's numbers.
    pub async fn snapshot(&self, state: &crate::AppState) -> Snapshot {
        let mut routes: BTreeMap<String, Detail> = BTreeMap::new();
        for (host, owner, detail) in state.engine.route_details() {
            let label = match owner {
                Some(Owner::App(app)) => app,
                _ => host,
            };
            routes.entry(label).or_default().add(&detail);
        }
        let counted = self.inner.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let unix = |t: std::time::SystemTime| {
            t.duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .ok()
        };
        let certificates = state
            .certificates
            .certificate_states()
            .into_iter()
            .map(|c| (c.domain, c.valid_until.and_then(unix), c.failures_total))
            .collect();
        let containers = match state.engine.container_stats(None).await {
            Ok(crate::engine::ContainerUse::Samples(samples)) => {
                let mut by_app: BTreeMap<String, (f64, u64)> = BTreeMap::new();
                for s in samples {
                    let e = by_app.entry(s.app).or_default();
                    e.0 += s.stats.cpu_seconds;
                    e.1 += s.stats.memory_bytes;
                }
                Some(by_app)
            }
            Ok(crate::engine::ContainerUse::Unavailable(_)) | Err(_) => None,
        };
        Snapshot {
            containers,
            routes,
            open_connections: crate::proxy::metrics::open_connections(),
            deployments: counted.deployments,
            stages: counted.stages,
            queued: state.engine.queued_count().await,
            certificates,
            process: process::Process::read(),
        }
    }

    /// The Prometheus text (format 0.0.4) of a scrape.
    pub async fn render(&self, state: &crate::AppState) -> String {
        encode::text(self.snapshot(state).await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployment(status: Status, rollback_of: Option<i64>) -> Deployment {
        Deployment {
            id: 7,
            app_id: 1,
            app: "web".into(),
            status,
            trigger: "api".into(),
            git_ref: None,
            commit_sha: None,
            commit_subject: None,
            image: None,
            reason: None,
            rollback_of,
            settings: None,
            queued_at: "2026-12-03T07:00:00.000Z".into(),
            cloning_at: Some("2026-12-03T07:00:00.000Z".into()),
            building_at: Some("2026-12-03T07:00:01.500Z".into()),
            starting_at: Some("2026-12-03T07:00:41.500Z".into()),
            health_checking_at: Some("2026-12-03T07:00:42.000Z".into()),
            switching_at: Some("2026-12-03T07:00:44.000Z".into()),
            running_at: Some("2026-12-03T07:00:44.100Z".into()),
            finished_at: None,
        }
    }

    #[test]
    fn deployments_are_counted_by_result_and_their_stages_timed() {
        let m = Metrics::new();
        m.count_deployment(&deployment(Status::Running, None), Status::Running);
        m.count_deployment(&deployment(Status::Running, Some(3)), Status::Running);
        m.count_deployment(&deployment(Status::Replaced, None), Status::Replaced);
        let c = m.inner.lock().unwrap().clone();
        assert_eq!(c.deployments.get(&("web".into(), "succeeded")), Some(&1));
        assert_eq!(c.deployments.get(&("web".into(), "rolled_back")), Some(&1));
        assert_eq!(c.deployments.len(), 2, "replaced is no end of its own");
        let (build_buckets, build_sum) = c.stages[1];
        assert_eq!(build_buckets[6], 2, "40 s: the 60 s bucket");
        assert!((build_sum - 80.0).abs() < 1e-9);
        assert!((c.stages[0].1 - 3.0).abs() < 1e-9, "clone 1.5 s twice");
    }
}
