//! Bodies on their way through the proxy: streamed frame by frame, never buffered whole,
//! with bytes counted for the route's metrics and a stall (idle) timeout on responses.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use tokio::time::{Instant, Sleep};

use super::h1;
use super::metrics::RouteMetrics;
use super::pool::Lease;
use super::routes::RouteRef;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What the proxy sends to its clients: an app's response, or a page of its own.
pub enum ProxyBody {
    Page(Option<Bytes>),
    Upstream(UpstreamBody),
}

impl ProxyBody {
    pub fn page(text: impl Into<Bytes>) -> ProxyBody {
        ProxyBody::Page(Some(text.into()))
    }

    pub fn empty() -> ProxyBody {
        ProxyBody::Page(None)
    }
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            ProxyBody::Page(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            ProxyBody::Upstream(body) => Pin::new(body).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ProxyBody::Page(bytes) => bytes.is_none(),
            ProxyBody::Upstream(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ProxyBody::Page(Some(b)) => SizeHint::with_exact(b.len() as u64),
            ProxyBody::Page(None) => SizeHint::with_exact(0),
            ProxyBody::Upstream(body) => body.size_hint(),
        }
    }
}

/// An app's response body, counted, cut when it stalls longer than `idle`. Once read to its
/// end its connection goes back to the pool.
pub struct UpstreamBody {
    inner: Inner,
    /// Whose counters the bytes go to; handed over by the proxy once the response is ready
    /// (moved, not cloned: a clone is an atomic on a line every worker touches).
    route: Option<RouteRef>,
    idle: Duration,
    /// Data arrived since the timer was last set. The clock is read only when the body has to
    /// wait, so a response that arrives whole never touches it or the timer.
    active: bool,
    timer: Option<Pin<Box<Sleep>>>,
}

/// The two kinds of connection a response can arrive on (see the pool).
enum Inner {
    Hyper {
        body: Incoming,
        lease: Option<Lease>,
    },
    /// Hands its connection back by itself.
    Lean(h1::ResponseBody),
}

impl UpstreamBody {
    pub fn new(inner: Incoming, idle: Duration, lease: Lease) -> UpstreamBody {
        Self::with(
            Inner::Hyper {
                body: inner,
                lease: Some(lease),
            },
            idle,
        )
    }

    pub fn lean(body: h1::ResponseBody, idle: Duration) -> UpstreamBody {
        Self::with(Inner::Lean(body), idle)
    }

    fn with(inner: Inner, idle: Duration) -> UpstreamBody {
        UpstreamBody {
            inner,
            route: None,
            idle,
            active: true,
            timer: None,
        }
    }

    /// Counts the bytes of this body for `route`.
    pub fn count_for(&mut self, route: RouteRef) {
        self.route = Some(route);
    }

    fn poll_inner(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match &mut self.inner {
            Inner::Hyper { body, lease } => {
                let frame = ready!(Pin::new(&mut *body).poll_frame(cx));
                match &frame {
                    // hyper stops polling once the body says it has ended.
                    Some(Ok(_)) if body.is_end_stream() => release(lease, cx),
                    None => release(lease, cx),
                    // A connection that failed mid-body is not reused.
                    Some(Err(_)) => *lease = None,
                    Some(Ok(_)) => {}
                }
                Poll::Ready(frame.map(|f| f.map_err(Into::into)))
            }
            Inner::Lean(body) => Pin::new(body)
                .poll_frame(cx)
                .map(|f| f.map(|f| f.map_err(Into::into))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.inner {
            Inner::Hyper { body, .. } => body.is_end_stream(),
            Inner::Lean(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            Inner::Hyper { body, .. } => body.size_hint(),
            Inner::Lean(body) => body.size_hint(),
        }
    }

    /// Drops the connection: it must not carry another request.
    fn abandon(&mut self) {
        if let Inner::Hyper { lease, .. } = &mut self.inner {
            *lease = None;
        }
        // A lean body holds its connection and drops it with itself.
    }
}

/// Returns a hyper connection to the pool; only once the whole response has been read.
fn release(lease: &mut Option<Lease>, cx: &mut Context<'_>) {
    if let Some(lease) = lease.take() {
        lease.release(cx);
    }
}

#[derive(Debug, thiserror::Error)]
#[error("the app sent nothing for {0:?}; response cut")]
pub struct IdleTimeout(Duration);

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        match this.poll_inner(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    if let Some(route) = &this.route {
                        route.metrics.count_out(data.len());
                    }
                }
                this.active = true;
                Poll::Ready(Some(Ok(frame)))
            }
            other @ Poll::Ready(_) => other,
            Poll::Pending => {
                if std::mem::take(&mut this.active) {
                    let deadline = Instant::now() + this.idle;
                    match &mut this.timer {
                        Some(timer) => timer.as_mut().reset(deadline),
                        None => this.timer = Some(Box::pin(tokio::time::sleep_until(deadline))),
                    }
                }
                let timer = this
                    .timer
                    .as_mut()
                    .expect("the timer is set on the first wait");
                ready!(timer.as_mut().poll(cx));
                this.abandon();
                Poll::Ready(Some(Err(IdleTimeout(this.idle).into())))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        UpstreamBody::is_end_stream(self)
    }

    fn size_hint(&self) -> SizeHint {
        UpstreamBody::size_hint(self)
    }
}

/// A failure reading the client's request body (a malformed chunk, a body cut short). It is
/// the client's fault, and is told apart from a failure of the app's connection so that the
/// client gets 400, not a 502 blaming the app.
#[derive(Debug, thiserror::Error)]
#[error("reading the client's request body: {0}")]
pub struct ClientBodyError(#[source] hyper::Error);

impl ClientBodyError {
    /// Whether `e` or one of its causes is a failure of the client's body.
    pub fn caused(e: &(dyn std::error::Error + 'static)) -> bool {
        let mut cause = Some(e);
        while let Some(e) = cause {
            if e.is::<ClientBodyError>() {
                return true;
            }
            cause = e.source();
        }
        false
    }
}

/// A client's request body on its way to an app.
pub enum RequestBody {
    Empty,
    Stream {
        inner: Incoming,
        metrics: Arc<RouteMetrics>,
    },
    /// A body that can be taken back if the connection to the app could not even be
    /// established, so the request can go to another replica. It moves out of the slot on its
    /// first poll; after that it is committed to this upstream.
    Reclaimable {
        slot: Arc<Mutex<Option<Incoming>>>,
        taken: Option<Incoming>,
        metrics: Arc<RouteMetrics>,
        hint: SizeHint,
    },
}

impl RequestBody {
    pub fn reclaimable(
        slot: &Arc<Mutex<Option<Incoming>>>,
        metrics: &Arc<RouteMetrics>,
    ) -> RequestBody {
        let hint = slot
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map(|b| b.size_hint())
            .unwrap_or_default();
        RequestBody::Reclaimable {
            slot: Arc::clone(slot),
            taken: None,
            metrics: Arc::clone(metrics),
            hint,
        }
    }
}

fn count_in(metrics: &RouteMetrics, frame: &Frame<Bytes>) {
    if let Some(data) = frame.data_ref() {
        metrics.count_in(data.len());
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = ClientBodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, ClientBodyError>>> {
        match self.get_mut() {
            RequestBody::Empty => Poll::Ready(None),
            RequestBody::Stream { inner, metrics } => {
                let frame = ready!(Pin::new(inner).poll_frame(cx));
                if let Some(Ok(f)) = &frame {
                    count_in(metrics, f);
                }
                Poll::Ready(frame.map(|f| f.map_err(ClientBodyError)))
            }
            RequestBody::Reclaimable {
                slot,
                taken,
                metrics,
                ..
            } => {
                if taken.is_none() {
                    *taken = slot.lock().unwrap_or_else(|e| e.into_inner()).take();
                }
                let Some(inner) = taken else {
                    return Poll::Ready(None);
                };
                let frame = ready!(Pin::new(inner).poll_frame(cx));
                if let Some(Ok(f)) = &frame {
                    count_in(metrics, f);
                }
                Poll::Ready(frame.map(|f| f.map_err(ClientBodyError)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            RequestBody::Empty => true,
            RequestBody::Stream { inner, .. } => inner.is_end_stream(),
            RequestBody::Reclaimable { taken, .. } => {
                taken.as_ref().is_some_and(|b| b.is_end_stream())
            }
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            RequestBody::Empty => SizeHint::with_exact(0),
            RequestBody::Stream { inner, .. } => inner.size_hint(),
            RequestBody::Reclaimable { taken, hint, .. } => {
                taken.as_ref().map(|b| b.size_hint()).unwrap_or(*hint)
            }
        }
    }
}
