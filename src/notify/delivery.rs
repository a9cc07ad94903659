//! The delivery task: sends what is due in the queue, a batch at a time side by side, and
//! records each outcome. A failed try is retried after `[notifications] retry_first_seconds`, doubled each
//! time, up to [`MAX_TRIES`] tries; a receiver that refuses for good (a 4xx other than 408
//! and 429, an address the mail server rejects) is not tried again.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::Notifier;
use super::message::Message;
use crate::db::notifications::{self as rows, DeliveryRow};

/// Tries per message and channel.
pub const MAX_TRIES: i64 = 5;
/// Rows read from the queue at once.
const BATCH: usize = 16;
/// With nothing pending, the queue is looked at again after this long anyway.
const IDLE: Duration = Duration::from_secs(3600);

/// The wait after the `failures`-th failed try: `first`, doubled each time.
pub fn retry_delay(first: Duration, failures: i64) -> Duration {
    first.saturating_mul(1u32 << (failures.clamp(1, 16) - 1))
}

impl Notifier {
    /// Sends what is due until shutdown; wakes when something is queued.
    pub async fn run_deliveries(self, shutdown: CancellationToken) {
        loop {
            self.deliver_due(&shutdown).await;
            let wait = match self.db().call(|c| rows::seconds_to_next(c)).await {
                Ok(Some(s)) => Duration::from_secs_f64(s.max(0.0)),
                Ok(None) => IDLE,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the notification queue; retrying in a minute");
                    Duration::from_secs(60)
                }
            };
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = self.inner.queued.notified() => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    async fn deliver_due(&self, shutdown: &CancellationToken) {
        loop {
            let due = match self.db().call(|c| rows::due(c, BATCH)).await {
                Ok(due) => due,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the notification queue");
                    return;
                }
            };
            if due.is_empty() || shutdown.is_cancelled() {
                return;
            }
            // Side by side: a receiver that takes its time (up to the send timeout) holds up
            // no other channel.
            futures_util::future::join_all(due.into_iter().map(|row| self.deliver(row))).await;
        }
    }

    /// One try of one delivery, recorded.
    async fn deliver(&self, row: DeliveryRow) {
        let id = row.id;
        let tries = row.attempts + 1;
        let outcome = self.try_once(&row).await;
        let (error, retry_in) = match &outcome {
            Ok(()) => (None, None),
            Err((error, permanent)) => {
                let retry = (!permanent && tries < MAX_TRIES)
                    .then(|| retry_delay(self.settings().retry_first, tries));
                (Some(error.clone()), retry)
            }
        };
        let recorded = self
            .db()
            .call(move |c| match &error {
                None => rows::mark_sent(c, id),
                Some(e) => rows::mark_failed(c, id, e, retry_in.map(|d| d.as_millis() as u64)),
            })
            .await;
        if let Err(e) = recorded {
            tracing::error!(delivery = id, error = %e, "cannot record a notification's delivery");
        }
        match outcome {
            Ok(()) => {
                tracing::info!(delivery = id, channel = %row.channel, event = %row.event, tries, "notification sent")
            }
            Err((error, _)) => match retry_in {
                Some(wait) => tracing::warn!(
                    delivery = id, channel = %row.channel, event = %row.event, tries, error,
                    retry_in_s = wait.as_secs_f64(), "notification not delivered; trying again later"
                ),
                None => tracing::error!(
                    delivery = id, channel = %row.channel, event = %row.event, tries, error,
                    "notification not delivered; given up"
                ),
            },
        }
    }

    /// Sends `row`; the error and whether it is final.
    async fn try_once(&self, row: &DeliveryRow) -> Result<(), (String, bool)> {
        let channel_id = row.channel_id;
        let channel = self
            .db()
            .call(move |c| rows::channel_by_id(c, channel_id))
            .await
            .map_err(|e| (e.to_string(), false))?
            .ok_or_else(|| ("the channel was removed".to_owned(), true))?;
        let channel = self.open(&channel).map_err(|e| (e.to_string(), true))?;
        let message: Message = serde_json::from_str(&row.payload)
            .map_err(|e| (format!("the queued message is unreadable: {e}"), true))?;
        let hello = self.settings().server_name.clone();
        super::send::send(&channel, &message, row.id, &hello)
            .await
            .map_err(|e| (e.to_string(), e.is_permanent()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_double_from_the_first_wait() {
        let first = Duration::from_secs(30);
        let waits: Vec<u64> = (1..MAX_TRIES)
            .map(|n| retry_delay(first, n).as_secs())
            .collect();
        assert_eq!(waits, [30, 60, 120, 240]);
    }
}
