//! Queries on `api_tokens`. Only SHA-256 hashes of tokens are stored; the token itself is
//! shown once, when it is created, and never written anywhere by Rivetr.

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

/// A token as listed: everything but its hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TokenRow {
    pub id: i64,
    pub name: String,
    /// RFC 3339, UTC.
    pub created_at: String,
    /// The last request made with the token, to the minute; null if never used.
    pub last_used_at: Option<String>,
    /// When it was revoked; null while it is valid.
    pub revoked_at: Option<String>,
}

impl TokenRow {
    fn from_row(r: &rusqlite::Row<'_>) -> Result<TokenRow, rusqlite::Error> {
        Ok(TokenRow {
            id: r.get(0)?,
            name: r.get(1)?,
            created_at: r.get(2)?,
            last_used_at: r.get(3)?,
            revoked_at: r.get(4)?,
        })
    }
}

const COLUMNS: &str = "id, name, created_at, last_used_at, revoked_at";

/// Why an insert or a revoke changed nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    NameTaken,
    NotFound,
    AlreadyRevoked(String),
}

/// Stores a new token's hash. `Err(Refused::NameTaken)` when a live token has the name.
pub fn insert(
    conn: &mut Connection,
    name: &str,
    hash: &[u8; 32],
) -> Result<Result<TokenRow, Refused>, rusqlite::Error> {
    let inserted = conn.query_row(
        &format!("INSERT INTO api_tokens (name, token_hash) VALUES (?1, ?2) RETURNING {COLUMNS}"),
        params![name, &hash[..]],
        TokenRow::from_row,
    );
    match inserted {
        Ok(row) => Ok(Ok(row)),
        Err(rusqlite::Error::SqliteFailure(e, _))
            if e.code == rusqlite::ErrorCode::ConstraintViolation =>
        {
            // The hash is 256 random bits; only the live-name index can collide.
            Ok(Err(Refused::NameTaken))
        }
        Err(e) => Err(e),
    }
}

/// Every token, oldest first.
pub fn list(conn: &mut Connection) -> Result<Vec<TokenRow>, rusqlite::Error> {
    let mut stmt = conn.prepare(&format!("SELECT {COLUMNS} FROM api_tokens ORDER BY id"))?;
    stmt.query_map([], TokenRow::from_row)?.collect()
}

/// True when no token was ever created (not even a revoked one).
pub fn none_ever(conn: &mut Connection) -> Result<bool, rusqlite::Error> {
    conn.query_row("SELECT NOT EXISTS (SELECT 1 FROM api_tokens)", [], |r| {
        r.get(0)
    })
}

/// Revokes a token; it fails on its next request.
pub fn revoke(
    conn: &mut Connection,
    id: i64,
) -> Result<Result<TokenRow, Refused>, rusqlite::Error> {
    let tx = conn.transaction()?;
    let current = tx
        .query_row(
            &format!("SELECT {COLUMNS} FROM api_tokens WHERE id = ?1"),
            [id],
            TokenRow::from_row,
        )
        .optional()?;
    let outcome = match current {
        None => Err(Refused::NotFound),
        Some(TokenRow {
            revoked_at: Some(at),
            ..
        }) => Err(Refused::AlreadyRevoked(at)),
        Some(_) => Ok(tx.query_row(
            &format!(
                "UPDATE api_tokens SET revoked_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
                 WHERE id = ?1 RETURNING {COLUMNS}"
            ),
            [id],
            TokenRow::from_row,
        )?),
    };
    tx.commit()?;
    Ok(outcome)
}

/// What a presented token's hash is: a live token, a revoked one, or unknown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    Valid { id: i64, name: String },
    Revoked { id: i64 },
    Unknown,
}

/// Looks a token up by its hash and, when it is valid, records its use. `last_used_at` is
/// written at most once a minute per token, so a busy client does not turn every request
/// into a database write. That write never waits: while another process holds the database's
/// write lock the stamp is left for a later request (it is still due then), and the request,
/// which only needed to read, goes on.
pub fn authenticate(conn: &mut Connection, hash: &[u8; 32]) -> Result<Lookup, rusqlite::Error> {
    let found = conn
        .query_row(
            "SELECT id, name, revoked_at IS NOT NULL,
                    last_used_at IS NULL
                    OR last_used_at < strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-60 seconds')
             FROM api_tokens WHERE token_hash = ?1",
            [&hash[..]],
            |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, bool>(2)?,
                    r.get::<_, bool>(3)?,
                ))
            },
        )
        .optional()?;
    let Some((id, name, revoked, stamp_due)) = found else {
        return Ok(Lookup::Unknown);
    };
    if revoked {
        return Ok(Lookup::Revoked { id });
    }
    if stamp_due {
        super::write_if_free(conn, |c| {
            c.execute(
                "UPDATE api_tokens SET last_used_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
                 WHERE id = ?1",
                [id],
            )
            .map(drop)
        })?;
    }
    Ok(Lookup::Valid { id, name })
}

#[cfg(test)]
mod tests {
    use rusqlite_migration::{M, Migrations};

    use super::*;

    fn db() -> Connection {
        let mut conn = Connection::open_in_memory().unwrap();
        Migrations::new(vec![
            M::up(include_str!("../../migrations/0001_initial.sql")),
            M::up(include_str!("../../migrations/0002_webhook_deliveries.sql")),
            M::up(include_str!("../../migrations/0003_api_auth.sql")),
        ])
        .to_latest(&mut conn)
        .unwrap();
        conn
    }

    #[test]
    fn authenticate_tells_valid_revoked_and_unknown_apart_and_records_use() {
        let mut conn = db();
        assert!(none_ever(&mut conn).unwrap());
        let row = insert(&mut conn, "ci", &[1; 32]).unwrap().unwrap();
        assert!(!none_ever(&mut conn).unwrap());
        assert_eq!(row.last_used_at, None);

        let found = authenticate(&mut conn, &[1; 32]).unwrap();
        assert_eq!(
            found,
            Lookup::Valid {
                id: row.id,
                name: "ci".to_owned()
            }
        );
        let used = list(&mut conn).unwrap()[0].last_used_at.clone().unwrap();
        // A use long ago is refreshed; a second use within the minute writes nothing.
        conn.execute(
            "UPDATE api_tokens SET last_used_at = '2000-01-01T00:00:00.000Z'",
            [],
        )
        .unwrap();
        authenticate(&mut conn, &[1; 32]).unwrap();
        let rewritten = list(&mut conn).unwrap()[0].last_used_at.clone().unwrap();
        assert_ne!(
            rewritten, "2000-01-01T00:00:00.000Z",
            "an old time is refreshed"
        );
        authenticate(&mut conn, &[1; 32]).unwrap();
        assert_eq!(
            list(&mut conn).unwrap()[0].last_used_at.clone().unwrap(),
            rewritten
        );
        assert!(used.starts_with("20"));

        assert_eq!(authenticate(&mut conn, &[2; 32]).unwrap(), Lookup::Unknown);
        revoke(&mut conn, row.id).unwrap().unwrap();
        assert_eq!(
            authenticate(&mut conn, &[1; 32]).unwrap(),
            Lookup::Revoked { id: row.id }
        );
    }
}
