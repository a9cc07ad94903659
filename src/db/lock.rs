//! The state directory's lock: `<state dir>/rivetr.lock`, an advisory `flock(2)` lock that
//! tells `rivetr restore` whether a daemon has the database open.
//!
//! `rivetr serve` holds a shared lock for as long as it runs; `rivetr restore` takes an
//! exclusive one without waiting, so it fails at once while any daemon runs on the directory,
//! and a daemon started during a restore refuses to start instead of opening a database that
//! is being replaced. Shared (not exclusive) for `serve`, so nothing changes for two daemons
//! that share a state directory today. The kernel drops the lock when the process ends,
//! however it ends, so a crash never leaves a stale lock behind (unlike a pid file).

use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// The lock file's name in the state directory.
pub const LOCK_FILE: &str = "rivetr.lock";

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("cannot open the lock file {}: {source}", path.display())]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot lock {}: {source}", path.display())]
    Lock {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Another process holds the lock in a mode that conflicts with the one asked for.
    #[error("{} is locked by another process", path.display())]
    Held { path: PathBuf },
}

/// A held lock; released when dropped (or when the process ends).
#[derive(Debug)]
pub struct StateLock {
    // Only held for its lock: closing the file releases it.
    _file: File,
    path: PathBuf,
}

impl StateLock {
    /// What `rivetr serve` holds while it runs.
    pub fn shared(state_dir: &Path) -> Result<StateLock, LockError> {
        StateLock::take(state_dir, libc::LOCK_SH)
    }

    /// What `rivetr restore` holds while it replaces the database.
    pub fn exclusive(state_dir: &Path) -> Result<StateLock, LockError> {
        StateLock::take(state_dir, libc::LOCK_EX)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn take(state_dir: &Path, mode: libc::c_int) -> Result<StateLock, LockError> {
        let path = state_dir.join(LOCK_FILE);
        let file = open(&path, state_dir)?;
        // SAFETY: flock(2) on a descriptor this function owns.
        let rc = unsafe { libc::flock(file.as_raw_fd(), mode | libc::LOCK_NB) };
        if rc != 0 {
            let source = std::io::Error::last_os_error();
            if source.raw_os_error() == Some(libc::EWOULDBLOCK) {
                return Err(LockError::Held { path });
            }
            return Err(LockError::Lock { path, source });
        }
        Ok(StateLock { _file: file, path })
    }
}

/// Opens (creating if needed) the lock file. A file root creates gets the state directory's
/// owner, so the service user can still open it afterwards.
fn open(path: &Path, state_dir: &Path) -> Result<File, LockError> {
    let error = |source| LockError::Open {
        path: path.to_owned(),
        source,
    };
    let existed = path.exists();
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        // The file holds nothing; only its lock matters.
        .truncate(false)
        .mode(0o600)
        .open(path)
        .map_err(error)?;
    if !existed {
        give_to_owner_of(path, state_dir);
    }
    Ok(file)
}

/// Gives `path` the owner and group of `like` when they differ (only root can), warning when
/// that fails: the file still works for this process.
pub fn give_to_owner_of(path: &Path, like: &Path) {
    let (Ok(meta), Ok(like_meta)) = (std::fs::metadata(path), std::fs::metadata(like)) else {
        return;
    };
    if meta.uid() == like_meta.uid() && meta.gid() == like_meta.gid() {
        return;
    }
    if let Err(e) = std::os::unix::fs::chown(path, Some(like_meta.uid()), Some(like_meta.gid())) {
        eprintln!(
            "rivetr: warning: cannot give {} the owner of {}: {e}",
            path.display(),
            like.display()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_locks_coexist_and_exclude_an_exclusive_one() {
        let dir = tempfile::tempdir().unwrap();
        let a = StateLock::shared(dir.path()).unwrap();
        let b = StateLock::shared(dir.path()).unwrap();
        assert!(matches!(
            StateLock::exclusive(dir.path()),
            Err(LockError::Held { .. })
        ));
        drop((a, b));
        let x = StateLock::exclusive(dir.path()).unwrap();
        assert_eq!(x.path(), dir.path().join(LOCK_FILE));
        assert!(matches!(
            StateLock::shared(dir.path()),
            Err(LockError::Held { .. })
        ));
    }
}
