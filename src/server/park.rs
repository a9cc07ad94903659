//! Idle keep-alive connections of the proxy's plain-HTTP listener, held without a task.
//!
//! A task is as large as its future's largest state for as long as it lives: an idle HTTP/1.1
//! keep-alive connection waiting for its next request in a task of its own cost 2.44 kB
//! (issue 16, row 6; nginx: 0.82 kB). Parked here, an idle connection is its socket, its
//! open-connection count and when it parked: a small entry in the lot's table (its client's
//! address is asked of the socket again when it leaves).
//!
//! Its socket leaves tokio's reactor while it waits: a socket registered there costs 256 bytes
//! of reactor state (tokio's `ScheduledIo`) plus the waker it holds, more than the rest of a
//! parked connection together. The lot watches its sockets with an epoll instance of its own
//! instead, whose one descriptor is in tokio's reactor. When a client sends again (or
//! closes), that descriptor turns readable, the lot's [`Lot::woken`] collects the sockets
//! with input, and the accept loop starts a task for each again.
//!
//! One [`Lot`] per accept loop (per worker thread); the loop also closes the connections that
//! sat idle for longer than a keep-alive may ([`Lot::close_idle_since`]), and at shutdown
//! closes the idle ones and serves the ones whose request has just arrived ([`Lot::close`]).

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::io::unix::AsyncFd;
use tokio::net::TcpStream;

use crate::proxy::metrics::OpenConnection;

/// An idle connection, as it waits and as it leaves the lot.
pub struct Parked {
    pub stream: TcpStream,
    pub peer: SocketAddr,
    /// Counts the connection as open for as long as it is (in the lot or not).
    pub open: Option<OpenConnection>,
}

/// A parked connection as the table holds it (keyed by its descriptor): its socket out of
/// tokio's reactor, its open count, and when it parked, in nanoseconds since the lot was made.
/// Kept small: 10,000 idle connections are 10,000 of these, in a table with room for up to
/// twice as many.
struct Slot {
    stream: std::net::TcpStream,
    open: Option<OpenConnection>,
    since: u64,
}

struct State {
    parked: HashMap<RawFd, Slot>,
    closed: bool,
    /// What [`Slot::since`] counts from.
    epoch: Instant,
}

impl State {
    fn nanos_since_epoch(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.epoch).as_nanos()).unwrap_or(u64::MAX)
    }
}

struct Shared {
    state: Mutex<State>,
    /// Watches the parked sockets for input, level-triggered; readable in tokio's reactor
    /// when one of them has some.
    epoll: AsyncFd<OwnedFd>,
}

/// Where one accept loop's idle connections wait. Cloning gives another handle to it.
#[derive(Clone)]
pub struct Lot {
    shared: Arc<Shared>,
}

/// Sockets taken from the epoll instance per look.
const READY_PER_LOOK: usize = 64;

fn lock(shared: &Shared) -> std::sync::MutexGuard<'_, State> {
    // A panic while the lock was held cannot leave the map half-changed: every change is one
    // call on it.
    shared.state.lock().unwrap_or_else(|e| e.into_inner())
}

impl Lot {
    /// An empty lot, its epoll instance registered with the current tokio runtime (so call
    /// it on the runtime of the loop that uses it).
    pub fn new() -> io::Result<Lot> {
        // SAFETY: epoll_create1 takes no pointer; a descriptor it returns is ours alone.
        let epoll = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if epoll < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `epoll` was just opened above and nothing else owns it.
        let epoll = unsafe { OwnedFd::from_raw_fd(epoll) };
        // SAFETY: the OwnedFd is moved into the AsyncFd, which owns it from now on: it stays
        // open and the same descriptor for as long as the AsyncFd lives.
        let epoll =
            unsafe { AsyncFd::register_with_interest(epoll, tokio::io::Interest::READABLE) }
                .map_err(io::Error::from)?;
        Ok(Lot {
            shared: Arc::new(Shared {
                state: Mutex::new(State {
                    parked: HashMap::new(),
                    closed: false,
                    epoch: Instant::now(),
                }),
                epoll,
            }),
        })
    }

    /// Parks an idle connection until its client sends again. Gives it back when it has
    /// something to read already, or when the lot is closed: its task goes on with it then.
    /// A connection that cannot be watched (out of epoll watches) is closed: a server may
    /// close an idle keep-alive connection at any time (RFC 9112, 9.5).
    pub fn park(&self, conn: Parked) -> Result<(), Parked> {
        let mut state = lock(&self.shared);
        if state.closed || has_input_now(conn.stream.as_raw_fd()) {
            return Err(conn);
        }
        let Parked { stream, open, peer } = conn;
        let stream = match stream.into_std() {
            Ok(stream) => stream,
            Err(e) => {
                tracing::debug!(%peer, error = %e, "cannot take an idle connection out of the reactor; closed");
                return Ok(());
            }
        };
        let fd = stream.as_raw_fd();
        // Level-triggered: input that came since the look above is reported at once.
        if let Err(e) = epoll_ctl(&self.shared, libc::EPOLL_CTL_ADD, fd) {
            tracing::warn!(%peer, error = %e, "cannot watch an idle connection; closed");
            return Ok(());
        }
        let since = state.nanos_since_epoch(Instant::now());
        state.parked.insert(
            fd,
            Slot {
                stream,
                open,
                since,
            },
        );
        Ok(())
    }

    /// Waits for parked connections whose client sent something (or closed, or failed), and
    /// takes them out of the lot. Cancel-safe: connections are taken only when returned.
    pub async fn woken(&self) -> Vec<Parked> {
        loop {
            let mut guard = match self.shared.epoll.readable().await {
                Ok(guard) => guard,
                Err(e) => {
                    // The reactor is shutting down; the accept loop ends by its own signal.
                    tracing::debug!(error = %e, "the lot's epoll instance left the reactor");
                    return std::future::pending().await;
                }
            };
            match guard.try_io(|_| self.take_ready()) {
                Ok(Ok(ready)) if !ready.is_empty() => return ready,
                // Only connections that were gone by the time they were taken.
                Ok(Ok(_)) => {}
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "cannot read the lot's epoll instance");
                    guard.clear_ready();
                }
                // Nothing ready: the readiness was cleared; wait for the next.
                Err(_would_block) => {}
            }
        }
    }

    /// The parked connections with input now, out of the lot; `WouldBlock` when there are
    /// none (which clears the epoll descriptor's readiness in tokio).
    fn take_ready(&self) -> io::Result<Vec<Parked>> {
        let mut events = [libc::epoll_event { events: 0, u64: 0 }; READY_PER_LOOK];
        // SAFETY: `events` has room for READY_PER_LOOK entries; a timeout of 0 never blocks.
        let n = unsafe {
            libc::epoll_wait(
                self.shared.epoll.as_raw_fd(),
                events.as_mut_ptr(),
                READY_PER_LOOK as libc::c_int,
                0,
            )
        };
        let n = match n {
            n if n < 0 => return Err(io::Error::last_os_error()),
            0 => return Err(io::ErrorKind::WouldBlock.into()),
            n => n as usize,
        };
        let mut state = lock(&self.shared);
        let mut ready = Vec::with_capacity(n);
        for event in &events[..n] {
            let fd = event.u64 as RawFd;
            // Each event is of a socket parked now: a socket closed while parked leaves the
            // epoll instance with its events, and nothing runs between the wait and here.
            if let Some(slot) = state.parked.remove(&fd) {
                let _ = epoll_ctl(&self.shared, libc::EPOLL_CTL_DEL, fd);
                // Closed here, without a task: when 10,000 held clients left at once, a task
                // each to read their end took the proxy from 17 to 35 MB, kept after they
                // had gone (bench/proxy.sh row 6, 2026-12-05).
                if ended_without_input(event.events, fd) {
                    continue;
                }
                ready.extend(leaving(slot));
            }
        }
        shrink_when_mostly_empty(&mut state.parked);
        Ok(ready)
    }

    /// Closes the connections parked before `before` (idle for longer than a keep-alive may
    /// be). Returns how many.
    pub fn close_idle_since(&self, before: Instant) -> usize {
        let mut state = lock(&self.shared);
        let count = state.parked.len();
        let before = state.nanos_since_epoch(before);
        // Closing a socket takes it out of the epoll instance too.
        state.parked.retain(|_, slot| slot.since >= before);
        let closed = count - state.parked.len();
        shrink_when_mostly_empty(&mut state.parked);
        closed
    }

    /// At shutdown: parks nothing more, closes every idle connection, and returns the ones
    /// whose client has sent its next request meanwhile, for the caller to answer.
    pub fn close(&self) -> Vec<Parked> {
        let mut state = lock(&self.shared);
        state.closed = true;
        let parked: Vec<Slot> = state.parked.drain().map(|(_, slot)| slot).collect();
        drop(state);
        parked
            .into_iter()
            .filter(|slot| has_input_now(slot.stream.as_raw_fd()))
            .filter_map(|slot| {
                let _ = epoll_ctl(&self.shared, libc::EPOLL_CTL_DEL, slot.stream.as_raw_fd());
                leaving(slot)
            })
            .collect()
    }

    /// How many connections are parked now.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        lock(&self.shared).parked.len()
    }
}

/// Adds socket `fd` to the lot's epoll instance (watching for input, the client's close and
/// errors), or removes it.
fn epoll_ctl(shared: &Shared, op: libc::c_int, fd: RawFd) -> io::Result<()> {
    let mut event = libc::epoll_event {
        events: (libc::EPOLLIN | libc::EPOLLRDHUP) as u32,
        u64: fd as u64,
    };
    // SAFETY: both descriptors are open (the lot's, and a socket it holds); `event` lives
    // through the call.
    let done = unsafe { libc::epoll_ctl(shared.epoll.as_raw_fd(), op, fd, &mut event) };
    if done < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// A connection leaving the lot: back in tokio's reactor, with its client's address asked of
/// the socket; `None` when it has none any more (the client reset it) or cannot be registered,
/// which closes it.
fn leaving(slot: Slot) -> Option<Parked> {
    let peer = slot.stream.peer_addr().ok()?;
    let stream = TcpStream::from_std(slot.stream).ok()?;
    Some(Parked {
        stream,
        peer,
        open: slot.open,
    })
}

/// Whether bytes (or the end) wait on socket `fd`, asked of the kernel itself (also at
/// shutdown, when the reactor may not have turned since a request arrived).
fn has_input_now(fd: RawFd) -> bool {
    !matches!(peek(fd), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
}

/// Peeks at one byte of socket `fd` without waiting: `Ok(0)` at the end of its input,
/// `Ok(1)` when bytes wait, `WouldBlock` when nothing does.
fn peek(fd: RawFd) -> io::Result<usize> {
    let mut byte = 0u8;
    // SAFETY: `fd` is a socket the caller holds open through the call, and the buffer is one
    // byte long. MSG_DONTWAIT: a socket without input answers EAGAIN at once.
    let n = unsafe {
        libc::recv(
            fd,
            (&raw mut byte).cast(),
            1,
            libc::MSG_PEEK | libc::MSG_DONTWAIT,
        )
    };
    usize::try_from(n).map_err(|_| io::Error::last_os_error())
}

/// Whether a woken socket's client has gone (closed its side or reset the connection) with
/// nothing left to read: such a connection has nothing more to serve. `events` are what epoll
/// reported; a client that sent a request and then closed its side is not gone, it waits for
/// the answer.
fn ended_without_input(events: u32, fd: RawFd) -> bool {
    let ending = (libc::EPOLLRDHUP | libc::EPOLLHUP | libc::EPOLLERR) as u32;
    events & ending != 0
        && match peek(fd) {
            Ok(n) => n == 0,
            Err(e) => e.kind() != io::ErrorKind::WouldBlock,
        }
}

/// After a burst of connections has gone, gives back the table's memory.
fn shrink_when_mostly_empty(parked: &mut HashMap<RawFd, Slot>) {
    if parked.capacity() > 64 && parked.len() < parked.capacity() / 4 {
        parked.shrink_to(parked.len() * 2);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    async fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        (client, server)
    }

    fn parked(stream: TcpStream) -> Parked {
        let peer = stream.peer_addr().unwrap();
        Parked {
            stream,
            peer,
            open: None,
        }
    }

    #[test]
    fn a_parked_connection_is_a_small_table_entry() {
        // What the module doc promises: the table's entries are what idle connections cost.
        let size = std::mem::size_of::<(RawFd, Slot)>();
        assert!(size <= 32, "{size} bytes");
    }

    #[tokio::test]
    async fn a_parked_connection_comes_back_when_its_client_sends() {
        let lot = Lot::new().unwrap();
        let (mut client, server) = pair().await;
        assert!(lot.park(parked(server)).is_ok());
        assert_eq!(lot.len(), 1);
        let waiting = tokio::time::timeout(Duration::from_millis(100), lot.woken()).await;
        assert!(
            waiting.is_err(),
            "nothing was sent, yet the connection came back"
        );
        client.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
        let mut back = tokio::time::timeout(Duration::from_secs(5), lot.woken())
            .await
            .expect("the connection came back");
        assert_eq!((back.len(), lot.len()), (1, 0));
        let mut got = [0u8; 16];
        back[0].stream.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"GET / HTTP/1.1\r\n");
        // Parked again, it waits again.
        let conn = back.pop().unwrap();
        assert!(lot.park(conn).is_ok());
        assert_eq!(lot.len(), 1);
    }

    #[tokio::test]
    async fn a_connection_with_bytes_waiting_is_not_parked() {
        let lot = Lot::new().unwrap();
        let (mut client, server) = pair().await;
        client.write_all(b"GET").await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(lot.park(parked(server)).is_err());
        assert_eq!(lot.len(), 0);
    }

    #[tokio::test]
    async fn a_client_closing_a_parked_connection_has_it_closed_in_the_lot() {
        let lot = Lot::new().unwrap();
        let (client, server) = pair().await;
        let (reset_client, reset) = pair().await;
        let (_staying_client, staying) = pair().await;
        for conn in [server, reset, staying] {
            assert!(lot.park(parked(conn)).is_ok());
        }
        drop(client);
        // SO_LINGER 0: the close resets the connection.
        reset_client.set_zero_linger().unwrap();
        drop(reset_client);
        let waking = tokio::time::timeout(Duration::from_millis(300), lot.woken()).await;
        assert!(waking.is_err(), "a connection whose client left came back");
        assert_eq!(lot.len(), 1, "the two whose clients left are closed");
    }

    #[tokio::test]
    async fn a_client_that_sent_a_request_and_closed_its_side_gets_its_connection_back() {
        let lot = Lot::new().unwrap();
        let (mut client, server) = pair().await;
        assert!(lot.park(parked(server)).is_ok());
        client.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
        client.shutdown().await.unwrap();
        let mut back = tokio::time::timeout(Duration::from_secs(5), lot.woken())
            .await
            .expect("the connection came back");
        let mut request = Vec::new();
        back[0].stream.read_to_end(&mut request).await.unwrap();
        assert_eq!(request, b"GET / HTTP/1.1\r\n\r\n");
    }

    #[tokio::test]
    async fn idle_connections_are_closed_after_their_time_and_at_shutdown() {
        let lot = Lot::new().unwrap();
        let (mut old_client, old) = pair().await;
        assert!(lot.park(parked(old)).is_ok());
        let cut = Instant::now();
        let (_new_client, new) = pair().await;
        assert!(lot.park(parked(new)).is_ok());
        assert_eq!(lot.close_idle_since(cut), 1);
        assert_eq!(lot.len(), 1);
        let mut rest = Vec::new();
        assert_eq!(
            old_client.read_to_end(&mut rest).await.unwrap(),
            0,
            "closed"
        );

        // At shutdown the idle one closes, and one whose request arrived comes back.
        let (mut asking_client, asking) = pair().await;
        assert!(lot.park(parked(asking)).is_ok());
        asking_client.write_all(b"GET").await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        let back = lot.close();
        assert_eq!((back.len(), lot.len()), (1, 0));
        assert_eq!(back[0].peer, asking_client.local_addr().unwrap());
        let (_late_client, late) = pair().await;
        assert!(
            lot.park(parked(late)).is_err(),
            "a closed lot parks nothing"
        );
    }
}
