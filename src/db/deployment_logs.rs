//! The `deployment_logs` table: the lines each deployment printed.

use rusqlite::{Connection, params};
use serde::Serialize;

/// One stored line.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct LogLine {
    pub id: i64,
    pub at: String,
    pub stream: String,
    pub line: String,
}

/// Stores `(stream, line)` pairs in one transaction and returns them as stored.
pub fn insert(
    c: &mut Connection,
    deployment: i64,
    lines: &[(String, String)],
) -> rusqlite::Result<Vec<LogLine>> {
    let tx = c.transaction()?;
    let mut out = Vec::with_capacity(lines.len());
    {
        let mut stmt = tx.prepare_cached(
            "INSERT INTO deployment_logs (deployment_id, stream, line) VALUES (?1, ?2, ?3) RETURNING id, at",
        )?;
        for (stream, line) in lines {
            let (id, at): (i64, String) = stmt
                .query_row(params![deployment, stream, line], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })?;
            out.push(LogLine {
                id,
                at,
                stream: stream.clone(),
                line: line.clone(),
            });
        }
    }
    tx.commit()?;
    Ok(out)
}

/// Lines of a deployment after row `after` (0 for all), oldest first.
pub fn list(c: &Connection, deployment: i64, after: i64) -> rusqlite::Result<Vec<LogLine>> {
    let mut stmt = c.prepare_cached(
        "SELECT id, at, stream, line FROM deployment_logs WHERE deployment_id = ?1 AND id > ?2 ORDER BY id",
    )?;
    let rows = stmt.query_map(params![deployment, after], |r| {
        Ok(LogLine {
            id: r.get(0)?,
            at: r.get(1)?,
            stream: r.get(2)?,
            line: r.get(3)?,
        })
    })?;
    rows.collect()
}
