//! [`Databases`]: managed databases as the API sees them. It keeps the `databases` rows and
//! the engine objects in step: a database is created in the engine before its creation is
//! reported, and one that cannot come up leaves neither a row nor a container behind.
//! Operations on one database are serialised; different databases proceed in parallel.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use serde::Serialize;

use super::kinds::{Credentials, DbKind};
use super::lifecycle::{self, DatabaseSpec, LifecycleError, LinkedNetwork, Names};
use super::links;
use super::public::PublicPorts;
use crate::config::Config;
use crate::db::databases::{DatabaseRow, NewDatabase};
use crate::db::{Db, DbError};
use crate::runtime::{ContainerRuntime, ContainerState, Limits, SharedDetection};
use crate::secrets::{Purpose, Secrets, SecretsError};

/// What can go wrong with a managed database.
#[derive(Debug, thiserror::Error)]
pub enum DatabaseError {
    #[error("no database named `{0}`")]
    NotFound(String),
    #[error("a database named `{0}` already exists")]
    Exists(String),
    #[error("no app named `{0}`")]
    AppNotFound(String),
    /// Linked apps hold it; the message names them.
    #[error("{0}")]
    InUse(String),
    #[error("{field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    #[error("{0}")]
    NoRuntime(String),
    #[error(transparent)]
    Lifecycle(#[from] LifecycleError),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Secrets(#[from] SecretsError),
}

/// A request to create a database.
#[derive(Debug, Clone)]
pub struct NewDatabaseRequest {
    pub name: String,
    pub kind: DbKind,
    /// `None`: the engine's default version.
    pub version: Option<String>,
    pub memory_bytes: Option<u64>,
    pub cpus: Option<f64>,
}

/// A change to a database: what is `None` stays as it is.
#[derive(Debug, Clone, Default)]
pub struct DatabaseUpdate {
    /// `Some(None)` removes the limit.
    pub memory_bytes: Option<Option<u64>>,
    pub cpus: Option<Option<f64>>,
    /// Another image tag of the same major version.
    pub version: Option<String>,
    /// `Some(None)` closes the public port.
    pub public_port: Option<Option<u16>>,
}

/// A database as the API shows it. No password: apps get the connection URL through a
/// link, never through an answer.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ManagedDatabaseView {
    pub name: String,
    pub engine: DbKind,
    pub version: String,
    pub image: String,
    /// `running`, `stopped`, `starting` (running, not yet accepting connections), or
    /// `missing` (no container in the engine).
    pub status: String,
    /// Stopped by request: not brought up when Rivetr starts.
    pub stopped: bool,
    /// The user apps connect as (none for Redis).
    pub username: Option<String>,
    /// The database created for apps (none for Redis).
    pub database: Option<String>,
    pub port: u16,
    pub container: String,
    /// The named volume holding its data.
    pub volume: String,
    /// Its own internal network.
    pub network: String,
    pub memory_bytes: Option<u64>,
    pub cpus: Option<f64>,
    /// The port administrators' tools reach it on (off: none).
    pub public_port: Option<u16>,
    /// Where Rivetr listens for it now (`[databases] public_address` and the port); none
    /// while the port could not be opened.
    pub public_address: Option<String>,
    pub created_at: String,
}

/// One link from an app to a database.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct LinkView {
    pub database: String,
    pub engine: DbKind,
    /// The variable holding the connection URL.
    pub env: String,
    /// The host name the app reaches the database by (an `/etc/hosts` entry).
    pub host: String,
    /// The database's address on the app's network.
    pub address: String,
}

/// What a deletion left in place.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DeletedDatabase {
    pub name: String,
    /// The data volume kept (unless `?volumes=true`), with where the engine keeps its files.
    pub kept_volume: Option<KeptVolume>,
    /// Its good backups, kept where they are stored (unless `?backups=true`):
    /// `destination: location` each. They leave Rivetr's lists with the database.
    pub kept_backups: Vec<String>,
    pub message: String,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct KeptVolume {
    pub name: String,
    pub mountpoint: String,
}

/// The managed databases of this installation.
#[derive(Clone)]
pub struct Databases {
    db: Db,
    secrets: Arc<Secrets>,
    runtime: SharedDetection,
    config: Arc<ArcSwap<Config>>,
    locks: Arc<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>,
    public: PublicPorts,
}

impl Databases {
    pub fn new(
        db: Db,
        secrets: Arc<Secrets>,
        runtime: SharedDetection,
        config: Arc<ArcSwap<Config>>,
    ) -> Databases {
        Databases {
            db,
            secrets,
            runtime,
            config,
            locks: Arc::default(),
            public: PublicPorts::default(),
        }
    }

    pub(super) fn runtime(&self) -> Result<Arc<dyn ContainerRuntime>, DatabaseError> {
        let detection = self.runtime.load();
        detection
            .runtime
            .clone()
            .ok_or_else(|| DatabaseError::NoRuntime(detection.status.summary()))
    }

    pub(super) fn lock(&self, name: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.locks.lock().unwrap_or_else(|e| e.into_inner());
        Arc::clone(locks.entry(name.to_owned()).or_default())
    }

    pub(super) fn ready_within(&self) -> Duration {
        Duration::from_secs(self.config.load().databases.ready_timeout_seconds)
    }

    /// Creates a database and waits until it accepts connections.
    pub async fn create(
        &self,
        req: NewDatabaseRequest,
    ) -> Result<ManagedDatabaseView, DatabaseError> {
        validate(&req)?;
        let rt = self.runtime()?;
        let lock = self.lock(&req.name);
        let _held = lock.lock().await;
        let version = req
            .version
            .clone()
            .unwrap_or_else(|| req.kind.default_version().to_owned());
        let image = self
            .config
            .load()
            .databases
            .image(req.kind.as_str(), &version)
            .unwrap_or_else(|| req.kind.official_image(&version));
        let account = account_name(&req.name);
        let password = crate::secrets::random_hex_secret()?;
        let root_password = match req.kind {
            DbKind::Mariadb | DbKind::Mysql => Some(crate::secrets::random_hex_secret()?),
            _ => None,
        };
        let (secrets, name, engine) = (
            Arc::clone(&self.secrets),
            req.name.clone(),
            req.kind.as_str(),
        );
        let (pw, root, image_row, version_row, account_row) = (
            password.clone(),
            root_password.clone(),
            image.clone(),
            version.clone(),
            account.clone(),
        );
        let (memory_bytes, cpus) = (req.memory_bytes, req.cpus);
        let inserted = self
            .db
            .call(move |c| {
                let tx = c.transaction()?;
                if crate::db::databases::get_by_name(&tx, &name)?.is_some() {
                    return Ok(None);
                }
                let id = crate::db::databases::insert(
                    &tx,
                    &NewDatabase {
                        name: &name,
                        engine,
                        version: &version_row,
                        image: &image_row,
                        username: &account_row,
                        database_name: &account_row,
                        memory_bytes,
                        cpus,
                    },
                )?;
                let seal = |purpose, value: &crate::secrets::SecretString| {
                    secrets
                        .encrypt_str(purpose, value.expose())
                        .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))
                };
                let sealed = seal(Purpose::DatabasePassword { database_id: id }, &pw)?;
                let sealed_root = root
                    .as_ref()
                    .map(|r| seal(Purpose::DatabaseRootPassword { database_id: id }, r))
                    .transpose()?;
                crate::db::databases::set_passwords(&tx, id, &sealed, sealed_root.as_deref())?;
                tx.commit()?;
                Ok(Some(id))
            })
            .await?;
        let Some(id) = inserted else {
            return Err(DatabaseError::Exists(req.name));
        };
        let spec = DatabaseSpec {
            name: req.name.clone(),
            kind: req.kind,
            image,
            credentials: Credentials {
                user: account.clone(),
                password,
                root_password,
                database: account,
            },
            limits: Limits {
                memory_bytes: req.memory_bytes,
                cpus: req.cpus,
                pids: None,
            },
            instance: self.db.instance_id().to_owned(),
        };
        tracing::info!(database = %req.name, engine = %req.kind, image = %spec.image, "creating a database");
        if let Err(e) = lifecycle::bring_up(rt.as_ref(), &spec, &[], self.ready_within()).await {
            tracing::error!(database = %req.name, error = %e, "the new database did not come up; removing it");
            // A database that never came up holds no data: nothing of it is kept.
            if let Err(cleanup) = lifecycle::remove(rt.as_ref(), &spec.names(), true).await {
                tracing::warn!(database = %req.name, error = %cleanup, "cannot remove what the failed database left in the engine");
            }
            self.db
                .call(move |c| crate::db::databases::delete(c, id))
                .await?;
            return Err(e.into());
        }
        self.view(&req.name, true).await
    }

    pub async fn list(&self) -> Result<Vec<ManagedDatabaseView>, DatabaseError> {
        let rows = self.db.call(|c| crate::db::databases::list(c)).await?;
        let rt = self.runtime.load().runtime.clone();
        let mut views = Vec::with_capacity(rows.len());
        for row in rows {
            let status = match &rt {
                Some(rt) => container_status(rt.as_ref(), &self.names(&row), None).await,
                None => "unknown".to_owned(),
            };
            let mut view = view_of(&row, &self.names(&row), status);
            view.public_address = self.public.address(&row.name).map(|a| a.to_string());
            views.push(view);
        }
        Ok(views)
    }

    /// One database; with `probe`, a running one is asked whether it accepts connections.
    pub async fn view(
        &self,
        name: &str,
        probe: bool,
    ) -> Result<ManagedDatabaseView, DatabaseError> {
        let row = self.row(name).await?;
        let names = self.names(&row);
        let status = match self.runtime.load().runtime.clone() {
            Some(rt) => {
                let spec = probe.then(|| self.spec(&row)).transpose()?;
                container_status(rt.as_ref(), &names, spec.as_ref()).await
            }
            None => "unknown".to_owned(),
        };
        let mut view = view_of(&row, &names, status);
        view.public_address = self.public.address(&row.name).map(|a| a.to_string());
        Ok(view)
    }

    pub async fn stop(&self, name: &str) -> Result<ManagedDatabaseView, DatabaseError> {
        let rt = self.runtime()?;
        let lock = self.lock(name);
        let _held = lock.lock().await;
        let row = self.row(name).await?;
        let id = row.id;
        self.db
            .call(move |c| crate::db::databases::set_stopped(c, id, true))
            .await?;
        lifecycle::stop(rt.as_ref(), &self.names(&row)).await?;
        tracing::info!(database = %name, "database stopped");
        self.view(name, false).await
    }

    pub async fn start(&self, name: &str) -> Result<ManagedDatabaseView, DatabaseError> {
        let rt = self.runtime()?;
        let lock = self.lock(name);
        let _held = lock.lock().await;
        let row = self.row(name).await?;
        let id = row.id;
        self.db
            .call(move |c| crate::db::databases::set_stopped(c, id, false))
            .await?;
        let spec = self.spec(&row)?;
        let links = self.linked_networks(rt.as_ref(), &row).await?;
        lifecycle::bring_up(rt.as_ref(), &spec, &links, self.ready_within()).await?;
        tracing::info!(database = %name, "database started");
        self.view(name, true).await
    }

    /// Changes a database's limits or version (within its major version) by recreating its
    /// container on the same volume; a running database is restarted, and one whose new
    /// container does not come up is put back as it was, with the reason in the error.
    pub async fn update(
        &self,
        name: &str,
        update: DatabaseUpdate,
    ) -> Result<ManagedDatabaseView, DatabaseError> {
        let rt = self.runtime()?;
        let lock = self.lock(name);
        let _held = lock.lock().await;
        let mut row = self.row(name).await?;
        if let Some(port) = update.public_port {
            self.set_public_port(rt.as_ref(), &row, port).await?;
            row = self.row(name).await?;
        }
        let old = self.spec(&row)?;
        let mut new = old.clone();
        let mut version = row.version.clone();
        if let Some(v) = &update.version {
            check_version_change(old.kind, &row.version, v)?;
            new.image = self
                .config
                .load()
                .databases
                .image(old.kind.as_str(), v)
                .unwrap_or_else(|| old.kind.official_image(v));
            version = v.clone();
        }
        if let Some(memory) = update.memory_bytes {
            new.limits.memory_bytes = memory;
        }
        if let Some(cpus) = update.cpus {
            new.limits.cpus = cpus;
        }
        validate_limits(new.limits.memory_bytes, new.limits.cpus)?;
        if new.image == old.image && new.limits == old.limits {
            return self.view(name, true).await;
        }
        tracing::info!(database = %name, image = %new.image, memory = ?new.limits.memory_bytes, cpus = ?new.limits.cpus, "updating a database");
        let links = self.linked_networks(rt.as_ref(), &row).await?;
        lifecycle::recreate(
            rt.as_ref(),
            &old,
            &new,
            &links,
            !row.stopped,
            self.ready_within(),
        )
        .await?;
        let (id, image, limits) = (row.id, new.image.clone(), new.limits);
        self.db
            .call(move |c| {
                crate::db::databases::set_runtime(
                    c,
                    id,
                    &version,
                    &image,
                    limits.memory_bytes,
                    limits.cpus,
                )
            })
            .await?;
        self.view(name, true).await
    }

    /// Opens the database's public port `port` on `[databases] public_address`, or closes
    /// it (`None`). The database joins (or leaves) the network the port reaches it on
    /// without a restart.
    async fn set_public_port(
        &self,
        rt: &dyn ContainerRuntime,
        row: &DatabaseRow,
        port: Option<u16>,
    ) -> Result<(), DatabaseError> {
        let names = self.names(row);
        let Some(port) = port else {
            self.public.close(&row.name);
            match rt
                .disconnect_network(&names.public_network, &names.container)
                .await
            {
                Err(e) if !e.is_not_found() => {
                    tracing::warn!(database = %row.name, error = %e, "cannot take the database off its public network");
                }
                _ => {}
            }
            rt.remove_network(&names.public_network)
                .await
                .map_err(LifecycleError::from)?;
            return self.store_public_port(row, None).await;
        };
        let invalid = |message: String| DatabaseError::Invalid {
            field: "public_port",
            message,
        };
        if port < 1024 {
            return Err(invalid(format!(
                "{port} is a privileged port; pick one from 1024 up"
            )));
        }
        if self.rootless() {
            return Err(invalid(
                "a public port needs rootful Podman or Docker: on rootless Podman the \
                 database's networks live in the user's own network namespace, which Rivetr \
                 cannot reach; use `podman unshare --rootless-netns` or an SSH tunnel to an \
                 app instead"
                    .to_owned(),
            ));
        }
        let target = self.public_target(rt, row).await?;
        let listen = std::net::SocketAddr::new(self.config.load().databases.public_address, port);
        let kind = self.kind(row)?;
        let to = std::net::SocketAddr::new(target.0.into(), kind.port());
        // The port first: one that is taken changes nothing.
        self.public
            .open(&row.name, listen, to)
            .await
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::AddrInUse => {
                    DatabaseError::InUse(format!("{listen} is taken by another program"))
                }
                _ => invalid(format!("cannot listen on {listen}: {e}")),
            })?;
        if row.public_port.is_none() {
            match rt
                .connect_network(&names.public_network, &names.container, Some(target.0))
                .await
            {
                // Not created yet (stopped and removed): it joins when it is brought up.
                Err(e) if !e.is_not_found() => {
                    self.public.close(&row.name);
                    return Err(LifecycleError::from(e).into());
                }
                _ => {}
            }
        }
        if let Some(previous) = row.public_port
            && previous != port
        {
            tracing::info!(database = %row.name, previous, port, "public port moved");
        }
        self.store_public_port(row, Some(port)).await
    }

    async fn store_public_port(
        &self,
        row: &DatabaseRow,
        port: Option<u16>,
    ) -> Result<(), DatabaseError> {
        let id = row.id;
        self.db
            .call(move |c| crate::db::databases::set_public_port(c, id, port))
            .await?;
        Ok(())
    }

    /// The database's public network, created when missing, and its fixed address there.
    async fn public_target(
        &self,
        rt: &dyn ContainerRuntime,
        row: &DatabaseRow,
    ) -> Result<(std::net::Ipv4Addr, String), DatabaseError> {
        let spec = self.spec(row)?;
        let network = rt
            .ensure_network(&lifecycle::public_network(&spec))
            .await
            .map_err(LifecycleError::from)?;
        let address = network
            .fixed_address(0)
            .ok_or_else(|| DatabaseError::Invalid {
                field: "public_port",
                message: format!("network {} has no IPv4 /24 subnet", network.name),
            })?;
        Ok((address, network.name))
    }

    fn rootless(&self) -> bool {
        matches!(
            &self.runtime.load().status,
            crate::runtime::RuntimeStatus::Ok { info } if info.rootless
        )
    }

    /// The database's output (its container's stdout and stderr).
    pub async fn logs(
        &self,
        name: &str,
        options: crate::runtime::LogOptions,
    ) -> Result<crate::runtime::LogStream, DatabaseError> {
        let rt = self.runtime()?;
        let row = self.row(name).await?;
        Ok(rt.logs(&self.names(&row).container, options))
    }

    pub async fn restart(&self, name: &str) -> Result<ManagedDatabaseView, DatabaseError> {
        self.stop(name).await?;
        self.start(name).await
    }

    /// Removes the database's container and network, and its volume when `volumes`.
    pub async fn delete(
        &self,
        name: &str,
        volumes: bool,
    ) -> Result<DeletedDatabase, DatabaseError> {
        let rt = self.runtime()?;
        let lock = self.lock(name);
        let _held = lock.lock().await;
        let row = self.row(name).await?;
        let id = row.id;
        let linked = self
            .db
            .call(move |c| crate::db::databases::links_to_database(c, id))
            .await?;
        if !linked.is_empty() {
            let apps: Vec<&str> = linked.iter().map(|l| l.app.as_str()).collect();
            return Err(DatabaseError::InUse(format!(
                "database {name} is linked to {}; remove the links first (DELETE /api/apps/{{app}}/links/{name})",
                apps.join(", ")
            )));
        }
        self.public.close(name);
        let removed = lifecycle::remove(rt.as_ref(), &self.names(&row), volumes).await?;
        self.db
            .call(move |c| crate::db::databases::delete(c, id))
            .await?;
        let kept_volume = removed.kept_volume.map(|v| KeptVolume {
            name: v.name,
            mountpoint: v.mountpoint,
        });
        let message = match &kept_volume {
            Some(v) => format!(
                "database {name} deleted; its data is kept in volume {} ({}); delete with ?volumes=true to remove it too",
                v.name, v.mountpoint
            ),
            None => format!("database {name} deleted with its data"),
        };
        tracing::info!(database = %name, volumes, "{message}");
        Ok(DeletedDatabase {
            name: name.to_owned(),
            kept_volume,
            kept_backups: Vec::new(),
            message,
        })
    }

    /// Brings up every database not stopped by request (at startup: an engine restarted
    /// without its containers, or a machine rebooted). Failures are logged, not fatal.
    pub async fn reconcile(&self) {
        let Ok(rt) = self.runtime() else {
            return;
        };
        let rows = match self.db.call(|c| crate::db::databases::list(c)).await {
            Ok(rows) => rows,
            Err(e) => {
                tracing::error!(error = %e, "cannot list the databases to bring them up");
                return;
            }
        };
        for row in rows {
            let lock = self.lock(&row.name);
            let _held = lock.lock().await;
            if let Err(e) = self.reconcile_one(rt.as_ref(), &row).await {
                tracing::error!(database = %row.name, error = %e, "cannot bring the database up");
            }
        }
    }

    /// Brings one database up on its linked apps' networks, unless stopped by request.
    async fn reconcile_one(
        &self,
        rt: &dyn ContainerRuntime,
        row: &DatabaseRow,
    ) -> Result<(), DatabaseError> {
        if !row.stopped {
            let spec = self.spec(row)?;
            let links = self.linked_networks(rt, row).await?;
            lifecycle::bring_up(rt, &spec, &links, self.ready_within()).await?;
        }
        Ok(())
    }

    /// Opens the public ports of the databases that have one (at startup, before READY: it
    /// only binds sockets). A database whose container is gone joins the port's network when
    /// [`Databases::reconcile`] brings it up.
    pub async fn open_public_ports(&self) {
        let Ok(rt) = self.runtime() else {
            return;
        };
        let rows = match self.db.call(|c| crate::db::databases::list(c)).await {
            Ok(rows) => rows,
            Err(e) => {
                tracing::error!(error = %e, "cannot list the databases to open their public ports");
                return;
            }
        };
        for row in rows {
            let Some(port) = row.public_port else {
                continue;
            };
            if let Err(e) = self.set_public_port(rt.as_ref(), &row, Some(port)).await {
                tracing::error!(database = %row.name, port, error = %e, "cannot open the database's public port");
            }
        }
    }

    /// Links `app` to the database `database`: the app's containers get its URL in `env`
    /// from their next start. The database joins the app's network now.
    pub async fn link(
        &self,
        app: &str,
        database: &str,
        env: &str,
    ) -> Result<LinkView, DatabaseError> {
        crate::limits::variable_name(env).map_err(|e| DatabaseError::Invalid {
            field: "env",
            message: e.to_string(),
        })?;
        let rt = self.runtime()?;
        let lock = self.lock(database);
        let _held = lock.lock().await;
        let row = self.row(database).await?;
        let app_row = self.app(app).await?;
        let app_id = app_row.id;
        let existing = self
            .db
            .call(move |c| crate::db::databases::links_of_app(c, app_id))
            .await?;
        if existing.iter().any(|l| l.database_id == row.id) {
            return Err(DatabaseError::InUse(format!(
                "app {app} is already linked to database {database}"
            )));
        }
        if let Some(clash) = existing.iter().find(|l| l.env == env) {
            return Err(DatabaseError::InUse(format!(
                "app {app} already has {env} from its link to database {}",
                clash.database
            )));
        }
        let network = rt
            .ensure_network(&links::app_network(self.db.instance_id(), app))
            .await
            .map_err(LifecycleError::from)?;
        let used: Vec<String> = existing.iter().map(|l| l.address.clone()).collect();
        let address = (0..=120)
            .filter_map(|k| network.fixed_address(k))
            .find(|a| !used.contains(&a.to_string()))
            .ok_or_else(|| DatabaseError::InUse(format!("app {app} has too many links")))?;
        let names = self.names(&row);
        match rt
            .connect_network(&network.name, &names.container, Some(address))
            .await
        {
            Ok(()) => {}
            // Not created yet (stopped and removed): it joins when it is brought up.
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(LifecycleError::from(e).into()),
        }
        let (db_id, env_owned, addr) = (row.id, env.to_owned(), address.to_string());
        self.db
            .call(move |c| crate::db::databases::insert_link(c, app_id, db_id, &env_owned, &addr))
            .await?;
        tracing::info!(app, database, env, %address, "linked an app to a database; it applies at the app's next deployment");
        Ok(LinkView {
            database: database.to_owned(),
            engine: row.engine.parse().unwrap_or(DbKind::Postgres),
            env: env.to_owned(),
            host: database.to_owned(),
            address: address.to_string(),
        })
    }

    /// The app's links.
    pub async fn links(&self, app: &str) -> Result<Vec<LinkView>, DatabaseError> {
        let app_row = self.app(app).await?;
        let app_id = app_row.id;
        let rows = self
            .db
            .call(move |c| {
                let links = crate::db::databases::links_of_app(c, app_id)?;
                let mut out = Vec::new();
                for l in links {
                    let engine = crate::db::databases::get_by_name(c, &l.database)?
                        .map(|d| d.engine)
                        .unwrap_or_default();
                    out.push((l, engine));
                }
                Ok(out)
            })
            .await?;
        Ok(rows
            .into_iter()
            .map(|(l, engine)| LinkView {
                host: l.database.clone(),
                database: l.database,
                engine: engine.parse().unwrap_or(DbKind::Postgres),
                env: l.env,
                address: l.address,
            })
            .collect())
    }

    /// Removes a link; the database leaves the app's network now, the variables go at the
    /// app's next deployment.
    pub async fn unlink(&self, app: &str, database: &str) -> Result<(), DatabaseError> {
        let lock = self.lock(database);
        let _held = lock.lock().await;
        let row = self.row(database).await?;
        let app_row = self.app(app).await?;
        let (app_id, db_id) = (app_row.id, row.id);
        let removed = self
            .db
            .call(move |c| crate::db::databases::delete_link(c, app_id, db_id))
            .await?;
        if !removed {
            return Err(DatabaseError::NotFound(format!(
                "{database}` linked to app `{app}"
            )));
        }
        if let Some(rt) = self.runtime.load().runtime.clone() {
            let network = links::app_network_name(self.db.instance_id(), app);
            if let Err(e) = rt
                .disconnect_network(&network, &self.names(&row).container)
                .await
                && !e.is_not_found()
            {
                tracing::warn!(app, database, error = %e, "cannot take the database off the app's network");
            }
        }
        Ok(())
    }

    /// Before an app is deleted: its links go and its databases leave its network.
    pub async fn forget_app(&self, app: &str) -> Result<(), DatabaseError> {
        let Ok(app_row) = self.app(app).await else {
            return Ok(());
        };
        let app_id = app_row.id;
        let links = self
            .db
            .call(move |c| crate::db::databases::links_of_app(c, app_id))
            .await?;
        for link in links {
            self.unlink(app, &link.database).await?;
        }
        Ok(())
    }

    /// After an app is deleted: its network goes (its containers are gone by then).
    pub async fn remove_app_network(&self, app: &str) {
        if let Some(rt) = self.runtime.load().runtime.clone() {
            let network = links::app_network_name(self.db.instance_id(), app);
            if let Err(e) = rt.remove_network(&network).await {
                tracing::warn!(app, error = %e, "cannot remove the app's network");
            }
        }
    }

    /// The app networks the database must be on, each created if missing.
    pub(super) async fn linked_networks(
        &self,
        rt: &dyn ContainerRuntime,
        row: &DatabaseRow,
    ) -> Result<Vec<LinkedNetwork>, DatabaseError> {
        let id = row.id;
        let links = self
            .db
            .call(move |c| crate::db::databases::links_to_database(c, id))
            .await?;
        let mut out = Vec::with_capacity(links.len());
        for link in links {
            let spec = links::app_network(self.db.instance_id(), &link.app);
            rt.ensure_network(&spec)
                .await
                .map_err(LifecycleError::from)?;
            let address = link.address.parse().map_err(|_| DatabaseError::Invalid {
                field: "address",
                message: format!("stored address {} is not IPv4", link.address),
            })?;
            out.push(LinkedNetwork {
                network: spec.name,
                address,
            });
        }
        if row.public_port.is_some() {
            let (address, network) = self.public_target(rt, row).await?;
            out.push(LinkedNetwork { network, address });
        }
        Ok(out)
    }

    async fn app(&self, name: &str) -> Result<crate::db::apps::App, DatabaseError> {
        let owned = name.to_owned();
        self.db
            .call(move |c| crate::db::apps::get_by_name(c, &owned))
            .await?
            .ok_or_else(|| DatabaseError::AppNotFound(name.to_owned()))
    }

    pub(super) async fn row(&self, name: &str) -> Result<DatabaseRow, DatabaseError> {
        let owned = name.to_owned();
        self.db
            .call(move |c| crate::db::databases::get_by_name(c, &owned))
            .await?
            .ok_or_else(|| DatabaseError::NotFound(name.to_owned()))
    }

    pub(super) fn kind(&self, row: &DatabaseRow) -> Result<DbKind, DatabaseError> {
        row.engine
            .parse()
            .map_err(|message| DatabaseError::Invalid {
                field: "engine",
                message,
            })
    }

    pub(super) fn names(&self, row: &DatabaseRow) -> Names {
        Names::of(self.db.instance_id(), &row.name)
    }

    /// The full spec of a stored database, its passwords opened.
    pub(super) fn spec(&self, row: &DatabaseRow) -> Result<DatabaseSpec, DatabaseError> {
        let kind: DbKind = row
            .engine
            .parse()
            .map_err(|message| DatabaseError::Invalid {
                field: "engine",
                message,
            })?;
        let password = self.secrets.decrypt_str(
            Purpose::DatabasePassword {
                database_id: row.id,
            },
            &row.password,
        )?;
        let root_password = row
            .root_password
            .as_deref()
            .map(|sealed| {
                self.secrets.decrypt_str(
                    Purpose::DatabaseRootPassword {
                        database_id: row.id,
                    },
                    sealed,
                )
            })
            .transpose()?;
        Ok(DatabaseSpec {
            name: row.name.clone(),
            kind,
            image: row.image.clone(),
            credentials: Credentials {
                user: row.username.clone(),
                password,
                root_password,
                database: row.database_name.clone(),
            },
            limits: Limits {
                memory_bytes: row.memory_bytes,
                cpus: row.cpus,
                pids: None,
            },
            instance: self.db.instance_id().to_owned(),
        })
    }
}

/// The user and database name for a database: its name with `_` for `-`, which every
/// engine accepts unquoted.
fn account_name(name: &str) -> String {
    name.replace('-', "_")
}

fn validate(req: &NewDatabaseRequest) -> Result<(), DatabaseError> {
    if !crate::db::apps::is_valid_name(&req.name) {
        return Err(DatabaseError::Invalid {
            field: "name",
            message: format!(
                "`{}` is not a DNS label (lower-case letters, digits, inner hyphens, up to 63 characters)",
                req.name
            ),
        });
    }
    validate_version(&req.version)?;
    validate_limits(req.memory_bytes, req.cpus)
}

fn validate_version(version: &Option<String>) -> Result<(), DatabaseError> {
    if let Some(v) = version
        && (v.is_empty()
            || v.len() > 32
            || !v
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')))
    {
        return Err(DatabaseError::Invalid {
            field: "version",
            message: format!(
                "`{v}` is not a version tag (letters, digits, `.`, `-`, `_`, up to 32 characters)"
            ),
        });
    }
    Ok(())
}

fn validate_limits(memory_bytes: Option<u64>, cpus: Option<f64>) -> Result<(), DatabaseError> {
    if let Some(m) = memory_bytes
        && m < 64 << 20
    {
        return Err(DatabaseError::Invalid {
            field: "memory",
            message: format!("{m} bytes is below the 64 MiB a database needs"),
        });
    }
    if let Some(c) = cpus
        && !(c > 0.0 && c.is_finite())
    {
        return Err(DatabaseError::Invalid {
            field: "cpus",
            message: "must be above 0".to_owned(),
        });
    }
    Ok(())
}

/// The part of a version tag before its first `.` or `-`: `16` of `16.4-bookworm`.
fn major(version: &str) -> &str {
    version.split(['.', '-']).next().unwrap_or(version)
}

/// A version change stays within the major version: the server of another major cannot
/// open the data files (PostgreSQL refuses them; MariaDB and MySQL need their upgrade tool
/// run, and cannot go back), so that is a dump and restore the user does on purpose.
fn check_version_change(kind: DbKind, from: &str, to: &str) -> Result<(), DatabaseError> {
    validate_version(&Some(to.to_owned()))?;
    if major(from) != major(to) {
        return Err(DatabaseError::Invalid {
            field: "version",
            message: format!(
                "{kind} {from} to {to} changes the major version, whose data files the new server \
                 cannot use as they are: create a new database with version {to}, then restore \
                 a backup of this one into it (rivetr db backup, then pg_restore/mariadb from \
                 the downloaded file)"
            ),
        });
    }
    Ok(())
}

/// The container's state in words; with a spec, a running one is probed.
async fn container_status(
    rt: &dyn ContainerRuntime,
    names: &Names,
    probe: Option<&DatabaseSpec>,
) -> String {
    match rt.inspect(&names.container).await {
        Ok(info) if info.state == ContainerState::Running => match probe {
            Some(spec) => {
                let check = spec.kind.ready_probe(&spec.credentials);
                match rt.exec(&info.id, &check, Duration::from_secs(10)).await {
                    Ok(out) if out.exit_code == 0 => "running".to_owned(),
                    _ => "starting".to_owned(),
                }
            }
            None => "running".to_owned(),
        },
        Ok(info) if matches!(info.state, ContainerState::Exited | ContainerState::Created) => {
            "stopped".to_owned()
        }
        Ok(info) => info.engine_state,
        Err(e) if e.is_not_found() => "missing".to_owned(),
        Err(e) => format!("unknown ({e})"),
    }
}

fn view_of(row: &DatabaseRow, names: &Names, status: String) -> ManagedDatabaseView {
    let kind: Option<DbKind> = row.engine.parse().ok();
    let has_users = kind.is_some_and(DbKind::has_users);
    ManagedDatabaseView {
        name: row.name.clone(),
        engine: kind.unwrap_or(DbKind::Postgres),
        version: row.version.clone(),
        image: row.image.clone(),
        status,
        stopped: row.stopped,
        username: has_users.then(|| row.username.clone()),
        database: has_users.then(|| row.database_name.clone()),
        port: kind.map(DbKind::port).unwrap_or(0),
        container: names.container.clone(),
        volume: names.volume.clone(),
        network: names.network.clone(),
        memory_bytes: row.memory_bytes,
        cpus: row.cpus,
        public_port: row.public_port,
        public_address: None,
        created_at: row.created_at.clone(),
    }
}
