//! SSH for clones of `ssh://` and `user@host:path` URLs: the app's deploy key, its own
//! known_hosts, and an `ssh` that reads nothing else.
//!
//! For the length of one checkout the private key is written with mode 0600 into the
//! checkout's private directory (mode 0700), beside a known_hosts file holding the host keys
//! the app's earlier clones recorded; both are removed with that directory when the checkout
//! ends. `GIT_SSH_COMMAND` points ssh at exactly these two files: no `~/.ssh/config` or
//! `/etc/ssh/ssh_config` (`-F /dev/null`), no agent, no other identity, no password prompt.
//! A host met for the first time is accepted and recorded (`StrictHostKeyChecking
//! accept-new`); a host whose key differs from the recorded one is refused, and the
//! deployment fails naming the key the server now presents, until the app's known hosts are
//! reset through the API.

use std::io;
use std::path::{Path, PathBuf};

use tokio::io::AsyncWriteExt;

use super::credential::shell_quote;
use crate::secrets::SecretString;

const KEY_FILE: &str = "deploy_key";
const KNOWN_HOSTS_FILE: &str = "known_hosts";

/// One checkout's SSH files.
pub(super) struct SshFiles {
    key: Option<PathBuf>,
    known_hosts: PathBuf,
    recorded: String,
}

impl SshFiles {
    /// Writes the key (when the app has one) and the recorded known hosts into `dir`.
    pub async fn write(
        dir: &Path,
        key: Option<&SecretString>,
        recorded: &str,
    ) -> io::Result<SshFiles> {
        let key = match key {
            Some(k) => {
                let path = dir.join(KEY_FILE);
                write_private(&path, k.expose().as_bytes()).await?;
                Some(path)
            }
            None => None,
        };
        let known_hosts = dir.join(KNOWN_HOSTS_FILE);
        write_private(&known_hosts, recorded.as_bytes()).await?;
        Ok(SshFiles {
            key,
            known_hosts,
            recorded: recorded.to_owned(),
        })
    }

    /// The `GIT_SSH_COMMAND` value (git runs it through `sh`, hence the quoting).
    pub fn command(&self) -> String {
        let mut options: Vec<String> = [
            "BatchMode=yes",
            "StrictHostKeyChecking=accept-new",
            "GlobalKnownHostsFile=/dev/null",
            "HashKnownHosts=no",
            "UpdateHostKeys=no",
            "IdentitiesOnly=yes",
            "IdentityAgent=none",
            "PasswordAuthentication=no",
            "KbdInteractiveAuthentication=no",
            "ControlMaster=no",
            "ControlPath=none",
            "ForwardAgent=no",
            "ClearAllForwardings=yes",
            "PermitLocalCommand=no",
            "ConnectTimeout=30",
        ]
        .iter()
        .map(|o| (*o).to_owned())
        .collect();
        options.push(format!(
            "UserKnownHostsFile={}",
            ssh_path(&self.known_hosts)
        ));
        match &self.key {
            Some(key) => options.push(format!("IdentityFile={}", ssh_path(key))),
            // Without a deploy key, offer no key at all: ssh would otherwise try the default
            // identities of the user Rivetr runs as (ssh finds them through the passwd
            // entry, not $HOME).
            None => options.push("PubkeyAuthentication=no".to_owned()),
        }
        let mut command = "ssh -F /dev/null".to_owned();
        for o in options {
            command.push_str(" -o ");
            command.push_str(&shell_quote(&o));
        }
        command
    }

    /// The known_hosts file as ssh left it, when it recorded a new host; `None` when unchanged.
    pub async fn newly_recorded(&self) -> io::Result<Option<String>> {
        let now = tokio::fs::read_to_string(&self.known_hosts).await?;
        Ok((now != self.recorded).then_some(now))
    }
}

/// ssh expands `%` tokens and a leading `~` in these paths; the state directory's path is
/// taken literally.
fn ssh_path(p: &Path) -> String {
    p.to_string_lossy().replace('%', "%%")
}

async fn write_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut file = tokio::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .await?;
    file.write_all(bytes).await?;
    file.flush().await
}

/// ssh refused a host because its key changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostKeyChanged {
    /// As ssh names it: `github.com` or `[127.0.0.1]:2222`.
    pub host: String,
    /// The fingerprint of the key the server presents now, `SHA256:...`.
    pub fingerprint: String,
}

/// Finds ssh's "REMOTE HOST IDENTIFICATION HAS CHANGED" report in git's output.
pub(super) fn host_key_changed(lines: &[String]) -> Option<HostKeyChanged> {
    let start = lines
        .iter()
        .position(|l| l.contains("REMOTE HOST IDENTIFICATION HAS CHANGED"))?;
    let rest = &lines[start..];
    let fingerprint = rest
        .iter()
        .find_map(|l| l.trim().strip_prefix("SHA256:"))
        .map(|f| format!("SHA256:{}", f.trim_end_matches('.')))?;
    let host = rest
        .iter()
        .find_map(|l| {
            l.trim()
                .strip_prefix("Host key for ")
                .and_then(|r| r.split_once(" has changed"))
                .map(|(h, _)| h.to_owned())
        })
        .unwrap_or_else(|| "the server".to_owned());
    Some(HostKeyChanged { host, fingerprint })
}

/// A host key an app's clones recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownHost {
    /// As ssh records it: `github.com`, or `[host]:port` for another port than 22.
    pub host: String,
    /// `ssh-ed25519`, `ecdsa-sha2-nistp256`, `ssh-rsa`, ...
    pub key_type: String,
    /// `SHA256:...`, as `ssh-keygen -l` prints it.
    pub fingerprint: String,
}

/// The entries of a known_hosts file, skipping lines that are not host keys.
pub fn known_hosts(file: &str) -> Vec<KnownHost> {
    file.lines()
        .filter_map(|line| {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with('@') {
                return None;
            }
            let mut words = line.split_whitespace();
            let host = words.next()?;
            let key_type = words.next()?;
            let blob = words.next()?;
            let fingerprint =
                crate::secrets::deploy_key::fingerprint(&format!("{key_type} {blob}"))?;
            Some(KnownHost {
                host: host.to_owned(),
                key_type: key_type.to_owned(),
                fingerprint,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What OpenSSH 9.2 prints (through git) when a recorded host key changed.
    const CHANGED: &str = "\
@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@
@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @
@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@
IT IS POSSIBLE THAT SOMEONE IS DOING SOMETHING NASTY!
Someone could be eavesdropping on you right now (man-in-the-middle attack)!
It is also possible that a host key has just been changed.
The fingerprint for the ED25519 key sent by the remote host is
SHA256:Xq8V0dDn6n8j6QkVqz3Xv0b5iYh6o0Gm1J3mQ0v1h2Y.
Please contact your system administrator.
Add correct host key in /var/lib/rivetr/work/7-git/known_hosts to get rid of this message.
Offending ED25519 key in /var/lib/rivetr/work/7-git/known_hosts:1
Host key for [127.0.0.1]:2222 has changed and you have requested strict checking.
Host key verification failed.
fatal: Could not read from remote repository.";

    #[test]
    fn a_changed_host_key_is_found_with_its_fingerprint() {
        let lines: Vec<String> = CHANGED.lines().map(str::to_owned).collect();
        assert_eq!(
            host_key_changed(&lines),
            Some(HostKeyChanged {
                host: "[127.0.0.1]:2222".to_owned(),
                fingerprint: "SHA256:Xq8V0dDn6n8j6QkVqz3Xv0b5iYh6o0Gm1J3mQ0v1h2Y".to_owned(),
            })
        );
        assert_eq!(
            host_key_changed(&["Permission denied (publickey).".to_owned()]),
            None
        );
    }

    #[test]
    fn known_hosts_entries_carry_fingerprints() {
        let key = crate::secrets::deploy_key::generate("x").unwrap();
        let mut words = key.public_key.split_whitespace();
        let (kind, blob) = (words.next().unwrap(), words.next().unwrap());
        let file = format!("# comment\n[127.0.0.1]:2222 {kind} {blob}\ngarbage\n");
        assert_eq!(
            known_hosts(&file),
            vec![KnownHost {
                host: "[127.0.0.1]:2222".to_owned(),
                key_type: "ssh-ed25519".to_owned(),
                fingerprint: key.fingerprint,
            }]
        );
    }

    #[test]
    fn the_ssh_command_quotes_paths_and_reads_no_config() {
        let files = SshFiles {
            key: Some(PathBuf::from("/state dir/7-git/deploy_key")),
            known_hosts: PathBuf::from("/state dir/7-git/known_hosts"),
            recorded: String::new(),
        };
        let cmd = files.command();
        assert!(cmd.starts_with("ssh -F /dev/null "), "{cmd}");
        assert!(
            cmd.contains("-o 'IdentityFile=/state dir/7-git/deploy_key'"),
            "{cmd}"
        );
        assert!(cmd.contains("-o 'IdentityAgent=none'"), "{cmd}");
        assert!(
            cmd.contains("-o 'StrictHostKeyChecking=accept-new'"),
            "{cmd}"
        );
        let keyless = SshFiles { key: None, ..files };
        assert!(keyless.command().contains("PubkeyAuthentication=no"));
    }
}
