//! Getting the code: the `git` command line, into a work directory under the state dir.
//!
//! A branch is cloned at depth 1; an exact commit (40 hex digits, or 64 for a SHA-256
//! repository) is fetched at depth 1 by its id, falling back to the whole history for servers
//! that refuse to serve an unadvertised commit. Arguments are passed as a list (never through
//! a shell), the URL after `--`, and no prompt can block a deploy.
//!
//! git runs in a sealed-off environment: only a short list of Rivetr's variables reaches it
//! (`PATH`, proxies, CA bundles), its `HOME` is a private empty directory, no system or global
//! config is read (`GIT_CONFIG_NOSYSTEM`, `GIT_CONFIG_GLOBAL=/dev/null`), hooks cannot run
//! (`core.hooksPath=/dev/null`), and only the transports Rivetr supports are allowed
//! (`GIT_ALLOW_PROTOCOL=https:ssh:git:file`, `GIT_PROTOCOL_FROM_USER=0`), so neither the host's
//! git configuration nor a repository can make a clone run a program. Which URLs are accepted
//! at all is decided in [`url`].
//!
//! Private repositories: an https credential reaches git through [`credential`] (a sealed
//! in-memory file and Rivetr's own binary as credential helper), an SSH deploy key through
//! [`ssh`] (a 0600 file and a private known_hosts for the checkout's length). Both live in
//! the checkout's private directory `<state>/work/<deployment>-access` (mode 0700), removed
//! when the checkout ends (and with the whole work directory at the next start, should Rivetr
//! die during a clone). The credential's parts are registered with the deployment log's
//! redactor before git runs, so neither git's output nor an error message can carry them.

pub mod credential;
pub mod ssh;
pub mod url;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;
use tokio_util::sync::CancellationToken;

use super::log::DeployLog;
use crate::db::Db;
use crate::db::apps::App;
use crate::secrets::{Purpose, SecretString, Secrets};
use credential::{CredentialError, Handoff};
use ssh::SshFiles;
pub use url::{Transport, UrlError};

/// A clone that takes longer than this fails.
const CLONE_TIMEOUT: Duration = Duration::from_secs(600);
/// Lines of git's output kept to explain a failure.
const TRANSCRIPT_LINES: usize = 200;
/// The variables of Rivetr's own environment git still gets: where programs are, how to reach
/// the network, which certificate authorities to trust.
const INHERITED_ENV: &[&str] = &[
    "PATH",
    "TZ",
    "TMPDIR",
    "http_proxy",
    "https_proxy",
    "HTTPS_PROXY",
    "no_proxy",
    "NO_PROXY",
    "all_proxy",
    "ALL_PROXY",
    "GIT_SSL_CAINFO",
    "GIT_SSL_CAPATH",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
];
const DEFAULT_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("git {step} failed: {message}")]
    Failed { step: &'static str, message: String },
    #[error("unsupported git URL: {0}")]
    Url(#[from] UrlError),
    #[error(
        "the git server refused the credential stored for app `{app}` ({detail}); store the \
         right one with `rivetr app credential {app} --username USER` (PUT \
         /api/apps/{app}/git-credential), or give the git_url again as \
         https://USER:TOKEN@host/... (PATCH /api/apps/{app})"
    )]
    CredentialRefused { app: String, detail: String },
    #[error(
        "the git server asks for a credential and app `{app}` has none ({detail}); store one \
         with `rivetr app credential {app} --username USER` (PUT \
         /api/apps/{app}/git-credential), or give the git_url as https://USER:TOKEN@host/... \
         (PATCH /api/apps/{app})"
    )]
    CredentialMissing { app: String, detail: String },
    #[error(
        "the SSH server refused the deploy key of app `{app}` ({fingerprint}); add its public \
         key (GET /api/apps/{app}/deploy-key, or `rivetr app deploy-key {app}`) to the \
         repository as a read-only deploy key"
    )]
    DeployKeyRefused { app: String, fingerprint: String },
    #[error(
        "the SSH server refused the clone and app `{app}` has no deploy key; create one with \
         POST /api/apps/{app}/deploy-key (or `rivetr app deploy-key {app}`) and add its public \
         key to the repository as a read-only deploy key"
    )]
    DeployKeyMissing { app: String },
    #[error(
        "the SSH host key of {host} has changed: the server now presents {fingerprint}, not the \
         key recorded when app `{app}` first cloned from it. This can be an attack; if the \
         server's key really changed, reset the app's recorded host keys with DELETE \
         /api/apps/{app}/known-hosts (or `rivetr app known-hosts {app} --reset`) and deploy \
         again"
    )]
    HostKeyChanged {
        app: String,
        host: String,
        fingerprint: String,
    },
    #[error("cannot prepare the clone's private directory {}: {source}", path.display())]
    Setup {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Credential(#[from] CredentialError),
    #[error("cannot read app `{app}`'s {what}: {message}")]
    Secret {
        app: String,
        what: &'static str,
        message: String,
    },
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
    /// A full commit id: 40 hex digits (SHA-1) or 64 (SHA-256), lower case.
    Commit(String),
}

impl GitRef {
    /// A 40- or 64-hex string is a commit, anything else a branch name.
    pub fn parse(s: &str) -> GitRef {
        if (s.len() == 40 || s.len() == 64) && s.bytes().all(|b| b.is_ascii_hexdigit()) {
            GitRef::Commit(s.to_ascii_lowercase())
        } else {
            GitRef::Branch(s.strip_prefix("refs/heads/").unwrap_or(s).to_owned())
        }
    }
}

/// The object format of a repository holding `commit`: git must create the local repository
/// with the remote's hash, or the fetch fails with "mismatched algorithms".
fn object_format(commit: &str) -> &'static str {
    if commit.len() == 64 { "sha256" } else { "sha1" }
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
    if !matches!(scheme.to_ascii_lowercase().as_str(), "http" | "https") {
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

/// Registers the secret parts of `url` with the log: the password or token of an https URL.
pub fn hide_credentials(url: &str, log: &DeployLog) {
    if let Some((_, rest)) = url.split_once("://")
        && let Some((userinfo, _)) = rest.split('/').next().unwrap_or("").rsplit_once('@')
    {
        hide_userinfo(userinfo, log);
    }
}

/// Hides the secret of a `user:token` (or bare token), as given and as git decodes it.
fn hide_userinfo(userinfo: &str, log: &DeployLog) {
    let (user, secret) = credential::split_userinfo(userinfo);
    match userinfo.split_once(':') {
        Some((raw_user, raw_secret)) => {
            log.hide(raw_secret);
            log.hide(secret.expose());
            // A bare token is often given as the user name (`https://TOKEN@github.com`).
            if raw_user.len() >= 16 {
                log.hide(raw_user);
                log.hide(user.expose());
            }
        }
        None => {
            log.hide(userinfo);
            log.hide(user.expose());
        }
    }
}

/// What an app's clones may use besides the URL: its credential, its deploy key and the SSH
/// host keys its earlier clones recorded.
pub struct Access {
    app_id: i64,
    app: String,
    credential: Option<SecretString>,
    deploy_key: Option<(SecretString, String)>,
    known_hosts: String,
    db: Db,
}

impl Access {
    /// Reads and decrypts what `app` has.
    pub async fn load(db: &Db, secrets: &Secrets, app: &App) -> Result<Access, GitError> {
        let app_id = app.id;
        let secret_error = |what: &'static str, message: String| GitError::Secret {
            app: app.name.clone(),
            what,
            message,
        };
        let credential = match &app.git_credential {
            Some(sealed) => Some(
                secrets
                    .decrypt_str(Purpose::GitCredential { app_id }, sealed)
                    .map_err(|e| secret_error("git credential", e.to_string()))?,
            ),
            None => None,
        };
        let (key, known_hosts) = db
            .call(move |c| {
                Ok((
                    crate::db::deploy_keys::get(c, app_id)?,
                    crate::db::known_hosts::get(c, app_id)?,
                ))
            })
            .await
            .map_err(|e| secret_error("deploy key", e.to_string()))?;
        let deploy_key = match key {
            Some(k) => Some((
                secrets
                    .decrypt_str(Purpose::DeployKey { app_id }, &k.private_key)
                    .map_err(|e| secret_error("deploy key", e.to_string()))?,
                k.fingerprint,
            )),
            None => None,
        };
        Ok(Access {
            app_id,
            app: app.name.clone(),
            credential,
            deploy_key,
            known_hosts,
            db: db.clone(),
        })
    }

    /// Stores the known_hosts file ssh extended, and says which hosts it met.
    async fn record_known_hosts(&self, file: String, log: &DeployLog) {
        let before: Vec<ssh::KnownHost> = ssh::known_hosts(&self.known_hosts);
        for host in ssh::known_hosts(&file) {
            if !before.contains(&host) {
                log.say(&format!(
                    "recorded the SSH host key of {}: {} {}; later clones insist on it",
                    host.host, host.key_type, host.fingerprint
                ));
            }
        }
        let app_id = self.app_id;
        if let Err(e) = self
            .db
            .call(move |c| crate::db::known_hosts::set(c, app_id, &file))
            .await
        {
            log.say(&format!("cannot record the SSH host key: {e}"));
        }
    }
}

/// Clones `url` at `reference` into `dest` (which must not exist), with what `access` allows.
pub async fn checkout(
    url: &str,
    reference: &GitRef,
    dest: &Path,
    access: &Access,
    log: &DeployLog,
    cancel: &CancellationToken,
) -> Result<Checkout, GitError> {
    let transport = url::transport(url)?;
    hide_credentials(url, log);
    if let Some(c) = &access.credential {
        hide_userinfo(c.expose(), log);
    }
    // Absolute: git runs in the work tree for some steps, and HOME, the key and known_hosts
    // must name the same files from there (the state directory may be given relatively).
    let private = std::path::absolute(private_dir(dest)).map_err(|source| GitError::Setup {
        path: private_dir(dest),
        source,
    })?;
    make_private_dir(&private).await?;
    let result = checkout_with(
        url, transport, reference, dest, &private, access, log, cancel,
    )
    .await;
    if let Err(e) = tokio::fs::remove_dir_all(&private).await {
        tracing::warn!(dir = %private.display(), error = %e, "cannot remove a clone's private directory");
    }
    result
}

/// `<work>/<deployment>-access`, beside the work tree: never inside it, so nothing of it can
/// reach the build context.
fn private_dir(dest: &Path) -> PathBuf {
    let mut name: OsString = dest.file_name().unwrap_or_default().to_owned();
    name.push("-access");
    dest.with_file_name(name)
}

async fn make_private_dir(dir: &Path) -> Result<(), GitError> {
    let setup = |source| GitError::Setup {
        path: dir.to_owned(),
        source,
    };
    match tokio::fs::remove_dir_all(dir).await {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(setup(e)),
        _ => {}
    }
    let mut builder = tokio::fs::DirBuilder::new();
    builder.recursive(true).mode(0o700);
    builder.create(dir).await.map_err(setup)?;
    builder.create(dir.join("home")).await.map_err(setup)
}

#[allow(clippy::too_many_arguments)]
async fn checkout_with(
    url: &str,
    transport: Transport,
    reference: &GitRef,
    dest: &Path,
    private: &Path,
    access: &Access,
    log: &DeployLog,
    cancel: &CancellationToken,
) -> Result<Checkout, GitError> {
    let mut env = GitEnv::new(private.join("home"));
    let ssh_files = match transport {
        Transport::Ssh => {
            let files = SshFiles::write(
                private,
                access.deploy_key.as_ref().map(|(k, _)| k),
                &access.known_hosts,
            )
            .await
            .map_err(|source| GitError::Setup {
                path: private.to_owned(),
                source,
            })?;
            env.ssh_command = Some(files.command());
            Some(files)
        }
        _ => None,
    };
    if transport == Transport::Https
        && let (Some(credential), Some(host)) = (&access.credential, url::https_host(url))
    {
        env.handoff = Some(Handoff::new(credential, &host)?);
    }
    let fetched = fetch(url, reference, dest, &env, log, cancel).await;
    if let Some(files) = &ssh_files {
        match files.newly_recorded().await {
            Ok(Some(file)) => access.record_known_hosts(file, log).await,
            Ok(None) => {}
            Err(e) => log.say(&format!("cannot read the clone's known_hosts: {e}")),
        }
    }
    if let Err(GitError::Failed { step, message }) = fetched {
        return Err(explain(step, message, transport, access));
    }
    fetched?;
    let commit = output(&env, &["rev-parse", "HEAD"], dest).await?;
    let subject = output(&env, &["log", "-1", "--format=%s"], dest).await?;
    Ok(Checkout { commit, subject })
}

/// Turns git's failure into what the user has to do, when git's output says.
fn explain(step: &'static str, message: String, transport: Transport, access: &Access) -> GitError {
    let app = access.app.clone();
    let lines: Vec<String> = message.split('\n').map(str::to_owned).collect();
    let last = lines
        .iter()
        .rev()
        .find(|l| !l.trim().is_empty())
        .cloned()
        .unwrap_or_default();
    if let Some(changed) = ssh::host_key_changed(&lines) {
        return GitError::HostKeyChanged {
            app,
            host: changed.host,
            fingerprint: changed.fingerprint,
        };
    }
    let said = |needle: &str| lines.iter().any(|l| l.contains(needle));
    match transport {
        Transport::Https if said("Authentication failed") || said("could not read Username") => {
            if access.credential.is_some() {
                GitError::CredentialRefused { app, detail: last }
            } else {
                GitError::CredentialMissing { app, detail: last }
            }
        }
        Transport::Ssh if said("Permission denied (publickey") => match &access.deploy_key {
            Some((_, fingerprint)) => GitError::DeployKeyRefused {
                app,
                fingerprint: fingerprint.clone(),
            },
            None => GitError::DeployKeyMissing { app },
        },
        _ => GitError::Failed {
            step,
            message: lines
                .iter()
                .rev()
                .take(5)
                .rev()
                .cloned()
                .collect::<Vec<_>>()
                .join(" / "),
        },
    }
}

async fn fetch(
    url: &str,
    reference: &GitRef,
    dest: &Path,
    env: &GitEnv,
    log: &DeployLog,
    cancel: &CancellationToken,
) -> Result<(), GitError> {
    let dest_str = dest.to_string_lossy().into_owned();
    match reference {
        GitRef::Branch(branch) => {
            run(
                env,
                "clone",
                &[
                    "clone",
                    "--depth",
                    "1",
                    "--single-branch",
                    "--no-tags",
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
            .await
        }
        GitRef::Commit(sha) => {
            let format = format!("--object-format={}", object_format(sha));
            run(
                env,
                "init",
                &["init", "--quiet", &format, &dest_str],
                None,
                log,
                cancel,
            )
            .await?;
            let shallow = run(
                env,
                "fetch",
                &["fetch", "--no-tags", "--depth", "1", "--", url, sha],
                Some(dest),
                log,
                cancel,
            )
            .await;
            match shallow {
                Ok(()) => {}
                Err(GitError::Failed { message, .. }) if !refused_access(&message) => {
                    log.say(
                        "the server would not send that commit alone; fetching the whole history",
                    );
                    run(
                        env,
                        "fetch",
                        &[
                            "fetch",
                            "--no-tags",
                            "--",
                            url,
                            "+refs/heads/*:refs/remotes/origin/*",
                        ],
                        Some(dest),
                        log,
                        cancel,
                    )
                    .await?;
                    run(
                        env,
                        "fetch",
                        &["fetch", "--no-tags", "--", url, sha],
                        Some(dest),
                        log,
                        cancel,
                    )
                    .await?;
                }
                Err(e) => return Err(e),
            }
            run(
                env,
                "checkout",
                &["checkout", "--quiet", "--detach", "FETCH_HEAD"],
                Some(dest),
                log,
                cancel,
            )
            .await
        }
    }
}

/// A failure that another fetch of the same server would only repeat.
fn refused_access(message: &str) -> bool {
    [
        "Authentication failed",
        "could not read Username",
        "Permission denied (publickey",
        "REMOTE HOST IDENTIFICATION HAS CHANGED",
        "Host key verification failed",
    ]
    .iter()
    .any(|n| message.contains(n))
}

/// How every git command of one checkout runs.
struct GitEnv {
    home: PathBuf,
    ssh_command: Option<String>,
    handoff: Option<Handoff>,
}

impl GitEnv {
    fn new(home: PathBuf) -> GitEnv {
        GitEnv {
            home,
            ssh_command: None,
            handoff: None,
        }
    }

    /// Settings given to git as `GIT_CONFIG_KEY_n`/`GIT_CONFIG_VALUE_n` pairs, which git reads
    /// as if from the command line without anything showing there.
    fn config(&self) -> Vec<(&str, &str)> {
        let mut config = vec![("core.hooksPath", "/dev/null")];
        if let Some(h) = &self.handoff {
            config.push(h.helper_config());
        }
        config
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new("git");
        cmd.env_clear();
        for key in INHERITED_ENV {
            if let Some(value) = std::env::var_os(key) {
                cmd.env(key, value);
            }
        }
        if std::env::var_os("PATH").is_none() {
            cmd.env("PATH", DEFAULT_PATH);
        }
        cmd.env("HOME", &self.home)
            .env("XDG_CONFIG_HOME", self.home.join(".config"))
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_PROTOCOL_FROM_USER", "0")
            .env("GIT_ALLOW_PROTOCOL", url::ALLOWED_PROTOCOLS)
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("GIT_ASKPASS", "/bin/true")
            .env("LC_ALL", "C");
        let config = self.config();
        cmd.env("GIT_CONFIG_COUNT", config.len().to_string());
        for (i, (key, value)) in config.iter().enumerate() {
            cmd.env(format!("GIT_CONFIG_KEY_{i}"), key)
                .env(format!("GIT_CONFIG_VALUE_{i}"), value);
        }
        if let Some(ssh) = &self.ssh_command {
            cmd.env("GIT_SSH_COMMAND", ssh);
        }
        if let Some(h) = &self.handoff {
            h.pass_to(&mut cmd);
        }
        cmd.stdin(Stdio::null()).kill_on_drop(true);
        cmd
    }
}

/// Runs one git command, streaming its output into the log.
async fn run(
    env: &GitEnv,
    step: &'static str,
    args: &[&str],
    dir: Option<&Path>,
    log: &DeployLog,
    cancel: &CancellationToken,
) -> Result<(), GitError> {
    let mut cmd = env.command();
    cmd.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
    if let Some(dir) = dir {
        cmd.current_dir(dir);
    }
    let mut child = cmd.spawn().map_err(GitError::Spawn)?;
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let mut transcript: Vec<String> = Vec::new();
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
            transcript.push(log.redact(&line));
            if transcript.len() > TRANSCRIPT_LINES {
                transcript.remove(0);
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
            message: if transcript.is_empty() {
                status.to_string()
            } else {
                transcript.join("\n")
            },
        })
    }
}

async fn output(env: &GitEnv, args: &[&str], dir: &Path) -> Result<String, GitError> {
    let out = env
        .command()
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
    fn credentials_come_apart() {
        let (url, cred) = split_credential("https://bot:s3cret@git.example.com/team/app.git");
        assert_eq!(url, "https://git.example.com/team/app.git");
        assert_eq!(cred.as_deref(), Some("bot:s3cret"));
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
        let sha256 = "0123456789abcdef".repeat(4);
        assert_eq!(GitRef::parse(&sha256), GitRef::Commit(sha256.clone()));
        assert_eq!(object_format(&sha256), "sha256");
        assert_eq!(object_format(&sha.to_ascii_lowercase()), "sha1");
        // Neither length: a branch that happens to be hex.
        assert_eq!(
            GitRef::parse(&"a".repeat(50)),
            GitRef::Branch("a".repeat(50))
        );
    }

    #[test]
    fn the_private_directory_is_beside_the_work_tree() {
        assert_eq!(
            private_dir(Path::new("/var/lib/rivetr/work/17")),
            Path::new("/var/lib/rivetr/work/17-access")
        );
    }

    #[test]
    fn git_gets_a_sealed_off_environment() {
        let env = GitEnv::new(PathBuf::from("/state/work/1-access/home"));
        let cmd = env.command();
        let std = cmd.as_std();
        let vars: std::collections::HashMap<String, Option<String>> = std
            .get_envs()
            .map(|(k, v)| {
                (
                    k.to_string_lossy().into_owned(),
                    v.map(|v| v.to_string_lossy().into_owned()),
                )
            })
            .collect();
        let get = |k: &str| vars.get(k).cloned().flatten();
        assert_eq!(get("GIT_PROTOCOL_FROM_USER").as_deref(), Some("0"));
        assert_eq!(
            get("GIT_ALLOW_PROTOCOL").as_deref(),
            Some("https:ssh:git:file")
        );
        assert_eq!(get("GIT_CONFIG_NOSYSTEM").as_deref(), Some("1"));
        assert_eq!(get("HOME").as_deref(), Some("/state/work/1-access/home"));
        assert_eq!(get("GIT_CONFIG_KEY_0").as_deref(), Some("core.hooksPath"));
        assert_eq!(get("GIT_CONFIG_VALUE_0").as_deref(), Some("/dev/null"));
        assert_eq!(get("GIT_CONFIG_COUNT").as_deref(), Some("1"));
        assert!(get("GIT_SSH_COMMAND").is_none());
    }
}
