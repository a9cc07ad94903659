//! Queries on `secret_key`: the fingerprint of the key that encrypts secrets at rest, and
//! the count of values that depend on it.

use rusqlite::{Connection, OptionalExtension};

/// The recorded key fingerprint, if a key was ever set up for this database.
pub fn fingerprint(conn: &mut Connection) -> Result<Option<String>, rusqlite::Error> {
    conn.query_row("SELECT fingerprint FROM secret_key WHERE id = 1", [], |r| {
        r.get(0)
    })
    .optional()
}

/// Records the fingerprint of the key the database is set up with. Refuses to replace one.
pub fn set_fingerprint(conn: &mut Connection, fingerprint: &str) -> Result<(), rusqlite::Error> {
    conn.execute(
        "INSERT INTO secret_key (id, fingerprint) VALUES (1, ?1)",
        [fingerprint],
    )?;
    Ok(())
}

/// How many stored values are encrypted with the key.
pub fn count_encrypted(conn: &mut Connection) -> Result<i64, rusqlite::Error> {
    conn.query_row(
        "SELECT (SELECT COUNT(*) FROM env_vars WHERE secret = 1)
              + (SELECT COUNT(*) FROM apps WHERE webhook_secret IS NOT NULL)
              + (SELECT COUNT(*) FROM apps WHERE git_credential IS NOT NULL)
              + (SELECT COUNT(*) FROM deploy_keys)
              + (SELECT COUNT(*) FROM databases)
              + (SELECT COUNT(*) FROM backup_destinations)
              + (SELECT COUNT(*) FROM notification_channels)
              + (SELECT COUNT(*) FROM apps WHERE preview_env IS NOT NULL)
              + (SELECT COUNT(*) FROM registry_credentials)",
        [],
        |r| r.get(0),
    )
}
