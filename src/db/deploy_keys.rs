//! The `deploy_keys` table: each app's SSH deploy key. The private half is stored encrypted;
//! this module stores and returns bytes and never decrypts.

use rusqlite::{Connection, OptionalExtension, params};

/// One app's deploy key as stored.
#[derive(Clone, PartialEq, Eq)]
pub struct DeployKey {
    pub app_id: i64,
    /// The OpenSSH public key line.
    pub public_key: String,
    /// `SHA256:...` of the public key.
    pub fingerprint: String,
    /// The sealed OpenSSH private key.
    pub private_key: Vec<u8>,
    pub created_at: String,
}

impl std::fmt::Debug for DeployKey {
    // The sealed private key never reaches Debug output, even encrypted.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeployKey")
            .field("app_id", &self.app_id)
            .field("fingerprint", &self.fingerprint)
            .finish_non_exhaustive()
    }
}

pub fn get(c: &Connection, app_id: i64) -> rusqlite::Result<Option<DeployKey>> {
    c.query_row(
        "SELECT app_id, public_key, fingerprint, private_key, created_at
         FROM deploy_keys WHERE app_id = ?1",
        [app_id],
        |r| {
            Ok(DeployKey {
                app_id: r.get(0)?,
                public_key: r.get(1)?,
                fingerprint: r.get(2)?,
                private_key: r.get(3)?,
                created_at: r.get(4)?,
            })
        },
    )
    .optional()
}

/// Stores the app's key, replacing the one it had.
pub fn replace(
    c: &Connection,
    app_id: i64,
    public_key: &str,
    fingerprint: &str,
    sealed_private_key: &[u8],
) -> rusqlite::Result<DeployKey> {
    c.execute(
        "INSERT INTO deploy_keys (app_id, public_key, fingerprint, private_key) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (app_id) DO UPDATE SET public_key = excluded.public_key,
             fingerprint = excluded.fingerprint, private_key = excluded.private_key,
             created_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')",
        params![app_id, public_key, fingerprint, sealed_private_key],
    )?;
    get(c, app_id)?.ok_or(rusqlite::Error::QueryReturnedNoRows)
}

/// Removes the app's key; false when it had none.
pub fn delete(c: &Connection, app_id: i64) -> rusqlite::Result<bool> {
    Ok(c.execute("DELETE FROM deploy_keys WHERE app_id = ?1", [app_id])? > 0)
}

/// The fingerprint of the app's key, if it has one.
pub fn fingerprint(c: &Connection, app_id: i64) -> rusqlite::Result<Option<String>> {
    c.prepare_cached("SELECT fingerprint FROM deploy_keys WHERE app_id = ?1")?
        .query_row([app_id], |r| r.get(0))
        .optional()
}
