//! The deployment engine: turns a request to deploy into a running version of an app, with
//! no failed request on the way and nothing a crash or a bad commit can take down.

pub mod deploy_toml;
pub mod git;
pub mod log;
