//! Which proxy worker the current thread is, for state kept in one copy per worker.
//!
//! Anything every worker writes on every request (a counter, the reference count of a shared
//! `Arc`) moves its cache line between cores each time; measured against nginx that cost the
//! proxy its margin. So counters and the route table come in [`SHARDS`] copies, and each
//! worker thread uses its own.

use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Copies of per-worker state; workers beyond this many share them.
pub const SHARDS: usize = 8;

/// Copies of the route table to build: one per worker and one for the other threads, at
/// most [`SHARDS`]. A copy costs an allocation per route at every change of the table, so
/// with 10,000 routes and one worker (2 CPUs) building the eight a full machine needs
/// tripled the rebuild time (`bench/scale.sh`).
static TABLE_COPIES: AtomicUsize = AtomicUsize::new(SHARDS);

/// Says how many proxy workers will run; before the first route table is built.
pub fn plan_workers(workers: usize) {
    TABLE_COPIES.store((workers + 1).clamp(1, SHARDS), Ordering::Relaxed);
}

/// Copies of the route table to build (see [`plan_workers`]).
pub fn table_copies() -> usize {
    TABLE_COPIES.load(Ordering::Relaxed)
}

thread_local! {
    /// 0 for threads outside the proxy workers.
    static SHARD: Cell<usize> = const { Cell::new(0) };
}

/// Makes the calling thread use copy `worker + 1` (modulo [`SHARDS`]).
pub fn set_for_this_thread(worker: usize) {
    SHARD.with(|s| s.set((worker + 1) % SHARDS));
}

/// The copy the calling thread uses.
pub fn this_thread() -> usize {
    SHARD.with(Cell::get)
}
