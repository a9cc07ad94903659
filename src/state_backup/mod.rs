//! Rivetr's own state: `rivetr backup` and `rivetr restore` of `rivetr.db`.
//!
//! A backup is an online, consistent copy made with SQLite's backup API ([`copy`]), so the
//! daemon keeps serving (WAL: it never waits for the copy). The copy is one self-contained
//! SQLite file (rollback journal, no `-wal` beside it), mode 0600, written under a temporary
//! name, flushed and renamed, so a crash never leaves a half-written file under the final
//! name. It carries the secret key's fingerprint in its `secret_key` row, the same row the
//! daemon checks at startup; the key itself is never copied: it must be backed up apart.
//!
//! A restore ([`restore`]) needs the daemon stopped (the state directory's lock,
//! [`crate::db::lock`]), checks the file ([`check`]): SQLite's integrity check, Rivetr's
//! tables, a schema version this binary knows, and the key on this machine against the
//! recorded fingerprint. It keeps the database it replaces as a side file and puts the new
//! one in place with a rename.
//!
//! This module works on files only: it never talks to the API nor to a container engine.

mod check;
mod copy;
mod restore;

use std::path::{Path, PathBuf};

pub use check::Facts;
pub use restore::{KeyCheck, RestoreOptions, RestoreReport, restore};

/// The database's file name in the state directory.
pub const DB_FILE: &str = "rivetr.db";

#[derive(Debug, thiserror::Error)]
pub enum StateBackupError {
    #[error(
        "no database at {}: nothing to back up (the state directory is [server] state_dir, \
         else $STATE_DIRECTORY, else ./data; a packaged Rivetr uses /var/lib/rivetr)",
        .0.display()
    )]
    NoDatabase(PathBuf),
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot copy {} to {}: {source}", from.display(), to.display())]
    Copy {
        from: PathBuf,
        to: PathBuf,
        source: rusqlite::Error,
    },
    #[error("{} is not a Rivetr database: {reason}", path.display())]
    NotRivetr { path: PathBuf, reason: String },
    #[error(
        "{} has schema version {found}, but this Rivetr ({}) knows versions up to {known}: \
         it was made by a newer Rivetr. Restore it with that version",
        path.display(), crate::VERSION
    )]
    TooNew {
        path: PathBuf,
        found: usize,
        known: usize,
    },
    #[error(
        "Rivetr is running on {} (a `rivetr serve` holds {}): stop it first, with its sockets \
         under systemd (`systemctl stop rivetr.service rivetr-api.socket rivetr-http.socket \
         rivetr-https.socket`), so that no connection starts it again during the restore",
        state_dir.display(), lock.display()
    )]
    DaemonRunning { state_dir: PathBuf, lock: PathBuf },
    #[error(transparent)]
    Lock(#[from] crate::db::lock::LockError),
    #[error(
        "the backup {} was made with the secret key whose fingerprint is {expected}, but {} \
         has fingerprint {found}: Rivetr would refuse to start with it. Put the original key \
         in place (or name it with --key), or pass --force to restore anyway",
        from.display(), key.display()
    )]
    KeyMismatch {
        from: PathBuf,
        key: PathBuf,
        expected: String,
        found: String,
    },
    #[error(
        "the backup {} was made with the secret key whose fingerprint is {expected}, and no key \
         was found on this machine (looked for {}). Put that key in place or name it with \
         --key (a packaged Rivetr reads /etc/rivetr/rivetr.key), or pass --force to restore anyway",
        from.display(),
        looked.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(" and ")
    )]
    KeyMissing {
        from: PathBuf,
        expected: String,
        looked: Vec<PathBuf>,
    },
    // Boxed: the key errors carry paths and would make every Result here as large.
    #[error(transparent)]
    Key(Box<crate::secrets::SecretsError>),
    #[error("cannot set the current database {} aside: {reason}", path.display())]
    SetAside { path: PathBuf, reason: String },
}

impl From<crate::secrets::SecretsError> for StateBackupError {
    fn from(e: crate::secrets::SecretsError) -> Self {
        StateBackupError::Key(Box::new(e))
    }
}

/// What [`backup`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupReport {
    pub path: PathBuf,
    /// The file's size in bytes.
    pub size: u64,
    pub facts: Facts,
}

/// Copies `<state_dir>/rivetr.db` to `to` (a file, or a directory to put a dated file in)
/// while the daemon may be running.
pub fn backup(state_dir: &Path, to: &Path) -> Result<BackupReport, StateBackupError> {
    let db = state_dir.join(DB_FILE);
    if !db.is_file() {
        return Err(StateBackupError::NoDatabase(db));
    }
    let path = target_path(to);
    let facts = copy::to_file(&db, &path)?;
    let size = std::fs::metadata(&path)
        .map_err(|source| StateBackupError::Read {
            path: path.clone(),
            source,
        })?
        .len();
    Ok(BackupReport { path, size, facts })
}

/// What `rivetr backup` prints: where, how large, and the key fingerprint.
pub fn describe_backup(report: &BackupReport) -> String {
    let facts = &report.facts;
    let fingerprint = match &facts.fingerprint {
        Some(fp) => format!("key fingerprint {fp}"),
        None => "no key fingerprint recorded (no secret stored yet)".to_owned(),
    };
    format!(
        "wrote {}: {} bytes ({:.1} MiB), schema version {}, {} apps\n\
         {fingerprint}; the key itself is not in the backup: keep a copy of the key file apart\n",
        report.path.display(),
        report.size,
        report.size as f64 / (1024.0 * 1024.0),
        facts.schema_version,
        facts.apps,
    )
}

/// What `rivetr restore` prints: what went where, the key, the side file, what to do next.
pub fn describe_restore(report: &RestoreReport) -> String {
    let facts = &report.facts;
    let latest = *crate::db::LATEST_VERSION;
    let mut out = format!(
        "restored {}: schema version {}, {} apps\n",
        report.db.display(),
        facts.schema_version,
        facts.apps
    );
    if facts.schema_version < latest {
        out += &format!(
            "Rivetr migrates it to schema version {latest} at its next start (after a copy \
             rivetr.db.v{}.bak)\n",
            facts.schema_version
        );
    }
    out += &match (&report.key, &facts.fingerprint) {
        (KeyCheck::Matches(path), Some(fp)) => {
            format!("key fingerprint {fp} matches {}\n", path.display())
        }
        (KeyCheck::Forced(_), Some(fp)) => {
            format!("key fingerprint {fp} NOT checked (--force): Rivetr needs that key to start\n")
        }
        _ => "no key fingerprint recorded in the backup\n".to_owned(),
    };
    if let Some(previous) = &report.previous {
        out += &format!(
            "the database it replaced is kept as {}\n",
            previous.display()
        );
    }
    out += "start Rivetr again (systemctl start rivetr.service)\n";
    out
}

/// `to` itself, or `to/rivetr-<UTC time>.db` when `to` is a directory, so that a cron job
/// can keep one file per run.
fn target_path(to: &Path) -> PathBuf {
    if to.is_dir() {
        to.join(format!("rivetr-{}.db", utc_stamp()))
    } else {
        to.to_owned()
    }
}

/// The current UTC time as `20261202T115300Z`: sorts by time, and has no `:` for the shells
/// and file systems that mind it.
fn utc_stamp() -> String {
    let t = time::OffsetDateTime::now_utc();
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_target_gets_a_dated_file_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = target_path(dir.path());
        let name = path.file_name().unwrap().to_str().unwrap();
        assert!(
            name.starts_with("rivetr-2") && name.ends_with("Z.db"),
            "{name}"
        );
        let file = dir.path().join("x.db");
        assert_eq!(target_path(&file), file);
    }

    #[test]
    fn no_database_is_an_error_naming_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let err = backup(dir.path(), &dir.path().join("b.db")).unwrap_err();
        assert!(err.to_string().contains("rivetr.db"), "{err}");
        assert!(!dir.path().join("b.db").exists());
    }
}
