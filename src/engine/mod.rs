//! The deployment engine: turns a request to deploy into a running version of an app, with
//! no failed request on the way and nothing a crash or a bad commit can take down.
//!
//! ```text
//! request -> queue (one pipeline per app; newer requests supersede or cancel older ones)
//!         -> clone -> build -> start -> health check -> switch routes -> drain the old version
//! ```
//!
//! The engine owns when an app's routes change and which containers exist; it never parses
//! HTTP (the API hands it requests) and never touches a socket of the proxy (it replaces the
//! app's entries of the [`RouteTable`]). Every stage is recorded in `deployments` with a
//! timestamp and every line of output in `deployment_logs` (see [`log`]). After a crash,
//! [`Engine::reconcile`] rebuilds the routes from what the engine and the database say,
//! without stopping anything that serves, and removes leftovers in the background.

mod context;
pub mod deploy_toml;
pub mod events;
pub mod git;
mod health;
mod lifecycle;
pub mod log;
mod pipeline;
mod queue;
mod reconcile;
pub mod repo_files;
pub mod request;
pub mod settings;
mod swarm;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::TlsMode;
use crate::db::apps::App;
use crate::db::deployments::{Deployment, Status};
use crate::db::{Db, DbError};
use crate::proxy::routes::{Owner, RouteSpec, RouteTable};
use crate::runtime::{
    BuildLimits, ContainerRuntime, LABEL_APP, LABEL_DEPLOYMENT, LABEL_INSTANCE, LabelFilter,
    RuntimeError, SharedDetection,
};
use log::LogHub;
pub use reconcile::ReconcileReport;
pub use request::{DeployRequest, Deployer, Trigger};
pub use swarm::{NodeTask, NodeTasks};

/// What the engine says of containers' CPU and memory.
#[derive(Debug, Clone)]
pub enum ContainerUse {
    Samples(Vec<ContainerSample>),
    /// The engine cannot say, and why.
    Unavailable(String),
}

/// One running container's use.
#[derive(Debug, Clone)]
pub struct ContainerSample {
    pub app: String,
    pub container: String,
    pub stats: crate::runtime::ContainerStats,
}

/// Label giving a container's replica number within its deployment.
pub const LABEL_REPLICA: &str = "io.rivetr.replica";

/// What the engine needs from the configuration.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub state_dir: PathBuf,
    pub max_concurrent_builds: usize,
    pub keep_images: usize,
    pub drain_seconds: u64,
    pub stop_timeout: Duration,
    /// How app domains get certificates (ACME, or none when ACME is off).
    pub domain_tls: TlsMode,
    /// What a build may use at most (`[build]`); an app's deploy.toml may ask for less.
    pub build: BuildLimits,
}

impl EngineConfig {
    pub fn from_config(config: &crate::config::Config, state_dir: PathBuf) -> EngineConfig {
        EngineConfig {
            state_dir,
            max_concurrent_builds: config.engine.max_concurrent_builds,
            keep_images: config.engine.keep_images,
            drain_seconds: config.engine.drain_seconds,
            stop_timeout: Duration::from_secs(config.engine.stop_timeout_seconds),
            domain_tls: if config.acme.enabled {
                TlsMode::Acme
            } else {
                TlsMode::None
            },
            build: BuildLimits {
                memory_bytes: Some(config.build.memory.bytes()),
                cpus: Some(config.build.cpus.0),
                timeout: Some(Duration::from_secs(config.build.timeout_seconds.0)),
            },
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("no container runtime: {0}")]
    NoRuntime(String),
    #[error("no app named `{0}`")]
    AppNotFound(String),
    #[error("no deployment {0}")]
    DeploymentNotFound(i64),
    #[error("deployment {id} cannot be rolled back to: {why}")]
    NotRollbackable { id: i64, why: String },
    #[error("deployment {id} is {status}; only a queued or running deployment can be cancelled")]
    NotCancellable { id: i64, status: &'static str },
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error("the engine has stopped")]
    Stopped,
    #[error("app `{0}` has no running deployment; deploy it first")]
    NeverDeployed(String),
    #[error("cannot prepare the container environment: {0}")]
    Environment(String),
    #[error("swarm: {0}")]
    Swarm(String),
    #[error("Rivetr is not running on a swarm: nodes exist only with [runtime] engine = \"swarm\"")]
    NotSwarm,
}

/// The engine handle; cheap to clone.
#[derive(Clone)]
pub struct Engine {
    shared: Arc<Shared>,
}

pub(crate) struct Shared {
    db: Db,
    /// Decrypts secret environment variables, only into a container's environment.
    secrets: Arc<crate::secrets::Secrets>,
    /// The container engine, or why there is none; it can appear after startup.
    runtime: SharedDetection,
    routes: Arc<RouteTable>,
    logs: Arc<LogHub>,
    /// What changes, for `GET /api/events`.
    events: events::Events,
    config: EngineConfig,
    builds: Semaphore,
    queue: mpsc::UnboundedSender<queue::Command>,
    /// One operation per app at a time: a pipeline, a stop, a start.
    app_locks: Mutex<HashMap<i64, Arc<tokio::sync::Mutex<()>>>>,
    /// Old versions draining after a switch.
    drains: TaskTracker,
    /// Work that follows a start in the background (removing leftovers), waited for at
    /// shutdown.
    background: TaskTracker,
    shutdown: CancellationToken,
    /// On a swarm: the task endpoints routed per app, and the lock that orders route updates.
    swarm_routes: swarm::RoutedEndpoints,
}

impl Engine {
    /// Starts the engine's queue. While `runtime` holds no engine, deploys fail saying what
    /// detection tried.
    #[allow(clippy::too_many_arguments)]
    pub fn start(
        db: Db,
        secrets: Arc<crate::secrets::Secrets>,
        runtime: SharedDetection,
        routes: Arc<RouteTable>,
        config: EngineConfig,
        shutdown: CancellationToken,
    ) -> Engine {
        let (tx, rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            db,
            secrets,
            runtime,
            routes,
            logs: Arc::new(LogHub::default()),
            events: events::Events::default(),
            builds: Semaphore::new(config.max_concurrent_builds.max(1)),
            config,
            queue: tx,
            app_locks: Mutex::new(HashMap::new()),
            drains: TaskTracker::new(),
            background: TaskTracker::new(),
            shutdown,
            swarm_routes: Default::default(),
        });
        // Detached on purpose: both end when the shutdown token is cancelled.
        tokio::spawn(queue::run(Arc::clone(&shared), rx));
        tokio::spawn(swarm::track(Arc::clone(&shared)));
        Engine { shared }
    }

    /// A container engine is there (detection can find one after the start).
    pub fn has_runtime(&self) -> bool {
        self.shared.current_runtime().is_some()
    }

    /// Live followers of deployment logs.
    pub fn logs(&self) -> &Arc<LogHub> {
        &self.shared.logs
    }

    pub fn db(&self) -> &Db {
        &self.shared.db
    }

    /// Cancelled when Rivetr shuts down: long-lived streams end with it.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shared.shutdown.clone()
    }

    /// Listens to what changes from now on (see [`events`]).
    pub fn subscribe_events(&self) -> tokio::sync::broadcast::Receiver<events::Event> {
        self.shared.events.subscribe()
    }

    /// Tells listeners that `app` changed in a way the engine did not see (created or
    /// edited through the API).
    pub fn app_changed(&self, app: &str, what: &str) {
        self.shared
            .events
            .send(events::EventKind::App, app, None, what);
    }

    /// Per-domain counters of the proxy's routes, for the API to report.
    pub fn route_metrics(&self) -> Vec<(String, crate::proxy::metrics::MetricsSnapshot)> {
        let mut all: Vec<_> = self
            .shared
            .routes
            .metrics()
            .into_iter()
            .map(|(host, m)| (host, m.snapshot()))
            .collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }

    /// Every route's counters in detail, by host, with the route's owner while it is routed.
    pub fn route_details(&self) -> Vec<(String, Option<Owner>, crate::proxy::metrics::Detail)> {
        let owners: HashMap<String, Owner> = self
            .shared
            .routes
            .load()
            .specs()
            .iter()
            .map(|s| (s.host.clone(), s.owner.clone()))
            .collect();
        self.shared
            .routes
            .metrics()
            .into_iter()
            .map(|(host, m)| {
                let owner = owners.get(&host).cloned();
                (host, owner, m.detail())
            })
            .collect()
    }

    /// CPU and memory of the running containers of `app` (every app when `None`), as the
    /// engine reports them; `Unavailable` says why an engine cannot (never zeros in their
    /// place).
    pub async fn container_stats(&self, app: Option<&str>) -> Result<ContainerUse, EngineError> {
        let runtime = self.shared.runtime()?;
        if self.shared.swarm().is_some() {
            return Ok(ContainerUse::Unavailable(
                "on a swarm the apps' containers run on the nodes, and their CPU and memory are not gathered yet".to_owned(),
            ));
        }
        if let Some(why) = runtime.stats_unavailable().await {
            return Ok(ContainerUse::Unavailable(why));
        }
        let mut filter = self.shared.instance_filter();
        match app {
            Some(app) => filter.push(LabelFilter::eq(LABEL_APP, app)),
            None => filter.push(LabelFilter::key(LABEL_APP)),
        }
        let running: Vec<_> = runtime
            .list(&filter)
            .await?
            .into_iter()
            .filter(|c| c.state == crate::runtime::ContainerState::Running)
            .collect();
        let samples =
            futures_util::future::join_all(running.iter().map(|c| runtime.stats(&c.id))).await;
        let mut out = Vec::new();
        for (c, sample) in running.into_iter().zip(samples) {
            match sample {
                Ok(stats) => out.push(ContainerSample {
                    app: c.labels.get(LABEL_APP).cloned().unwrap_or_default(),
                    container: c.name,
                    stats,
                }),
                // Gone between the list and its sample: it uses nothing now.
                Err(e) => tracing::debug!(container = %c.name, error = %e, "no stats"),
            }
        }
        Ok(ContainerUse::Samples(out))
    }

    /// Deployments waiting for their turn.
    pub async fn queued_count(&self) -> usize {
        let (reply, answer) = oneshot::channel();
        if self
            .shared
            .queue
            .send(queue::Command::CountQueued(reply))
            .is_err()
        {
            return 0;
        }
        answer.await.unwrap_or(0)
    }

    /// Queues a deployment of the requested app at the request's commit, or its ref (a branch
    /// or a commit id), or else the app's branch. Returns it as queued.
    pub async fn deploy(&self, request: DeployRequest) -> Result<Deployment, EngineError> {
        let app = self.app(&request.app).await?;
        if app.id != request.app_id {
            return Err(EngineError::AppNotFound(request.app));
        }
        // Without an engine the deployment could only fail; refuse it before recording it.
        self.shared.runtime()?;
        let app_id = app.id;
        let trigger = request.trigger.as_str();
        let git_ref = request.commit_sha.or(request.git_ref);
        let d = self
            .shared
            .db
            .call(move |c| {
                crate::db::deployments::create(c, app_id, trigger, git_ref.as_deref(), None)
            })
            .await?;
        self.enqueue(d.clone())?;
        self.shared.announce_created(&d);
        Ok(d)
    }

    /// Queues a rollback of `app` to an earlier successful deployment whose image is kept.
    pub async fn rollback(&self, app: &str, to: i64) -> Result<Deployment, EngineError> {
        let app = self.app(app).await?;
        self.shared.runtime()?;
        let source = self
            .shared
            .db
            .call(move |c| crate::db::deployments::get(c, to))
            .await?
            .filter(|d| d.app_id == app.id)
            .ok_or(EngineError::DeploymentNotFound(to))?;
        if !matches!(source.status, Status::Running | Status::Replaced) {
            return Err(EngineError::NotRollbackable {
                id: to,
                why: format!("it is {}, not a version that ran", source.status.as_str()),
            });
        }
        if source.image.is_none() || source.settings.is_none() {
            return Err(EngineError::NotRollbackable {
                id: to,
                why: "its image is no longer kept".to_owned(),
            });
        }
        let app_id = app.id;
        let git_ref = source.commit_sha.clone();
        let d = self
            .shared
            .db
            .call(move |c| {
                crate::db::deployments::create(c, app_id, "rollback", git_ref.as_deref(), Some(to))
            })
            .await?;
        self.enqueue(d.clone())?;
        self.shared.announce_created(&d);
        Ok(d)
    }

    /// Cancels a queued or running deployment.
    pub async fn cancel(&self, id: i64) -> Result<Deployment, EngineError> {
        let d = self.deployment(id).await?;
        if !matches!(
            d.status,
            Status::Queued
                | Status::Cloning
                | Status::Building
                | Status::Starting
                | Status::HealthChecking
        ) {
            return Err(EngineError::NotCancellable {
                id,
                status: d.status.as_str(),
            });
        }
        let (reply, answer) = oneshot::channel();
        self.shared
            .queue
            .send(queue::Command::Cancel { id, reply })
            .map_err(|_| EngineError::Stopped)?;
        answer.await.map_err(|_| EngineError::Stopped)?;
        self.deployment(id).await
    }

    pub async fn deployment(&self, id: i64) -> Result<Deployment, EngineError> {
        self.shared
            .db
            .call(move |c| crate::db::deployments::get(c, id))
            .await?
            .ok_or(EngineError::DeploymentNotFound(id))
    }

    /// Stops an app: its routes go, its containers stop (and are kept for a start).
    pub async fn stop_app(&self, app: &str) -> Result<(), EngineError> {
        let app = self.app(app).await?;
        lifecycle::stop(&self.shared, &app).await?;
        self.app_changed(&app.name, "stopped");
        Ok(())
    }

    /// Starts a stopped app again from its running deployment.
    pub async fn start_app(&self, app: &str) -> Result<(), EngineError> {
        let app = self.app(app).await?;
        lifecycle::start(&self.shared, &app).await?;
        self.app_changed(&app.name, "started");
        Ok(())
    }

    pub async fn restart_app(&self, app: &str) -> Result<(), EngineError> {
        let app = self.app(app).await?;
        lifecycle::stop(&self.shared, &app).await?;
        lifecycle::start(&self.shared, &app).await?;
        self.app_changed(&app.name, "started");
        Ok(())
    }

    /// Deletes an app: cancels its deployments, removes its containers, images, routes and
    /// rows.
    pub async fn delete_app(&self, app: &str) -> Result<(), EngineError> {
        let app = self.app(app).await?;
        let (reply, answer) = oneshot::channel();
        self.shared
            .queue
            .send(queue::Command::Forget {
                app_id: app.id,
                reply,
            })
            .map_err(|_| EngineError::Stopped)?;
        answer.await.map_err(|_| EngineError::Stopped)?;
        lifecycle::delete(&self.shared, &app).await?;
        self.app_changed(&app.name, "deleted");
        Ok(())
    }

    /// Puts the app's routes in line with its stored domains (after they change).
    pub async fn refresh_routes(&self, app: &str) -> Result<(), EngineError> {
        let app = self.app(app).await?;
        lifecycle::refresh_routes(&self.shared, &app).await
    }

    /// The swarm's nodes, each with the tasks of this installation's apps on it.
    pub async fn nodes(&self) -> Result<Vec<NodeTasks>, EngineError> {
        let swarm = self.shared.swarm().ok_or(EngineError::NotSwarm)?;
        swarm::nodes(&self.shared, &swarm).await
    }

    /// Drains node `node` (its tasks move to other nodes) or makes it active again.
    pub async fn set_node_availability(
        &self,
        node: &str,
        availability: crate::runtime::Availability,
    ) -> Result<crate::runtime::NodeView, EngineError> {
        let swarm = self.shared.swarm().ok_or(EngineError::NotSwarm)?;
        let view = swarm.set_availability(node, availability).await?;
        tracing::info!(node = %view.id, availability = %view.availability, "node availability changed");
        Ok(view)
    }

    /// The output of the app's running containers (all replicas, interleaved).
    pub async fn app_logs(
        &self,
        app: &str,
        options: crate::runtime::LogOptions,
    ) -> Result<crate::runtime::LogStream, EngineError> {
        let app = self.app(app).await?;
        let app_id = app.id;
        let current = self
            .shared
            .db
            .call(move |c| crate::db::deployments::running(c, app_id))
            .await?
            .ok_or_else(|| EngineError::NeverDeployed(app.name.clone()))?;
        if let Some(swarm) = self.shared.swarm() {
            let service = swarm::service_name(&self.shared, &app.name, current.id);
            return Ok(swarm.service_logs(&service, options));
        }
        let runtime = self.shared.runtime()?;
        let containers = runtime
            .list(&self.shared.deployment_filter(&app.name, current.id))
            .await?;
        let streams: Vec<_> = containers
            .iter()
            .map(|c| runtime.logs(&c.id, options))
            .collect();
        Ok(Box::pin(futures_util::stream::select_all(streams)))
    }

    /// After a start (and after a crash): see [`reconcile`]. Returns once the apps are routed
    /// again; leftovers are removed afterwards, in the background.
    pub async fn reconcile(&self) -> Result<ReconcileReport, EngineError> {
        reconcile::run(&self.shared).await
    }

    /// Waits for the background work of [`Engine::reconcile`]; call it after the shutdown
    /// token is cancelled, which cuts that work short.
    pub async fn wait_background(&self) {
        self.shared.background.close();
        self.shared.background.wait().await;
    }

    async fn app(&self, name: &str) -> Result<App, EngineError> {
        let owned = name.to_owned();
        self.shared
            .db
            .call(move |c| crate::db::apps::get_by_name(c, &owned))
            .await?
            .ok_or_else(|| EngineError::AppNotFound(name.to_owned()))
    }

    fn enqueue(&self, d: Deployment) -> Result<(), EngineError> {
        self.shared
            .queue
            .send(queue::Command::Deploy(Box::new(d)))
            .map_err(|_| EngineError::Stopped)
    }
}

/// The env overrides of `app`'s previews, decrypted: a JSON object sealed as
/// `Purpose::PreviewEnv`.
pub fn preview_env(
    secrets: &crate::secrets::Secrets,
    app: &App,
) -> Result<BTreeMap<String, String>, EngineError> {
    let Some(sealed) = &app.preview_env else {
        return Ok(BTreeMap::new());
    };
    let bad =
        |e: String| EngineError::Environment(format!("the previews' env of `{}`: {e}", app.name));
    let json = secrets
        .decrypt_str(
            crate::secrets::Purpose::PreviewEnv { app_id: app.id },
            sealed,
        )
        .map_err(|e| bad(e.to_string()))?;
    serde_json::from_str(json.expose()).map_err(|e| bad(e.to_string()))
}

impl Shared {
    /// The app whose git access and environment `app`'s deployments use: the app it
    /// previews, for a preview; else itself.
    async fn source_app(&self, app: &App) -> Result<App, EngineError> {
        let Some(of) = app.preview_of else {
            return Ok(app.clone());
        };
        self.db
            .call(move |c| crate::db::apps::get_by_id(c, of.app_id))
            .await?
            .ok_or_else(|| EngineError::AppNotFound(format!("(previewed by {})", app.name)))
    }

    fn announce_created(&self, d: &Deployment) {
        self.events.send(
            events::EventKind::DeploymentCreated,
            &d.app,
            Some(d.id),
            d.status.as_str(),
        );
    }

    /// Tells listeners the deployment's status as now stored: a stage, or its end.
    async fn announce_status(&self, id: i64) {
        let found = self
            .db
            .call(move |c| crate::db::deployments::get(c, id))
            .await;
        if let Ok(Some(d)) = found {
            let kind = if d.status.is_final() {
                events::EventKind::DeploymentFinished
            } else {
                events::EventKind::DeploymentStage
            };
            self.events
                .send(kind, &d.app, Some(d.id), d.status.as_str());
        }
    }

    fn runtime(&self) -> Result<Arc<dyn ContainerRuntime>, EngineError> {
        let detection = self.runtime.load();
        detection
            .runtime
            .clone()
            .ok_or_else(|| EngineError::NoRuntime(detection.status.summary()))
    }

    /// The container engine, when there is one.
    fn current_runtime(&self) -> Option<Arc<dyn ContainerRuntime>> {
        self.runtime.load().runtime.clone()
    }

    /// The swarm apps run on, when `[runtime] engine = "swarm"` found one.
    fn swarm(&self) -> Option<Arc<crate::runtime::Swarm>> {
        self.runtime.load().swarm.clone()
    }

    fn app_lock(&self, app_id: i64) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.app_locks.lock().unwrap_or_else(|e| e.into_inner());
        Arc::clone(locks.entry(app_id).or_default())
    }

    /// The work directory of a deployment's checkout.
    fn work_dir(&self, deployment: i64) -> PathBuf {
        self.config
            .state_dir
            .join("work")
            .join(deployment.to_string())
    }

    /// Routes every domain of `app` to `upstreams` (or removes them when empty), in one swap.
    fn set_routes(&self, app: &App, upstreams: Vec<SocketAddr>) {
        let owner = Owner::App(app.name.clone());
        let specs = if upstreams.is_empty() {
            Vec::new()
        } else {
            app.domains
                .iter()
                .map(|d| RouteSpec {
                    host: d.to_ascii_lowercase(),
                    upstreams: upstreams.clone(),
                    tls: if crate::host::is_wildcard(d) {
                        TlsMode::None
                    } else {
                        self.config.domain_tls
                    },
                    owner: owner.clone(),
                })
                .collect()
        };
        // The API refuses an app a host the configuration holds; this catches a reload that
        // raced with the app's change. The holder keeps the host either way.
        for conflict in self.routes.set_owner(&owner, specs) {
            tracing::error!(app = %app.name, host = %conflict.host, holder = %conflict.holder, "not routing the app's domain: {conflict}");
        }
    }
}

impl Shared {
    /// The labels put on what a deployment creates: its app, itself, and this installation.
    fn labels(&self, app: &str, deployment: i64) -> BTreeMap<String, String> {
        BTreeMap::from([
            (LABEL_INSTANCE.to_owned(), self.db.instance_id().to_owned()),
            (LABEL_APP.to_owned(), app.to_owned()),
            (LABEL_DEPLOYMENT.to_owned(), deployment.to_string()),
        ])
    }

    /// The labels put on a built image: one, the same for every build of an app. Podman
    /// turns them into a `LABEL` step in no fixed order, and with two or more the cache then
    /// misses that step. The image's name ([`Shared::image_tag`]) ties it to this
    /// installation.
    fn image_labels(&self, app: &str) -> BTreeMap<String, String> {
        BTreeMap::from([(LABEL_APP.to_owned(), app.to_owned())])
    }

    /// The repository of an app's built images: `localhost/rivetr-<instance>/<app>`. Under
    /// `localhost/`, which no registry serves and which both engines keep as written (Podman
    /// made `rivetr/<app>` into `docker.io/rivetr/<app>`), and scoped by installation, so two
    /// installations on one engine never share an image name.
    fn image_repository(&self, app: &str) -> String {
        format!("{}{app}", self.own_image_prefix())
    }

    /// The image name of a deployment built from git.
    fn image_tag(&self, app: &str, deployment: i64) -> String {
        format!("{}:{deployment}", self.image_repository(app))
    }

    /// What every image this installation builds is named under.
    fn own_image_prefix(&self) -> String {
        format!("localhost/rivetr-{}/", self.db.instance_id())
    }

    /// An image this installation built: named under its own prefix, or `rivetr/<app>:<id>`
    /// as Rivetr named builds before names were scoped (kept for rollbacks and pruned like
    /// the others; such a name may also be another installation's on a shared engine).
    fn built_here(&self, image: &str) -> bool {
        image.starts_with(&self.own_image_prefix()) || image.starts_with(LEGACY_IMAGE_PREFIX)
    }

    /// The name of a deployment's container: `rivetr-<instance>-<app>-<deployment>-<replica>`,
    /// unique on an engine that several installations share.
    fn container_name(&self, app: &str, deployment: i64, replica: u32) -> String {
        format!(
            "rivetr-{}-{app}-{deployment}-{replica}",
            self.db.instance_id()
        )
    }

    /// Finds everything this installation created in the engine.
    fn instance_filter(&self) -> Vec<LabelFilter> {
        vec![LabelFilter::eq(LABEL_INSTANCE, self.db.instance_id())]
    }

    /// Finds an app's containers and images (this installation's only).
    fn app_filter(&self, app: &str) -> Vec<LabelFilter> {
        let mut filter = self.instance_filter();
        filter.push(LabelFilter::eq(LABEL_APP, app));
        filter
    }

    /// Finds a deployment's containers.
    fn deployment_filter(&self, app: &str, deployment: i64) -> Vec<LabelFilter> {
        let mut filter = self.app_filter(app);
        filter.push(LabelFilter::eq(LABEL_DEPLOYMENT, deployment.to_string()));
        filter
    }
}

/// How Rivetr named built images before they were scoped by installation.
const LEGACY_IMAGE_PREFIX: &str = "rivetr/";

/// How Rivetr named containers before they were scoped by installation; still recognised when
/// an app is brought back into service after an upgrade.
fn legacy_container_name(app: &str, deployment: i64, replica: u32) -> String {
    format!("rivetr-{app}-{deployment}-{replica}")
}

impl Deployer for Engine {
    fn enqueue(
        &self,
        request: DeployRequest,
    ) -> futures_util::future::BoxFuture<'_, Result<Deployment, EngineError>> {
        Box::pin(self.deploy(request))
    }
}
