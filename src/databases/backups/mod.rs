//! Backups of managed databases and their restore.
//!
//! - `dump.rs`: each engine's dump and restore tools, run inside the database's container.
//! - `archive.rs`: a backup file: the dump streamed through gzip and SHA-256 into a file
//!   that gets its name only once complete.
//! - `schedule.rs`: cron patterns and the loop that launches scheduled backups.
//! - `service.rs`: [`Backups`], what the API calls: backups as rows, retention, restore into
//!   the same or a new database, interrupted backups found at start.

pub mod archive;
pub mod dump;
pub mod schedule;
pub mod service;

pub use service::{
    BackupError, BackupView, Backups, NewScheduleRequest, RestoreView, ScheduleView,
};
