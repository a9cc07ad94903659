//! [`Backups`]: what the API and the schedule loop call. A backup is a row from the moment
//! it starts; it holds its database's lock while the dump runs (a stop or delete waits for
//! it), and ends `succeeded` with its size and SHA-256 or `failed` with the reason. A
//! schedule's retention runs only after one of its backups succeeded, so failures never
//! cost a good backup.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::io::AsyncWriteExt;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::archive::{self, ArchiveError};
use super::crypt::{BackupKey, CryptError};
use super::dump::{self, BgsaveState};
use super::s3::{S3, S3Config};
use super::schedule::{self, Clock, Planned};
use super::store::{Store, StoreError, StoredReader};
use crate::config::Config;
use crate::databases::kinds::DbKind;
use crate::databases::lifecycle::{self, DatabaseSpec};
use crate::databases::service::{
    DatabaseError, Databases, ManagedDatabaseView, NewDatabaseRequest,
};
use crate::db::backups::{
    self as rows, BackupRow, DestinationRow, NewBackup, NewDestination, NewSchedule, ScheduleRow,
};
use crate::db::databases::DatabaseRow;
use crate::db::{Db, DbError};
use crate::runtime::{
    ContainerRuntime, ContainerState, ExecSpec, NetworkAttach, Networks, RestartPolicy, RunSpec,
    VolumeMount,
};
use crate::secrets::{Purpose, Secrets, SecretsError};

/// The built-in destination: files under `[databases] backup_dir`.
pub const LOCAL: &str = "local";

/// How long a Redis `BGSAVE` may take before the backup gives up.
const BGSAVE_LIMIT: Duration = Duration::from_secs(3600);

/// What can go wrong with a backup, a restore or a schedule.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    // Boxed: the database errors are large, and would make every Result here as large.
    #[error(transparent)]
    Database(Box<DatabaseError>),
    #[error("database {database} has no backup {id}")]
    NotFound { database: String, id: i64 },
    #[error("database {database} has no backup schedule {id}")]
    ScheduleNotFound { database: String, id: i64 },
    #[error(
        "no backup destination named `{0}` (`local` and those of GET /api/backup-destinations)"
    )]
    DestinationNotFound(String),
    /// A destination of that name exists, or schedules still use it.
    #[error("{0}")]
    Conflict(String),
    #[error("{field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    /// The dump or restore tool, or the engine, failed; the message says which and why.
    #[error("{0}")]
    Failed(String),
    #[error(transparent)]
    Archive(#[from] ArchiveError),
    #[error(transparent)]
    Crypt(#[from] CryptError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Secrets(#[from] SecretsError),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<DatabaseError> for BackupError {
    fn from(e: DatabaseError) -> Self {
        BackupError::Database(Box::new(e))
    }
}

/// A backup as the API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct BackupView {
    pub id: i64,
    pub database: String,
    pub engine: String,
    /// `running`, `succeeded` or `failed`.
    pub status: String,
    /// `local` (a file on this machine) or an S3 destination's name.
    pub destination: String,
    /// The file's path, or the object's key in the destination's bucket.
    pub location: String,
    /// Bytes stored (compressed).
    pub size_bytes: Option<u64>,
    /// SHA-256 of the stored file, hex; checked again before a restore.
    pub sha256: Option<String>,
    /// Why it failed.
    pub error: Option<String>,
    /// The fingerprint of the key (`[databases] backup_key_file`) it is encrypted with;
    /// none: not encrypted.
    pub key_fingerprint: Option<String>,
    /// The schedule that ran it; none for one asked for.
    pub schedule_id: Option<i64>,
    pub started_at: String,
    pub finished_at: Option<String>,
}

/// A backup schedule as the API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ScheduleView {
    pub id: i64,
    pub database: String,
    /// Five fields, UTC: minute hour day-of-month month day-of-week.
    pub cron: String,
    pub destination: String,
    /// Keep this many of its newest good backups.
    pub keep_last: Option<u32>,
    /// Keep its good backups younger than this many days.
    pub keep_days: Option<u32>,
    pub last_run_at: Option<String>,
    pub next_run_at: Option<String>,
    pub created_at: String,
}

/// A request for a schedule.
#[derive(Debug, Clone)]
pub struct NewScheduleRequest {
    pub cron: String,
    pub destination: Option<String>,
    pub keep_last: Option<u32>,
    pub keep_days: Option<u32>,
}

/// What a restore did.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RestoreView {
    pub backup: BackupView,
    /// The database restored into: the backup's own, or the new one.
    pub database: ManagedDatabaseView,
    pub message: String,
}

/// A backup destination as the API shows it (never an S3 secret key).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DestinationView {
    pub name: String,
    /// `local` or `s3`.
    pub kind: String,
    /// Local: the directory.
    pub directory: Option<String>,
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub bucket: Option<String>,
    pub prefix: Option<String>,
    pub path_style: Option<bool>,
    pub access_key_id: Option<String>,
    pub created_at: Option<String>,
}

/// A request for an S3 destination.
#[derive(Debug, Clone)]
pub struct NewDestinationRequest {
    pub name: String,
    pub endpoint: String,
    pub region: String,
    pub bucket: String,
    pub prefix: String,
    pub path_style: bool,
    pub access_key_id: String,
    pub secret_access_key: crate::secrets::SecretString,
}

/// Backups and restores of the managed databases.
#[derive(Clone)]
pub struct Backups {
    databases: Databases,
    db: Db,
    secrets: Arc<Secrets>,
    config: Arc<ArcSwap<Config>>,
    /// Schedules were added or removed: the loop reads them again.
    changed: Arc<Notify>,
    /// Told of failed backups.
    notifier: crate::notify::Notifier,
}

impl Backups {
    pub fn new(
        databases: Databases,
        db: Db,
        secrets: Arc<Secrets>,
        config: Arc<ArcSwap<Config>>,
        notifier: crate::notify::Notifier,
    ) -> Backups {
        Backups {
            databases,
            db,
            secrets,
            config,
            changed: Arc::new(Notify::new()),
            notifier,
        }
    }

    /// Where local backups go, absolute: a backup's recorded location must not depend on
    /// the directory Rivetr was started from.
    fn directory(&self) -> PathBuf {
        let config = self.config.load();
        let dir = match &config.databases.backup_dir {
            dir if dir.as_os_str().is_empty() => config.state_dir().join("backups"),
            dir => dir.clone(),
        };
        std::path::absolute(&dir).unwrap_or(dir)
    }

    /// Whether new backups are encrypted: a key file is set.
    fn encrypts(&self) -> bool {
        !self
            .config
            .load()
            .databases
            .backup_key_file
            .as_os_str()
            .is_empty()
    }

    /// The key of `[databases] backup_key_file`, read now so a replaced file takes effect
    /// without a restart; `None` when no file is set.
    pub fn backup_key(&self) -> Result<Option<BackupKey>, BackupError> {
        let path = self.config.load().databases.backup_key_file.clone();
        if path.as_os_str().is_empty() {
            return Ok(None);
        }
        Ok(Some(BackupKey::load(&path)?))
    }

    /// The key that decrypts `backup`: `None` for a backup never encrypted; an error naming
    /// the fingerprint wanted when no key, or another one, is set.
    fn key_for(&self, backup: &BackupRow) -> Result<Option<BackupKey>, BackupError> {
        let Some(wanted) = &backup.key_fingerprint else {
            return Ok(None);
        };
        let invalid = |message| BackupError::Invalid {
            field: "backup",
            message,
        };
        match self.backup_key()? {
            None => Err(invalid(format!(
                "backup {} is encrypted with the key of fingerprint {wanted}, and no \
                 [databases] backup_key_file is set",
                backup.id
            ))),
            Some(key) if key.fingerprint() != *wanted => Err(invalid(format!(
                "backup {} is encrypted with the key of fingerprint {wanted}; the key of \
                 [databases] backup_key_file has fingerprint {}",
                backup.id,
                key.fingerprint()
            ))),
            Some(key) => Ok(Some(key)),
        }
    }

    /// The storage of the destination `name`.
    async fn store(&self, name: &str) -> Result<Store, BackupError> {
        if name == LOCAL {
            return Ok(Store::Local(self.directory()));
        }
        let owned = name.to_owned();
        let row = self
            .db
            .call(move |c| rows::destination(c, &owned))
            .await?
            .ok_or_else(|| BackupError::DestinationNotFound(name.to_owned()))?;
        let secret = self.secrets.decrypt_str(
            Purpose::BackupDestination {
                destination_id: row.id,
            },
            &row.secret_access_key,
        )?;
        let s3 = S3::new(S3Config {
            endpoint: row.endpoint,
            region: row.region,
            bucket: row.bucket,
            prefix: row.prefix,
            path_style: row.path_style,
            access_key_id: row.access_key_id,
            secret_access_key: secret,
        })
        .map_err(|e| BackupError::Failed(e.to_string()))?;
        Ok(Store::S3(s3))
    }

    /// Starts a backup of `database` to `destination` (default `local`) and answers at once
    /// with it `running`.
    pub async fn start(
        &self,
        database: &str,
        destination: Option<&str>,
    ) -> Result<BackupView, BackupError> {
        let (row, backup) = self
            .begin(database, None, destination.unwrap_or(LOCAL))
            .await?;
        let view = view_of(&row.name, &backup);
        let this = self.clone();
        tokio::spawn(async move { this.complete(row, backup, None).await });
        Ok(view)
    }

    /// Starts a backup as schedule `id` of `database` would (its retention applies after)
    /// and answers at once with it `running`.
    pub async fn start_scheduled(
        &self,
        database: &str,
        id: i64,
    ) -> Result<BackupView, BackupError> {
        let row = self.databases.row(database).await?;
        let database_id = row.id;
        let schedule = self
            .db
            .call(move |c| rows::schedule(c, id))
            .await?
            .filter(|s| s.database_id == database_id)
            .ok_or_else(|| BackupError::ScheduleNotFound {
                database: database.to_owned(),
                id,
            })?;
        let (row, backup) = self
            .begin(database, Some(id), &schedule.destination)
            .await?;
        let view = view_of(&row.name, &backup);
        let this = self.clone();
        tokio::spawn(async move { this.complete(row, backup, Some(&schedule)).await });
        Ok(view)
    }

    /// Takes a backup of `database` and answers once it has ended, good or failed.
    pub async fn take(
        &self,
        database: &str,
        schedule: Option<&ScheduleRow>,
    ) -> Result<BackupView, BackupError> {
        let destination = schedule.map_or(LOCAL, |s| s.destination.as_str());
        let (row, backup) = self
            .begin(database, schedule.map(|s| s.id), destination)
            .await?;
        Ok(self.complete(row, backup, schedule).await)
    }

    /// Records a new backup `running`, with the file it will be.
    async fn begin(
        &self,
        database: &str,
        schedule: Option<i64>,
        destination: &str,
    ) -> Result<(DatabaseRow, BackupRow), BackupError> {
        let row = self.databases.row(database).await?;
        let kind = self.databases.kind(&row)?;
        let store = self.store(destination).await?;
        let stamp = Utc::now().format("%Y%m%dT%H%M%S%.3fZ");
        let encrypted = if self.encrypts() { ".enc" } else { "" };
        let location = store.location(
            &row.name,
            &format!(
                "{}-{stamp}.{}{encrypted}",
                row.name,
                dump::file_suffix(kind)
            ),
        );
        let (database_id, engine, destination) = (row.id, kind.as_str(), destination.to_owned());
        let backup = self
            .db
            .call(move |c| {
                let id = rows::insert_backup(
                    c,
                    &NewBackup {
                        database_id,
                        schedule_id: schedule,
                        engine,
                        destination: &destination,
                        location: &location,
                    },
                )?;
                rows::backup(c, database_id, id)
            })
            .await?
            .ok_or_else(|| BackupError::Failed("the new backup's row vanished".to_owned()))?;
        Ok((row, backup))
    }

    /// Runs the dump into the backup's file and records how it ended.
    async fn complete(
        &self,
        row: DatabaseRow,
        backup: BackupRow,
        schedule: Option<&ScheduleRow>,
    ) -> BackupView {
        let lock = self.databases.lock(&row.name);
        let held = lock.lock().await;
        let result = self.dump_to(&row, &backup).await;
        drop(held);
        let id = backup.id;
        let recorded = match &result {
            Ok((written, key)) => {
                let fingerprint = key.as_ref().map(BackupKey::fingerprint);
                tracing::info!(database = %row.name, backup = id, bytes = written.size, sha256 = %written.sha256, encrypted_with = ?fingerprint, "backup taken");
                let (size, sha) = (written.size, written.sha256.clone());
                self.db
                    .call(move |c| {
                        rows::finish_succeeded(c, id, size, &sha, fingerprint.as_deref())
                    })
                    .await
            }
            Err(e) => {
                tracing::error!(database = %row.name, backup = id, error = %e, "backup failed");
                let reason = e.to_string();
                self.notifier
                    .backup_failed(&row.name, id, &reason, schedule.is_some());
                self.db
                    .call(move |c| rows::finish_failed(c, id, &reason))
                    .await
            }
        };
        if let Err(e) = recorded {
            tracing::error!(database = %row.name, backup = id, error = %e, "cannot record how the backup ended");
        }
        // glibc keeps freed heap memory for reuse: without this an idle Rivetr would keep
        // tens of MB after its first S3 backup.
        crate::memory::release_free_memory();
        if result.is_ok()
            && let Some(schedule) = schedule
            && let Err(e) = self.apply_retention(schedule).await
        {
            tracing::error!(database = %row.name, schedule = schedule.id, error = %e, "cannot remove old backups");
        }
        let database_id = row.id;
        match self
            .db
            .call(move |c| rows::backup(c, database_id, id))
            .await
        {
            Ok(Some(done)) => view_of(&row.name, &done),
            _ => view_of(&row.name, &backup),
        }
    }

    /// Streams the engine's dump of the database to the backup's destination, encrypted
    /// with the backup key if one is set; gives the key used.
    async fn dump_to(
        &self,
        row: &DatabaseRow,
        backup: &BackupRow,
    ) -> Result<(archive::Written, Option<BackupKey>), BackupError> {
        let key = self.backup_key()?;
        let store = self.store(&backup.destination).await?;
        let written = self
            .dump(row, &store, &backup.location, key.as_ref())
            .await?;
        Ok((written, key))
    }

    /// Streams the engine's dump of the database into `location`.
    async fn dump(
        &self,
        row: &DatabaseRow,
        store: &Store,
        location: &str,
        key: Option<&BackupKey>,
    ) -> Result<archive::Written, BackupError> {
        let rt = self.databases.runtime()?;
        let spec = self.databases.spec(row)?;
        let container = running_container(rt.as_ref(), &spec).await?;
        if spec.kind == DbKind::Redis {
            redis_bgsave(rt.as_ref(), &container, &spec).await?;
        }
        let command = dump::dump_command(spec.kind, &spec.credentials);
        let mut session = rt
            .exec_start(&container, &command)
            .await
            .map_err(|e| BackupError::Failed(format!("cannot start {}: {e}", command.cmd[0])))?;
        // A storage that refused the upload ends the backup at once: the dump tool, its
        // output no longer read, stops on the closed stream.
        let written = store.write(location, &mut session.output, key).await?;
        let exit_code = exit_code(rt.as_ref(), &session.id).await?;
        if exit_code != 0 {
            let _ = store.remove(location).await;
            return Err(BackupError::Failed(format!(
                "{} exited with code {exit_code}: {}",
                command.cmd[0],
                written.stderr.trim()
            )));
        }
        Ok(written)
    }

    /// Removes the schedule's good backups beyond its `keep_last` newest or older than
    /// `keep_days`.
    async fn apply_retention(&self, schedule: &ScheduleRow) -> Result<(), BackupError> {
        if schedule.keep_last.is_none() && schedule.keep_days.is_none() {
            return Ok(());
        }
        let (database_id, schedule_id) = (schedule.database_id, schedule.id);
        let good: Vec<BackupRow> = self
            .db
            .call(move |c| rows::backups_of(c, database_id))
            .await?
            .into_iter()
            .filter(|b| b.schedule_id == Some(schedule_id) && b.status == rows::SUCCEEDED)
            .collect();
        let now = Utc::now();
        for (newer, backup) in good.iter().enumerate() {
            let too_many = schedule.keep_last.is_some_and(|k| newer >= k as usize);
            let too_old = schedule.keep_days.is_some_and(|days| {
                schedule::parse_time(&backup.started_at)
                    .is_some_and(|t| now - t > chrono::Duration::days(days.into()))
            });
            if too_many || too_old {
                self.remove_backup(backup).await?;
            }
        }
        Ok(())
    }

    async fn remove_backup(&self, backup: &BackupRow) -> Result<(), BackupError> {
        self.store(&backup.destination)
            .await?
            .remove(&backup.location)
            .await?;
        let id = backup.id;
        self.db.call(move |c| rows::delete_backup(c, id)).await?;
        tracing::info!(backup = id, location = %backup.location, "old backup removed");
        Ok(())
    }

    /// A database's good backups, newest first, as stored: what deleting the database
    /// leaves behind or removes.
    pub async fn stored_of(&self, database: &str) -> Result<Vec<BackupRow>, BackupError> {
        let row = self.databases.row(database).await?;
        let id = row.id;
        let backups = self.db.call(move |c| rows::backups_of(c, id)).await?;
        Ok(backups
            .into_iter()
            .filter(|b| b.status == rows::SUCCEEDED)
            .collect())
    }

    /// Removes the stored files of `backups` (their rows went with their database); says
    /// which could not be removed.
    pub async fn remove_stored(&self, backups: &[BackupRow]) -> Vec<String> {
        let mut failed = Vec::new();
        for backup in backups {
            let removed = match self.store(&backup.destination).await {
                Ok(store) => store
                    .remove(&backup.location)
                    .await
                    .map_err(BackupError::from),
                Err(e) => Err(e),
            };
            if let Err(e) = removed {
                tracing::warn!(backup = backup.id, location = %backup.location, error = %e, "cannot remove a deleted database's backup");
                failed.push(format!("{}: {} ({e})", backup.destination, backup.location));
            }
        }
        failed
    }

    /// A database's backups, newest first.
    pub async fn list(&self, database: &str) -> Result<Vec<BackupView>, BackupError> {
        let row = self.databases.row(database).await?;
        let id = row.id;
        let backups = self.db.call(move |c| rows::backups_of(c, id)).await?;
        Ok(backups.iter().map(|b| view_of(&row.name, b)).collect())
    }

    /// One good backup and its stored bytes, for download.
    pub async fn open(
        &self,
        database: &str,
        id: i64,
    ) -> Result<(BackupView, StoredReader), BackupError> {
        let backup = self.good_backup(database, id).await?;
        let reader = self
            .store(&backup.destination)
            .await?
            .open(&backup.location)
            .await?;
        Ok((view_of(database, &backup), reader))
    }

    async fn good_backup(&self, database: &str, id: i64) -> Result<BackupRow, BackupError> {
        let row = self.databases.row(database).await?;
        let database_id = row.id;
        let backup = self
            .db
            .call(move |c| rows::backup(c, database_id, id))
            .await?
            .ok_or_else(|| BackupError::NotFound {
                database: database.to_owned(),
                id,
            })?;
        if backup.status != rows::SUCCEEDED {
            return Err(BackupError::Invalid {
                field: "backup",
                message: format!("backup {id} is {}, not a good backup", backup.status),
            });
        }
        Ok(backup)
    }

    /// Restores a good backup of `database` into it, or into a new database `into` created
    /// for the purpose. The file's SHA-256 is checked first.
    pub async fn restore(
        &self,
        database: &str,
        id: i64,
        into: Option<String>,
    ) -> Result<RestoreView, BackupError> {
        if let Some(name) = &into
            && !crate::db::apps::is_valid_name(name)
        {
            return Err(BackupError::Invalid {
                field: "into",
                message: format!(
                    "`{name}` is not a DNS label (lower-case letters, digits, inner hyphens, up to 63 characters)"
                ),
            });
        }
        let backup = self.good_backup(database, id).await?;
        let key = self.key_for(&backup)?;
        let source = self.databases.row(database).await?;
        let store = self.store(&backup.destination).await?;
        let stored = store
            .open_verified(
                &backup.location,
                backup.sha256.as_deref().unwrap_or_default(),
                &self.directory(),
            )
            .await?;
        let kind = self.databases.kind(&source)?;
        if kind.as_str() != backup.engine {
            return Err(BackupError::Invalid {
                field: "backup",
                message: format!("backup {id} is of {}, not {kind}", backup.engine),
            });
        }
        let target = match &into {
            Some(name) => {
                self.databases
                    .create(NewDatabaseRequest {
                        name: name.clone(),
                        kind,
                        version: Some(source.version.clone()),
                        memory_bytes: source.memory_bytes,
                        cpus: source.cpus,
                    })
                    .await?;
                name.clone()
            }
            None => database.to_owned(),
        };
        let lock = self.databases.lock(&target);
        let held = lock.lock().await;
        let row = self.databases.row(&target).await?;
        let rt = self.databases.runtime()?;
        let spec = self.databases.spec(&row)?;
        tracing::info!(database = %target, backup = id, from = %database, "restoring a backup");
        let result = match dump::restore_command(kind, &spec.credentials) {
            Some(command) => {
                restore_by_tool(rt.as_ref(), &spec, &command, stored, key.as_ref()).await
            }
            None => {
                let links = self.databases.linked_networks(rt.as_ref(), &row).await?;
                let within = self.databases.ready_within();
                restore_redis_files(rt.as_ref(), &spec, stored, key.as_ref(), &links, within).await
            }
        };
        drop(held);
        result?;
        let message = format!("backup {id} of {database} restored into {target}");
        tracing::info!(database = %target, backup = id, "{message}");
        Ok(RestoreView {
            backup: view_of(database, &backup),
            database: self.databases.view(&target, true).await?,
            message,
        })
    }

    /// Adds a schedule; its first backup is at the pattern's next time.
    pub async fn add_schedule(
        &self,
        database: &str,
        req: NewScheduleRequest,
    ) -> Result<ScheduleView, BackupError> {
        let cron = schedule::parse(&req.cron).map_err(|message| BackupError::Invalid {
            field: "cron",
            message,
        })?;
        let destination = req.destination.unwrap_or_else(|| LOCAL.to_owned());
        self.store(&destination).await?;
        for (field, value) in [("keep_last", req.keep_last), ("keep_days", req.keep_days)] {
            if value == Some(0) {
                return Err(BackupError::Invalid {
                    field,
                    message: "must be at least 1 (leave it out for no limit)".to_owned(),
                });
            }
        }
        let row = self.databases.row(database).await?;
        let database_id = row.id;
        let now = schedule::format_time(Utc::now());
        let pattern = req.cron.trim().to_owned();
        let (keep_last, keep_days) = (req.keep_last, req.keep_days);
        let stored = self
            .db
            .call(move |c| {
                let id = rows::insert_schedule(
                    c,
                    &NewSchedule {
                        database_id,
                        cron: &pattern,
                        destination: &destination,
                        keep_last,
                        keep_days,
                        created_at: &now,
                    },
                )?;
                rows::schedule(c, id)
            })
            .await?
            .ok_or_else(|| BackupError::Failed("the new schedule's row vanished".to_owned()))?;
        self.changed.notify_one();
        tracing::info!(database = %database, schedule = stored.id, cron = %stored.cron, "backup schedule added");
        Ok(schedule_view(&stored, Some(&cron)))
    }

    pub async fn schedules(&self, database: &str) -> Result<Vec<ScheduleView>, BackupError> {
        let row = self.databases.row(database).await?;
        let id = row.id;
        let stored = self.db.call(move |c| rows::schedules_of(c, id)).await?;
        Ok(stored
            .iter()
            .map(|s| schedule_view(s, schedule::parse(&s.cron).ok().as_ref()))
            .collect())
    }

    pub async fn remove_schedule(&self, database: &str, id: i64) -> Result<(), BackupError> {
        let row = self.databases.row(database).await?;
        let database_id = row.id;
        if !self
            .db
            .call(move |c| rows::delete_schedule(c, database_id, id))
            .await?
        {
            return Err(BackupError::ScheduleNotFound {
                database: database.to_owned(),
                id,
            });
        }
        self.changed.notify_one();
        Ok(())
    }

    /// Adds an S3 destination; its secret key is sealed at rest.
    pub async fn add_destination(
        &self,
        req: NewDestinationRequest,
    ) -> Result<DestinationView, BackupError> {
        if req.name == LOCAL || !crate::db::apps::is_valid_name(&req.name) {
            return Err(BackupError::Invalid {
                field: "name",
                message: format!(
                    "`{}` is not a DNS label, or is the built-in `local`",
                    req.name
                ),
            });
        }
        for (field, value) in [
            ("region", &req.region),
            ("access_key_id", &req.access_key_id),
        ] {
            if value.trim().is_empty() {
                return Err(BackupError::Invalid {
                    field,
                    message: "required".to_owned(),
                });
            }
        }
        let config = S3Config {
            endpoint: req.endpoint.trim_end_matches('/').to_owned(),
            region: req.region.clone(),
            bucket: req.bucket.clone(),
            prefix: req.prefix.clone(),
            path_style: req.path_style,
            access_key_id: req.access_key_id.clone(),
            secret_access_key: req.secret_access_key.clone(),
        };
        S3::new(config.clone()).map_err(|e| BackupError::Invalid {
            field: "endpoint",
            message: e.to_string(),
        })?;
        let secrets = Arc::clone(&self.secrets);
        let name = req.name.clone();
        let stored = self
            .db
            .call(move |c| {
                let tx = c.transaction()?;
                if rows::destination(&tx, &name)?.is_some() {
                    return Ok(None);
                }
                let id = rows::insert_destination(
                    &tx,
                    &NewDestination {
                        name: &name,
                        endpoint: &config.endpoint,
                        region: &config.region,
                        bucket: &config.bucket,
                        prefix: &config.prefix,
                        path_style: config.path_style,
                        access_key_id: &config.access_key_id,
                    },
                )?;
                let sealed = secrets
                    .encrypt_str(
                        Purpose::BackupDestination { destination_id: id },
                        config.secret_access_key.expose(),
                    )
                    .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
                rows::set_destination_secret(&tx, id, &sealed)?;
                let row = rows::destination(&tx, &name)?;
                tx.commit()?;
                Ok(row)
            })
            .await?
            .ok_or_else(|| {
                BackupError::Conflict(format!("a destination named `{}` already exists", req.name))
            })?;
        tracing::info!(destination = %stored.name, endpoint = %stored.endpoint, bucket = %stored.bucket, "backup destination added");
        Ok(destination_view(&stored))
    }

    /// `local` and the S3 destinations.
    pub async fn destinations(&self) -> Result<Vec<DestinationView>, BackupError> {
        let stored = self.db.call(|c| rows::destinations(c)).await?;
        let mut views = vec![DestinationView {
            name: LOCAL.to_owned(),
            kind: "local".to_owned(),
            directory: Some(self.directory().to_string_lossy().into_owned()),
            endpoint: None,
            region: None,
            bucket: None,
            prefix: None,
            path_style: None,
            access_key_id: None,
            created_at: None,
        }];
        views.extend(stored.iter().map(destination_view));
        Ok(views)
    }

    /// Removes a destination no schedule uses; the backups stored there stay there.
    pub async fn remove_destination(&self, name: &str) -> Result<(), BackupError> {
        if name == LOCAL {
            return Err(BackupError::Conflict(
                "`local` is built in and cannot be removed".to_owned(),
            ));
        }
        let owned = name.to_owned();
        match self
            .db
            .call(move |c| rows::delete_destination(c, &owned))
            .await?
        {
            Ok(true) => Ok(()),
            Ok(false) => Err(BackupError::DestinationNotFound(name.to_owned())),
            Err(users) => Err(BackupError::Conflict(format!(
                "schedules of {} back up to `{name}`; remove them first",
                users.join(", ")
            ))),
        }
    }

    /// At startup: backups left `running` by a Rivetr that stopped are marked failed and
    /// their partial files removed.
    pub async fn recover_interrupted(&self) -> Result<(), BackupError> {
        let interrupted = self.db.call(|c| rows::fail_interrupted(c)).await?;
        for backup in interrupted {
            let cleaned = match self.store(&backup.destination).await {
                Ok(store) => store
                    .remove_leftovers(&backup.location)
                    .await
                    .map_err(Into::into),
                Err(e) => Err(e),
            };
            if let Err(e) = cleaned {
                tracing::warn!(backup = backup.id, location = %backup.location, error = %e, "cannot remove what an interrupted backup left");
            }
            tracing::warn!(backup = backup.id, location = %backup.location, "a backup was interrupted by Rivetr's stop; marked failed");
        }
        Ok(())
    }

    /// The databases whose latest backup failed, with why: for `/api/health`.
    pub async fn failing(&self) -> Result<Vec<(String, String)>, BackupError> {
        Ok(self.db.call(|c| rows::failing(c)).await?)
    }

    /// Runs the schedules until `stop`. Each due backup runs in its own task; one schedule
    /// running long never delays another's.
    pub async fn run_schedules(self, stop: CancellationToken) {
        if let Err(e) = self.recover_interrupted().await {
            tracing::error!(error = %e, "cannot look for interrupted backups");
        }
        let changed = Arc::clone(&self.changed);
        let loader = self.clone();
        let launcher = self.clone();
        schedule::run(
            Clock::system(),
            async move || loader.planned().await,
            &changed,
            move |due| {
                let this = launcher.clone();
                tokio::spawn(async move { this.run_due(due).await });
            },
            stop,
        )
        .await;
    }

    async fn planned(&self) -> Vec<Planned> {
        let stored = match self.db.call(|c| rows::schedules(c)).await {
            Ok(stored) => stored,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the backup schedules");
                return Vec::new();
            }
        };
        stored
            .into_iter()
            .filter_map(|s| {
                let cron = schedule::parse(&s.cron)
                    .inspect_err(
                        |e| tracing::error!(schedule = s.id, error = %e, "skipping a schedule"),
                    )
                    .ok()?;
                let last_run = s
                    .last_run_at
                    .as_deref()
                    .and_then(schedule::parse_time)
                    .or_else(|| schedule::parse_time(&s.created_at))?;
                Some(Planned {
                    id: s.id,
                    cron,
                    last_run,
                })
            })
            .collect()
    }

    async fn run_due(&self, due: schedule::Due) {
        let id = due.schedule;
        let at = schedule::format_time(due.occurrence);
        let stored = self
            .db
            .call(move |c| {
                rows::set_last_run(c, id, &at)?;
                rows::schedule(c, id)
            })
            .await;
        let schedule = match stored {
            Ok(Some(s)) => s,
            Ok(None) => return,
            Err(e) => {
                tracing::error!(schedule = id, error = %e, "cannot record the schedule's run");
                return;
            }
        };
        tracing::info!(database = %schedule.database, schedule = id, occurrence = %due.occurrence, "scheduled backup");
        if let Err(e) = self.take(&schedule.database, Some(&schedule)).await {
            tracing::error!(database = %schedule.database, schedule = id, error = %e, "scheduled backup could not start");
        }
    }
}

/// The id of the database's container, which must be running.
async fn running_container(
    rt: &dyn ContainerRuntime,
    spec: &DatabaseSpec,
) -> Result<String, BackupError> {
    let names = spec.names();
    match rt.inspect(&names.container).await {
        Ok(info) if info.state == ContainerState::Running => Ok(info.id),
        Ok(_) => Err(BackupError::Failed(format!(
            "database {} is not running; start it first",
            spec.name
        ))),
        Err(e) => Err(BackupError::Failed(format!(
            "cannot find database {}'s container: {e}",
            spec.name
        ))),
    }
}

/// The exit code of a command whose output has ended (the engine records it a moment
/// later).
async fn exit_code(rt: &dyn ContainerRuntime, exec: &str) -> Result<i64, BackupError> {
    for _ in 0..250 {
        match rt.exec_exit_code(exec).await {
            Ok(Some(code)) => return Ok(code),
            Ok(None) => tokio::time::sleep(Duration::from_millis(20)).await,
            Err(e) => {
                return Err(BackupError::Failed(format!(
                    "cannot read the exit code: {e}"
                )));
            }
        }
    }
    Err(BackupError::Failed(
        "the engine never reported the command's exit code".to_owned(),
    ))
}

/// Asks Redis for a background save and waits until it has written its RDB file.
async fn redis_bgsave(
    rt: &dyn ContainerRuntime,
    container: &str,
    spec: &DatabaseSpec,
) -> Result<(), BackupError> {
    let creds = &spec.credentials;
    let run = async |args: &[&str]| {
        rt.exec(
            container,
            &dump::redis_cli(creds, args),
            Duration::from_secs(30),
        )
        .await
        .map_err(|e| BackupError::Failed(format!("redis-cli {}: {e}", args.join(" "))))
    };
    let started = tokio::time::Instant::now();
    // A save already running (Redis's own, or an append-only rewrite) refuses BGSAVE;
    // it is retried until Redis accepts.
    loop {
        let out = run(&["BGSAVE"]).await?;
        if out.exit_code == 0 && out.stdout.contains("Background saving started") {
            break;
        }
        if started.elapsed() > BGSAVE_LIMIT {
            return Err(BackupError::Failed(format!(
                "Redis refused BGSAVE: {}{}",
                out.stdout.trim(),
                out.stderr.trim()
            )));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    loop {
        let out = run(&["INFO", "persistence"]).await?;
        match dump::bgsave_state(&out.stdout) {
            Some(BgsaveState::Done { ok: true }) => return Ok(()),
            Some(BgsaveState::Done { ok: false }) => {
                return Err(BackupError::Failed(
                    "Redis's background save failed (rdb_last_bgsave_status:err); its log says why"
                        .to_owned(),
                ));
            }
            Some(BgsaveState::InProgress) if started.elapsed() < BGSAVE_LIMIT => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            _ => {
                return Err(BackupError::Failed(format!(
                    "Redis's background save did not finish: {}",
                    out.stderr.trim()
                )));
            }
        }
    }
}

/// Feeds the decompressed dump to the engine's restore tool inside the container.
async fn restore_by_tool(
    rt: &dyn ContainerRuntime,
    spec: &DatabaseSpec,
    command: &ExecSpec,
    stored: StoredReader,
    key: Option<&BackupKey>,
) -> Result<(), BackupError> {
    let container = running_container(rt, spec).await?;
    feed(rt, &container, command, stored, key).await
}

/// Runs `command` in `container` with the dump `stored` holds on its standard input and
/// checks that it succeeded.
async fn feed(
    rt: &dyn ContainerRuntime,
    container: &str,
    command: &ExecSpec,
    stored: StoredReader,
    key: Option<&BackupKey>,
) -> Result<(), BackupError> {
    let tool = command.cmd[0].clone();
    let mut session = rt
        .exec_start(container, command)
        .await
        .map_err(|e| BackupError::Failed(format!("cannot start {tool}: {e}")))?;
    let mut input = session
        .input
        .take()
        .ok_or_else(|| BackupError::Failed(format!("{tool} got no standard input")))?;
    let mut dump = archive::open_dump(stored, key);
    // Output is read while the input is written: a tool that writes much while reading
    // would otherwise stall on a full pipe.
    let collecting =
        crate::runtime::collect_output(&mut session.output, Duration::from_secs(24 * 3600));
    let writing = async {
        let copied = tokio::io::copy(&mut dump, &mut input).await;
        let closed = input.shutdown().await;
        drop(input);
        copied.and(closed)
    };
    let (written, collected) = tokio::join!(writing, collecting);
    let (_, stderr) =
        collected.map_err(|e| BackupError::Failed(format!("reading {tool}'s output: {e}")))?;
    let code = exit_code(rt, &session.id).await?;
    // A tool that stopped reading explains the broken pipe; any other failure to read the
    // backup (one that does not decrypt, a destination that broke off) explains the tool's
    // failure on a cut input.
    if let Err(e) = written
        && (code == 0 || e.kind() != std::io::ErrorKind::BrokenPipe)
    {
        return Err(BackupError::Failed(format!(
            "feeding the dump to {tool}: {e}"
        )));
    }
    if code != 0 {
        return Err(BackupError::Failed(format!(
            "{tool} exited with code {code}: {}",
            stderr.trim()
        )));
    }
    Ok(())
}

/// Redis restores by replacing its data files: the database is stopped, a helper container
/// on its volume puts the RDB file in place, and the database starts on it.
async fn restore_redis_files(
    rt: &dyn ContainerRuntime,
    spec: &DatabaseSpec,
    stored: StoredReader,
    key: Option<&BackupKey>,
    links: &[lifecycle::LinkedNetwork],
    within: Duration,
) -> Result<(), BackupError> {
    let names = spec.names();
    lifecycle::stop(rt, &names)
        .await
        .map_err(DatabaseError::from)?;
    let helper_name = format!("{}-restore", names.container);
    let _ = rt.remove(&helper_name).await;
    let helper = rt
        .run(&RunSpec {
            image: spec.image.clone(),
            name: helper_name.clone(),
            cmd: vec!["sleep".to_owned(), "86400".to_owned()],
            labels: spec.labels(),
            restart: RestartPolicy::No,
            volumes: vec![VolumeMount {
                volume: names.volume.clone(),
                target: spec.kind.data_path().to_owned(),
            }],
            networks: Networks::Attach {
                primary: NetworkAttach {
                    network: names.network.clone(),
                    ipv4: None,
                },
                extra: Vec::new(),
            },
            ..RunSpec::default()
        })
        .await
        .map_err(|e| BackupError::Failed(format!("cannot start the restore helper: {e}")))?;
    let script = ExecSpec {
        cmd: vec![
            "sh".to_owned(),
            "-c".to_owned(),
            dump::REDIS_RESTORE_SCRIPT.to_owned(),
        ],
        stdin: true,
        ..ExecSpec::default()
    };
    let fed = feed(rt, &helper.id, &script, stored, key).await;
    if let Err(e) = rt.remove(&helper.id).await {
        tracing::warn!(container = %helper_name, error = %e, "cannot remove the restore helper");
    }
    let brought_up = lifecycle::bring_up(rt, spec, links, within).await;
    fed?;
    brought_up.map_err(DatabaseError::from)?;
    Ok(())
}

fn destination_view(d: &DestinationRow) -> DestinationView {
    DestinationView {
        name: d.name.clone(),
        kind: d.kind.clone(),
        directory: None,
        endpoint: Some(d.endpoint.clone()),
        region: Some(d.region.clone()),
        bucket: Some(d.bucket.clone()),
        prefix: Some(d.prefix.clone()),
        path_style: Some(d.path_style),
        access_key_id: Some(d.access_key_id.clone()),
        created_at: Some(d.created_at.clone()),
    }
}

fn view_of(database: &str, b: &BackupRow) -> BackupView {
    BackupView {
        id: b.id,
        database: database.to_owned(),
        engine: b.engine.clone(),
        status: b.status.clone(),
        destination: b.destination.clone(),
        location: b.location.clone(),
        size_bytes: b.size_bytes,
        sha256: b.sha256.clone(),
        error: b.error.clone(),
        key_fingerprint: b.key_fingerprint.clone(),
        schedule_id: b.schedule_id,
        started_at: b.started_at.clone(),
        finished_at: b.finished_at.clone(),
    }
}

fn schedule_view(s: &ScheduleRow, cron: Option<&croner::Cron>) -> ScheduleView {
    let now: DateTime<Utc> = Utc::now();
    ScheduleView {
        id: s.id,
        database: s.database.clone(),
        cron: s.cron.clone(),
        destination: s.destination.clone(),
        keep_last: s.keep_last,
        keep_days: s.keep_days,
        last_run_at: s.last_run_at.clone().filter(|l| *l != s.created_at),
        next_run_at: cron
            .and_then(|c| c.find_next_occurrence(&now, false).ok())
            .map(schedule::format_time),
        created_at: s.created_at.clone(),
    }
}
