//! Finding the container engine at startup, from `[runtime]` in the config.
//!
//! With `socket` set, that socket is used and asked which engine it is. Otherwise the usual
//! places are tried in order: the rootless Podman socket (`$XDG_RUNTIME_DIR/podman/podman.sock`),
//! the rootful one (`/run/podman/podman.sock`), `$DOCKER_HOST`, `/var/run/docker.sock`;
//! `engine = "podman"` or `"docker"` keeps only that engine's places. When no engine answers
//! and a Podman socket file is missing, systemd is asked over D-Bus to start `podman.socket`
//! (the user's manager for the rootless socket, the system manager for the rootful one) and
//! that socket is tried once more.
//!
//! Detection never fails: when nothing answers, the result says what was tried and why each
//! place failed, so Rivetr can serve its API and report it.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use super::compat::socket_path;
use super::raw::RawClient;
use super::{
    ContainerRuntime, DockerRuntime, EngineInfo, EngineKind, PodmanRuntime, RuntimeError, Swarm,
};
use crate::config::{EngineChoice, RuntimeConfig};
use crate::systemd::dbus::{self, Bus};

/// How long one socket may take to say which engine it is.
/// Generous: a rootless Podman service answers its first request slowly (it sets up its
/// user namespace), and Podman's `/info` walks its whole store; on a busy machine (a boot,
/// builds running) both took seconds. Missing the engine here leaves Rivetr without one
/// until restart, which costs far more than waiting.
const PROBE_TIMEOUT: Duration = Duration::from_secs(15);
/// How long systemd may take to accept a start job, and then to create the socket file.
const SYSTEMD_TIMEOUT: Duration = Duration::from_secs(2);
const ROOTFUL_PODMAN: &str = "/run/podman/podman.sock";
const DEFAULT_DOCKER: &str = "/var/run/docker.sock";

/// One place that was tried and why it was not used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Attempt {
    /// `unix:///path`, or the raw value when it was not a unix socket.
    pub socket: String,
    /// Where the place came from: `[runtime] socket`, `$XDG_RUNTIME_DIR`, `DOCKER_HOST`, ...
    pub source: String,
    pub error: String,
}

/// What `/api/health` and the STATUS line report.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "status", rename_all = "lowercase")]
pub enum RuntimeStatus {
    Ok {
        #[serde(flatten)]
        info: EngineInfo,
    },
    Unavailable {
        message: String,
        tried: Vec<Attempt>,
    },
}

impl RuntimeStatus {
    /// For `systemctl status`: `runtime podman 4.3.1 (rootless)` or
    /// `no container runtime (tried ...)`.
    pub fn summary(&self) -> String {
        match self {
            RuntimeStatus::Ok { info } => format!(
                "runtime {} {}{}",
                info.engine,
                info.version,
                if info.rootless { " (rootless)" } else { "" }
            ),
            RuntimeStatus::Unavailable { message, .. } => message.clone(),
        }
    }
}

/// The detection every part of Rivetr reads: replaced whole when an engine that was missing
/// at startup appears later (a `podman.socket` that systemd starts after Rivetr).
pub type SharedDetection = Arc<arc_swap::ArcSwap<Detection>>;

/// The engine found, if any, and what to report about it.
#[derive(Clone)]
pub struct Detection {
    pub runtime: Option<Arc<dyn ContainerRuntime>>,
    /// With `engine = "swarm"`: the swarm that runs the apps (builds and databases stay on
    /// `runtime`, the manager's own engine).
    pub swarm: Option<Arc<Swarm>>,
    pub status: RuntimeStatus,
}

impl Detection {
    /// Detection gave up after `limit` (an engine that accepts connections but never
    /// answers, or a hanging D-Bus).
    pub fn timed_out(limit: Duration) -> Detection {
        let message = format!("no container runtime (detection did not finish within {limit:?})");
        Detection {
            runtime: None,
            swarm: None,
            status: RuntimeStatus::Unavailable {
                message,
                tried: Vec::new(),
            },
        }
    }

    fn unavailable(tried: Vec<Attempt>) -> Detection {
        let places: Vec<String> = tried
            .iter()
            .map(|a| format!("{}: {}", a.socket, a.error))
            .collect();
        let message = if places.is_empty() {
            "no container runtime (nothing to try)".to_owned()
        } else {
            format!("no container runtime (tried {})", places.join("; "))
        };
        Detection {
            runtime: None,
            swarm: None,
            status: RuntimeStatus::Unavailable { message, tried },
        }
    }
}

/// The process environment detection reads, passed in so tests need not change their own.
#[derive(Debug, Clone)]
pub struct DetectEnv {
    pub xdg_runtime_dir: Option<PathBuf>,
    pub docker_host: Option<String>,
    /// The rootful Podman socket (`/run/podman/podman.sock`).
    pub rootful_podman: PathBuf,
    /// Docker's default socket (`/var/run/docker.sock`).
    pub default_docker: PathBuf,
    /// Whether to ask systemd to start `podman.socket` when its file is missing.
    pub ask_systemd: bool,
}

impl DetectEnv {
    pub fn from_process() -> DetectEnv {
        let nonempty = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        DetectEnv {
            xdg_runtime_dir: nonempty("XDG_RUNTIME_DIR").map(PathBuf::from),
            docker_host: nonempty("DOCKER_HOST"),
            rootful_podman: PathBuf::from(ROOTFUL_PODMAN),
            default_docker: PathBuf::from(DEFAULT_DOCKER),
            ask_systemd: true,
        }
    }
}

/// Detects the engine from `config` and the process environment.
pub async fn detect(config: &RuntimeConfig) -> Detection {
    detect_with(config, &DetectEnv::from_process()).await
}

/// A place to try.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Candidate {
    socket: String,
    source: String,
    /// The systemd manager whose `podman.socket` creates this socket.
    systemd: Option<Bus>,
}

/// Detects the engine from `config` and `env`.
pub async fn detect_with(config: &RuntimeConfig, env: &DetectEnv) -> Detection {
    let candidates = candidates(config, env);
    let mut tried = Vec::new();
    let mut missing = Vec::new();
    for c in &candidates {
        match try_candidate(c, config).await {
            Ok(found) => return found,
            Err(Failure::Missing(error)) => {
                missing.push(c.clone());
                tried.push(attempt(c, error));
            }
            Err(Failure::Other(error)) => tried.push(attempt(c, error)),
        }
    }
    if env.ask_systemd {
        for c in missing.iter().filter(|c| c.systemd.is_some()) {
            let bus = c.systemd.unwrap_or(Bus::System);
            let outcome = match start_podman_socket(bus, &c.socket).await {
                Ok(()) => try_candidate(c, config).await.map_err(Failure::text),
                Err(e) => Err(e),
            };
            match outcome {
                Ok(found) => return found,
                Err(error) => {
                    if let Some(a) = tried.iter_mut().find(|a| a.socket == c.socket) {
                        a.error = format!("{}; then {error}", a.error);
                    }
                }
            }
        }
    }
    Detection::unavailable(tried)
}

fn attempt(c: &Candidate, error: String) -> Attempt {
    Attempt {
        socket: c.socket.clone(),
        source: c.source.clone(),
        error,
    }
}

/// The places to try, in order.
fn candidates(config: &RuntimeConfig, env: &DetectEnv) -> Vec<Candidate> {
    let candidate = |socket: String, source: &str, systemd: Option<Bus>| Candidate {
        socket,
        source: source.to_owned(),
        systemd,
    };
    if let Some(socket) = config.socket.get() {
        return vec![candidate(socket.to_owned(), "[runtime] socket", None)];
    }
    let mut list = Vec::new();
    if matches!(config.engine, EngineChoice::Auto | EngineChoice::Podman) {
        if let Some(dir) = &env.xdg_runtime_dir {
            let path = dir.join("podman/podman.sock");
            list.push(candidate(
                format!("unix://{}", path.display()),
                "$XDG_RUNTIME_DIR",
                Some(Bus::User),
            ));
        }
        list.push(candidate(
            format!("unix://{}", env.rootful_podman.display()),
            "rootful Podman default",
            Some(Bus::System),
        ));
    }
    if !matches!(config.engine, EngineChoice::Podman) {
        if let Some(host) = &env.docker_host {
            list.push(candidate(host.clone(), "DOCKER_HOST", None));
        }
        list.push(candidate(
            format!("unix://{}", env.default_docker.display()),
            "Docker default",
            None,
        ));
    }
    list
}

enum Failure {
    /// The socket file does not exist (systemd might create it).
    Missing(String),
    Other(String),
}

impl Failure {
    fn text(self) -> String {
        match self {
            Failure::Missing(e) | Failure::Other(e) => e,
        }
    }
}

/// Asks the engine at `c` who it is; accepts it when it is the configured kind.
async fn try_candidate(c: &Candidate, config: &RuntimeConfig) -> Result<Detection, Failure> {
    let choice = config.engine;
    let path = socket_path(&c.socket).map_err(|e| Failure::Other(e.to_string()))?;
    if !path.exists() {
        return Err(Failure::Missing("no such socket".to_owned()));
    }
    let kind = probe(&path).await.map_err(|e| Failure::Other(short(&e)))?;
    let wanted = match choice {
        EngineChoice::Auto => kind,
        EngineChoice::Podman => EngineKind::Podman,
        EngineChoice::Docker | EngineChoice::Swarm => EngineKind::Docker,
    };
    if kind != wanted {
        return Err(Failure::Other(format!(
            "this is {kind}, but [runtime] engine = \"{wanted}\""
        )));
    }
    let runtime: Arc<dyn ContainerRuntime> = match kind {
        EngineKind::Podman => Arc::new(PodmanRuntime::connect(&c.socket).map_err(other)?),
        EngineKind::Docker => Arc::new(DockerRuntime::connect(&c.socket).map_err(other)?),
    };
    let info = tokio::time::timeout(PROBE_TIMEOUT, runtime.info())
        .await
        .map_err(|_| Failure::Other(format!("no answer within {PROBE_TIMEOUT:?}")))?
        .map_err(other)?;
    let swarm = if choice == EngineChoice::Swarm {
        let swarm = Swarm::connect(&c.socket, &config.swarm.registry).map_err(other)?;
        let about = tokio::time::timeout(PROBE_TIMEOUT, swarm.info())
            .await
            .map_err(|_| Failure::Other(format!("no answer within {PROBE_TIMEOUT:?}")))?
            .map_err(other)?;
        tracing::info!(nodes = about.nodes, managers = about.managers, registry = %config.swarm.registry, "swarm manager found");
        Some(Arc::new(swarm))
    } else {
        None
    };
    tracing::info!(engine = %info.engine, version = %info.version, rootless = info.rootless, socket = %info.socket, source = %c.source, "container runtime found");
    Ok(Detection {
        runtime: Some(runtime),
        swarm,
        status: RuntimeStatus::Ok { info },
    })
}

fn other(e: RuntimeError) -> Failure {
    Failure::Other(short(&e))
}

/// The engine's words without the socket, which the attempt names already.
fn short(e: &RuntimeError) -> String {
    match e {
        RuntimeError::Unreachable { message, .. } => message.clone(),
        other => other.to_string(),
    }
}

/// Which engine serves the socket at `path`: Podman's `/_ping` carries a
/// `Libpod-Api-Version` header. (`/_ping` answers at once; Podman computes its whole `/info`
/// for `/version`, which took most of a second on a busy machine and held up every start.)
async fn probe(path: &Path) -> Result<EngineKind, RuntimeError> {
    let (status, headers) = RawClient::new(path, PROBE_TIMEOUT)
        .headers("/_ping")
        .await?;
    if !(200..300).contains(&status) {
        return Err(RuntimeError::Protocol(format!(
            "/_ping answered {status}: not a Docker-compatible engine"
        )));
    }
    Ok(if headers.contains_key("libpod-api-version") {
        EngineKind::Podman
    } else {
        EngineKind::Docker
    })
}

/// Starts `podman.socket` in `bus`'s systemd manager and waits for the socket file.
async fn start_podman_socket(bus: Bus, socket: &str) -> Result<(), String> {
    dbus::start_unit(bus, "podman.socket", SYSTEMD_TIMEOUT)
        .await
        .map_err(|e| e.to_string())?;
    let path = socket_path(socket).map_err(|e| e.to_string())?;
    let deadline = tokio::time::Instant::now() + SYSTEMD_TIMEOUT;
    while !path.exists() {
        if tokio::time::Instant::now() > deadline {
            return Err(format!(
                "systemd started podman.socket ({bus} manager) but {socket} did not appear within {SYSTEMD_TIMEOUT:?}"
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RuntimeSocket;

    fn config(engine: EngineChoice, socket: &str) -> RuntimeConfig {
        RuntimeConfig {
            engine,
            socket: RuntimeSocket::try_from(socket.to_owned()).unwrap(),
            swarm: Default::default(),
        }
    }

    fn env() -> DetectEnv {
        DetectEnv {
            xdg_runtime_dir: Some(PathBuf::from("/run/user/1000")),
            docker_host: Some("unix:///custom/docker.sock".to_owned()),
            rootful_podman: PathBuf::from(ROOTFUL_PODMAN),
            default_docker: PathBuf::from(DEFAULT_DOCKER),
            ask_systemd: false,
        }
    }

    fn sockets(list: Vec<Candidate>) -> Vec<String> {
        list.into_iter().map(|c| c.socket).collect()
    }

    #[test]
    fn auto_order_is_rootless_podman_rootful_podman_docker_host_default_docker() {
        assert_eq!(
            sockets(candidates(&config(EngineChoice::Auto, ""), &env())),
            vec![
                "unix:///run/user/1000/podman/podman.sock",
                "unix:///run/podman/podman.sock",
                "unix:///custom/docker.sock",
                "unix:///var/run/docker.sock",
            ]
        );
    }

    #[test]
    fn swarm_looks_only_where_docker_is() {
        assert_eq!(
            sockets(candidates(&config(EngineChoice::Swarm, ""), &env())),
            vec!["unix:///custom/docker.sock", "unix:///var/run/docker.sock"]
        );
    }

    #[test]
    fn engine_choice_keeps_only_its_places_and_socket_wins() {
        assert_eq!(
            sockets(candidates(&config(EngineChoice::Podman, ""), &env())),
            vec![
                "unix:///run/user/1000/podman/podman.sock",
                "unix:///run/podman/podman.sock",
            ]
        );
        assert_eq!(
            sockets(candidates(&config(EngineChoice::Docker, ""), &env())),
            vec!["unix:///custom/docker.sock", "unix:///var/run/docker.sock"]
        );
        assert_eq!(
            sockets(candidates(
                &config(EngineChoice::Docker, "unix:///x.sock"),
                &env()
            )),
            vec!["unix:///x.sock"]
        );
    }

    #[tokio::test]
    async fn nothing_found_says_what_was_tried() {
        let dir = tempfile::tempdir().unwrap();
        let env = DetectEnv {
            xdg_runtime_dir: Some(dir.path().to_owned()),
            docker_host: Some("tcp://10.0.0.1:2375".to_owned()),
            // Paths that exist on no machine, so an engine running here cannot be found.
            rootful_podman: dir.path().join("rootful/podman.sock"),
            default_docker: dir.path().join("docker.sock"),
            ask_systemd: false,
        };
        let found = detect_with(&config(EngineChoice::Auto, ""), &env).await;
        assert!(found.runtime.is_none());
        let RuntimeStatus::Unavailable { message, tried } = &found.status else {
            panic!("{:?}", found.status)
        };
        assert!(
            message.starts_with("no container runtime (tried "),
            "{message}"
        );
        let xdg = format!("unix://{}/podman/podman.sock", dir.path().display());
        assert!(message.contains(&xdg), "{message}");
        assert!(
            tried
                .iter()
                .any(|a| a.source == "DOCKER_HOST" && a.error.contains("only local unix sockets")),
            "{tried:?}"
        );
    }
}
