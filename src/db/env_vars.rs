//! The `env_vars` table: each app's environment. Secret values are stored encrypted; this
//! module stores and returns bytes and never decrypts.

use rusqlite::{Connection, params};

#[derive(Clone, PartialEq, Eq)]
pub struct EnvVar {
    pub key: String,
    /// Plain UTF-8 when `secret` is false, ciphertext when true.
    pub value: Vec<u8>,
    pub secret: bool,
    pub updated_at: String,
}

impl std::fmt::Debug for EnvVar {
    // Values never reach Debug output.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnvVar")
            .field("key", &self.key)
            .field("secret", &self.secret)
            .finish_non_exhaustive()
    }
}

pub fn list(c: &Connection, app_id: i64) -> rusqlite::Result<Vec<EnvVar>> {
    let mut stmt = c.prepare_cached(
        "SELECT key, value, secret, updated_at FROM env_vars WHERE app_id = ?1 ORDER BY key",
    )?;
    let rows = stmt.query_map([app_id], |r| {
        Ok(EnvVar {
            key: r.get(0)?,
            value: r.get(1)?,
            secret: r.get(2)?,
            updated_at: r.get(3)?,
        })
    })?;
    rows.collect()
}

pub fn set(
    c: &Connection,
    app_id: i64,
    key: &str,
    value: &[u8],
    secret: bool,
) -> rusqlite::Result<()> {
    c.execute(
        "INSERT INTO env_vars (app_id, key, value, secret) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (app_id, key) DO UPDATE SET value = excluded.value, secret = excluded.secret,
             updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')",
        params![app_id, key, value, secret],
    )?;
    Ok(())
}

pub fn unset(c: &Connection, app_id: i64, key: &str) -> rusqlite::Result<bool> {
    Ok(c.execute(
        "DELETE FROM env_vars WHERE app_id = ?1 AND key = ?2",
        params![app_id, key],
    )? > 0)
}
