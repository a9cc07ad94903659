//! Getting the code: the `git` command line, into a work directory under the state dir.
//!
//! A branch is cloned at depth 1; an exact commit is fetched at depth 1 by its id, falling
//! back to a full clone for servers that refuse to serve an unadvertised commit. Arguments
//! are passed as a list (never through a shell), the URL after `--`, and no prompt can block
//! a deploy. Credentials in the URL (`https://user:token@host/...`) are registered with the
//! deployment log's redactor before git runs, so neither git's output nor an error message
//! can carry them.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;
use tokio_util::sync::CancellationToken;

use super::log::DeployLog;

/// A clone that takes longer than this fails.
const CLONE_TIMEOUT: Duration = Duration::from_secs(600);

#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("git {step} failed: {message}")]
    Failed { step: &'static str, message: String },
    #[error("cannot run git: {0}")]
    Spawn(std::io::Error),
    #[error("git took longer than {0:?}")]
    Timeout(Duration),
    #[error("cancelled")]
    Cancelled,
}

/// What to check out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GitRef {
    Branch(String),
    /// A full 40-hex commit id.
    Commit(String),
}

impl GitRef {
    /// A 40-hex string is a commit, anything else a branch name.
    pub fn parse(s: &str) -> GitRef {
        if s.len() == 40 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
            GitRef::Commit(s.to_ascii_lowercase())
        } else {
            GitRef::Branch(s.strip_prefix("refs/heads/").unwrap_or(s).to_owned())
        }
    }
}

/// The checked-out commit.
#[derive(Debug, Clone)]
pub struct Checkout {
    pub commit: String,
    pub subject: String,
}

/// Splits `https://user:token@host/path` into `https://host/path` and `user:token`. URLs
/// without credentials (and ssh URLs, whose `git@` is a user name, not a secret) come back
/// whole.
pub fn split_credential(url: &str) -> (String, Option<String>) {
    let Some((scheme, rest)) = url.split_once("://") else {
        return (url.to_owned(), None);
    };
    if !matches!(scheme, "http" | "https") {
        return (url.to_owned(), None);
    }
    let authority = rest.split('/').next().unwrap_or("");
    match authority.rsplit_once('@') {
        Some((userinfo, host)) if !userinfo.is_empty() => {
            let path = &rest[authority.len()..];
            (
                format!("{scheme}://{host}{path}"),
                Some(userinfo.to_owned()),
            )
        }
        _ => (url.to_owned(), None),
    }
}

/// Puts a credential back into an https URL, for git only.
pub fn with_credential(url: &str, credential: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => format!("{scheme}://{credential}@{rest}"),
        None => url.to_owned(),
    }
}

/// Registers the secret parts of `url` with the log: the password or token of an https URL.
pub fn hide_credentials(url: &str, log: &DeployLog) {
    if let Some((_, rest)) = url.split_once("://")
        && let Some((userinfo, _)) = rest.split('/').next().unwrap_or("").rsplit_once('@')
    {
        match userinfo.split_once(':') {
            Some((user, secret)) => {
                log.hide(secret);
                // A bare token is often given as the user name (`https://TOKEN@github.com`).
                if user.len() >= 16 {
                    log.hide(user);
                }
            }
            None => log.hide(userinfo),
        }
    }
}

/// Clones `url` at `reference` into `dest` (which must not exist).
pub async fn checkout(
    url: &str,
    reference: &GitRef,
    dest: &Path,
    log: &DeployLog,
    cancel: &CancellationToken,
) -> Result<Checkout, GitError> {
    hide_credentials(url, log);
    let dest_str = dest.to_string_lossy().into_owned();
    match reference {
        GitRef::Branch(branch) => {
            run(
                "clone",
                &[
                    "clone",
                    "--depth",
                    "1",
                    "--single-branch",
                    "--branch",
                    branch,
                    "--",
                    url,
                    &dest_str,
                ],
                None,
                log,
                cancel,
            )
            .await?;
        }
        GitRef::Commit(sha) => {
            run("init", &["init", "--quiet", &dest_str], None, log, cancel).await?;
            let shallow = run(
                "fetch",
                &["fetch", "--depth", "1", "--", url, sha],
                Some(dest),
                log,
                cancel,
            )
            .await;
            match shallow {
                Ok(()) => {}
                Err(GitError::Failed { .. }) => {
                    log.say(
                        "the server would not send that commit alone; fetching the whole history",
                    );
                    run(
                        "fetch",
                        &["fetch", "--", url, "+refs/heads/*:refs/remotes/origin/*"],
                        Some(dest),
                        log,
                        cancel,
                    )
                    .await?;
                    run("fetch", &["fetch", "--", url, sha], Some(dest), log, cancel).await?;
                }
                Err(e) => return Err(e),
            }
            run(
                "checkout",
                &["checkout", "--quiet", "--detach", "FETCH_HEAD"],
                Some(dest),
                log,
                cancel,
            )
            .await?;
        }
    }
    let commit = output(&["rev-parse", "HEAD"], dest).await?;
    let subject = output(&["log", "-1", "--format=%s"], dest).await?;
    Ok(Checkout { commit, subject })
}

fn git() -> Command {
    let mut cmd = Command::new("git");
    cmd.env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_ASKPASS", "/bin/true")
        .env("LC_ALL", "C")
        // Rivetr's own systemd variables are not git's business.
        .env_remove("NOTIFY_SOCKET")
        .env_remove("WATCHDOG_USEC")
        .env_remove("WATCHDOG_PID")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    cmd
}

/// Runs one git command, streaming its output into the log.
async fn run(
    step: &'static str,
    args: &[&str],
    dir: Option<&Path>,
    log: &DeployLog,
    cancel: &CancellationToken,
) -> Result<(), GitError> {
    let mut cmd = git();
    cmd.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
    if let Some(dir) = dir {
        cmd.current_dir(dir);
    }
    let mut child = cmd.spawn().map_err(GitError::Spawn)?;
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let mut last_lines: Vec<String> = Vec::new();
    let pump = async {
        let mut out = stdout.map(|s| BufReader::new(s).lines());
        let mut err = stderr.map(|s| BufReader::new(s).lines());
        loop {
            let line = tokio::select! {
                Some(l) = async { match out.as_mut() { Some(o) => o.next_line().await.ok().flatten(), None => None } } => l,
                Some(l) = async { match err.as_mut() { Some(e) => e.next_line().await.ok().flatten(), None => None } } => l,
                else => break,
            };
            log.line("git", &line);
            last_lines.push(log.redact(&line));
            if last_lines.len() > 5 {
                last_lines.remove(0);
            }
        }
        child.wait().await
    };
    let status = tokio::select! {
        _ = cancel.cancelled() => return Err(GitError::Cancelled),
        r = tokio::time::timeout(CLONE_TIMEOUT, pump) => match r {
            Err(_) => return Err(GitError::Timeout(CLONE_TIMEOUT)),
            Ok(status) => status.map_err(GitError::Spawn)?,
        },
    };
    if status.success() {
        Ok(())
    } else {
        Err(GitError::Failed {
            step,
            message: if last_lines.is_empty() {
                status.to_string()
            } else {
                last_lines.join(" / ")
            },
        })
    }
}

async fn output(args: &[&str], dir: &Path) -> Result<String, GitError> {
    let out = git()
        .args(args)
        .current_dir(dir)
        .output()
        .await
        .map_err(GitError::Spawn)?;
    if !out.status.success() {
        return Err(GitError::Failed {
            step: "rev-parse",
            message: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_come_apart_and_back() {
        let (url, cred) = split_credential("https://bot:s3cret@git.example.com/team/app.git");
        assert_eq!(url, "https://git.example.com/team/app.git");
        assert_eq!(cred.as_deref(), Some("bot:s3cret"));
        assert_eq!(
            with_credential(&url, "bot:s3cret"),
            "https://bot:s3cret@git.example.com/team/app.git"
        );
        assert_eq!(split_credential("https://github.com/a/b").1, None);
        assert_eq!(split_credential("ssh://git@host/a.git").1, None);
        assert_eq!(split_credential("/srv/git/app").1, None);
    }

    #[test]
    fn refs() {
        assert_eq!(GitRef::parse("main"), GitRef::Branch("main".into()));
        assert_eq!(
            GitRef::parse("refs/heads/dev"),
            GitRef::Branch("dev".into())
        );
        let sha = "0123456789abcdef0123456789ABCDEF01234567";
        assert_eq!(GitRef::parse(sha), GitRef::Commit(sha.to_ascii_lowercase()));
    }
}
