//! `rivetr token create|list|revoke`: token administration straight on the database, for
//! the administrator on the host (for example when every token is lost or revoked).
//!
//! It works beside a running daemon (SQLite's WAL lets both write; a revocation holds from the
//! daemon's next request, which looks tokens up without a cache). It never creates a database:
//! one made by `root` would be unwritable by the `rivetr` service user. For the same reason,
//! when run as root it hands the `-wal`/`-shm` files SQLite may leave behind back to the
//! database file's owner.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::{AuthError, CreatedToken};
use crate::db::tokens::{Refused, TokenRow};
use crate::db::{Db, DbError};

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error(
        "no database at {}: start `rivetr serve` once with the same configuration to create it \
         (the state directory is [server] state_dir, else $STATE_DIRECTORY, else ./data)",
        .0.display()
    )]
    NoDatabase(PathBuf),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error("invalid token name: {0}")]
    InvalidName(String),
    #[error("a token named `{0}` already exists; revoke it or choose another name")]
    NameTaken(String),
    #[error("no token with id {0}")]
    NotFound(i64),
    #[error("token {id} was already revoked at {at}")]
    AlreadyRevoked { id: i64, at: String },
}

impl AdminError {
    /// Bad input from the command line, rather than a failure: exit status 2.
    pub fn is_usage(&self) -> bool {
        matches!(self, AdminError::InvalidName(_))
    }
}

/// The database of `state_dir`, which must exist already.
pub fn open_existing(state_dir: &Path) -> Result<Db, AdminError> {
    let path = state_dir.join("rivetr.db");
    if !path.is_file() {
        return Err(AdminError::NoDatabase(path));
    }
    let (db, _) = Db::open(&path)?;
    Ok(db)
}

pub async fn create(db: &Db, name: &str) -> Result<CreatedToken, AdminError> {
    super::validate_name(name).map_err(AdminError::InvalidName)?;
    super::create(db, name)
        .await?
        .map_err(|_| AdminError::NameTaken(name.to_owned()))
}

pub async fn list(db: &Db) -> Result<Vec<TokenRow>, AdminError> {
    Ok(db.call(crate::db::tokens::list).await?)
}

pub async fn revoke(db: &Db, id: i64) -> Result<TokenRow, AdminError> {
    match db.call(move |c| crate::db::tokens::revoke(c, id)).await? {
        Ok(row) => Ok(row),
        Err(Refused::NotFound) => Err(AdminError::NotFound(id)),
        Err(Refused::AlreadyRevoked(at)) => Err(AdminError::AlreadyRevoked { id, at }),
        Err(Refused::NameTaken) => unreachable!("revoking never inserts"),
    }
}

/// Gives the SQLite side files back to the owner of `rivetr.db` if this process (root)
/// created them. Call after the database is closed.
pub fn restore_ownership(state_dir: &Path) {
    let Ok(db_meta) = std::fs::metadata(state_dir.join("rivetr.db")) else {
        return;
    };
    for side in ["rivetr.db-wal", "rivetr.db-shm"] {
        let path = state_dir.join(side);
        let Ok(meta) = std::fs::metadata(&path) else {
            continue;
        };
        if meta.uid() != db_meta.uid() || meta.gid() != db_meta.gid() {
            if let Err(e) =
                std::os::unix::fs::chown(&path, Some(db_meta.uid()), Some(db_meta.gid()))
            {
                eprintln!(
                    "rivetr: warning: cannot give {} back to the database's owner: {e}",
                    path.display()
                );
            }
        }
    }
}

/// Tokens as a table for people.
pub fn table(rows: &[TokenRow]) -> String {
    let mut lines = vec![[
        "ID".to_owned(),
        "NAME".to_owned(),
        "CREATED".to_owned(),
        "LAST USED".to_owned(),
        "REVOKED".to_owned(),
    ]];
    for r in rows {
        lines.push([
            r.id.to_string(),
            r.name.clone(),
            r.created_at.clone(),
            r.last_used_at.clone().unwrap_or_else(|| "never".to_owned()),
            r.revoked_at.clone().unwrap_or_else(|| "-".to_owned()),
        ]);
    }
    let widths: Vec<usize> = (0..5)
        .map(|i| {
            lines
                .iter()
                .map(|l| l[i].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for line in &lines {
        let cells: Vec<String> = line
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn create_list_revoke() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            open_existing(dir.path()),
            Err(AdminError::NoDatabase(_))
        ));
        drop(Db::open(&dir.path().join("rivetr.db")).unwrap());
        let db = open_existing(dir.path()).unwrap();

        let created = create(&db, "ci").await.unwrap();
        assert!(super::super::well_formed(created.token.expose()));
        assert!(matches!(
            create(&db, "ci").await,
            Err(AdminError::NameTaken(_))
        ));
        let err = create(&db, "").await.unwrap_err();
        assert!(err.is_usage(), "{err}");

        let rows = list(&db).await.unwrap();
        assert_eq!(rows.len(), 1);
        let text = table(&rows);
        assert!(text.starts_with("ID  NAME"), "{text}");
        assert!(text.contains("never"), "{text}");
        assert!(!text.contains(created.token.expose()));

        let revoked = revoke(&db, created.row.id).await.unwrap();
        assert!(revoked.revoked_at.is_some());
        assert!(matches!(
            revoke(&db, created.row.id).await,
            Err(AdminError::AlreadyRevoked { .. })
        ));
        assert!(matches!(
            revoke(&db, 999).await,
            Err(AdminError::NotFound(999))
        ));
        // A revoked token frees its name.
        create(&db, "ci").await.unwrap();
    }
}
