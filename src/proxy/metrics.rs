//! Per-route counters, kept in memory for `/metrics`: requests by method and status class,
//! their durations, upstream errors by kind, bytes each way; and the proxy's open connections.
//!
//! Counters are bumped on the request path; nothing is written to the database per request.
//! Each proxy worker thread bumps its own shard, on its own cache lines (see [`super::shard`]).
//! Reading sums the shards.
//!
//! Status codes are counted by class (`2xx` ... `5xx`), not exactly: the class is what alerts
//! and dashboards ask for, and five values per app and method keep the series few whatever
//! codes an app invents. Durations run from the request's arrival to the app's response
//! headers (a streamed body, a WebSocket or server-sent events would make the whole exchange
//! meaningless as a latency).

use std::sync::OnceLock;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use super::shard::{self, SHARDS};

/// The methods counted by name; any other is `other`.
pub const METHODS: [&str; 8] = [
    "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "other",
];
/// Status classes.
pub const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];
/// Upper bounds (seconds) of the duration histogram's buckets; one more counts the rest.
pub const BUCKETS: [f64; 12] = [
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Why a request got no answer from the app.
pub const UPSTREAM_ERRORS: [&str; 3] = ["connect", "timeout", "reset"];

/// Kinds of upstream error, indexes into [`UPSTREAM_ERRORS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamError {
    /// No connection could be made.
    Connect = 0,
    /// No response headers within `[proxy] response_timeout_seconds`.
    Timeout = 1,
    /// The connection failed during the exchange.
    Reset = 2,
}

#[derive(Debug, Default)]
#[repr(align(128))]
struct Shard {
    requests: AtomicU64,
    responses_5xx: AtomicU64,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    /// Answers by method and class.
    answered: [[AtomicU64; CLASSES.len()]; METHODS.len()],
    /// Durations per bucket (not cumulative), the last one for longer than every bound.
    duration_buckets: [AtomicU64; BUCKETS.len() + 1],
    duration_sum_us: AtomicU64,
    upstream_errors: [AtomicU64; UPSTREAM_ERRORS.len()],
}

/// A route's counters. The shards (4 KiB: [`SHARDS`] cache-line-aligned copies) are allocated
/// at the route's first request: a route no request has reached costs a pointer, so a table of
/// 10,000 routes, most of them idle at any moment, does not hold 40 MB of zeros (measured by
/// `bench/scale.sh`). Reading an unallocated route gives zeros and allocates nothing.
#[derive(Debug, Default)]
pub struct RouteMetrics {
    shards: OnceLock<Box<[Shard; SHARDS]>>,
}

/// A copy of the counters at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct MetricsSnapshot {
    pub requests: u64,
    pub responses_5xx: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
}

/// Everything `/metrics` shows of a route, summed over the shards.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Detail {
    pub totals: MetricsSnapshot,
    pub answered: [[u64; CLASSES.len()]; METHODS.len()],
    pub duration_buckets: [u64; BUCKETS.len() + 1],
    pub duration_sum: f64,
    pub upstream_errors: [u64; UPSTREAM_ERRORS.len()],
}

impl Detail {
    /// Adds another route's counters (an app's domains are reported together).
    pub fn add(&mut self, other: &Detail) {
        self.totals.requests += other.totals.requests;
        self.totals.responses_5xx += other.totals.responses_5xx;
        self.totals.bytes_in += other.totals.bytes_in;
        self.totals.bytes_out += other.totals.bytes_out;
        for (m, row) in self.answered.iter_mut().enumerate() {
            for (c, n) in row.iter_mut().enumerate() {
                *n += other.answered[m][c];
            }
        }
        for (b, n) in self.duration_buckets.iter_mut().enumerate() {
            *n += other.duration_buckets[b];
        }
        self.duration_sum += other.duration_sum;
        for (k, n) in self.upstream_errors.iter_mut().enumerate() {
            *n += other.upstream_errors[k];
        }
    }
}

fn method_index(method: &hyper::Method) -> usize {
    match *method {
        hyper::Method::GET => 0,
        hyper::Method::HEAD => 1,
        hyper::Method::POST => 2,
        hyper::Method::PUT => 3,
        hyper::Method::PATCH => 4,
        hyper::Method::DELETE => 5,
        hyper::Method::OPTIONS => 6,
        _ => 7,
    }
}

fn bucket_index(elapsed: Duration) -> usize {
    let secs = elapsed.as_secs_f64();
    BUCKETS
        .iter()
        .position(|&bound| secs <= bound)
        .unwrap_or(BUCKETS.len())
}

impl RouteMetrics {
    /// The shards, if a request has reached the route.
    fn shards(&self) -> &[Shard] {
        self.shards.get().map_or(&[][..], |s| &s[..])
    }

    pub fn snapshot(&self) -> MetricsSnapshot {
        let sum = |field: fn(&Shard) -> &AtomicU64| {
            self.shards()
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

    pub fn detail(&self) -> Detail {
        let mut d = Detail {
            totals: self.snapshot(),
            ..Detail::default()
        };
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let mut sum_us = 0u64;
        for s in self.shards() {
            for (m, row) in s.answered.iter().enumerate() {
                for (c, n) in row.iter().enumerate() {
                    d.answered[m][c] += load(n);
                }
            }
            for (b, n) in s.duration_buckets.iter().enumerate() {
                d.duration_buckets[b] += load(n);
            }
            sum_us += load(&s.duration_sum_us);
            for (k, n) in s.upstream_errors.iter().enumerate() {
                d.upstream_errors[k] += load(n);
            }
        }
        d.duration_sum = sum_us as f64 / 1e6;
        d
    }

    fn mine(&self) -> &Shard {
        &self.shards.get_or_init(Box::default)[shard::this_thread()]
    }

    pub(super) fn count_request(&self) {
        self.mine().requests.fetch_add(1, Ordering::Relaxed);
    }

    /// An answer (the app's or the proxy's own) to a `method` request after `elapsed`.
    pub(super) fn count_answer(&self, method: &hyper::Method, status: u16, elapsed: Duration) {
        let shard = self.mine();
        if status >= 500 {
            shard.responses_5xx.fetch_add(1, Ordering::Relaxed);
        }
        let class = usize::from(status / 100).clamp(1, 5) - 1;
        shard.answered[method_index(method)][class].fetch_add(1, Ordering::Relaxed);
        shard.duration_buckets[bucket_index(elapsed)].fetch_add(1, Ordering::Relaxed);
        shard
            .duration_sum_us
            .fetch_add(elapsed.as_micros() as u64, Ordering::Relaxed);
    }

    pub(super) fn count_upstream_error(&self, kind: UpstreamError) {
        self.mine().upstream_errors[kind as usize].fetch_add(1, Ordering::Relaxed);
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

/// Open client connections of the proxy's listeners (`http`, `https`), per shard.
#[repr(align(128))]
struct OpenShard([AtomicI64; 2]);

static OPEN: [OpenShard; SHARDS] =
    [const { OpenShard([AtomicI64::new(0), AtomicI64::new(0)]) }; SHARDS];

/// Counts one open connection of listener `name` (`http` or `https`; others are not counted)
/// until dropped.
pub struct OpenConnection {
    // Small: an idle connection parked by the proxy (server::park) is little more than this
    // and its socket.
    shard: u16,
    listener: u8,
}

impl OpenConnection {
    pub fn of(name: &str) -> Option<OpenConnection> {
        let listener = match name {
            "http" => 0,
            "https" => 1,
            _ => return None,
        };
        let shard = shard::this_thread();
        OPEN[shard].0[usize::from(listener)].fetch_add(1, Ordering::Relaxed);
        Some(OpenConnection {
            shard: u16::try_from(shard).expect("SHARDS fits in u16"),
            listener,
        })
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        OPEN[usize::from(self.shard)].0[usize::from(self.listener)].fetch_sub(1, Ordering::Relaxed);
    }
}

/// Open connections now: (http, https).
pub fn open_connections() -> (i64, i64) {
    let sum = |i: usize| OPEN.iter().map(|s| s.0[i].load(Ordering::Relaxed)).sum();
    (sum(0), sum(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_untouched_route_reads_zeros_and_allocates_no_shards() {
        let metrics = RouteMetrics::default();
        assert_eq!(metrics.snapshot(), MetricsSnapshot::default());
        assert_eq!(metrics.detail(), Detail::default());
        assert!(metrics.shards.get().is_none());
        metrics.count_in(5);
        assert_eq!(metrics.snapshot().bytes_in, 5);
    }

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
                    metrics.count_answer(&hyper::Method::GET, 502, Duration::from_millis(3));
                    metrics.count_answer(&hyper::Method::POST, 200, Duration::from_secs(20));
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
        let d = metrics.detail();
        assert_eq!(d.answered[0][4], 12, "GET 5xx");
        assert_eq!(d.answered[2][1], 12, "POST 2xx");
        assert_eq!(d.duration_buckets[1], 12, "3 ms: the 5 ms bucket");
        assert_eq!(
            d.duration_buckets[BUCKETS.len()],
            12,
            "20 s: beyond every bound"
        );
        assert!(
            (d.duration_sum - 12.0 * 20.003).abs() < 1e-6,
            "{}",
            d.duration_sum
        );
    }
}
