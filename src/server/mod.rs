//! The running daemon: opens the database, takes or binds the listeners, serves the API and
//! the proxy, keeps systemd informed, and handles SIGTERM (drain and exit) and SIGHUP (reload).
//!
//! `main` decides exit codes; this module returns typed errors and never exits the process.

mod accept;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;

use crate::AppState;
use crate::config::Config;
use crate::db::{Db, DbError};
use crate::logging::LogHandle;
use crate::systemd::listen::InheritedSockets;
use crate::systemd::{notify, watchdog};

pub use accept::{Probe, probe};

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot create state directory {}: {source}", path.display())]
    StateDir {
        path: PathBuf,
        source: std::io::Error,
    },
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
        config,
        sockets,
        watchdog,
        log,
    } = opts;
    let started = Instant::now();
    let state_dir = config.state_dir();
    std::fs::create_dir_all(&state_dir).map_err(|source| ServerError::StateDir {
        path: state_dir.clone(),
        source,
    })?;
    let db = open_db(state_dir.join("rivetr.db")).await?;
    let runtime = Arc::new(detect_runtime(&config.runtime).await);

    let api_listener = take_or_bind(
        "api",
        "server",
        "api_listen",
        sockets.api,
        config.server.api_listen,
    )
    .await?;
    let http_listener = take_or_bind(
        "http",
        "proxy",
        "http_listen",
        sockets.http,
        config.proxy.http_listen,
    )
    .await?;
    if sockets.https.is_some() {
        tracing::warn!(
            "systemd passed a socket named `https`, but this build has no TLS proxy yet; it stays unused"
        );
    }
    let api_addr = api_listener.local_addr().ok();
    let http_addr = http_listener.local_addr().ok();

    let mut terminate = signal(SignalKind::terminate()).map_err(ServerError::Signals)?;
    let mut interrupt = signal(SignalKind::interrupt()).map_err(ServerError::Signals)?;
    let mut hangup = signal(SignalKind::hangup()).map_err(ServerError::Signals)?;

    let state = AppState {
        db: db.clone(),
        config: Arc::new(ArcSwap::from_pointee(config)),
        started,
        runtime: runtime.clone(),
    };
    let shutdown = CancellationToken::new();
    let grace = state.config.load().shutdown_grace();
    let mut tasks = tokio::task::JoinSet::new();

    let (api_probe, api_probes) = probe("api");
    let router = crate::api::router(state.clone());
    tasks.spawn(accept::serve(
        "api",
        api_listener,
        move |peer| crate::api::service(router.clone(), peer),
        api_probes,
        shutdown.clone(),
        grace,
    ));
    let (http_probe, http_probes) = probe("http");
    tasks.spawn(accept::serve(
        "http",
        http_listener,
        crate::proxy::service,
        http_probes,
        shutdown.clone(),
        grace,
    ));

    let probes = vec![api_probe, http_probe];
    // READY only once every loop is demonstrably polling its listener.
    for p in &probes {
        if let Err(e) = p.check(Duration::from_secs(5)).await {
            tracing::warn!(error = %e, "accept loop slow to start");
        }
    }
    let addrs = Addrs {
        api: api_addr,
        http: http_addr,
        runtime: runtime.status.summary(),
    };
    tracing::info!(version = crate::VERSION, api = ?api_addr, http = ?http_addr, state_dir = %state_dir.display(), "rivetr is serving");
    notify::ready(&status_line(&db, &addrs).await);

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
                reload(&state, config_path.as_deref(), &log);
                notify::ready(&status_line(&db, &addrs).await);
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
    tracing::info!("stopped");
    Ok(())
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

/// How long startup waits for the container engine before serving without one.
const RUNTIME_DETECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Finds the container engine; bounded, so a hanging engine or D-Bus never holds READY back
/// for long. Rivetr serves without an engine and reports what was tried.
async fn detect_runtime(config: &crate::config::RuntimeConfig) -> crate::runtime::Detection {
    let detection = tokio::time::timeout(RUNTIME_DETECT_TIMEOUT, crate::runtime::detect(config))
        .await
        .unwrap_or_else(|_| crate::runtime::Detection::timed_out(RUNTIME_DETECT_TIMEOUT));
    if detection.runtime.is_none() {
        tracing::warn!(status = %detection.status.summary(), "serving without a container runtime");
    }
    detection
}

/// Uses the socket systemd passed under `name`, or binds `addr`.
async fn take_or_bind(
    name: &'static str,
    section: &'static str,
    key: &'static str,
    inherited: Option<std::net::TcpListener>,
    addr: SocketAddr,
) -> Result<TcpListener, ServerError> {
    let bind_error = |source| ServerError::Bind {
        name,
        section,
        key,
        addr,
        source,
    };
    match inherited {
        Some(std_listener) => {
            let listener = TcpListener::from_std(std_listener).map_err(bind_error)?;
            tracing::info!(socket = name, addr = ?listener.local_addr().ok(), "using the socket passed by systemd");
            Ok(listener)
        }
        None => TcpListener::bind(addr).await.map_err(bind_error),
    }
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
    /// `runtime podman 4.3.1` or `no container runtime (tried ...)`.
    runtime: String,
}

/// The line `systemctl status` shows.
async fn status_line(db: &Db, addrs: &Addrs) -> String {
    let apps = db
        .call(|c| c.query_row("SELECT COUNT(*) FROM apps", [], |r| r.get::<_, i64>(0)))
        .await
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".to_owned());
    let show = |a: Option<SocketAddr>| a.map(|a| a.to_string()).unwrap_or_else(|| "?".to_owned());
    format!(
        "serving {apps} apps; api on {}; proxy on {}; {}",
        show(addrs.api),
        show(addrs.http),
        addrs.runtime
    )
}

/// SIGHUP: reads the configuration again and applies what can change while running.
fn reload(state: &AppState, path: Option<&std::path::Path>, log: &LogHandle) {
    notify::reloading();
    let new = match Config::load(path) {
        Ok(new) => new,
        Err(e) => {
            tracing::error!(error = %e, "reload refused; keeping the running configuration");
            return;
        }
    };
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
    ] {
        if changed {
            tracing::warn!(
                key = what,
                "changed in the configuration; takes effect at the next restart"
            );
        }
    }
    tracing::info!(level = new.log.level.as_str(), "configuration reloaded");
    state.config.store(Arc::new(new));
}
