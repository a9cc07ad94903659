//! Asking systemd to start a unit, over its D-Bus API (zbus), for the few times Rivetr needs
//! something systemd manages but has not started yet (the `podman.socket` unit).
//!
//! Everything here is bounded by a timeout and fails with a typed error when there is no
//! bus or no systemd on it, so callers can record the reason and carry on.

use std::fmt;
use std::time::Duration;

/// Which systemd instance to ask.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bus {
    /// The calling user's manager, on the session bus (`$DBUS_SESSION_BUS_ADDRESS` or
    /// `$XDG_RUNTIME_DIR/bus`).
    User,
    /// The system manager, on the system bus.
    System,
}

impl fmt::Display for Bus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Bus::User => "user",
            Bus::System => "system",
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DbusError {
    #[error("no {bus} D-Bus to ask systemd: {message}")]
    Connect { bus: Bus, message: String },
    #[error("the {bus} systemd manager did not start {unit}: {message}")]
    StartUnit {
        bus: Bus,
        unit: String,
        message: String,
    },
    #[error("no answer from the {bus} D-Bus within {timeout:?}")]
    Timeout { bus: Bus, timeout: Duration },
}

/// `org.freedesktop.systemd1.Manager.StartUnit(unit, "replace")`: queues the start job and
/// returns once systemd accepted it (the unit may still be starting).
pub async fn start_unit(bus: Bus, unit: &str, timeout: Duration) -> Result<(), DbusError> {
    tokio::time::timeout(timeout, start_unit_now(bus, unit))
        .await
        .map_err(|_| DbusError::Timeout { bus, timeout })?
}

async fn start_unit_now(bus: Bus, unit: &str) -> Result<(), DbusError> {
    let connection = match bus {
        Bus::User => zbus::Connection::session().await,
        Bus::System => zbus::Connection::system().await,
    }
    .map_err(|e| DbusError::Connect {
        bus,
        message: e.to_string(),
    })?;
    connection
        .call_method(
            Some("org.freedesktop.systemd1"),
            "/org/freedesktop/systemd1",
            Some("org.freedesktop.systemd1.Manager"),
            "StartUnit",
            &(unit, "replace"),
        )
        .await
        .map_err(|e| DbusError::StartUnit {
            bus,
            unit: unit.to_owned(),
            message: e.to_string(),
        })?;
    Ok(())
}
