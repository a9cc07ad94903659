//! Notifications: telling people, through the channels they configured (a generic signed
//! webhook, Slack, Mattermost, Discord, email), when a deployment succeeds, fails or is rolled
//! back, a certificate fails to renew or is about to expire, a container crash-loops, a backup
//! fails, or Rivetr itself started after a crash.
//!
//! Whoever has news calls [`Notifier::emit`], which never waits: the message is written to
//! the `notification_deliveries` queue, one row per channel that takes the event, and the
//! delivery task ([`delivery`]) sends it, retrying with backoff (5 tries) and recording the
//! outcome the API shows. A deployment, a renewal or a backup is never held up by a slow or
//! broken receiver, and a message queued before a restart is sent after it.
//!
//! [`watch`] turns what happens elsewhere into messages: the engine's deployment events,
//! certificate states, containers' restart counts, and the clean-stop marker.

pub mod channel;
pub mod channels;
mod delivery;
pub mod message;
pub mod send;
pub mod watch;

use std::sync::Arc;

use arc_swap::ArcSwap;
use tokio::sync::Notify;

use crate::config::Config;
use crate::db::Db;
use crate::secrets::Secrets;
pub use message::{Event, Message};

/// What a message is stamped with, from the configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Names this server in every message.
    pub server_name: String,
    /// The dashboard's address; links in messages start with it.
    pub dashboard_url: String,
    /// The wait after a failed try, doubled after each further one.
    pub retry_first: std::time::Duration,
    /// How often certificates and containers are looked at.
    pub check_every: std::time::Duration,
}

impl Settings {
    pub fn from_config(config: &Config) -> Settings {
        let n = &config.notifications;
        let server_name = match n.server_name.trim() {
            "" => host_name(),
            name => name.to_owned(),
        };
        let dashboard_url = match n.dashboard_url.trim() {
            "" if !config.server.domain.is_empty() => format!("https://{}", config.server.domain),
            "" => format!("http://{}", config.server.api_listen),
            url => url.trim_end_matches('/').to_owned(),
        };
        Settings {
            server_name,
            dashboard_url,
            retry_first: std::time::Duration::from_secs(n.retry_first_seconds.get()),
            check_every: std::time::Duration::from_secs(n.check_seconds.get()),
        }
    }
}

/// This machine's host name, as the kernel has it.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "rivetr".to_owned())
}

/// The handle everything with news holds; cheap to clone.
#[derive(Clone)]
pub struct Notifier {
    inner: Arc<Inner>,
}

struct Inner {
    db: Db,
    secrets: Arc<Secrets>,
    settings: ArcSwap<Settings>,
    /// Something was queued: the delivery task looks again.
    queued: Notify,
}

impl Notifier {
    pub fn new(db: Db, secrets: Arc<Secrets>, config: &Config) -> Notifier {
        Notifier {
            inner: Arc::new(Inner {
                db,
                secrets,
                settings: ArcSwap::from_pointee(Settings::from_config(config)),
                queued: Notify::new(),
            }),
        }
    }

    /// Takes a reloaded configuration's settings.
    pub fn reload(&self, config: &Config) {
        self.inner
            .settings
            .store(Arc::new(Settings::from_config(config)));
    }

    pub fn settings(&self) -> Arc<Settings> {
        self.inner.settings.load_full()
    }

    /// The dashboard's page of deployment `id`.
    pub fn deployment_url(&self, id: i64) -> String {
        format!("{}/deployments/{id}", self.settings().dashboard_url)
    }

    /// Queues `message` for every channel that takes its event, in the background.
    pub fn emit(&self, message: Message) {
        let this = self.clone();
        // Detached on purpose: queuing is a quick insert, and news must not wait for it.
        tokio::spawn(async move {
            if let Err(e) = this.enqueue(message).await {
                tracing::error!(error = %e, "cannot queue a notification");
            }
        });
    }

    /// Queues `message` now; the number of channels it went to.
    pub async fn enqueue(&self, message: Message) -> Result<usize, crate::db::DbError> {
        let message = self.stamp(message);
        let event = message.event.as_str();
        let payload = serde_json::to_string(&message).expect("a message serializes");
        let ids = self
            .inner
            .db
            .call(move |c| crate::db::notifications::enqueue(c, event, &payload))
            .await?;
        if !ids.is_empty() {
            tracing::info!(event, channels = ids.len(), title = %message.title, "notification queued");
            self.inner.queued.notify_one();
        }
        Ok(ids.len())
    }

    /// Fills in the server and the time.
    fn stamp(&self, mut message: Message) -> Message {
        if message.server.is_empty() {
            message.server = self.settings().server_name.clone();
        }
        if message.at.is_empty() {
            message.at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        }
        message
    }

    pub(crate) fn db(&self) -> &Db {
        &self.inner.db
    }

    pub(crate) fn secrets(&self) -> &Arc<Secrets> {
        &self.inner.secrets
    }
}
