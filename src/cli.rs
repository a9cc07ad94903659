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
    /// Manage API tokens directly in the database, as the administrator on the host.
    Token(TokenArgs),
}

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Configuration file (see rivetr.toml for every key). Without it, built-in defaults.
    #[arg(long, short, value_name = "PATH", env = "RIVETR_CONFIG")]
    pub config: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct TokenArgs {
    /// Configuration file, read for the state directory (where rivetr.db is).
    #[arg(long, short, value_name = "PATH", env = "RIVETR_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    /// Print JSON instead of text, for scripts.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: TokenCommand,
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token and print it on stdout; it is shown only this once.
    Create {
        /// A name that no other valid token has, such as `ci` or `laptop`.
        #[arg(long)]
        name: String,
    },
    /// List every token: id, name, created, last used, revoked.
    List,
    /// Revoke a token; requests made with it fail from the next one on.
    Revoke {
        /// The token's id, from `rivetr token list`.
        id: i64,
    },
}
