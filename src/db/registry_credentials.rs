//! The `registry_credentials` table: the user name and sealed password of each registry
//! Rivetr pushes swarm builds to.

use rusqlite::{Connection, OptionalExtension, params};

/// One registry's credentials; the password as stored (sealed).
#[derive(Clone, PartialEq, Eq)]
pub struct RegistryCredentialRow {
    pub registry: String,
    pub username: String,
    pub sealed_password: Vec<u8>,
    pub updated_at: String,
}

impl std::fmt::Debug for RegistryCredentialRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryCredentialRow")
            .field("registry", &self.registry)
            .field("username", &self.username)
            .field("updated_at", &self.updated_at)
            .finish_non_exhaustive()
    }
}

pub fn get(c: &Connection, registry: &str) -> rusqlite::Result<Option<RegistryCredentialRow>> {
    c.query_row(
        "SELECT registry, username, password, updated_at FROM registry_credentials WHERE registry = ?1",
        [registry],
        |r| {
            Ok(RegistryCredentialRow {
                registry: r.get(0)?,
                username: r.get(1)?,
                sealed_password: r.get(2)?,
                updated_at: r.get(3)?,
            })
        },
    )
    .optional()
}

/// Sets (or replaces) a registry's credentials.
pub fn set(
    c: &Connection,
    registry: &str,
    username: &str,
    sealed_password: &[u8],
) -> rusqlite::Result<()> {
    c.execute(
        "INSERT INTO registry_credentials (registry, username, password) VALUES (?1, ?2, ?3)
         ON CONFLICT (registry) DO UPDATE SET username = excluded.username,
             password = excluded.password,
             updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')",
        params![registry, username, sealed_password],
    )?;
    Ok(())
}

/// Removes a registry's credentials; true when there were some.
pub fn delete(c: &Connection, registry: &str) -> rusqlite::Result<bool> {
    Ok(c.execute(
        "DELETE FROM registry_credentials WHERE registry = ?1",
        [registry],
    )? > 0)
}
