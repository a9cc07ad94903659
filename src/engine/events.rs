//! What changes, as it happens: apps created, changed, stopped, started or deleted, and
//! deployments created, moving from stage to stage, and finished. The engine owns the
//! channel; the API's `GET /api/events` streams it to the dashboard, so open pages update
//! without polling.
//!
//! An event says what changed, not the whole new state: a listener reads the API again. A
//! listener that falls behind is told so (`Lagged`) and reads everything again. Nothing is
//! kept for listeners that are not connected.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;
use tokio::sync::broadcast;

/// Events buffered per listener before it counts as lagging.
const CAPACITY: usize = 256;

/// One change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Event {
    /// Increases by one per event since the start of this process.
    #[serde(skip)]
    pub seq: u64,
    pub kind: EventKind,
    pub app: String,
    /// The deployment, for deployment events.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deployment: Option<i64>,
    /// The deployment's status, or what happened to the app (`created`, `updated`,
    /// `stopped`, `started`, `deleted`).
    pub status: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// The app was created, changed, stopped, started or deleted.
    App,
    /// A deployment was queued (a deploy, a webhook, a rollback).
    DeploymentCreated,
    /// A deployment reached a new stage.
    DeploymentStage,
    /// A deployment ended: running, failed, cancelled or superseded.
    DeploymentFinished,
}

impl EventKind {
    /// The SSE event name.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::App => "app",
            EventKind::DeploymentCreated => "deployment_created",
            EventKind::DeploymentStage => "deployment_stage",
            EventKind::DeploymentFinished => "deployment_finished",
        }
    }
}

/// The sending side, kept by the engine.
pub struct Events {
    tx: broadcast::Sender<Event>,
    seq: AtomicU64,
}

impl Default for Events {
    fn default() -> Self {
        Events {
            tx: broadcast::channel(CAPACITY).0,
            seq: AtomicU64::new(0),
        }
    }
}

impl Events {
    /// Listens from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.tx.subscribe()
    }

    /// Sends an event to every listener (none listening is fine).
    pub fn send(&self, kind: EventKind, app: &str, deployment: Option<i64>, status: &str) {
        let seq = self.seq.fetch_add(1, Ordering::Relaxed) + 1;
        let _ = self.tx.send(Event {
            seq,
            kind,
            app: app.to_owned(),
            deployment,
            status: status.to_owned(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn listeners_get_events_in_order_with_rising_numbers() {
        let events = Events::default();
        events.send(EventKind::App, "nobody-listens", None, "created");
        let mut rx = events.subscribe();
        events.send(EventKind::DeploymentCreated, "web", Some(3), "queued");
        events.send(EventKind::DeploymentStage, "web", Some(3), "building");
        let a = rx.recv().await.unwrap();
        let b = rx.recv().await.unwrap();
        assert_eq!(
            (a.kind, a.status.as_str()),
            (EventKind::DeploymentCreated, "queued")
        );
        assert_eq!(b.seq, a.seq + 1);
        assert_eq!(
            serde_json::to_value(&b).unwrap(),
            serde_json::json!({"kind": "deployment_stage", "app": "web", "deployment": 3, "status": "building"})
        );
    }
}
