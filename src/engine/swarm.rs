//! Apps on a Docker Swarm (`[runtime] engine = "swarm"`): a deployment is a service, and the
//! proxy follows that service's tasks across the nodes.
//!
//! # One service per deployment
//! Each deployment runs as its own service (`rivetr-<instance>-<app>-<deployment>`) beside
//! the one serving, and the switch is the same as on one engine: the new tasks are
//! health-checked by Rivetr over HTTP from outside, the routes swap to them, and the old
//! service drains and is removed. A failed deployment removes its own service, and the old
//! one never stopped serving: that is the rollback. Swarm's own rolling update
//! (`start-first`) was not used because it waits for a new task's health only when the
//! container carries a Docker `HEALTHCHECK`, a command run *inside* the image, which needs a
//! probe tool (curl, wget) the image may not have; without one Swarm stops an old task as
//! soon as the new one's process starts, before it serves. Rivetr's probe needs nothing in
//! the image. A per-node slot limit (`max_per_node`) applies per service, so the new
//! service's tasks never wait for the old ones' slots either.
//!
//! # Routes
//! [`track`] runs every second: for each app it lists the serving service's tasks and routes
//! the app to every running task's node address and published port. A task that appears
//! joins only once one probe of its health path answers; one that stops, moves, or whose
//! node goes down leaves at the next round. Between rounds the proxy's passive failover
//! skips an upstream that refuses. One lock ([`Shared::swarm_routes`]) orders these updates
//! with a pipeline's switch, so a round that read the old deployment can never route back to
//! it after the switch.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::health::{self, Unhealthy};
use super::log::DeployLog;
use super::pipeline::Environment;
use super::settings::Settings;
use super::{EngineError, Shared};
use crate::db::apps::App;
use crate::db::deployments;
use crate::runtime::{
    LABEL_APP, LABEL_DEPLOYMENT, LABEL_INSTANCE, LabelFilter, Limits, RegistryAuth, ServiceRun,
    Swarm, SwarmPlacement, TaskView,
};

/// How long a new service's tasks may take to run: each node pulls the image first.
const TASKS_RUNNING_WITHIN: Duration = Duration::from_secs(180);
/// Tasks of a new service that may fail (the swarm restarts them) before the deployment
/// gives up, per replica.
const FAILED_TASKS_PER_REPLICA: usize = 3;
/// How often routes follow the tasks.
const TRACK_EVERY: Duration = Duration::from_secs(1);

/// The healthy endpoints last routed for each app, behind the lock that orders route updates.
pub(crate) type RoutedEndpoints = tokio::sync::Mutex<HashMap<String, HashSet<SocketAddr>>>;

/// The service name of a deployment.
pub(crate) fn service_name(shared: &Shared, app: &str, deployment: i64) -> String {
    format!("rivetr-{}-{app}-{deployment}", shared.db.instance_id())
}

/// Runs deployment `deployment` of `app` as a new service and waits until every replica runs
/// and answers its health check; returns the tasks' endpoints. On error the caller removes
/// the service ([`remove_deployment`]).
#[allow(clippy::too_many_arguments)]
pub(crate) async fn start(
    shared: &Shared,
    swarm: &Swarm,
    app: &App,
    deployment: i64,
    image: &str,
    settings: &Settings,
    env: &Environment,
    log: &DeployLog,
    cancel: &CancellationToken,
) -> Result<Vec<SocketAddr>, String> {
    if env.network.is_some() {
        return Err(
            "the app is linked to databases, which run on the swarm manager's own engine and are not reachable from the swarm's tasks; unlink them to run the app on the swarm"
                .to_owned(),
        );
    }
    let runtime = shared.runtime().map_err(|e| e.to_string())?;
    let auth = registry_auth(shared, swarm).await?;
    if let Some(a) = &auth {
        log.hide(&a.password);
    }
    let reference = if shared.built_here(image) {
        let repository = format!("rivetr-{}/{}", shared.db.instance_id(), app.name);
        log.say(&format!("pushing {image} to {}", swarm.registry()));
        let mut on_output = |line: &str| log.line("push", line);
        let pushed = swarm
            .push(
                image,
                &repository,
                &deployment.to_string(),
                auth.as_ref(),
                &mut on_output,
            )
            .await
            .map_err(|e| format!("cannot push the image to {}: {e}", swarm.registry()))?;
        log.say(&format!("pushed as {pushed}"));
        pushed
    } else {
        // Pulled on the manager only to read its command; the nodes pull it themselves.
        runtime
            .ensure_image(image)
            .await
            .map_err(|e| format!("cannot pull {image}: {e}"))?;
        image.to_owned()
    };
    let command = swarm
        .image_command(image)
        .await
        .map_err(|e| format!("cannot read the image's command: {e}"))?;
    let name = service_name(shared, &app.name, deployment);
    let run = ServiceRun {
        name: name.clone(),
        image: reference,
        labels: shared.labels(&app.name, deployment),
        replicas: settings.replicas,
        port: settings.port,
        env: env.vars.clone(),
        command,
        limits: Limits {
            memory_bytes: settings.memory_bytes,
            cpus: settings.cpus,
            pids: None,
        },
        placement: placement(settings),
        stop_grace: shared.config.stop_timeout,
    };
    swarm
        .create_service(&run, auth.as_ref())
        .await
        .map_err(|e| format!("cannot create service {name}: {e}"))?;
    log.say(&format!(
        "created service {name} with {} replica(s)",
        settings.replicas
    ));
    let endpoints = wait_running(swarm, &name, settings.replicas, log, cancel).await?;
    for addr in &endpoints {
        let gone = || async { task_gone(swarm, &name, *addr).await };
        match health::wait_until_healthy(*addr, &settings.healthcheck, log, cancel, gone).await {
            Ok(()) => {}
            Err(Unhealthy::Cancelled) => return Err("cancelled".to_owned()),
            Err(Unhealthy::Failed(why)) => return Err(format!("task at {addr}: {why}")),
        }
    }
    Ok(endpoints)
}

/// The stored credentials of the swarm's registry, decrypted; `None` when none are stored
/// (a registry that takes anonymous pushes).
async fn registry_auth(shared: &Shared, swarm: &Swarm) -> Result<Option<RegistryAuth>, String> {
    let registry = swarm.registry().to_owned();
    let key = registry.clone();
    let Some(row) = shared
        .db
        .call(move |c| crate::db::registry_credentials::get(c, &key))
        .await
        .map_err(|e| format!("database: {e}"))?
    else {
        return Ok(None);
    };
    let password = shared
        .secrets
        .decrypt_str(
            crate::secrets::Purpose::RegistryPassword {
                registry: &registry,
            },
            &row.sealed_password,
        )
        .map_err(|e| format!("the credentials of registry {registry}: {e}"))?;
    Ok(Some(RegistryAuth {
        username: row.username,
        password: password.expose().to_owned(),
    }))
}

/// The swarm placement of a deployment's settings.
fn placement(settings: &Settings) -> SwarmPlacement {
    SwarmPlacement {
        constraints: settings.placement.constraints.clone(),
        max_per_node: settings.placement.max_per_node,
        spread: settings.placement.spread.to_vec(),
    }
}

/// Waits until `replicas` tasks of `service` run with a published port, reporting each
/// task's state and node as it changes.
async fn wait_running(
    swarm: &Swarm,
    service: &str,
    replicas: u32,
    log: &DeployLog,
    cancel: &CancellationToken,
) -> Result<Vec<SocketAddr>, String> {
    let started = tokio::time::Instant::now();
    let deadline = started + TASKS_RUNNING_WITHIN;
    let mut reported: HashMap<String, String> = HashMap::new();
    loop {
        let tasks = swarm
            .tasks(service)
            .await
            .map_err(|e| format!("cannot read the tasks of {service}: {e}"))?;
        for t in &tasks {
            let line = describe_task(t);
            if reported.get(&t.id) != Some(&line) {
                log.line("swarm", &line);
                reported.insert(t.id.clone(), line);
            }
        }
        let running: Vec<SocketAddr> = tasks.iter().filter_map(TaskView::endpoint).collect();
        if running.len() >= replicas as usize {
            return Ok(running);
        }
        let failed: Vec<&TaskView> = tasks
            .iter()
            .filter(|t| matches!(t.state.as_str(), "failed" | "rejected"))
            .collect();
        if failed.len() >= FAILED_TASKS_PER_REPLICA * replicas as usize {
            return Err(format!(
                "{} tasks of {service} failed; the last: {}",
                failed.len(),
                describe_task(failed[0])
            ));
        }
        if tokio::time::Instant::now() > deadline {
            let last = tasks
                .first()
                .map_or("no task was created".to_owned(), describe_task);
            return Err(format!(
                "{} of {replicas} tasks of {service} running after {TASKS_RUNNING_WITHIN:?}; the latest: {last}",
                running.len()
            ));
        }
        tokio::select! {
            _ = cancel.cancelled() => return Err("cancelled".to_owned()),
            _ = tokio::time::sleep(poll_interval(started.elapsed())) => {}
        }
    }
}

/// How long to wait before asking for a new service's tasks again: often at first, where a
/// task that starts at once (about half a second here) is seen as soon as it runs, then less,
/// for the image pulls of a first deployment.
fn poll_interval(waited: Duration) -> Duration {
    if waited < Duration::from_secs(5) {
        Duration::from_millis(50)
    } else {
        Duration::from_millis(500)
    }
}

/// `task 3f2a (slot 1) on node abc123 (10.0.0.2): running, port 30001`.
fn describe_task(t: &TaskView) -> String {
    let short = |s: &str| s.chars().take(12).collect::<String>();
    let mut line = format!("task {}", short(&t.id));
    if let Some(slot) = t.slot {
        line.push_str(&format!(" (slot {slot})"));
    }
    if !t.node_id.is_empty() {
        line.push_str(&format!(" on node {}", short(&t.node_id)));
        if let Some(addr) = t.node_addr {
            line.push_str(&format!(" ({addr})"));
        }
    }
    line.push_str(&format!(": {}", t.state));
    if t.desired_state != "running" && !t.desired_state.is_empty() {
        line.push_str(&format!(" (to be {})", t.desired_state));
    }
    if let Some(port) = t.published_port {
        line.push_str(&format!(", port {port}"));
    }
    if let Some(err) = &t.error {
        line.push_str(&format!(", error: {err}"));
    } else if let Some(code) = t.exit_code.filter(|c| *c != 0) {
        line.push_str(&format!(", exit code {code}"));
    }
    line
}

/// Why the task behind `addr` no longer runs, if it does not.
async fn task_gone(swarm: &Swarm, service: &str, addr: SocketAddr) -> Option<String> {
    match swarm.tasks(service).await {
        Ok(tasks) => {
            if tasks.iter().any(|t| t.endpoint() == Some(addr)) {
                None
            } else {
                let latest = tasks
                    .iter()
                    .find(|t| t.node_addr == Some(addr.ip()))
                    .map_or("no task".to_owned(), describe_task);
                Some(format!(
                    "the task at {addr} stopped during the health check ({latest})"
                ))
            }
        }
        Err(e) => Some(format!("cannot read the tasks of {service}: {e}")),
    }
}

/// Routes the app's (possibly changed) domains to the task endpoints it is routed to now.
pub(crate) async fn refresh_routes(shared: &Shared, app: &App) {
    let routed = shared.swarm_routes.lock().await;
    let mut endpoints: Vec<SocketAddr> = routed
        .get(&app.name)
        .map(|e| e.iter().copied().collect())
        .unwrap_or_default();
    endpoints.sort();
    shared.set_routes(app, endpoints);
}

/// Removes every service (and env secret) of deployment `deployment` of `app`.
pub(crate) async fn remove_deployment(
    shared: &Shared,
    swarm: &Swarm,
    app: &str,
    deployment: i64,
) -> Result<(), String> {
    let name = service_name(shared, app, deployment);
    swarm
        .remove_service(&name)
        .await
        .map_err(|e| format!("cannot remove service {name}: {e}"))
}

/// Every service of `app` this installation created.
pub(crate) async fn app_services(
    shared: &Shared,
    swarm: &Swarm,
    app: &str,
) -> Result<Vec<crate::runtime::ServiceView>, String> {
    swarm
        .services(&shared.app_filter(app))
        .await
        .map_err(|e| e.to_string())
}

/// Removes every service of `app` (deleting the app).
pub(crate) async fn remove_app(shared: &Shared, swarm: &Swarm, app: &str) -> Result<(), String> {
    for s in app_services(shared, swarm, app).await? {
        swarm
            .remove_service(&s.name)
            .await
            .map_err(|e| format!("cannot remove service {}: {e}", s.name))?;
    }
    shared.swarm_routes.lock().await.remove(app);
    Ok(())
}

/// Stops `app`: its service keeps its spec with no tasks.
pub(crate) async fn stop(shared: &Shared, swarm: &Swarm, app: &str) -> Result<(), String> {
    for s in app_services(shared, swarm, app).await? {
        swarm
            .scale(&s.name, 0)
            .await
            .map_err(|e| format!("cannot stop service {}: {e}", s.name))?;
    }
    shared.swarm_routes.lock().await.remove(app);
    Ok(())
}

/// Brings the serving deployment of `app` back: its service is scaled back up when stopped,
/// re-created when gone (from the deployment's image), and routed once its tasks answer.
/// Returns how many services it started or created.
pub(crate) async fn bring_up(
    shared: &Arc<Shared>,
    swarm: &Swarm,
    app: &App,
    current: &deployments::Deployment,
    settings: &Settings,
) -> Result<usize, EngineError> {
    let name = service_name(shared, &app.name, current.id);
    let log = DeployLog::open(
        shared.db.clone(),
        Arc::clone(&shared.logs),
        current.id,
        &app.name,
    );
    let existing = swarm
        .services(&shared.deployment_filter(&app.name, current.id))
        .await?;
    let never = CancellationToken::new();
    let changed = match existing.first() {
        Some(s) if s.replicas == u64::from(settings.replicas) => 0,
        Some(_) => {
            swarm.scale(&name, settings.replicas).await?;
            log.say(&format!(
                "scaled service {name} to {} replica(s)",
                settings.replicas
            ));
            1
        }
        None => {
            let Some(image) = current.image.as_deref() else {
                log.say(&format!(
                    "service {name} is gone and its image is not recorded"
                ));
                return Ok(0);
            };
            let env = super::pipeline::environment(shared, app, settings, &log)
                .await
                .map_err(EngineError::Environment)?;
            log.say(&format!("re-creating the missing service {name}"));
            if let Err(why) = start(
                shared, swarm, app, current.id, image, settings, &env, &log, &never,
            )
            .await
            {
                log.say(&format!("cannot bring service {name} back: {why}"));
                log.flush().await;
                return Err(EngineError::Environment(why));
            }
            1
        }
    };
    if changed > 0 && !existing.is_empty() {
        // Scaled up: route once the tasks run and answer.
        match wait_running(swarm, &name, settings.replicas, &log, &never).await {
            Ok(endpoints) => {
                for addr in endpoints {
                    let gone = || async { task_gone(swarm, &name, addr).await };
                    if let Err(Unhealthy::Failed(why)) =
                        health::wait_until_healthy(addr, &settings.healthcheck, &log, &never, gone)
                            .await
                    {
                        log.say(&format!("task at {addr} did not become healthy: {why}"));
                    }
                }
            }
            Err(why) => log.say(&why),
        }
    }
    sync_app(shared, swarm, app, current.id, &settings.healthcheck).await;
    log.flush().await;
    Ok(changed)
}

/// Routes `app` to the running tasks of its serving deployment's service: endpoints already
/// routed stay, new ones join once one health probe answers.
async fn sync_app(
    shared: &Shared,
    swarm: &Swarm,
    app: &App,
    deployment: i64,
    check: &crate::db::apps::Healthcheck,
) {
    let name = service_name(shared, &app.name, deployment);
    match swarm.tasks(&name).await {
        Ok(tasks) => route_tasks(shared, app, deployment, &tasks, check).await,
        Err(e) => {
            tracing::warn!(app = %app.name, service = %name, error = %e, "cannot read the service's tasks; routes unchanged")
        }
    }
}

/// Routes `app` to `tasks` (of its deployment `deployment`), as [`sync_app`] says.
async fn route_tasks(
    shared: &Shared,
    app: &App,
    deployment: i64,
    tasks: &[TaskView],
    check: &crate::db::apps::Healthcheck,
) {
    let name = service_name(shared, &app.name, deployment);
    let mut routed = shared.swarm_routes.lock().await;
    // The serving deployment may have changed while the tasks were read.
    let app_id = app.id;
    let serving = shared
        .db
        .call(move |c| deployments::running(c, app_id))
        .await
        .ok()
        .flatten()
        .map(|d| d.id);
    if serving != Some(deployment) {
        return;
    }
    let before = routed.get(&app.name).cloned().unwrap_or_default();
    let now = next_endpoints(tasks, &before, check).await;
    if now != before || !routed.contains_key(&app.name) {
        let mut list: Vec<SocketAddr> = now.iter().copied().collect();
        list.sort();
        tracing::info!(app = %app.name, service = %name, upstreams = ?list, "swarm routes follow the tasks");
        shared.set_routes(app, list);
        routed.insert(app.name.clone(), now);
    }
}

/// The endpoints to route next, from those routed now (`before`): a routed task stays while it
/// runs on a node that is up (also while the swarm stops it: it still answers), a new one
/// joins once one probe of its health path answers. Never empty while `before` is not:
/// nothing better is known, and the proxy skips upstreams that refuse.
async fn next_endpoints(
    tasks: &[TaskView],
    before: &HashSet<SocketAddr>,
    check: &crate::db::apps::Healthcheck,
) -> HashSet<SocketAddr> {
    let mut now: HashSet<SocketAddr> = tasks
        .iter()
        .filter_map(TaskView::serving_endpoint)
        .filter(|a| before.contains(a))
        .collect();
    for addr in tasks.iter().filter_map(TaskView::endpoint) {
        if !now.contains(&addr) && health::answers(addr, check).await {
            now.insert(addr);
        }
    }
    if now.is_empty() { before.clone() } else { now }
}

/// Keeps every swarm app's routes on its running tasks until shutdown.
pub(crate) async fn track(shared: Arc<Shared>) {
    loop {
        tokio::select! {
            _ = shared.shutdown.cancelled() => return,
            _ = tokio::time::sleep(TRACK_EVERY) => {}
        }
        let Some(swarm) = shared.swarm() else {
            continue;
        };
        // Two queries whatever the number of apps, as the engine requests below.
        let read = shared
            .db
            .call(|c| Ok((crate::db::apps::list(c)?, deployments::running_by_app(c)?)))
            .await;
        let (apps, mut serving) = match read {
            Ok(read) => read,
            Err(e) => {
                tracing::warn!(error = %e, "cannot list apps to follow their tasks");
                continue;
            }
        };
        let services = match swarm.services(&shared.instance_filter()).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "cannot list the swarm's services");
                continue;
            }
        };
        // One request for every service's tasks, whatever the number of apps.
        let ids: Vec<&str> = services
            .iter()
            .filter(|s| s.replicas > 0)
            .map(|s| s.id.as_str())
            .collect();
        let tasks = match swarm.tasks_of(&ids).await {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(error = %e, "cannot list the swarm's tasks");
                continue;
            }
        };
        for app in apps.into_iter().filter(|a| !a.stopped) {
            let Some(current) = serving.remove(&app.id) else {
                continue;
            };
            let name = service_name(&shared, &app.name, current.id);
            let Some(service) = services.iter().find(|s| s.name == name && s.replicas > 0) else {
                continue;
            };
            let mine: Vec<TaskView> = tasks
                .iter()
                .filter(|t| t.service_id == service.id)
                .cloned()
                .collect();
            let check = current
                .settings
                .as_deref()
                .and_then(Settings::from_json)
                .map_or_else(|| app.healthcheck.clone(), |s| s.healthcheck);
            route_tasks(&shared, &app, current.id, &mine, &check).await;
        }
    }
}

/// A node with the tasks of this installation's apps the swarm wants running there.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct NodeTasks {
    #[serde(flatten)]
    pub node: crate::runtime::NodeView,
    pub tasks: Vec<NodeTask>,
}

/// One task (a replica of an app's deployment) on a node.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct NodeTask {
    pub app: String,
    pub deployment: i64,
    /// The swarm's id of the task.
    pub id: String,
    /// The task's state as the swarm reports it: `pending`, `preparing`, `starting`,
    /// `running`, `failed`, ...
    pub state: String,
    /// What the swarm wants it to be (`running`).
    pub desired_state: String,
    /// `address:port` where the proxy reaches it, once it runs.
    pub endpoint: Option<String>,
    /// Why it failed, when it did.
    pub error: Option<String>,
}

/// Every node with the current tasks (those the swarm wants running) of Rivetr's services.
pub(crate) async fn nodes(shared: &Shared, swarm: &Swarm) -> Result<Vec<NodeTasks>, EngineError> {
    let nodes = swarm.nodes().await?;
    let services = swarm.services(&shared.instance_filter()).await?;
    let ids: Vec<&str> = services.iter().map(|s| s.id.as_str()).collect();
    let mut by_node: HashMap<String, Vec<NodeTask>> = HashMap::new();
    for t in swarm.tasks_of(&ids).await? {
        if t.desired_state != "running" || t.node_id.is_empty() {
            continue;
        }
        let Some(s) = services.iter().find(|s| s.id == t.service_id) else {
            continue;
        };
        by_node
            .entry(t.node_id.clone())
            .or_default()
            .push(NodeTask {
                app: s.labels.get(LABEL_APP).cloned().unwrap_or_default(),
                deployment: s
                    .labels
                    .get(LABEL_DEPLOYMENT)
                    .and_then(|d| d.parse().ok())
                    .unwrap_or_default(),
                endpoint: t.endpoint().map(|a| a.to_string()),
                id: t.id,
                state: t.state,
                desired_state: t.desired_state,
                error: t.error,
            });
    }
    Ok(nodes
        .into_iter()
        .map(|node| NodeTasks {
            tasks: by_node.remove(&node.id).unwrap_or_default(),
            node,
        })
        .collect())
}

/// The services of this installation that serve no app's running deployment (after a crash:
/// an interrupted deployment's, a replaced one's that did not finish draining).
pub(crate) async fn leftovers(
    shared: &Shared,
    swarm: &Swarm,
    keep: &HashSet<(String, String)>,
) -> Result<Vec<String>, EngineError> {
    Ok(swarm
        .services(&[LabelFilter::eq(LABEL_INSTANCE, shared.db.instance_id())])
        .await?
        .into_iter()
        .filter(|s| {
            let key = (
                s.labels.get(LABEL_APP).cloned().unwrap_or_default(),
                s.labels.get(LABEL_DEPLOYMENT).cloned().unwrap_or_default(),
            );
            !keep.contains(&key)
        })
        .map(|s| s.name)
        .collect())
}
