//! Rivetr: a self-hosted PaaS in one binary. A signed webhook becomes a running container
//! behind an HTTPS reverse proxy.
//!
//! The crate is one library with a thin binary (`src/main.rs`) over it. Each subsystem lives
//! in its own module and owns its types and errors; data flows one way:
//! webhook -> [`api`] -> engine -> runtime -> [`proxy`], with [`db`] as the record.
//! [`ui`] serves the dashboard beside the API. [`server`] wires them together and runs them
//! until shutdown. [`client`] is the other side: the command-line client that drives a
//! running Rivetr through its API. [`state_backup`] copies and restores Rivetr's own
//! database for the administrator on the host. [`databases`] runs managed databases on the
//! same engine as the apps: the API calls it, and the engine asks it what a linked app's
//! containers get. [`notify`] sends messages to the channels people configured; the engine's
//! events, the certificate store, backups and container restart counts feed it, and it reads
//! nothing back. [`previews`] decides what a pull request event does to its preview (an app of
//! its own that the engine deploys): the webhook handler calls it, and it calls the engine.
//! [`outbound`] holds what the HTTP clients (the CLI's, S3's, notifications')
//! share.

pub mod api;
pub mod auth;
pub mod cli;
pub mod client;
pub mod config;
pub mod databases;
pub mod db;
pub mod engine;
#[doc(hidden)]
pub mod fuzzing;
pub mod generate;
pub mod host;
pub mod limits;
pub mod logging;
pub mod memory;
pub mod metrics;
pub mod notify;
pub mod outbound;
pub mod previews;
pub mod proxy;
pub mod runtime;
pub mod secrets;
pub mod server;
pub mod state_backup;
pub mod systemd;
pub mod ui;

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
    /// Encrypts and decrypts secrets at rest with the loaded key.
    pub secrets: Arc<secrets::Secrets>,
    /// Failed authentications per client address (API tokens and webhook signatures).
    pub auth_failures: Arc<auth::FailureLimiter>,
    /// The hashes of the live API tokens, for the failure limit and the log streams.
    pub live_tokens: Arc<auth::LiveTokens>,
    /// Checks the client address Rivetr's own proxy hands the API (`[server] domain`).
    pub client_handover: Arc<proxy::handover::ClientHandover>,
    /// The open log streams of each token.
    pub streams: Arc<api::streams::Streams>,
    /// The container engine, or what was tried; it can appear after startup.
    pub runtime: runtime::SharedDetection,
    pub engine: engine::Engine,
    /// Where the API queues deployments: the engine (a trait, so handlers stay testable).
    pub deployer: Arc<dyn engine::Deployer>,
    /// The proxy's certificates, read for their states (valid until, errors, next attempt).
    pub certificates: Arc<proxy::tls::CertStore>,
    /// Managed databases (their containers live on the same engine as the apps').
    pub databases: databases::Databases,
    /// Backups and restores of the managed databases, and their schedules.
    pub backups: databases::backups::Backups,
    /// Messages to the notification channels.
    pub notifier: notify::Notifier,
    /// What `/metrics` counts besides the proxy's own counters.
    pub metrics: metrics::Metrics,
    /// The previews of pull requests.
    pub previews: previews::Previews,
}

impl AppState {
    /// State around `engine`, with a fresh failure limit.
    pub fn new(
        db: db::Db,
        config: config::Config,
        secrets: Arc<secrets::Secrets>,
        runtime: runtime::SharedDetection,
        engine: engine::Engine,
        notifier: notify::Notifier,
    ) -> AppState {
        let config = Arc::new(ArcSwap::from_pointee(config));
        let databases = databases::Databases::new(
            db.clone(),
            Arc::clone(&secrets),
            Arc::clone(&runtime),
            Arc::clone(&config),
        );
        let backups = databases::backups::Backups::new(
            databases.clone(),
            db.clone(),
            Arc::clone(&secrets),
            Arc::clone(&config),
            notifier.clone(),
        );
        let previews = previews::Previews::new(
            db.clone(),
            engine.clone(),
            Arc::clone(&secrets),
            Arc::clone(&config),
        );
        AppState {
            previews,
            db,
            config,
            started: Instant::now(),
            secrets,
            auth_failures: Arc::new(auth::FailureLimiter::default()),
            live_tokens: Arc::new(auth::LiveTokens::default()),
            // Replaced by the proxy's when there is one; a fresh secret matches no request.
            client_handover: Arc::new(proxy::handover::ClientHandover::new()),
            streams: Arc::new(api::streams::Streams::default()),
            runtime,
            deployer: Arc::new(engine.clone()),
            engine,
            certificates: proxy::tls::CertStore::new(),
            databases,
            backups,
            notifier,
            metrics: metrics::Metrics::new(),
        }
    }
}
