//! Bodies on their way through the proxy: streamed frame by frame, never buffered whole,
//! with bytes counted for the route's metrics and a stall (idle) timeout on responses.

use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use tokio::time::{Instant, Sleep};

use super::metrics::RouteMetrics;
use super::pool::Lease;

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
            ProxyBody::Upstream(body) => body.inner.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ProxyBody::Page(Some(b)) => SizeHint::with_exact(b.len() as u64),
            ProxyBody::Page(None) => SizeHint::with_exact(0),
            ProxyBody::Upstream(body) => body.inner.size_hint(),
        }
    }
}

/// An app's response body, counted, cut when it stalls longer than `idle`. Once read to its
/// end it hands its connection back to the pool.
pub struct UpstreamBody {
    inner: Incoming,
    metrics: Arc<RouteMetrics>,
    idle: Duration,
    last_activity: Instant,
    // Created only when the body first has to wait, so quick responses never touch the timer.
    timer: Option<Pin<Box<Sleep>>>,
    lease: Option<Lease>,
}

impl UpstreamBody {
    pub fn new(
        inner: Incoming,
        metrics: Arc<RouteMetrics>,
        idle: Duration,
        lease: Lease,
    ) -> UpstreamBody {
        UpstreamBody {
            inner,
            metrics,
            idle,
            last_activity: Instant::now(),
            timer: None,
            lease: Some(lease),
        }
    }

    /// Returns the connection to the pool; only once the whole response has been read.
    fn release(&mut self, cx: &mut Context<'_>) {
        if let Some(lease) = self.lease.take() {
            lease.release(cx);
        }
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
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.metrics
                        .bytes_out
                        .fetch_add(data.len() as u64, Ordering::Relaxed);
                }
                this.last_activity = Instant::now();
                // hyper stops polling once the body says it has ended.
                if this.inner.is_end_stream() {
                    this.release(cx);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                // A connection that failed mid-body is not reused.
                this.lease = None;
                Poll::Ready(Some(Err(e.into())))
            }
            Poll::Ready(None) => {
                this.release(cx);
                Poll::Ready(None)
            }
            Poll::Pending => {
                let deadline = this.last_activity + this.idle;
                let timer = this
                    .timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                if timer.deadline() != deadline {
                    timer.as_mut().reset(deadline);
                }
                ready!(timer.as_mut().poll(cx));
                this.lease = None;
                Poll::Ready(Some(Err(IdleTimeout(this.idle).into())))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
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
        metrics
            .bytes_in
            .fetch_add(data.len() as u64, Ordering::Relaxed);
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match self.get_mut() {
            RequestBody::Empty => Poll::Ready(None),
            RequestBody::Stream { inner, metrics } => {
                let frame = ready!(Pin::new(inner).poll_frame(cx));
                if let Some(Ok(f)) = &frame {
                    count_in(metrics, f);
                }
                Poll::Ready(frame)
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
                Poll::Ready(frame)
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
