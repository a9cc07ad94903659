//! Per-route counters, kept in memory for `/metrics`: requests, 5xx answers, bytes each way.
//!
//! Counters are bumped on the request path; nothing is written to the database per request.
//! Each proxy worker thread bumps its own shard, on its own cache line (see [`super::shard`]).
//! Reading sums the shards.

use std::sync::atomic::{AtomicU64, Ordering};

use super::shard::{self, SHARDS};

#[derive(Debug, Default)]
#[repr(align(128))]
struct Shard {
    requests: AtomicU64,
    responses_5xx: AtomicU64,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
}

#[derive(Debug, Default)]
pub struct RouteMetrics {
    shards: [Shard; SHARDS],
}

/// A copy of the counters at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct MetricsSnapshot {
    pub requests: u64,
    pub responses_5xx: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
}

impl RouteMetrics {
    pub fn snapshot(&self) -> MetricsSnapshot {
        let sum = |field: fn(&Shard) -> &AtomicU64| {
            self.shards
                .iter()
                .map(|s| field(s).load(Ordering::Relaxed))
                .sum()
        };
        MetricsSnapshot {
            requests: sum(|s| &s.requests),
            responses_5xx: sum(|s| &s.responses_5xx),
            bytes_in: sum(|s| &s.bytes_in),
            bytes_out: sum(|s| &s.bytes_out),
        }
    }

    fn mine(&self) -> &Shard {
        &self.shards[shard::this_thread()]
    }

    pub(super) fn count_request(&self) {
        self.mine().requests.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn count_status(&self, status: u16) {
        if status >= 500 {
            self.mine().responses_5xx.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub(super) fn count_in(&self, bytes: usize) {
        self.mine()
            .bytes_in
            .fetch_add(bytes as u64, Ordering::Relaxed);
    }

    pub(super) fn count_out(&self, bytes: usize) {
        self.mine()
            .bytes_out
            .fetch_add(bytes as u64, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_from_every_thread_add_up() {
        let metrics = std::sync::Arc::new(RouteMetrics::default());
        let threads: Vec<_> = (0..12)
            .map(|worker| {
                let metrics = std::sync::Arc::clone(&metrics);
                std::thread::spawn(move || {
                    shard::set_for_this_thread(worker);
                    for _ in 0..1000 {
                        metrics.count_request();
                        metrics.count_out(3);
                    }
                    metrics.count_status(502);
                    metrics.count_status(200);
                    metrics.count_in(7);
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(
            metrics.snapshot(),
            MetricsSnapshot {
                requests: 12_000,
                responses_5xx: 12,
                bytes_in: 84,
                bytes_out: 36_000,
            }
        );
    }
}
