//! Queries on `sessions`: the dashboard's sign-ins. Only the SHA-256 of a session's cookie
//! value is stored. A session ends when it has been idle too long, when it is too old, when
//! it is signed out, and when its token is revoked (a trigger in migration 0008 deletes it).

use rusqlite::{Connection, OptionalExtension, params};

/// How long sessions may live, in seconds.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub idle: i64,
    pub max: i64,
}

/// A live session and the token it stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub id: i64,
    pub token_id: i64,
    pub token_name: String,
    /// Unix seconds when it ends at the latest.
    pub expires_at: i64,
}

/// Opens a session for a (valid) token; also drops sessions that have expired.
pub fn create(
    c: &mut Connection,
    token_id: i64,
    secret_hash: &[u8; 32],
    now: i64,
    limits: Limits,
) -> rusqlite::Result<i64> {
    prune(c, now, limits)?;
    c.query_row(
        "INSERT INTO sessions (token_id, secret_hash, created_at, last_seen_at)
         VALUES (?1, ?2, ?3, ?3) RETURNING id",
        params![token_id, &secret_hash[..], now],
        |r| r.get(0),
    )
}

/// The session whose cookie hashes to `secret_hash`, if it is still live. An expired one is
/// deleted. Use is recorded at most once a minute, on the session and on its token.
pub fn lookup(
    c: &mut Connection,
    secret_hash: &[u8; 32],
    now: i64,
    limits: Limits,
) -> rusqlite::Result<Option<Session>> {
    let found = c
        .query_row(
            "SELECT s.id, s.token_id, t.name, s.created_at, s.last_seen_at, t.revoked_at IS NOT NULL
             FROM sessions s JOIN api_tokens t ON t.id = s.token_id
             WHERE s.secret_hash = ?1",
            [&secret_hash[..]],
            |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, i64>(4)?,
                    r.get::<_, bool>(5)?,
                ))
            },
        )
        .optional()?;
    let Some((id, token_id, token_name, created, seen, revoked)) = found else {
        return Ok(None);
    };
    // (An ended session whose delete is skipped here is refused all the same, and deleted
    // when it is sent again.)
    if revoked || now - seen > limits.idle || now - created > limits.max {
        super::write_if_free(c, |c| {
            c.execute("DELETE FROM sessions WHERE id = ?1", [id])
                .map(drop)
        })?;
        return Ok(None);
    }
    if now - seen >= 60 {
        super::write_if_free(c, |c| {
            let tx = c.transaction()?;
            tx.execute(
                "UPDATE sessions SET last_seen_at = ?2 WHERE id = ?1",
                params![id, now],
            )?;
            tx.execute(
                "UPDATE api_tokens SET last_used_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE id = ?1",
                [token_id],
            )?;
            tx.commit()
        })?;
    }
    let last_seen = if now - seen >= 60 { now } else { seen };
    Ok(Some(Session {
        id,
        token_id,
        token_name,
        expires_at: (last_seen + limits.idle).min(created + limits.max),
    }))
}

/// Ends the session with this cookie; true when there was one.
pub fn delete(c: &mut Connection, secret_hash: &[u8; 32]) -> rusqlite::Result<bool> {
    Ok(c.execute(
        "DELETE FROM sessions WHERE secret_hash = ?1",
        [&secret_hash[..]],
    )? > 0)
}

fn prune(c: &mut Connection, now: i64, limits: Limits) -> rusqlite::Result<()> {
    c.execute(
        "DELETE FROM sessions WHERE last_seen_at < ?1 OR created_at < ?2",
        params![now - limits.idle, now - limits.max],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        idle: 3600,
        max: 86400,
    };

    fn db() -> (tempfile::TempDir, crate::db::Db) {
        let dir = tempfile::tempdir().unwrap();
        let (db, _) = crate::db::Db::open(&dir.path().join("rivetr.db")).unwrap();
        (dir, db)
    }

    #[tokio::test]
    async fn sessions_expire_when_idle_or_old_and_end_with_their_token() {
        let (_dir, db) = db();
        db.call(|c| {
            let token = crate::db::tokens::insert(c, "laptop", &[7; 32])
                .unwrap()
                .unwrap();
            create(c, token.id, &[1; 32], 1000, LIMITS)?;
            let s = lookup(c, &[1; 32], 1030, LIMITS)?.expect("live");
            assert_eq!(s.token_name, "laptop");
            assert_eq!(s.expires_at, 1000 + 3600, "not refreshed within the minute");
            // Used now and then, it lives until the absolute limit, and not past it.
            let mut t = 1000;
            while t + 3000 <= 1000 + 86400 {
                t += 3000;
                assert!(lookup(c, &[1; 32], t, LIMITS)?.is_some(), "at {t}");
            }
            assert!(lookup(c, &[1; 32], 1000 + 86401, LIMITS)?.is_none());
            assert!(
                lookup(c, &[1; 32], t, LIMITS)?.is_none(),
                "deleted once expired"
            );

            // Idle too long.
            create(c, token.id, &[2; 32], 5000, LIMITS)?;
            assert!(lookup(c, &[2; 32], 5000 + 3601, LIMITS)?.is_none());

            // Signed out.
            create(c, token.id, &[3; 32], 9000, LIMITS)?;
            assert!(delete(c, &[3; 32])?);
            assert!(lookup(c, &[3; 32], 9001, LIMITS)?.is_none());

            // The token revoked: every session of it ends.
            create(c, token.id, &[4; 32], 9000, LIMITS)?;
            crate::db::tokens::revoke(c, token.id)?.unwrap();
            assert!(lookup(c, &[4; 32], 9001, LIMITS)?.is_none());
            let left: i64 = c.query_row("SELECT COUNT(*) FROM sessions", [], |r| r.get(0))?;
            assert_eq!(left, 0);
            Ok(())
        })
        .await
        .unwrap();
    }
}
