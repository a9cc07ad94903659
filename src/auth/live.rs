//! The tokens that are live right now, held in memory: the SHA-256 of every token that is not
//! revoked, with its id.
//!
//! The database stays the authority: every request's token is still looked up there. This
//! copy answers two questions that must not cost a database call or wait for one:
//! - may an address that has used up its failed attempts have its token looked up at all?
//!   Only when the token's hash is here; any other token is refused unchecked, so a limited
//!   address cannot make Rivetr test its guesses (see `api::auth`);
//! - is the token behind an open log stream still live? Streams of a token that left this set
//!   are ended (see `api::streams`).
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

/// The live tokens: hash -> id.
#[derive(Debug, Default)]
pub struct LiveTokens {
    by_hash: RwLock<HashMap<[u8; 32], i64>>,
}

impl LiveTokens {
    /// True when `hash` is the hash of a token that was live at the last reading.
    pub fn contains(&self, hash: &[u8; 32]) -> bool {
        self.read().contains_key(hash)
    }

    /// The ids of the live tokens.
    pub fn ids(&self) -> HashSet<i64> {
        self.read().values().copied().collect()
    }

    /// Reads the set again from the database.
    pub async fn refresh(&self, db: &Db) -> Result<(), DbError> {
        let fresh = db.call(read_live).await?;
        *self.by_hash.write().unwrap_or_else(|e| e.into_inner()) = fresh;
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

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<[u8; 32], i64>> {
        // Held for a lookup only, never across an await.
        self.by_hash.read().unwrap_or_else(|e| e.into_inner())
    }
}

fn read_live(c: &mut Connection) -> Result<HashMap<[u8; 32], i64>, rusqlite::Error> {
    let mut stmt =
        c.prepare_cached("SELECT token_hash, id FROM api_tokens WHERE revoked_at IS NULL")?;
    let rows = stmt.query_map([], |r| Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, i64>(1)?)))?;
    let mut live = HashMap::new();
    for row in rows {
        let (hash, id) = row?;
        // Every hash Rivetr writes is 32 bytes; anything else cannot match a token.
        if let Ok(hash) = <[u8; 32]>::try_from(hash.as_slice()) {
            live.insert(hash, id);
        }
    }
    Ok(live)
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
        assert!(live.ids().is_empty());

        let a = crate::auth::create(&db, "a").await.unwrap().unwrap();
        let b = crate::auth::create(&db, "b").await.unwrap().unwrap();
        let hash_a = crate::auth::hash(a.token.expose());
        assert!(!live.contains(&hash_a), "not read yet");
        live.refresh(&db).await.unwrap();
        assert!(live.contains(&hash_a));
        assert_eq!(live.ids(), HashSet::from([a.row.id, b.row.id]));

        let id = a.row.id;
        db.call(move |c| crate::db::tokens::revoke(c, id))
            .await
            .unwrap()
            .unwrap();
        live.refresh(&db).await.unwrap();
        assert!(!live.contains(&hash_a));
        assert_eq!(live.ids(), HashSet::from([b.row.id]));
    }
}
