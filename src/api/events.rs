//! `GET /api/events`: what changes, as Server-Sent Events, so the dashboard's lists update
//! without polling. The engine owns the channel ([`crate::engine::events`]); this module only
//! turns it into an event stream.
//!
//! The stream opens with `event: ready` (the subscription is in place: a client reads the
//! API after it and misses nothing), then one event per change: `app`,
//! `deployment_created`, `deployment_stage`, `deployment_finished`, each with JSON data
//! `{"kind", "app", "deployment"?, "status"}` and an `id:` that rises by one. A client that
//! fell behind gets `event: resync` and should read everything again. Nothing is replayed on
//! reconnection: a client reads the API again after each `ready`. The stream ends at
//! shutdown.

use std::convert::Infallible;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::{Stream, StreamExt};
use tokio::sync::broadcast::error::RecvError;

use super::error::ErrorBody;
use crate::AppState;
use crate::engine::events::Event as Change;

fn sse_event(change: &Change) -> Event {
    Event::default()
        .event(change.kind.as_str())
        .id(change.seq.to_string())
        .json_data(change)
        .unwrap_or_else(|_| Event::default().event("resync").data("{}"))
}

fn changes(state: &AppState) -> impl Stream<Item = Result<Event, Infallible>> + use<> {
    let rx = state.engine.subscribe_events();
    let ready =
        futures_util::stream::once(async { Ok(Event::default().event("ready").data("{}")) });
    let live = futures_util::stream::unfold(rx, |mut rx| async move {
        let event = match rx.recv().await {
            Ok(change) => sse_event(&change),
            Err(RecvError::Lagged(_)) => Event::default().event("resync").data("{}"),
            Err(RecvError::Closed) => return None,
        };
        Some((Ok(event), rx))
    });
    let shutdown = state.engine.shutdown_token();
    ready
        .chain(live)
        .take_until(async move { shutdown.cancelled_owned().await })
}

/// A live stream of changes to apps and deployments (Server-Sent Events).
#[utoipa::path(
    get,
    path = "/api/events",
    tag = "events",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "`text/event-stream`: `ready`, then `app`, `deployment_created`, `deployment_stage` and `deployment_finished` events with JSON data `{kind, app, deployment?, status}`; `resync` when the client fell behind", content_type = "text/event-stream"),
        (status = 401, description = "No valid token or session", body = ErrorBody),
    )
)]
pub async fn events(State(state): State<AppState>) -> Response {
    Sse::new(changes(&state))
        .keep_alive(KeepAlive::default())
        .into_response()
}
