//! Idle keep-alive connections of the proxy's plain-HTTP listener, held without a task.
//!
//! A task is as large as its future's largest state for as long as it lives: an idle HTTP/1.1
//! keep-alive connection waiting for its next request in a task of its own cost 2.44 kB
//! (issue 16, row 6; nginx: 0.82 kB). Parked here, an idle connection is its socket, its
//! open-connection count and when it parked: a 64-byte entry in the lot's table (its client's
//! address is asked of the socket again when it leaves). The reactor wakes a small waker of
//! its own when the client sends again (or closes), and the accept loop starts a task for it
//! again. One
//! [`Lot`] per accept loop (per worker thread); the loop also closes the connections that sat
//! idle for longer than a keep-alive may ([`Lot::close_idle_since`]), and at shutdown closes
//! the idle ones and serves the ones whose request has just arrived ([`Lot::close`]).

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Wake, Waker};
use std::time::Instant;

use tokio::io::ReadBuf;
use tokio::net::TcpStream;
use tokio::sync::Notify;

use crate::proxy::metrics::OpenConnection;

/// An idle connection, as it waits and as it leaves the lot.
pub struct Parked {
    pub stream: TcpStream,
    pub peer: SocketAddr,
    /// Counts the connection as open for as long as it is (in the lot or not).
    pub open: Option<OpenConnection>,
}

/// A parked connection as the table holds it: what [`Parked`] has but the client's address
/// (asked of the socket when it leaves), and when it parked, in nanoseconds since the lot was
/// made. Kept small: 10,000 idle connections are 10,000 of these, in a table with room for
/// up to twice as many.
struct Slot {
    stream: TcpStream,
    open: Option<OpenConnection>,
    since: u64,
}

struct State {
    parked: HashMap<u64, Slot>,
    /// Slots whose waker fired since the accept loop last looked.
    woken: Vec<u64>,
    next: u64,
    closed: bool,
    /// What [`Slot::since`] counts from.
    epoch: Instant,
}

impl Default for State {
    fn default() -> State {
        State {
            parked: HashMap::new(),
            woken: Vec::new(),
            next: 0,
            closed: false,
            epoch: Instant::now(),
        }
    }
}

impl State {
    fn nanos_since_epoch(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.epoch).as_nanos()).unwrap_or(u64::MAX)
    }
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    notify: Notify,
}

/// Where one accept loop's idle connections wait. Cloning gives another handle to it.
#[derive(Clone, Default)]
pub struct Lot {
    shared: Arc<Shared>,
}

/// What the reactor wakes for a parked connection. It holds the lot weakly: a slot holds its
/// waker, and the lot its slots.
struct SlotWaker {
    lot: Weak<Shared>,
    key: u64,
}

impl Wake for SlotWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if let Some(lot) = self.lot.upgrade() {
            lock(&lot).woken.push(self.key);
            lot.notify.notify_one();
        }
    }
}

/// The waker the reactor holds for slot `key`: the reactor keeps the one it was last given,
/// so the slot need not.
fn slot_waker(lot: &Arc<Shared>, key: u64) -> Waker {
    Waker::from(Arc::new(SlotWaker {
        lot: Arc::downgrade(lot),
        key,
    }))
}

/// A connection leaving the lot, with its client's address asked of the socket; `None` when
/// the socket has none any more (the client reset it), which closes it.
fn leaving(slot: Slot) -> Option<Parked> {
    let peer = slot.stream.peer_addr().ok()?;
    Some(Parked {
        stream: slot.stream,
        peer,
        open: slot.open,
    })
}

fn lock(shared: &Shared) -> std::sync::MutexGuard<'_, State> {
    // A panic while the lock was held cannot leave the map half-changed: every change is one
    // call on it.
    shared.state.lock().unwrap_or_else(|e| e.into_inner())
}

impl Lot {
    /// Parks an idle connection until its client sends again. Gives it back when it has
    /// something to read already (or failed), or when the lot is closed: its task goes on
    /// with it then.
    pub fn park(&self, conn: Parked) -> Result<(), Parked> {
        let mut state = lock(&self.shared);
        if state.closed {
            return Err(conn);
        }
        let key = state.next;
        state.next += 1;
        // Registers the waker. The lock is held until the slot is in: a wake cannot come
        // before it.
        if has_input(&conn.stream, &slot_waker(&self.shared, key)) {
            return Err(conn);
        }
        let since = state.nanos_since_epoch(Instant::now());
        let Parked { stream, open, .. } = conn;
        state.parked.insert(
            key,
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
            let notified = self.shared.notify.notified();
            let ready = self.take_ready();
            if !ready.is_empty() {
                return ready;
            }
            notified.await;
        }
    }

    fn take_ready(&self) -> Vec<Parked> {
        let mut state = lock(&self.shared);
        let woken = std::mem::take(&mut state.woken);
        let mut ready = Vec::new();
        for key in woken {
            let Some(slot) = state.parked.get(&key) else {
                continue;
            };
            // A wake can be spurious; looking again registers a waker again if so.
            if has_input(&slot.stream, &slot_waker(&self.shared, key))
                && let Some(slot) = state.parked.remove(&key)
            {
                ready.extend(leaving(slot));
            }
        }
        shrink_when_mostly_empty(&mut state.parked);
        ready
    }

    /// Closes the connections parked before `before` (idle for longer than a keep-alive may
    /// be). Returns how many.
    pub fn close_idle_since(&self, before: Instant) -> usize {
        let mut state = lock(&self.shared);
        let count = state.parked.len();
        let before = state.nanos_since_epoch(before);
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
        state
            .parked
            .drain()
            .filter(|(_, slot)| has_input_now(&slot.stream))
            .filter_map(|(_, slot)| leaving(slot))
            .collect()
    }

    /// How many connections are parked now.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        lock(&self.shared).parked.len()
    }
}

/// Whether the client has sent something, closed, or the socket failed; if not, `waker` is
/// woken when one of these happens. A peek rather than the reactor's readiness alone: after
/// a read that emptied the socket, the reactor still says readable until a read finds nothing.
fn has_input(stream: &TcpStream, waker: &Waker) -> bool {
    let mut byte = [0u8; 1];
    let mut buf = ReadBuf::new(&mut byte);
    stream
        .poll_peek(&mut Context::from_waker(waker), &mut buf)
        .is_ready()
}

/// Whether bytes (or the end) wait on the socket, asked of the kernel itself: at shutdown the
/// reactor may not have turned since a request arrived, and [`has_input`] would miss it.
fn has_input_now(stream: &TcpStream) -> bool {
    let mut byte = 0u8;
    // SAFETY: the descriptor is `stream`'s, open for as long as it is borrowed, and the buffer
    // is one byte long. MSG_DONTWAIT: a socket without input answers EAGAIN at once.
    let n = unsafe {
        libc::recv(
            stream.as_raw_fd(),
            (&raw mut byte).cast(),
            1,
            libc::MSG_PEEK | libc::MSG_DONTWAIT,
        )
    };
    n >= 0 || io::Error::last_os_error().kind() != io::ErrorKind::WouldBlock
}

/// After a burst of connections has gone, gives back the table's memory.
fn shrink_when_mostly_empty(parked: &mut HashMap<u64, Slot>) {
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
        let size = std::mem::size_of::<(u64, Slot)>();
        assert!(
            size <= 64,
            "{size} bytes; TcpStream {}",
            std::mem::size_of::<TcpStream>()
        );
    }

    #[tokio::test]
    async fn a_parked_connection_comes_back_when_its_client_sends() {
        let lot = Lot::default();
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
        let lot = Lot::default();
        let (mut client, server) = pair().await;
        client.write_all(b"GET").await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(lot.park(parked(server)).is_err());
        assert_eq!(lot.len(), 0);
    }

    #[tokio::test]
    async fn a_client_closing_a_parked_connection_wakes_it_to_be_closed() {
        let lot = Lot::default();
        let (client, server) = pair().await;
        assert!(lot.park(parked(server)).is_ok());
        drop(client);
        let mut back = tokio::time::timeout(Duration::from_secs(5), lot.woken())
            .await
            .expect("the connection came back");
        let mut rest = Vec::new();
        assert_eq!(back[0].stream.read_to_end(&mut rest).await.unwrap(), 0);
    }

    #[tokio::test]
    async fn idle_connections_are_closed_after_their_time_and_at_shutdown() {
        let lot = Lot::default();
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
