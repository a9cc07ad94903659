//! The tokens that are live right now, held in memory: the SHA-256 of every token that is not
//! revoked, with its id.
//!
//! The database stays the authority: every request's token is still looked up there. This
//! copy answers two questions that must not cost a database call or wait for one:
//! - may an address that has used up its failed attempts have its token looked up at all?
//!   Only when the token's hash is here; any other token is refused unchecked, so a limited
//!   address cannot make Rivetr test its guesses (see `api::auth`);
//! - has the token behind an open log stream been revoked? Its streams are ended (see
//!   `api::streams`).
//!
//! It is read again after every change made through the API and every [`REFRESH`] (tokens
//! created or revoked by `rivetr token` on the host change the database behind the daemon's
//! back), by [`LiveTokens::follow`].

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rusqlite::Connection;
use tokio_util::sync::CancellationToken;

use crate::db::{Db, DbError};

/// How often the set is read again from the database.
pub const REFRESH: Duration = Duration::from_secs(2);

/// The tokens at the last reading.
#[derive(Debug, Default)]
pub struct LiveTokens {
    known: RwLock<Known>,
}

#[derive(Debug, Default)]
struct Known {
    /// Live tokens: hash -> id.
    live: HashMap<[u8; 32], i64>,
    /// Ids of revoked tokens (rows stay after a revocation).
    revoked: HashSet<i64>,
}

impl LiveTokens {
    /// True when `hash` is the hash of a token that was live at the last reading.
    pub fn contains(&self, hash: &[u8; 32]) -> bool {
        self.read().live.contains_key(hash)
    }

    /// True when token `id` was revoked at the last reading. (A token made after that reading
    /// is neither live nor revoked here.)
    pub fn is_revoked(&self, id: i64) -> bool {
        self.read().revoked.contains(&id)
    }

    /// Reads the set again from the database.
    pub async fn refresh(&self, db: &Db) -> Result<(), DbError> {
        let fresh = db.call(read_tokens).await?;
        *self.known.write().unwrap_or_else(|e| e.into_inner()) = fresh;
        Ok(())
    }

    /// Refreshes every [`REFRESH`] until `shutdown`, calling `after` each time (with the
    /// fresh set in place).
    pub async fn follow(
        self: Arc<Self>,
        db: Db,
        after: impl Fn(&LiveTokens) + Send,
        shutdown: CancellationToken,
    ) {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(REFRESH) => {}
            }
            match self.refresh(&db).await {
                Ok(()) => after(&self),
                Err(e) => tracing::warn!(error = %e, "cannot read the live API tokens"),
            }
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Known> {
        // Held for a lookup only, never across an await.
        self.known.read().unwrap_or_else(|e| e.into_inner())
    }
}

fn read_tokens(c: &mut Connection) -> Result<Known, rusqlite::Error> {
    let mut stmt =
        c.prepare_cached("SELECT token_hash, id, revoked_at IS NOT NULL FROM api_tokens")?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, Vec<u8>>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, bool>(2)?,
        ))
    })?;
    let mut known = Known::default();
    for row in rows {
        match row? {
            (_, id, true) => {
                known.revoked.insert(id);
            }
            (hash, id, false) => {
                // Every hash Rivetr writes is 32 bytes; anything else cannot match a token.
                if let Ok(hash) = <[u8; 32]>::try_from(hash.as_slice()) {
                    known.live.insert(hash, id);
                }
            }
        }
    }
    Ok(known)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn follows_creation_and_revocation() {
        let dir = tempfile::tempdir().unwrap();
        let (db, _) = Db::open(&dir.path().join("rivetr.db")).unwrap();
        let live = LiveTokens::default();
        live.refresh(&db).await.unwrap();

        let a = crate::auth::create(&db, "a").await.unwrap().unwrap();
        let b = crate::auth::create(&db, "b").await.unwrap().unwrap();
        let hash_a = crate::auth::hash(a.token.expose());
        assert!(!live.contains(&hash_a), "not read yet");
        live.refresh(&db).await.unwrap();
        assert!(live.contains(&hash_a));
        assert!(live.contains(&crate::auth::hash(b.token.expose())));
        assert!(!live.is_revoked(a.row.id));

        let id = a.row.id;
        db.call(move |c| crate::db::tokens::revoke(c, id))
            .await
            .unwrap()
            .unwrap();
        live.refresh(&db).await.unwrap();
        assert!(!live.contains(&hash_a));
        assert!(live.is_revoked(a.row.id));
        assert!(!live.is_revoked(b.row.id));
    }
}
