//! What the database keeps, and the background task that deletes the rest so that
//! `rivetr.db` stops growing without anyone running `VACUUM`.
//!
//! Kept per app: the newest `[engine] keep_deployments` deployments with their log lines, and
//! whatever the app still needs however old: the deployment serving (`running`), every
//! deployment not finished yet, and the rollback targets: the newest `[engine] keep_images`
//! successful deployments with an image (the ones whose images the engine keeps), and any
//! replaced deployment whose image Rivetr built and has not removed yet (it went through the
//! build stage and still names an image: the engine clears the column when it removes the
//! image, so the row is never lost before its image is). An image app's deployments name an
//! image Rivetr did not build and never removes, so beyond `keep_images` they are not kept
//! for it. Webhook deliveries are kept [`DELIVERY_DAYS`] days: long enough to recognise any
//! retry a forge makes.
//!
//! The task ([`run`]) prunes after deployments finish and every [`SWEEP_EVERY`]. It works in
//! small batches, each one short call through [`Db::call`] (off the async threads), with a
//! pause between them, so the connection is never held long and API requests interleave.
//! Freed pages go back to the file system with `PRAGMA incremental_vacuum`: new databases are
//! created in incremental auto-vacuum mode ([`super::configure`]). An existing database made
//! before that is converted once, with one `VACUUM` right after its first full prune (when it
//! is as small as it will be); the log says so and how long it took.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rusqlite::{Connection, params};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::{Db, DbError};

/// Webhook deliveries are remembered this many days.
pub const DELIVERY_DAYS: u32 = 30;
/// A full prune also runs this often, for deliveries that age without any deployment.
pub const SWEEP_EVERY: Duration = Duration::from_secs(3600);
/// After a deployment finishes, wait this long for others to finish before pruning.
const SETTLE: Duration = Duration::from_secs(1);
/// Rows deleted per statement: a few milliseconds of holding the connection. (Measured on a
/// loaded 2-CPU VM: 250 log lines took 2.6 ms at the median, 1000 took 41 ms.)
const BATCH_ROWS: usize = 250;
/// Deployments chosen per query.
const BATCH_DEPLOYMENTS: usize = 20;
/// Pages given back per `incremental_vacuum` step (4 KiB each).
const VACUUM_PAGES: u32 = 256;
/// Between two batches, the connection is left to others this long.
const PAUSE: Duration = Duration::from_millis(5);

/// How much each app keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keep {
    /// `[engine] keep_deployments`: the newest this many deployments.
    pub deployments: usize,
    /// `[engine] keep_images`: the newest this many successful deployments are the rollback
    /// targets, as the engine keeps their images.
    pub images: usize,
}

/// What one prune removed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Pruned {
    pub deployments: usize,
    pub log_lines: usize,
    pub deliveries: usize,
    /// Pages given back to the file system.
    pub pages_freed: u64,
    /// The longest the connection was held by one batch.
    pub longest_batch: Duration,
    /// Batches run, and how long they held the connection in all.
    pub batches: usize,
    pub held: Duration,
}

impl Pruned {
    /// Counts one batch that held the connection for `took`.
    fn count(&mut self, took: Duration) {
        self.batches += 1;
        self.held += took;
        self.longest_batch = self.longest_batch.max(took);
    }

    fn anything(&self) -> bool {
        self.deployments + self.log_lines + self.deliveries > 0
    }
}

/// Prunes after every `finished` notification (a deployment ended) and every
/// [`SWEEP_EVERY`], keeping what `keep()` says (read each time, so a reload applies), until
/// `shutdown`.
pub async fn run(
    db: Db,
    keep: impl Fn() -> Keep + Send,
    finished: Arc<Notify>,
    shutdown: CancellationToken,
) {
    loop {
        let started = Instant::now();
        match prune(&db, keep(), &shutdown).await {
            Ok(p) if p.anything() => tracing::info!(
                deployments = p.deployments,
                log_lines = p.log_lines,
                deliveries = p.deliveries,
                pages_freed = p.pages_freed,
                batches = p.batches,
                mean_batch_ms = format!(
                    "{:.1}",
                    p.held.as_secs_f64() * 1000.0 / p.batches.max(1) as f64
                ),
                longest_batch_ms = p.longest_batch.as_millis() as u64,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "pruned old deployments and webhook deliveries"
            ),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "pruning the database failed; retrying later"),
        }
        if let Err(e) = convert_once(&db).await {
            tracing::warn!(error = %e, "cannot turn on incremental auto-vacuum; retrying later");
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = finished.notified() => {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(SETTLE) => {}
                }
            }
            _ = tokio::time::sleep(SWEEP_EVERY) => {}
        }
    }
}

/// One full prune: old deliveries, old deployments of every app, then the freed pages.
pub async fn prune(db: &Db, keep: Keep, stop: &CancellationToken) -> Result<Pruned, DbError> {
    let mut pruned = Pruned::default();
    loop {
        let (n, took) = timed(db, delete_old_deliveries).await?;
        pruned.deliveries += n;
        pruned.count(took);
        if n < BATCH_ROWS || stopping(stop).await {
            break;
        }
    }
    let apps = db.call(apps_with_deployments).await?;
    for app in apps {
        loop {
            let (ids, took) = timed(db, move |c| prunable(c, app, keep)).await?;
            pruned.count(took);
            if ids.is_empty() {
                break;
            }
            let before = pruned.deployments;
            for id in ids {
                delete_deployment(db, id, &mut pruned, stop).await?;
                if stop.is_cancelled() {
                    return Ok(pruned);
                }
            }
            if pruned.deployments == before {
                // Deleted by someone else meanwhile, or not deletable: do not spin on them.
                break;
            }
        }
    }
    if pruned.anything() {
        give_back_pages(db, &mut pruned, stop).await?;
    }
    Ok(pruned)
}

/// Deletes one deployment: its log lines a batch at a time, then its row.
async fn delete_deployment(
    db: &Db,
    id: i64,
    pruned: &mut Pruned,
    stop: &CancellationToken,
) -> Result<(), DbError> {
    loop {
        let (n, took) = timed(db, move |c| delete_log_batch(c, id)).await?;
        pruned.log_lines += n;
        pruned.count(took);
        if n < BATCH_ROWS {
            break;
        }
        if stopping(stop).await {
            return Ok(());
        }
    }
    let (n, took) = timed(db, move |c| {
        c.execute("DELETE FROM deployments WHERE id = ?1", [id])
    })
    .await?;
    pruned.deployments += n;
    pruned.count(took);
    stopping(stop).await;
    Ok(())
}

/// Gives free pages back to the file system, a few at a time, then empties the WAL.
async fn give_back_pages(
    db: &Db,
    pruned: &mut Pruned,
    stop: &CancellationToken,
) -> Result<(), DbError> {
    loop {
        let (freed, took) = timed(db, vacuum_step).await?;
        pruned.pages_freed += freed;
        pruned.count(took);
        if freed == 0 || stopping(stop).await {
            break;
        }
    }
    let (_, took) = timed(db, checkpoint).await?;
    pruned.count(took);
    Ok(())
}

/// Runs `f` through the database, with how long it held the connection.
async fn timed<F, R>(db: &Db, f: F) -> Result<(R, Duration), DbError>
where
    F: FnOnce(&mut Connection) -> Result<R, rusqlite::Error> + Send + 'static,
    R: Send + 'static,
{
    db.call(move |c| {
        let started = Instant::now();
        f(c).map(|r| (r, started.elapsed()))
    })
    .await
}

/// Leaves the connection to others for a moment; true when the task should stop.
async fn stopping(stop: &CancellationToken) -> bool {
    tokio::select! {
        _ = stop.cancelled() => true,
        _ = tokio::time::sleep(PAUSE) => false,
    }
}

/// Converts a database made before incremental auto-vacuum, once (see the module doc).
async fn convert_once(db: &Db) -> Result<(), DbError> {
    let mode: i64 = db
        .call(|c| c.query_row("PRAGMA auto_vacuum", [], |r| r.get(0)))
        .await?;
    if mode == AUTO_VACUUM_INCREMENTAL {
        return Ok(());
    }
    let started = Instant::now();
    tracing::info!("turning on incremental auto-vacuum: one VACUUM of rivetr.db, once");
    let (before, after) = db.call(convert_to_incremental).await?;
    tracing::info!(
        pages_before = before,
        pages_after = after,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "incremental auto-vacuum is on; the database gives freed space back by itself"
    );
    Ok(())
}

/// `PRAGMA auto_vacuum` of a database in incremental mode.
pub const AUTO_VACUUM_INCREMENTAL: i64 = 2;

/// Puts an existing database in incremental auto-vacuum mode; its page counts before and
/// after. Blocking, and it rewrites the whole file: run it when the database is small.
pub fn convert_to_incremental(c: &mut Connection) -> Result<(i64, i64), rusqlite::Error> {
    let pages = |c: &Connection| c.query_row("PRAGMA page_count", [], |r| r.get::<_, i64>(0));
    let before = pages(c)?;
    c.pragma_update(None, "auto_vacuum", "INCREMENTAL")?;
    c.execute_batch("VACUUM")?;
    checkpoint(c)?;
    Ok((before, pages(c)?))
}

/// Webhook deliveries received, and notification deliveries done (sent or given up), more
/// than [`DELIVERY_DAYS`] ago: a batch of each.
fn delete_old_deliveries(c: &mut Connection) -> Result<usize, rusqlite::Error> {
    let age = format!("-{DELIVERY_DAYS} days");
    let webhooks = c.execute(
        "DELETE FROM webhook_deliveries WHERE rowid IN (
             SELECT rowid FROM webhook_deliveries
             WHERE received_at < strftime('%Y-%m-%dT%H:%M:%fZ', 'now', ?1)
             LIMIT ?2)",
        params![age, BATCH_ROWS as i64],
    )?;
    let notifications = c.execute(
        "DELETE FROM notification_deliveries WHERE id IN (
             SELECT id FROM notification_deliveries
             WHERE status != 'pending'
               AND created_at < strftime('%Y-%m-%dT%H:%M:%fZ', 'now', ?1)
             LIMIT ?2)",
        params![age, BATCH_ROWS as i64],
    )?;
    Ok(webhooks + notifications)
}

fn apps_with_deployments(c: &mut Connection) -> Result<Vec<i64>, rusqlite::Error> {
    let mut stmt = c.prepare_cached("SELECT DISTINCT app_id FROM deployments ORDER BY app_id")?;
    stmt.query_map([], |r| r.get(0))?.collect()
}

/// Deployments of `app` that may go, oldest first, a batch at a time: older than its newest
/// `keep.deployments`, finished, not serving, and not a rollback target (see [`Keep`]).
pub fn prunable(c: &mut Connection, app: i64, keep: Keep) -> Result<Vec<i64>, rusqlite::Error> {
    let mut stmt = c.prepare_cached(
        "SELECT id FROM deployments
         WHERE app_id = ?1
           AND id < (SELECT id FROM deployments WHERE app_id = ?1
                     ORDER BY id DESC LIMIT 1 OFFSET ?2)
           AND status IN ('failed', 'cancelled', 'superseded', 'replaced')
           AND NOT (status = 'replaced' AND image IS NOT NULL AND (
                   building_at IS NOT NULL
                   OR id IN (SELECT id FROM deployments
                             WHERE app_id = ?1 AND status IN ('running', 'replaced')
                               AND image IS NOT NULL
                             ORDER BY id DESC LIMIT ?3)))
         ORDER BY id
         LIMIT ?4",
    )?;
    let newest_kept = keep.deployments.max(1) - 1;
    let images = keep.images.max(1);
    stmt.query_map(
        params![
            app,
            newest_kept as i64,
            images as i64,
            BATCH_DEPLOYMENTS as i64
        ],
        |r| r.get(0),
    )?
    .collect()
}

fn delete_log_batch(c: &mut Connection, deployment: i64) -> Result<usize, rusqlite::Error> {
    c.execute(
        "DELETE FROM deployment_logs WHERE id IN (
             SELECT id FROM deployment_logs WHERE deployment_id = ?1 LIMIT ?2)",
        params![deployment, BATCH_ROWS as i64],
    )
}

/// Gives up to [`VACUUM_PAGES`] free pages back; how many it gave.
fn vacuum_step(c: &mut Connection) -> Result<u64, rusqlite::Error> {
    let free = |c: &Connection| c.query_row("PRAGMA freelist_count", [], |r| r.get::<_, i64>(0));
    let before = free(c)?;
    if before == 0 {
        return Ok(0);
    }
    // Each step of this pragma frees one page; execute_batch steps it to the end.
    c.execute_batch(&format!("PRAGMA incremental_vacuum({VACUUM_PAGES})"))?;
    Ok(before.saturating_sub(free(c)?) as u64)
}

/// Copies the WAL into the database file and truncates it, so the file sizes on disk
/// reflect what the database holds.
fn checkpoint(c: &mut Connection) -> Result<(), rusqlite::Error> {
    c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEEP3: Keep = Keep {
        deployments: 3,
        images: 2,
    };

    fn db() -> (tempfile::TempDir, Db) {
        let dir = tempfile::tempdir().unwrap();
        let (db, _) = Db::open(&dir.path().join("rivetr.db")).unwrap();
        (dir, db)
    }

    /// Adds a deployment of app 1 with `lines` log lines; returns its id.
    fn deployment(c: &Connection, status: &str, image: Option<&str>, lines: usize) -> i64 {
        let id: i64 = c
            .query_row(
                "INSERT INTO deployments (app_id, status, image) VALUES (1, ?1, ?2) RETURNING id",
                params![status, image],
                |r| r.get(0),
            )
            .unwrap();
        c.execute(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?2)
             INSERT INTO deployment_logs (deployment_id, line)
             SELECT ?1, printf('line %d of a build that printed a lot', i) FROM n WHERE i <= ?2",
            params![id, lines as i64],
        )
        .unwrap();
        id
    }

    fn ids(c: &Connection) -> Vec<i64> {
        let mut stmt = c.prepare("SELECT id FROM deployments ORDER BY id").unwrap();
        stmt.query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    #[tokio::test]
    async fn keeps_the_newest_the_serving_the_rollback_targets_the_unremoved_and_the_unfinished() {
        let (_dir, db) = db();
        let (kept, gone) = db
            .call(|c| {
                c.execute(
                    "INSERT INTO apps (id, name, image) VALUES (1, 'a', 'x')",
                    [],
                )?;
                c.execute(
                    "INSERT INTO apps (id, name, image) VALUES (2, 'b', 'x')",
                    [],
                )?;
                // An image app's old deployment: its image is not Rivetr's to remove.
                let old_external = deployment(c, "replaced", Some("ext:1"), 3);
                // A built image the engine has not removed yet (still draining, say).
                let built = deployment(c, "replaced", Some("rivetr/a:2"), 3);
                c.execute(
                    "UPDATE deployments SET building_at = 'x' WHERE id = ?1",
                    [built],
                )?;
                let replaced_no_image = deployment(c, "replaced", None, 3);
                // The rollback target: the newest successful deployment but the serving one.
                let target = deployment(c, "replaced", Some("ext:1"), 3);
                let serving = deployment(c, "running", Some("ext:1"), 3);
                let stuck = deployment(c, "building", None, 3);
                let mut old = vec![old_external, replaced_no_image];
                for _ in 0..4 {
                    old.push(deployment(c, "failed", None, 2500));
                }
                old.push(deployment(c, "cancelled", None, 1));
                old.push(deployment(c, "superseded", None, 0));
                let newest: Vec<i64> = (0..3).map(|_| deployment(c, "failed", None, 5)).collect();
                // Another app's deployments are counted for it alone.
                let other: i64 = c.query_row(
                    "INSERT INTO deployments (app_id, status) VALUES (2, 'failed') RETURNING id",
                    [],
                    |r| r.get(0),
                )?;
                let mut kept = vec![built, serving, target, stuck, other];
                kept.extend(newest);
                Ok((kept, old))
            })
            .await
            .unwrap();
        let pruned = prune(&db, KEEP3, &CancellationToken::new()).await.unwrap();
        assert_eq!(pruned.deployments, gone.len());
        assert_eq!(pruned.log_lines, 3 + 3 + 4 * 2500 + 1);
        assert!(pruned.pages_freed > 0, "{pruned:?}");
        let (left, orphans, other_app, free) = db
            .call(|c| {
                let left = ids(c);
                let orphans: i64 = c.query_row(
                    "SELECT COUNT(*) FROM deployment_logs
                     WHERE deployment_id NOT IN (SELECT id FROM deployments)",
                    [],
                    |r| r.get(0),
                )?;
                let other: i64 = c.query_row(
                    "SELECT COUNT(*) FROM deployments WHERE app_id = 2",
                    [],
                    |r| r.get(0),
                )?;
                let free: i64 = c.query_row("PRAGMA freelist_count", [], |r| r.get(0))?;
                Ok((left, orphans, other, free))
            })
            .await
            .unwrap();
        let mut expected: Vec<i64> = kept;
        expected.sort();
        assert_eq!(left, expected);
        assert_eq!((orphans, other_app, free), (0, 1, 0));
        // Nothing more to do the second time.
        let again = prune(&db, KEEP3, &CancellationToken::new()).await.unwrap();
        assert!(!again.anything(), "{again:?}");
        assert_eq!(again.pages_freed, 0);
    }

    #[tokio::test]
    async fn deliveries_are_kept_thirty_days() {
        let (_dir, db) = db();
        let left = db
            .call(|c| {
                c.execute("INSERT INTO apps (id, name, image) VALUES (1, 'a', 'x')", [])?;
                c.execute_batch(
                    "INSERT INTO webhook_deliveries (provider, delivery_id, app_id, received_at)
                     VALUES ('github', 'old', 1, strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-31 days')),
                            ('github', 'new', 1, strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-29 days'));",
                )?;
                Ok(())
            })
            .await
            .and(
                prune(
                    &db,
                    Keep {
                        deployments: 50,
                        images: 3,
                    },
                    &CancellationToken::new(),
                )
                .await,
            )
            .unwrap();
        assert_eq!(left.deliveries, 1);
        let ids: Vec<String> = db
            .call(|c| {
                let mut stmt = c.prepare("SELECT delivery_id FROM webhook_deliveries")?;
                stmt.query_map([], |r| r.get(0))?.collect()
            })
            .await
            .unwrap();
        assert_eq!(ids, ["new"]);
    }

    #[test]
    fn new_databases_are_incremental_and_old_ones_are_converted_once() {
        let dir = tempfile::tempdir().unwrap();
        let (db, _) = Db::open(&dir.path().join("new.db")).unwrap();
        drop(db);
        let mode = |path: &std::path::Path| -> i64 {
            Connection::open(path)
                .unwrap()
                .query_row("PRAGMA auto_vacuum", [], |r| r.get(0))
                .unwrap()
        };
        assert_eq!(mode(&dir.path().join("new.db")), AUTO_VACUUM_INCREMENTAL);

        // A database as Rivetr made it before: auto_vacuum off, with data in it.
        let old = dir.path().join("old.db");
        {
            let c = Connection::open(&old).unwrap();
            c.execute_batch("CREATE TABLE t (x BLOB); INSERT INTO t VALUES (randomblob(100000));")
                .unwrap();
        }
        assert_eq!(mode(&old), 0);
        let mut c = Connection::open(&old).unwrap();
        convert_to_incremental(&mut c).unwrap();
        drop(c);
        assert_eq!(mode(&old), AUTO_VACUUM_INCREMENTAL);
        let rows: i64 = Connection::open(&old)
            .unwrap()
            .query_row("SELECT COUNT(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows, 1, "the data survived the conversion");
    }
}
