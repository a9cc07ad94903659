//! The `backup_schedules` and `backups` tables: when each database is backed up, and every
//! backup taken with where it lies and whether it is good.

use rusqlite::{Connection, OptionalExtension, Row, params};

/// One schedule as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleRow {
    pub id: i64,
    pub database_id: i64,
    pub database: String,
    pub cron: String,
    pub destination: String,
    pub keep_last: Option<u32>,
    pub keep_days: Option<u32>,
    pub last_run_at: Option<String>,
    pub created_at: String,
}

/// One backup as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupRow {
    pub id: i64,
    pub database_id: i64,
    pub schedule_id: Option<i64>,
    pub engine: String,
    pub destination: String,
    pub location: String,
    pub status: String,
    pub size_bytes: Option<u64>,
    pub sha256: Option<String>,
    pub error: Option<String>,
    pub started_at: String,
    pub finished_at: Option<String>,
    /// The fingerprint of the key it is encrypted with; `None`: not encrypted.
    pub key_fingerprint: Option<String>,
}

pub const RUNNING: &str = "running";
pub const SUCCEEDED: &str = "succeeded";
pub const FAILED: &str = "failed";

const SCHEDULE_COLUMNS: &str = "s.id, s.database_id, d.name, s.cron, s.destination, s.keep_last, \
                                s.keep_days, s.last_run_at, s.created_at";

fn schedule_from_row(r: &Row<'_>) -> rusqlite::Result<ScheduleRow> {
    Ok(ScheduleRow {
        id: r.get(0)?,
        database_id: r.get(1)?,
        database: r.get(2)?,
        cron: r.get(3)?,
        destination: r.get(4)?,
        keep_last: r.get(5)?,
        keep_days: r.get(6)?,
        last_run_at: r.get(7)?,
        created_at: r.get(8)?,
    })
}

const BACKUP_COLUMNS: &str = "id, database_id, schedule_id, engine, destination, location, status, \
                              size_bytes, sha256, error, started_at, finished_at, key_fingerprint";

fn backup_from_row(r: &Row<'_>) -> rusqlite::Result<BackupRow> {
    Ok(BackupRow {
        id: r.get(0)?,
        database_id: r.get(1)?,
        schedule_id: r.get(2)?,
        engine: r.get(3)?,
        destination: r.get(4)?,
        location: r.get(5)?,
        status: r.get(6)?,
        size_bytes: r.get::<_, Option<i64>>(7)?.map(|s| s as u64),
        sha256: r.get(8)?,
        error: r.get(9)?,
        started_at: r.get(10)?,
        finished_at: r.get(11)?,
        key_fingerprint: r.get(12)?,
    })
}

/// What a new schedule holds.
pub struct NewSchedule<'a> {
    pub database_id: i64,
    pub cron: &'a str,
    pub destination: &'a str,
    pub keep_last: Option<u32>,
    pub keep_days: Option<u32>,
    /// The schedule counts as run at this instant: its first backup is the next occurrence.
    pub created_at: &'a str,
}

pub fn insert_schedule(c: &Connection, new: &NewSchedule<'_>) -> rusqlite::Result<i64> {
    c.execute(
        "INSERT INTO backup_schedules (database_id, cron, destination, keep_last, keep_days,
             last_run_at, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
        params![
            new.database_id,
            new.cron,
            new.destination,
            new.keep_last,
            new.keep_days,
            new.created_at
        ],
    )?;
    Ok(c.last_insert_rowid())
}

pub fn schedules(c: &Connection) -> rusqlite::Result<Vec<ScheduleRow>> {
    let sql = format!(
        "SELECT {SCHEDULE_COLUMNS} FROM backup_schedules s JOIN databases d ON d.id = s.database_id
         ORDER BY s.id"
    );
    c.prepare(&sql)?.query_map([], schedule_from_row)?.collect()
}

pub fn schedules_of(c: &Connection, database_id: i64) -> rusqlite::Result<Vec<ScheduleRow>> {
    let sql = format!(
        "SELECT {SCHEDULE_COLUMNS} FROM backup_schedules s JOIN databases d ON d.id = s.database_id
         WHERE s.database_id = ?1 ORDER BY s.id"
    );
    c.prepare(&sql)?
        .query_map([database_id], schedule_from_row)?
        .collect()
}

pub fn schedule(c: &Connection, id: i64) -> rusqlite::Result<Option<ScheduleRow>> {
    let sql = format!(
        "SELECT {SCHEDULE_COLUMNS} FROM backup_schedules s JOIN databases d ON d.id = s.database_id
         WHERE s.id = ?1"
    );
    c.query_row(&sql, [id], schedule_from_row).optional()
}

pub fn delete_schedule(c: &Connection, database_id: i64, id: i64) -> rusqlite::Result<bool> {
    Ok(c.execute(
        "DELETE FROM backup_schedules WHERE id = ?1 AND database_id = ?2",
        [id, database_id],
    )? > 0)
}

/// Records that the schedule's occurrence `at` has been run (or started).
pub fn set_last_run(c: &Connection, id: i64, at: &str) -> rusqlite::Result<()> {
    c.execute(
        "UPDATE backup_schedules SET last_run_at = ?2 WHERE id = ?1",
        params![id, at],
    )?;
    Ok(())
}

/// What a new backup holds: it starts `running`.
pub struct NewBackup<'a> {
    pub database_id: i64,
    pub schedule_id: Option<i64>,
    pub engine: &'a str,
    pub destination: &'a str,
    pub location: &'a str,
}

pub fn insert_backup(c: &Connection, new: &NewBackup<'_>) -> rusqlite::Result<i64> {
    c.execute(
        "INSERT INTO backups (database_id, schedule_id, engine, destination, location, status)
         VALUES (?1, ?2, ?3, ?4, ?5, 'running')",
        params![
            new.database_id,
            new.schedule_id,
            new.engine,
            new.destination,
            new.location
        ],
    )?;
    Ok(c.last_insert_rowid())
}

pub fn finish_succeeded(
    c: &Connection,
    id: i64,
    size_bytes: u64,
    sha256: &str,
    key_fingerprint: Option<&str>,
) -> rusqlite::Result<()> {
    c.execute(
        "UPDATE backups SET status = 'succeeded', size_bytes = ?2, sha256 = ?3, error = NULL,
             key_fingerprint = ?4, finished_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
         WHERE id = ?1",
        params![id, size_bytes as i64, sha256, key_fingerprint],
    )?;
    Ok(())
}

pub fn finish_failed(c: &Connection, id: i64, error: &str) -> rusqlite::Result<()> {
    c.execute(
        "UPDATE backups SET status = 'failed', error = ?2,
             finished_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
         WHERE id = ?1",
        params![id, error],
    )?;
    Ok(())
}

/// Marks every backup still `running` failed (at startup: the Rivetr that ran them
/// stopped) and returns them, so their partial files can be removed.
pub fn fail_interrupted(c: &Connection) -> rusqlite::Result<Vec<BackupRow>> {
    // One transaction: the rows returned are exactly the rows marked.
    let tx = c.unchecked_transaction()?;
    let sql = format!("SELECT {BACKUP_COLUMNS} FROM backups WHERE status = 'running'");
    let rows: Vec<BackupRow> = tx
        .prepare(&sql)?
        .query_map([], backup_from_row)?
        .collect::<rusqlite::Result<_>>()?;
    for row in &rows {
        finish_failed(
            &tx,
            row.id,
            "Rivetr stopped before the backup finished; nothing of it is kept",
        )?;
    }
    tx.commit()?;
    Ok(rows)
}

/// A database's backups, newest first.
pub fn backups_of(c: &Connection, database_id: i64) -> rusqlite::Result<Vec<BackupRow>> {
    let sql =
        format!("SELECT {BACKUP_COLUMNS} FROM backups WHERE database_id = ?1 ORDER BY id DESC");
    c.prepare(&sql)?
        .query_map([database_id], backup_from_row)?
        .collect()
}

pub fn backup(c: &Connection, database_id: i64, id: i64) -> rusqlite::Result<Option<BackupRow>> {
    let sql = format!("SELECT {BACKUP_COLUMNS} FROM backups WHERE id = ?1 AND database_id = ?2");
    c.query_row(&sql, [id, database_id], backup_from_row)
        .optional()
}

pub fn delete_backup(c: &Connection, id: i64) -> rusqlite::Result<bool> {
    Ok(c.execute("DELETE FROM backups WHERE id = ?1", [id])? > 0)
}

/// How many backups failed since the last one that succeeded, per database name: what
/// `/api/health` reports.
pub fn failing(c: &Connection) -> rusqlite::Result<Vec<(String, String)>> {
    c.prepare(
        "SELECT d.name, b.error FROM backups b JOIN databases d ON d.id = b.database_id
         WHERE b.id = (SELECT MAX(id) FROM backups WHERE database_id = b.database_id
                        AND status != 'running')
           AND b.status = 'failed'
         ORDER BY d.name",
    )?
    .query_map([], |r| {
        Ok((
            r.get(0)?,
            r.get::<_, Option<String>>(1)?.unwrap_or_default(),
        ))
    })?
    .collect()
}

/// One S3 destination as stored; the secret access key stays sealed.
#[derive(Clone, PartialEq, Eq)]
pub struct DestinationRow {
    pub id: i64,
    pub name: String,
    pub kind: String,
    pub endpoint: String,
    pub region: String,
    pub bucket: String,
    pub prefix: String,
    pub path_style: bool,
    pub access_key_id: String,
    /// Sealed.
    pub secret_access_key: Vec<u8>,
    pub created_at: String,
}

impl std::fmt::Debug for DestinationRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DestinationRow")
            .field("name", &self.name)
            .field("endpoint", &self.endpoint)
            .field("bucket", &self.bucket)
            .finish_non_exhaustive()
    }
}

/// What a new destination holds; the secret is sealed with the row's id afterwards
/// ([`set_destination_secret`]), in the same transaction.
pub struct NewDestination<'a> {
    pub name: &'a str,
    pub endpoint: &'a str,
    pub region: &'a str,
    pub bucket: &'a str,
    pub prefix: &'a str,
    pub path_style: bool,
    pub access_key_id: &'a str,
}

const DESTINATION_COLUMNS: &str = "id, name, kind, endpoint, region, bucket, prefix, path_style, \
                                   access_key_id, secret_access_key, created_at";

fn destination_from_row(r: &Row<'_>) -> rusqlite::Result<DestinationRow> {
    Ok(DestinationRow {
        id: r.get(0)?,
        name: r.get(1)?,
        kind: r.get(2)?,
        endpoint: r.get(3)?,
        region: r.get(4)?,
        bucket: r.get(5)?,
        prefix: r.get(6)?,
        path_style: r.get(7)?,
        access_key_id: r.get(8)?,
        secret_access_key: r.get(9)?,
        created_at: r.get(10)?,
    })
}

pub fn insert_destination(c: &Connection, new: &NewDestination<'_>) -> rusqlite::Result<i64> {
    c.execute(
        "INSERT INTO backup_destinations (name, kind, endpoint, region, bucket, prefix,
             path_style, access_key_id, secret_access_key)
         VALUES (?1, 's3', ?2, ?3, ?4, ?5, ?6, ?7, x'')",
        params![
            new.name,
            new.endpoint,
            new.region,
            new.bucket,
            new.prefix,
            new.path_style,
            new.access_key_id
        ],
    )?;
    Ok(c.last_insert_rowid())
}

pub fn set_destination_secret(c: &Connection, id: i64, sealed: &[u8]) -> rusqlite::Result<()> {
    c.execute(
        "UPDATE backup_destinations SET secret_access_key = ?2 WHERE id = ?1",
        params![id, sealed],
    )?;
    Ok(())
}

pub fn destination(c: &Connection, name: &str) -> rusqlite::Result<Option<DestinationRow>> {
    let sql = format!("SELECT {DESTINATION_COLUMNS} FROM backup_destinations WHERE name = ?1");
    c.query_row(&sql, [name], destination_from_row).optional()
}

pub fn destinations(c: &Connection) -> rusqlite::Result<Vec<DestinationRow>> {
    let sql = format!("SELECT {DESTINATION_COLUMNS} FROM backup_destinations ORDER BY name");
    c.prepare(&sql)?
        .query_map([], destination_from_row)?
        .collect()
}

/// Deletes a destination no schedule uses; `Err` names the databases whose schedules do.
pub fn delete_destination(
    c: &Connection,
    name: &str,
) -> rusqlite::Result<Result<bool, Vec<String>>> {
    let users: Vec<String> = c
        .prepare(
            "SELECT DISTINCT d.name FROM backup_schedules s JOIN databases d ON d.id = s.database_id
             WHERE s.destination = ?1 ORDER BY d.name",
        )?
        .query_map([name], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    if !users.is_empty() {
        return Ok(Err(users));
    }
    Ok(Ok(c.execute(
        "DELETE FROM backup_destinations WHERE name = ?1",
        [name],
    )? > 0))
}
