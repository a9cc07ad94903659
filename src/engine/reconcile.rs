//! After Rivetr starts (in particular after a crash or `kill -9`): make the engine's state,
//! the database and the routes agree again, without stopping anything that serves.
//!
//! 1. Deployments that were under way never finish: they become `failed` ("interrupted by
//!    restart"), and their containers and work directories are removed.
//! 2. Every container this installation labelled (`io.rivetr.instance`) that does not belong
//!    to an app's running deployment is removed (leftovers of interrupted or replaced
//!    deployments, of deleted apps). Other installations' containers on a shared engine are
//!    never touched.
//! 3. Each app's running deployment is brought back into service: running containers are
//!    routed as they are, stopped ones started, missing ones re-created.

use std::collections::HashSet;
use std::sync::Arc;

use serde::Serialize;

use super::{EngineError, Shared, lifecycle};
use crate::db::deployments::{self, Status};
use crate::runtime::{LABEL_APP, LABEL_DEPLOYMENT};

/// What reconciling did.
#[derive(Debug, Default, Clone, Serialize)]
pub struct ReconcileReport {
    pub interrupted: usize,
    pub removed_containers: usize,
    pub started_containers: usize,
    pub routed_apps: usize,
}

pub(crate) async fn run(shared: &Arc<Shared>) -> Result<ReconcileReport, EngineError> {
    let mut report = ReconcileReport::default();
    let interrupted = shared.db.call(|c| deployments::in_flight(c)).await?;
    for d in &interrupted {
        let id = d.id;
        shared
            .db
            .call(move |c| {
                deployments::finish_with_reason(c, id, Status::Failed, "interrupted by restart")
            })
            .await?;
        tracing::warn!(app = %d.app, deployment = d.id, was = d.status.as_str(), "deployment interrupted by restart; marked failed");
    }
    report.interrupted = interrupted.len();
    let work = shared.config.state_dir.join("work");
    if let Err(e) = tokio::fs::remove_dir_all(&work).await
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(dir = %work.display(), error = %e, "cannot clear the work directory");
    }

    let Some(runtime) = shared.current_runtime() else {
        tracing::warn!(reason = %shared.runtime.load().status.summary(), "no container runtime: apps cannot be brought back into service");
        return Ok(report);
    };
    let apps = shared.db.call(|c| crate::db::apps::list(c)).await?;
    let mut current = Vec::new();
    let mut keep: HashSet<(String, String)> = HashSet::new();
    for app in apps {
        let app_id = app.id;
        if let Some(d) = shared
            .db
            .call(move |c| deployments::running(c, app_id))
            .await?
        {
            keep.insert((app.name.clone(), d.id.to_string()));
            current.push((app, d));
        }
    }
    for c in runtime.list(&shared.instance_filter()).await? {
        let key = (
            c.labels.get(LABEL_APP).cloned().unwrap_or_default(),
            c.labels.get(LABEL_DEPLOYMENT).cloned().unwrap_or_default(),
        );
        if keep.contains(&key) {
            continue;
        }
        tracing::info!(container = %c.name, app = %key.0, deployment = %key.1, "removing a container that belongs to no running deployment");
        runtime.remove(&c.id).await?;
        report.removed_containers += 1;
    }
    for (app, d) in current {
        if app.stopped {
            continue;
        }
        match lifecycle::bring_up(shared, &app, &d, true).await {
            Ok(started) => {
                report.started_containers += started;
                report.routed_apps += 1;
            }
            Err(e) => {
                tracing::error!(app = %app.name, deployment = d.id, error = %e, "cannot bring the app back into service")
            }
        }
    }
    tracing::info!(?report, "reconciled with the container engine");
    Ok(report)
}
