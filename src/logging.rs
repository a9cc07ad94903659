//! Logging: native journald entries under systemd, readable lines on stderr otherwise.
//!
//! systemd sets `JOURNAL_STREAM=<dev>:<inode>` for a service whose stderr is connected to the
//! journal. Only when stderr really is that stream (a child process could inherit the variable
//! with stderr redirected elsewhere) does Rivetr send structured entries to journald, where
//! event fields become journal fields with a `RIVETR_` prefix (`app` -> `RIVETR_APP`), so
//! `journalctl RIVETR_APP=blog` works.
//!
//! The level comes from `[log] level`, unless `RUST_LOG` is set, and can be changed at runtime
//! through [`LogHandle::set_level`] (used on SIGHUP).

use std::io::IsTerminal;
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Registry, reload};

use crate::config::LogLevel;

/// Where log lines go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sink {
    Journald,
    Stderr,
}

/// Changes the log filter of the running process.
pub struct LogHandle {
    filter: reload::Handle<EnvFilter, Registry>,
    rust_log: Option<String>,
    pub sink: Sink,
}

impl LogHandle {
    /// Applies a new `[log] level`. When `RUST_LOG` is set it keeps precedence, and the
    /// config level is not applied.
    pub fn set_level(&self, level: &LogLevel) -> Result<(), String> {
        if let Some(rust_log) = &self.rust_log {
            tracing::info!(%rust_log, "RUST_LOG is set and takes precedence over [log] level");
            return Ok(());
        }
        let filter = EnvFilter::builder()
            .parse(level.as_str())
            .map_err(|e| e.to_string())?;
        self.filter.reload(filter).map_err(|e| e.to_string())
    }
}

/// Installs the global subscriber. Call once, before anything logs.
pub fn init(level: &LogLevel) -> LogHandle {
    let rust_log = std::env::var("RUST_LOG").ok().filter(|v| !v.is_empty());
    let (filter, bad_rust_log) = initial_filter(level, rust_log.as_deref());
    let (filter, handle) = reload::Layer::new(filter);

    let journald = stderr_is_journal()
        .then(|| {
            tracing_journald::layer().map(|l| {
                l.with_field_prefix(Some("RIVETR".to_owned()))
                    .with_syslog_identifier("rivetr".to_owned())
            })
        })
        .and_then(Result::ok);
    let sink = if journald.is_some() {
        Sink::Journald
    } else {
        Sink::Stderr
    };
    let fmt = journald.is_none().then(|| {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(std::io::stderr().is_terminal())
            .with_target(false)
    });
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(journald)
        .with(fmt)
        .try_init();
    let rust_log = match bad_rust_log {
        Some(e) => {
            tracing::warn!(error = %e, "RUST_LOG is not a valid filter; using [log] level");
            None
        }
        None => rust_log,
    };
    LogHandle {
        filter: handle,
        rust_log,
        sink,
    }
}

fn initial_filter(level: &LogLevel, rust_log: Option<&str>) -> (EnvFilter, Option<String>) {
    let from_config = || {
        EnvFilter::builder()
            .parse(level.as_str())
            .unwrap_or_else(|_| EnvFilter::new("info"))
    };
    match rust_log {
        Some(directives) => match EnvFilter::builder().parse(directives) {
            Ok(f) => (f, None),
            Err(e) => (from_config(), Some(e.to_string())),
        },
        None => (from_config(), None),
    }
}

/// True when stderr is the stream systemd connected to the journal.
pub fn stderr_is_journal() -> bool {
    let Some(expected) = std::env::var("JOURNAL_STREAM").ok() else {
        return false;
    };
    let Some((dev, ino)) = expected.split_once(':') else {
        return false;
    };
    let (Ok(dev), Ok(ino)) = (dev.parse::<u64>(), ino.parse::<u64>()) else {
        return false;
    };
    let Ok(fd) = std::io::stderr().as_fd().try_clone_to_owned() else {
        return false;
    };
    match std::fs::File::from(fd).metadata() {
        Ok(meta) => meta.dev() == dev && meta.ino() == ino,
        Err(_) => false,
    }
}
