//! Whether a file is a Rivetr database this binary can run on, and what it holds that a
//! backup or restore reports: schema version, key fingerprint, number of apps.

use std::path::Path;

use rusqlite::{Connection, OptionalExtension};

use super::StateBackupError;

/// Tables every Rivetr database has had since its first schema version.
const FIRST_TABLES: &[&str] = &["apps", "deployments", "env_vars"];

/// What a database holds, as the commands report it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Facts {
    /// `PRAGMA user_version`: the number of migrations applied.
    pub schema_version: usize,
    /// The fingerprint of the key its secrets are encrypted with; `None` before one was
    /// recorded (a database that never held a secret, or older than schema version 3).
    pub fingerprint: Option<String>,
    pub apps: i64,
}

/// Reads the facts of a database already known to be Rivetr's.
pub(super) fn facts(conn: &Connection) -> Result<Facts, rusqlite::Error> {
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    Ok(Facts {
        schema_version: usize::try_from(version).unwrap_or(0),
        fingerprint: fingerprint(conn)?,
        apps: conn.query_row("SELECT COUNT(*) FROM apps", [], |r| r.get(0))?,
    })
}

/// The recorded key fingerprint; the table itself is missing before schema version 3.
fn fingerprint(conn: &Connection) -> Result<Option<String>, rusqlite::Error> {
    if !has_table(conn, "secret_key")? {
        return Ok(None);
    }
    conn.query_row("SELECT fingerprint FROM secret_key WHERE id = 1", [], |r| {
        r.get(0)
    })
    .optional()
}

fn has_table(conn: &Connection, name: &str) -> Result<bool, rusqlite::Error> {
    conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1)",
        [name],
        |r| r.get(0),
    )
}

/// Checks that `conn` (a copy of the file `origin`, which the errors name) is an intact
/// Rivetr database of a schema version this binary knows, and returns its facts.
pub(super) fn verify(conn: &Connection, origin: &Path) -> Result<Facts, StateBackupError> {
    let not_rivetr = |reason: String| StateBackupError::NotRivetr {
        path: origin.to_owned(),
        reason,
    };
    let integrity = integrity(conn).map_err(|e| not_rivetr(e.to_string()))?;
    if integrity != "ok" {
        return Err(not_rivetr(format!(
            "SQLite's integrity check says: {integrity}"
        )));
    }
    for table in FIRST_TABLES {
        if !has_table(conn, table).map_err(|e| not_rivetr(e.to_string()))? {
            return Err(not_rivetr(format!("it has no `{table}` table")));
        }
    }
    let facts = facts(conn).map_err(|e| not_rivetr(e.to_string()))?;
    let known = *crate::db::LATEST_VERSION;
    match facts.schema_version {
        0 => Err(not_rivetr(
            "its schema version is 0 (never migrated)".into(),
        )),
        found if found > known => Err(StateBackupError::TooNew {
            path: origin.to_owned(),
            found,
            known,
        }),
        _ => Ok(facts),
    }
}

/// `PRAGMA integrity_check`'s findings as one line ("ok" when there are none). The first
/// read of a file that is not SQLite fails here, with "file is not a database".
fn integrity(conn: &Connection) -> Result<String, rusqlite::Error> {
    let mut stmt = conn.prepare("PRAGMA integrity_check(10)")?;
    let lines: Vec<String> = stmt
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    Ok(lines.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_migrated_database_passes_and_others_do_not() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rivetr.db");
        drop(crate::db::Db::open(&path).unwrap());
        let conn = Connection::open(&path).unwrap();
        let facts = verify(&conn, &path).unwrap();
        assert_eq!(facts.schema_version, *crate::db::LATEST_VERSION);
        assert_eq!(facts.apps, 0);
        assert_eq!(facts.fingerprint, None);

        conn.pragma_update(None, "user_version", 999).unwrap();
        assert!(matches!(
            verify(&conn, &path),
            Err(StateBackupError::TooNew { found: 999, .. })
        ));

        let other = Connection::open(dir.path().join("other.db")).unwrap();
        other.execute_batch("CREATE TABLE notes (x)").unwrap();
        let err = verify(&other, Path::new("other.db")).unwrap_err();
        assert!(err.to_string().contains("no `apps` table"), "{err}");
    }
}
