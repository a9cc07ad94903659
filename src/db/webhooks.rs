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
