//! Rivetr as a systemd service: sockets handed over by systemd ([`listen`]), the notify
//! protocol ([`notify`]: READY, STATUS, RELOADING, STOPPING) and the watchdog heartbeat
//! ([`watchdog`]), and asking systemd over D-Bus to start a unit ([`dbus`]).
//!
//! Everything here also works without systemd: no `LISTEN_FDS` means Rivetr binds its own
//! sockets, no `NOTIFY_SOCKET` makes every notification a no-op.

pub mod dbus;
pub mod listen;
pub mod notify;
pub mod watchdog;
