//! The command line: every subcommand and flag of the `rivetr` binary.
//!
//! Kept in the library (not in `main.rs`) so the man page and shell completions can be
//! generated from the same definition.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "rivetr",
    version,
    about = "Self-hosted PaaS: git push to a running container behind HTTPS"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon: API, reverse proxy and deployment engine.
    Serve(ServeArgs),
}

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Configuration file (see rivetr.toml for every key). Without it, built-in defaults.
    #[arg(long, short, value_name = "PATH", env = "RIVETR_CONFIG")]
    pub config: Option<PathBuf>,
}
