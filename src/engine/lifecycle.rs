//! Stopping, starting, deleting an app, and bringing its running deployment back into
//! service (after a stop, or after Rivetr itself restarted).

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::health::{self, Unhealthy};
use super::log::DeployLog;
use super::pipeline::{environment, run_spec};
use super::settings::Settings;
use super::{EngineError, Shared};
use crate::db::apps::App;
use crate::db::deployments::{self, Deployment};
use crate::runtime::{ContainerRuntime, ContainerState, ContainerSummary, ImageFilter};

pub(crate) async fn stop(shared: &Shared, app: &App) -> Result<(), EngineError> {
    let lock = shared.app_lock(app.id);
    let _one_at_a_time = lock.lock().await;
    let runtime = shared.runtime()?;
    let id = app.id;
    shared
        .db
        .call(move |c| crate::db::apps::set_stopped(c, id, true))
        .await?;
    shared.set_routes(app, Vec::new());
    if let Some(swarm) = shared.swarm() {
        super::swarm::stop(shared, &swarm, &app.name)
            .await
            .map_err(EngineError::Swarm)?;
    } else {
        for c in runtime.list(&shared.app_filter(&app.name)).await? {
            // A replaced deployment's container is removed after its drain, outside the app's
            // lock: one listed here may be gone by its stop, and gone is stopped.
            match runtime.stop(&c.id, shared.config.stop_timeout).await {
                Err(e) if e.is_not_found() => {}
                other => other?,
            }
        }
    }
    tracing::info!(app = %app.name, "app stopped");
    Ok(())
}

pub(crate) async fn start(shared: &Arc<Shared>, app: &App) -> Result<(), EngineError> {
    let lock = shared.app_lock(app.id);
    let _one_at_a_time = lock.lock().await;
    let app_id = app.id;
    let current = shared
        .db
        .call(move |c| deployments::running(c, app_id))
        .await?
        .ok_or_else(|| EngineError::NeverDeployed(app.name.clone()))?;
    bring_up(shared, app, &current, true).await?;
    shared
        .db
        .call(move |c| crate::db::apps::set_stopped(c, app_id, false))
        .await?;
    tracing::info!(app = %app.name, deployment = current.id, "app started");
    Ok(())
}

/// Makes the containers of `current` run and routes the app to them. Containers already
/// running are routed as they are (never restarted); stopped ones are started, missing ones
/// created from the deployment's image; those two are health-checked before they get
/// traffic.
pub(crate) async fn bring_up(
    shared: &Arc<Shared>,
    app: &App,
    current: &Deployment,
    check_new: bool,
) -> Result<usize, EngineError> {
    let runtime = shared.runtime()?;
    let settings = current
        .settings
        .as_deref()
        .and_then(Settings::from_json)
        .unwrap_or_else(|| Settings::from_app(app, shared.config.drain_seconds));
    if let Some(swarm) = shared.swarm() {
        return super::swarm::bring_up(shared, &swarm, app, current, &settings).await;
    }
    let log = DeployLog::open(
        shared.db.clone(),
        Arc::clone(&shared.logs),
        current.id,
        &app.name,
    );
    let existing = runtime
        .list(&shared.deployment_filter(&app.name, current.id))
        .await?;
    let mut upstreams: Vec<SocketAddr> = Vec::new();
    let mut woken = 0;
    let mut to_check: Vec<(String, u16)> = Vec::new();
    for replica in 0..settings.replicas {
        let name = shared.container_name(&app.name, current.id, replica);
        let found = existing
            .iter()
            .find(|c| is_replica(c, &app.name, current.id, replica));
        let info = match found {
            Some(c) if c.state == ContainerState::Running => runtime.inspect(&c.id).await?,
            Some(c) => {
                runtime.start(&c.id).await?;
                woken += 1;
                log.say(&format!("started the stopped container {}", c.name));
                let info = runtime.inspect(&c.id).await?;
                if let Some(p) = info.host_port {
                    to_check.push((info.id.clone(), p));
                }
                info
            }
            None => {
                let Some(image) = current.image.as_deref() else {
                    log.say(&format!(
                        "container {name} is gone and its image is not recorded"
                    ));
                    continue;
                };
                let env = environment(shared, app, &settings, &log)
                    .await
                    .map_err(EngineError::Environment)?;
                env.prepare(runtime.as_ref()).await?;
                let spec = run_spec(shared, app, current.id, replica, image, &settings, &env);
                let info = runtime.run(&spec).await?;
                woken += 1;
                log.say(&format!("re-created the missing container {name}"));
                if let Some(p) = info.host_port {
                    to_check.push((info.id.clone(), p));
                }
                info
            }
        };
        if let Some(p) = info.host_port {
            upstreams.push(SocketAddr::from(([127, 0, 0, 1], p)));
        }
    }
    if check_new {
        let never = CancellationToken::new();
        for (id, port) in &to_check {
            if let Err(Unhealthy::Failed(why)) =
                health::wait_healthy(&runtime, id, *port, &settings.healthcheck, &log, &never).await
            {
                log.say(&format!("container did not become healthy: {why}"));
            }
        }
    }
    shared.set_routes(app, upstreams);
    log.flush().await;
    Ok(woken)
}

pub(crate) async fn delete(shared: &Shared, app: &App) -> Result<(), EngineError> {
    let lock = shared.app_lock(app.id);
    let _one_at_a_time = lock.lock().await;
    shared.set_routes(app, Vec::new());
    if let Some(swarm) = shared.swarm() {
        super::swarm::remove_app(shared, &swarm, &app.name)
            .await
            .map_err(EngineError::Swarm)?;
    }
    if let Some(runtime) = shared.current_runtime() {
        for c in runtime.list(&shared.app_filter(&app.name)).await? {
            runtime.remove(&c.id).await?;
        }
        for image in own_images(shared, &runtime, app).await? {
            if let Err(e) = runtime.remove_image(&image).await {
                tracing::warn!(app = %app.name, image = %image, error = %e, "cannot remove an image of a deleted app");
            }
        }
    }
    let id = app.id;
    shared
        .db
        .call(move |c| crate::db::apps::delete(c, id))
        .await?;
    if app.preview_of.is_some() {
        // A closed PR's host never comes back: its certificate and counters go too.
        shared.routes.retire(&app.domains);
    }
    tracing::info!(app = %app.name, "app deleted");
    Ok(())
}

/// The images this installation built for `app`: every tag under its own repository, and the
/// older, unscoped names its deployments recorded. Never another installation's.
async fn own_images(
    shared: &Shared,
    runtime: &Arc<dyn ContainerRuntime>,
    app: &App,
) -> Result<BTreeSet<String>, EngineError> {
    let mut images: BTreeSet<String> = runtime
        .list_images(&ImageFilter::Reference(shared.image_repository(&app.name)))
        .await?
        .into_iter()
        .flat_map(|i| i.tags)
        .collect();
    let app_id = app.id;
    let recorded = shared
        .db
        .call(move |c| deployments::successful(c, app_id))
        .await?;
    images.extend(
        recorded
            .into_iter()
            .filter_map(|d| d.image)
            .filter(|i| shared.built_here(i)),
    );
    Ok(images)
}

/// Whether `c` is replica `replica` of the deployment: by its label, or by its name as this
/// version or an older one (before names were scoped by installation) gave it.
fn is_replica(c: &ContainerSummary, app: &str, deployment: i64, replica: u32) -> bool {
    let name = c.name.trim_start_matches('/');
    c.labels.get(super::LABEL_REPLICA) == Some(&replica.to_string())
        || name == super::legacy_container_name(app, deployment, replica)
}

/// Routes the app's (possibly changed) domains to its running containers.
pub(crate) async fn refresh_routes(shared: &Shared, app: &App) -> Result<(), EngineError> {
    let app_id = app.id;
    let current = shared
        .db
        .call(move |c| deployments::running(c, app_id))
        .await?;
    let (Some(current), false) = (current, app.stopped) else {
        shared.set_routes(app, Vec::new());
        return Ok(());
    };
    if shared.swarm().is_some() {
        super::swarm::refresh_routes(shared, app).await;
        return Ok(());
    }
    let runtime = shared.runtime()?;
    let mut upstreams = Vec::new();
    for c in runtime
        .list(&shared.deployment_filter(&app.name, current.id))
        .await?
    {
        let info = runtime.inspect(&c.id).await?;
        if let (ContainerState::Running, Some(p)) = (info.state, info.host_port) {
            upstreams.push(SocketAddr::from(([127, 0, 0, 1], p)));
        }
    }
    shared.set_routes(app, upstreams);
    Ok(())
}
