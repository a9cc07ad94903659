//! [`Backups`]: what the API and the schedule loop call. A backup is a row from the moment
//! it starts; it holds its database's lock while the dump runs (a stop or delete waits for
//! it), and ends `succeeded` with its size and SHA-256 or `failed` with the reason. A
//! schedule's retention runs only after one of its backups succeeded, so failures never
//! cost a good backup.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::io::AsyncWriteExt;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::archive::{self, ArchiveError};
use super::dump::{self, BgsaveState};
use super::schedule::{self, Clock, Planned};
use crate::config::Config;
use crate::databases::kinds::DbKind;
use crate::databases::lifecycle::{self, DatabaseSpec};
use crate::databases::service::{
    DatabaseError, Databases, ManagedDatabaseView, NewDatabaseRequest,
};
use crate::db::backups::{self as rows, BackupRow, NewBackup, NewSchedule, ScheduleRow};
use crate::db::databases::DatabaseRow;
use crate::db::{Db, DbError};
use crate::runtime::{
    ContainerRuntime, ContainerState, ExecSpec, NetworkAttach, Networks, RestartPolicy, RunSpec,
    VolumeMount,
};

/// The only destination so far: files under `[databases] backup_dir`.
pub const LOCAL: &str = "local";

/// How long a Redis `BGSAVE` may take before the backup gives up.
const BGSAVE_LIMIT: Duration = Duration::from_secs(3600);

/// What can go wrong with a backup, a restore or a schedule.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error(transparent)]
    Database(#[from] DatabaseError),
    #[error("database {database} has no backup {id}")]
    NotFound { database: String, id: i64 },
    #[error("database {database} has no backup schedule {id}")]
    ScheduleNotFound { database: String, id: i64 },
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
    Db(#[from] DbError),
}

/// A backup as the API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct BackupView {
    pub id: i64,
    pub database: String,
    pub engine: String,
    /// `running`, `succeeded` or `failed`.
    pub status: String,
    /// `local`: a file on this machine.
    pub destination: String,
    /// The file's path.
    pub location: String,
    /// Bytes stored (compressed).
    pub size_bytes: Option<u64>,
    /// SHA-256 of the stored file, hex; checked again before a restore.
    pub sha256: Option<String>,
    /// Why it failed.
    pub error: Option<String>,
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

/// Backups and restores of the managed databases.
#[derive(Clone)]
pub struct Backups {
    databases: Databases,
    db: Db,
    config: Arc<ArcSwap<Config>>,
    /// Schedules were added or removed: the loop reads them again.
    changed: Arc<Notify>,
}

impl Backups {
    pub fn new(databases: Databases, db: Db, config: Arc<ArcSwap<Config>>) -> Backups {
        Backups {
            databases,
            db,
            config,
            changed: Arc::new(Notify::new()),
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

    /// Starts a backup of `database` and answers at once with it `running`.
    pub async fn start(&self, database: &str) -> Result<BackupView, BackupError> {
        let (row, backup) = self.begin(database, None).await?;
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
        let (row, backup) = self.begin(database, Some(id)).await?;
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
        let (row, backup) = self.begin(database, schedule.map(|s| s.id)).await?;
        Ok(self.complete(row, backup, schedule).await)
    }

    /// Records a new backup `running`, with the file it will be.
    async fn begin(
        &self,
        database: &str,
        schedule: Option<i64>,
    ) -> Result<(DatabaseRow, BackupRow), BackupError> {
        let row = self.databases.row(database).await?;
        let kind = self.databases.kind(&row)?;
        let stamp = Utc::now().format("%Y%m%dT%H%M%S%.3fZ");
        let location = self.directory().join(&row.name).join(format!(
            "{}-{stamp}.{}",
            row.name,
            dump::file_suffix(kind)
        ));
        let location = location.to_string_lossy().into_owned();
        let (database_id, engine) = (row.id, kind.as_str());
        let backup = self
            .db
            .call(move |c| {
                let id = rows::insert_backup(
                    c,
                    &NewBackup {
                        database_id,
                        schedule_id: schedule,
                        engine,
                        destination: LOCAL,
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
        let path = PathBuf::from(&backup.location);
        let result = self.dump(&row, &path).await;
        drop(held);
        let id = backup.id;
        let recorded = match &result {
            Ok(written) => {
                tracing::info!(database = %row.name, backup = id, bytes = written.size, sha256 = %written.sha256, "backup taken");
                let (size, sha) = (written.size, written.sha256.clone());
                self.db
                    .call(move |c| rows::finish_succeeded(c, id, size, &sha))
                    .await
            }
            Err(e) => {
                tracing::error!(database = %row.name, backup = id, error = %e, "backup failed");
                let reason = e.to_string();
                self.db
                    .call(move |c| rows::finish_failed(c, id, &reason))
                    .await
            }
        };
        if let Err(e) = recorded {
            tracing::error!(database = %row.name, backup = id, error = %e, "cannot record how the backup ended");
        }
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

    /// Streams the engine's dump of the database into `path`.
    async fn dump(&self, row: &DatabaseRow, path: &Path) -> Result<archive::Written, BackupError> {
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
        let written = archive::write(&mut session.output, path).await?;
        let exit_code = exit_code(rt.as_ref(), &session.id).await?;
        if exit_code != 0 {
            let _ = tokio::fs::remove_file(path).await;
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
        match tokio::fs::remove_file(&backup.location).await {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(ArchiveError::Io {
                    path: backup.location.clone().into(),
                    source: e,
                }
                .into());
            }
            _ => {}
        }
        let id = backup.id;
        self.db.call(move |c| rows::delete_backup(c, id)).await?;
        tracing::info!(backup = id, location = %backup.location, "old backup removed");
        Ok(())
    }

    /// A database's backups, newest first.
    pub async fn list(&self, database: &str) -> Result<Vec<BackupView>, BackupError> {
        let row = self.databases.row(database).await?;
        let id = row.id;
        let backups = self.db.call(move |c| rows::backups_of(c, id)).await?;
        Ok(backups.iter().map(|b| view_of(&row.name, b)).collect())
    }

    /// One good backup's file, for download.
    pub async fn file(&self, database: &str, id: i64) -> Result<BackupView, BackupError> {
        let backup = self.good_backup(database, id).await?;
        Ok(view_of(database, &backup))
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
        let backup = self.good_backup(database, id).await?;
        let source = self.databases.row(database).await?;
        let path = PathBuf::from(&backup.location);
        archive::verify(&path, backup.sha256.as_deref().unwrap_or_default()).await?;
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
            Some(command) => restore_by_tool(rt.as_ref(), &spec, &command, &path).await,
            None => {
                let links = self.databases.linked_networks(rt.as_ref(), &row).await?;
                let within = self.databases.ready_within();
                restore_redis_files(rt.as_ref(), &spec, &path, &links, within).await
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
        if destination != LOCAL {
            return Err(BackupError::Invalid {
                field: "destination",
                message: format!("unknown destination `{destination}` (expected `local`)"),
            });
        }
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

    /// At startup: backups left `running` by a Rivetr that stopped are marked failed and
    /// their partial files removed.
    pub async fn recover_interrupted(&self) -> Result<(), BackupError> {
        let interrupted = self.db.call(|c| rows::fail_interrupted(c)).await?;
        for backup in interrupted {
            let path = PathBuf::from(&backup.location);
            for leftover in [archive::partial_path(&path), path] {
                let _ = tokio::fs::remove_file(&leftover).await;
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
    path: &Path,
) -> Result<(), BackupError> {
    let container = running_container(rt, spec).await?;
    feed(rt, &container, command, path).await
}

/// Runs `command` in `container` with the dump at `path` on its standard input and checks
/// that it succeeded.
async fn feed(
    rt: &dyn ContainerRuntime,
    container: &str,
    command: &ExecSpec,
    path: &Path,
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
    let mut dump = archive::open_dump(path).await?;
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
    if let Err(e) = written
        && code == 0
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
    path: &Path,
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
    let fed = feed(rt, &helper.id, &script, path).await;
    if let Err(e) = rt.remove(&helper.id).await {
        tracing::warn!(container = %helper_name, error = %e, "cannot remove the restore helper");
    }
    let brought_up = lifecycle::bring_up(rt, spec, links, within).await;
    fed?;
    brought_up.map_err(DatabaseError::from)?;
    Ok(())
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
