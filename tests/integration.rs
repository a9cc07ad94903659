//! Every integration test, in one binary: one crate to compile and one binary to link instead
//! of one per file of `tests/`, each of which linked all of Rivetr. Measured on the 2-CPU test
//! machine (2026-12-06, `cargo test --all-targets --no-run --timings`, Rivetr changed, nothing
//! else running): the 29 crates took 89 s of the build's compile and link time and their
//! binaries 1.71 GB of disk; the one crate takes 19 s and 113 MB.
//!
//! Each file of `tests/` stays a module of its own, named after it. `scripts/test-lanes.py`
//! runs each module in a process of its own, side by side, as cargo ran the files' binaries,
//! so a module's tests still share a process (its statics, its environment) only with each
//! other; `cargo test --test integration <module>::` runs one module by hand.

mod common;

mod acme;
mod api_apps;
mod api_auth;
mod api_backups;
mod api_databases;
mod cli;
mod daemon;
mod dashboard;
mod dashboard_e2e;
mod database_links;
mod databases;
mod engine;
mod faults;
mod metrics;
mod notification_events;
mod notifications;
mod openapi;
mod previews;
mod private_repos;
mod proxy;
mod regression;
mod runtime;
mod secrets;
mod smuggling;
mod state_backup;
mod swarm;
mod tls;
mod webhook_deploys;
mod webhooks;
