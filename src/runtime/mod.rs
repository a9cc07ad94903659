//! Container engines behind one trait: [`ContainerRuntime`], implemented by
//! [`PodmanRuntime`] (rootless or rootful) and [`DockerRuntime`], and found at startup by
//! [`detect`].
//!
//! This module owns every conversation with a container engine: building images, running,
//! stopping and removing containers, reading their logs and state. Nothing else in Rivetr
//! opens an engine socket. It does not know about apps or deployments beyond the two labels
//! Rivetr puts on what it owns ([`LABEL_APP`], [`LABEL_DEPLOYMENT`]), which let the engine's
//! own state be read back after a restart.
//!
//! # Client choice (measured on Debian 12 against Podman 4.3.1 and Docker 20.10)
//! - **Docker** is driven with `bollard`. Every operation worked: build from an in-memory tar
//!   with the layer cache, create with 127.0.0.1 port bindings, start, logs, inspect, list by
//!   label, stop with a timeout, remove.
//! - **Podman** is driven with `bollard` too, pointed at Podman's REST socket, which serves
//!   the Docker-compatible API next to its own libpod API. The build cache works (an unchanged
//!   rebuild is a few tens of milliseconds) and stop timeouts are respected. One known defect
//!   (bollard issue 701): for a while after a container's process exits Podman reports the
//!   state `stopped`, which bollard's state enum cannot deserialize, so a whole inspect or
//!   list call fails. [`PodmanRuntime`] therefore reads container state from the libpod
//!   endpoints on the same socket (`/v4.0.0/libpod/containers/{id}/json`), where the state is
//!   a plain string (see `libpod.rs`). Podman-only facts (rootless or not, version, cgroup
//!   manager) come from `/v4.0.0/libpod/info` on the same socket.
//! - The `podman-api` crate was tried and rejected: its stop call sends `Timeout` with a
//!   capital T, which Podman ignores (a 5 s stop took 10 s); its build never hits the layer
//!   cache (Podman needs `layers=true` and an OCI output format it cannot set); it pulls in
//!   hyper 0.14 beside hyper 1; its last real development was in 2023.
//!
//! Shared code lives once in `compat.rs` (the Docker-compatible API through bollard); the
//! engine types add only what differs.
//!
//! # Conventions
//! - Published ports are bound on 127.0.0.1 only, with a host port the engine picks unless
//!   one is asked for: nothing reaches an app except through Rivetr's proxy.
//! - Environment values given to containers are secrets as far as this module knows: they
//!   never appear in logs, `Debug` output or errors.

mod build;
mod build_output;
mod compat;
mod detect;
mod docker;
mod error;
mod exec;
mod libpod;
mod logs;
mod networks;
mod oom;
mod podman;
mod races;
mod raw;
mod swarm;
mod timestamps;
mod volumes;

use std::collections::BTreeMap;
use std::fmt;
use std::net::Ipv4Addr;
use std::pin::Pin;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures_util::Stream;
use futures_util::stream::BoxStream;
use serde::Serialize;

pub use detect::{
    Attempt, DetectEnv, Detection, RuntimeStatus, SharedDetection, detect, detect_with,
};
pub use docker::DockerRuntime;
pub use error::RuntimeError;
pub use exec::EXEC_OUTPUT_LIMIT;
pub(crate) use exec::collect as collect_output;
pub use networks::PRIVATE_RANGE;
pub use podman::PodmanRuntime;
/// Percent-encoding of RFC 3986's unreserved set, for a URL's user, password and path.
pub(crate) use raw::encode as percent_encode;
pub use swarm::{
    Availability, LABEL_SERVICE, NodeView, RegistryAuth, ServiceRun, ServiceView, Swarm, SwarmInfo,
    SwarmPlacement, TaskView,
};

/// Label naming the app a container or image belongs to.
pub const LABEL_APP: &str = "io.rivetr.app";
/// Label naming the deployment a container or image belongs to.
pub const LABEL_DEPLOYMENT: &str = "io.rivetr.deployment";
/// Label naming the Rivetr installation (its database's instance id) that owns a container or
/// image; cleanup only ever touches its own.
pub const LABEL_INSTANCE: &str = "io.rivetr.instance";

/// Which engine is on the other end of a socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EngineKind {
    Podman,
    Docker,
}

impl fmt::Display for EngineKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            EngineKind::Podman => "podman",
            EngineKind::Docker => "docker",
        })
    }
}

/// What an engine says about itself.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EngineInfo {
    pub engine: EngineKind,
    /// The engine's own version, such as `4.3.1` or `20.10.24+dfsg1`.
    pub version: String,
    /// The Docker-compatible API version it serves, such as `1.41`.
    pub api_version: String,
    pub rootless: bool,
    /// `v1` or `v2`, when the engine says.
    pub cgroup_version: Option<String>,
    /// `systemd` or `cgroupfs`, when the engine says.
    pub cgroup_manager: Option<String>,
    /// False when the engine accepts memory, CPU and pids limits but cannot enforce them
    /// (rootless Podman on cgroups v1 ignores them).
    pub limits_enforced: bool,
    /// False when the engine never reports OOM kills itself (Podman before 5.0), so
    /// [`ContainerInfo::oom_killed`] is always Rivetr's inference.
    pub reports_oom: bool,
    /// The socket, as `unix:///path`.
    pub socket: String,
}

/// The tar stream of a build context.
pub type BuildContext = Pin<Box<dyn Stream<Item = Result<Bytes, std::io::Error>> + Send>>;

/// What to build.
pub struct BuildSpec {
    /// A tar of the build context, streamed to the engine as it is read.
    pub context: BuildContext,
    /// The Dockerfile's path inside the context.
    pub dockerfile: String,
    pub build_args: Vec<(String, String)>,
    /// `name:tag` given to the result.
    pub tag: String,
    /// Labels on the image. Keep to one if an unchanged rebuild must hit the cache: Podman
    /// turns them into a `LABEL` step in no fixed order, and that layer then differs each build.
    pub labels: BTreeMap<String, String>,
    /// Memory, CPUs and time the build may use.
    pub limits: BuildLimits,
}

/// What one build may use; `None` leaves it unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct BuildLimits {
    /// Memory of each step's container, in bytes; swap is limited to the same amount, so a
    /// step that needs more is killed.
    pub memory_bytes: Option<u64>,
    /// CPUs of each step's container, fractions allowed.
    pub cpus: Option<f64>,
    /// The whole build, from the first byte of the context to the tagged image. Docker stops
    /// a build it is told to abandon; Podman 4.3 finishes the running step first.
    pub timeout: Option<Duration>,
}

impl fmt::Debug for BuildSpec {
    // Build args may carry tokens; only their names are shown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BuildSpec")
            .field("dockerfile", &self.dockerfile)
            .field("build_args", &names(&self.build_args))
            .field("tag", &self.tag)
            .field("labels", &self.labels)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

/// A finished build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuiltImage {
    /// The image id, `sha256:...`.
    pub id: String,
    pub tag: String,
    /// Steps in the Dockerfile as the engine counted them.
    pub steps: u32,
    /// Steps the engine took from its layer cache.
    pub cached_steps: u32,
}

/// The container port to publish on 127.0.0.1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortSpec {
    pub container_port: u16,
    /// `None`: the engine picks a free port (the normal case); `Some`: exactly this one, and
    /// [`RuntimeError::PortInUse`] when it is taken.
    pub host_port: Option<u16>,
}

/// Resource limits; `None` leaves the engine's default (no limit).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Limits {
    /// Memory in bytes; swap is limited to the same amount, so the limit really holds.
    pub memory_bytes: Option<u64>,
    /// CPUs, fractions allowed (`0.5`).
    pub cpus: Option<f64>,
    /// Maximum number of processes and threads.
    pub pids: Option<i64>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum RestartPolicy {
    #[default]
    No,
    OnFailure {
        max_retries: u32,
    },
    Always,
    UnlessStopped,
}

/// What to run.
#[derive(Clone, Default)]
pub struct RunSpec {
    pub image: String,
    pub name: String,
    /// Command overriding the image's; empty keeps the image's.
    pub cmd: Vec<String>,
    /// Environment; the values are treated as secrets.
    pub env: Vec<(String, String)>,
    pub labels: BTreeMap<String, String>,
    pub port: Option<PortSpec>,
    pub limits: Limits,
    pub restart: RestartPolicy,
    /// How long the engine waits after SIGTERM before SIGKILL when it stops the container
    /// on its own (restart, shutdown); `None` keeps the engine's default of 10 s.
    pub stop_timeout: Option<Duration>,
    /// Named volumes mounted into the container.
    pub volumes: Vec<VolumeMount>,
    /// Which networks the container joins.
    pub networks: Networks,
    /// Extra `/etc/hosts` entries: a linked database's name and its fixed address.
    pub extra_hosts: Vec<(String, Ipv4Addr)>,
}

/// A named volume mounted at a path in the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeMount {
    pub volume: String,
    pub target: String,
}

/// A network to join, at a fixed address when given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkAttach {
    pub network: String,
    pub ipv4: Option<Ipv4Addr>,
}

/// Which networks a container joins.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Networks {
    /// Whatever the engine gives a container by default (rootless Podman: slirp4netns).
    #[default]
    EngineDefault,
    /// The engine's default bridge (`bridge` on Docker, `podman` on Podman, rootless
    /// included: slirp4netns cannot join other networks), plus these networks. Do not
    /// combine with a published port on Podman (see `networks.rs`).
    Bridge(Vec<NetworkAttach>),
    /// This network first, then the others.
    Attach {
        primary: NetworkAttach,
        extra: Vec<NetworkAttach>,
    },
}

/// A network for [`ContainerRuntime::ensure_network`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkSpec {
    pub name: String,
    /// No way out and no way in except for the containers attached to it.
    pub internal: bool,
    pub labels: BTreeMap<String, String>,
}

/// A network as the engine describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkInfo {
    pub name: String,
    pub id: String,
    pub internal: bool,
    /// `10.213.7.0/24`, when the network has an IPv4 subnet.
    pub subnet: Option<String>,
    pub gateway: Option<String>,
    pub labels: BTreeMap<String, String>,
}

impl NetworkInfo {
    /// The `k`th fixed address (from 0), counted down from the top of the network's /24:
    /// .254, .253, ... The engines hand out addresses from the bottom.
    pub fn fixed_address(&self, k: u8) -> Option<Ipv4Addr> {
        if k > 120 {
            return None;
        }
        self.host_address(254 - k)
    }

    /// The `n`th address of the network's /24 (`n = 2` is the first after the gateway).
    pub fn host_address(&self, n: u8) -> Option<Ipv4Addr> {
        let subnet = self.subnet.as_deref()?;
        let (base, bits) = subnet.split_once('/')?;
        if bits != "24" {
            return None;
        }
        let [a, b, c, _] = base.parse::<Ipv4Addr>().ok()?.octets();
        Some(Ipv4Addr::new(a, b, c, n))
    }
}

/// A named volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeInfo {
    pub name: String,
    /// Where the engine keeps its files on the host.
    pub mountpoint: String,
    pub labels: BTreeMap<String, String>,
}

/// A command to run inside a running container.
#[derive(Clone, Default)]
pub struct ExecSpec {
    pub cmd: Vec<String>,
    /// Environment of the command; the values are secrets (a database password).
    pub env: Vec<(String, String)>,
    /// `user`, `uid` or `uid:gid`; `None` keeps the container's.
    pub user: Option<String>,
    /// Whether the command reads a stream Rivetr writes ([`ExecSession::input`]).
    pub stdin: bool,
}

impl fmt::Debug for ExecSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExecSpec")
            .field("cmd", &self.cmd)
            .field("env", &names(&self.env))
            .field("user", &self.user)
            .field("stdin", &self.stdin)
            .finish()
    }
}

/// A running command's output, frame by frame as the engine sends it.
pub type ExecOutputStream = BoxStream<'static, Result<(LogSource, Bytes), RuntimeError>>;

/// A started command.
pub struct ExecSession {
    /// The engine's id of the command, for [`ContainerRuntime::exec_exit_code`].
    pub id: String,
    pub output: ExecOutputStream,
    /// The command's stdin when [`ExecSpec::stdin`] asked for it; shut it down to send EOF.
    pub input: Option<Pin<Box<dyn tokio::io::AsyncWrite + Send>>>,
}

/// A finished command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOutput {
    pub exit_code: i64,
    /// The last [`EXEC_OUTPUT_LIMIT`] bytes it wrote to each stream.
    pub stdout: String,
    pub stderr: String,
}

impl fmt::Debug for RunSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RunSpec")
            .field("image", &self.image)
            .field("name", &self.name)
            .field("cmd", &self.cmd)
            .field("env", &names(&self.env))
            .field("labels", &self.labels)
            .field("port", &self.port)
            .field("limits", &self.limits)
            .field("restart", &self.restart)
            .field("stop_timeout", &self.stop_timeout)
            .field("volumes", &self.volumes)
            .field("networks", &self.networks)
            .field("extra_hosts", &self.extra_hosts)
            .finish()
    }
}

fn names(pairs: &[(String, String)]) -> Vec<&str> {
    pairs.iter().map(|(k, _)| k.as_str()).collect()
}

/// A container's state, the same words for both engines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ContainerState {
    Created,
    Running,
    Paused,
    Restarting,
    Removing,
    /// The process has ended (Podman's transient `stopped` is reported as this).
    Exited,
    Dead,
    /// A state word this version of Rivetr does not know; the raw word is in
    /// [`ContainerInfo::engine_state`].
    Unknown,
}

impl ContainerState {
    /// Maps an engine's state word. Podman says `stopped` for a while after the process
    /// exits (before its cleanup has run), `configured`/`initialized` before the first start.
    pub fn from_engine(word: &str) -> ContainerState {
        match word.to_ascii_lowercase().as_str() {
            "created" | "configured" | "initialized" => ContainerState::Created,
            "running" | "stopping" => ContainerState::Running,
            "paused" => ContainerState::Paused,
            "restarting" => ContainerState::Restarting,
            "removing" => ContainerState::Removing,
            "exited" | "stopped" => ContainerState::Exited,
            "dead" => ContainerState::Dead,
            _ => ContainerState::Unknown,
        }
    }
}

/// A container's resource use, as its engine reports it.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct ContainerStats {
    /// CPU time used since the container started, in seconds.
    pub cpu_seconds: f64,
    /// Memory in use, without the page cache the kernel can take back.
    pub memory_bytes: u64,
    /// Its memory limit, when it has one.
    pub memory_limit_bytes: Option<u64>,
}

/// One container as inspected.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerInfo {
    pub id: String,
    pub name: String,
    pub image: String,
    pub state: ContainerState,
    /// The state word exactly as the engine reported it (`stopped`, `exited`, ...).
    pub engine_state: String,
    /// Set once the process has ended.
    pub exit_code: Option<i64>,
    /// The kernel killed the container for exceeding its memory limit, as the engine says
    /// or, when it cannot say, as Rivetr infers (see `oom_inferred`).
    pub oom_killed: bool,
    /// `oom_killed` is Rivetr's inference, not the engine's word: the container died of
    /// SIGKILL under a memory limit and Rivetr did not stop it. Podman before 5.0 never
    /// reports OOM kills and Docker misses some.
    pub oom_inferred: bool,
    /// The memory limit the container runs with, if any.
    pub memory_limit_bytes: Option<u64>,
    /// The engine's own words about why the container failed, if it says.
    pub error: Option<String>,
    /// The 127.0.0.1 port published for [`RunSpec::port`], once the container has started.
    pub host_port: Option<u16>,
    pub started_at: Option<SystemTime>,
    pub finished_at: Option<SystemTime>,
    pub labels: BTreeMap<String, String>,
    /// How many times the engine restarted it under its restart policy.
    pub restart_count: u64,
}

impl ContainerInfo {
    /// Why an ended container failed, as a typed error: [`RuntimeError::OutOfMemory`] when
    /// the kernel killed it for exceeding its memory limit. `None` while it runs or when it
    /// ended without being killed for memory.
    pub fn failure(&self) -> Option<RuntimeError> {
        if !self.oom_killed {
            return None;
        }
        let message = self
            .error
            .clone()
            .filter(|e| !e.is_empty())
            .unwrap_or_else(|| {
                format!(
                    "the engine reports OOMKilled (state {}, exit code {})",
                    self.engine_state,
                    self.exit_code
                        .map(|c| c.to_string())
                        .unwrap_or_else(|| "unknown".to_owned())
                )
            });
        Some(RuntimeError::OutOfMemory {
            container: self.name.clone(),
            message,
        })
    }
}

/// One container as listed.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerSummary {
    pub id: String,
    pub name: String,
    pub image: String,
    pub state: ContainerState,
    pub engine_state: String,
    pub labels: BTreeMap<String, String>,
}

/// A label to match: the key alone, or key and value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelFilter {
    pub key: String,
    pub value: Option<String>,
}

impl LabelFilter {
    pub fn key(key: impl Into<String>) -> LabelFilter {
        LabelFilter {
            key: key.into(),
            value: None,
        }
    }

    pub fn eq(key: impl Into<String>, value: impl Into<String>) -> LabelFilter {
        LabelFilter {
            key: key.into(),
            value: Some(value.into()),
        }
    }

    /// Whether a set of labels passes this filter.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        match (&self.value, labels.get(&self.key)) {
            (_, None) => false,
            (None, Some(_)) => true,
            (Some(want), Some(got)) => want == got,
        }
    }

    /// The engines' filter syntax: `key` or `key=value`.
    pub(crate) fn as_filter(&self) -> String {
        match &self.value {
            Some(v) => format!("{}={}", self.key, v),
            None => self.key.clone(),
        }
    }
}

/// Which images to list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageFilter {
    /// Images carrying all these labels.
    Labels(Vec<LabelFilter>),
    /// Images whose name matches, such as `localhost/app` or `localhost/app:v1`.
    Reference(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageSummary {
    pub id: String,
    /// `name:tag` references pointing at it.
    pub tags: Vec<String>,
    pub labels: BTreeMap<String, String>,
}

/// Which output a log line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogSource {
    Stdout,
    Stderr,
}

/// One line a container wrote, without its newline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    pub source: LogSource,
    pub line: String,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogOptions {
    /// Keep the stream open and deliver new lines as they are written.
    pub follow: bool,
    /// Only the last N lines already written (then, with `follow`, every new one).
    /// `None`: all of them.
    pub tail: Option<u64>,
    /// Only lines written at or after this time (whole seconds).
    pub since: Option<SystemTime>,
}

/// A stream of log lines; it ends when the container does (with `follow`) or when the lines
/// written so far are delivered.
pub type LogStream = BoxStream<'static, Result<LogLine, RuntimeError>>;

/// What Rivetr needs from a container engine, and no more.
#[async_trait::async_trait]
pub trait ContainerRuntime: Send + Sync {
    /// The engine's name, version and whether it runs rootless.
    async fn info(&self) -> Result<EngineInfo, RuntimeError>;

    /// Builds an image from a tar context. Each line of build output is passed to
    /// `on_output` as it arrives. A failed step is [`RuntimeError::BuildFailed`], naming the
    /// step and carrying its output.
    async fn build(
        &self,
        spec: BuildSpec,
        on_output: &mut (dyn for<'l> FnMut(&'l str) + Send),
    ) -> Result<BuiltImage, RuntimeError>;

    /// Creates a container; returns its id.
    async fn create(&self, spec: &RunSpec) -> Result<String, RuntimeError>;

    async fn start(&self, id: &str) -> Result<(), RuntimeError>;

    /// Creates and starts a container and reports it as inspected. A container that fails
    /// to start is removed again, so a failed run leaves nothing behind.
    async fn run(&self, spec: &RunSpec) -> Result<ContainerInfo, RuntimeError> {
        let id = self.create(spec).await?;
        if let Err(e) = self.start(&id).await {
            if let Err(cleanup) = self.remove(&id).await {
                tracing::warn!(container = %spec.name, error = %cleanup, "cannot remove a container that failed to start");
            }
            return Err(e);
        }
        self.inspect(&id).await
    }

    /// Sends SIGTERM, then SIGKILL after `timeout`. Stopping a stopped container is not an
    /// error.
    async fn stop(&self, id: &str, timeout: Duration) -> Result<(), RuntimeError>;

    /// Removes a container, running or not. Removing one that does not exist is not an
    /// error: afterwards it is gone either way.
    async fn remove(&self, id: &str) -> Result<(), RuntimeError>;

    /// The container's output, stdout and stderr kept apart.
    fn logs(&self, id: &str, options: LogOptions) -> LogStream;

    async fn inspect(&self, id: &str) -> Result<ContainerInfo, RuntimeError>;

    /// Why this engine cannot report containers' CPU and memory, when it cannot.
    async fn stats_unavailable(&self) -> Option<String> {
        None
    }

    /// One sample of a running container's CPU time and memory.
    async fn stats(&self, id: &str) -> Result<ContainerStats, RuntimeError>;

    /// Containers in any state carrying all of `labels`.
    async fn list(&self, labels: &[LabelFilter]) -> Result<Vec<ContainerSummary>, RuntimeError>;

    /// Removes an image by reference or id. Removing one that does not exist is not an
    /// error.
    async fn remove_image(&self, reference: &str) -> Result<(), RuntimeError>;

    /// Pulls `reference` unless the engine has it already: for images Rivetr does not
    /// build (the managed databases'). The engine's own registry settings (mirrors,
    /// credentials, insecure registries) apply.
    async fn ensure_image(&self, reference: &str) -> Result<(), RuntimeError>;

    async fn list_images(&self, filter: &ImageFilter) -> Result<Vec<ImageSummary>, RuntimeError>;

    /// The network `spec` names, on a free /24 of [`PRIVATE_RANGE`], created when missing
    /// (see `networks.rs`).
    async fn ensure_network(&self, spec: &NetworkSpec) -> Result<NetworkInfo, RuntimeError>;

    /// Attaches a container, created or running, to a network, at a fixed address when given.
    async fn connect_network(
        &self,
        network: &str,
        container: &str,
        ipv4: Option<Ipv4Addr>,
    ) -> Result<(), RuntimeError>;

    /// Detaches a container from a network; one not attached is not an error.
    async fn disconnect_network(&self, network: &str, container: &str) -> Result<(), RuntimeError>;

    async fn inspect_network(&self, name: &str) -> Result<Option<NetworkInfo>, RuntimeError>;

    /// Networks carrying all of `labels` (every network when empty).
    async fn list_networks(&self, labels: &[LabelFilter])
    -> Result<Vec<NetworkInfo>, RuntimeError>;

    /// Removes a network; one that does not exist is not an error.
    async fn remove_network(&self, name: &str) -> Result<(), RuntimeError>;

    /// The volume `name`, created with `labels` when missing.
    async fn ensure_volume(
        &self,
        name: &str,
        labels: &BTreeMap<String, String>,
    ) -> Result<VolumeInfo, RuntimeError>;

    async fn inspect_volume(&self, name: &str) -> Result<Option<VolumeInfo>, RuntimeError>;

    /// Volumes carrying all of `labels`.
    async fn list_volumes(&self, labels: &[LabelFilter]) -> Result<Vec<VolumeInfo>, RuntimeError>;

    /// Removes a volume; one that does not exist is not an error.
    async fn remove_volume(&self, name: &str) -> Result<(), RuntimeError>;

    /// Starts a command in a running container; its output streams as it is written.
    async fn exec_start(
        &self,
        container: &str,
        spec: &ExecSpec,
    ) -> Result<ExecSession, RuntimeError>;

    /// A started command's exit code once it has ended; `None` while it runs.
    async fn exec_exit_code(&self, exec_id: &str) -> Result<Option<i64>, RuntimeError>;

    /// Runs a command to its end within `limit` and returns its exit code and the end of its
    /// output.
    async fn exec(
        &self,
        container: &str,
        spec: &ExecSpec,
        limit: Duration,
    ) -> Result<ExecOutput, RuntimeError> {
        let mut session = self.exec_start(container, spec).await?;
        drop(session.input.take());
        let (stdout, stderr) = exec::collect(&mut session.output, limit).await?;
        // The stream ends a moment before the engine records the exit code.
        for _ in 0..100 {
            if let Some(exit_code) = self.exec_exit_code(&session.id).await? {
                return Ok(ExecOutput {
                    exit_code,
                    stdout,
                    stderr,
                });
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Err(RuntimeError::Protocol(format!(
            "the engine never reported the exit code of {:?}",
            spec.cmd
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn podman_stopped_is_exited() {
        assert_eq!(
            ContainerState::from_engine("stopped"),
            ContainerState::Exited
        );
        assert_eq!(
            ContainerState::from_engine("exited"),
            ContainerState::Exited
        );
        assert_eq!(
            ContainerState::from_engine("configured"),
            ContainerState::Created
        );
        assert_eq!(
            ContainerState::from_engine("something-new"),
            ContainerState::Unknown
        );
    }

    #[test]
    fn debug_output_never_shows_env_or_build_arg_values() {
        let spec = RunSpec {
            image: "img".into(),
            name: "n".into(),
            env: vec![("DATABASE_URL".into(), "postgres://secret@db".into())],
            ..RunSpec::default()
        };
        let shown = format!("{spec:?}");
        assert!(shown.contains("DATABASE_URL"), "{shown}");
        assert!(!shown.contains("secret"), "{shown}");

        let build = BuildSpec {
            context: Box::pin(futures_util::stream::empty()),
            dockerfile: "Dockerfile".into(),
            build_args: vec![("TOKEN".into(), "hunter2".into())],
            tag: "t".into(),
            labels: BTreeMap::new(),
            limits: BuildLimits::default(),
        };
        let shown = format!("{build:?}");
        assert!(
            shown.contains("TOKEN") && !shown.contains("hunter2"),
            "{shown}"
        );
    }

    #[test]
    fn oom_killed_container_fails_as_out_of_memory() {
        let mut info = ContainerInfo {
            id: "1".into(),
            name: "web".into(),
            image: "img".into(),
            state: ContainerState::Exited,
            engine_state: "exited".into(),
            exit_code: Some(137),
            oom_killed: false,
            oom_inferred: false,
            memory_limit_bytes: None,
            error: None,
            host_port: None,
            started_at: None,
            finished_at: None,
            labels: BTreeMap::new(),
            restart_count: 0,
        };
        assert!(info.failure().is_none());
        info.oom_killed = true;
        let err = info.failure().unwrap();
        assert!(matches!(err, RuntimeError::OutOfMemory { .. }), "{err}");
        assert!(err.to_string().contains("web"), "{err}");
    }
}
