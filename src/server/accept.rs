//! Accept loops: one task per listener that accepts TCP connections and serves HTTP on them.
//!
//! A socket systemd handed over and a socket Rivetr bound itself take the same path. Each loop
//! also answers liveness probes from the watchdog, proving that it is still being polled, and
//! on shutdown it stops accepting at once (with socket activation, new connections then wait
//! in systemd's socket for the next start), lets connections in flight finish within the grace
//! period, and cuts the rest.

use std::error::Error as StdError;
use std::net::SocketAddr;
use std::time::Duration;

use hyper::body::{Body, Incoming};
use hyper::service::Service;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

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

    /// Connections already handed over but not yet served, taken at shutdown so none is
    /// dropped unanswered.
    fn queued(&mut self) -> Vec<std::io::Result<(TcpStream, SocketAddr)>> {
        let mut out = Vec::new();
        if let Source::Handed(rx) = self {
            while let Ok((stream, peer)) = rx.try_recv() {
                out.push(TcpStream::from_std(stream).map(|s| (s, peer)));
            }
        }
        out
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
/// connections from `source` until `shutdown`, then drains.
pub async fn serve<F, S, B>(
    name: &'static str,
    mut source: Source,
    tls: Option<TlsAcceptor>,
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
    let graceful = GracefulShutdown::new();
    let serve_one = |stream: TcpStream, peer: SocketAddr| {
        let _ = stream.set_nodelay(true);
        let service = make_service(peer);
        let builder = builder.clone();
        let watcher = graceful.watcher();
        let tls = tls.clone();
        // Detached on purpose: the GracefulShutdown watcher tracks the connection, and a TLS
        // handshake is bounded by HANDSHAKE_TIMEOUT.
        tokio::spawn(async move {
            let served = match tls {
                None => {
                    let conn =
                        builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
                    watcher.watch(conn.into_owned()).await
                }
                Some(acceptor) => {
                    let Some(stream) = handshake(&acceptor, stream, name, peer).await else {
                        return;
                    };
                    let conn =
                        builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
                    watcher.watch(conn.into_owned()).await
                }
            };
            if let Err(e) = served {
                tracing::debug!(listener = name, %peer, error = %e, "connection ended with an error");
            }
        });
    };
    loop {
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            Some(reply) = probes.0.recv() => {
                let _ = reply.send(());
            }
            next = source.next() => match next {
                Some(Ok((stream, peer))) => serve_one(stream, peer),
                Some(Err(e)) => {
                    // Out of file descriptors and the like: pause rather than spin.
                    tracing::warn!(listener = name, error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                None => break,
            }
        }
    }
    for (stream, peer) in source.queued().into_iter().flatten() {
        serve_one(stream, peer);
    }
    drop(source);
    tracing::debug!(listener = name, "stopped accepting; draining connections");
    if tokio::time::timeout(grace, graceful.shutdown())
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
async fn handshake(
    acceptor: &TlsAcceptor,
    stream: TcpStream,
    name: &'static str,
    peer: SocketAddr,
) -> Option<tokio_rustls::server::TlsStream<TcpStream>> {
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

    #[tokio::test]
    async fn a_loop_that_is_not_polled_fails_its_probe() {
        let (probe, _receiver_never_polled) = probe("api");
        let err = probe.check(Duration::from_millis(50)).await.unwrap_err();
        assert!(err.contains("did not answer"), "{err}");
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
