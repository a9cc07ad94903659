//! A database's engine objects: its own internal network, its data volume and its
//! container, named after the installation and the database so two installations sharing
//! an engine never touch each other's. Bringing one up waits until the server accepts
//! connections (probed from inside, see [`DbKind::ready_probe`]), since the official images
//! initialise a fresh volume before they listen.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use futures_util::StreamExt;

use super::LABEL_DATABASE;
use super::kinds::{Credentials, DbKind};
use crate::runtime::{
    ContainerInfo, ContainerRuntime, ContainerState, LABEL_INSTANCE, Limits, LogOptions,
    NetworkAttach, NetworkSpec, Networks, RestartPolicy, RunSpec, RuntimeError, VolumeInfo,
    VolumeMount,
};

/// How long a database may take to shut down cleanly before it is killed: a database
/// flushes on SIGTERM, and a kill means crash recovery on the next start.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// Everything needed to run one database.
#[derive(Debug, Clone)]
pub struct DatabaseSpec {
    pub name: String,
    pub kind: DbKind,
    pub image: String,
    pub credentials: Credentials,
    pub limits: Limits,
    /// The installation's id (see [`crate::db::Db::instance_id`]).
    pub instance: String,
}

/// An app network the database joins, at its fixed address there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkedNetwork {
    pub network: String,
    pub address: Ipv4Addr,
}

/// The engine names of one database's objects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names {
    pub container: String,
    pub volume: String,
    pub network: String,
    /// The network its public port reaches it on, while it has one.
    pub public_network: String,
}

impl Names {
    pub fn of(instance: &str, database: &str) -> Names {
        let base = format!("rivetr-{instance}-db-{database}");
        Names {
            container: base.clone(),
            volume: format!("{base}-data"),
            public_network: format!("{base}-public"),
            network: base,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LifecycleError {
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// The server did not accept connections in time; the end of its output says why.
    #[error("database {name} did not accept connections within {} s{}", waited.as_secs(), last_lines(output))]
    NotReady {
        name: String,
        waited: Duration,
        output: Vec<String>,
    },
    /// The container ended while it was expected to start serving.
    #[error("database {name} stopped while starting (exit code {}){}", exit_code.map(|c| c.to_string()).unwrap_or_else(|| "unknown".into()), last_lines(output))]
    Exited {
        name: String,
        exit_code: Option<i64>,
        output: Vec<String>,
    },
}

fn last_lines(output: &[String]) -> String {
    if output.is_empty() {
        return String::new();
    }
    format!("; its last output:\n  {}", output.join("\n  "))
}

impl DatabaseSpec {
    pub fn names(&self) -> Names {
        Names::of(&self.instance, &self.name)
    }

    pub fn labels(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            (LABEL_INSTANCE.to_owned(), self.instance.clone()),
            (LABEL_DATABASE.to_owned(), self.name.clone()),
        ])
    }

    fn run_spec(&self, links: &[LinkedNetwork]) -> RunSpec {
        let names = self.names();
        RunSpec {
            image: self.image.clone(),
            name: names.container,
            cmd: self.kind.container_cmd(&self.credentials),
            env: self.kind.container_env(&self.credentials),
            labels: self.labels(),
            port: None,
            limits: self.limits,
            restart: RestartPolicy::UnlessStopped,
            stop_timeout: Some(STOP_TIMEOUT),
            volumes: vec![VolumeMount {
                volume: names.volume,
                target: self.kind.data_path().to_owned(),
            }],
            networks: Networks::Attach {
                primary: NetworkAttach {
                    network: names.network,
                    ipv4: None,
                },
                extra: links
                    .iter()
                    .map(|l| NetworkAttach {
                        network: l.network.clone(),
                        ipv4: Some(l.address),
                    })
                    .collect(),
            },
            extra_hosts: Vec::new(),
        }
    }
}

/// The network a database's public port reaches it on: not internal, so the host reaches
/// the database's address on it (Rivetr forwards the port there, see `public.rs`).
pub fn public_network(spec: &DatabaseSpec) -> NetworkSpec {
    NetworkSpec {
        name: spec.names().public_network,
        internal: false,
        labels: spec.labels(),
    }
}

/// Creates what is missing (network, volume, container), starts the container if it is not
/// running, and waits up to `within` for the server to accept connections. An existing
/// volume is reused as it is: the image then skips its initialisation.
pub async fn bring_up(
    rt: &dyn ContainerRuntime,
    spec: &DatabaseSpec,
    links: &[LinkedNetwork],
    within: Duration,
) -> Result<ContainerInfo, LifecycleError> {
    let names = spec.names();
    rt.ensure_network(&NetworkSpec {
        name: names.network.clone(),
        internal: true,
        labels: spec.labels(),
    })
    .await?;
    rt.ensure_volume(&names.volume, &spec.labels()).await?;
    let info = match rt.inspect(&names.container).await {
        Ok(existing) if existing.state == ContainerState::Running => existing,
        Ok(existing) => {
            rt.start(&existing.id).await?;
            rt.inspect(&existing.id).await?
        }
        Err(e) if e.is_not_found() => {
            rt.ensure_image(&spec.image).await?;
            rt.run(&spec.run_spec(links)).await?
        }
        Err(e) => return Err(e.into()),
    };
    wait_ready(rt, spec, &info.id, within).await?;
    Ok(rt.inspect(&info.id).await?)
}

/// Replaces the container of `old` by one of `new` (another image or other limits) on the
/// same volume and networks; with `start`, waits until it accepts connections. When the new
/// one does not come up, the old one is put back and the new one's failure returned.
pub async fn recreate(
    rt: &dyn ContainerRuntime,
    old: &DatabaseSpec,
    new: &DatabaseSpec,
    links: &[LinkedNetwork],
    start: bool,
    within: Duration,
) -> Result<(), LifecycleError> {
    let names = old.names();
    replace_container(rt, &names).await?;
    if !start {
        // Created on the next start, from the new spec.
        return Ok(());
    }
    let Err(failed) = bring_up(rt, new, links, within).await else {
        return Ok(());
    };
    tracing::warn!(database = %new.name, error = %failed, "the updated database did not come up; putting the previous one back");
    replace_container(rt, &names).await?;
    bring_up(rt, old, links, within).await?;
    Err(failed)
}

/// Stops the container cleanly and removes it, keeping its volume and network.
async fn replace_container(rt: &dyn ContainerRuntime, names: &Names) -> Result<(), LifecycleError> {
    stop(rt, names).await?;
    match rt.remove(&names.container).await {
        Err(e) if !e.is_not_found() => Err(e.into()),
        _ => Ok(()),
    }
}

/// Probes the server until it accepts connections.
pub async fn wait_ready(
    rt: &dyn ContainerRuntime,
    spec: &DatabaseSpec,
    container: &str,
    within: Duration,
) -> Result<(), LifecycleError> {
    let probe = spec.kind.ready_probe(&spec.credentials);
    let started = Instant::now();
    loop {
        let info = rt.inspect(container).await?;
        if matches!(info.state, ContainerState::Exited | ContainerState::Dead) {
            return Err(LifecycleError::Exited {
                name: spec.name.clone(),
                exit_code: info.exit_code,
                output: tail(rt, container).await,
            });
        }
        if let Ok(out) = rt.exec(container, &probe, Duration::from_secs(10)).await
            && out.exit_code == 0
        {
            return Ok(());
        }
        if started.elapsed() >= within {
            return Err(LifecycleError::NotReady {
                name: spec.name.clone(),
                waited: within,
                output: tail(rt, container).await,
            });
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The container's last lines of output, for an error.
async fn tail(rt: &dyn ContainerRuntime, container: &str) -> Vec<String> {
    let options = LogOptions {
        tail: Some(15),
        ..LogOptions::default()
    };
    rt.logs(container, options)
        .filter_map(|l| std::future::ready(l.ok().map(|l| l.line)))
        .collect()
        .await
}

/// Stops the container, giving the server [`STOP_TIMEOUT`] to shut down cleanly. A missing
/// or stopped container is not an error.
pub async fn stop(rt: &dyn ContainerRuntime, names: &Names) -> Result<(), LifecycleError> {
    match rt.stop(&names.container, STOP_TIMEOUT).await {
        Err(e) if e.is_not_found() => Ok(()),
        other => Ok(other?),
    }
}

/// What [`remove`] left in place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Removed {
    /// The data volume, kept unless its removal was asked for.
    pub kept_volume: Option<VolumeInfo>,
}

/// Removes the container and the database's own network, and the volume when `volumes`
/// says so. The container is stopped cleanly first.
pub async fn remove(
    rt: &dyn ContainerRuntime,
    names: &Names,
    volumes: bool,
) -> Result<Removed, LifecycleError> {
    stop(rt, names).await?;
    rt.remove(&names.container).await?;
    rt.remove_network(&names.network).await?;
    rt.remove_network(&names.public_network).await?;
    if volumes {
        rt.remove_volume(&names.volume).await?;
        return Ok(Removed { kept_volume: None });
    }
    Ok(Removed {
        kept_volume: rt.inspect_volume(&names.volume).await?,
    })
}
