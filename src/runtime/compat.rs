//! The Docker-compatible API through bollard: everything Docker and Podman do the same way,
//! written once. Both [`super::DockerRuntime`] and [`super::PodmanRuntime`] hold a [`Compat`]
//! and add only what differs.
//!
//! Every call has its own deadline here (bollard's client-wide timeout is set far out and
//! only bounds the wait for response headers), so a stuck engine fails a call instead of
//! hanging a deploy.

use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bollard::Docker;
use bollard::models::{
    ContainerCreateBody, ContainerInspectResponse, HostConfig, NetworkingConfig, PortBinding,
    RestartPolicy as BollardRestart, RestartPolicyNameEnum, SystemVersion,
};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, CreateImageOptionsBuilder, ListContainersOptionsBuilder,
    ListImagesOptionsBuilder, LogsOptionsBuilder, RemoveContainerOptionsBuilder,
    RemoveImageOptionsBuilder, StopContainerOptionsBuilder,
};
use futures_util::StreamExt;

use super::error::{OwnedSubject, Subject, redact};
use super::{
    BuildSpec, BuiltImage, ContainerInfo, ContainerState, ContainerStats, ContainerSummary,
    ImageFilter, ImageSummary, LabelFilter, LogOptions, LogSource, LogStream, Networks,
    RestartPolicy, RunSpec, RuntimeError, logs, timestamps,
};

/// Deadline for ordinary calls (create, start, inspect, list, remove).
pub(crate) const CALL_TIMEOUT: Duration = Duration::from_secs(60);
/// How long an image pull may take: a database image is a few hundred MB.
const PULL_TIMEOUT: Duration = Duration::from_secs(1800);
/// How long bollard waits for response headers; a backstop behind the per-call deadlines.
const BOLLARD_TIMEOUT_SECS: u64 = 3600;

#[derive(Debug, Clone)]
pub(crate) struct Compat {
    pub(crate) docker: Docker,
    /// The socket's path, for the calls Rivetr sends itself.
    path: PathBuf,
    /// `unix:///path`, for errors.
    pub(crate) socket: String,
    /// The engine's default bridge network: `bridge` on Docker, `podman` on Podman.
    default_bridge: &'static str,
}

impl Compat {
    /// Opens a client for the socket at `path` (nothing is sent yet).
    pub(crate) fn new(path: &Path, default_bridge: &'static str) -> Result<Compat, RuntimeError> {
        let socket = format!("unix://{}", path.display());
        let path_text = path.to_str().ok_or_else(|| {
            RuntimeError::Invalid(format!("socket path {} is not UTF-8", path.display()))
        })?;
        // bollard sends unversioned paths, so the engine answers in its own API version;
        // the version given here only matters for features bollard gates on it.
        let docker = Docker::connect_with_unix(
            path_text,
            BOLLARD_TIMEOUT_SECS,
            bollard::API_DEFAULT_VERSION,
        )
        .map_err(|e| RuntimeError::from_bollard(e, &socket, Subject::Engine))?;
        Ok(Compat {
            docker,
            path: path.to_owned(),
            socket,
            default_bridge,
        })
    }

    /// Runs `call` with `limit` as its deadline, mapping bollard's error about `subject`.
    pub(crate) async fn call<T>(
        &self,
        limit: Duration,
        subject: Subject<'_>,
        call: impl Future<Output = Result<T, bollard::errors::Error>>,
    ) -> Result<T, RuntimeError> {
        match tokio::time::timeout(limit, call).await {
            Ok(result) => result.map_err(|e| RuntimeError::from_bollard(e, &self.socket, subject)),
            Err(_) => Err(RuntimeError::Unreachable {
                socket: self.socket.clone(),
                message: format!("no answer within {limit:?}"),
            }),
        }
    }

    pub(crate) async fn version(&self, limit: Duration) -> Result<SystemVersion, RuntimeError> {
        self.call(limit, Subject::Engine, self.docker.version())
            .await
    }

    /// Builds through [`super::build`] (not bollard: see there), then reads the image's id.
    pub(crate) async fn build(
        &self,
        spec: BuildSpec,
        on_output: &mut (dyn for<'l> FnMut(&'l str) + Send),
    ) -> Result<BuiltImage, RuntimeError> {
        let tag = spec.tag.clone();
        let progress = super::build::run(&self.path, &self.socket, spec, on_output).await?;
        let image = self
            .call(
                CALL_TIMEOUT,
                Subject::Image(&tag),
                self.docker.inspect_image(&tag),
            )
            .await?;
        Ok(BuiltImage {
            id: image.id.unwrap_or_default(),
            tag,
            steps: progress.total,
            cached_steps: progress.cached,
        })
    }

    pub(crate) async fn create(&self, spec: &RunSpec) -> Result<String, RuntimeError> {
        validate(spec)?;
        let options = CreateContainerOptionsBuilder::default()
            .name(&spec.name)
            .build();
        let subject = Subject::Run {
            name: &spec.name,
            image: &spec.image,
            port: spec.port.and_then(|p| p.host_port),
        };
        let created = self
            .call(
                CALL_TIMEOUT,
                subject,
                self.docker
                    .create_container(Some(options), create_body(spec, self.default_bridge)),
            )
            .await
            .map_err(|e| e.redacted(&spec.env))?;
        // The compatible API joins one network at creation; the others are joined before
        // the first start, and a container that cannot join them is not left behind.
        let extra = match &spec.networks {
            Networks::Bridge(extra) | Networks::Attach { extra, .. } => extra.as_slice(),
            Networks::EngineDefault => &[],
        };
        {
            for attach in extra {
                if let Err(e) = self
                    .connect_network(&attach.network, &created.id, attach.ipv4)
                    .await
                {
                    if let Err(cleanup) = self.remove(&created.id).await {
                        tracing::warn!(container = %spec.name, error = %cleanup, "cannot remove a container that failed to join its network");
                    }
                    return Err(e);
                }
            }
        }
        for warning in created.warnings.iter().filter(|w| !w.is_empty()) {
            tracing::warn!(container = %spec.name, warning = %redact(warning.clone(), &spec.env), "engine warning on create");
        }
        Ok(created.id)
    }

    pub(crate) async fn start(&self, id: &str) -> Result<(), RuntimeError> {
        // Run, not Container: a start can fail for a taken port or for memory.
        let subject = Subject::Run {
            name: id,
            image: "",
            port: None,
        };
        self.call(
            CALL_TIMEOUT,
            subject,
            self.docker
                .start_container(id, None::<bollard::query_parameters::StartContainerOptions>),
        )
        .await
    }

    pub(crate) async fn stop(&self, id: &str, timeout: Duration) -> Result<(), RuntimeError> {
        let secs = i32::try_from(timeout.as_secs())
            .map_err(|_| RuntimeError::Invalid(format!("stop timeout {timeout:?} is too long")))?;
        let options = StopContainerOptionsBuilder::default().t(secs).build();
        // The engine answers only once the container is down: allow the timeout itself.
        let limit = timeout + CALL_TIMEOUT;
        match self
            .call(
                limit,
                Subject::Container(id),
                self.docker.stop_container(id, Some(options)),
            )
            .await
        {
            // 304: it was not running.
            Err(RuntimeError::Engine { status: 304, .. }) => Ok(()),
            other => other,
        }
    }

    pub(crate) async fn remove(&self, id: &str) -> Result<(), RuntimeError> {
        let options = RemoveContainerOptionsBuilder::default()
            .force(true)
            .v(true)
            .build();
        match self
            .call(
                CALL_TIMEOUT,
                Subject::Container(id),
                self.docker.remove_container(id, Some(options)),
            )
            .await
        {
            Err(e) if e.is_not_found() => Ok(()),
            other => other,
        }
    }

    pub(crate) fn logs(&self, id: &str, options: LogOptions) -> LogStream {
        let frames = self.docker.logs(id, Some(logs_options(options)));
        log_lines(
            frames,
            self.socket.clone(),
            OwnedSubject::Container(id.to_owned()),
        )
    }

    /// One sample of a container's CPU time and memory (the compatible stats endpoint, which
    /// Podman serves too).
    pub(crate) async fn stats(&self, id: &str) -> Result<ContainerStats, RuntimeError> {
        let options = bollard::query_parameters::StatsOptionsBuilder::new()
            .stream(false)
            .one_shot(true)
            .build();
        let mut samples = self.docker.stats(id, Some(options));
        let sample = self
            .call(CALL_TIMEOUT, Subject::Container(id), async {
                samples.next().await.transpose()
            })
            .await?
            .ok_or_else(|| RuntimeError::Unreachable {
                socket: self.socket.clone(),
                message: format!("no stats for container {id}"),
            })?;
        Ok(stats_from(sample))
    }

    /// Inspect through the compatible API. Podman must not use it (bollard issue 701).
    pub(crate) async fn inspect(&self, id: &str) -> Result<ContainerInfo, RuntimeError> {
        let response = self
            .call(
                CALL_TIMEOUT,
                Subject::Container(id),
                self.docker.inspect_container(
                    id,
                    None::<bollard::query_parameters::InspectContainerOptions>,
                ),
            )
            .await?;
        Ok(info_from_inspect(response))
    }

    /// List through the compatible API. Podman must not use it (bollard issue 701).
    pub(crate) async fn list(
        &self,
        labels: &[LabelFilter],
    ) -> Result<Vec<ContainerSummary>, RuntimeError> {
        let filters = label_filters(labels);
        let options = ListContainersOptionsBuilder::default()
            .all(true)
            .filters(&filters)
            .build();
        let containers = self
            .call(
                CALL_TIMEOUT,
                Subject::Engine,
                self.docker.list_containers(Some(options)),
            )
            .await?;
        Ok(containers
            .into_iter()
            .map(|c| {
                let engine_state = c.state.map(|s| s.to_string()).unwrap_or_default();
                ContainerSummary {
                    id: c.id.unwrap_or_default(),
                    name: c
                        .names
                        .and_then(|n| n.into_iter().next())
                        .map(|n| n.trim_start_matches('/').to_owned())
                        .unwrap_or_default(),
                    image: c.image.unwrap_or_default(),
                    state: ContainerState::from_engine(&engine_state),
                    engine_state,
                    labels: c.labels.unwrap_or_default().into_iter().collect(),
                }
            })
            .collect())
    }

    pub(crate) async fn remove_image(&self, reference: &str) -> Result<(), RuntimeError> {
        let options = RemoveImageOptionsBuilder::default().build();
        match self
            .call(
                CALL_TIMEOUT,
                Subject::Image(reference),
                self.docker.remove_image(reference, Some(options), None),
            )
            .await
        {
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(e),
            Ok(_) => Ok(()),
        }
    }

    pub(crate) async fn ensure_image(&self, reference: &str) -> Result<(), RuntimeError> {
        let subject = Subject::Image(reference);
        match self
            .call(CALL_TIMEOUT, subject, self.docker.inspect_image(reference))
            .await
        {
            Ok(_) => return Ok(()),
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e),
        }
        tracing::info!(image = %reference, "pulling an image");
        let options = CreateImageOptionsBuilder::default()
            .from_image(reference)
            .build();
        let pulling = async {
            let mut progress = self.docker.create_image(Some(options), None, None);
            // The stream carries the registry's errors (an unknown tag, refused credentials)
            // as items; it ends once the image is stored.
            while let Some(item) = progress.next().await {
                item?;
            }
            Ok(())
        };
        self.call(PULL_TIMEOUT, subject, pulling).await?;
        tracing::info!(image = %reference, "image pulled");
        Ok(())
    }

    pub(crate) async fn list_images(
        &self,
        filter: &ImageFilter,
    ) -> Result<Vec<ImageSummary>, RuntimeError> {
        // Podman 4.3 answers an empty list when an image filter names two labels (containers
        // are fine), so the engine gets the first label and the rest are checked here.
        let (filters, rest): (HashMap<String, Vec<String>>, &[LabelFilter]) = match filter {
            ImageFilter::Labels(labels) => match labels.split_first() {
                Some((first, rest)) => (label_filters(std::slice::from_ref(first)), rest),
                None => (HashMap::new(), &[]),
            },
            ImageFilter::Reference(r) => (
                HashMap::from([("reference".to_owned(), vec![r.clone()])]),
                &[],
            ),
        };
        let options = ListImagesOptionsBuilder::default()
            .filters(&filters)
            .build();
        let images = self
            .call(
                CALL_TIMEOUT,
                Subject::Engine,
                self.docker.list_images(Some(options)),
            )
            .await?;
        Ok(images
            .into_iter()
            .map(|i| ImageSummary {
                id: i.id,
                tags: i.repo_tags,
                labels: i.labels.into_iter().collect(),
            })
            .filter(|i| rest.iter().all(|f| f.matches(&i.labels)))
            .collect())
    }
}

/// What the engine's logs endpoints (a container's, a service's) are asked for.
pub(crate) fn logs_options(options: LogOptions) -> bollard::query_parameters::LogsOptions {
    let mut builder = LogsOptionsBuilder::default()
        .follow(options.follow)
        .stdout(true)
        .stderr(true)
        .tail(
            &options
                .tail
                .map(|n| n.to_string())
                .unwrap_or_else(|| "all".to_owned()),
        );
    if let Some(since) = options.since {
        let secs = i32::try_from(timestamps::unix_seconds(since)).unwrap_or(i32::MAX);
        builder = builder.since(secs);
    }
    builder.build()
}

/// The lines of a logs endpoint's frames; errors name `subject`.
pub(crate) fn log_lines(
    frames: impl futures_util::Stream<
        Item = Result<bollard::container::LogOutput, bollard::errors::Error>,
    > + Send
    + 'static,
    socket: String,
    subject: OwnedSubject,
) -> LogStream {
    let frames = frames.filter_map(move |item| {
        let result = match item {
            Ok(bollard::container::LogOutput::StdOut { message }) => {
                Some(Ok((LogSource::Stdout, message)))
            }
            Ok(bollard::container::LogOutput::StdErr { message }) => {
                Some(Ok((LogSource::Stderr, message)))
            }
            // Only a TTY container has console output; Rivetr never allocates one.
            Ok(bollard::container::LogOutput::Console { message }) => {
                Some(Ok((LogSource::Stdout, message)))
            }
            Ok(bollard::container::LogOutput::StdIn { .. }) => None,
            Err(e) => Some(Err(RuntimeError::from_bollard(
                e,
                &socket,
                subject.borrow(),
            ))),
        };
        std::future::ready(result)
    });
    logs::into_lines(frames)
}

/// The path of a `unix:///path` (or plain `/path`) socket; other schemes are refused, since
/// Rivetr only talks to an engine on the same machine.
pub(crate) fn socket_path(socket: &str) -> Result<PathBuf, RuntimeError> {
    let path = socket.strip_prefix("unix://").unwrap_or(socket);
    if !path.starts_with('/') {
        return Err(RuntimeError::Invalid(format!(
            "socket {socket:?} is not unix:///absolute/path (only local unix sockets are supported)"
        )));
    }
    Ok(PathBuf::from(path))
}

/// Refuses what the engines would accept but Rivetr never means.
fn validate(spec: &RunSpec) -> Result<(), RuntimeError> {
    if spec.name.is_empty() {
        return Err(RuntimeError::Invalid("a container needs a name".to_owned()));
    }
    if let Some((key, _)) = spec
        .env
        .iter()
        .find(|(k, _)| k.is_empty() || k.contains('='))
    {
        return Err(RuntimeError::Invalid(format!(
            "environment variable name {key:?} is empty or contains '='"
        )));
    }
    if spec
        .limits
        .cpus
        .is_some_and(|c| !(c > 0.0 && c.is_finite()))
    {
        return Err(RuntimeError::Invalid("cpus must be above 0".to_owned()));
    }
    Ok(())
}

fn create_body(spec: &RunSpec, default_bridge: &str) -> ContainerCreateBody {
    let port_key = spec.port.map(|p| format!("{}/tcp", p.container_port));
    let port_bindings = spec.port.zip(port_key.clone()).map(|(p, key)| {
        let binding = PortBinding {
            // Only loopback: apps are reached through Rivetr's proxy, never directly.
            host_ip: Some("127.0.0.1".to_owned()),
            // Empty: the engine picks a free port.
            host_port: Some(p.host_port.map(|h| h.to_string()).unwrap_or_default()),
        };
        HashMap::from([(key, Some(vec![binding]))])
    });
    let memory = spec
        .limits
        .memory_bytes
        .map(|m| i64::try_from(m).unwrap_or(i64::MAX));
    let host_config = HostConfig {
        memory,
        // Swap equal to memory: no swap on top, so the limit is the limit.
        memory_swap: memory,
        nano_cpus: spec.limits.cpus.map(|c| (c * 1e9) as i64),
        pids_limit: spec.limits.pids,
        port_bindings,
        restart_policy: Some(restart_policy(spec.restart)),
        binds: (!spec.volumes.is_empty()).then(|| {
            spec.volumes
                .iter()
                .map(|v| format!("{}:{}", v.volume, v.target))
                .collect()
        }),
        extra_hosts: (!spec.extra_hosts.is_empty()).then(|| {
            spec.extra_hosts
                .iter()
                .map(|(name, ip)| format!("{name}:{ip}"))
                .collect()
        }),
        network_mode: match &spec.networks {
            Networks::EngineDefault => None,
            Networks::Bridge(_) => Some(default_bridge.to_owned()),
            Networks::Attach { primary, .. } => Some(primary.network.clone()),
        },
        ..HostConfig::default()
    };
    let networking_config = match &spec.networks {
        Networks::Attach { primary, .. } => Some(NetworkingConfig {
            endpoints_config: Some(HashMap::from([(
                primary.network.clone(),
                super::networks::endpoint(primary.ipv4),
            )])),
        }),
        _ => None,
    };
    ContainerCreateBody {
        image: Some(spec.image.clone()),
        cmd: (!spec.cmd.is_empty()).then(|| spec.cmd.clone()),
        env: Some(spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
        labels: Some(spec.labels.clone().into_iter().collect()),
        exposed_ports: port_key.map(|k| vec![k]),
        stop_timeout: spec.stop_timeout.map(|t| t.as_secs() as i64),
        host_config: Some(host_config),
        networking_config,
        ..ContainerCreateBody::default()
    }
}

fn restart_policy(policy: RestartPolicy) -> BollardRestart {
    let (name, retries) = match policy {
        RestartPolicy::No => (RestartPolicyNameEnum::NO, None),
        RestartPolicy::OnFailure { max_retries } => (
            RestartPolicyNameEnum::ON_FAILURE,
            Some(i64::from(max_retries)),
        ),
        RestartPolicy::Always => (RestartPolicyNameEnum::ALWAYS, None),
        RestartPolicy::UnlessStopped => (RestartPolicyNameEnum::UNLESS_STOPPED, None),
    };
    BollardRestart {
        name: Some(name),
        maximum_retry_count: retries,
    }
}

fn label_filters(labels: &[LabelFilter]) -> HashMap<String, Vec<String>> {
    HashMap::from([(
        "label".to_owned(),
        labels.iter().map(LabelFilter::as_filter).collect(),
    )])
}

/// CPU time and memory in use, as `docker stats` counts it: the page cache the kernel can
/// take back (`inactive_file`) is not the app's memory.
fn stats_from(s: bollard::models::ContainerStatsResponse) -> ContainerStats {
    let cpu_ns = s
        .cpu_stats
        .and_then(|c| c.cpu_usage)
        .and_then(|u| u.total_usage)
        .unwrap_or(0);
    let memory = s.memory_stats.unwrap_or_default();
    let inactive = memory
        .stats
        .as_ref()
        .and_then(|m| {
            m.get("inactive_file")
                .or_else(|| m.get("total_inactive_file"))
        })
        .copied()
        .unwrap_or(0);
    ContainerStats {
        cpu_seconds: cpu_ns as f64 / 1e9,
        memory_bytes: memory.usage.unwrap_or(0).saturating_sub(inactive),
        // A container without a limit reports the machine's memory (Podman) or a huge
        // number: neither is a limit anyone set.
        memory_limit_bytes: memory
            .limit
            .filter(|&l| l > 0 && host_memory().is_none_or(|total| l < total)),
    }
}

/// This machine's memory (`MemTotal`), read once; the engines Rivetr talks to run here.
fn host_memory() -> Option<u64> {
    static TOTAL: std::sync::OnceLock<Option<u64>> = std::sync::OnceLock::new();
    *TOTAL.get_or_init(|| {
        std::fs::read_to_string("/proc/meminfo")
            .ok()?
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))?
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse::<u64>()
            .ok()
            .map(|kb| kb * 1024)
    })
}

fn info_from_inspect(r: ContainerInspectResponse) -> ContainerInfo {
    let state = r.state.unwrap_or_default();
    let engine_state = state.status.map(|s| s.to_string()).unwrap_or_default();
    let kind = ContainerState::from_engine(&engine_state);
    let ended = matches!(kind, ContainerState::Exited | ContainerState::Dead);
    let config = r.config.unwrap_or_default();
    let memory_limit_bytes = r
        .host_config
        .and_then(|h| h.memory)
        .and_then(|m| u64::try_from(m).ok())
        .filter(|&m| m > 0);
    let host_port = r
        .network_settings
        .and_then(|n| n.ports)
        .unwrap_or_default()
        .into_values()
        .flatten()
        .flatten()
        .find_map(|b| b.host_port.and_then(|p| p.parse().ok()));
    ContainerInfo {
        id: r.id.unwrap_or_default(),
        name: r
            .name
            .unwrap_or_default()
            .trim_start_matches('/')
            .to_owned(),
        image: config.image.unwrap_or_default(),
        state: kind,
        engine_state,
        exit_code: if ended { state.exit_code } else { None },
        oom_killed: state.oom_killed.unwrap_or(false),
        oom_inferred: false,
        memory_limit_bytes,
        error: state.error.filter(|e| !e.is_empty()),
        host_port,
        started_at: state.started_at.as_deref().and_then(timestamps::parse),
        finished_at: state.finished_at.as_deref().and_then(timestamps::parse),
        labels: config.labels.unwrap_or_default().into_iter().collect(),
        restart_count: r
            .restart_count
            .and_then(|n| u64::try_from(n).ok())
            .unwrap_or(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::{Limits, PortSpec};

    #[test]
    fn ports_are_published_on_loopback_only_with_an_engine_chosen_port() {
        let spec = RunSpec {
            image: "img".into(),
            name: "web".into(),
            port: Some(PortSpec {
                container_port: 8080,
                host_port: None,
            }),
            limits: Limits {
                memory_bytes: Some(64 << 20),
                cpus: Some(0.5),
                pids: Some(100),
            },
            ..RunSpec::default()
        };
        let body = serde_json::to_value(create_body(&spec, "bridge")).unwrap();
        let hc = &body["HostConfig"];
        assert_eq!(
            hc["PortBindings"]["8080/tcp"],
            serde_json::json!([{"HostIp": "127.0.0.1", "HostPort": ""}])
        );
        assert_eq!(body["ExposedPorts"], serde_json::json!({"8080/tcp": {}}));
        assert_eq!(hc["Memory"], 64 << 20);
        assert_eq!(hc["MemorySwap"], 64 << 20);
        assert_eq!(hc["NanoCpus"], 500_000_000);
        assert_eq!(hc["PidsLimit"], 100);
        assert_eq!(hc["RestartPolicy"]["Name"], "no");
    }

    #[test]
    fn bad_specs_are_refused_before_sending() {
        let spec = RunSpec {
            image: "img".into(),
            name: "web".into(),
            env: vec![("A=B".into(), "x".into())],
            ..RunSpec::default()
        };
        assert!(matches!(validate(&spec), Err(RuntimeError::Invalid(_))));
    }
}
