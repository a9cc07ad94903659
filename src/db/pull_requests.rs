//! The `pull_requests` table: what Rivetr last heard of each pull request of an app, so that
//! its preview follows the PR's latest state whatever order deliveries arrive in.

use rusqlite::{Connection, OptionalExtension, params};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullRequestRow {
    pub app_id: i64,
    pub number: u64,
    pub open: bool,
    pub head_ref: String,
    pub head_sha: String,
    pub forge_updated_at: Option<i64>,
    pub refused: Option<String>,
    pub updated_at: String,
}

const COLUMNS: &str =
    "app_id, number, state, head_ref, head_sha, forge_updated_at, refused, updated_at";

fn from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<PullRequestRow> {
    Ok(PullRequestRow {
        app_id: row.get(0)?,
        number: row.get::<_, i64>(1)? as u64,
        open: row.get::<_, String>(2)? == "open",
        head_ref: row.get(3)?,
        head_sha: row.get(4)?,
        forge_updated_at: row.get(5)?,
        refused: row.get(6)?,
        updated_at: row.get(7)?,
    })
}

pub fn get(c: &Connection, app_id: i64, number: u64) -> rusqlite::Result<Option<PullRequestRow>> {
    c.query_row(
        &format!("SELECT {COLUMNS} FROM pull_requests WHERE app_id = ?1 AND number = ?2"),
        params![app_id, number as i64],
        from_row,
    )
    .optional()
}

/// Every pull request of `app_id` Rivetr knows of, by number.
pub fn list(c: &Connection, app_id: i64) -> rusqlite::Result<Vec<PullRequestRow>> {
    let mut stmt = c.prepare(&format!(
        "SELECT {COLUMNS} FROM pull_requests WHERE app_id = ?1 ORDER BY number"
    ))?;
    let rows = stmt.query_map([app_id], from_row)?;
    rows.collect()
}

/// Records the PR's state as of the event just handled.
pub fn record(c: &Connection, row: &PullRequestRow) -> rusqlite::Result<()> {
    c.execute(
        "INSERT INTO pull_requests (app_id, number, state, head_ref, head_sha, forge_updated_at, refused)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT (app_id, number) DO UPDATE SET state = excluded.state,
            head_ref = excluded.head_ref, head_sha = excluded.head_sha,
            forge_updated_at = excluded.forge_updated_at, refused = excluded.refused,
            updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')",
        params![
            row.app_id,
            row.number as i64,
            if row.open { "open" } else { "closed" },
            row.head_ref,
            row.head_sha,
            row.forge_updated_at,
            row.refused,
        ],
    )?;
    Ok(())
}

/// Previews whose pull request is recorded closed: left by a removal that did not finish.
pub fn closed_with_preview(c: &Connection) -> rusqlite::Result<Vec<(String, u64)>> {
    let mut stmt = c.prepare(
        "SELECT a.name, p.number FROM apps a
         JOIN pull_requests p ON p.app_id = a.preview_of AND p.number = a.preview_number
         WHERE p.state = 'closed' ORDER BY a.name",
    )?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as u64)))?;
    rows.collect()
}
