//! Schema migrations: `migrations/NNNN_name.sql`, embedded at build time and applied in order.
//!
//! rusqlite_migration applies the pending files in one transaction and records the version in
//! `PRAGMA user_version`. Around it, Rivetr adds two rules of its own: a database written by a
//! newer Rivetr is refused before anything touches it, and an existing database is copied
//! (`VACUUM INTO`, a consistent snapshot) to `rivetr.db.v<old>.bak` before it is migrated.

use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use include_dir::{Dir, include_dir};
use rusqlite::Connection;
use rusqlite_migration::{M, Migrations};

use super::DbError;

static MIGRATION_DIR: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/migrations");

/// The migration files, sorted by name (`0001_...`, `0002_...`).
static FILES: LazyLock<Vec<(&'static str, &'static str)>> = LazyLock::new(|| {
    let mut files: Vec<_> = MIGRATION_DIR
        .files()
        .filter(|f| f.path().extension().is_some_and(|e| e == "sql"))
        .map(|f| {
            let name = f.path().file_name().and_then(|n| n.to_str()).unwrap_or("");
            let sql = f.contents_utf8().expect("migration files are UTF-8");
            (name, sql)
        })
        .collect();
    files.sort_by_key(|(name, _)| *name);
    files
});

/// The schema version this build migrates to.
pub static LATEST_VERSION: LazyLock<usize> = LazyLock::new(|| FILES.len());

/// What [`run`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrateOutcome {
    pub from: usize,
    pub to: usize,
    pub backup: Option<PathBuf>,
}

pub(super) fn run(conn: &mut Connection, path: &Path) -> Result<MigrateOutcome, DbError> {
    let latest = *LATEST_VERSION;
    let from: usize =
        conn.pragma_query_value(None, "user_version", |row| row.get::<_, i64>(0))? as usize;
    if from > latest {
        return Err(DbError::TooNew {
            path: path.to_owned(),
            found: from,
            known: latest,
        });
    }
    if from == latest {
        return Ok(MigrateOutcome {
            from,
            to: latest,
            backup: None,
        });
    }
    let backup = if from > 0 {
        Some(back_up(conn, path, from)?)
    } else {
        None
    };
    let migrations = Migrations::new(FILES.iter().map(|(_, sql)| M::up(sql)).collect());
    migrations
        .to_latest(conn)
        .map_err(|source| DbError::Migrate {
            path: path.to_owned(),
            source,
        })?;
    tracing::info!(from, to = latest, backup = ?backup, "database migrated");
    Ok(MigrateOutcome {
        from,
        to: latest,
        backup,
    })
}

/// Writes a consistent copy of the database next to it, named with its schema version.
fn back_up(conn: &Connection, path: &Path, version: usize) -> Result<PathBuf, DbError> {
    let mut backup = path.with_file_name(format!("rivetr.db.v{version}.bak"));
    if backup.exists() {
        // An earlier attempt at the same upgrade already left a copy; keep it and add another.
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        backup = path.with_file_name(format!("rivetr.db.v{version}.{stamp}.bak"));
    }
    conn.execute("VACUUM INTO ?1", [backup.to_string_lossy()])
        .map_err(|source| DbError::Backup {
            path: path.to_owned(),
            backup: backup.clone(),
            source,
        })?;
    Ok(backup)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_numbered_from_one_without_gaps() {
        assert!(!FILES.is_empty());
        for (i, (name, _)) in FILES.iter().enumerate() {
            let prefix = format!("{:04}_", i + 1);
            assert!(
                name.starts_with(&prefix),
                "{name} should start with {prefix}"
            );
        }
    }

    #[test]
    fn migrations_are_valid() {
        let migrations = Migrations::new(FILES.iter().map(|(_, sql)| M::up(sql)).collect());
        migrations.validate().unwrap();
    }
}
