//! The log streams (Server-Sent Events) each token holds open: at most `[server]
//! log_streams_per_token` at once (429 `too_many_streams` past it), and every one ends within
//! seconds of its token being revoked.
//!
//! A stream takes a [`StreamGuard`] when it opens; the guard goes with the response body and
//! gives the place back when the body is dropped (the client went away or the stream ended).
//! A revocation through the API ends the token's streams at once ([`Streams::end_token`]); one
//! made on the host with `rivetr token revoke` is seen at the next reading of the live tokens
//! ([`crate::auth::live::REFRESH`]), after which [`Streams::end_revoked`] ends them. An
//! ended stream sends a last `event: error` saying why, then closes.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use axum::http::StatusCode;
use axum::response::sse::Event;
use futures_util::{Stream, StreamExt};
use tokio_util::sync::CancellationToken;

use super::error::ApiError;

/// What the open streams of one token share.
#[derive(Debug)]
struct Entry {
    open: usize,
    /// Cancelled when the token is revoked.
    revoked: CancellationToken,
}

/// The open streams, by token id.
#[derive(Debug, Default)]
pub struct Streams {
    by_token: Mutex<HashMap<i64, Entry>>,
}

impl Streams {
    /// Takes one of the `limit` places of token `token_id`, or 429 when they are all taken.
    pub fn open(self: &Arc<Self>, token_id: i64, limit: usize) -> Result<StreamGuard, ApiError> {
        let mut by_token = self.lock();
        let entry = by_token.entry(token_id).or_insert_with(|| Entry {
            open: 0,
            revoked: CancellationToken::new(),
        });
        if entry.open >= limit {
            return Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_streams",
                format!(
                    "this token already has {} log streams open, the most allowed \
                     ([server] log_streams_per_token); close one first",
                    entry.open
                ),
            ));
        }
        entry.open += 1;
        Ok(StreamGuard {
            streams: Arc::clone(self),
            token_id,
            revoked: entry.revoked.clone(),
        })
    }

    /// Ends every stream of a token that was just revoked.
    pub fn end_token(&self, token_id: i64) {
        if let Some(entry) = self.lock().get(&token_id) {
            entry.revoked.cancel();
        }
    }

    /// Ends the streams of every token `revoked` says was revoked.
    pub fn end_revoked(&self, revoked: impl Fn(i64) -> bool) {
        for (id, entry) in self.lock().iter() {
            if revoked(*id) && !entry.revoked.is_cancelled() {
                tracing::info!(
                    token = id,
                    streams = entry.open,
                    "ending the log streams of a revoked token"
                );
                entry.revoked.cancel();
            }
        }
    }

    /// Streams open for `token_id`.
    pub fn open_count(&self, token_id: i64) -> usize {
        self.lock().get(&token_id).map_or(0, |e| e.open)
    }

    fn close(&self, token_id: i64) {
        let mut by_token = self.lock();
        if let Some(entry) = by_token.get_mut(&token_id) {
            entry.open = entry.open.saturating_sub(1);
            if entry.open == 0 {
                by_token.remove(&token_id);
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<i64, Entry>> {
        // Held for a map operation only, never across an await.
        self.by_token.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// One open stream's place; given back when dropped.
#[derive(Debug)]
pub struct StreamGuard {
    streams: Arc<Streams>,
    token_id: i64,
    revoked: CancellationToken,
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.streams.close(self.token_id);
    }
}

/// `events`, ended early with an `error` event when the guard's token is revoked; the guard
/// lives as long as the stream.
pub fn guarded<S>(events: S, guard: StreamGuard) -> impl Stream<Item = Result<Event, Infallible>>
where
    S: Stream<Item = Result<Event, Infallible>> + Send + 'static,
{
    let state = (Box::pin(events), guard, false);
    futures_util::stream::unfold(state, |(mut events, guard, ended)| async move {
        if ended {
            return None;
        }
        tokio::select! {
            biased;
            _ = guard.revoked.cancelled() => {
                let last = Event::default()
                    .event("error")
                    .data("the token of this stream was revoked");
                Some((Ok(last), (events, guard, true)))
            }
            next = events.next() => next.map(|e| (e, (events, guard, false))),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_are_counted_per_token_and_given_back() {
        let streams = Arc::new(Streams::default());
        let a = streams.open(1, 2).unwrap();
        let b = streams.open(1, 2).unwrap();
        let refused = streams.open(1, 2).unwrap_err();
        assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(refused.code, "too_many_streams");
        assert!(refused.message.contains("log_streams_per_token"));
        let other = streams.open(2, 2).unwrap();
        drop(a);
        assert_eq!(streams.open_count(1), 1);
        let c = streams.open(1, 2).unwrap();
        drop((b, c, other));
        assert!(streams.lock().is_empty(), "nothing left behind");
    }

    #[tokio::test]
    async fn a_revoked_token_ends_its_streams_with_a_last_event() {
        let streams = Arc::new(Streams::default());
        let guard = streams.open(7, 4).unwrap();
        let kept = streams.open(8, 4).unwrap();
        let never_ending = futures_util::stream::pending::<Result<Event, Infallible>>();
        let mut stream = Box::pin(guarded(never_ending, guard));
        streams.end_revoked(|id| id == 7);
        assert!(stream.next().await.is_some(), "the last event");
        assert!(stream.next().await.is_none(), "then the end");
        drop(stream);
        assert_eq!(streams.open_count(7), 0);
        assert!(!kept.revoked.is_cancelled());
    }
}
