//! One deployment from start to finish: clone, build, start, health check, switch, then the
//! old version drains in the background.
//!
//! Until the switch, nothing the pipeline does touches what serves: new containers run
//! beside the old ones, and a failure (or a cancel) removes exactly what this deployment
//! created. The switch is one database transaction followed by one atomic swap of the app's
//! routes, in that order: if the transaction fails, the routes never pointed at the new
//! containers when they are removed; once it has committed, nothing can fail (the swap is in
//! memory), and a crash in between is repaired by the next start's reconcile, which routes
//! what the database says serves. A cancel is no longer honoured once the switch has begun.

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::context::{self, BuildInputs, tar_stream};
use super::deploy_toml::{self, DeployToml};
use super::git::{self, GitError, GitRef};
use super::health::{self, Unhealthy};
use super::log::DeployLog;
use super::settings::Settings;
use super::{EngineError, Shared};
use crate::db::apps::App;
use crate::db::deployments::{self, Deployment, Status};
use crate::runtime::{
    BuildLimits, BuildSpec, Limits, PortSpec, RestartPolicy, RunSpec, RuntimeError,
};

/// Why a pipeline stopped early.
enum Stop {
    Cancelled,
    Failed(String),
}

impl From<EngineError> for Stop {
    fn from(e: EngineError) -> Self {
        Stop::Failed(e.to_string())
    }
}

impl From<crate::db::DbError> for Stop {
    fn from(e: crate::db::DbError) -> Self {
        Stop::Failed(format!("database: {e}"))
    }
}

pub(crate) async fn run(
    shared: &Arc<Shared>,
    d: Deployment,
    cancel: CancellationToken,
    commit_slot: Arc<Mutex<Option<String>>>,
) {
    let lock = shared.app_lock(d.app_id);
    let _one_at_a_time = lock.lock().await;
    let log = DeployLog::open(shared.db.clone(), Arc::clone(&shared.logs), d.id, &d.app);
    let mut built_image = None;
    let result = if cancel.is_cancelled() {
        Err(Stop::Cancelled)
    } else {
        stages(shared, &d, &log, &cancel, &commit_slot, &mut built_image).await
    };
    let status = match result {
        Ok(()) => Status::Running,
        Err(stop) => {
            let (status, reason) = match stop {
                Stop::Cancelled => (
                    Status::Cancelled,
                    "cancelled by a newer deployment or a request".to_owned(),
                ),
                Stop::Failed(reason) => {
                    let reason = with_full_disk(reason, &shared.work_dir(d.id));
                    (Status::Failed, log.redact(&reason))
                }
            };
            log.say(&format!("deployment {}: {reason}", status.as_str()));
            clean_up(shared, &d, &log, built_image.as_deref()).await;
            // Before the end is recorded: a checkout that filled the disk must not keep the
            // database from recording that it did.
            remove_work_dir(shared, d.id).await;
            record_end(shared, d.id, status, reason).await;
            status
        }
    };
    remove_work_dir(shared, d.id).await;
    log.finish(&shared.logs, status.as_str()).await;
}

/// Records how a deployment ended, trying again every second for as long as the database is
/// locked or its disk full (which may be why it failed): a deployment left "building" in the
/// database would show as under way, and hold its app's later deployments, until a restart.
async fn record_end(shared: &Shared, id: i64, status: Status, reason: String) {
    let mut waited = false;
    loop {
        let stored = reason.clone();
        match shared
            .db
            .call(move |c| deployments::finish_with_reason(c, id, status, &stored))
            .await
        {
            Ok(_) => {
                if waited {
                    tracing::info!(deployment = id, "recorded the end of the deployment");
                }
                return;
            }
            Err(e) if e.fault().is_some() => {
                if !waited {
                    tracing::error!(deployment = id, error = %e, "cannot record the end of a deployment yet; trying again every second");
                    waited = true;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(e) => {
                tracing::error!(deployment = id, error = %e, "cannot record the end of a deployment");
                return;
            }
        }
    }
}

async fn set_status(shared: &Shared, id: i64, status: Status) -> Result<(), Stop> {
    shared
        .db
        .call(move |c| deployments::set_status(c, id, status))
        .await?;
    shared.announce_status(id).await;
    Ok(())
}

fn check(cancel: &CancellationToken) -> Result<(), Stop> {
    if cancel.is_cancelled() {
        Err(Stop::Cancelled)
    } else {
        Ok(())
    }
}

async fn stages(
    shared: &Arc<Shared>,
    d: &Deployment,
    log: &DeployLog,
    cancel: &CancellationToken,
    commit_slot: &Mutex<Option<String>>,
    built_image: &mut Option<String>,
) -> Result<(), Stop> {
    let app_id = d.app_id;
    let app = shared
        .db
        .call(move |c| crate::db::apps::get_by_id(c, app_id))
        .await?
        .ok_or_else(|| Stop::Failed("the app was deleted".to_owned()))?;
    // Fails at once, naming what detection tried, when there is no engine.
    shared.runtime()?;

    let (image, settings) = if let Some(source) = d.rollback_of {
        from_earlier_deployment(shared, d, source, log).await?
    } else if let Some(image) = &app.image {
        log.say(&format!("deploying image {image}"));
        let settings = Settings::from_app(&app, shared.config.drain_seconds);
        store_image(shared, d.id, image, &settings).await?;
        (image.clone(), settings)
    } else {
        let (image, settings) =
            clone_and_build(shared, d, &app, log, cancel, commit_slot, built_image).await?;
        (image, settings)
    };
    check(cancel)?;

    set_status(shared, d.id, Status::Starting).await?;
    let env = environment(shared, &app, &settings, log)
        .await
        .map_err(Stop::Failed)?;
    let upstreams = match shared.swarm() {
        Some(swarm) => {
            let started = super::swarm::start(
                shared, &swarm, &app, d.id, &image, &settings, &env, log, cancel,
            )
            .await;
            check(cancel)?;
            started.map_err(Stop::Failed)?
        }
        None => start_containers(shared, d, &app, &image, &settings, &env, log, cancel).await?,
    };
    check(cancel)?;

    // From here on the deployment completes: a cancel would leave routes half-way.
    set_status(shared, d.id, Status::Switching).await?;
    // The record first: should it fail, the routes still point at the old version and the
    // new containers can go. After it, nothing below returns an error.
    let (new, app_id) = (d.id, app.id);
    // Held across the record and the swap, so the swarm's route tracker cannot route the
    // app back to the deployment it read before the switch.
    let mut swarm_routes = shared.swarm_routes.lock().await;
    let old = shared
        .db
        .call(move |c| deployments::switch(c, app_id, new))
        .await?;
    if shared.swarm().is_some() {
        swarm_routes.insert(app.name.clone(), upstreams.iter().copied().collect());
    }
    shared.set_routes(&app, upstreams);
    drop(swarm_routes);
    if app.domains.is_empty() {
        log.say(
            "switched: deployment is running (the app has no domains, so nothing routes to it)",
        );
    } else {
        log.say(&format!(
            "switched: {} now served by this deployment",
            app.domains.join(", ")
        ));
    }
    for old_id in old {
        let shared2 = Arc::clone(shared);
        let app_name = app.name.clone();
        let drain = Duration::from_secs(settings.drain_seconds);
        log.say(&format!(
            "deployment {old_id} drains for {drain:?}, then stops"
        ));
        shared
            .drains
            .spawn(async move { drain_old(&shared2, &app_name, old_id, drain).await });
    }
    prune_images(shared, &app, log).await;
    Ok(())
}

/// Starts the deployment's containers on the single engine and waits until each is healthy;
/// returns where the proxy reaches them.
#[allow(clippy::too_many_arguments)]
async fn start_containers(
    shared: &Arc<Shared>,
    d: &Deployment,
    app: &App,
    image: &str,
    settings: &Settings,
    env: &Environment,
    log: &DeployLog,
    cancel: &CancellationToken,
) -> Result<Vec<SocketAddr>, Stop> {
    let runtime = shared.runtime()?;
    env.prepare(runtime.as_ref())
        .await
        .map_err(|e| Stop::Failed(format!("cannot create the app's network: {e}")))?;
    let mut started: Vec<(String, u16)> = Vec::new();
    for replica in 0..settings.replicas {
        let spec = run_spec(shared, app, d.id, replica, image, settings, env);
        let info = tokio::select! {
            _ = cancel.cancelled() => return Err(Stop::Cancelled),
            r = runtime.run(&spec) => r.map_err(|e| Stop::Failed(start_failure(shared, &spec, &e)))?,
        };
        let port = info.host_port.ok_or_else(|| {
            Stop::Failed(format!(
                "the engine published no host port for container {}",
                spec.name
            ))
        })?;
        log.say(&format!(
            "started container {} on 127.0.0.1:{port}",
            spec.name
        ));
        started.push((info.id, port));
    }
    check(cancel)?;

    set_status(shared, d.id, Status::HealthChecking).await?;
    for (id, port) in &started {
        match health::wait_healthy(&runtime, id, *port, &settings.healthcheck, log, cancel).await {
            Ok(()) => {}
            Err(Unhealthy::Cancelled) => return Err(Stop::Cancelled),
            Err(Unhealthy::Failed(why)) => return Err(Stop::Failed(why)),
        }
    }
    Ok(started
        .iter()
        .map(|(_, p)| SocketAddr::from(([127, 0, 0, 1], *p)))
        .collect())
}

async fn clone_and_build(
    shared: &Arc<Shared>,
    d: &Deployment,
    app: &App,
    log: &DeployLog,
    cancel: &CancellationToken,
    commit_slot: &Mutex<Option<String>>,
    built_image: &mut Option<String>,
) -> Result<(String, Settings), Stop> {
    let Some(url) = app.git_url.clone() else {
        return Err(Stop::Failed(
            "the app has neither a git URL nor an image".to_owned(),
        ));
    };
    let runtime = shared.runtime()?;
    set_status(shared, d.id, Status::Cloning).await?;
    let work = shared.work_dir(d.id);
    let _ = tokio::fs::remove_dir_all(&work).await;
    if let Some(parent) = work.parent() {
        tokio::fs::create_dir_all(parent)
            .await
            .map_err(|e| Stop::Failed(format!("cannot create {}: {e}", parent.display())))?;
    }
    let reference = GitRef::parse(d.git_ref.as_deref().unwrap_or(&app.branch));
    git::hide_credentials(&url, log);
    log.say(&format!(
        "cloning {} at {}",
        redact_url(&url),
        describe(&reference)
    ));
    // A preview clones with the git access of the app it previews.
    let source = shared.source_app(app).await?;
    let access = git::Access::load(&shared.db, &shared.secrets, &source)
        .await
        .map_err(|e| Stop::Failed(format!("clone failed: {e}")))?;
    let checkout = match git::checkout(&url, &reference, &work, &access, log, cancel).await {
        Ok(c) => c,
        Err(GitError::Cancelled) => return Err(Stop::Cancelled),
        Err(e) => {
            return Err(Stop::Failed(format!(
                "clone failed: {}",
                log.redact(&e.to_string())
            )));
        }
    };
    *commit_slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(checkout.commit.clone());
    let (id, sha, subject) = (d.id, checkout.commit.clone(), checkout.subject.clone());
    shared
        .db
        .call(move |c| deployments::set_commit(c, id, &sha, &subject))
        .await?;
    log.say(&format!(
        "checked out {} \"{}\"",
        checkout.commit, checkout.subject
    ));

    let mut settings = Settings::from_app(app, shared.config.drain_seconds);
    let toml = deploy_toml::load(work.clone(), shared.config.build)
        .await
        .map_err(|e| Stop::Failed(format!("invalid deploy.toml: {e}")))?;
    if let Some(t) = &toml {
        settings.apply(t);
        log.say("read deploy.toml");
    }
    let limits = toml.as_ref().map_or(shared.config.build, |t| {
        t.build_limits(&shared.config.build)
    });
    check(cancel)?;

    set_status(shared, d.id, Status::Building).await?;
    let _permit = tokio::select! {
        _ = cancel.cancelled() => return Err(Stop::Cancelled),
        p = shared.builds.acquire() => p.map_err(|_| Stop::Failed("the engine is shutting down".to_owned()))?,
    };
    let inputs = build_inputs(&work, &settings).await?;
    let tag = shared.image_tag(&app.name, d.id);
    for value in settings.build_args.values() {
        // Build args can carry tokens; the engine may echo them.
        log.hide(value);
    }
    log.say(&describe_limits(&limits));
    let spec = || BuildSpec {
        context: tar_stream(inputs.dir.clone(), inputs.outside_dockerfile.clone()),
        dockerfile: inputs.dockerfile.clone(),
        build_args: settings.build_args.clone().into_iter().collect(),
        tag: tag.clone(),
        // No deployment label: a label that changes every build adds a layer the cache
        // never holds, and an unchanged repo must rebuild from cache. The tag names the
        // deployment.
        labels: shared.image_labels(&app.name),
        limits,
    };
    *built_image = Some(tag.clone());
    let mut on_output = |line: &str| log.line("build", line);
    let mut result = tokio::select! {
        _ = cancel.cancelled() => return Err(Stop::Cancelled),
        r = runtime.build(spec(), &mut on_output) => r,
    };
    if let Err(e) = &result
        && e.to_string().contains(PODMAN_CACHE_RACE)
    {
        // Podman 4.3 fails a build whose cached layer another image's removal (a prune
        // after another app's deploy) took away at that moment; the retry builds it anew.
        log.say(&format!(
            "build hit a cache entry removed meanwhile ({e}); building again"
        ));
        result = tokio::select! {
            _ = cancel.cancelled() => return Err(Stop::Cancelled),
            r = runtime.build(spec(), &mut on_output) => r,
        };
    }
    let built = result.map_err(|e| Stop::Failed(build_failure(&e, toml.as_ref())))?;
    log.say(&format!(
        "built {} ({} of {} steps from cache)",
        built.tag, built.cached_steps, built.steps
    ));
    remove_work_dir(shared, d.id).await;
    store_image(shared, d.id, &tag, &settings).await?;
    Ok((tag, settings))
}

/// Why a container did not start. An image Rivetr built and no longer finds is named as such:
/// the engines' create never pulls, and a pull of that name is the last thing wanted.
fn start_failure(shared: &Shared, spec: &RunSpec, e: &RuntimeError) -> String {
    match e {
        RuntimeError::ImageNotFound { .. } if shared.built_here(&spec.image) => format!(
            "cannot start container {}: the image {} that Rivetr built is no longer in the engine (Rivetr never pulls an image it built; deploy from git again): {e}",
            spec.name, spec.image
        ),
        _ => format!("cannot start container {}: {e}", spec.name),
    }
}

/// What Podman says when a cached layer vanished under a build.
const PODMAN_CACHE_RACE: &str = "layer not known";

/// The context and Dockerfile of a build, checked on a blocking thread (see
/// [`context::prepare`]).
async fn build_inputs(work: &std::path::Path, settings: &Settings) -> Result<BuildInputs, Stop> {
    let (work, ctx, dockerfile) = (
        work.to_owned(),
        settings.context.clone(),
        settings.dockerfile.clone(),
    );
    tokio::task::spawn_blocking(move || context::prepare(&work, &ctx, &dockerfile))
        .await
        .map_err(|e| Stop::Failed(format!("checking the build context stopped: {e}")))?
        .map_err(Stop::Failed)
}

/// The log line announcing a build's limits.
fn describe_limits(limits: &BuildLimits) -> String {
    let memory = limits
        .memory_bytes
        .map_or("unlimited".to_owned(), crate::limits::human_bytes);
    let cpus = limits
        .cpus
        .map_or("unlimited".to_owned(), |c| c.to_string());
    let time = limits
        .timeout
        .map_or("unlimited".to_owned(), |t| format!("{} s", t.as_secs()));
    format!("building within memory {memory}, CPUs {cpus}, time {time}")
}

/// Why a build failed, saying which setting a limit it hit comes from.
fn build_failure(e: &RuntimeError, toml: Option<&DeployToml>) -> String {
    let from = |asked_by_app: bool, key: &str| {
        if asked_by_app {
            format!(" (`[build] {key}` in deploy.toml)")
        } else {
            format!(" (`[build] {key}` in rivetr.toml)")
        }
    };
    let source = match e {
        RuntimeError::BuildOutOfMemory { .. } => {
            from(toml.is_some_and(|t| t.build.memory.is_some()), "memory")
        }
        RuntimeError::BuildTimedOut { .. } => from(
            toml.is_some_and(|t| t.build.timeout_seconds.is_some()),
            "timeout_seconds",
        ),
        _ => String::new(),
    };
    format!("build failed: {e}{source}")
}

/// A rollback: the image and settings of an earlier deployment, no clone, no build.
async fn from_earlier_deployment(
    shared: &Shared,
    d: &Deployment,
    source: i64,
    log: &DeployLog,
) -> Result<(String, Settings), Stop> {
    let src = shared
        .db
        .call(move |c| deployments::get(c, source))
        .await?
        .ok_or_else(|| Stop::Failed(format!("deployment {source} no longer exists")))?;
    let image = src.image.clone().ok_or_else(|| {
        Stop::Failed(format!(
            "the image of deployment {source} is no longer kept"
        ))
    })?;
    let settings = src
        .settings
        .as_deref()
        .and_then(Settings::from_json)
        .ok_or_else(|| Stop::Failed(format!("deployment {source} has no recorded settings")))?;
    log.say(&format!(
        "rolling back to deployment {source} (commit {}), image {image}",
        src.commit_sha.as_deref().unwrap_or("unknown")
    ));
    if let (Some(sha), Some(subject)) = (src.commit_sha.clone(), src.commit_subject.clone()) {
        let id = d.id;
        shared
            .db
            .call(move |c| deployments::set_commit(c, id, &sha, &subject))
            .await?;
    }
    store_image(shared, d.id, &image, &settings).await?;
    Ok((image, settings))
}

async fn store_image(
    shared: &Shared,
    id: i64,
    image: &str,
    settings: &Settings,
) -> Result<(), Stop> {
    let (image, json) = (image.to_owned(), settings.to_json());
    shared
        .db
        .call(move |c| deployments::set_image(c, id, &image, &json))
        .await?;
    Ok(())
}

/// What to run for one replica of a deployment.
pub(crate) fn run_spec(
    shared: &Shared,
    app: &App,
    deployment: i64,
    replica: u32,
    image: &str,
    settings: &Settings,
    env: &Environment,
) -> RunSpec {
    let mut labels = shared.labels(&app.name, deployment);
    labels.insert(super::LABEL_REPLICA.to_owned(), replica.to_string());
    RunSpec {
        image: image.to_owned(),
        name: shared.container_name(&app.name, deployment, replica),
        cmd: Vec::new(),
        env: env.vars.clone(),
        labels,
        port: Some(PortSpec {
            container_port: settings.port,
            host_port: None,
        }),
        limits: Limits {
            memory_bytes: settings.memory_bytes,
            cpus: settings.cpus,
            pids: None,
        },
        restart: RestartPolicy::No,
        stop_timeout: Some(shared.config.stop_timeout),
        // One network only, the app's own, when it has links (see runtime/networks.rs).
        networks: match &env.network {
            Some(network) => crate::runtime::Networks::Attach {
                primary: crate::runtime::NetworkAttach {
                    network: network.name.clone(),
                    ipv4: None,
                },
                extra: Vec::new(),
            },
            None => crate::runtime::Networks::EngineDefault,
        },
        extra_hosts: env.hosts.clone(),
        ..RunSpec::default()
    }
}

/// What a container of the app gets besides its image: variables, and for an app linked to
/// databases, its own network and the databases' hosts entries.
pub(crate) struct Environment {
    pub vars: Vec<(String, String)>,
    pub network: Option<crate::runtime::NetworkSpec>,
    pub hosts: Vec<(String, std::net::Ipv4Addr)>,
}

impl Environment {
    /// Creates the app's network when it has one and it is missing.
    pub(crate) async fn prepare(
        &self,
        runtime: &dyn crate::runtime::ContainerRuntime,
    ) -> Result<(), crate::runtime::RuntimeError> {
        if let Some(network) = &self.network {
            runtime.ensure_network(network).await?;
        }
        Ok(())
    }
}

/// The container's environment: deploy.toml defaults, then the linked databases' variables,
/// overridden by the app's stored variables. Secret values are hidden in the log from here on.
pub(crate) async fn environment(
    shared: &Shared,
    app: &App,
    settings: &Settings,
    log: &DeployLog,
) -> Result<Environment, String> {
    // A preview runs with the environment (and the databases) of the app it previews, with
    // the previews' overrides on top.
    let source = shared
        .source_app(app)
        .await
        .map_err(|e| format!("the previewed app: {e}"))?;
    let links =
        crate::databases::links::for_app(&shared.db, &shared.secrets, source.id, &source.name)
            .await
            .map_err(|e| format!("linked databases: {e}"))?;
    for secret in &links.secrets {
        log.hide(secret);
    }
    let mut env: BTreeMap<String, String> = settings.env_defaults.clone();
    env.extend(links.env);
    env.extend(stored_env(shared, source.id, log).await?);
    if source.id != app.id {
        let overrides = super::preview_env(&shared.secrets, &source).map_err(|e| e.to_string())?;
        for value in overrides.values() {
            log.hide(value);
        }
        env.extend(overrides);
        env.extend(stored_env(shared, app.id, log).await?);
    }
    Ok(Environment {
        vars: env.into_iter().collect(),
        network: links.network,
        hosts: links.hosts,
    })
}

/// The stored variables of app `app_id`, secrets decrypted (and hidden in the log).
async fn stored_env(
    shared: &Shared,
    app_id: i64,
    log: &DeployLog,
) -> Result<BTreeMap<String, String>, String> {
    let stored = shared
        .db
        .call(move |c| crate::db::env_vars::list(c, app_id))
        .await
        .map_err(|e| format!("database: {e}"))?;
    let mut env = BTreeMap::new();
    for var in stored {
        let value = if var.secret {
            let purpose = crate::secrets::Purpose::EnvVar {
                app_id,
                key: &var.key,
            };
            let plain = shared
                .secrets
                .decrypt_str(purpose, &var.value)
                .map_err(|e| format!("secret environment variable {}: {e}", var.key))?;
            log.hide(plain.expose());
            plain.expose().to_owned()
        } else {
            String::from_utf8_lossy(&var.value).into_owned()
        };
        env.insert(var.key, value);
    }
    Ok(env)
}

/// Removes what a failed or cancelled deployment created.
/// A failure's reason, saying so when the disk under the work directory is full (git, for
/// one, says only "unable to write file" then).
fn with_full_disk(reason: String, work: &std::path::Path) -> String {
    match free_bytes(work.parent().unwrap_or(work)) {
        Some(free) if free < FULL_DISK_BYTES => format!(
            "{} (the file system holding {} is full: {free} bytes free)",
            reason.trim_end_matches([' ', '/']),
            work.display()
        ),
        _ => reason,
    }
}

/// The bytes an unprivileged process may still write on the file system holding `path`.
fn free_bytes(path: &std::path::Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `path` is a valid C string and `st` is written by statvfs before it is read.
    let st = unsafe {
        if libc::statvfs(path.as_ptr(), st.as_mut_ptr()) != 0 {
            return None;
        }
        st.assume_init()
    };
    Some(st.f_bavail as u64 * st.f_frsize as u64)
}

/// Less free space than this under the work directory when a deployment fails is taken as
/// the cause: no checkout or build context fits in it.
const FULL_DISK_BYTES: u64 = 1 << 20;

/// How long a failed deployment waits for its engine to answer again, to remove what it
/// created; past it, the next start's reconcile removes the leftovers.
const ENGINE_RETURN_WAIT: Duration = Duration::from_secs(120);

async fn clean_up(shared: &Shared, d: &Deployment, log: &DeployLog, built_image: Option<&str>) {
    let Some(runtime) = shared.current_runtime() else {
        return;
    };
    if let Some(swarm) = shared.swarm()
        && let Err(e) = super::swarm::remove_deployment(shared, &swarm, &d.app, d.id).await
    {
        log.say(&e);
    }
    // An engine that stopped answering (its service killed or restarted, which may be why
    // this deployment failed) is waited for, so that what was created is removed once it is
    // back rather than left running beside the version that serves.
    let deadline = tokio::time::Instant::now() + ENGINE_RETURN_WAIT;
    let mut waiting = false;
    loop {
        match runtime.list(&shared.deployment_filter(&d.app, d.id)).await {
            Ok(containers) => {
                for c in containers {
                    if let Err(e) = runtime.remove(&c.id).await {
                        log.say(&format!("cannot remove container {}: {e}", c.name));
                    }
                }
                break;
            }
            Err(e) if tokio::time::Instant::now() < deadline => {
                if !waiting {
                    log.say(&format!(
                        "cannot list this deployment's containers ({e}); trying again every \
                         second for {} s",
                        ENGINE_RETURN_WAIT.as_secs()
                    ));
                    waiting = true;
                }
                tokio::select! {
                    _ = shared.shutdown.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
            Err(e) => {
                log.say(&format!("cannot list this deployment's containers: {e}"));
                break;
            }
        }
    }
    if let Some(image) = built_image
        && let Err(e) = runtime.remove_image(image).await
    {
        tracing::debug!(deployment = d.id, error = %e, "cannot remove the image of a failed deployment");
    }
}

async fn remove_work_dir(shared: &Shared, id: i64) {
    let work = shared.work_dir(id);
    if let Err(e) = tokio::fs::remove_dir_all(&work).await
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(dir = %work.display(), error = %e, "cannot remove a work directory");
    }
}

/// After `drain`, stops and removes the containers of a replaced deployment.
pub(crate) async fn drain_old(shared: &Shared, app: &str, old: i64, drain: Duration) {
    tokio::select! {
        // On shutdown the old containers stay; the next start's reconcile removes them.
        _ = shared.shutdown.cancelled() => return,
        _ = tokio::time::sleep(drain) => {}
    }
    if let Some(swarm) = shared.swarm() {
        match super::swarm::remove_deployment(shared, &swarm, app, old).await {
            Ok(()) => tracing::info!(
                app,
                deployment = old,
                "replaced deployment's service removed"
            ),
            Err(e) => {
                tracing::warn!(app, deployment = old, error = %e, "cannot remove a replaced deployment's service")
            }
        }
        return;
    }
    let Some(runtime) = shared.current_runtime() else {
        return;
    };
    let containers = match runtime.list(&shared.deployment_filter(app, old)).await {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(app, deployment = old, error = %e, "cannot list a replaced deployment's containers");
            return;
        }
    };
    for c in containers {
        if let Err(e) = runtime.stop(&c.id, shared.config.stop_timeout).await {
            tracing::warn!(app, container = %c.name, error = %e, "cannot stop a replaced container");
        }
        if let Err(e) = runtime.remove(&c.id).await {
            tracing::warn!(app, container = %c.name, error = %e, "cannot remove a replaced container");
        }
    }
    tracing::info!(
        app,
        deployment = old,
        "replaced deployment drained and removed"
    );
}

/// Keeps the images of the last `keep_images` successful deployments for rollbacks and
/// removes older ones Rivetr built.
async fn prune_images(shared: &Shared, app: &App, log: &DeployLog) {
    let Some(runtime) = shared.current_runtime() else {
        return;
    };
    let app_id = app.id;
    let Ok(successful) = shared
        .db
        .call(move |c| deployments::successful(c, app_id))
        .await
    else {
        return;
    };
    let keep = shared.config.keep_images.max(1);
    let kept: HashSet<String> = successful
        .iter()
        .take(keep)
        .filter_map(|d| d.image.clone())
        .collect();
    for old in successful.iter().skip(keep) {
        let Some(image) = old.image.clone() else {
            continue;
        };
        if kept.contains(&image) || !shared.built_here(&image) {
            continue;
        }
        match runtime.remove_image(&image).await {
            Ok(()) => {
                let id = old.id;
                let _ = shared
                    .db
                    .call(move |c| deployments::clear_image(c, id))
                    .await;
                log.say(&format!(
                    "removed the image of deployment {} ({image})",
                    old.id
                ));
            }
            // Still used by a draining container: the next deployment prunes it.
            Err(e) => tracing::debug!(image, error = %e, "image not removed yet"),
        }
    }
}

fn describe(r: &GitRef) -> String {
    match r {
        GitRef::Branch(b) => format!("branch {b}"),
        GitRef::Commit(c) => format!("commit {c}"),
    }
}

/// The URL without its credentials, for the log.
fn redact_url(url: &str) -> String {
    if let Some((scheme, rest)) = url.split_once("://")
        && let Some((_, host_and_path)) = rest.split_once('@')
        && !rest.split('/').next().unwrap_or("").is_empty()
        && rest.split('/').next().unwrap_or("").contains('@')
    {
        return format!("{scheme}://***@{host_and_path}");
    }
    url.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_their_credentials() {
        assert_eq!(
            redact_url("https://x:tok@github.com/a/b.git"),
            "https://***@github.com/a/b.git"
        );
        assert_eq!(
            redact_url("https://github.com/a/b.git"),
            "https://github.com/a/b.git"
        );
        assert_eq!(redact_url("/srv/repo"), "/srv/repo");
    }
}
