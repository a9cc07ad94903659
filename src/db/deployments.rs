//! The `deployments` table: one row per attempt to put a version of an app into service,
//! with a timestamp for each stage it reached.

use rusqlite::{Connection, OptionalExtension, Row, params};
use serde::Serialize;

/// Where a deployment is. The first seven follow each other; the rest are final.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Queued,
    Cloning,
    Building,
    Starting,
    HealthChecking,
    Switching,
    Running,
    Failed,
    Cancelled,
    Superseded,
    Replaced,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Queued => "queued",
            Status::Cloning => "cloning",
            Status::Building => "building",
            Status::Starting => "starting",
            Status::HealthChecking => "health_checking",
            Status::Switching => "switching",
            Status::Running => "running",
            Status::Failed => "failed",
            Status::Cancelled => "cancelled",
            Status::Superseded => "superseded",
            Status::Replaced => "replaced",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        Some(match s {
            "queued" => Status::Queued,
            "cloning" => Status::Cloning,
            "building" => Status::Building,
            "starting" => Status::Starting,
            "health_checking" => Status::HealthChecking,
            "switching" => Status::Switching,
            "running" => Status::Running,
            "failed" => Status::Failed,
            "cancelled" => Status::Cancelled,
            "superseded" => Status::Superseded,
            "replaced" => Status::Replaced,
            _ => return None,
        })
    }

    /// A deployment in one of these will not change again (except running -> replaced).
    pub fn is_final(self) -> bool {
        matches!(
            self,
            Status::Running
                | Status::Failed
                | Status::Cancelled
                | Status::Superseded
                | Status::Replaced
        )
    }

    /// The column that records when this stage began.
    fn stamp_column(self) -> Option<&'static str> {
        Some(match self {
            Status::Cloning => "cloning_at",
            Status::Building => "building_at",
            Status::Starting => "starting_at",
            Status::HealthChecking => "health_checking_at",
            Status::Switching => "switching_at",
            Status::Running => "running_at",
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Deployment {
    pub id: i64,
    pub app_id: i64,
    pub app: String,
    pub status: Status,
    pub trigger: String,
    pub git_ref: Option<String>,
    pub commit_sha: Option<String>,
    pub commit_subject: Option<String>,
    pub image: Option<String>,
    pub reason: Option<String>,
    pub rollback_of: Option<i64>,
    #[serde(skip)]
    pub settings: Option<String>,
    pub queued_at: String,
    pub cloning_at: Option<String>,
    pub building_at: Option<String>,
    pub starting_at: Option<String>,
    pub health_checking_at: Option<String>,
    pub switching_at: Option<String>,
    pub running_at: Option<String>,
    pub finished_at: Option<String>,
}

const SELECT: &str = "SELECT d.id, d.app_id, a.name, d.status, d.trigger, d.git_ref, d.commit_sha,
    d.commit_subject, d.image, d.reason, d.rollback_of, d.settings, d.queued_at, d.cloning_at,
    d.building_at, d.starting_at, d.health_checking_at, d.switching_at, d.running_at, d.finished_at
    FROM deployments d JOIN apps a ON a.id = d.app_id";

fn from_row(row: &Row<'_>) -> rusqlite::Result<Deployment> {
    let status: String = row.get(3)?;
    Ok(Deployment {
        id: row.get(0)?,
        app_id: row.get(1)?,
        app: row.get(2)?,
        status: Status::parse(&status).unwrap_or(Status::Failed),
        trigger: row.get(4)?,
        git_ref: row.get(5)?,
        commit_sha: row.get(6)?,
        commit_subject: row.get(7)?,
        image: row.get(8)?,
        reason: row.get(9)?,
        rollback_of: row.get(10)?,
        settings: row.get(11)?,
        queued_at: row.get(12)?,
        cloning_at: row.get(13)?,
        building_at: row.get(14)?,
        starting_at: row.get(15)?,
        health_checking_at: row.get(16)?,
        switching_at: row.get(17)?,
        running_at: row.get(18)?,
        finished_at: row.get(19)?,
    })
}

pub fn create(
    c: &Connection,
    app_id: i64,
    trigger: &str,
    git_ref: Option<&str>,
    rollback_of: Option<i64>,
) -> rusqlite::Result<Deployment> {
    c.execute(
        "INSERT INTO deployments (app_id, trigger, git_ref, rollback_of) VALUES (?1, ?2, ?3, ?4)",
        params![app_id, trigger, git_ref, rollback_of],
    )?;
    get(c, c.last_insert_rowid())?.ok_or(rusqlite::Error::QueryReturnedNoRows)
}

pub fn get(c: &Connection, id: i64) -> rusqlite::Result<Option<Deployment>> {
    c.query_row(&format!("{SELECT} WHERE d.id = ?1"), [id], from_row)
        .optional()
}

/// The app's deployments, newest first.
pub fn list_for_app(c: &Connection, app_id: i64, limit: u32) -> rusqlite::Result<Vec<Deployment>> {
    let mut stmt = c.prepare_cached(&format!(
        "{SELECT} WHERE d.app_id = ?1 ORDER BY d.id DESC LIMIT ?2"
    ))?;
    let rows = stmt.query_map(params![app_id, limit], from_row)?;
    rows.collect()
}

/// Moves a deployment to `status`, stamping the stage; a final status also stamps
/// `finished_at`. Only a deployment not yet final moves (a running one may become replaced).
pub fn set_status(c: &Connection, id: i64, status: Status) -> rusqlite::Result<bool> {
    let stamp = match status.stamp_column() {
        Some(col) => format!(", {col} = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')"),
        None => String::new(),
    };
    let finished = if status.is_final() && status != Status::Running {
        ", finished_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')"
    } else {
        ""
    };
    let changed = c.execute(
        &format!(
            "UPDATE deployments SET status = ?2{stamp}{finished}
             WHERE id = ?1 AND (status NOT IN ('failed', 'cancelled', 'superseded', 'replaced', 'running')
                               OR (status = 'running' AND ?2 = 'replaced'))"
        ),
        params![id, status.as_str()],
    )?;
    Ok(changed > 0)
}

/// Ends a deployment as failed (or cancelled) with a reason.
pub fn finish_with_reason(
    c: &Connection,
    id: i64,
    status: Status,
    reason: &str,
) -> rusqlite::Result<bool> {
    // One transaction: a status stored without its reason (the disk filling between the two)
    // would never get it, since the status is then final.
    let tx = c.unchecked_transaction()?;
    let changed = set_status(&tx, id, status)?;
    if changed {
        tx.execute(
            "UPDATE deployments SET reason = ?2 WHERE id = ?1",
            params![id, reason],
        )?;
    }
    tx.commit()?;
    Ok(changed)
}

pub fn set_commit(c: &Connection, id: i64, sha: &str, subject: &str) -> rusqlite::Result<()> {
    c.execute(
        "UPDATE deployments SET commit_sha = ?2, commit_subject = ?3 WHERE id = ?1",
        params![id, sha, subject],
    )?;
    Ok(())
}

pub fn set_image(c: &Connection, id: i64, image: &str, settings: &str) -> rusqlite::Result<()> {
    c.execute(
        "UPDATE deployments SET image = ?2, settings = ?3 WHERE id = ?1",
        params![id, image, settings],
    )?;
    Ok(())
}

/// The app's deployment in service, if any.
pub fn running(c: &Connection, app_id: i64) -> rusqlite::Result<Option<Deployment>> {
    // Cached: `GET /api/apps` asks this of every app.
    c.prepare_cached(&format!(
        "{SELECT} WHERE d.app_id = ?1 AND d.status = 'running' ORDER BY d.id DESC LIMIT 1"
    ))?
    .query_row([app_id], from_row)
    .optional()
}

/// The serving deployment of every app that has one (the newest running, as [`running`]),
/// by app id, in one query.
pub fn running_by_app(
    c: &Connection,
) -> rusqlite::Result<std::collections::HashMap<i64, Deployment>> {
    let mut stmt = c.prepare(&format!(
        "{SELECT} WHERE d.status = 'running' ORDER BY d.id DESC"
    ))?;
    let mut by_app = std::collections::HashMap::new();
    for d in stmt.query_map([], from_row)? {
        let d = d?;
        by_app.entry(d.app_id).or_insert(d);
    }
    Ok(by_app)
}

/// Puts `new` into service, marks every other running deployment of the app replaced and the
/// app no longer stopped, in one transaction: the engine swaps the routes only once it has
/// committed.
pub fn switch(c: &mut Connection, app_id: i64, new: i64) -> rusqlite::Result<Vec<i64>> {
    let tx = c.transaction()?;
    crate::db::apps::set_stopped(&tx, app_id, false)?;
    let old: Vec<i64> = {
        let mut stmt = tx.prepare(
            "SELECT id FROM deployments WHERE app_id = ?1 AND status = 'running' AND id != ?2",
        )?;
        stmt.query_map(params![app_id, new], |r| r.get(0))?
            .collect::<Result<_, _>>()?
    };
    for id in &old {
        set_status(&tx, *id, Status::Replaced)?;
    }
    set_status(&tx, new, Status::Running)?;
    tx.commit()?;
    Ok(old)
}

/// Deployments that had begun but not finished: after a crash, they never will.
pub fn in_flight(c: &Connection) -> rusqlite::Result<Vec<Deployment>> {
    let mut stmt = c.prepare(&format!(
        "{SELECT} WHERE d.status IN ('queued', 'cloning', 'building', 'starting', 'health_checking', 'switching') ORDER BY d.id"
    ))?;
    let rows = stmt.query_map([], from_row)?;
    rows.collect()
}

/// Deployments that went into service and have an image, newest first: what a rollback
/// can return to.
pub fn successful(c: &Connection, app_id: i64) -> rusqlite::Result<Vec<Deployment>> {
    let mut stmt = c.prepare(&format!(
        "{SELECT} WHERE d.app_id = ?1 AND d.status IN ('running', 'replaced') AND d.image IS NOT NULL ORDER BY d.id DESC"
    ))?;
    let rows = stmt.query_map([app_id], from_row)?;
    rows.collect()
}

/// Forgets a deployment's image after it was removed from the engine.
pub fn clear_image(c: &Connection, id: i64) -> rusqlite::Result<()> {
    c.execute("UPDATE deployments SET image = NULL WHERE id = ?1", [id])?;
    Ok(())
}
