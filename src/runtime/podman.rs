//! [`PodmanRuntime`]: Podman (rootless or rootful) through its REST socket. The shared
//! bollard core does the work; container state and engine facts come from the libpod
//! endpoints on the same socket, because bollard cannot read Podman's `stopped` state
//! (bollard issue 701) and the compatible API has no word for rootless.
//!
//! # OOM kills on Podman before 5.0
//! Podman 4 never reports `OOMKilled` (containers/podman#13102): conmon notices the kill but
//! writes its marker file into its working directory, where Podman does not look (fixed in
//! Podman 5.0, which passes conmon a persist directory). Debian 12 ships Podman 4.3.1. For
//! such a Podman, a container is taken as OOM-killed when it died of SIGKILL (exit code 137)
//! while running under a memory limit, after this client was made, and this client did not
//! stop it. A `kill -9` from someone else looks the same; the error message says the verdict
//! is inferred.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use super::compat::{CALL_TIMEOUT, Compat, socket_path};
use super::libpod::Libpod;
use super::raw::RawClient;
use super::{
    BuildSpec, BuiltImage, ContainerInfo, ContainerRuntime, ContainerSummary, EngineInfo,
    EngineKind, ImageFilter, ImageSummary, LabelFilter, LogOptions, LogStream, RunSpec,
    RuntimeError,
};

/// Podman at one socket.
#[derive(Debug, Clone)]
pub struct PodmanRuntime {
    compat: Compat,
    libpod: Libpod,
    oom: Arc<OomInference>,
}

/// What inferring OOM kills on Podman 4 needs (see the module doc).
#[derive(Debug)]
struct OomInference {
    /// Containers (ids or names, as given) this client asked to stop or remove: their
    /// SIGKILL is no OOM kill.
    stopped: Mutex<HashSet<String>>,
    /// Exits before this instant may be stops this client never saw.
    since: SystemTime,
    /// Whether this Podman reports OOM kills itself (5.0 and later); looked up once.
    engine_reports: tokio::sync::OnceCell<bool>,
}

/// Exit code of a process killed by SIGKILL (128 + 9).
const SIGKILL_EXIT: i64 = 137;

impl PodmanRuntime {
    /// A client for the socket (`unix:///path` or `/path`); nothing is sent until the first
    /// call.
    pub fn connect(socket: &str) -> Result<PodmanRuntime, RuntimeError> {
        let path = socket_path(socket)?;
        Ok(PodmanRuntime {
            compat: Compat::new(&path)?,
            libpod: Libpod::new(RawClient::new(&path, CALL_TIMEOUT)),
            oom: Arc::new(OomInference {
                stopped: Mutex::new(HashSet::new()),
                since: SystemTime::now(),
                engine_reports: tokio::sync::OnceCell::new(),
            }),
        })
    }

    fn remember_stop(&self, id: &str) {
        if let Ok(mut stopped) = self.oom.stopped.lock() {
            stopped.insert(id.to_owned());
        }
    }

    /// Whether this Podman reports OOM kills itself.
    async fn engine_reports_oom(&self) -> Result<bool, RuntimeError> {
        self.oom
            .engine_reports
            .get_or_try_init(|| async {
                let info = self.libpod.info().await?;
                Ok(reports_oom(&info.version.version))
            })
            .await
            .copied()
    }

    /// Marks `info` OOM-killed when Podman cannot say so itself and everything points to it.
    async fn infer_oom(&self, info: &mut ContainerInfo) -> Result<(), RuntimeError> {
        let Some(limit) = info.memory_limit_bytes else {
            return Ok(());
        };
        let killed = info.exit_code == Some(SIGKILL_EXIT);
        let while_watched = info.finished_at.is_some_and(|t| t >= self.oom.since);
        let stopped_here = self
            .oom
            .stopped
            .lock()
            .map(|s| s.contains(&info.id) || s.contains(&info.name))
            .unwrap_or(true);
        if info.oom_killed || !killed || !while_watched || stopped_here {
            return Ok(());
        }
        if self.engine_reports_oom().await? {
            return Ok(());
        }
        info.oom_killed = true;
        info.error = Some(format!(
            "killed by SIGKILL (exit code 137) while limited to {} MiB of memory, and not stopped by Rivetr: \
             taken as out of memory (inferred: Podman before 5.0 does not report OOM kills, containers/podman#13102)",
            limit >> 20
        ));
        Ok(())
    }
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
        let info = self.libpod.info().await?;
        let version = self.compat.version(CALL_TIMEOUT).await?;
        let rootless = info.host.security.rootless;
        let engine_reports_oom = reports_oom(&info.version.version);
        let cgroup_version = Some(info.host.cgroup_version).filter(|v| !v.is_empty());
        Ok(EngineInfo {
            engine: EngineKind::Podman,
            version: info.version.version,
            api_version: version.api_version.unwrap_or_default(),
            rootless,
            // Rootless Podman on cgroups v1 accepts limits and silently ignores them.
            limits_enforced: !(rootless && cgroup_version.as_deref() == Some("v1")),
            reports_oom: engine_reports_oom,
            cgroup_version,
            cgroup_manager: Some(info.host.cgroup_manager).filter(|m| !m.is_empty()),
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
        self.remember_stop(id);
        self.compat.stop(id, timeout).await
    }

    async fn remove(&self, id: &str) -> Result<(), RuntimeError> {
        self.remember_stop(id);
        self.compat.remove(id).await
    }

    fn logs(&self, id: &str, options: LogOptions) -> LogStream {
        self.compat.logs(id, options)
    }

    async fn inspect(&self, id: &str) -> Result<ContainerInfo, RuntimeError> {
        let mut info = self.libpod.inspect(id).await?;
        self.infer_oom(&mut info).await?;
        Ok(info)
    }

    async fn list(&self, labels: &[LabelFilter]) -> Result<Vec<ContainerSummary>, RuntimeError> {
        self.libpod.list(labels).await
    }

    async fn remove_image(&self, reference: &str) -> Result<(), RuntimeError> {
        self.compat.remove_image(reference).await
    }

    async fn list_images(&self, filter: &ImageFilter) -> Result<Vec<ImageSummary>, RuntimeError> {
        self.compat.list_images(filter).await
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
