//! Accept loops: one task per listener that accepts TCP connections and serves HTTP on them.
//!
//! A socket systemd handed over and a socket Rivetr bound itself take the same path. Each loop
//! also answers liveness probes from the watchdog, proving that it is still being polled, and
//! on shutdown it stops accepting at once (with socket activation, new connections then wait
//! in systemd's socket for the next start), lets connections in flight finish within the grace
//! period, and cuts the rest. Every connection hyper serves closes gracefully
//! ([`super::linger`]): a client still sending when Rivetr answers early reads the answer.

use std::error::Error as StdError;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::body::{Body, Incoming};
use hyper::service::Service;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::linger::Lingering;
use super::park::{Lot, Parked};
use crate::proxy::metrics::OpenConnection;
use crate::proxy::plain::{self, Idle, Served};
use crate::proxy::{Scheme, Worker};

type BoxError = Box<dyn StdError + Send + Sync>;

/// Asks an accept loop to prove it is alive.
#[derive(Clone)]
pub struct Probe {
    name: &'static str,
    tx: mpsc::Sender<oneshot::Sender<()>>,
}

/// The accept loop's end of a [`Probe`].
pub struct ProbeReceiver(mpsc::Receiver<oneshot::Sender<()>>);

pub fn probe(name: &'static str) -> (Probe, ProbeReceiver) {
    let (tx, rx) = mpsc::channel(4);
    (Probe { name, tx }, ProbeReceiver(rx))
}

impl Probe {
    /// Succeeds when the loop answers within `timeout`.
    pub async fn check(&self, timeout: Duration) -> Result<(), String> {
        let (reply, answer) = oneshot::channel();
        let asked = async {
            self.tx
                .send(reply)
                .await
                .map_err(|_| format!("{} accept loop has ended", self.name))?;
            answer
                .await
                .map_err(|_| format!("{} accept loop dropped the probe", self.name))
        };
        tokio::time::timeout(timeout, asked).await.map_err(|_| {
            format!(
                "{} accept loop did not answer within {timeout:?}",
                self.name
            )
        })?
    }
}

/// How long, at shutdown, a connection that has not sent its first request yet may take to
/// send it (bounded by the grace period). Such a connection was accepted just before the
/// shutdown, so its client has sent, or is sending, a request; hyper's graceful shutdown
/// alone would close it unanswered ("empty reply from server" during a restart).
pub const FIRST_REQUEST_WAIT: Duration = Duration::from_secs(1);

/// A connection's service, which records that the connection's first request has arrived.
struct MarkFirstRequest<S> {
    inner: S,
    started: CancellationToken,
    /// Read on every request instead of the token, whose every method takes a lock.
    seen_first: std::sync::atomic::AtomicBool,
}

impl<S, B> Service<Request<Incoming>> for MarkFirstRequest<S>
where
    S: Service<Request<Incoming>, Response = Response<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn call(&self, req: Request<Incoming>) -> Self::Future {
        use std::sync::atomic::Ordering::Relaxed;
        if !self.seen_first.load(Relaxed) {
            self.seen_first.store(true, Relaxed);
            self.started.cancel();
        }
        self.inner.call(req)
    }
}

/// Serves one connection until it ends; on shutdown, gives it FIRST_REQUEST_WAIT to receive
/// its first request, then shuts it down gracefully (finishing the request in flight).
async fn serve_until_drained<C>(
    mut conn: std::pin::Pin<&mut C>,
    started: CancellationToken,
    shutdown: CancellationToken,
    first_request_wait: Duration,
) -> Result<(), BoxError>
where
    C: GracefulConnection,
{
    tokio::select! {
        result = conn.as_mut() => result,
        _ = shutdown.cancelled() => {
            // Keep serving while waiting: that is how the request arrives.
            let early = tokio::select! {
                result = conn.as_mut() => Some(result),
                _ = started.cancelled() => None,
                _ = tokio::time::sleep(first_request_wait) => None,
            };
            match early {
                Some(result) => result,
                None => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            }
        }
    }
}

/// What hyper-util's connections offer: a future that can be asked to finish gracefully.
trait GracefulConnection: std::future::Future<Output = Result<(), BoxError>> {
    fn graceful_shutdown(self: std::pin::Pin<&mut Self>);
}

impl<I, S, E, B> GracefulConnection for auto::UpgradeableConnection<'static, I, S, E>
where
    S: Service<Request<Incoming>, Response = Response<B>>,
    S::Future: 'static,
    S::Error: Into<BoxError>,
    B: Body + 'static,
    B::Error: Into<BoxError>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    E: hyper::rt::bounds::Http2ServerConnExec<S::Future, B>,
{
    fn graceful_shutdown(self: std::pin::Pin<&mut Self>) {
        auto::UpgradeableConnection::graceful_shutdown(self)
    }
}

/// How often parked connections idle for longer than a keep-alive may are closed.
const SWEEP_PARKED: Duration = Duration::from_secs(1);
/// Up to this many connections with a task on one accept loop, a plain-HTTP connection idle
/// after a request keeps its task through a short pause before it parks (its next request
/// usually comes within it; see `plain::Idle`); from this many on, it parks at once. A burst
/// of 10,000 clients each sending one request then leaves a few hundred tasks alive at a
/// time, not thousands in their pause: their memory stayed with the process after they ended
/// (issue 16, row 6, about 5 MB under `heaptrack`).
const CALM_TASKS: usize = 256;

/// A TLS handshake that has not finished by then is abandoned.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Where a serving loop gets its connections from.
pub enum Source {
    /// Accepts on a listener itself.
    Listener(TcpListener),
    /// Receives connections a [`dispatch`] loop accepted on another thread.
    Handed(mpsc::UnboundedReceiver<Handoff>),
}

/// An accepted connection on its way to a worker thread.
pub type Handoff = (std::net::TcpStream, SocketAddr);

impl Source {
    async fn next(&mut self) -> Option<std::io::Result<(TcpStream, SocketAddr)>> {
        match self {
            Source::Listener(l) => Some(l.accept().await),
            Source::Handed(rx) => {
                let (stream, peer) = rx.recv().await?;
                Some(TcpStream::from_std(stream).map(|s| (s, peer)))
            }
        }
    }

    /// At shutdown: the connections handed over but not yet served, and those the dispatch
    /// loop is still handing over, until it has stopped (its senders are gone) or `within`
    /// has passed. The dispatch loop runs on another thread and may have accepted a connection
    /// at the moment of the shutdown: a receiver dropped before it sends would close that
    /// connection unanswered ("empty reply from server" during a restart).
    async fn rest(
        &mut self,
        within: Duration,
        mut each: impl FnMut(std::io::Result<(TcpStream, SocketAddr)>),
    ) {
        let Source::Handed(rx) = self else { return };
        let deadline = tokio::time::Instant::now() + within;
        loop {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some((stream, peer))) => each(TcpStream::from_std(stream).map(|s| (s, peer))),
                Ok(None) => return,
                Err(_) => {
                    tracing::warn!(
                        ?within,
                        "the dispatch loop did not stop in time; connections it hands over now are closed"
                    );
                    return;
                }
            }
        }
    }
}

/// Accepts on `listener` and hands each connection to the next worker in turn, until
/// `shutdown`. With one accepting thread, connections spread evenly over the workers; when
/// several threads accept on one socket, the first to wake takes a whole burst.
pub async fn dispatch(
    name: &'static str,
    listener: TcpListener,
    workers: Vec<mpsc::UnboundedSender<Handoff>>,
    mut probes: ProbeReceiver,
    shutdown: CancellationToken,
) {
    let mut next = 0usize;
    loop {
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            Some(reply) = probes.0.recv() => {
                let _ = reply.send(());
            }
            accepted = listener.accept() => match accepted.and_then(|(s, p)| Ok((s.into_std()?, p))) {
                Ok(handoff) => {
                    if workers.is_empty() {
                        break;
                    }
                    let _ = workers[next % workers.len()].send(handoff);
                    next = next.wrapping_add(1);
                }
                Err(e) => {
                    // Out of file descriptors and the like: pause rather than spin.
                    tracing::warn!(listener = name, error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
    tracing::debug!(listener = name, "stopped accepting");
}

/// Serves HTTP/1.1 and HTTP/2 (with upgrades), over TLS when `tls` is given, on the
/// connections from `source` until `shutdown`, then drains. With `lean` (the proxy's
/// listeners), each connection that is not HTTP/2 starts on the proxy's own HTTP/1.1 server
/// (`proxy::plain`) and goes over to hyper when a request needs it.
#[allow(clippy::too_many_arguments)]
pub async fn serve<F, S, B>(
    name: &'static str,
    mut source: Source,
    tls: Option<TlsAcceptor>,
    lean: Option<Arc<Worker>>,
    make_service: F,
    mut probes: ProbeReceiver,
    shutdown: CancellationToken,
    grace: Duration,
) where
    F: Fn(SocketAddr) -> S,
    S: Service<Request<Incoming>, Response = Response<B>> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // The timers make hyper enforce its header-read timeout (slow clients) and keep-alives.
    builder.http1().timer(TokioTimer::new());
    builder.http2().timer(TokioTimer::new());
    let connections = TaskTracker::new();
    let first_request_wait = FIRST_REQUEST_WAIT.min(grace);
    // The proxy's plain-HTTP connections wait for their next request in the lot, without a
    // task (see `park`). TLS ones keep theirs: their stream is most of their memory anyway.
    let lot = match (&tls, &lean) {
        (None, Some(_)) => Lot::new()
            .inspect_err(|e| tracing::warn!(listener = name, error = %e, "cannot make the lot for idle connections; hyper serves this listener's connections"))
            .ok(),
        _ => None,
    };
    let serve_one = |stream: TcpStream, peer: SocketAddr, open: Option<OpenConnection>| {
        let idle_then = if connections.len() < CALM_TASKS {
            Idle::Return
        } else {
            Idle::ReturnAtOnce
        };
        let started = CancellationToken::new();
        let service = MarkFirstRequest {
            inner: make_service(peer),
            started: started.clone(),
            seen_first: false.into(),
        };
        let builder = builder.clone();
        let tls = tls.clone();
        let lean = lean.clone();
        let lot = lot.clone();
        let shutdown = shutdown.clone();
        // Detached on purpose: `connections` tracks it for the drain below, and a TLS
        // handshake is bounded by HANDSHAKE_TIMEOUT.
        connections.spawn(async move {
            // hyper on whichever stream the connection ends up as. Boxed, like everything on
            // TLS: a task is as large as its largest state for as long as it lives, idle or
            // not, and hyper's state or a TLS stream is several times an idle plain
            // connection's (issue 16: memory per idle connection).
            macro_rules! with_hyper {
                ($io:expr) => {{
                    let conn = builder.serve_connection_with_upgrades(TokioIo::new($io), service).into_owned();
                    let mut conn = Box::pin(conn);
                    Box::pin(serve_until_drained(conn.as_mut(), started, shutdown, first_request_wait)).await
                }};
            }
            let served = match (tls, lean, lot) {
                (None, Some(worker), Some(lot)) => {
                    // The lean path, then the lot when idle, or hyper from the request it hands
                    // over on.
                    let (mut stream, mut open) = (stream, open);
                    loop {
                        let lean = plain::serve(Arc::clone(&worker), stream, peer, Scheme::Http, shutdown.clone(), first_request_wait, idle_then);
                        match lean.await {
                            // The lean path serves only requests without a body: nothing is
                            // left unread when it closes.
                            Served::Ended(result) => break result.map_err(Into::into),
                            Served::HandOver(stream) => {
                                // A request head has arrived already.
                                started.cancel();
                                break with_hyper!(Lingering::new(stream));
                            }
                            Served::Idle(idle) => match lot.park(Parked { stream: idle, peer, open }) {
                                Ok(()) => return,
                                // Its next request is arriving already (or the lot is closed).
                                Err(back) => (stream, open) = (back.stream, back.open),
                            },
                        }
                    }
                }
                (None, _, _) => {
                    let _open = open;
                    with_hyper!(Lingering::new(stream))
                }
                // All of it boxed: a TLS stream is larger than a whole idle plain connection.
                (Some(acceptor), lean, _) => Box::pin(async move {
                    let _open = open;
                    let handshake = handshake(&acceptor, Lingering::new(stream), name, peer);
                    let Some(stream) = handshake.await else {
                        // Logged by `handshake`.
                        return Ok(());
                    };
                    let http2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
                    match lean {
                        Some(worker) if !http2 => {
                            let mut stream = stream;
                            loop {
                                let lean = plain::serve(Arc::clone(&worker), stream, peer, Scheme::Https, shutdown.clone(), first_request_wait, Idle::Wait);
                                match lean.await {
                                    Served::Ended(result) => break result.map_err(Into::into),
                                    Served::HandOver(stream) => {
                                        started.cancel();
                                        break with_hyper!(stream);
                                    }
                                    // Not returned with `Idle::Wait`; an idle connection
                                    // returned anyway is served on, not dropped.
                                    Served::Idle(idle) => stream = idle,
                                }
                            }
                        }
                        _ => with_hyper!(stream),
                    }
                })
                .await,
            };
            if let Err(e) = served {
                tracing::debug!(listener = name, %peer, error = %e, "connection ended with an error");
            }
        });
    };
    let accepted = |stream: TcpStream, peer: SocketAddr| {
        let _ = stream.set_nodelay(true);
        serve_one(stream, peer, OpenConnection::of(name))
    };
    // Only a listener with a lot has parked connections to sweep.
    let mut sweep = lot.as_ref().map(|_| {
        let mut sweep = tokio::time::interval(SWEEP_PARKED);
        sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        sweep
    });
    loop {
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            Some(reply) = probes.0.recv() => {
                let _ = reply.send(());
            }
            Some(woken) = async { Some(lot.as_ref()?.woken().await) }, if lot.is_some() => {
                for conn in woken {
                    serve_one(conn.stream, conn.peer, conn.open);
                }
            }
            Some(_) = async { Some(sweep.as_mut()?.tick().await) }, if sweep.is_some() => {
                if let Some(lot) = &lot {
                    lot.close_idle_since(Instant::now() - plain::HEAD_TIMEOUT);
                }
            }
            next = source.next() => match next {
                Some(Ok((stream, peer))) => accepted(stream, peer),
                Some(Err(e)) => {
                    // Out of file descriptors and the like: pause rather than spin.
                    tracing::warn!(listener = name, error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                None => break,
            }
        }
    }
    // Idle connections close; those whose request has just arrived are answered.
    for conn in lot.as_ref().map(Lot::close).into_iter().flatten() {
        serve_one(conn.stream, conn.peer, conn.open);
    }
    source
        .rest(FIRST_REQUEST_WAIT, |handed| {
            if let Ok((stream, peer)) = handed {
                accepted(stream, peer);
            }
        })
        .await;
    drop(source);
    tracing::debug!(listener = name, "stopped accepting; draining connections");
    connections.close();
    if tokio::time::timeout(grace, connections.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            listener = name,
            ?grace,
            "grace period over; closing the remaining connections"
        );
    }
}

/// Completes a TLS handshake; `None` when it fails, times out, or was an ACME TLS-ALPN-01
/// validation (which carries no HTTP).
async fn handshake<IO>(
    acceptor: &TlsAcceptor,
    stream: IO,
    name: &'static str,
    peer: SocketAddr,
) -> Option<tokio_rustls::server::TlsStream<IO>>
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
        Ok(Ok(stream)) => {
            if crate::proxy::tls::is_acme_challenge(stream.get_ref().1.alpn_protocol()) {
                tracing::debug!(%peer, "answered an ACME TLS-ALPN-01 validation");
                return None;
            }
            Some(stream)
        }
        Ok(Err(e)) => {
            tracing::debug!(listener = name, %peer, error = %e, "TLS handshake failed");
            None
        }
        Err(_) => {
            tracing::debug!(listener = name, %peer, "TLS handshake timed out");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::convert::Infallible;

    /// A service that answers every request 200 "answered".
    fn answering() -> impl Service<
        Request<Incoming>,
        Response = Response<http_body_util::Full<bytes::Bytes>>,
        Error = Infallible,
        Future: Send,
    > + Send
    + 'static {
        hyper::service::service_fn(|_req| async {
            Ok::<_, Infallible>(Response::new(http_body_util::Full::new(
                bytes::Bytes::from_static(b"answered"),
            )))
        })
    }

    /// Everything the server sent on `client` until it closed.
    async fn read_reply(client: &mut tokio::net::TcpStream) -> String {
        use tokio::io::AsyncReadExt;
        let mut reply = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), client.read_to_end(&mut reply))
            .await
            .expect("the connection was neither answered nor closed")
            .unwrap();
        String::from_utf8_lossy(&reply).into_owned()
    }

    #[tokio::test]
    async fn a_loop_that_is_not_polled_fails_its_probe() {
        let (probe, _receiver_never_polled) = probe("api");
        let err = probe.check(Duration::from_millis(50)).await.unwrap_err();
        assert!(err.contains("did not answer"), "{err}");
    }

    /// Regression (found by the packages' restart-under-load test, issue 7): a connection
    /// accepted just before shutdown, whose request arrives after it, is answered rather than
    /// closed with an empty reply.
    #[tokio::test]
    async fn a_connection_accepted_before_shutdown_gets_its_request_answered() {
        use tokio::io::AsyncWriteExt;

        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (_probe, receiver) = probe("http");
        let (accepted_tx, mut accepted) = mpsc::unbounded_channel();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(serve(
            "http",
            Source::Listener(listener),
            None,
            None,
            move |_| {
                let _ = accepted_tx.send(());
                answering()
            },
            receiver,
            shutdown.clone(),
            Duration::from_secs(5),
        ));

        let mut client = tokio::net::TcpStream::connect(addr).await.unwrap();
        accepted.recv().await.unwrap();
        shutdown.cancel();
        tokio::time::sleep(Duration::from_millis(100)).await;
        client
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let reply = read_reply(&mut client).await;
        assert!(reply.starts_with("HTTP/1.1 200"), "reply: {reply:?}");
        assert!(reply.ends_with("answered"), "reply: {reply:?}");
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("the loop did not finish draining")
            .unwrap();
    }

    /// Regression (stop 35, the packages' restart-under-load test: one "empty reply from
    /// server"): the dispatch loop, on another thread, handed over a connection it had
    /// accepted as the shutdown began, after the worker had taken what was queued and dropped
    /// its receiver; the connection closed unanswered. A worker now takes connections until
    /// the dispatch loop has stopped.
    #[tokio::test]
    async fn a_connection_handed_over_as_shutdown_began_is_answered() {
        use tokio::io::AsyncWriteExt;

        let (_probe, receiver) = probe("http");
        let (handoff, handed) = mpsc::unbounded_channel();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(serve(
            "http",
            Source::Handed(handed),
            None,
            None,
            |_| answering(),
            receiver,
            shutdown.clone(),
            Duration::from_secs(5),
        ));
        shutdown.cancel();
        // The worker has left its loop by now; the dispatch loop has not stopped yet.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut client = tokio::net::TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (stream, peer) = listener.accept().await.unwrap();
        handoff
            .send((stream.into_std().unwrap(), peer))
            .expect("the worker still takes connections");
        drop(handoff);
        client
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let reply = read_reply(&mut client).await;
        assert!(reply.starts_with("HTTP/1.1 200"), "reply: {reply:?}");
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("the loop did not finish draining")
            .unwrap();
    }

    /// A connection that never sends a request does not hold shutdown beyond
    /// FIRST_REQUEST_WAIT.
    #[tokio::test]
    async fn a_silent_connection_does_not_hold_shutdown() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (_probe, receiver) = probe("http");
        let (accepted_tx, mut accepted) = mpsc::unbounded_channel();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(serve(
            "http",
            Source::Listener(listener),
            None,
            None,
            move |_| {
                let _ = accepted_tx.send(());
                hyper::service::service_fn(|_req| async {
                    Ok::<_, Infallible>(Response::new(http_body_util::Empty::<bytes::Bytes>::new()))
                })
            },
            receiver,
            shutdown.clone(),
            Duration::from_secs(30),
        ));
        let _silent = tokio::net::TcpStream::connect(addr).await.unwrap();
        accepted.recv().await.unwrap();
        let began = std::time::Instant::now();
        shutdown.cancel();
        tokio::time::timeout(FIRST_REQUEST_WAIT * 3, task)
            .await
            .expect("a silent connection held shutdown")
            .unwrap();
        assert!(
            began.elapsed() >= FIRST_REQUEST_WAIT / 2,
            "{:?}",
            began.elapsed()
        );
    }

    #[tokio::test]
    async fn a_running_loop_answers_its_probe() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (probe, receiver) = probe("api");
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(serve(
            "api",
            Source::Listener(listener),
            None,
            None,
            |_| {
                hyper::service::service_fn(|_req| async {
                    Ok::<_, Infallible>(Response::new(http_body_util::Empty::<bytes::Bytes>::new()))
                })
            },
            receiver,
            shutdown.clone(),
            Duration::from_secs(1),
        ));
        probe.check(Duration::from_secs(5)).await.unwrap();
        shutdown.cancel();
        task.await.unwrap();
        let err = probe.check(Duration::from_secs(5)).await.unwrap_err();
        assert!(err.contains("ended"), "{err}");
    }
}
