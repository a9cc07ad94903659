//! Managed databases (PostgreSQL, MariaDB, MySQL, Redis): containers Rivetr runs next to the
//! apps, on the same engines.
//!
//! - `kinds.rs`: what each database engine's official image reads and offers (variables,
//!   data path, port, readiness probe, connection URL). The test images follow the same
//!   contract (`scripts/test-env/db-images.sh`), so the official images work unchanged.
//! - `lifecycle.rs`: a database's network, volume and container on a [`ContainerRuntime`]:
//!   bring it up and wait until it accepts connections, stop, start, remove.
//! - `links.rs`: what an app linked to databases gets: its own network, where the databases
//!   sit at fixed addresses, hosts entries, and the connection variables.
//! - `public.rs`: a database's optional public port, forwarded by Rivetr to the database.
//! - `backups/`: dumps streamed into compressed, hashed files, on cron schedules with
//!   retention, and restores into the same or a new database.
//! - `service.rs`: [`Databases`], what the API calls: the `databases` rows and the engine
//!   objects kept in step, passwords generated and sealed, one operation per database at a
//!   time.
//!
//! This module talks to the runtime and owns the `databases` table's meaning; it never
//! parses HTTP.
//!
//! [`ContainerRuntime`]: crate::runtime::ContainerRuntime

pub mod backups;
pub mod kinds;
pub mod lifecycle;
pub mod links;
pub mod public;
pub mod service;

pub use kinds::{Credentials, DbKind};
pub use lifecycle::{DatabaseSpec, LifecycleError, Names};
pub use service::{
    DatabaseError, DatabaseUpdate, Databases, LinkView, ManagedDatabaseView, NewDatabaseRequest,
};

/// Label naming the managed database a container, volume or network belongs to. Startup
/// reconcile leaves these containers alone: they are not an app's leftovers.
pub const LABEL_DATABASE: &str = "io.rivetr.database";
