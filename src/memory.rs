//! What Rivetr asks of the C library's allocator (glibc's malloc), in one place.
//!
//! glibc keeps freed memory in the process for reuse. That is right for a busy server and
//! wrong for one that mostly idles: Rivetr's idle footprint is a figure people compare it by.
//! So the few moments that free much at once (the end of the start, a large route table
//! swapped, a backup uploaded) give it back here. A leaf module: it knows no subsystem.

/// Blocks of 1 MiB and more (a backup's 8 MiB upload parts) are mapped and unmapped on
/// their own, so their memory goes back to the system when freed. glibc's default raises
/// that threshold to the largest block freed, after which such blocks come from the heap
/// and stay in the process (about 16 MiB after one S3 backup, measured with
/// bench/backup.sh; malloc_trim did not return it).
/// Called once, at the start.
pub fn return_large_blocks_at_once() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes the allocator's tuning.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
}

/// Gives the allocator's free memory back to the system, also the free pages in the middle
/// of its heaps (glibc's malloc_trim advises those away, not only the top).
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free memory of the allocator to the system.
    unsafe {
        libc::malloc_trim(0);
    }
}
