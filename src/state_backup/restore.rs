//! `rivetr restore`: a backup back in place of `rivetr.db`, with the daemon stopped.
//!
//! The order matters for a crash at any point: the backup is first copied and checked in the
//! state directory under a temporary name; the current database's WAL is folded into it and
//! the file is linked under a side name; only then does one rename put the new file in
//! place. Until that rename, `rivetr.db` is the old database, whole.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use rusqlite::Connection;

use super::check::{self, Facts};
use super::copy::{self, TempFile, with_suffix};
use super::{DB_FILE, StateBackupError, utc_stamp};
use crate::db::lock::{LockError, StateLock, give_to_owner_of};
use crate::secrets::{CREDENTIAL_NAME, STATE_KEY_FILE, Secrets, key};

/// What [`restore`] is asked to do.
#[derive(Debug, Clone)]
pub struct RestoreOptions {
    pub state_dir: PathBuf,
    /// The backup file.
    pub from: PathBuf,
    /// The key file to check the backup's fingerprint against; without it, the key is looked
    /// for where `rivetr serve` looks.
    pub key: Option<PathBuf>,
    /// systemd's credentials directory, when set (`$CREDENTIALS_DIRECTORY`).
    pub credentials_dir: Option<PathBuf>,
    /// Restore even when the key on this machine does not match or is missing.
    pub force: bool,
}

/// How the backup's key fingerprint compares with the key on this machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyCheck {
    /// The key at this path is the one the backup was made with.
    Matches(PathBuf),
    /// The backup records no key: it holds no encrypted value.
    NotRecorded,
    /// Restored with `--force` although the key did not match or was missing: why it did
    /// not, for the warning.
    Forced(String),
}

/// What [`restore`] did.
#[derive(Debug, Clone)]
pub struct RestoreReport {
    /// The restored database (`<state dir>/rivetr.db`).
    pub db: PathBuf,
    pub facts: Facts,
    pub key: KeyCheck,
    /// Where the database it replaced was kept, if there was one.
    pub previous: Option<PathBuf>,
}

/// Replaces `<state dir>/rivetr.db` with the backup `opts.from`.
pub fn restore(opts: &RestoreOptions) -> Result<RestoreReport, StateBackupError> {
    let from = &opts.from;
    if !from.is_file() {
        return Err(StateBackupError::Read {
            path: from.clone(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
        });
    }
    std::fs::create_dir_all(&opts.state_dir).map_err(|source| StateBackupError::Write {
        path: opts.state_dir.clone(),
        source,
    })?;
    let _lock = lock(&opts.state_dir)?;
    let db = opts.state_dir.join(DB_FILE);
    let tmp = TempFile::create_beside(&db)?;
    let facts = copy_and_verify(from, tmp.path())?;
    let key = check_key(&facts, opts)?;
    // The new file gets the owner of the one it replaces (root restoring for the service
    // user), else of the state directory.
    let owner_like = if db.exists() { &db } else { &opts.state_dir };
    give_to_owner_of(tmp.path(), owner_like);
    let previous = set_aside(&db)?;
    tmp.persist(&db)?;
    Ok(RestoreReport {
        db,
        facts,
        key,
        previous,
    })
}

/// The state directory's lock, exclusively: refused while a daemon runs on it.
fn lock(state_dir: &Path) -> Result<StateLock, StateBackupError> {
    StateLock::exclusive(state_dir).map_err(|e| match e {
        LockError::Held { path } => StateBackupError::DaemonRunning {
            state_dir: state_dir.to_owned(),
            lock: path,
        },
        other => StateBackupError::Lock(other),
    })
}

/// Copies the backup into `tmp` with the backup API (which also takes in a `-wal` beside the
/// backup, should it be a raw copy of a live database) and checks the copy, which is what
/// goes in place.
fn copy_and_verify(from: &Path, tmp: &Path) -> Result<Facts, StateBackupError> {
    let not_rivetr = |e: rusqlite::Error| StateBackupError::NotRivetr {
        path: from.to_owned(),
        reason: e.to_string(),
    };
    let src = copy::open_read_only(from).map_err(not_rivetr)?;
    // Reading the schema is the first read: a file that is not SQLite fails here, and is
    // named as such rather than as a failed copy.
    src.query_row("SELECT COUNT(*) FROM sqlite_master", [], |r| {
        r.get::<_, i64>(0)
    })
    .map_err(not_rivetr)?;
    let copy_error = |source| StateBackupError::Copy {
        from: from.to_owned(),
        to: tmp.to_owned(),
        source,
    };
    let mut dst = Connection::open(tmp).map_err(copy_error)?;
    copy::online_copy(&src, &mut dst).map_err(copy_error)?;
    drop(src);
    copy::self_contained(&dst).map_err(copy_error)?;
    let facts = check::verify(&dst, from)?;
    dst.close().map_err(|(_, e)| copy_error(e))?;
    Ok(facts)
}

/// Compares the backup's key fingerprint with the key on this machine; a mismatch or a
/// missing key is refused unless forced, since the daemon would refuse to start on it.
fn check_key(facts: &Facts, opts: &RestoreOptions) -> Result<KeyCheck, StateBackupError> {
    let Some(expected) = facts.fingerprint.clone() else {
        return Ok(KeyCheck::NotRecorded);
    };
    let refusal = match local_key(opts)? {
        Some((found, path)) if found == expected => return Ok(KeyCheck::Matches(path)),
        Some((found, key_path)) => StateBackupError::KeyMismatch {
            from: opts.from.clone(),
            key: key_path,
            expected,
            found,
        },
        None => StateBackupError::KeyMissing {
            from: opts.from.clone(),
            expected,
            looked: looked_for(opts),
        },
    };
    if opts.force {
        Ok(KeyCheck::Forced(refusal.to_string()))
    } else {
        Err(refusal)
    }
}

/// The fingerprint and path of the key `--key` names, else of the one `rivetr serve` would
/// load; `None` when there is none.
fn local_key(opts: &RestoreOptions) -> Result<Option<(String, PathBuf)>, StateBackupError> {
    if let Some(path) = &opts.key {
        let key = key::read(path)?.ok_or_else(|| StateBackupError::Read {
            path: path.clone(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such key file"),
        })?;
        return Ok(Some((
            Secrets::new(&key).fingerprint().to_owned(),
            path.clone(),
        )));
    }
    let found = key::find(opts.credentials_dir.as_deref(), &opts.state_dir)?;
    Ok(found.map(|(key, origin)| {
        (
            Secrets::new(&key).fingerprint().to_owned(),
            origin.path().to_owned(),
        )
    }))
}

fn looked_for(opts: &RestoreOptions) -> Vec<PathBuf> {
    let mut looked: Vec<PathBuf> = opts.key.iter().cloned().collect();
    looked.extend(opts.credentials_dir.iter().map(|d| d.join(CREDENTIAL_NAME)));
    looked.push(opts.state_dir.join(STATE_KEY_FILE));
    looked
}

/// Keeps the current database, if any, as `rivetr.db.before-restore.<time>.bak` and returns
/// that path. Its WAL is folded in first: a `-wal` left beside the new file would be read as
/// part of it.
fn set_aside(db: &Path) -> Result<Option<PathBuf>, StateBackupError> {
    if !db.exists() {
        return Ok(None);
    }
    let set_aside_error = |reason: String| StateBackupError::SetAside {
        path: db.to_owned(),
        reason,
    };
    fold_wal(db).map_err(set_aside_error)?;
    let side = db.with_file_name(format!("{DB_FILE}.before-restore.{}.bak", utc_stamp()));
    // A hard link keeps the old file as it is, instantly; the rename that follows then only
    // swaps the name `rivetr.db` over to the new file.
    if let Err(link) = std::fs::hard_link(db, &side) {
        std::fs::copy(db, &side)
            .map_err(|copy| set_aside_error(format!("link: {link}; copy: {copy}")))?;
    }
    // Like a backup, it holds token hashes and sealed secrets: only its owner reads it.
    std::fs::set_permissions(&side, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| set_aside_error(format!("chmod 600 {}: {e}", side.display())))?;
    Ok(Some(side))
}

/// Checkpoints the database's WAL into the file and removes the `-wal` and `-shm` files.
fn fold_wal(db: &Path) -> Result<(), String> {
    let conn = Connection::open(db).map_err(|e| e.to_string())?;
    // (busy, frames in the WAL, frames checkpointed); busy means another connection.
    let (busy, _, _): (i64, i64, i64) = conn
        .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .map_err(|e| e.to_string())?;
    if busy != 0 {
        return Err("another process has it open (the WAL could not be checkpointed)".into());
    }
    conn.close().map_err(|(_, e)| e.to_string())?;
    let wal = with_suffix(db, "-wal");
    if std::fs::metadata(&wal).is_ok_and(|m| m.len() > 0) {
        return Err(format!(
            "{} still holds data after a checkpoint",
            wal.display()
        ));
    }
    for side in [wal, with_suffix(db, "-shm")] {
        match std::fs::remove_file(&side) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(format!("cannot remove {}: {e}", side.display()));
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_set_aside_database_keeps_what_only_its_wal_held() {
        let dir = tempfile::tempdir().unwrap();
        let live = dir.path().join("live.db");
        let conn = Connection::open(&live).unwrap();
        conn.pragma_update(None, "journal_mode", "WAL").unwrap();
        conn.execute_batch("CREATE TABLE t (x); INSERT INTO t VALUES (1), (2), (3);")
            .unwrap();
        // What a crash leaves: the file and a WAL holding committed rows not yet checkpointed.
        let db = dir.path().join(DB_FILE);
        std::fs::copy(&live, &db).unwrap();
        std::fs::copy(with_suffix(&live, "-wal"), with_suffix(&db, "-wal")).unwrap();
        assert!(std::fs::metadata(with_suffix(&db, "-wal")).unwrap().len() > 0);

        let side = set_aside(&db).unwrap().unwrap();
        let mode = std::fs::metadata(&side).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(!with_suffix(&db, "-wal").exists());
        assert!(!with_suffix(&db, "-shm").exists());
        let kept = copy::open_read_only(&side).unwrap();
        let n: i64 = kept
            .query_row("SELECT COUNT(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 3);
        drop(conn);
    }
}
