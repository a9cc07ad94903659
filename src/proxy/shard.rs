//! Which proxy worker the current thread is, for state kept in one copy per worker.
//!
//! Anything every worker writes on every request (a counter, the reference count of a shared
//! `Arc`) moves its cache line between cores each time; measured against nginx that cost the
//! proxy its margin. So counters and the route table come in [`SHARDS`] copies, and each
//! worker thread uses its own.

use std::cell::Cell;

/// Copies of per-worker state; workers beyond this many share them.
pub const SHARDS: usize = 8;

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
