//! After Rivetr starts (in particular after a crash or `kill -9`): make the engine's state,
//! the database and the routes agree again, without stopping anything that serves.
//!
//! 1. Deployments that were under way never finish: they become `failed` ("interrupted by
//!    restart"). The work directory is moved aside at once, to be deleted later.
//! 2. Each app's running deployment is brought back into service: running containers are
//!    routed as they are, stopped ones started, missing ones re-created.
//! 3. Every container this installation labelled (`io.rivetr.instance`) that does not belong
//!    to an app's running deployment is a leftover (of an interrupted or replaced deployment,
//!    of a deleted app). Other installations' containers on a shared engine are never touched.
//!
//! Only 1 and 2 hold up the caller, which sends READY afterwards: removing a leftover can
//! take the whole stop timeout when its process ignores SIGTERM, and serving must not wait
//! for that. The leftovers are listed before anything else can create containers, then
//! removed in the background, several at a time, each under its app's lock (so a deploy or
//! rollback of that app never races a removal). Shutdown interrupts the cleanup between and
//! during removals; what remains is found again at the next start.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures_util::StreamExt;
use serde::Serialize;

use super::{EngineError, Shared, lifecycle};
use crate::db::deployments::{self, Status};
use crate::runtime::{ContainerRuntime, ContainerSummary, LABEL_APP, LABEL_DEPLOYMENT};

/// Leftover containers removed at the same time: each may take the stop timeout.
const PARALLEL_REMOVALS: usize = 8;
/// Work directories moved aside at start are renamed with this prefix, then deleted.
const STALE_WORK_PREFIX: &str = "work.stale-";

/// What reconciling did before it returned.
#[derive(Debug, Default, Clone, Serialize)]
pub struct ReconcileReport {
    pub interrupted: usize,
    /// Leftover containers handed to the background cleanup.
    pub leftover_containers: usize,
    /// Leftover swarm services (on a swarm), removed in the background.
    pub leftover_services: usize,
    pub started_containers: usize,
    pub routed_apps: usize,
}

pub(crate) async fn run(shared: &Arc<Shared>) -> Result<ReconcileReport, EngineError> {
    let mut report = ReconcileReport {
        interrupted: fail_interrupted(shared).await?,
        ..ReconcileReport::default()
    };
    let stale_work = move_work_dir_aside(&shared.config.state_dir).await;

    let Some(runtime) = shared.current_runtime() else {
        tracing::warn!(reason = %shared.runtime.load().status.summary(), "no container runtime: apps cannot be brought back into service");
        spawn_cleanup(shared, None, Vec::new(), stale_work);
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
    // Listed before any app is brought up, and before the API can start a deploy: whatever
    // is created from here on is not a leftover.
    let leftovers: Vec<ContainerSummary> = runtime
        .list(&shared.instance_filter())
        .await?
        .into_iter()
        .filter(|c| !keep.contains(&app_and_deployment(c)))
        // A managed database's container carries the instance label too, but no app's.
        .filter(|c| !c.labels.contains_key(crate::databases::LABEL_DATABASE))
        .collect();
    report.leftover_containers = leftovers.len();
    if let Some(swarm) = shared.swarm() {
        let services = super::swarm::leftovers(shared, &swarm, &keep).await?;
        report.leftover_services = services.len();
        spawn_service_cleanup(shared, swarm, services);
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
    tracing::info!(
        ?report,
        "reconciled with the container engine; leftovers are removed in the background"
    );
    spawn_cleanup(shared, Some(runtime), leftovers, stale_work);
    Ok(report)
}

/// Marks the deployments a restart interrupted as failed; returns how many there were.
async fn fail_interrupted(shared: &Shared) -> Result<usize, EngineError> {
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
    Ok(interrupted.len())
}

fn app_and_deployment(c: &ContainerSummary) -> (String, String) {
    (
        c.labels.get(LABEL_APP).cloned().unwrap_or_default(),
        c.labels.get(LABEL_DEPLOYMENT).cloned().unwrap_or_default(),
    )
}

/// Renames the work directory (checkouts of interrupted deployments) out of the way, which is
/// instant whatever it holds; new deployments get a fresh one. Returns every directory moved
/// aside, now or by an earlier start whose cleanup was cut short.
async fn move_work_dir_aside(state_dir: &Path) -> Vec<PathBuf> {
    let work = state_dir.join("work");
    let aside = state_dir.join(format!(
        "{STALE_WORK_PREFIX}{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default()
    ));
    match tokio::fs::rename(&work, &aside).await {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            tracing::warn!(dir = %work.display(), error = %e, "cannot move the work directory aside")
        }
    }
    let mut stale = Vec::new();
    if let Ok(mut entries) = tokio::fs::read_dir(state_dir).await {
        while let Ok(Some(entry)) = entries.next_entry().await {
            if entry
                .file_name()
                .to_string_lossy()
                .starts_with(STALE_WORK_PREFIX)
            {
                stale.push(entry.path());
            }
        }
    }
    stale
}

/// Removes leftover swarm services in the background, each under its app's lock.
fn spawn_service_cleanup(
    shared: &Arc<Shared>,
    swarm: Arc<crate::runtime::Swarm>,
    services: Vec<String>,
) {
    if services.is_empty() {
        return;
    }
    let shared = Arc::clone(shared);
    shared.background.clone().spawn(async move {
        for name in services {
            if shared.shutdown.is_cancelled() {
                return;
            }
            tracing::info!(service = %name, "removing a swarm service that belongs to no running deployment");
            if let Err(e) = swarm.remove_service(&name).await {
                tracing::warn!(service = %name, error = %e, "cannot remove a leftover service; trying again at the next start");
            }
        }
    });
}

/// Removes the leftovers and the stale work directories in the background, on the engine's
/// tracker, so that shutdown can wait for it ([`super::Engine::wait_background`]).
fn spawn_cleanup(
    shared: &Arc<Shared>,
    runtime: Option<Arc<dyn ContainerRuntime>>,
    leftovers: Vec<ContainerSummary>,
    stale_work: Vec<PathBuf>,
) {
    if leftovers.is_empty() && stale_work.is_empty() {
        return;
    }
    let shared = Arc::clone(shared);
    shared.background.clone().spawn(async move {
        tokio::select! {
            _ = shared.shutdown.cancelled() => {
                tracing::info!("shutdown: leftover cleanup interrupted; what remains is removed at the next start");
            }
            _ = clean_up(&shared, runtime, leftovers, stale_work) => {}
        }
    });
}

async fn clean_up(
    shared: &Arc<Shared>,
    runtime: Option<Arc<dyn ContainerRuntime>>,
    leftovers: Vec<ContainerSummary>,
    stale_work: Vec<PathBuf>,
) {
    for dir in stale_work {
        if let Err(e) = tokio::fs::remove_dir_all(&dir).await
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot remove an old work directory");
        }
    }
    let Some(runtime) = runtime else {
        return;
    };
    let total = leftovers.len();
    let app_ids = app_ids(shared).await;
    let removed = futures_util::stream::iter(leftovers)
        .map(|c| {
            let runtime = Arc::clone(&runtime);
            let app_id = app_ids.get(&app_and_deployment(&c).0).copied();
            async move { remove_leftover(shared, runtime.as_ref(), &c, app_id).await }
        })
        .buffer_unordered(PARALLEL_REMOVALS)
        .filter(|removed| std::future::ready(*removed))
        .count()
        .await;
    tracing::info!(removed, of = total, "leftover containers removed");
}

/// App name -> id, for the apps that still exist (a deleted app's leftovers need no lock).
async fn app_ids(shared: &Shared) -> HashMap<String, i64> {
    match shared.db.call(|c| crate::db::apps::list(c)).await {
        Ok(apps) => apps.into_iter().map(|a| (a.name, a.id)).collect(),
        Err(e) => {
            tracing::warn!(error = %e, "cannot list apps; leftovers are removed without their app's lock");
            HashMap::new()
        }
    }
}

async fn remove_leftover(
    shared: &Shared,
    runtime: &dyn ContainerRuntime,
    c: &ContainerSummary,
    app_id: Option<i64>,
) -> bool {
    let lock = app_id.map(|id| shared.app_lock(id));
    let _one_at_a_time = match &lock {
        Some(lock) => Some(lock.lock().await),
        None => None,
    };
    let (app, deployment) = app_and_deployment(c);
    tracing::info!(container = %c.name, app, deployment, "removing a container that belongs to no running deployment");
    match runtime.remove(&c.id).await {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(container = %c.name, error = %e, "cannot remove a leftover container; trying again at the next start");
            false
        }
    }
}
