//! Queries the webhook handler needs: an app's webhook settings, and the deliveries already
//! seen (`webhook_deliveries`), so a forge's retry queues nothing twice.

use rusqlite::{Connection, OptionalExtension, params};

/// What a webhook needs to know about its app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookTarget {
    pub app_id: i64,
    pub branch: String,
    /// `apps.webhook_secret`, sealed; `None` until a secret is set.
    pub sealed_secret: Option<Vec<u8>>,
}

/// The app named `name`, if it exists.
pub fn target(conn: &mut Connection, name: &str) -> Result<Option<WebhookTarget>, rusqlite::Error> {
    conn.query_row(
        "SELECT id, branch, webhook_secret FROM apps WHERE name = ?1",
        [name],
        |r| {
            Ok(WebhookTarget {
                app_id: r.get(0)?,
                branch: r.get(1)?,
                sealed_secret: r.get(2)?,
            })
        },
    )
    .optional()
}

/// The id of the app named `name`.
pub fn app_id(conn: &mut Connection, name: &str) -> Result<Option<i64>, rusqlite::Error> {
    conn.query_row("SELECT id FROM apps WHERE name = ?1", [name], |r| r.get(0))
        .optional()
}

/// Replaces an app's sealed webhook secret. False when the app does not exist.
pub fn set_secret(
    conn: &mut Connection,
    app_id: i64,
    sealed: &[u8],
) -> Result<bool, rusqlite::Error> {
    let n = conn.execute(
        "UPDATE apps SET webhook_secret = ?2, updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
         WHERE id = ?1",
        params![app_id, sealed],
    )?;
    Ok(n == 1)
}

/// Records a delivery for an app before its deployment is queued. False when it was already
/// recorded: a repeat, to be answered without queueing anything. Atomic, so two copies of one
/// delivery arriving together queue one deployment.
pub fn claim_delivery(
    conn: &mut Connection,
    app_id: i64,
    provider: &str,
    delivery_id: &str,
) -> Result<bool, rusqlite::Error> {
    let n = conn.execute(
        "INSERT OR IGNORE INTO webhook_deliveries (app_id, provider, delivery_id) VALUES (?1, ?2, ?3)",
        params![app_id, provider, delivery_id],
    )?;
    Ok(n == 1)
}

/// Links a claimed delivery to the deployment it queued.
pub fn set_delivery_deployment(
    conn: &mut Connection,
    app_id: i64,
    provider: &str,
    delivery_id: &str,
    deployment_id: i64,
) -> Result<(), rusqlite::Error> {
    conn.execute(
        "UPDATE webhook_deliveries SET deployment_id = ?4
         WHERE app_id = ?1 AND provider = ?2 AND delivery_id = ?3",
        params![app_id, provider, delivery_id, deployment_id],
    )?;
    Ok(())
}

/// Forgets a claimed delivery whose deployment could not be queued, so the forge's retry of
/// it is not mistaken for a repeat.
pub fn release_delivery(
    conn: &mut Connection,
    app_id: i64,
    provider: &str,
    delivery_id: &str,
) -> Result<(), rusqlite::Error> {
    conn.execute(
        "DELETE FROM webhook_deliveries WHERE app_id = ?1 AND provider = ?2 AND delivery_id = ?3",
        params![app_id, provider, delivery_id],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use rusqlite_migration::{M, Migrations};

    use super::*;

    const M1: &str = include_str!("../../migrations/0001_initial.sql");
    const M2: &str = include_str!("../../migrations/0002_webhook_deliveries.sql");
    const M3: &str = include_str!("../../migrations/0003_api_auth.sql");

    #[test]
    fn deliveries_survive_0003_and_repeat_only_for_the_same_app() {
        let mut conn = Connection::open_in_memory().unwrap();
        Migrations::new(vec![M::up(M1), M::up(M2)])
            .to_latest(&mut conn)
            .unwrap();
        conn.execute_batch(
            "INSERT INTO apps (id, name, git_url) VALUES (1, 'a', 'x'), (2, 'b', 'x');
             INSERT INTO webhook_deliveries (provider, delivery_id, app_id) VALUES ('github', 'd1', 1);",
        )
        .unwrap();
        Migrations::new(vec![M::up(M1), M::up(M2), M::up(M3)])
            .to_latest(&mut conn)
            .unwrap();

        // The delivery recorded before 0003 is still a repeat for its app...
        assert!(!claim_delivery(&mut conn, 1, "github", "d1").unwrap());
        // ...but not for another app: GitHub gives every hook of an event the same id.
        assert!(claim_delivery(&mut conn, 2, "github", "d1").unwrap());
        assert!(!claim_delivery(&mut conn, 2, "github", "d1").unwrap());
        // Nor for another provider.
        assert!(claim_delivery(&mut conn, 1, "gitlab", "d1").unwrap());

        // A released claim can be made again (the forge's retry after a refusal).
        release_delivery(&mut conn, 2, "github", "d1").unwrap();
        assert!(claim_delivery(&mut conn, 2, "github", "d1").unwrap());

        // Deleting an app forgets its deliveries.
        conn.pragma_update(None, "foreign_keys", "ON").unwrap();
        conn.execute("DELETE FROM apps WHERE id = 2", []).unwrap();
        let left: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM webhook_deliveries WHERE app_id = 2",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(left, 0);
    }

    #[test]
    fn targets_and_secrets() {
        let mut conn = Connection::open_in_memory().unwrap();
        Migrations::new(vec![M::up(M1), M::up(M2), M::up(M3)])
            .to_latest(&mut conn)
            .unwrap();
        conn.execute(
            "INSERT INTO apps (id, name, git_url, branch) VALUES (7, 'blog', 'x', 'dev')",
            [],
        )
        .unwrap();
        let t = target(&mut conn, "blog").unwrap().unwrap();
        assert_eq!(
            (t.app_id, t.branch.as_str(), t.sealed_secret),
            (7, "dev", None)
        );
        assert!(set_secret(&mut conn, 7, b"sealed").unwrap());
        assert!(!set_secret(&mut conn, 8, b"sealed").unwrap());
        let t = target(&mut conn, "blog").unwrap().unwrap();
        assert_eq!(t.sealed_secret.as_deref(), Some(&b"sealed"[..]));
        assert_eq!(target(&mut conn, "nope").unwrap(), None);
        assert_eq!(app_id(&mut conn, "blog").unwrap(), Some(7));
    }
}
