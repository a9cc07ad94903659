//! Docker Swarm: services, tasks, nodes and secrets on a manager node's socket, and pushing
//! a built image to the registry the nodes pull from.
//!
//! A trait of its own rather than [`super::ContainerRuntime`]: a swarm does not run a
//! container Rivetr asks for, it runs *tasks* of a *service* on nodes it picks, and restarts
//! or moves them on its own. What Rivetr needs from it is different too: create a service,
//! watch its tasks (their node, state and published port), remove it, and move nodes in and
//! out of service. Builds, images and the managed databases stay on the manager's own engine,
//! driven as any Docker engine through [`super::DockerRuntime`].
//!
//! # Conventions
//! - Services publish their port in **host mode** with no fixed published port: each task
//!   gets a free port on its node, read back from the task's status. The ingress routing mesh
//!   (VIP) needs IPVS in the kernel, which not every host has; host mode needs nothing.
//! - Environment values never go into the service spec, which `docker service inspect` (and
//!   anyone with the socket) can read: they travel as a Swarm secret, a file mounted in the
//!   task, read by a `/bin/sh` wrapper before the image's own command (see
//!   [`ServiceRun::env`]).
//! - Reads go through [`RawClient`] into Rivetr's own small structs, which ignore what they do
//!   not need and never fail on a state word a newer engine adds.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use base64::Engine as _;
use bollard::models::{
    EndpointPortConfig, EndpointPortConfigPublishModeEnum, EndpointSpec, EndpointSpecModeEnum,
    Limit, NodeSpec, NodeSpecAvailabilityEnum, NodeSpecRoleEnum, SecretSpec, ServiceSpec,
    ServiceSpecMode, ServiceSpecModeReplicated, TaskSpec, TaskSpecContainerSpec,
    TaskSpecContainerSpecFile, TaskSpecContainerSpecSecrets, TaskSpecPlacement,
    TaskSpecPlacementPreferences, TaskSpecPlacementSpread, TaskSpecResources,
    TaskSpecRestartPolicy, TaskSpecRestartPolicyConditionEnum,
};
use bollard::query_parameters::{PushImageOptionsBuilder, TagImageOptionsBuilder};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};

use super::compat::{CALL_TIMEOUT, Compat, socket_path};
use super::error::Subject;
use super::raw::{RawClient, encode};
use super::{LabelFilter, Limits, RuntimeError};

/// Label on a service's env secret naming the service it belongs to.
pub const LABEL_SERVICE: &str = "io.rivetr.service";
/// Where a task finds its environment file.
const ENV_FILE: &str = "/run/secrets/rivetr-env";
/// How long a push may take: an image is pushed layer by layer to the registry.
const PUSH_TIMEOUT: Duration = Duration::from_secs(1800);

/// A swarm manager at one socket, and the registry its nodes pull Rivetr's builds from.
#[derive(Debug, Clone)]
pub struct Swarm {
    compat: Compat,
    raw: RawClient,
    registry: String,
}

/// The user and password of the registry, for a push and for the nodes' pulls.
#[derive(Clone, PartialEq, Eq)]
pub struct RegistryAuth {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for RegistryAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryAuth")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// What the manager says about the swarm.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SwarmInfo {
    pub node_id: String,
    pub nodes: u32,
    pub managers: u32,
}

/// One service Rivetr runs: a deployment of an app.
#[derive(Clone)]
pub struct ServiceRun {
    pub name: String,
    /// `registry/repository@sha256:...`: every node runs exactly the same image.
    pub image: String,
    /// Labels on the service (not on its containers, which the manager's own engine lists
    /// among its containers when a task lands there).
    pub labels: BTreeMap<String, String>,
    pub replicas: u32,
    /// The port the app listens on inside its container; published in host mode.
    pub port: u16,
    /// Variables for the task, delivered as a secret file; empty: the image runs as built.
    pub env: Vec<(String, String)>,
    /// The image's entrypoint followed by its command: what the env wrapper execs.
    pub command: Vec<String>,
    pub limits: Limits,
    pub placement: SwarmPlacement,
    pub stop_grace: Duration,
}

impl std::fmt::Debug for ServiceRun {
    // Values are secrets as far as this module knows; only names are shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceRun")
            .field("name", &self.name)
            .field("image", &self.image)
            .field("replicas", &self.replicas)
            .field("port", &self.port)
            .field("env", &super::names(&self.env))
            .field("placement", &self.placement)
            .finish_non_exhaustive()
    }
}

/// Where a service's tasks may run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SwarmPlacement {
    /// Swarm constraints such as `node.labels.zone==eu` or `node.role==worker`.
    pub constraints: Vec<String>,
    /// At most this many tasks on one node; 0: no limit.
    pub max_per_node: u64,
    /// Spread tasks evenly over the values of these node labels (`node.labels.zone`).
    pub spread: Vec<String>,
}

/// One task of a service, as Rivetr routes and reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TaskView {
    pub id: String,
    pub service_id: String,
    pub slot: Option<u64>,
    pub node_id: String,
    /// The node's address, when the swarm knows it.
    pub node_addr: Option<IpAddr>,
    /// The node is up (`ready`); a task on a node that is down is only what the node last
    /// said about it.
    pub node_ready: bool,
    /// What the task is doing: `running`, `starting`, `failed`, `shutdown`, ...
    pub state: String,
    /// What the swarm wants of it: `running` or `shutdown`.
    pub desired_state: String,
    /// The port the task's node publishes for the app's port.
    pub published_port: Option<u16>,
    pub message: String,
    pub error: Option<String>,
    pub exit_code: Option<i64>,
    pub container_id: Option<String>,
    pub updated_at: String,
}

impl TaskView {
    /// Where the proxy reaches this task, once it runs and has a port, and the swarm wants it
    /// to keep running.
    pub fn endpoint(&self) -> Option<SocketAddr> {
        self.serving_endpoint()
            .filter(|_| self.desired_state == "running")
    }

    /// Where the proxy reaches this task while it still runs on a node that is up, even when
    /// the swarm is stopping it (drained, replaced).
    pub fn serving_endpoint(&self) -> Option<SocketAddr> {
        (self.state == "running" && self.node_ready)
            .then_some(())
            .and(self.node_addr)
            .zip(self.published_port)
            .map(|(ip, port)| SocketAddr::new(ip, port))
    }

    /// True once the task is past running and will not run again.
    pub fn ended(&self) -> bool {
        matches!(
            self.state.as_str(),
            "complete" | "shutdown" | "failed" | "rejected" | "orphaned" | "remove"
        )
    }
}

/// One service Rivetr finds on the swarm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceView {
    pub id: String,
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub replicas: u64,
}

/// One node of the swarm.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct NodeView {
    /// The swarm's id of the node (`/api/nodes/{id}/...` also take its hostname).
    pub id: String,
    pub hostname: String,
    /// `manager` or `worker`.
    pub role: String,
    /// `ready`, `down`, `unknown` or `disconnected`.
    pub state: String,
    /// `active`, `pause` or `drain`.
    pub availability: String,
    /// The address the node's tasks are reached at.
    #[schema(value_type = Option<String>)]
    pub addr: Option<IpAddr>,
    /// The node's labels (what `node.labels.<name>` constraints and spread refer to).
    pub labels: BTreeMap<String, String>,
    pub engine_version: String,
    /// True for the managers' leader.
    pub leader: bool,
}

/// What a node is asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Availability {
    Active,
    Drain,
}

impl Swarm {
    /// A client for the manager at `socket`; builds are pushed to `registry` (`host:port`,
    /// optionally with a path). Nothing is sent yet.
    pub fn connect(socket: &str, registry: &str) -> Result<Swarm, RuntimeError> {
        let path = socket_path(socket)?;
        Ok(Swarm {
            compat: Compat::new(&path, "bridge")?,
            raw: RawClient::new(Path::new(&path), CALL_TIMEOUT),
            registry: registry.trim_end_matches('/').to_owned(),
        })
    }

    /// The registry the nodes pull from.
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// Checks that the engine is a manager of an active swarm.
    pub async fn info(&self) -> Result<SwarmInfo, RuntimeError> {
        let info: InfoDoc = self.raw.get("/info", Subject::Engine).await?;
        let s = info.swarm;
        if s.local_node_state != "active" {
            return Err(RuntimeError::Invalid(format!(
                "this Docker engine is not part of a swarm (its swarm state is \"{}\"); run `docker swarm init` on it or point [runtime] socket at a manager",
                s.local_node_state
            )));
        }
        if !s.control_available {
            return Err(RuntimeError::Invalid(
                "this Docker engine is a swarm worker; [runtime] socket must name a manager"
                    .to_owned(),
            ));
        }
        Ok(SwarmInfo {
            node_id: s.node_id,
            nodes: s.nodes,
            managers: s.managers,
        })
    }

    /// Tags the local image `local` as `<registry>/<repository>:<tag>`, pushes it, and
    /// returns the pushed reference by digest.
    pub async fn push(
        &self,
        local: &str,
        repository: &str,
        tag: &str,
        auth: Option<&RegistryAuth>,
        on_output: &mut (dyn for<'l> FnMut(&'l str) + Send),
    ) -> Result<String, RuntimeError> {
        let remote = format!("{}/{repository}", self.registry);
        let options = TagImageOptionsBuilder::default()
            .repo(&remote)
            .tag(tag)
            .build();
        self.compat
            .call(
                CALL_TIMEOUT,
                Subject::Image(local),
                self.compat.docker.tag_image(local, Some(options)),
            )
            .await?;
        let pushed = async {
            let mut stream = self.compat.docker.push_image(
                &remote,
                Some(PushImageOptionsBuilder::default().tag(tag).build()),
                self.credentials(auth),
            );
            let mut digest = None;
            while let Some(item) = stream.next().await {
                let info = item?;
                if let Some(status) = info.status.as_deref() {
                    if let Some(d) = digest_in(status) {
                        digest = Some(d.to_owned());
                    }
                    if info.progress_detail.is_none() || status.contains("digest") {
                        on_output(status);
                    }
                }
            }
            Ok::<_, bollard::errors::Error>(digest)
        };
        let digest = self
            .compat
            .call(PUSH_TIMEOUT, Subject::Image(&remote), pushed)
            .await?
            .ok_or_else(|| {
                RuntimeError::Protocol(format!(
                    "the push of {remote}:{tag} ended without naming the image's digest"
                ))
            })?;
        // The local tag was only a vehicle for the push.
        let _ = self.compat.remove_image(&format!("{remote}:{tag}")).await;
        Ok(format!("{remote}@{digest}"))
    }

    /// The entrypoint followed by the command of an image the manager holds.
    pub async fn image_command(&self, image: &str) -> Result<Vec<String>, RuntimeError> {
        let doc: ImageDoc = self
            .raw
            .get(
                &format!("/images/{}/json", encode(image)),
                Subject::Image(image),
            )
            .await?;
        let mut command = doc.config.entrypoint.unwrap_or_default();
        command.extend(doc.config.cmd.unwrap_or_default());
        Ok(command)
    }

    /// `auth` as the engine takes it, for this swarm's registry.
    fn credentials(&self, auth: Option<&RegistryAuth>) -> Option<bollard::auth::DockerCredentials> {
        auth.map(|a| bollard::auth::DockerCredentials {
            username: Some(a.username.clone()),
            password: Some(a.password.clone()),
            serveraddress: Some(self.registry.clone()),
            ..Default::default()
        })
    }

    /// Creates the service (and its env secret); returns the service's id. With `auth`, the
    /// swarm hands the registry credentials to the nodes that pull the image.
    pub async fn create_service(
        &self,
        run: &ServiceRun,
        auth: Option<&RegistryAuth>,
    ) -> Result<String, RuntimeError> {
        let secret = if run.env.is_empty() {
            None
        } else {
            Some(self.create_env_secret(run).await?)
        };
        let spec = service_spec(run, secret);
        let created = self
            .compat
            .call(
                CALL_TIMEOUT,
                Subject::Service(&run.name),
                self.compat
                    .docker
                    .create_service(spec, self.credentials(auth)),
            )
            .await;
        match created {
            Ok(c) => Ok(c.id.unwrap_or_default()),
            Err(e) => {
                let _ = self.remove_secrets_of(&run.name).await;
                Err(e.redacted(&run.env))
            }
        }
    }

    async fn create_env_secret(&self, run: &ServiceRun) -> Result<(String, String), RuntimeError> {
        let name = format!("{}-env", run.name);
        // A secret left by an attempt that failed after creating it.
        let _ = self.remove_secrets_of(&run.name).await;
        let spec = SecretSpec {
            name: Some(name.clone()),
            labels: Some(HashMap::from([(
                LABEL_SERVICE.to_owned(),
                run.name.clone(),
            )])),
            data: Some(base64::engine::general_purpose::STANDARD.encode(env_file(&run.env))),
            ..SecretSpec::default()
        };
        let created = self
            .compat
            .call(
                CALL_TIMEOUT,
                Subject::Service(&run.name),
                self.compat.docker.create_secret(spec),
            )
            .await
            .map_err(|e| e.redacted(&run.env))?;
        Ok((created.id, name))
    }

    /// Removes the secrets created for service `service`.
    async fn remove_secrets_of(&self, service: &str) -> Result<(), RuntimeError> {
        let filters = serde_json::json!({ "label": [format!("{LABEL_SERVICE}={service}")] });
        let secrets: Vec<IdDoc> = self
            .raw
            .get(
                &format!("/secrets?filters={}", encode(&filters.to_string())),
                Subject::Engine,
            )
            .await?;
        for s in secrets {
            self.compat
                .call(
                    CALL_TIMEOUT,
                    Subject::Engine,
                    self.compat.docker.delete_secret(&s.id),
                )
                .await?;
        }
        Ok(())
    }

    /// Rivetr's services matching every filter.
    pub async fn services(&self, labels: &[LabelFilter]) -> Result<Vec<ServiceView>, RuntimeError> {
        let filters = serde_json::json!({
            "label": labels.iter().map(LabelFilter::as_filter).collect::<Vec<_>>()
        });
        let services: Vec<ServiceDoc> = self
            .raw
            .get(
                &format!("/services?filters={}", encode(&filters.to_string())),
                Subject::Engine,
            )
            .await?;
        Ok(services
            .into_iter()
            .map(|s| ServiceView {
                id: s.id,
                name: s.spec.name,
                labels: s.spec.labels,
                replicas: s.spec.mode.replicated.map_or(0, |r| r.replicas),
            })
            .collect())
    }

    /// The tasks of service `service` (by name or id), newest first, with their node's
    /// address.
    pub async fn tasks(&self, service: &str) -> Result<Vec<TaskView>, RuntimeError> {
        self.tasks_of(&[service]).await
    }

    /// The tasks of several services at once (by name or id), newest first.
    pub async fn tasks_of(&self, services: &[&str]) -> Result<Vec<TaskView>, RuntimeError> {
        if services.is_empty() {
            return Ok(Vec::new());
        }
        let service = services.join(", ");
        let service = service.as_str();
        let filters = serde_json::json!({ "service": services });
        let path = format!("/tasks?filters={}", encode(&filters.to_string()));
        let (tasks, nodes) = tokio::try_join!(
            self.raw
                .get::<Vec<TaskDoc>>(&path, Subject::Service(service)),
            self.nodes(),
        )?;
        let nodes: HashMap<&str, &NodeView> = nodes.iter().map(|n| (n.id.as_str(), n)).collect();
        let mut views: Vec<TaskView> = tasks.into_iter().map(|t| task_view(t, &nodes)).collect();
        views.sort_by(|a, b| b.updated_at.cmp(&a.updated_at));
        Ok(views)
    }

    /// Sets the number of replicas of `service`.
    pub async fn scale(&self, service: &str, replicas: u32) -> Result<(), RuntimeError> {
        let current = self
            .compat
            .call(
                CALL_TIMEOUT,
                Subject::Service(service),
                self.compat.docker.inspect_service(service, None),
            )
            .await?;
        let version = current.version.and_then(|v| v.index).unwrap_or_default();
        let mut spec = current.spec.unwrap_or_default();
        spec.mode = Some(ServiceSpecMode {
            replicated: Some(ServiceSpecModeReplicated {
                replicas: Some(i64::from(replicas)),
            }),
            ..ServiceSpecMode::default()
        });
        let options = bollard::query_parameters::UpdateServiceOptionsBuilder::default()
            .version(version as i32)
            .build();
        self.compat
            .call(
                CALL_TIMEOUT,
                Subject::Service(service),
                self.compat
                    .docker
                    .update_service(service, spec, options, None),
            )
            .await
            .map(|_| ())
    }

    /// Removes `service` and its env secret; a service already gone is not an error.
    pub async fn remove_service(&self, service: &str) -> Result<(), RuntimeError> {
        match self
            .compat
            .call(
                CALL_TIMEOUT,
                Subject::Service(service),
                self.compat.docker.delete_service(service),
            )
            .await
        {
            Ok(()) => {}
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e),
        }
        // The secret stays in use until the service's tasks are gone.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            match self.remove_secrets_of(service).await {
                Ok(()) => return Ok(()),
                Err(e) if tokio::time::Instant::now() > deadline => return Err(e),
                Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
            }
        }
    }

    /// The output of every task of `service`, interleaved as the manager gathers it from the
    /// nodes.
    pub fn service_logs(&self, service: &str, options: super::LogOptions) -> super::LogStream {
        let frames = self
            .compat
            .docker
            .service_logs(service, Some(super::compat::logs_options(options)));
        super::compat::log_lines(
            frames,
            self.compat.socket.clone(),
            super::error::OwnedSubject::Service(service.to_owned()),
        )
    }

    /// Every node of the swarm.
    pub async fn nodes(&self) -> Result<Vec<NodeView>, RuntimeError> {
        let nodes: Vec<NodeDoc> = self.raw.get("/nodes", Subject::Engine).await?;
        let mut views: Vec<NodeView> = nodes.into_iter().map(node_view).collect();
        views.sort_by(|a, b| {
            (a.role != "manager", &a.hostname, &a.id).cmp(&(
                b.role != "manager",
                &b.hostname,
                &b.id,
            ))
        });
        Ok(views)
    }

    /// Drains a node (its tasks move elsewhere) or makes it active again.
    pub async fn set_availability(
        &self,
        node: &str,
        availability: Availability,
    ) -> Result<NodeView, RuntimeError> {
        let doc: NodeDoc = self
            .raw
            .get(&format!("/nodes/{}", encode(node)), Subject::Node(node))
            .await?;
        let spec = NodeSpec {
            name: doc.spec.name.clone().filter(|n| !n.is_empty()),
            labels: Some(doc.spec.labels.clone().into_iter().collect()),
            role: Some(if doc.spec.role == "manager" {
                NodeSpecRoleEnum::MANAGER
            } else {
                NodeSpecRoleEnum::WORKER
            }),
            availability: Some(match availability {
                Availability::Active => NodeSpecAvailabilityEnum::ACTIVE,
                Availability::Drain => NodeSpecAvailabilityEnum::DRAIN,
            }),
        };
        let options = bollard::query_parameters::UpdateNodeOptionsBuilder::default()
            .version(doc.version.index as i64)
            .build();
        self.compat
            .call(
                CALL_TIMEOUT,
                Subject::Node(node),
                self.compat.docker.update_node(&doc.id, spec, options),
            )
            .await?;
        let updated: NodeDoc = self
            .raw
            .get(&format!("/nodes/{}", encode(&doc.id)), Subject::Node(node))
            .await?;
        Ok(node_view(updated))
    }
}

/// The digest in a push's last status line (`latest: digest: sha256:... size: 527`).
fn digest_in(status: &str) -> Option<&str> {
    let rest = status.split("digest: ").nth(1)?;
    let digest = rest.split_whitespace().next()?;
    (digest.starts_with("sha256:") && digest.len() == 71).then_some(digest)
}

/// The env file a task's wrapper sources: `export NAME='value'` lines, each value
/// single-quoted with its own quotes escaped, so no value is ever interpreted by the shell.
fn env_file(env: &[(String, String)]) -> String {
    env.iter()
        .map(|(k, v)| format!("export {k}='{}'\n", v.replace('\'', "'\\''")))
        .collect()
}

/// The service's spec. With an env secret, the task runs the image's command through
/// `/bin/sh`, which first reads the variables from the secret's file.
fn service_spec(run: &ServiceRun, secret: Option<(String, String)>) -> ServiceSpec {
    let (command, secrets) = match secret {
        Some((id, name)) => {
            let mut command = vec![
                "/bin/sh".to_owned(),
                "-c".to_owned(),
                format!(". {ENV_FILE} && exec \"$@\""),
                "rivetr-env".to_owned(),
            ];
            command.extend(run.command.iter().cloned());
            let file = TaskSpecContainerSpecFile {
                name: Some("rivetr-env".to_owned()),
                uid: Some("0".to_owned()),
                gid: Some("0".to_owned()),
                // Readable by the app's user, whoever the image runs as; the file lives in
                // the task's memory-backed secrets mount only.
                mode: Some(0o444),
            };
            (
                Some(command),
                Some(vec![TaskSpecContainerSpecSecrets {
                    file: Some(file),
                    secret_id: Some(id),
                    secret_name: Some(name),
                }]),
            )
        }
        None => (None, None),
    };
    let placement = TaskSpecPlacement {
        constraints: (!run.placement.constraints.is_empty())
            .then(|| run.placement.constraints.clone()),
        preferences: (!run.placement.spread.is_empty()).then(|| {
            run.placement
                .spread
                .iter()
                .map(|s| TaskSpecPlacementPreferences {
                    spread: Some(TaskSpecPlacementSpread {
                        spread_descriptor: Some(s.clone()),
                    }),
                })
                .collect()
        }),
        max_replicas: (run.placement.max_per_node > 0).then_some(run.placement.max_per_node as i64),
        ..TaskSpecPlacement::default()
    };
    ServiceSpec {
        name: Some(run.name.clone()),
        labels: Some(run.labels.clone().into_iter().collect()),
        mode: Some(ServiceSpecMode {
            replicated: Some(ServiceSpecModeReplicated {
                replicas: Some(i64::from(run.replicas)),
            }),
            ..ServiceSpecMode::default()
        }),
        task_template: Some(TaskSpec {
            container_spec: Some(TaskSpecContainerSpec {
                image: Some(run.image.clone()),
                command,
                secrets,
                stop_grace_period: Some(run.stop_grace.as_nanos() as i64),
                ..TaskSpecContainerSpec::default()
            }),
            resources: Some(TaskSpecResources {
                limits: Some(Limit {
                    nano_cpus: run.limits.cpus.map(|c| (c * 1e9) as i64),
                    memory_bytes: run.limits.memory_bytes.map(|m| m as i64),
                    pids: run.limits.pids,
                }),
                ..TaskSpecResources::default()
            }),
            restart_policy: Some(TaskSpecRestartPolicy {
                condition: Some(TaskSpecRestartPolicyConditionEnum::ANY),
                delay: Some(Duration::from_secs(1).as_nanos() as i64),
                ..TaskSpecRestartPolicy::default()
            }),
            placement: Some(placement),
            ..TaskSpec::default()
        }),
        endpoint_spec: Some(EndpointSpec {
            mode: Some(EndpointSpecModeEnum::DNSRR),
            ports: Some(vec![EndpointPortConfig {
                target_port: Some(i64::from(run.port)),
                publish_mode: Some(EndpointPortConfigPublishModeEnum::HOST),
                ..EndpointPortConfig::default()
            }]),
        }),
        ..ServiceSpec::default()
    }
}

fn task_view(t: TaskDoc, nodes: &HashMap<&str, &NodeView>) -> TaskView {
    let node = nodes.get(t.node_id.as_str());
    let published_port = t
        .status
        .port_status
        .ports
        .iter()
        .find_map(|p| u16::try_from(p.published_port).ok().filter(|p| *p != 0));
    TaskView {
        node_addr: node.and_then(|n| n.addr),
        node_ready: node.is_some_and(|n| n.state == "ready"),
        id: t.id,
        service_id: t.service_id,
        slot: t.slot,
        node_id: t.node_id,
        state: t.status.state,
        desired_state: t.desired_state,
        published_port,
        message: t.status.message,
        error: t.status.err.filter(|e| !e.is_empty()),
        exit_code: t.status.container_status.exit_code,
        container_id: t
            .status
            .container_status
            .container_id
            .filter(|c| !c.is_empty()),
        updated_at: t.updated_at,
    }
}

fn node_view(n: NodeDoc) -> NodeView {
    // A manager may report 0.0.0.0 as its address; its manager address is the real one.
    let status_addr = n
        .status
        .addr
        .parse::<IpAddr>()
        .ok()
        .filter(|a| !a.is_unspecified());
    let manager_addr = n.manager_status.as_ref().and_then(|m| {
        m.addr
            .parse::<SocketAddr>()
            .ok()
            .map(|a| a.ip())
            .filter(|a| !a.is_unspecified())
    });
    NodeView {
        hostname: n.description.hostname,
        role: n.spec.role,
        state: n.status.state,
        availability: n.spec.availability,
        addr: status_addr.or(manager_addr),
        labels: n.spec.labels,
        engine_version: n.description.engine.engine_version,
        leader: n.manager_status.is_some_and(|m| m.leader),
        id: n.id,
    }
}

// The parts of the engine's answers Rivetr reads.

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
struct InfoDoc {
    swarm: SwarmDoc,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
struct SwarmDoc {
    #[serde(rename = "NodeID")]
    node_id: String,
    local_node_state: String,
    control_available: bool,
    nodes: u32,
    managers: u32,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
struct ImageDoc {
    config: ImageConfigDoc,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
struct ImageConfigDoc {
    entrypoint: Option<Vec<String>>,
    cmd: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
struct IdDoc {
    #[serde(rename = "ID")]
    id: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
struct ServiceDoc {
    #[serde(rename = "ID")]
    id: String,
    spec: ServiceSpecDoc,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
struct ServiceSpecDoc {
    name: String,
    labels: BTreeMap<String, String>,
    mode: ModeDoc,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
struct ModeDoc {
    replicated: Option<ReplicatedDoc>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
struct ReplicatedDoc {
    replicas: u64,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
struct TaskDoc {
    #[serde(rename = "ID")]
    id: String,
    #[serde(rename = "ServiceID")]
    service_id: String,
    slot: Option<u64>,
    #[serde(rename = "NodeID")]
    node_id: String,
    status: TaskStatusDoc,
    desired_state: String,
    updated_at: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
struct TaskStatusDoc {
    state: String,
    message: String,
    err: Option<String>,
    container_status: ContainerStatusDoc,
    port_status: PortStatusDoc,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
struct ContainerStatusDoc {
    #[serde(rename = "ContainerID")]
    container_id: Option<String>,
    exit_code: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
struct PortStatusDoc {
    ports: Vec<PortDoc>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
struct PortDoc {
    published_port: i64,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
struct NodeDoc {
    #[serde(rename = "ID")]
    id: String,
    version: VersionDoc,
    spec: NodeSpecDoc,
    description: NodeDescriptionDoc,
    status: NodeStatusDoc,
    manager_status: Option<ManagerStatusDoc>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
struct VersionDoc {
    index: u64,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
struct NodeSpecDoc {
    name: Option<String>,
    labels: BTreeMap<String, String>,
    role: String,
    availability: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
struct NodeDescriptionDoc {
    hostname: String,
    engine: EngineDoc,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
struct EngineDoc {
    engine_version: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
struct NodeStatusDoc {
    state: String,
    addr: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
struct ManagerStatusDoc {
    leader: bool,
    addr: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_digest_is_read_from_the_last_push_line() {
        let d = format!("sha256:{}", "a".repeat(64));
        assert_eq!(
            digest_in(&format!("42: digest: {d} size: 527")),
            Some(d.as_str())
        );
        assert_eq!(digest_in("Pushed"), None);
        assert_eq!(digest_in("x: digest: sha256:short size: 1"), None);
    }

    #[test]
    fn env_values_are_quoted_so_the_shell_never_reads_them() {
        let file = env_file(&[
            ("A".to_owned(), "it's $HOME `x`".to_owned()),
            ("B".to_owned(), "line\nbreak".to_owned()),
        ]);
        assert_eq!(
            file,
            "export A='it'\\''s $HOME `x`'\nexport B='line\nbreak'\n"
        );
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("{file}printf '%s|%s' \"$A\" \"$B\""))
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8(out.stdout).unwrap(),
            "it's $HOME `x`|line\nbreak"
        );
    }

    #[test]
    fn a_service_spec_keeps_env_values_out_and_publishes_in_host_mode() {
        let run = ServiceRun {
            name: "s".to_owned(),
            image: "r/a@sha256:x".to_owned(),
            labels: BTreeMap::new(),
            replicas: 2,
            port: 8080,
            env: vec![("TOKEN".to_owned(), "hunter2".to_owned())],
            command: vec!["httpd".to_owned(), "-f".to_owned()],
            limits: Limits::default(),
            placement: SwarmPlacement {
                constraints: vec!["node.role==worker".to_owned()],
                max_per_node: 1,
                spread: Vec::new(),
            },
            stop_grace: Duration::from_secs(5),
        };
        let spec = service_spec(&run, Some(("id".to_owned(), "s-env".to_owned())));
        let json = serde_json::to_string(&spec).unwrap();
        assert!(!json.contains("hunter2"), "{json}");
        assert!(!format!("{run:?}").contains("hunter2"));
        assert!(json.contains("\"PublishMode\":\"host\""), "{json}");
        assert!(json.contains("\"MaxReplicas\":1"), "{json}");
        let c = spec.task_template.unwrap().container_spec.unwrap();
        assert_eq!(
            c.command.unwrap()[4..],
            ["httpd".to_owned(), "-f".to_owned()]
        );
    }
}
