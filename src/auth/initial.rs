//! The first API token of a fresh install: created at the first start when no token was ever
//! made, written to `<state dir>/initial-admin-token` (mode 0600), and never logged; the log
//! names only the file.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::AuthError;
use crate::db::Db;

/// The file in the state directory that holds the first token.
pub const INITIAL_TOKEN_FILE: &str = "initial-admin-token";
/// The name the first token is listed under.
pub const INITIAL_TOKEN_NAME: &str = "initial-admin";

/// Creates the first token when the database never had one. Returns the file it was written
/// to, or `None` when tokens already exist (revoking every token does not bring this back:
/// the administrator uses `rivetr token create` on the host).
pub async fn ensure_initial_token(db: &Db, state_dir: &Path) -> Result<Option<PathBuf>, AuthError> {
    if !db.call(crate::db::tokens::none_ever).await? {
        return Ok(None);
    }
    let token = super::generate().map_err(|e| AuthError::Random(e.to_string()))?;
    let path = state_dir.join(INITIAL_TOKEN_FILE);
    // The file first: a token in the database that no one can read would lock the API until
    // someone ran `rivetr token create` on the host.
    write_private(&path, format!("{}\n", token.expose()).as_bytes())?;
    let digest = super::hash(token.expose());
    let inserted = db
        .call(move |c| crate::db::tokens::insert(c, INITIAL_TOKEN_NAME, &digest))
        .await;
    match inserted {
        Ok(Ok(_)) => {
            tracing::info!(path = %path.display(), "created the first API token; it is in this file (mode 0600)");
            Ok(Some(path))
        }
        Ok(Err(refused)) => {
            // Another process created a token with that name in between: keep theirs.
            let _ = std::fs::remove_file(&path);
            tracing::info!(
                ?refused,
                "a token appeared while creating the first one; not creating another"
            );
            Ok(None)
        }
        Err(e) => {
            let _ = std::fs::remove_file(&path);
            Err(e.into())
        }
    }
}

/// Writes `bytes` to `path` through a temporary file created 0600, then renames it into place,
/// so the file is never readable by others and never half-written.
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), AuthError> {
    let error = |source| AuthError::WriteFile {
        path: path.to_owned(),
        source,
    };
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(error)?;
    file.write_all(bytes).map_err(error)?;
    file.sync_all().map_err(error)?;
    std::fs::rename(&tmp, path).map_err(error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[tokio::test]
    async fn first_start_writes_a_0600_token_file_once() {
        let dir = tempfile::tempdir().unwrap();
        let (db, _) = Db::open(&dir.path().join("rivetr.db")).unwrap();
        let path = ensure_initial_token(&db, dir.path())
            .await
            .unwrap()
            .unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        let token = std::fs::read_to_string(&path).unwrap();
        let token = token.trim_end();
        assert!(super::super::well_formed(token), "{token}");
        let digest = super::super::hash(token);
        let lookup = db
            .call(move |c| crate::db::tokens::authenticate(c, &digest))
            .await
            .unwrap();
        assert!(matches!(lookup, crate::db::tokens::Lookup::Valid { .. }));

        // A second start creates nothing and leaves the file alone.
        assert!(
            ensure_initial_token(&db, dir.path())
                .await
                .unwrap()
                .is_none()
        );
        assert_eq!(std::fs::read_to_string(&path).unwrap().trim_end(), token);
    }
}
