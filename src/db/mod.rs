//! The SQLite database: opening it, migrating it, and running queries off the async threads.
//!
//! One file (`rivetr.db` in the state directory) in WAL mode, with foreign keys on. All access
//! goes through [`Db::call`], which runs the closure on tokio's blocking pool, so no rusqlite
//! call ever blocks an async worker and no lock is held across `.await`.
//!
//! Another process may hold the database's write lock (an administrator's `sqlite3` with a
//! transaction open, a backup tool). Each call waits for it within a budget: background work
//! (deployments, their logs, retention) waits long, so a lock of a few seconds delays it and
//! loses nothing; an API request runs under [`with_budget`] with a short one, so it is answered
//! 503 at once rather than hanging. A full disk is reported the same way ([`Fault`]).
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

use std::cell::Cell;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use rusqlite::{Connection, ErrorCode, TransactionBehavior};

pub use migrate::{LATEST_VERSION, MigrateOutcome};

/// How long a call waits, in all (for the connection, then for another process's lock on the
/// file), outside an API request: long enough to ride out a lock held for a while.
const BACKGROUND_WAIT: Duration = Duration::from_secs(30);
/// An API request's wait per call, set by [`with_budget`] in the API's outermost layer.
pub const REQUEST_WAIT: Duration = Duration::from_secs(1);
/// SQLite's own wait is never set below this, so that a call that got the connection late
/// still rides out the short lock of a concurrent checkpoint.
const MIN_BUSY_WAIT: Duration = Duration::from_millis(50);

/// Why a call could not reach the database, as the API reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Another process (or a long call of this one) held the database past the budget.
    Locked,
    /// The file system holding the database is full.
    Full,
}

struct Budget {
    wait: Duration,
    fault: Cell<Option<Fault>>,
}

tokio::task_local! {
    static BUDGET: Budget;
}

/// Runs `fut` with every database call in it waiting at most `wait`, and says which fault, if
/// any, stopped one of them (the first seen), so that the caller can answer for it.
pub async fn with_budget<F: Future>(wait: Duration, fut: F) -> (F::Output, Option<Fault>) {
    let budget = Budget {
        wait,
        fault: Cell::new(None),
    };
    BUDGET
        .scope(budget, async {
            let out = fut.await;
            (out, BUDGET.with(|b| b.fault.get()))
        })
        .await
}

fn budget_wait() -> Duration {
    BUDGET.try_with(|b| b.wait).unwrap_or(BACKGROUND_WAIT)
}

fn note_fault(fault: Fault) {
    let _ = BUDGET.try_with(|b| {
        if b.fault.get().is_none() {
            b.fault.set(Some(fault));
        }
    });
}

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
    #[error(
        "the database was busy for {} ms: another call or process held it",
        waited.as_millis()
    )]
    Busy { waited: Duration },
    #[error("database task failed: {0}")]
    Task(String),
}

impl DbError {
    /// The fault behind this error, when it is the database's state (locked, disk full)
    /// rather than a query's.
    pub fn fault(&self) -> Option<Fault> {
        match self {
            DbError::Busy { .. } => Some(Fault::Locked),
            DbError::Sqlite(e) => match e.sqlite_error_code() {
                Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => Some(Fault::Locked),
                Some(ErrorCode::DiskFull) => Some(Fault::Full),
                _ => None,
            },
            _ => None,
        }
    }
}

/// A handle to the database; cheap to clone.
#[derive(Clone)]
pub struct Db {
    conn: Arc<Mutex<Connection>>,
    /// A second connection for [`Db::ping`] alone: a call waiting on another process's lock
    /// holds `conn` for up to its budget, and the watchdog must not take that for a hang.
    probe: Arc<Mutex<Connection>>,
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
        configure(&mut conn).map_err(|source| DbError::Open {
            path: path.to_owned(),
            source,
        })?;
        let outcome = migrate::run(&mut conn, path)?;
        let instance: String = conn
            .query_row("SELECT id FROM instance", [], |r| r.get(0))
            .map_err(DbError::from)?;
        let probe = Connection::open(path)
            .and_then(|mut probe| configure(&mut probe).map(|()| probe))
            .map_err(|source| DbError::Open {
                path: path.to_owned(),
                source,
            })?;
        Ok((
            Db {
                conn: Arc::new(Mutex::new(conn)),
                probe: Arc::new(Mutex::new(probe)),
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

    /// Runs `f` with the connection on the blocking pool, waiting for it (and for other
    /// processes' locks on the file) at most the budget of the task (see [`with_budget`]).
    pub async fn call<F, R>(&self, f: F) -> Result<R, DbError>
    where
        F: FnOnce(&mut Connection) -> Result<R, rusqlite::Error> + Send + 'static,
        R: Send + 'static,
    {
        let result = run_within(Arc::clone(&self.conn), budget_wait(), f).await;
        if let Err(e) = &result
            && let Some(fault) = e.fault()
        {
            note_fault(fault);
        }
        result
    }

    /// A query that reads the file (its schema version), on a connection of its own, for
    /// health checks and the watchdog. A write lock held by another process does not block it
    /// (WAL), so it fails only when the database itself cannot be read.
    pub async fn ping(&self) -> Result<(), DbError> {
        run_within(Arc::clone(&self.probe), BACKGROUND_WAIT, |c| {
            c.query_row("PRAGMA schema_version", [], |_| Ok(()))
        })
        .await
    }
}

async fn run_within<F, R>(conn: Arc<Mutex<Connection>>, wait: Duration, f: F) -> Result<R, DbError>
where
    F: FnOnce(&mut Connection) -> Result<R, rusqlite::Error> + Send + 'static,
    R: Send + 'static,
{
    tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        let mut conn = conn
            .try_lock_for(wait)
            .ok_or(DbError::Busy { waited: wait })?;
        let left = wait.saturating_sub(started.elapsed()).max(MIN_BUSY_WAIT);
        conn.busy_timeout(left)?;
        f(&mut conn).map_err(DbError::from)
    })
    .await
    .map_err(|e| DbError::Task(e.to_string()))?
}

/// Runs a write that may be left for later (a "last used" stamp) only if the database is free
/// now: while another process holds the write lock it is skipped at once, so a request that
/// only needed to read is not held up, nor failed, by it. The caller's wait is set again before
/// its next call ([`Db::call`]).
pub(crate) fn write_if_free(
    conn: &mut Connection,
    write: impl FnOnce(&mut Connection) -> Result<(), rusqlite::Error>,
) -> Result<(), rusqlite::Error> {
    conn.busy_timeout(Duration::ZERO)?;
    match write(conn) {
        Err(e)
            if matches!(
                e.sqlite_error_code(),
                Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
            ) =>
        {
            Ok(())
        }
        other => other,
    }
}

/// The WAL is truncated back to this after a checkpoint: a large transaction (a long build
/// log, a VACUUM) must not leave a file of its size behind.
const WAL_SIZE_LIMIT: i64 = 16 * 1024 * 1024;

fn configure(conn: &mut Connection) -> Result<(), rusqlite::Error> {
    conn.busy_timeout(BACKGROUND_WAIT)?;
    // A transaction takes the write lock when it begins: a deferred one that read first could
    // not wait for another process's lock when it came to write (SQLITE_BUSY at once, with no
    // busy handler), and the budget above would not apply.
    conn.set_transaction_behavior(TransactionBehavior::Immediate);
    // Before anything is written, so that a new database is created with it (an existing one
    // keeps its mode until retention converts it; see `retention`).
    conn.pragma_update(None, "auto_vacuum", "INCREMENTAL")?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "journal_size_limit", WAL_SIZE_LIMIT)?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    Ok(())
}
