//! The running daemon: opens the database (holding the state directory's lock for as long as
//! it runs, [`crate::db::lock`]), takes or binds the listeners, serves the API and
//! the proxy, keeps systemd informed, and handles SIGTERM (drain and exit) and SIGHUP (reload).
//! [`alerts`] turns what the engine, the certificates and the containers do into notifications.
//!
//! `main` decides exit codes; this module returns typed errors and never exits the process.

pub(crate) mod accept;
mod alerts;
mod linger;
mod park;
mod startup_pages;
pub(crate) mod workers;

use arc_swap::ArcSwap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;

use crate::AppState;
use crate::config::Config;
use crate::db::lock::{LockError, StateLock};
use crate::db::{Db, DbError};
use crate::engine::{Engine, EngineConfig};
use crate::logging::LogHandle;
use crate::notify::Notifier;
use crate::notify::watch::{mark_running, mark_stopped};
use crate::proxy::{self, Proxy, acme::AcmeManager};
use crate::runtime::SharedDetection;
use crate::systemd::listen::InheritedSockets;
use crate::systemd::{notify, watchdog};
use tokio_rustls::TlsAcceptor;

pub use accept::{Probe, probe};

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot create state directory {}: {source}", path.display())]
    StateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "a `rivetr restore` is replacing the database (it holds {}); start Rivetr when it is done",
        path.display()
    )]
    Restoring { path: PathBuf },
    #[error(transparent)]
    Lock(crate::db::lock::LockError),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(
        "cannot listen on {addr} for {name} (set [{section}] {key} or pass a socket named `{name}`): {source}"
    )]
    Bind {
        name: &'static str,
        section: &'static str,
        key: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot install signal handlers: {0}")]
    Signals(std::io::Error),
    #[error(transparent)]
    Proxy(#[from] crate::proxy::ProxyError),
    #[error("cannot start the proxy workers: {0}")]
    Workers(std::io::Error),
    #[error(transparent)]
    Acme(#[from] crate::proxy::acme::AcmeError),
    // Boxed: the key errors carry paths and fingerprints, and would make every Result of
    // this module as large as they are.
    #[error(transparent)]
    Secrets(Box<crate::secrets::SecretsError>),
    #[error("cannot create the first API token: {0}")]
    InitialToken(Box<crate::auth::AuthError>),
    #[error(transparent)]
    BackupKey(#[from] crate::databases::backups::crypt::CryptError),
    #[error("cannot write the running marker in {}: {source}", path.display())]
    Marker {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl From<crate::secrets::SecretsError> for ServerError {
    fn from(e: crate::secrets::SecretsError) -> Self {
        ServerError::Secrets(Box::new(e))
    }
}

impl From<crate::auth::AuthError> for ServerError {
    fn from(e: crate::auth::AuthError) -> Self {
        ServerError::InitialToken(Box::new(e))
    }
}

/// What `main` hands to [`run`].
pub struct Options {
    /// The file the configuration came from, read again on SIGHUP.
    pub config_path: Option<PathBuf>,
    pub config: Config,
    pub sockets: InheritedSockets,
    pub watchdog: Option<Duration>,
    pub log: LogHandle,
}

/// Runs Rivetr until SIGTERM or SIGINT, then drains and returns.
pub async fn run(opts: Options) -> Result<(), ServerError> {
    let Options {
        config_path,
        mut config,
        sockets,
        watchdog,
        log,
    } = opts;
    let started = Instant::now();
    let state_dir = config.state_dir();
    tokio::fs::create_dir_all(&state_dir)
        .await
        .map_err(|source| ServerError::StateDir {
            path: state_dir.clone(),
            source,
        })?;
    // Held until this function returns: `rivetr restore` refuses to replace the database
    // under a running daemon.
    let _state_lock = lock_state_dir(&state_dir)?;
    let db = open_db(state_dir.join("rivetr.db")).await?;
    let credentials = std::env::var_os("CREDENTIALS_DIRECTORY").map(PathBuf::from);
    let secrets = Arc::new(crate::secrets::load(&db, &state_dir, credentials.as_deref()).await?);
    let notifier = Notifier::new(db.clone(), Arc::clone(&secrets), &config);
    crate::auth::ensure_initial_token(&db, &state_dir).await?;
    check_backup_key(&config)?;
    let runtime: SharedDetection =
        Arc::new(ArcSwap::from_pointee(detect_runtime(&config.runtime).await));

    let api_listener = take_or_bind(
        "api",
        "server",
        "api_listen",
        sockets.api,
        config.server.api_listen,
    )?;
    let api_listener = into_tokio(
        api_listener,
        "api",
        "server",
        "api_listen",
        config.server.api_listen,
    )?;
    let http_listener = take_or_bind(
        "http",
        "proxy",
        "http_listen",
        sockets.http,
        config.proxy.http_listen,
    )?;
    let https_listener = take_or_bind(
        "https",
        "proxy",
        "https_listen",
        sockets.https,
        config.proxy.https_listen,
    )?;
    // `/metrics` on a listener of its own: asked for in the configuration, or passed by
    // systemd as `metrics`.
    let metrics_listener = match (sockets.metrics, config.metrics.listen) {
        (None, None) => None,
        (inherited, addr) => {
            let addr = addr.unwrap_or(SocketAddr::from(([0, 0, 0, 0], 0)));
            let listener = take_or_bind("metrics", "metrics", "listen", inherited, addr)?;
            Some(into_tokio(listener, "metrics", "metrics", "listen", addr)?)
        }
    };
    let (config_http, config_https) = (config.proxy.http_listen, config.proxy.https_listen);
    let addrs = Addrs {
        api: api_listener.local_addr().ok(),
        http: http_listener.local_addr().ok(),
        https: https_listener.local_addr().ok(),
    };

    let shutdown = CancellationToken::new();
    // Before the first route table is built: it makes one copy per worker (plus one).
    crate::proxy::shard::plan_workers(workers::plan(config.proxy.workers).threads);
    let proxy = Arc::new(Proxy::new(
        &config.proxy,
        addrs.https.map(|a| a.port()),
        shutdown.clone(),
    ));
    leave_out_app_hosts(&mut config, &db).await?;
    proxy.apply_config(&config, addrs.api)?;
    let mut tasks = tokio::task::JoinSet::new();
    if config.acme.enabled {
        let acme = Arc::new(AcmeManager::new(
            config.acme.clone(),
            &state_dir,
            Arc::clone(&proxy.certs),
            notifier.clone(),
            shutdown.clone(),
        )?);
        tasks.spawn(acme.follow(Arc::clone(&proxy.routes)));
    }

    let mut terminate = signal(SignalKind::terminate()).map_err(ServerError::Signals)?;
    let mut interrupt = signal(SignalKind::interrupt()).map_err(ServerError::Signals)?;
    let mut hangup = signal(SignalKind::hangup()).map_err(ServerError::Signals)?;

    let engine = Engine::start(
        db.clone(),
        Arc::clone(&secrets),
        Arc::clone(&runtime),
        Arc::clone(&proxy.routes),
        EngineConfig::from_config(&config, state_dir.clone()),
        shutdown.clone(),
    );
    // Listening before reconcile: a deployment it finishes is announced.
    tasks.spawn(alerts::announce_deployments(
        notifier.clone(),
        engine.subscribe_events(),
        db.clone(),
        shutdown.clone(),
    ));
    // Routes of deployed apps come back before READY, so a restart serves them at once;
    // leftovers of interrupted deployments are removed after, in the background.
    if let Err(e) = engine.reconcile().await {
        tracing::error!(error = %e, "reconciling with the container engine failed; apps may be unrouted");
    }

    let state = AppState {
        started,
        client_handover: proxy.handover(),
        certificates: Arc::clone(&proxy.certs),
        ..AppState::new(
            db.clone(),
            config,
            secrets,
            runtime.clone(),
            engine.clone(),
            notifier.clone(),
        )
    };
    tasks.spawn(notifier.clone().run_deliveries(shutdown.clone()));
    tasks.spawn(state.metrics.clone().watch_deployments(
        engine.subscribe_events(),
        db.clone(),
        shutdown.clone(),
    ));
    tasks.spawn(alerts::watch_health(
        notifier.clone(),
        Arc::clone(&proxy.certs),
        runtime.clone(),
        shutdown.clone(),
    ));
    // Databases' public ports listen again before READY (binding is quick); the databases
    // not stopped by request come back up in the background: an engine restarted without
    // its containers, or a rebooted machine, must not delay READY by their start.
    state.databases.open_public_ports().await;
    tokio::spawn({
        let databases = state.databases.clone();
        async move { databases.reconcile().await }
    });
    // Previews whose PR was closed but whose removal did not finish (Rivetr stopped on the
    // way) go now, in the background.
    tokio::spawn({
        let previews = state.previews.clone();
        async move {
            match previews.reconcile().await {
                Ok(removed) if !removed.is_empty() => {
                    tracing::info!(previews = %removed.join(", "), "removed the previews of closed pull requests");
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::error!(error = %e, "cannot remove the previews of closed pull requests")
                }
            }
        }
    });
    // Backups left running by a previous process are marked failed, then the schedules run
    // (one missed while Rivetr was down runs once now).
    tasks.spawn(state.backups.clone().run_schedules(shutdown.clone()));
    let grace = state.config.load().shutdown_grace();
    if let Err(e) = state.live_tokens.refresh(&db).await {
        tracing::warn!(error = %e, "cannot read the live API tokens; retrying in the background");
    }
    let config = Arc::clone(&state.config);
    tasks.spawn(crate::db::retention::run(
        db.clone(),
        move || {
            let engine = &config.load().engine;
            crate::db::retention::Keep {
                deployments: engine.keep_deployments.get(),
                images: engine.keep_images,
            }
        },
        engine.logs().finished(),
        shutdown.clone(),
    ));
    let streams = Arc::clone(&state.streams);
    tasks.spawn(Arc::clone(&state.live_tokens).follow(
        db.clone(),
        move |tokens| streams.end_revoked(|id| tokens.is_revoked(id)),
        shutdown.clone(),
    ));

    let (api_probe, api_probes) = probe("api");
    let router = crate::api::router(state.clone());
    tasks.spawn(accept::serve(
        "api",
        accept::Source::Listener(api_listener),
        None,
        None,
        move |peer| crate::api::service(router.clone(), peer),
        api_probes,
        shutdown.clone(),
        grace,
    ));
    let tls = TlsAcceptor::from(proxy::tls::server_config(Arc::clone(&proxy.certs)));
    let mut workers = workers::spawn(
        workers::plan(state.config.load().proxy.workers),
        workers::WorkerSetup {
            proxy: Arc::clone(&proxy),
            tls,
            shutdown: shutdown.clone(),
            grace,
        },
    )
    .map_err(ServerError::Workers)?;
    let mut extra_probes = Vec::new();
    if let Some(listener) = metrics_listener {
        tracing::info!(addr = ?listener.local_addr().ok(), "/metrics also served on its own listener");
        let (metrics_probe, metrics_probes) = probe("metrics");
        extra_probes.push(metrics_probe);
        let router = crate::api::metrics_router(state.clone());
        tasks.spawn(accept::serve(
            "metrics",
            accept::Source::Listener(listener),
            None,
            None,
            move |peer| crate::api::service(router.clone(), peer),
            metrics_probes,
            shutdown.clone(),
            grace,
        ));
    }
    let (http_dispatch_probe, http_dispatch_probes) = probe("http dispatch");
    tasks.spawn(accept::dispatch(
        "http",
        into_tokio(http_listener, "http", "proxy", "http_listen", config_http)?,
        std::mem::take(&mut workers.http),
        http_dispatch_probes,
        shutdown.clone(),
    ));
    let (https_dispatch_probe, https_dispatch_probes) = probe("https dispatch");
    tasks.spawn(accept::dispatch(
        "https",
        into_tokio(
            https_listener,
            "https",
            "proxy",
            "https_listen",
            config_https,
        )?,
        std::mem::take(&mut workers.https),
        https_dispatch_probes,
        shutdown.clone(),
    ));

    let mut probes = vec![api_probe, http_dispatch_probe, https_dispatch_probe];
    probes.extend(workers.probes.iter().cloned());
    probes.extend(extra_probes);
    // READY only once every loop is demonstrably polling its listener.
    for p in &probes {
        if let Err(e) = p.check(Duration::from_secs(5)).await {
            tracing::warn!(error = %e, "accept loop slow to start");
        }
    }
    // Marked running only now that every fallible step of the start is behind: a start that
    // fails (a port taken) is no crash, and leaves an earlier crash's marker to be reported.
    let after_crash = mark_running(&state_dir).map_err(|source| ServerError::Marker {
        path: state_dir.clone(),
        source,
    })?;
    if after_crash {
        notifier.started_after_crash();
    }
    tracing::info!(version = crate::VERSION, api = ?addrs.api, http = ?addrs.http, https = ?addrs.https, runtime = %runtime.load().status.summary(), state_dir = %state_dir.display(), "rivetr is serving");
    notify::ready(&status_line(&db, &proxy, &engine, &addrs, &runtime).await);
    // Once the start-up work in the background (reconcile, databases) has had time to end,
    // the code pages only starting needed leave the process (see startup_pages.rs), and so
    // does the heap memory it freed: about 1.3 MB that glibc kept (bench/idle-rss.sh).
    tokio::spawn(async {
        tokio::time::sleep(Duration::from_secs(5)).await;
        let released = tokio::task::spawn_blocking(|| {
            let released = startup_pages::release();
            crate::memory::release_free_memory();
            released
        })
        .await
        .unwrap_or(0);
        tracing::debug!(bytes = released, "start-up code pages released");
    });

    let runtime_found = Arc::new(tokio::sync::Notify::new());
    if runtime.load().runtime.is_none() {
        tasks.spawn(watch_for_runtime(
            state.config.load().runtime.clone(),
            Arc::clone(&runtime),
            engine.clone(),
            Arc::clone(&runtime_found),
            shutdown.clone(),
        ));
    }

    if let Some(period) = watchdog {
        tracing::info!(?period, "watchdog enabled");
        let db = db.clone();
        let probes = probes.clone();
        tasks.spawn(watchdog::run(
            period,
            move |timeout| liveness(probes.clone(), db.clone(), timeout),
            shutdown.clone(),
        ));
    }

    loop {
        tokio::select! {
            _ = terminate.recv() => break,
            _ = interrupt.recv() => break,
            _ = hangup.recv() => {
                reload(&state, config_path.clone(), &log, &proxy, addrs.api).await;
                notify::ready(&status_line(&db, &proxy, &engine, &addrs, &runtime).await);
            }
            _ = runtime_found.notified() => {
                notify::status(&status_line(&db, &proxy, &engine, &addrs, &runtime).await);
            }
        }
    }

    tracing::info!(
        ?grace,
        "shutting down: no new connections; waiting for requests in flight"
    );
    notify::stopping();
    shutdown.cancel();
    while tasks.join_next().await.is_some() {}
    workers.join().await;
    engine.wait_background().await;
    mark_stopped(&state_dir);
    tracing::info!("stopped");
    Ok(())
}

/// Takes the state directory's shared lock; refused only while a `rivetr restore` holds it.
/// A backup key file that is set must be readable now, not first at a 3 a.m. backup.
fn check_backup_key(config: &Config) -> Result<(), ServerError> {
    let path = &config.databases.backup_key_file;
    if !path.as_os_str().is_empty() {
        let key = crate::databases::backups::crypt::BackupKey::load(path)?;
        tracing::info!(key_file = %path.display(), fingerprint = %key.fingerprint(), "backups are encrypted");
    }
    Ok(())
}

fn lock_state_dir(state_dir: &std::path::Path) -> Result<StateLock, ServerError> {
    StateLock::shared(state_dir).map_err(|e| match e {
        LockError::Held { path } => ServerError::Restoring { path },
        other => ServerError::Lock(other),
    })
}

async fn open_db(path: PathBuf) -> Result<Db, ServerError> {
    let (db, outcome) = tokio::task::spawn_blocking(move || Db::open(&path))
        .await
        .map_err(|e| DbError::Task(e.to_string()))??;
    if let Some(backup) = &outcome.backup {
        tracing::info!(backup = %backup.display(), from = outcome.from, to = outcome.to, "database backed up before migration");
    }
    Ok(db)
}

/// How long startup waits for the container engine before serving without one (longer than
/// one socket's probe, so a slow but present engine is still found).
const RUNTIME_DETECT_TIMEOUT: Duration = Duration::from_secs(20);
/// The longest pause between two looks for an engine that was missing at startup.
const RUNTIME_RETRY_MAX: Duration = Duration::from_secs(30);

/// Finds the container engine; bounded, so a hanging engine or D-Bus never holds READY back
/// for long. Rivetr serves without an engine and reports what was tried.
async fn detect_runtime(config: &crate::config::RuntimeConfig) -> crate::runtime::Detection {
    let detection = detect_bounded(config).await;
    if detection.runtime.is_none() {
        tracing::warn!(status = %detection.status.summary(), "serving without a container runtime");
    }
    detection
}

/// One detection, given up after [`RUNTIME_DETECT_TIMEOUT`].
async fn detect_bounded(config: &crate::config::RuntimeConfig) -> crate::runtime::Detection {
    tokio::time::timeout(RUNTIME_DETECT_TIMEOUT, crate::runtime::detect(config))
        .await
        .unwrap_or_else(|_| crate::runtime::Detection::timed_out(RUNTIME_DETECT_TIMEOUT))
}

/// Looks again, with growing pauses, for an engine that was missing at startup: on a first
/// install systemd may start Rivetr before the `rivetr` user's `podman.socket` exists. Once
/// found, the engine is swapped in, apps are reconciled (routed, started) and STATUS updated.
async fn watch_for_runtime(
    config: crate::config::RuntimeConfig,
    runtime: SharedDetection,
    engine: Engine,
    found: Arc<tokio::sync::Notify>,
    shutdown: CancellationToken,
) {
    let mut pause = Duration::from_secs(1);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(pause) => {}
        }
        pause = (pause * 2).min(RUNTIME_RETRY_MAX);
        let detection = detect_bounded(&config).await;
        if detection.runtime.is_none() {
            tracing::debug!(status = %detection.status.summary(), "still no container runtime");
            continue;
        }
        tracing::info!(status = %detection.status.summary(), "container runtime appeared after startup");
        runtime.store(Arc::new(detection));
        if let Err(e) = engine.reconcile().await {
            tracing::error!(error = %e, "reconciling with the container engine failed; apps may be unrouted");
        }
        found.notify_one();
        return;
    }
}

/// Uses the socket systemd passed under `name`, or binds `addr`. Either way the result is
/// non-blocking, ready for tokio.
fn take_or_bind(
    name: &'static str,
    section: &'static str,
    key: &'static str,
    inherited: Option<std::net::TcpListener>,
    addr: SocketAddr,
) -> Result<std::net::TcpListener, ServerError> {
    let bind_error = |source| ServerError::Bind {
        name,
        section,
        key,
        addr,
        source,
    };
    let listener = match inherited {
        Some(listener) => {
            tracing::info!(socket = name, addr = ?listener.local_addr().ok(), "using the socket passed by systemd");
            listener
        }
        None => std::net::TcpListener::bind(addr).map_err(bind_error)?,
    };
    listener.set_nonblocking(true).map_err(bind_error)?;
    Ok(listener)
}

fn into_tokio(
    listener: std::net::TcpListener,
    name: &'static str,
    section: &'static str,
    key: &'static str,
    addr: SocketAddr,
) -> Result<TcpListener, ServerError> {
    TcpListener::from_std(listener).map_err(|source| ServerError::Bind {
        name,
        section,
        key,
        addr,
        source,
    })
}

/// The watchdog's check: every accept loop answers, and the database answers a query.
async fn liveness(probes: Vec<Probe>, db: Db, timeout: Duration) -> Result<(), String> {
    for p in &probes {
        p.check(timeout).await?;
    }
    match tokio::time::timeout(timeout, db.ping()).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(format!("database: {e}")),
        Err(_) => Err(format!("database did not answer within {timeout:?}")),
    }
}

struct Addrs {
    api: Option<SocketAddr>,
    http: Option<SocketAddr>,
    https: Option<SocketAddr>,
}

/// The line `systemctl status` shows.
async fn status_line(
    db: &Db,
    proxy: &Proxy,
    engine: &Engine,
    addrs: &Addrs,
    runtime: &SharedDetection,
) -> String {
    let apps = db
        .call(|c| c.query_row("SELECT COUNT(*) FROM apps", [], |r| r.get::<_, i64>(0)))
        .await
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".to_owned());
    let show = |a: Option<SocketAddr>| a.map(|a| a.to_string()).unwrap_or_else(|| "?".to_owned());
    format!(
        "serving {apps} apps, {} routes; {} deploys queued; api on {}; proxy on {} and {} (tls); {}",
        proxy.routes.load().len(),
        engine.queued_count().await,
        show(addrs.api),
        show(addrs.http),
        show(addrs.https),
        runtime.load().status.summary()
    )
}

/// Every app's domains (lower case), with the app that holds each.
async fn app_hosts(db: &Db) -> Result<std::collections::HashMap<String, String>, DbError> {
    let apps = db.call(|c| crate::db::apps::list(c)).await?;
    Ok(apps
        .into_iter()
        .flat_map(|app| {
            app.domains
                .into_iter()
                .map(move |d| (d.to_ascii_lowercase(), app.name.clone()))
        })
        .collect())
}

/// At start there is no older configuration to keep: a route or `[server] domain` for a host
/// an app holds is left out, and the app keeps the host (a reload refuses such a file whole).
async fn leave_out_app_hosts(config: &mut Config, db: &Db) -> Result<(), ServerError> {
    let hosts = app_hosts(db).await?;
    for host in config.without_hosts(&|h| hosts.contains_key(h)) {
        tracing::error!(
            host,
            app = %hosts[&host.to_ascii_lowercase()],
            "the configuration claims a domain of an app; left out, the app keeps it (change one of them, then reload)"
        );
    }
    Ok(())
}

/// Why `new` cannot be applied while the apps hold the hosts they do, if it cannot.
async fn app_host_conflicts(new: &Config, db: &Db) -> Result<(), String> {
    let hosts = app_hosts(db)
        .await
        .map_err(|e| format!("cannot read the apps' domains: {e}"))?;
    let mut conflicts: Vec<String> = hosts
        .iter()
        .filter_map(|(host, app)| {
            new.host_holder(host)
                .map(|holder| format!("`{host}` in {holder} is a domain of app `{app}`"))
        })
        .collect();
    if conflicts.is_empty() {
        return Ok(());
    }
    conflicts.sort();
    Err(conflicts.join("; "))
}

/// SIGHUP: reads the configuration again and applies what can change while running.
async fn reload(
    state: &AppState,
    path: Option<PathBuf>,
    log: &LogHandle,
    proxy: &Proxy,
    api_addr: Option<SocketAddr>,
) {
    notify::reloading();
    // Reading the file blocks (a slow or network file system): not on an async thread.
    let loaded = tokio::task::spawn_blocking(move || Config::load(path.as_deref())).await;
    let new = match loaded {
        Ok(Ok(new)) => new,
        Ok(Err(e)) => {
            tracing::error!(error = %e, "reload refused; keeping the running configuration");
            return;
        }
        Err(e) => {
            tracing::error!(error = %e, "reload stopped; keeping the running configuration");
            return;
        }
    };
    if let Err(e) = app_host_conflicts(&new, &state.db).await {
        tracing::error!(error = %e, "reload refused; keeping the running configuration");
        return;
    }
    if let Err(e) = proxy.apply_config(&new, api_addr) {
        tracing::error!(error = %e, "reload refused; keeping the running configuration");
        return;
    }
    let old = state.config.load();
    if let Err(e) = log.set_level(&new.log.level) {
        tracing::error!(error = %e, "cannot apply the new log level");
    }
    for (what, changed) in [
        (
            "server.api_listen",
            old.server.api_listen != new.server.api_listen,
        ),
        (
            "proxy.http_listen",
            old.proxy.http_listen != new.proxy.http_listen,
        ),
        (
            "server.state_dir",
            old.server.state_dir != new.server.state_dir,
        ),
        (
            "server.shutdown_grace_seconds",
            old.server.shutdown_grace_seconds != new.server.shutdown_grace_seconds,
        ),
        ("runtime.engine", old.runtime.engine != new.runtime.engine),
        ("runtime.socket", old.runtime.socket != new.runtime.socket),
        ("build", old.build != new.build),
    ] {
        if changed {
            tracing::warn!(
                key = what,
                "changed in the configuration; takes effect at the next restart"
            );
        }
    }
    tracing::info!(level = new.log.level.as_str(), "configuration reloaded");
    state.notifier.reload(&new);
    state.config.store(Arc::new(new));
}
