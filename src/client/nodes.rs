//! `rivetr node ...`: the nodes of the swarm Rivetr deploys to, through `/api/nodes`. Without
//! a swarm the API answers 409 and these commands fail (exit 1) with its message; an unknown
//! node is a 404 (exit 3), as an unknown app.

use std::io::Write;

use super::commands::raw;
use super::http::segment;
use super::types::{Node, NodeList};
use super::{Client, ClientError, format};
use crate::cli::NodeCommand;

pub async fn run(
    client: &Client,
    command: NodeCommand,
    json: bool,
    out: &mut dyn Write,
) -> Result<(), ClientError> {
    let (id, op) = match command {
        NodeCommand::List => {
            let bytes = client.get("/api/nodes").await?;
            if json {
                return raw(out, &bytes);
            }
            let list: NodeList = client.parse(&bytes)?;
            write!(out, "{}", format::nodes(&list.nodes))?;
            return Ok(());
        }
        NodeCommand::Drain { id } => (id, "drain"),
        NodeCommand::Activate { id } => (id, "activate"),
    };
    let bytes = client
        .post(&format!("/api/nodes/{}/{op}", segment(&id)), None)
        .await?;
    if json {
        return raw(out, &bytes);
    }
    let node: Node = client.parse(&bytes)?;
    write!(out, "{}", format::node(&node))?;
    Ok(())
}
