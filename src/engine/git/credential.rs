//! Handing an app's https credential to git with nothing on a command line, in an
//! environment, in a file or in the work tree's `.git/config`.
//!
//! The credential (`user:token`, as split off the app's URL) goes into a memfd: an anonymous
//! file that lives only in memory, sealed against change once written. Its descriptor is
//! close-on-exec in Rivetr, so no other child process inherits it; only the one git command
//! that needs it gets a copy, made inheritable in that child between fork and exec. git is
//! told to use Rivetr's own binary as its credential helper (`credential.helper`, given
//! through `GIT_CONFIG_COUNT` variables, so not on the command line either), which git runs as
//! `rivetr git-credential get` with the request on stdin; the helper reads the credential from
//! the inherited descriptor and answers `username=`/`password=` on stdout, to git only.
//!
//! Why not `GIT_ASKPASS`: git passes the prompt as an argument, and the password prompt
//! contains the user name (`Password for 'https://TOKEN@host'`), so a token given as the user
//! name would show in `/proc/<pid>/cmdline`. Why not a 0600 file: a memfd never reaches a disk
//! and cannot outlive the clone, even when Rivetr is killed during it.
//!
//! The helper answers only for the app's own host: a server that redirects git elsewhere
//! gets nothing.

use std::fs::File;
use std::io::{self, BufRead, Write};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::fs::FileExt;

use tokio::process::Command;

use crate::secrets::SecretString;

/// The hidden subcommand of the `rivetr` binary that git runs as its credential helper.
pub const HELPER_SUBCOMMAND: &str = "git-credential";
/// The number of the inherited descriptor holding the credential.
const FD_VAR: &str = "RIVETR_GIT_CREDENTIAL_FD";
/// The `host[:port]` the credential is for.
const HOST_VAR: &str = "RIVETR_GIT_CREDENTIAL_HOST";
/// More than any real `user:token`; a larger memfd is not one Rivetr made.
const MAX_CREDENTIAL: usize = 16 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    #[error("cannot create the in-memory file that hands the credential to git: {0}")]
    Memfd(io::Error),
    #[error("cannot find Rivetr's own binary to serve as git's credential helper: {0}")]
    OwnBinary(io::Error),
    #[error("{FD_VAR} is not set: this command is run by git, for Rivetr's clones only")]
    NotFromRivetr,
    #[error("cannot read the credential Rivetr handed over: {0}")]
    Read(io::Error),
    #[error("cannot talk to git: {0}")]
    Io(#[from] io::Error),
}

/// A credential ready to hand to git processes.
pub struct Handoff {
    fd: OwnedFd,
    host: String,
    helper: String,
}

impl Handoff {
    /// Seals `credential` into a memfd for requests to `host` (`host[:port]`, as git names it).
    pub fn new(credential: &SecretString, host: &str) -> Result<Handoff, CredentialError> {
        let fd = sealed_memfd(credential.expose().as_bytes()).map_err(CredentialError::Memfd)?;
        Ok(Handoff {
            fd,
            host: host.to_owned(),
            helper: helper_command()?,
        })
    }

    /// The `credential.helper` value: Rivetr's binary, as a shell command git appends the
    /// operation to.
    pub fn helper_config(&self) -> (&'static str, &str) {
        ("credential.helper", &self.helper)
    }

    /// Gives `cmd` (one git process and its children) the descriptor and where to find it.
    pub fn pass_to(&self, cmd: &mut Command) {
        let raw = self.fd.as_raw_fd();
        cmd.env(FD_VAR, raw.to_string()).env(HOST_VAR, &self.host);
        // SAFETY: runs in the child between fork and exec, and calls only fcntl(2), which is
        // async-signal-safe; it clears close-on-exec on the child's copy of the descriptor,
        // never on Rivetr's.
        unsafe {
            cmd.pre_exec(move || {
                if libc::fcntl(raw, libc::F_SETFD, 0) == -1 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
}

fn sealed_memfd(bytes: &[u8]) -> io::Result<OwnedFd> {
    // SAFETY: a NUL-terminated name and valid flags; the result is checked before use.
    let raw = unsafe {
        libc::memfd_create(
            c"rivetr-git-credential".as_ptr(),
            libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING,
        )
    };
    if raw == -1 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `raw` is a descriptor memfd_create just returned, owned by nothing else.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let mut file = File::from(fd);
    file.write_all(bytes)?;
    let seals = libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;
    // SAFETY: fcntl on a descriptor we own.
    if unsafe { libc::fcntl(file.as_raw_fd(), libc::F_ADD_SEALS, seals) } == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(OwnedFd::from(file))
}

/// `!'<this binary>' git-credential`: a shell command, since git runs helpers through `sh`.
fn helper_command() -> Result<String, CredentialError> {
    let exe = std::env::current_exe().map_err(CredentialError::OwnBinary)?;
    let exe = exe.to_string_lossy();
    // A binary replaced by a package upgrade while Rivetr runs: the new one is at the path.
    let exe = exe.strip_suffix(" (deleted)").unwrap_or(&exe);
    Ok(format!("!{} {HELPER_SUBCOMMAND}", shell_quote(exe)))
}

/// Quotes `s` as one word for `sh`.
pub(super) fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// `rivetr git-credential <operation>`: answers git's `get` request on `input` with the
/// credential Rivetr handed over, on `output`; `store` and `erase` are read and ignored, since
/// Rivetr keeps credentials itself. A request for another host than the app's gets no answer
/// (and a note on stderr, which git copies into the deployment's log).
pub fn helper(
    operation: &str,
    input: impl BufRead,
    output: impl Write,
) -> Result<(), CredentialError> {
    let request = read_request(input)?;
    if operation != "get" {
        return Ok(());
    }
    let fd: i32 = std::env::var(FD_VAR)
        .ok()
        .and_then(|v| v.parse().ok())
        .ok_or(CredentialError::NotFromRivetr)?;
    let expected = std::env::var(HOST_VAR).unwrap_or_default();
    // SAFETY: Rivetr passed this descriptor to this process for exactly this read, and it
    // stays open for the whole process.
    let fd = unsafe { BorrowedFd::borrow_raw(fd) };
    answer(&request, &expected, fd, output)
}

/// Answers one `get` request from the credential in `fd`, if the request is for `expected`.
fn answer(
    request: &[(String, String)],
    expected: &str,
    fd: BorrowedFd<'_>,
    mut output: impl Write,
) -> Result<(), CredentialError> {
    let protocol = field(request, "protocol");
    let host = field(request, "host").to_ascii_lowercase();
    if protocol != "https" || host != expected {
        eprintln!(
            "rivetr: not giving the app's credential for {expected} to a request for {protocol}://{host}"
        );
        return Ok(());
    }
    let credential = read_inherited(fd)?;
    let (user, password) = split_userinfo(credential.expose());
    if [&user, &password]
        .iter()
        .any(|v| v.expose().contains(['\n', '\0']))
    {
        // git's protocol is line-based; a newline would forge another attribute.
        eprintln!("rivetr: the stored credential contains a line break; not using it");
        return Ok(());
    }
    write!(
        output,
        "username={}\npassword={}\n",
        user.expose(),
        password.expose()
    )?;
    output.flush()?;
    Ok(())
}

/// git's request: `key=value` lines up to an empty line or the end.
fn read_request(input: impl BufRead) -> io::Result<Vec<(String, String)>> {
    let mut request = Vec::new();
    for line in input.lines() {
        let line = line?;
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once('=') {
            request.push((k.to_owned(), v.to_owned()));
        }
    }
    Ok(request)
}

fn field<'a>(request: &'a [(String, String)], key: &str) -> &'a str {
    request
        .iter()
        .find(|(k, _)| k == key)
        .map_or("", |(_, v)| v.as_str())
}

/// Reads the memfd from its start (a positioned read: the descriptor's offset is shared with
/// git, and git may run the helper more than once).
fn read_inherited(fd: BorrowedFd<'_>) -> Result<SecretString, CredentialError> {
    let file = File::from(fd.try_clone_to_owned().map_err(CredentialError::Read)?);
    let mut buf = zeroize::Zeroizing::new(vec![0u8; MAX_CREDENTIAL]);
    let n = file.read_at(&mut buf, 0).map_err(CredentialError::Read)?;
    let text = String::from_utf8(buf[..n].to_vec()).map_err(|_| {
        CredentialError::Read(io::Error::new(io::ErrorKind::InvalidData, "not UTF-8"))
    })?;
    Ok(SecretString::new(text))
}

/// `user:password` (each percent-decoded, as git decodes a URL's userinfo), or a bare token,
/// which git would send as the user name with an empty password.
pub fn split_userinfo(userinfo: &str) -> (SecretString, SecretString) {
    let decode = |s: &str| {
        SecretString::new(
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned(),
        )
    };
    match userinfo.split_once(':') {
        Some((user, password)) => (decode(user), decode(password)),
        None => (decode(userinfo), SecretString::new(String::new())),
    }
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsFd;

    use super::*;

    #[test]
    fn userinfo_is_split_and_percent_decoded() {
        let (u, p) = split_userinfo("bot:p%40ss%3Aword");
        assert_eq!((u.expose(), p.expose()), ("bot", "p@ss:word"));
        let (u, p) = split_userinfo("ghp_token");
        assert_eq!((u.expose(), p.expose()), ("ghp_token", ""));
    }

    #[test]
    fn shell_quoting_survives_quotes_and_spaces() {
        assert_eq!(shell_quote("/usr/bin/rivetr"), "'/usr/bin/rivetr'");
        assert_eq!(shell_quote("/a b/it's"), r"'/a b/it'\''s'");
    }

    #[test]
    fn the_memfd_holds_the_credential_sealed_and_close_on_exec() {
        let fd = sealed_memfd(b"bot:s3cret").unwrap();
        let raw = fd.as_raw_fd();
        // SAFETY: fcntl queries on a descriptor we own.
        let (flags, seals) = unsafe {
            (
                libc::fcntl(raw, libc::F_GETFD),
                libc::fcntl(raw, libc::F_GET_SEALS),
            )
        };
        assert_eq!(flags & libc::FD_CLOEXEC, libc::FD_CLOEXEC);
        assert_ne!(seals & libc::F_SEAL_WRITE, 0);
        let file = File::from(fd);
        let mut buf = [0u8; 32];
        let n = file.read_at(&mut buf, 0).unwrap();
        assert_eq!(&buf[..n], b"bot:s3cret");
        assert!(file.write_at(b"x", 0).is_err(), "sealed against writes");
    }

    fn answered(request: &[u8], expected: &str, credential: &[u8]) -> String {
        let fd = sealed_memfd(credential).unwrap();
        let request = read_request(request).unwrap();
        let mut out = Vec::new();
        answer(&request, expected, fd.as_fd(), &mut out).unwrap();
        // A second answer from the same descriptor: git may ask again.
        let mut again = Vec::new();
        answer(&request, expected, fd.as_fd(), &mut again).unwrap();
        assert_eq!(out, again);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn the_helper_answers_only_for_the_apps_host() {
        let get = b"protocol=https\nhost=git.example.com:8443\n\n";
        assert_eq!(
            answered(get, "git.example.com:8443", b"bot:p%40ss"),
            "username=bot\npassword=p@ss\n"
        );
        assert_eq!(answered(get, "other.example.com", b"bot:pass"), "");
        let plain = b"protocol=http\nhost=git.example.com:8443\n\n";
        assert_eq!(answered(plain, "git.example.com:8443", b"bot:pass"), "");
        assert_eq!(
            answered(get, "git.example.com:8443", b"bot:a%0Ab"),
            "",
            "a decoded newline would forge a line of git's protocol"
        );
    }

    #[test]
    fn requests_are_read_up_to_the_blank_line() {
        let req = read_request(&b"protocol=https\nhost=h:1\n\nignored=1\n"[..]).unwrap();
        assert_eq!(field(&req, "protocol"), "https");
        assert_eq!(field(&req, "host"), "h:1");
        assert_eq!(field(&req, "ignored"), "");
    }
}
