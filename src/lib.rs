//! Rivetr: a self-hosted PaaS in one binary. A signed webhook becomes a running container
//! behind an HTTPS reverse proxy.
//!
//! The crate is one library with a thin binary (`src/main.rs`) over it. Each subsystem lives
//! in its own module and owns its types and errors; data flows one way:
//! webhook -> [`api`] -> engine -> runtime -> [`proxy`], with [`db`] as the record.
//! [`server`] wires them together and runs them until shutdown.

pub mod api;
pub mod cli;
pub mod config;
pub mod db;
pub mod generate;
pub mod logging;
pub mod proxy;
pub mod server;
pub mod systemd;

/// Rivetr's version, as reported by `/api/health` and `--version`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwap;

/// What request handlers and background tasks share. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub db: db::Db,
    /// The running configuration; replaced whole on reload.
    pub config: Arc<ArcSwap<config::Config>>,
    pub started: Instant,
}
