//! The SQLite database: opening it, migrating it, and running queries off the async threads.
//!
//! One file (`rivetr.db` in the state directory) in WAL mode, with foreign keys on and a busy
//! timeout. All access goes through [`Db::call`], which runs the closure on tokio's blocking
//! pool, so no rusqlite call ever blocks an async worker and no lock is held across `.await`.
//! Each table's queries live in their own file in this folder as later subsystems add them;
//! [`retention`] deletes what is no longer kept, so the file stops growing.

pub mod apps;
pub mod backups;
pub mod databases;
pub mod deploy_keys;
pub mod deployment_logs;
pub mod deployments;
pub mod env_vars;
pub mod known_hosts;
pub mod lock;
mod migrate;
pub mod notifications;
pub mod pull_requests;
pub mod registry_credentials;
pub mod retention;
pub mod secret_key;
pub mod sessions;
pub mod tokens;
pub mod webhooks;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::Connection;

pub use migrate::{LATEST_VERSION, MigrateOutcome};

/// How long a statement waits for a lock held by another connection before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("cannot open database {}: {source}", path.display())]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error(
        "database {} has schema version {found}, but this Rivetr ({}) knows versions up to {known}: \
         it was written by a newer Rivetr. Run that version, or restore a backup \
         (rivetr.db.v<N>.bak) made before the upgrade",
        path.display(), crate::VERSION
    )]
    TooNew {
        path: PathBuf,
        found: usize,
        known: usize,
    },
    #[error("cannot back up {} to {} before migrating: {source}", path.display(), backup.display())]
    Backup {
        path: PathBuf,
        backup: PathBuf,
        source: rusqlite::Error,
    },
    #[error("migrating database {} failed: {source}", path.display())]
    Migrate {
        path: PathBuf,
        source: rusqlite_migration::Error,
    },
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("database task failed: {0}")]
    Task(String),
}

/// A handle to the database; cheap to clone.
#[derive(Clone)]
pub struct Db {
    conn: Arc<Mutex<Connection>>,
    instance: Arc<str>,
}

impl Db {
    /// Opens (creating if needed) and migrates the database at `path`. Blocking: call it from
    /// a synchronous context or `spawn_blocking`.
    pub fn open(path: &Path) -> Result<(Db, MigrateOutcome), DbError> {
        let mut conn = Connection::open(path).map_err(|source| DbError::Open {
            path: path.to_owned(),
            source,
        })?;
        configure(&conn).map_err(|source| DbError::Open {
            path: path.to_owned(),
            source,
        })?;
        let outcome = migrate::run(&mut conn, path)?;
        let instance: String = conn
            .query_row("SELECT id FROM instance", [], |r| r.get(0))
            .map_err(DbError::from)?;
        Ok((
            Db {
                conn: Arc::new(Mutex::new(conn)),
                instance: instance.into(),
            },
            outcome,
        ))
    }

    /// This installation's random identity (made by migration 0006), which labels what it
    /// creates in a container engine other installations may share.
    pub fn instance_id(&self) -> &str {
        &self.instance
    }

    /// Runs `f` with the connection on the blocking pool.
    pub async fn call<F, R>(&self, f: F) -> Result<R, DbError>
    where
        F: FnOnce(&mut Connection) -> Result<R, rusqlite::Error> + Send + 'static,
        R: Send + 'static,
    {
        let conn = Arc::clone(&self.conn);
        tokio::task::spawn_blocking(move || {
            // A panic in another query poisons the mutex; the connection itself is still
            // usable, so recover it rather than failing every later query.
            let mut conn = conn.lock().unwrap_or_else(|e| e.into_inner());
            f(&mut conn).map_err(DbError::from)
        })
        .await
        .map_err(|e| DbError::Task(e.to_string()))?
    }

    /// A trivial query, for health checks and the watchdog.
    pub async fn ping(&self) -> Result<(), DbError> {
        self.call(|c| c.query_row("SELECT 1", [], |_| Ok(()))).await
    }
}

/// The WAL is truncated back to this after a checkpoint: a large transaction (a long build
/// log, a VACUUM) must not leave a file of its size behind.
const WAL_SIZE_LIMIT: i64 = 16 * 1024 * 1024;

fn configure(conn: &Connection) -> Result<(), rusqlite::Error> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    // Before anything is written, so that a new database is created with it (an existing one
    // keeps its mode until retention converts it; see `retention`).
    conn.pragma_update(None, "auto_vacuum", "INCREMENTAL")?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "journal_size_limit", WAL_SIZE_LIMIT)?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    Ok(())
}
