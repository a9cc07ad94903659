//! The `known_hosts` table: for each app, the SSH host keys its clones have accepted, kept as
//! the known_hosts file ssh itself wrote (the engine hands it to ssh and stores it back).

use rusqlite::{Connection, OptionalExtension, params};

/// The app's known_hosts file; empty when no host was ever recorded (or after a reset).
pub fn get(c: &Connection, app_id: i64) -> rusqlite::Result<String> {
    Ok(c.query_row(
        "SELECT entries FROM known_hosts WHERE app_id = ?1",
        [app_id],
        |r| r.get(0),
    )
    .optional()?
    .unwrap_or_default())
}

pub fn set(c: &Connection, app_id: i64, entries: &str) -> rusqlite::Result<()> {
    c.execute(
        "INSERT INTO known_hosts (app_id, entries) VALUES (?1, ?2)
         ON CONFLICT (app_id) DO UPDATE SET entries = excluded.entries,
             updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')",
        params![app_id, entries],
    )?;
    Ok(())
}

/// Forgets every recorded host key of the app; false when there was none.
pub fn reset(c: &Connection, app_id: i64) -> rusqlite::Result<bool> {
    Ok(c.execute("DELETE FROM known_hosts WHERE app_id = ?1", [app_id])? > 0)
}
