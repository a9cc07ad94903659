//! [`PodmanRuntime`]: Podman (rootless or rootful) through its REST socket. The shared
//! bollard core does the work; container state and engine facts come from the libpod
//! endpoints on the same socket, because bollard cannot read Podman's `stopped` state
//! (bollard issue 701) and the compatible API has no word for rootless.
//!
//! Podman before 5.0 never reports OOM kills; they are inferred (see `oom.rs`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use super::compat::{CALL_TIMEOUT, Compat, socket_path};
use super::libpod::Libpod;
use super::oom::OomWatch;
use super::races;
use super::raw::RawClient;
use super::{
    BuildSpec, BuiltImage, ContainerInfo, ContainerRuntime, ContainerStats, ContainerSummary,
    EngineInfo, EngineKind, ExecSession, ExecSpec, ImageFilter, ImageSummary, LabelFilter,
    LogOptions, LogStream, NetworkInfo, NetworkSpec, RunSpec, RuntimeError, VolumeInfo,
};

/// Said in the build's output when its memory and CPU limits are dropped.
const NO_BUILD_LIMITS: &str = "note: this engine (rootless Podman on cgroups v1) cannot enforce memory and CPU limits on builds; this build runs without them (its time limit still applies)";

/// Podman at one socket.
#[derive(Debug, Clone)]
pub struct PodmanRuntime {
    compat: Compat,
    libpod: Libpod,
    oom: Arc<OomWatch>,
    /// Whether this Podman reports OOM kills itself (5.0 and later); looked up once.
    engine_reports_oom: Arc<tokio::sync::OnceCell<bool>>,
    /// Whether this Podman can put a container in a limited cgroup; looked up once.
    limits_enforced: Arc<tokio::sync::OnceCell<bool>>,
}

impl PodmanRuntime {
    /// A client for the socket (`unix:///path` or `/path`); nothing is sent until the first
    /// call.
    pub fn connect(socket: &str) -> Result<PodmanRuntime, RuntimeError> {
        let path = socket_path(socket)?;
        Ok(PodmanRuntime {
            compat: Compat::new(&path, "podman")?,
            libpod: Libpod::new(RawClient::new(&path, CALL_TIMEOUT)),
            oom: Arc::new(OomWatch::new()),
            engine_reports_oom: Arc::new(tokio::sync::OnceCell::new()),
            limits_enforced: Arc::new(tokio::sync::OnceCell::new()),
        })
    }

    async fn engine_reports_oom(&self) -> Result<bool, RuntimeError> {
        self.engine_reports_oom
            .get_or_try_init(|| async {
                let info = self.libpod.info().await?;
                Ok(reports_oom(&info.version.version))
            })
            .await
            .copied()
    }
}

impl PodmanRuntime {
    async fn limits_enforced(&self) -> Result<bool, RuntimeError> {
        self.limits_enforced
            .get_or_try_init(|| async {
                let info = self.libpod.info().await?;
                Ok(limits_enforced(
                    info.host.security.rootless,
                    &info.host.cgroup_version,
                ))
            })
            .await
            .copied()
    }
}

/// Rootless Podman on cgroups v1 cannot create a limited cgroup: containers run without
/// their limits, and a build step given one fails ("cannot set memory limit: container could
/// not join or create cgroup"), measured with Podman 4.3.
fn limits_enforced(rootless: bool, cgroup_version: &str) -> bool {
    !(rootless && cgroup_version == "v1")
}

/// Podman reports OOM kills from 5.0 on.
fn reports_oom(version: &str) -> bool {
    version
        .split('.')
        .next()
        .and_then(|major| major.parse::<u32>().ok())
        .is_some_and(|major| major >= 5)
}

#[async_trait::async_trait]
impl ContainerRuntime for PodmanRuntime {
    async fn info(&self) -> Result<EngineInfo, RuntimeError> {
        // Both are slow on Podman (each computes the engine's whole `/info`): ask at once.
        let (info, version) =
            tokio::try_join!(self.libpod.info(), self.compat.version(CALL_TIMEOUT))?;
        let rootless = info.host.security.rootless;
        let engine_reports_oom = reports_oom(&info.version.version);
        let cgroup_version = Some(info.host.cgroup_version).filter(|v| !v.is_empty());
        Ok(EngineInfo {
            engine: EngineKind::Podman,
            version: info.version.version,
            api_version: version.api_version.unwrap_or_default(),
            rootless,
            limits_enforced: limits_enforced(rootless, cgroup_version.as_deref().unwrap_or("")),
            reports_oom: engine_reports_oom,
            cgroup_version,
            cgroup_manager: Some(info.host.cgroup_manager).filter(|m| !m.is_empty()),
            socket: self.compat.socket.clone(),
        })
    }

    async fn build(
        &self,
        mut spec: BuildSpec,
        on_output: &mut (dyn for<'l> FnMut(&'l str) + Send),
    ) -> Result<BuiltImage, RuntimeError> {
        let limited = spec.limits.memory_bytes.is_some() || spec.limits.cpus.is_some();
        if limited && !self.limits_enforced().await? {
            on_output(NO_BUILD_LIMITS);
            spec.limits.memory_bytes = None;
            spec.limits.cpus = None;
        }
        self.compat.build(spec, on_output).await
    }

    async fn create(&self, spec: &RunSpec) -> Result<String, RuntimeError> {
        self.compat.create(spec).await
    }

    async fn start(&self, id: &str) -> Result<(), RuntimeError> {
        self.compat.start(id).await
    }

    async fn stop(&self, id: &str, timeout: Duration) -> Result<(), RuntimeError> {
        self.oom.stopping(id);
        self.compat.stop(id, timeout).await
    }

    async fn remove(&self, id: &str) -> Result<(), RuntimeError> {
        self.oom.stopping(id);
        self.compat.remove(id).await
    }

    fn logs(&self, id: &str, options: LogOptions) -> LogStream {
        self.compat.logs(id, options)
    }

    async fn stats_unavailable(&self) -> Option<String> {
        match self.limits_enforced().await {
            Ok(true) => None,
            Ok(false) => Some(
                "rootless Podman on cgroups v1 puts no container in a cgroup of its own, so it \
                 cannot say what one uses; cgroups v2 (systemd.unified_cgroup_hierarchy=1) can"
                    .to_owned(),
            ),
            Err(e) => Some(format!("cannot ask Podman: {e}")),
        }
    }

    async fn stats(&self, id: &str) -> Result<ContainerStats, RuntimeError> {
        self.compat.stats(id).await
    }

    async fn inspect(&self, id: &str) -> Result<ContainerInfo, RuntimeError> {
        let mut info = self.libpod.inspect(id).await?;
        if self.oom.looks_oom_killed(&info) && !self.engine_reports_oom().await? {
            OomWatch::mark(
                &mut info,
                "Podman before 5.0 does not report OOM kills, containers/podman#13102",
            );
        }
        Ok(info)
    }

    async fn list(&self, labels: &[LabelFilter]) -> Result<Vec<ContainerSummary>, RuntimeError> {
        self.libpod.list(labels).await
    }

    async fn remove_image(&self, reference: &str) -> Result<(), RuntimeError> {
        self.compat.remove_image(reference).await
    }

    async fn ensure_image(&self, reference: &str) -> Result<(), RuntimeError> {
        self.compat.ensure_image(reference).await
    }

    async fn list_images(&self, filter: &ImageFilter) -> Result<Vec<ImageSummary>, RuntimeError> {
        races::asked_across(races::raced_an_image_removal, || {
            self.compat.list_images(filter)
        })
        .await
    }

    async fn ensure_network(&self, spec: &NetworkSpec) -> Result<NetworkInfo, RuntimeError> {
        self.compat.ensure_network(spec).await
    }

    async fn connect_network(
        &self,
        network: &str,
        container: &str,
        ipv4: Option<std::net::Ipv4Addr>,
    ) -> Result<(), RuntimeError> {
        self.compat.connect_network(network, container, ipv4).await
    }

    async fn disconnect_network(&self, network: &str, container: &str) -> Result<(), RuntimeError> {
        self.compat.disconnect_network(network, container).await
    }

    async fn inspect_network(&self, name: &str) -> Result<Option<NetworkInfo>, RuntimeError> {
        self.compat.inspect_network(name).await
    }

    async fn list_networks(
        &self,
        labels: &[LabelFilter],
    ) -> Result<Vec<NetworkInfo>, RuntimeError> {
        self.compat.list_networks(labels).await
    }

    async fn remove_network(&self, name: &str) -> Result<(), RuntimeError> {
        self.compat.remove_network(name).await
    }

    async fn ensure_volume(
        &self,
        name: &str,
        labels: &BTreeMap<String, String>,
    ) -> Result<VolumeInfo, RuntimeError> {
        self.compat.ensure_volume(name, labels).await
    }

    async fn inspect_volume(&self, name: &str) -> Result<Option<VolumeInfo>, RuntimeError> {
        self.compat.inspect_volume(name).await
    }

    async fn list_volumes(&self, labels: &[LabelFilter]) -> Result<Vec<VolumeInfo>, RuntimeError> {
        self.compat.list_volumes(labels).await
    }

    async fn remove_volume(&self, name: &str) -> Result<(), RuntimeError> {
        self.compat.remove_volume(name).await
    }

    async fn exec_start(
        &self,
        container: &str,
        spec: &ExecSpec,
    ) -> Result<ExecSession, RuntimeError> {
        self.compat.exec_start(container, spec).await
    }

    async fn exec_exit_code(&self, exec_id: &str) -> Result<Option<i64>, RuntimeError> {
        self.compat.exec_exit_code(exec_id).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn podman_reports_oom_from_version_5() {
        assert!(!reports_oom("4.3.1"));
        assert!(!reports_oom("4.9.4-rhel"));
        assert!(reports_oom("5.0.0"));
        assert!(reports_oom("5.4.2"));
        assert!(!reports_oom(""));
    }
}
