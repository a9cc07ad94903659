//! [`DockerRuntime`]: Docker Engine through its API socket. Everything goes through the
//! shared bollard core except `/info`, read as plain JSON. An OOM kill Docker missed (its
//! exit event can beat its OOM event) is inferred, see `oom.rs`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use super::compat::{CALL_TIMEOUT, Compat, socket_path};
use super::error::Subject;
use super::oom::OomWatch;
use super::raw::RawClient;
use super::{
    BuildSpec, BuiltImage, ContainerInfo, ContainerRuntime, ContainerStats, ContainerSummary,
    EngineInfo, EngineKind, ExecSession, ExecSpec, ImageFilter, ImageSummary, LabelFilter,
    LogOptions, LogStream, NetworkInfo, NetworkSpec, RunSpec, RuntimeError, VolumeInfo,
};

/// Docker Engine at one socket.
#[derive(Debug, Clone)]
pub struct DockerRuntime {
    compat: Compat,
    raw: RawClient,
    oom: Arc<OomWatch>,
}

impl DockerRuntime {
    /// A client for the socket (`unix:///path` or `/path`); nothing is sent until the first
    /// call.
    pub fn connect(socket: &str) -> Result<DockerRuntime, RuntimeError> {
        let path = socket_path(socket)?;
        Ok(DockerRuntime {
            compat: Compat::new(&path, "bridge")?,
            raw: RawClient::new(&path, CALL_TIMEOUT),
            oom: Arc::new(OomWatch::new()),
        })
    }
}

/// `/info`, the parts Rivetr reads.
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
struct DockerInfo {
    security_options: Vec<String>,
    cgroup_driver: String,
    cgroup_version: String,
}

#[async_trait::async_trait]
impl ContainerRuntime for DockerRuntime {
    async fn info(&self) -> Result<EngineInfo, RuntimeError> {
        let version = self.compat.version(CALL_TIMEOUT).await?;
        let info: DockerInfo = self.raw.get("/info", Subject::Engine).await?;
        let rootless = info
            .security_options
            .iter()
            .any(|o| o.split(',').any(|kv| kv == "name=rootless"));
        let cgroup_version =
            (!info.cgroup_version.is_empty()).then(|| format!("v{}", info.cgroup_version));
        Ok(EngineInfo {
            engine: EngineKind::Docker,
            version: version.version.unwrap_or_default(),
            api_version: version.api_version.unwrap_or_default(),
            rootless,
            limits_enforced: !(rootless && cgroup_version.as_deref() == Some("v1")),
            reports_oom: true,
            cgroup_version,
            cgroup_manager: Some(info.cgroup_driver).filter(|d| !d.is_empty()),
            socket: self.compat.socket.clone(),
        })
    }

    async fn build(
        &self,
        spec: BuildSpec,
        on_output: &mut (dyn for<'l> FnMut(&'l str) + Send),
    ) -> Result<BuiltImage, RuntimeError> {
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

    async fn stats(&self, id: &str) -> Result<ContainerStats, RuntimeError> {
        self.compat.stats(id).await
    }

    async fn inspect(&self, id: &str) -> Result<ContainerInfo, RuntimeError> {
        let mut info = self.compat.inspect(id).await?;
        if self.oom.looks_oom_killed(&info) {
            OomWatch::mark(
                &mut info,
                "Docker's exit event can arrive before its OOM event, and then it does not flag the kill",
            );
        }
        Ok(info)
    }

    async fn list(&self, labels: &[LabelFilter]) -> Result<Vec<ContainerSummary>, RuntimeError> {
        self.compat.list(labels).await
    }

    async fn remove_image(&self, reference: &str) -> Result<(), RuntimeError> {
        self.compat.remove_image(reference).await
    }

    async fn ensure_image(&self, reference: &str) -> Result<(), RuntimeError> {
        self.compat.ensure_image(reference).await
    }

    async fn list_images(&self, filter: &ImageFilter) -> Result<Vec<ImageSummary>, RuntimeError> {
        self.compat.list_images(filter).await
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
