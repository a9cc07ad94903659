//! The copy itself: SQLite's online backup API from a database into a new file, which is
//! written under a temporary name and appears under its real name only once it is complete
//! and on disk.

use std::fs::File;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rusqlite::backup::{Backup, StepResult};
use rusqlite::{Connection, OpenFlags};

use super::StateBackupError;
use super::check::{self, Facts};

/// How long a copy waits for a database that is busy (another connection recovering it)
/// before it gives up. The daemon's own writes never make it wait: WAL readers do not.
const BUSY_WAIT: Duration = Duration::from_secs(10);
const BUSY_PAUSE: Duration = Duration::from_millis(50);

/// Copies the database `db` to `path` (replacing it), 0600; returns what the copy holds.
pub(super) fn to_file(db: &Path, path: &Path) -> Result<Facts, StateBackupError> {
    let tmp = TempFile::create_beside(path)?;
    let copy_error = |source| StateBackupError::Copy {
        from: db.to_owned(),
        to: path.to_owned(),
        source,
    };
    let src = open_read_only(db).map_err(copy_error)?;
    let mut dst = Connection::open(tmp.path()).map_err(copy_error)?;
    online_copy(&src, &mut dst).map_err(copy_error)?;
    drop(src);
    let facts = self_contained(&dst)
        .and_then(|()| check::facts(&dst))
        .map_err(copy_error)?;
    dst.close().map_err(|(_, e)| copy_error(e))?;
    tmp.persist(path)?;
    Ok(facts)
}

/// Opens a database without any right to change it (nor to create it).
pub(super) fn open_read_only(path: &Path) -> Result<Connection, rusqlite::Error> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(BUSY_WAIT)?;
    Ok(conn)
}

/// Copies every page of `src` into `dst` in one step: one read transaction, so the copy is one
/// consistent snapshot, and a write the daemon makes meanwhile cannot make SQLite start the
/// copy over, as it would between smaller steps.
pub(super) fn online_copy(src: &Connection, dst: &mut Connection) -> Result<(), rusqlite::Error> {
    let backup = Backup::new(src, dst)?;
    let deadline = Instant::now() + BUSY_WAIT;
    loop {
        match backup.step(-1)? {
            StepResult::Done => return Ok(()),
            // `More` cannot follow a step of every page; treat it like a busy database.
            StepResult::Busy | StepResult::Locked | StepResult::More
                if Instant::now() < deadline =>
            {
                std::thread::sleep(BUSY_PAUSE)
            }
            _ => {
                return Err(rusqlite::Error::SqliteFailure(
                    rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY),
                    Some(format!("the database stayed busy for {BUSY_WAIT:?}")),
                ));
            }
        }
    }
}

/// Makes a copy one file: the backup API copies the WAL mode along with the pages, and a file
/// in WAL mode keeps part of itself in a `-wal` file that a rename would leave behind.
pub(super) fn self_contained(conn: &Connection) -> Result<(), rusqlite::Error> {
    let mode: String =
        conn.pragma_update_and_check(None, "journal_mode", "DELETE", |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("delete") {
        return Err(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ERROR),
            Some(format!("cannot leave WAL mode (journal_mode is {mode})")),
        ));
    }
    Ok(())
}

/// A new file next to its destination, removed when dropped unless [`TempFile::persist`]ed.
pub(super) struct TempFile {
    path: PathBuf,
    kept: bool,
}

impl TempFile {
    /// Creates `.<name>.tmp-<pid>` in `target`'s directory, empty and 0600 from the start: the
    /// copy holds password hashes and sealed secrets. (SQLite takes an empty file as a new
    /// database.)
    pub(super) fn create_beside(target: &Path) -> Result<TempFile, StateBackupError> {
        let name = target
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "rivetr.db".to_owned());
        let path = target.with_file_name(format!(".{name}.tmp-{}", std::process::id()));
        // A leftover of an earlier run killed with the same pid.
        let _ = std::fs::remove_file(&path);
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(|source| StateBackupError::Write {
                path: path.clone(),
                source,
            })?;
        Ok(TempFile { path, kept: false })
    }

    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    /// Flushes the file, renames it to `target` and flushes the directory, so that after a
    /// crash `target` is either the old file or the whole new one.
    pub(super) fn persist(mut self, target: &Path) -> Result<(), StateBackupError> {
        let write_error = |path: &Path| {
            let path = path.to_owned();
            move |source| StateBackupError::Write { path, source }
        };
        File::open(&self.path)
            .and_then(|f| f.sync_all())
            .map_err(write_error(&self.path))?;
        std::fs::rename(&self.path, target).map_err(write_error(target))?;
        self.kept = true;
        sync_dir(target).map_err(write_error(target))
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.kept {
            let _ = std::fs::remove_file(&self.path);
            // SQLite's journal of the copy, if it was interrupted mid-write.
            let _ = std::fs::remove_file(with_suffix(&self.path, "-journal"));
        }
    }
}

/// Flushes the directory holding `path`, so a rename in it survives a crash.
pub(super) fn sync_dir(path: &Path) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    File::open(dir)?.sync_all()
}

/// `path` with `suffix` appended to its file name (`rivetr.db` -> `rivetr.db-wal`).
pub(super) fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn wal_db(path: &Path) -> Connection {
        let conn = Connection::open(path).unwrap();
        conn.pragma_update(None, "journal_mode", "WAL").unwrap();
        conn.execute_batch("CREATE TABLE apps (x); INSERT INTO apps VALUES (1), (2);")
            .unwrap();
        conn
    }

    #[test]
    fn a_copy_of_an_open_wal_database_is_one_0600_file_with_every_row() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("live.db");
        // Kept open, with its rows still in the WAL, as under a running daemon.
        let live = wal_db(&db);
        let out = dir.path().join("copy.db");
        let facts = to_file(&db, &out).unwrap();
        assert_eq!(facts.apps, 2);
        assert_eq!(
            std::fs::metadata(&out).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert!(!with_suffix(&out, "-wal").exists());
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert!(!names.iter().any(|n| n.contains(".tmp-")), "{names:?}");
        let copy = open_read_only(&out).unwrap();
        let n: i64 = copy
            .query_row("SELECT COUNT(*) FROM apps", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 2);
        let mode: String = copy
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "delete");
        drop(live);
    }

    #[test]
    fn a_failed_copy_leaves_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let garbage = dir.path().join("garbage.db");
        std::fs::write(&garbage, vec![b'x'; 8192]).unwrap();
        let out = dir.path().join("copy.db");
        assert!(to_file(&garbage, &out).is_err());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
