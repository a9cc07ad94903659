//! Deployment logs: every line a deployment produces (git, build output, health attempts,
//! the switch) goes to the `deployment_logs` table and to live followers.
//!
//! Lines are batched into the database by one writer task per deployment (a build can print
//! thousands of lines; one transaction per batch, not per line) and broadcast after they are
//! stored, with their row ids, so a follower can read the backlog from the database and then
//! continue from the broadcast without a gap or a duplicate. Every line passes through the
//! deployment's [`Redactor`] first: credentials and secret values never reach the table, the
//! followers or the journal.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{broadcast, mpsc, oneshot};

use crate::db::Db;

/// How long a line may wait before its batch is written.
const BATCH_DELAY: Duration = Duration::from_millis(100);
const BATCH_MAX: usize = 500;

pub use crate::db::deployment_logs::LogLine;

/// What a follower receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogEvent {
    Line(LogLine),
    /// The deployment reached a final status; no more lines follow.
    End {
        status: String,
    },
}

/// Replaces secrets with `***` in log lines.
#[derive(Debug, Default, Clone)]
pub struct Redactor {
    secrets: Vec<String>,
}

impl Redactor {
    /// Adds a value to hide. Very short values are ignored: hiding "1" would mangle every line.
    pub fn add(&mut self, secret: &str) {
        if secret.len() >= 4 && !self.secrets.iter().any(|s| s == secret) {
            self.secrets.push(secret.to_owned());
            // Longest first, so a secret containing another is hidden whole.
            self.secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        }
    }

    pub fn redact(&self, line: &str) -> String {
        let mut out = line.to_owned();
        for s in &self.secrets {
            if out.contains(s.as_str()) {
                out = out.replace(s.as_str(), "***");
            }
        }
        out
    }
}

/// Live followers of deployments, by deployment id.
#[derive(Default)]
pub struct LogHub {
    channels: Mutex<HashMap<i64, broadcast::Sender<LogEvent>>>,
    /// Notified whenever a deployment reaches its final status (the database's retention
    /// prunes then).
    finished: Arc<tokio::sync::Notify>,
}

impl LogHub {
    /// Notified each time a deployment finishes; a notification sent while nobody waits is
    /// kept for the next wait.
    pub fn finished(&self) -> Arc<tokio::sync::Notify> {
        Arc::clone(&self.finished)
    }

    /// Follows a deployment's lines from now on; `None` when it is not running (then the
    /// table holds everything there will be).
    pub fn subscribe(&self, deployment: i64) -> Option<broadcast::Receiver<LogEvent>> {
        let channels = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        channels.get(&deployment).map(|tx| tx.subscribe())
    }

    fn open(&self, deployment: i64) -> broadcast::Sender<LogEvent> {
        let mut channels = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        channels
            .entry(deployment)
            .or_insert_with(|| broadcast::channel(1024).0)
            .clone()
    }

    fn close(&self, deployment: i64) {
        let mut channels = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        channels.remove(&deployment);
    }
}

enum Msg {
    Line { stream: String, line: String },
    Flush(oneshot::Sender<()>),
}

/// The log of one deployment. Cheap to clone.
#[derive(Clone)]
pub struct DeployLog {
    deployment: i64,
    app: Arc<str>,
    tx: mpsc::UnboundedSender<Msg>,
    redactor: Arc<Mutex<Redactor>>,
}

impl DeployLog {
    /// Starts the writer for `deployment`.
    pub fn open(db: Db, hub: Arc<LogHub>, deployment: i64, app: &str) -> DeployLog {
        let (tx, rx) = mpsc::unbounded_channel();
        let live = hub.open(deployment);
        // Detached on purpose: it ends when every DeployLog handle is dropped.
        tokio::spawn(write_batches(db, rx, live, deployment));
        DeployLog {
            deployment,
            app: Arc::from(app),
            tx,
            redactor: Arc::new(Mutex::new(Redactor::default())),
        }
    }

    pub fn deployment(&self) -> i64 {
        self.deployment
    }

    /// Hides `secret` in every later line.
    pub fn hide(&self, secret: &str) {
        self.redactor
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .add(secret);
    }

    /// Applies the redactions to any text (an error message, say).
    pub fn redact(&self, text: &str) -> String {
        self.redactor
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .redact(text)
    }

    /// Records one line from `stream` (`rivetr`, `git`, `build`, `health`, `app`).
    pub fn line(&self, stream: &str, text: &str) {
        let line = self.redact(text.trim_end_matches(['\r', '\n']));
        tracing::debug!(app = %self.app, deployment = self.deployment, stream, %line, "deploy log");
        let _ = self.tx.send(Msg::Line {
            stream: stream.to_owned(),
            line,
        });
    }

    /// A line from Rivetr itself, also logged at info level with the app and deployment as
    /// journal fields.
    pub fn say(&self, text: &str) {
        let text = self.redact(text);
        tracing::info!(app = %self.app, deployment = self.deployment, "{text}");
        let _ = self.tx.send(Msg::Line {
            stream: "rivetr".to_owned(),
            line: text,
        });
    }

    /// Waits until every line so far is stored and broadcast.
    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Msg::Flush(done)).is_ok() {
            let _ = wait.await;
        }
    }

    /// Stores what is pending, tells followers the final status and closes the channel.
    pub async fn finish(self, hub: &LogHub, status: &str) {
        self.flush().await;
        if let Some(tx) = hub
            .channels
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&self.deployment)
        {
            let _ = tx.send(LogEvent::End {
                status: status.to_owned(),
            });
        }
        hub.close(self.deployment);
        hub.finished.notify_one();
    }
}

async fn write_batches(
    db: Db,
    mut rx: mpsc::UnboundedReceiver<Msg>,
    live: broadcast::Sender<LogEvent>,
    deployment: i64,
) {
    let mut batch: Vec<(String, String)> = Vec::new();
    let mut waiting: Vec<oneshot::Sender<()>> = Vec::new();
    loop {
        let msg = if batch.is_empty() && waiting.is_empty() {
            rx.recv().await
        } else {
            match tokio::time::timeout(BATCH_DELAY, rx.recv()).await {
                Ok(m) => m,
                Err(_) => {
                    store(&db, &live, deployment, &mut batch, &mut waiting).await;
                    continue;
                }
            }
        };
        match msg {
            Some(Msg::Line { stream, line }) => {
                batch.push((stream, line));
                if batch.len() >= BATCH_MAX {
                    store(&db, &live, deployment, &mut batch, &mut waiting).await;
                }
            }
            Some(Msg::Flush(done)) => {
                waiting.push(done);
                store(&db, &live, deployment, &mut batch, &mut waiting).await;
            }
            None => {
                store(&db, &live, deployment, &mut batch, &mut waiting).await;
                return;
            }
        }
    }
}

async fn store(
    db: &Db,
    live: &broadcast::Sender<LogEvent>,
    deployment: i64,
    batch: &mut Vec<(String, String)>,
    waiting: &mut Vec<oneshot::Sender<()>>,
) {
    if !batch.is_empty() {
        let lines = std::mem::take(batch);
        let stored = db
            .call(move |c| crate::db::deployment_logs::insert(c, deployment, &lines))
            .await;
        match stored {
            Ok(rows) => {
                for row in rows {
                    let _ = live.send(LogEvent::Line(row));
                }
            }
            Err(e) => tracing::error!(deployment, error = %e, "cannot store deployment log lines"),
        }
    }
    for done in waiting.drain(..) {
        let _ = done.send(());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_longest_first_and_ignores_tiny_values() {
        let mut r = Redactor::default();
        r.add("s3cr3t-token");
        r.add("s3cr3t");
        r.add("ab");
        assert_eq!(
            r.redact("url https://x:s3cr3t-token@h and s3cr3t ab"),
            "url https://x:***@h and *** ab"
        );
    }
}
