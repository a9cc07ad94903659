//! Backups of managed databases and their restore.
//!
//! - `dump.rs`: each engine's dump and restore tools, run inside the database's container.
//! - `archive.rs`: a backup file: the dump streamed through gzip, encryption when a key is
//!   set, and SHA-256 into a file that gets its name only once complete.
//! - `crypt.rs`: the backup key and the chunked authenticated encryption of a backup.
//! - `s3.rs`: a small signed S3 client (PUT, multipart upload, GET, DELETE).
//! - `store.rs`: where files live, a directory or a bucket, behind one interface.
//! - `schedule.rs`: cron patterns and the loop that launches scheduled backups.
//! - `service.rs`: [`Backups`], what the API calls: backups as rows, retention, restore into
//!   the same or a new database, interrupted backups found at start.

pub mod archive;
pub mod crypt;
pub mod dump;
pub mod s3;
pub mod schedule;
pub mod service;
pub mod store;

pub use service::{
    BackupError, BackupView, Backups, DestinationView, NewDestinationRequest, NewScheduleRequest,
    RestoreView, ScheduleView,
};
