//! Socket activation: the listening sockets systemd passes in `LISTEN_FDS`, by name.
//!
//! Names come from `FileDescriptorName=` in the socket units (or `--fdname=` of
//! `systemd-socket-activate`): `api`, `http` and `https`, any subset. Anything else is a
//! startup error, because a socket Rivetr does not serve would accept connections that
//! nobody answers.
//!
//! The environment is read and cleared in the synchronous `main` before the tokio runtime
//! starts: clearing it later would race with other threads, and leaving it would hand the
//! variables to every child process Rivetr spawns.

use std::net::TcpListener;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

/// The names Rivetr understands.
pub const NAMES: [&str; 4] = ["api", "http", "https", "metrics"];

#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    #[error("socket activation: {0}")]
    Env(std::io::Error),
    #[error(
        "socket activation: file descriptor {fd} is named `{name}`; Rivetr takes sockets named {} \
         (FileDescriptorName= in the .socket unit, or --fdname= for systemd-socket-activate)",
        NAMES.join(", ")
    )]
    UnknownName { fd: RawFd, name: String },
    #[error("socket activation: two sockets are named `{0}`")]
    Duplicate(String),
    #[error("socket activation: socket `{name}` (fd {fd}) is not a TCP listening socket: {source}")]
    NotTcp {
        name: String,
        fd: RawFd,
        source: std::io::Error,
    },
}

/// Sockets received from systemd, by name. Each is non-blocking, ready for tokio.
#[derive(Debug, Default)]
pub struct InheritedSockets {
    pub api: Option<TcpListener>,
    pub http: Option<TcpListener>,
    pub https: Option<TcpListener>,
    pub metrics: Option<TcpListener>,
}

impl InheritedSockets {
    pub fn is_empty(&self) -> bool {
        self.api.is_none() && self.http.is_none() && self.https.is_none() && self.metrics.is_none()
    }
}

/// Takes the sockets passed by systemd and removes `LISTEN_*` from the environment.
///
/// # Safety
/// Must be called while the process has a single thread (it modifies the environment).
pub unsafe fn take_from_env() -> Result<InheritedSockets, ListenError> {
    // SAFETY: forwarded to our caller.
    let fds =
        unsafe { sd_notify::listen_fds_with_names_and_unset_env() }.map_err(ListenError::Env)?;
    let mut sockets = InheritedSockets::default();
    for (fd, name) in fds {
        // SAFETY: systemd passed us this descriptor and nobody else owns it.
        let owned = unsafe { OwnedFd::from_raw_fd(fd) };
        let slot = match name.as_str() {
            "api" => &mut sockets.api,
            "http" => &mut sockets.http,
            "https" => &mut sockets.https,
            "metrics" => &mut sockets.metrics,
            _ => return Err(ListenError::UnknownName { fd, name }),
        };
        if slot.is_some() {
            return Err(ListenError::Duplicate(name));
        }
        *slot = Some(into_tcp_listener(owned, fd, &name)?);
    }
    Ok(sockets)
}

fn into_tcp_listener(owned: OwnedFd, fd: RawFd, name: &str) -> Result<TcpListener, ListenError> {
    let listener = TcpListener::from(owned);
    let not_tcp = |source| ListenError::NotTcp {
        name: name.to_owned(),
        fd,
        source,
    };
    listener.local_addr().map_err(not_tcp)?;
    // Sockets arrive in blocking mode; tokio requires non-blocking ones.
    listener.set_nonblocking(true).map_err(not_tcp)?;
    Ok(listener)
}
