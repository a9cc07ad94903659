//! Podman's own (libpod) REST endpoints, on the same socket as its Docker-compatible API.
//!
//! Used for what the compatible API cannot give reliably: container state (bollard cannot
//! read Podman's transient `stopped` state, bollard issue 701; here the state is a plain
//! string) and Podman-only facts (rootless, cgroup manager), read with [`RawClient`].

use std::collections::{BTreeMap, HashMap};

use serde::Deserialize;

use super::error::Subject;
use super::races;
use super::raw::{RawClient, encode};
use super::{
    ContainerInfo, ContainerState, ContainerSummary, LabelFilter, RuntimeError, timestamps,
};

/// The libpod API version every Podman since 4.0 serves.
const PREFIX: &str = "/v4.0.0/libpod";

#[derive(Debug, Clone)]
pub(crate) struct Libpod {
    raw: RawClient,
}

impl Libpod {
    pub(crate) fn new(raw: RawClient) -> Libpod {
        Libpod { raw }
    }

    pub(crate) async fn info(&self) -> Result<Info, RuntimeError> {
        self.raw
            .get(&format!("{PREFIX}/info"), Subject::Engine)
            .await
    }

    pub(crate) async fn inspect(&self, id: &str) -> Result<ContainerInfo, RuntimeError> {
        let path = format!("{PREFIX}/containers/{}/json", encode(id));
        let json: InspectJson = self.get_across_exits(&path, Subject::Container(id)).await?;
        Ok(json.into_info())
    }

    pub(crate) async fn list(
        &self,
        labels: &[LabelFilter],
    ) -> Result<Vec<ContainerSummary>, RuntimeError> {
        let filters = serde_json::json!({
            "label": labels.iter().map(LabelFilter::as_filter).collect::<Vec<_>>()
        });
        let path = format!(
            "{PREFIX}/containers/json?all=true&filters={}",
            encode(&filters.to_string())
        );
        let entries: Vec<ListJson> = self.get_across_exits(&path, Subject::Engine).await?;
        Ok(entries.into_iter().map(ListJson::into_summary).collect())
    }

    /// GETs a container read, asking again a few times when it raced a container's exit: the
    /// container is fine, and a moment later Podman sees it exited. A caller polling a
    /// deployment's health or reconciling must not take that moment for a broken engine.
    async fn get_across_exits<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        subject: Subject<'_>,
    ) -> Result<T, RuntimeError> {
        races::asked_across(races::raced_an_exit, || self.raw.get(path, subject)).await
    }
}

/// `/libpod/info`, the parts Rivetr reads.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct Info {
    pub host: HostInfo,
    pub version: VersionInfo,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct HostInfo {
    pub cgroup_manager: String,
    pub cgroup_version: String,
    pub security: SecurityInfo,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct SecurityInfo {
    pub rootless: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub(crate) struct VersionInfo {
    pub version: String,
    #[serde(rename = "APIVersion")]
    pub api_version: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
struct InspectJson {
    id: String,
    name: String,
    image_name: String,
    state: StateJson,
    config: ConfigJson,
    network_settings: NetworkJson,
    host_config: HostConfigJson,
    restart_count: u64,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
struct HostConfigJson {
    memory: i64,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
struct StateJson {
    /// A plain string, so `stopped` reads like any other state.
    status: String,
    exit_code: i64,
    #[serde(rename = "OOMKilled")]
    oom_killed: bool,
    error: String,
    started_at: String,
    finished_at: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
struct ConfigJson {
    labels: Option<HashMap<String, String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
struct NetworkJson {
    ports: Option<HashMap<String, Option<Vec<PortJson>>>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
struct PortJson {
    host_port: String,
}

impl InspectJson {
    fn into_info(self) -> ContainerInfo {
        let state = ContainerState::from_engine(&self.state.status);
        let ended = matches!(state, ContainerState::Exited | ContainerState::Dead);
        let host_port = self
            .network_settings
            .ports
            .unwrap_or_default()
            .into_values()
            .flatten()
            .flatten()
            .find_map(|p| p.host_port.parse().ok());
        ContainerInfo {
            id: self.id,
            name: self.name,
            image: self.image_name,
            state,
            engine_state: self.state.status,
            exit_code: ended.then_some(self.state.exit_code),
            oom_killed: self.state.oom_killed,
            oom_inferred: false,
            memory_limit_bytes: u64::try_from(self.host_config.memory)
                .ok()
                .filter(|&m| m > 0),
            error: Some(self.state.error).filter(|e| !e.is_empty()),
            host_port,
            started_at: timestamps::parse(&self.state.started_at),
            finished_at: timestamps::parse(&self.state.finished_at),
            labels: sorted(self.config.labels),
            restart_count: self.restart_count,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
struct ListJson {
    id: String,
    names: Vec<String>,
    image: String,
    state: String,
    labels: Option<HashMap<String, String>>,
}

impl ListJson {
    fn into_summary(self) -> ContainerSummary {
        ContainerSummary {
            id: self.id,
            name: self.names.into_iter().next().unwrap_or_default(),
            image: self.image,
            state: ContainerState::from_engine(&self.state),
            engine_state: self.state,
            labels: sorted(self.labels),
        }
    }
}

fn sorted(labels: Option<HashMap<String, String>>) -> BTreeMap<String, String> {
    labels.unwrap_or_default().into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stopped_state_and_ports_are_read() {
        let json = r#"{"Id":"abc","Name":"web","ImageName":"localhost/x:1",
            "State":{"Status":"stopped","ExitCode":3,"OOMKilled":false,"Error":"",
                     "StartedAt":"2026-11-29T06:56:53.602643053Z","FinishedAt":"0001-01-01T00:00:00Z"},
            "Config":{"Labels":{"io.rivetr.app":"a"}},
            "NetworkSettings":{"Ports":{"8080/tcp":[{"HostIp":"127.0.0.1","HostPort":"41111"}]}},
            "HostConfig":{"Memory":33554432}}"#;
        let info = serde_json::from_str::<InspectJson>(json)
            .unwrap()
            .into_info();
        assert_eq!(info.state, ContainerState::Exited);
        assert_eq!(info.engine_state, "stopped");
        assert_eq!(info.exit_code, Some(3));
        assert_eq!(info.host_port, Some(41111));
        assert!(info.started_at.is_some() && info.finished_at.is_none());
        assert_eq!(info.labels["io.rivetr.app"], "a");
        assert_eq!(info.memory_limit_bytes, Some(32 << 20));
    }
}
