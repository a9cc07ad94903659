//! The queue: one task that decides which deployment of each app runs, and when.
//!
//! Per app there is at most one pipeline running and one deployment waiting. A newer request
//! supersedes the waiting one (status `superseded`) and cancels the running one if that one
//! is for another commit (status `cancelled`; its containers and work dir are removed by its
//! pipeline before the next one starts). Builds across apps share a global limit (the
//! semaphore in [`Shared`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::Shared;
use super::pipeline;
use crate::db::deployments::{Deployment, Status};

pub(crate) enum Command {
    Deploy(Box<Deployment>),
    Cancel {
        id: i64,
        reply: oneshot::Sender<()>,
    },
    /// The app is being deleted: cancel and forget everything of it.
    Forget {
        app_id: i64,
        reply: oneshot::Sender<()>,
    },
    Finished {
        app_id: i64,
        id: i64,
    },
    CountQueued(oneshot::Sender<usize>),
}

struct Running {
    id: i64,
    /// The commit the pipeline checked out, once it knows.
    commit: Arc<Mutex<Option<String>>>,
    cancel: CancellationToken,
}

#[derive(Default)]
struct Slot {
    running: Option<Running>,
    waiting: Option<Deployment>,
}

pub(crate) async fn run(shared: Arc<Shared>, mut rx: mpsc::UnboundedReceiver<Command>) {
    let mut slots: HashMap<i64, Slot> = HashMap::new();
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<(i64, i64)>();
    loop {
        let command = tokio::select! {
            _ = shared.shutdown.cancelled() => return,
            c = rx.recv() => match c { Some(c) => c, None => return },
            Some((app_id, id)) = done_rx.recv() => Command::Finished { app_id, id },
        };
        match command {
            Command::Deploy(d) => {
                let d = *d;
                let slot = slots.entry(d.app_id).or_default();
                if let Some(older) = slot.waiting.take() {
                    end(
                        &shared,
                        older.id,
                        Status::Superseded,
                        &format!("superseded by deployment {}", d.id),
                    )
                    .await;
                }
                if let Some(running) = &slot.running
                    && should_cancel(running, &d)
                {
                    tracing::info!(app = %d.app, deployment = running.id, newer = d.id, "cancelling the running deployment for a newer one");
                    running.cancel.cancel();
                }
                slot.waiting = Some(d);
            }
            Command::Cancel { id, reply } => {
                for slot in slots.values_mut() {
                    if slot.waiting.as_ref().is_some_and(|w| w.id == id) {
                        slot.waiting = None;
                        end(&shared, id, Status::Cancelled, "cancelled").await;
                    }
                    if let Some(r) = slot.running.as_ref().filter(|r| r.id == id) {
                        r.cancel.cancel();
                    }
                }
                let _ = reply.send(());
            }
            Command::Forget { app_id, reply } => {
                if let Some(mut slot) = slots.remove(&app_id) {
                    if let Some(w) = slot.waiting.take() {
                        end(&shared, w.id, Status::Cancelled, "the app was deleted").await;
                    }
                    if let Some(r) = slot.running.take() {
                        r.cancel.cancel();
                    }
                }
                let _ = reply.send(());
            }
            Command::Finished { app_id, id } => {
                if let Some(slot) = slots.get_mut(&app_id)
                    && slot.running.as_ref().is_some_and(|r| r.id == id)
                {
                    slot.running = None;
                }
            }
            Command::CountQueued(reply) => {
                let _ = reply.send(slots.values().filter(|s| s.waiting.is_some()).count());
            }
        }
        start_ready(&shared, &mut slots, &done_tx);
    }
}

/// Starts the waiting deployment of every app that has nothing running.
fn start_ready(
    shared: &Arc<Shared>,
    slots: &mut HashMap<i64, Slot>,
    done: &mpsc::UnboundedSender<(i64, i64)>,
) {
    for (&app_id, slot) in slots.iter_mut() {
        if slot.running.is_some() {
            continue;
        }
        let Some(d) = slot.waiting.take() else {
            continue;
        };
        let cancel = shared.shutdown.child_token();
        let commit = Arc::new(Mutex::new(None));
        slot.running = Some(Running {
            id: d.id,
            commit: Arc::clone(&commit),
            cancel: cancel.clone(),
        });
        let shared = Arc::clone(shared);
        let done = done.clone();
        // Detached on purpose: it reports its end through `done`.
        tokio::spawn(async move {
            let id = d.id;
            pipeline::run(&shared, d, cancel, commit).await;
            shared.announce_status(id).await;
            let _ = done.send((app_id, id));
        });
    }
}

/// A newer request cancels the running pipeline unless both are for the same commit.
fn should_cancel(running: &Running, newer: &Deployment) -> bool {
    let running_commit = running
        .commit
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    match (running_commit, &newer.git_ref) {
        (Some(commit), Some(wanted)) => !commit.eq_ignore_ascii_case(wanted),
        _ => true,
    }
}

async fn end(shared: &Shared, id: i64, status: Status, reason: &str) {
    let reason = reason.to_owned();
    if let Err(e) = shared
        .db
        .call(move |c| crate::db::deployments::finish_with_reason(c, id, status, &reason))
        .await
    {
        tracing::error!(deployment = id, error = %e, "cannot record the end of a deployment");
    }
    shared.announce_status(id).await;
}
