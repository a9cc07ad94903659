//! `notification_channels` and `notification_deliveries`: where messages go, and the queue
//! of messages on their way (with what became of each).

use rusqlite::{Connection, OptionalExtension, params};

/// A channel as stored; `secret` is sealed.
#[derive(Debug, Clone)]
pub struct ChannelRow {
    pub id: i64,
    pub name: String,
    pub kind: String,
    /// Plain JSON: what may be shown.
    pub settings: String,
    pub secret: Vec<u8>,
    /// JSON array of event names; empty means every event.
    pub events: String,
    pub enabled: bool,
    pub created_at: String,
}

const CHANNEL_COLUMNS: &str = "id, name, kind, settings, secret, events, enabled, created_at";

fn channel_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ChannelRow> {
    Ok(ChannelRow {
        id: r.get(0)?,
        name: r.get(1)?,
        kind: r.get(2)?,
        settings: r.get(3)?,
        secret: r.get(4)?,
        events: r.get(5)?,
        enabled: r.get(6)?,
        created_at: r.get(7)?,
    })
}

/// Inserts a channel with an empty secret (sealing needs its id); returns the id.
pub fn insert_channel(
    c: &Connection,
    name: &str,
    kind: &str,
    settings: &str,
    events: &str,
    enabled: bool,
) -> rusqlite::Result<i64> {
    c.execute(
        "INSERT INTO notification_channels (name, kind, settings, secret, events, enabled)
         VALUES (?1, ?2, ?3, x'', ?4, ?5)",
        params![name, kind, settings, events, enabled],
    )?;
    Ok(c.last_insert_rowid())
}

pub fn set_secret(c: &Connection, id: i64, sealed: &[u8]) -> rusqlite::Result<()> {
    c.execute(
        "UPDATE notification_channels SET secret = ?2 WHERE id = ?1",
        params![id, sealed],
    )?;
    Ok(())
}

pub fn update_channel(
    c: &Connection,
    id: i64,
    settings: &str,
    events: &str,
    enabled: bool,
) -> rusqlite::Result<()> {
    c.execute(
        "UPDATE notification_channels SET settings = ?2, events = ?3, enabled = ?4 WHERE id = ?1",
        params![id, settings, events, enabled],
    )?;
    Ok(())
}

pub fn channel(c: &Connection, name: &str) -> rusqlite::Result<Option<ChannelRow>> {
    let sql = format!("SELECT {CHANNEL_COLUMNS} FROM notification_channels WHERE name = ?1");
    c.query_row(&sql, [name], channel_from_row).optional()
}

pub fn channel_by_id(c: &Connection, id: i64) -> rusqlite::Result<Option<ChannelRow>> {
    let sql = format!("SELECT {CHANNEL_COLUMNS} FROM notification_channels WHERE id = ?1");
    c.query_row(&sql, [id], channel_from_row).optional()
}

pub fn channels(c: &Connection) -> rusqlite::Result<Vec<ChannelRow>> {
    let sql = format!("SELECT {CHANNEL_COLUMNS} FROM notification_channels ORDER BY name");
    c.prepare(&sql)?.query_map([], channel_from_row)?.collect()
}

/// Deletes a channel and its deliveries; whether there was one.
pub fn delete_channel(c: &Connection, name: &str) -> rusqlite::Result<bool> {
    Ok(c.execute("DELETE FROM notification_channels WHERE name = ?1", [name])? > 0)
}

/// One message to one channel.
#[derive(Debug, Clone)]
pub struct DeliveryRow {
    pub id: i64,
    pub channel_id: i64,
    pub channel: String,
    pub event: String,
    pub payload: String,
    pub status: String,
    pub attempts: i64,
    pub next_attempt: String,
    pub last_error: Option<String>,
    pub created_at: String,
    pub sent_at: Option<String>,
}

const DELIVERY_COLUMNS: &str = "d.id, d.channel_id, c.name, d.event, d.payload, d.status, \
     d.attempts, d.next_attempt, d.last_error, d.created_at, d.sent_at";

fn delivery_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<DeliveryRow> {
    Ok(DeliveryRow {
        id: r.get(0)?,
        channel_id: r.get(1)?,
        channel: r.get(2)?,
        event: r.get(3)?,
        payload: r.get(4)?,
        status: r.get(5)?,
        attempts: r.get(6)?,
        next_attempt: r.get(7)?,
        last_error: r.get(8)?,
        created_at: r.get(9)?,
        sent_at: r.get(10)?,
    })
}

/// Queues `payload` for every enabled channel whose filter takes `event`, in one
/// transaction; the ids queued.
pub fn enqueue(c: &mut Connection, event: &str, payload: &str) -> rusqlite::Result<Vec<i64>> {
    let tx = c.transaction()?;
    let channels: Vec<(i64, String)> = tx
        .prepare("SELECT id, events FROM notification_channels WHERE enabled = 1")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let mut ids = Vec::new();
    for (channel_id, events) in channels {
        if !takes(&events, event) {
            continue;
        }
        ids.push(insert_delivery(&tx, channel_id, event, payload)?);
    }
    tx.commit()?;
    Ok(ids)
}

/// A channel's filter (a JSON array of event names, empty for all) takes `event`.
pub fn takes(filter: &str, event: &str) -> bool {
    let names: Vec<String> = serde_json::from_str(filter).unwrap_or_default();
    names.is_empty() || names.iter().any(|n| n == event)
}

pub fn insert_delivery(
    c: &Connection,
    channel_id: i64,
    event: &str,
    payload: &str,
) -> rusqlite::Result<i64> {
    c.execute(
        "INSERT INTO notification_deliveries (channel_id, event, payload) VALUES (?1, ?2, ?3)",
        params![channel_id, event, payload],
    )?;
    Ok(c.last_insert_rowid())
}

/// Pending deliveries whose time has come, oldest first. A test message is sent by the
/// request that asked for it, never by the queue (which would send it a second time).
pub fn due(c: &Connection, limit: usize) -> rusqlite::Result<Vec<DeliveryRow>> {
    let sql = format!(
        "SELECT {DELIVERY_COLUMNS} FROM notification_deliveries d
         JOIN notification_channels c ON c.id = d.channel_id
         WHERE d.status = 'pending' AND d.event != 'test'
           AND d.next_attempt <= strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
         ORDER BY d.next_attempt, d.id LIMIT ?1"
    );
    c.prepare(&sql)?
        .query_map([limit as i64], delivery_from_row)?
        .collect()
}

/// Seconds until the next pending delivery is due (0 when one is due now), if any.
pub fn seconds_to_next(c: &Connection) -> rusqlite::Result<Option<f64>> {
    c.query_row(
        "SELECT MAX(0, (julianday(MIN(next_attempt)) - julianday('now')) * 86400.0)
         FROM notification_deliveries WHERE status = 'pending' AND event != 'test'",
        [],
        |r| r.get(0),
    )
}

pub fn mark_sent(c: &Connection, id: i64) -> rusqlite::Result<()> {
    c.execute(
        "UPDATE notification_deliveries
         SET status = 'sent', attempts = attempts + 1, last_error = NULL,
             sent_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
         WHERE id = ?1",
        [id],
    )?;
    Ok(())
}

/// Records a failed try: retried after `retry_in_ms`, or given up (`None`).
pub fn mark_failed(
    c: &Connection,
    id: i64,
    error: &str,
    retry_in_ms: Option<u64>,
) -> rusqlite::Result<()> {
    match retry_in_ms {
        Some(ms) => c.execute(
            "UPDATE notification_deliveries
             SET attempts = attempts + 1, last_error = ?2,
                 next_attempt = strftime('%Y-%m-%dT%H:%M:%fZ', 'now', ?3)
             WHERE id = ?1",
            params![id, error, format!("+{:.3} seconds", ms as f64 / 1000.0)],
        )?,
        None => c.execute(
            "UPDATE notification_deliveries
             SET status = 'failed', attempts = attempts + 1, last_error = ?2
             WHERE id = ?1",
            params![id, error],
        )?,
    };
    Ok(())
}

pub fn delivery(c: &Connection, id: i64) -> rusqlite::Result<Option<DeliveryRow>> {
    let sql = format!(
        "SELECT {DELIVERY_COLUMNS} FROM notification_deliveries d
         JOIN notification_channels c ON c.id = d.channel_id WHERE d.id = ?1"
    );
    c.query_row(&sql, [id], delivery_from_row).optional()
}

/// The newest deliveries, optionally of one channel and/or in one status.
pub fn deliveries(
    c: &Connection,
    channel: Option<&str>,
    status: Option<&str>,
    limit: usize,
) -> rusqlite::Result<Vec<DeliveryRow>> {
    let sql = format!(
        "SELECT {DELIVERY_COLUMNS} FROM notification_deliveries d
         JOIN notification_channels c ON c.id = d.channel_id
         WHERE (?1 IS NULL OR c.name = ?1) AND (?2 IS NULL OR d.status = ?2)
         ORDER BY d.id DESC LIMIT ?3"
    );
    c.prepare(&sql)?
        .query_map(params![channel, status, limit as i64], delivery_from_row)?
        .collect()
}

/// Deliveries given up in the last day: what `/api/health` reports.
pub fn failed_recently(c: &Connection) -> rusqlite::Result<i64> {
    c.query_row(
        "SELECT COUNT(*) FROM notification_deliveries
         WHERE status = 'failed'
           AND created_at >= strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-1 day')",
        [],
        |r| r.get(0),
    )
}
