//! `rivetr preview ...`: an app's pull requests and their previews, through
//! `/api/apps/{app}/previews`. A preview is an app of its own (`<app>-pr-<number>`): its
//! deployments and logs are under `rivetr deployments` and `rivetr logs` with that name.
//! Its settings are the app's, changed with `rivetr app update APP --previews ...`.

use std::io::Write;

use super::commands::{app_path, raw};
use super::types::PullRequest;
use super::{Client, ClientError, format};
use crate::cli::PreviewCommand;

pub async fn run(
    client: &Client,
    command: PreviewCommand,
    json: bool,
    out: &mut dyn Write,
) -> Result<(), ClientError> {
    match command {
        PreviewCommand::List { app } => {
            let bytes = client.get(&format!("{}/previews", app_path(&app))).await?;
            if json {
                return raw(out, &bytes);
            }
            let list: Vec<PullRequest> = client.parse(&bytes)?;
            write!(out, "{}", format::pull_requests(&list))?;
            Ok(())
        }
        PreviewCommand::Remove { app, number } => {
            let bytes = client
                .delete(&format!("{}/previews/{number}", app_path(&app)))
                .await?;
            if json {
                // 204: nothing to print; a future body would be printed as it came.
                if !bytes.is_empty() {
                    raw(out, &bytes)?;
                }
                return Ok(());
            }
            writeln!(
                out,
                "removed the preview of PR #{number} of app {app}; only a reopen of the PR brings it back"
            )?;
            Ok(())
        }
    }
}
