//! Keep-alive connections to apps, one pool per proxy worker thread.
//!
//! Built on hyper's HTTP/1.1 client connections rather than hyper-util's pooled client: that
//! client keys its pool by URI, spawns a task per request to return the connection, and was
//! measured at well under half of nginx's throughput on these machines. Here a connection is
//! taken from a per-upstream stack (most recently used first), and handed back by the response
//! body the moment the app's answer has been read to its end. Each worker thread owns its pool,
//! so the lock is never contended and every wake-up stays on one thread.
//!
//! Requests without a body go over [`h1`] connections, driven by the request itself; those
//! with a body or an upgrade over hyper's (see the `h1` module doc for why). Each kind has its
//! own idle stacks.
//!
//! A connection that closed while idle is skipped; a request that could not be written on a
//! pooled connection (the app closed it at that moment) is retried once on a fresh one, since
//! nothing of it reached the app. So is an idempotent request whose pooled connection closed
//! before a byte of answer came back: the app closed it as the request went out.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::time::Instant;

use super::body::RequestBody;
use super::h1::{self, H1Error};

/// Why a request did not get a response.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    /// No connection could be made: the upstream is down (refused, unreachable, timed out).
    #[error("cannot connect to {addr}: {message}")]
    Connect { addr: SocketAddr, message: String },
    /// The connection failed while the request or response was under way.
    #[error("connection to {addr} failed: {source}")]
    Exchange {
        addr: SocketAddr,
        source: hyper::Error,
    },
    /// The same, on a lean connection.
    #[error("connection to {addr} failed: {source}")]
    Lean { addr: SocketAddr, source: H1Error },
}

/// An idle connection of either kind and since when it has waited.
struct Idle<C> {
    conn: C,
    since: Instant,
}

/// Idle connections by upstream, most recently used last.
type Stack<C> = HashMap<SocketAddr, Vec<Idle<C>>>;

#[derive(Default)]
struct Stacks {
    hyper: Stack<SendRequest<RequestBody>>,
    lean: Stack<h1::Conn>,
}

/// The most recently used connection to `addr` that is young enough and `usable`; older or
/// unusable ones met on the way are dropped.
fn pop_usable<C>(
    stack: &mut Stack<C>,
    addr: SocketAddr,
    oldest_allowed: Instant,
    usable: impl Fn(&C) -> bool,
) -> Option<C> {
    let stack = stack.get_mut(&addr)?;
    while let Some(entry) = stack.pop() {
        if entry.since >= oldest_allowed && usable(&entry.conn) {
            return Some(entry.conn);
        }
    }
    None
}

fn push<C>(stack: &mut Stack<C>, addr: SocketAddr, conn: C) {
    stack.entry(addr).or_default().push(Idle {
        conn,
        since: Instant::now(),
    });
}

/// Drops what is too old or no longer `usable`, and upstreams with nothing left.
fn prune<C>(stack: &mut Stack<C>, oldest_allowed: Instant, usable: impl Fn(&C) -> bool) {
    stack.retain(|_, entries| {
        entries.retain(|e| e.since >= oldest_allowed && usable(&e.conn));
        !entries.is_empty()
    });
}

/// The idle connections of one worker, by upstream.
pub struct Pool {
    idle: Mutex<Stacks>,
    connect_timeout: Duration,
    idle_timeout: Duration,
}

/// A connection lent to one request, returned to the pool when its response has been read.
pub struct Lease {
    pool: Arc<Pool>,
    addr: SocketAddr,
    sender: SendRequest<RequestBody>,
}

impl Pool {
    pub fn new(connect_timeout: Duration, idle_timeout: Duration) -> Arc<Pool> {
        Arc::new(Pool {
            idle: Mutex::new(Stacks::default()),
            connect_timeout,
            idle_timeout,
        })
    }

    /// Sends `req` to `addr` on a pooled or new connection.
    pub async fn send(
        self: &Arc<Self>,
        addr: SocketAddr,
        req: Request<RequestBody>,
    ) -> Result<(Response<Incoming>, Lease), PoolError> {
        let mut req = req;
        if let Some(mut sender) = self.take_idle(addr) {
            match sender.try_send_request(req).await {
                Ok(res) => return Ok((res, self.lease(addr, sender))),
                Err(mut e) => match e.take_message() {
                    // Not written: the connection died under us. Try a fresh one.
                    Some(back) => req = back,
                    None => {
                        return Err(PoolError::Exchange {
                            addr,
                            source: e.into_error(),
                        });
                    }
                },
            }
        }
        let mut sender = self.connect(addr).await?;
        let res = sender
            .send_request(req)
            .await
            .map_err(|source| PoolError::Exchange { addr, source })?;
        Ok((res, self.lease(addr, sender)))
    }

    fn lease(self: &Arc<Self>, addr: SocketAddr, sender: SendRequest<RequestBody>) -> Lease {
        Lease {
            pool: Arc::clone(self),
            addr,
            sender,
        }
    }

    fn stacks(&self) -> std::sync::MutexGuard<'_, Stacks> {
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn oldest_allowed(&self) -> Instant {
        Instant::now() - self.idle_timeout
    }

    fn take_idle(&self, addr: SocketAddr) -> Option<SendRequest<RequestBody>> {
        let oldest = self.oldest_allowed();
        pop_usable(
            &mut self.stacks().hyper,
            addr,
            oldest,
            SendRequest::is_ready,
        )
    }

    pub(super) fn take_idle_lean(&self, addr: SocketAddr) -> Option<h1::Conn> {
        let oldest = self.oldest_allowed();
        pop_usable(&mut self.stacks().lean, addr, oldest, h1::Conn::is_reusable)
    }

    pub(super) fn put_back_lean(&self, addr: SocketAddr, conn: h1::Conn) {
        push(&mut self.stacks().lean, addr, conn);
    }

    /// Sends a request without a body to `addr` over a lean connection; the response body
    /// returns the connection to this pool when it has been read to its end.
    pub async fn send_lean(
        self: &Arc<Self>,
        addr: SocketAddr,
        method: &hyper::Method,
        write_head: &(dyn Fn(&mut Vec<u8>) + Sync),
    ) -> Result<h1::Answer, PoolError> {
        let pooled = self.take_idle_lean(addr);
        let reused = pooled.is_some();
        let conn = match pooled {
            Some(conn) => conn,
            None => h1::Conn::new(self.connect_tcp(addr).await?),
        };
        let answer = match conn.exchange(method, write_head).await {
            Err(e)
                if reused && (e.not_sent() || (e.nothing_received() && method.is_idempotent())) =>
            {
                let conn = h1::Conn::new(self.connect_tcp(addr).await?);
                conn.exchange(method, write_head).await
            }
            other => other,
        };
        let mut answer = answer.map_err(|source| PoolError::Lean { addr, source })?;
        answer.body.on_complete(Arc::clone(self), addr);
        Ok(answer)
    }

    async fn connect_tcp(&self, addr: SocketAddr) -> Result<tokio::net::TcpStream, PoolError> {
        let connect_error = |message: String| PoolError::Connect { addr, message };
        let stream =
            tokio::time::timeout(self.connect_timeout, tokio::net::TcpStream::connect(addr))
                .await
                .map_err(|_| connect_error(format!("no answer within {:?}", self.connect_timeout)))?
                .map_err(|e| connect_error(e.to_string()))?;
        let _ = stream.set_nodelay(true);
        Ok(stream)
    }

    async fn connect(&self, addr: SocketAddr) -> Result<SendRequest<RequestBody>, PoolError> {
        let stream = self.connect_tcp(addr).await?;
        let (sender, conn) =
            http1::handshake(TokioIo::new(stream))
                .await
                .map_err(|e| PoolError::Connect {
                    addr,
                    message: e.to_string(),
                })?;
        // Detached on purpose: the task ends when the app closes the connection or when the
        // last handle (pooled sender, response body) is dropped.
        tokio::spawn(async move {
            if let Err(e) = conn.with_upgrades().await {
                tracing::debug!(%addr, error = %e, "upstream connection ended with an error");
            }
        });
        Ok(sender)
    }

    fn put_back(&self, addr: SocketAddr, sender: SendRequest<RequestBody>) {
        push(&mut self.stacks().hyper, addr, sender);
    }

    /// Drops connections idle too long or closed by the app, and upstreams with none left.
    pub fn sweep(&self) {
        let oldest = self.oldest_allowed();
        let mut stacks = self.stacks();
        prune(&mut stacks.hyper, oldest, |s| !s.is_closed());
        prune(&mut stacks.lean, oldest, h1::Conn::is_reusable);
    }

    /// How many idle connections the pool holds.
    pub fn idle_count(&self) -> usize {
        let stacks = self.stacks();
        stacks.hyper.values().map(Vec::len).sum::<usize>()
            + stacks.lean.values().map(Vec::len).sum::<usize>()
    }
}

impl Lease {
    /// For a response without a body: returns the connection once hyper is done with it.
    pub fn release_when_ready(mut self) {
        tokio::spawn(async move {
            if self.sender.ready().await.is_ok() {
                self.pool.put_back(self.addr, self.sender);
            }
        });
    }

    /// Called when the response has been read to its end: the connection goes back to the
    /// pool as soon as hyper says it can take the next request.
    pub fn release(mut self, cx: &mut Context<'_>) {
        match self.sender.poll_ready(cx) {
            Poll::Ready(Ok(())) => self.pool.put_back(self.addr, self.sender),
            Poll::Ready(Err(_)) => {}
            // Rare: hyper has not yet seen the end of the message. Wait for it off the
            // request path.
            Poll::Pending => {
                tokio::spawn(async move {
                    if self.sender.ready().await.is_ok() {
                        self.pool.put_back(self.addr, self.sender);
                    }
                });
            }
        }
    }
}
