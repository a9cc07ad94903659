//! The watchdog heartbeat: `WATCHDOG=1` every half period, but only after a liveness check
//! passes.
//!
//! The heartbeat runs as a task on the same tokio runtime as everything else, and before each
//! beat it asks the server to prove it is alive (the accept loops answer a probe, the database
//! answers a query), each with a timeout. If the runtime stalls, the task never runs; if a loop
//! or the database hangs, the check fails. Either way the beats stop and systemd restarts
//! Rivetr. A timer on a thread of its own would keep beating for a dead server.

use std::future::Future;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// `WATCHDOG_USEC` and `WATCHDOG_PID`, read (and removed from the environment, so child
/// processes do not inherit them) before the runtime starts.
///
/// # Safety
/// Must be called while the process has a single thread.
pub unsafe fn take_from_env() -> Option<Duration> {
    // SAFETY: forwarded to our caller.
    unsafe { sd_notify::watchdog_enabled_and_unset_env() }.filter(|d| !d.is_zero())
}

/// Sends `WATCHDOG=1` every `period / 2` while `check` succeeds, until `shutdown`.
pub async fn run<C, F>(period: Duration, check: C, shutdown: CancellationToken)
where
    C: Fn(Duration) -> F,
    F: Future<Output = Result<(), String>>,
{
    beat_while_alive(period, check, super::notify::watchdog, shutdown).await
}

/// The loop behind [`run`], with the beat itself passed in so it can be observed.
pub async fn beat_while_alive<C, F>(
    period: Duration,
    check: C,
    beat: impl Fn(),
    shutdown: CancellationToken,
) where
    C: Fn(Duration) -> F,
    F: Future<Output = Result<(), String>>,
{
    let interval = period / 2;
    // Each check must finish well within one interval, or the beat would come late anyway.
    let check_timeout = interval / 2;
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = ticker.tick() => {}
        }
        match check(check_timeout).await {
            Ok(()) => {
                if failing {
                    tracing::info!("watchdog: liveness check passes again; heartbeat resumed");
                    failing = false;
                }
                beat();
            }
            Err(why) => {
                tracing::error!(reason = %why, "watchdog: liveness check failed; withholding heartbeat");
                failing = true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    async fn beats_in(period: Duration, run_for: Duration, healthy: Arc<AtomicBool>) -> usize {
        let beats = Arc::new(AtomicUsize::new(0));
        let shutdown = CancellationToken::new();
        let counter = Arc::clone(&beats);
        let task = tokio::spawn(beat_while_alive(
            period,
            move |_timeout| {
                let healthy = Arc::clone(&healthy);
                async move {
                    if healthy.load(Ordering::SeqCst) {
                        Ok(())
                    } else {
                        Err("probe unanswered".to_owned())
                    }
                }
            },
            move || {
                counter.fetch_add(1, Ordering::SeqCst);
            },
            shutdown.clone(),
        ));
        tokio::time::sleep(run_for).await;
        shutdown.cancel();
        task.await.unwrap();
        beats.load(Ordering::SeqCst)
    }

    #[tokio::test(start_paused = true)]
    async fn beats_every_half_period_while_healthy() {
        let n = beats_in(
            Duration::from_secs(2),
            Duration::from_millis(10_500),
            Arc::new(AtomicBool::new(true)),
        )
        .await;
        // Ticks at 0, 1, 2, ... 10 s.
        assert_eq!(n, 11);
    }

    #[tokio::test(start_paused = true)]
    async fn no_beat_while_the_check_fails() {
        let n = beats_in(
            Duration::from_secs(2),
            Duration::from_secs(10),
            Arc::new(AtomicBool::new(false)),
        )
        .await;
        assert_eq!(n, 0);
    }
}
