//! The proxy's own HTTP/1.1 server, for the requests most traffic is: HTTP/1.1 (plain, or over
//! TLS when the client did not choose HTTP/2), no body, no upgrade, for a host that has a route
//! (and on plain HTTP, no certificate).
//!
//! hyper's server turns every request head into a `Request` with a header map, runs it through
//! its dispatcher, and encodes the response's header map back into bytes. For these requests
//! the proxy needs none of that: the head is parsed in place (httparse), the app's request is
//! written from the parsed fields, and the app's answer goes back to the client in one write
//! when it is small. Measured against nginx, hyper's share was the proxy's remaining margin.
//!
//! Everything else (a body, an upgrade, HTTP/1.0 or HTTP/2, a head hyper would refuse or answer
//! with an error, ACME challenges and redirects to HTTPS on plain HTTP, unknown hosts) hands the connection
//! over to hyper together with the bytes already read, and hyper serves it from there on. A
//! connection never comes back: the lean path only ever serves a prefix of a connection.

use std::io;
use std::mem::MaybeUninit;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use hyper::body::Body;
use hyper::header::{self, HeaderMap};
use hyper::{Method, Response, StatusCode};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use super::body::ProxyBody;
use super::forward::{Peer, Scheme, write_upstream_head};
use super::{ACME_HTTP01_PREFIX, Worker, h1};
use crate::host;

/// A request head longer than this is left to hyper (which accepts more, or refuses it).
const MAX_HEAD: usize = 16 * 1024;
/// A request with more header fields than this is left to hyper.
const MAX_FIELDS: usize = 64;
/// How long a client may take to send a request head, counted from when the proxy starts
/// waiting for it; also how long a keep-alive connection may sit idle. hyper's default
/// header-read timeout, which the connections hyper serves get.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a connection idle after a request waits for the next one before it is handed
/// back ([`Idle::Return`]).
const IDLE_PAUSE: Duration = Duration::from_millis(50);
/// Response bytes gathered before they are written; a larger piece is written by itself.
const WRITE_AT: usize = 16 * 1024;
/// How much to ask the kernel for per read of a request head.
const READ_SIZE: usize = 4096;

/// How a connection left the lean path.
pub enum Served<S> {
    /// It ended: the client closed it, it timed out or was idle at shutdown, or failed.
    Ended(io::Result<()>),
    /// Its next request needs hyper, which serves the rest of it from these bytes on.
    HandOver(Rewind<S>),
    /// It has been idle for IDLE_PAUSE after a request, with nothing more read (only with
    /// [`Idle::Return`]): the caller keeps it until its client sends again.
    Idle(S),
}

/// What [`serve`] does with a connection that is idle after a request.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Idle {
    /// Waits for the next request itself.
    Wait,
    /// Returns it ([`Served::Idle`]) after IDLE_PAUSE. A connection returned before starts
    /// again so, once its client has sent more: as a new one, whose request is arriving.
    Return,
    /// Returns it as soon as it is idle: for when many connections are open, and the
    /// memory of their tasks in pause outweighs starting one again now and then.
    ReturnAtOnce,
}

impl Idle {
    /// How long an idle connection waits in its task before it is handed back.
    fn pause(self) -> Option<Duration> {
        match self {
            Idle::Wait => None,
            Idle::Return => Some(IDLE_PAUSE),
            Idle::ReturnAtOnce => Some(Duration::ZERO),
        }
    }
}

/// Serves requests on a connection until one needs hyper or the connection ends, or (with
/// `idle` other than [`Idle::Wait`]) until it is idle. After `shutdown`, an idle connection
/// closes; one that has not sent its first request gets `first_request_wait` to send it (see
/// `accept::FIRST_REQUEST_WAIT`).
pub async fn serve<S: LeanStream>(
    worker: Arc<Worker>,
    mut stream: S,
    peer: SocketAddr,
    scheme: Scheme,
    shutdown: CancellationToken,
    first_request_wait: Duration,
    idle_then: Idle,
) -> Served<S> {
    let peer = Peer::new(peer);
    // The buffers are taken when a request's bytes arrive and given back whenever the
    // connection has nothing left to read, so an idle keep-alive connection holds only its
    // socket and this future (issue 16: memory per idle connection).
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    let mut served_any = false;
    loop {
        let step = if buf.is_empty() {
            Step::Partial
        } else {
            // In a box of its own: a request's state (its parsed fields, the exchange with
            // the app, the answer being written) is most of this future's size, and an idle
            // connection needs none of it.
            let lean = Lean {
                worker: &worker,
                peer: &peer,
                scheme,
            };
            Box::pin(lean.step(&mut stream, &mut out, &buf)).await
        };
        match step {
            Step::Partial if buf.len() > MAX_HEAD => break,
            Step::Partial => {
                let idle = served_any && buf.is_empty();
                if buf.is_empty() {
                    buf = BytesMut::new();
                    out = Vec::new();
                }
                // Handed back only after a pause: a busy connection's next request comes
                // within it, and is cheaper served here than by a task started again.
                let pause = if idle { idle_then.pause() } else { None };
                match read_more(
                    &mut stream,
                    &mut buf,
                    &shutdown,
                    idle,
                    first_request_wait,
                    pause,
                )
                .await
                {
                    Ok(More::Read) => {}
                    Ok(More::Paused) => return Served::Idle(stream),
                    Ok(More::Ended) => return Served::Ended(Ok(())),
                    Err(e) => return Served::Ended(Err(e)),
                }
            }
            Step::HandOver => break,
            Step::Served { close: true, .. } => return Served::Ended(stream.shutdown().await),
            Step::Served { head_len, .. } => {
                buf.advance(head_len);
                served_any = true;
            }
            Step::Failed(e) => return Served::Ended(Err(e)),
        }
    }
    Served::HandOver(Rewind::new(buf.freeze(), stream))
}

/// A stream the lean path serves: a plain TCP connection or a TLS one.
pub trait LeanStream: AsyncRead + AsyncWrite + Unpin + Send {
    /// Waits until reading would find bytes, without a buffer to read them into. Streams
    /// that may hold bytes of their own already read from the socket (TLS) answer at once.
    fn readable(&self) -> impl Future<Output = io::Result<()>> + Send;
}

impl LeanStream for TcpStream {
    fn readable(&self) -> impl Future<Output = io::Result<()>> + Send {
        TcpStream::readable(self)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send> LeanStream for tokio_rustls::server::TlsStream<S> {
    // rustls may hold decrypted bytes the socket no longer shows as readable.
    fn readable(&self) -> impl Future<Output = io::Result<()>> + Send {
        std::future::ready(Ok(()))
    }
}

/// What one look at the buffer came to.
enum Step {
    /// No whole head in the buffer yet.
    Partial,
    /// The request at the start of the buffer is one for hyper.
    HandOver,
    Served {
        close: bool,
        head_len: usize,
    },
    Failed(io::Error),
}

/// What a connection's requests share.
struct Lean<'a> {
    worker: &'a Worker,
    peer: &'a Peer,
    scheme: Scheme,
}

impl Lean<'_> {
    /// Serves the request at the start of `buf`, if a whole one is there and it is one for
    /// the lean path.
    async fn step<S: LeanStream>(self, stream: &mut S, out: &mut Vec<u8>, buf: &[u8]) -> Step {
        let mut slots = [const { MaybeUninit::uninit() }; MAX_FIELDS];
        let request = match parse(buf, &mut slots) {
            Next::Partial => return Step::Partial,
            Next::HandOver => return Step::HandOver,
            Next::Lean(request) => request,
        };
        let Some(res) = self.answer(&request).await else {
            return Step::HandOver;
        };
        let head_request = request.method == Method::HEAD;
        match write_response(stream, out, res, head_request, request.close).await {
            Ok(()) => Step::Served {
                close: request.close,
                head_len: request.head_len,
            },
            Err(e) => Step::Failed(e),
        }
    }
}

/// A request head the lean path can serve, its fields still in the connection's buffer.
struct Request<'b> {
    method: Method,
    target: &'b [u8],
    fields: &'b [httparse::Header<'b>],
    /// The normalised host, as routes are keyed.
    host: String,
    /// The client asked to close the connection after this request.
    close: bool,
    head_len: usize,
}

enum Next<'b> {
    /// No whole head in the buffer yet.
    Partial,
    Lean(Request<'b>),
    HandOver,
}

/// Reads the request head at the start of `buf`, if a whole one is there, and whether the
/// lean path can serve it.
fn parse<'b>(buf: &'b [u8], slots: &'b mut [MaybeUninit<httparse::Header<'b>>]) -> Next<'b> {
    let mut parsed = httparse::Request::new(&mut []);
    let head_len = match parsed.parse_with_uninit_headers(buf, slots) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Next::Partial,
        // Malformed, or more fields than MAX_FIELDS: hyper answers or accepts it.
        Err(_) => return Next::HandOver,
    };
    let (Some(method), Some(path), Some(1)) = (parsed.method, parsed.path, parsed.version) else {
        return Next::HandOver;
    };
    let Ok(method) = Method::from_bytes(method.as_bytes()) else {
        return Next::HandOver;
    };
    if method == Method::CONNECT || !path.starts_with('/') {
        return Next::HandOver;
    }
    let mut host = None;
    let mut close = false;
    let mut length = false;
    for field in parsed.headers.iter() {
        let name = field.name.as_bytes();
        if name.eq_ignore_ascii_case(b"host") {
            if host.is_some() {
                return Next::HandOver;
            }
            host = Some(field.value);
        } else if name.eq_ignore_ascii_case(b"content-length") {
            // A second one, even an equal one, would reach the app twice: hyper keeps one.
            if length || field.value.trim_ascii() != b"0" {
                return Next::HandOver;
            }
            length = true;
        } else if name.eq_ignore_ascii_case(b"transfer-encoding")
            || name.eq_ignore_ascii_case(b"upgrade")
        {
            return Next::HandOver;
        } else if name.eq_ignore_ascii_case(b"connection") {
            close |= h1::tokens(field.value).any(|t| t.eq_ignore_ascii_case(b"close"));
        }
    }
    let Some(host) = host
        .and_then(|h| std::str::from_utf8(h).ok())
        .and_then(host::normalize)
    else {
        return Next::HandOver;
    };
    Next::Lean(Request {
        method,
        target: path.as_bytes(),
        fields: parsed.headers,
        host,
        close,
        head_len,
    })
}

impl Lean<'_> {
    /// The app's answer to a lean request, or `None` when the request is one for hyper's
    /// path: on plain HTTP an ACME challenge or a redirect to HTTPS; a host without a route.
    async fn answer(&self, request: &Request<'_>) -> Option<Response<ProxyBody>> {
        let (worker, peer) = (self.worker, self.peer);
        let proxy = &worker.proxy;
        if self.scheme == Scheme::Http
            && (request.target.starts_with(ACME_HTTP01_PREFIX.as_bytes())
                || proxy.certs.has_cert(&request.host))
        {
            return None;
        }
        let route = proxy
            .routes
            .load()
            .for_this_thread()
            .lookup(&request.host)?;
        let handover = proxy.handover_for(&route, peer);
        let write_head = |out: &mut Vec<u8>| {
            write_upstream_head(
                out,
                request.method.as_str().as_bytes(),
                request.target,
                || request.fields.iter().map(|f| (f.name.as_bytes(), f.value)),
                &request.host,
                peer,
                self.scheme,
                handover.as_ref(),
            )
        };
        let logged = super::request_started(&route, || {
            String::from_utf8_lossy(request.target).into_owned()
        });
        let sent = proxy.exchange_lean(
            &worker.pool,
            &route,
            &request.host,
            &request.method,
            &write_head,
        );
        let mut res = sent.await;
        super::request_answered(
            route,
            &mut res,
            logged,
            &request.host,
            &request.method,
            peer,
        );
        Some(res)
    }
}

/// What waiting for more of a request head came to.
enum More {
    Read,
    /// Nothing came within the pause asked for.
    Paused,
    /// The connection is over: the client closed it, it timed out, or it was idle at
    /// shutdown.
    Ended,
}

/// Waits for more of a request head, for at most `pause` when given.
async fn read_more<S: LeanStream>(
    stream: &mut S,
    buf: &mut BytesMut,
    shutdown: &CancellationToken,
    idle: bool,
    first_request_wait: Duration,
    pause: Option<Duration>,
) -> io::Result<More> {
    let timer = tokio::time::sleep(pause.unwrap_or(HEAD_TIMEOUT));
    let mut timer = std::pin::pin!(timer);
    let mut shutting = false;
    loop {
        tokio::select! {
            biased;
            read = read_when_ready(stream, buf) => {
                return read.map(|n| if n > 0 { More::Read } else { More::Ended });
            }
            _ = shutdown.cancelled(), if !shutting => {
                if idle {
                    return Ok(More::Ended);
                }
                shutting = true;
                let by = tokio::time::Instant::now() + first_request_wait;
                if by < timer.deadline() {
                    timer.as_mut().reset(by);
                }
            }
            _ = &mut timer => return Ok(if pause.is_some() { More::Paused } else { More::Ended }),
        }
    }
}

/// Reads what the client has sent, taking a buffer only once there is something to read.
async fn read_when_ready<S: LeanStream>(stream: &mut S, buf: &mut BytesMut) -> io::Result<usize> {
    if buf.capacity() == 0 {
        LeanStream::readable(stream).await?;
    }
    if buf.capacity() - buf.len() < READ_SIZE / 4 {
        buf.reserve(READ_SIZE);
    }
    stream.read_buf(buf).await
}

/// How the response body is delimited for the client.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// The app's `Content-Length` stands, or there is no body (HEAD, 1xx, 204, 304).
    AsIs,
    Length(u64),
    Chunked,
}

/// Writes a response: small ones in one write, larger bodies as they come, flushing what is
/// gathered whenever the body has to wait (so streamed responses are not held back).
async fn write_response<S: LeanStream>(
    stream: &mut S,
    out: &mut Vec<u8>,
    res: Response<ProxyBody>,
    head_request: bool,
    close: bool,
) -> io::Result<()> {
    let (parts, mut body) = res.into_parts();
    let status = parts.status;
    let bodiless = head_request
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED;
    let framing = if bodiless || parts.headers.contains_key(header::CONTENT_LENGTH) {
        Framing::AsIs
    } else if let Some(n) = body.size_hint().exact() {
        Framing::Length(n)
    } else {
        Framing::Chunked
    };
    out.clear();
    out.reserve(READ_SIZE);
    write_head(out, status, &parts.headers, framing, close);
    if !bodiless {
        while let Some(data) = next_data(&mut body, stream, out).await? {
            append_data(stream, out, &data, framing).await?;
        }
        if framing == Framing::Chunked {
            out.extend_from_slice(b"0\r\n\r\n");
        }
    }
    if !out.is_empty() {
        stream.write_all(out).await?;
        out.clear();
    }
    Ok(())
}

fn write_head(
    out: &mut Vec<u8>,
    status: StatusCode,
    headers: &HeaderMap,
    framing: Framing,
    close: bool,
) {
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
    for (name, value) in headers {
        h1::write_field(out, name.as_str().as_bytes(), value.as_bytes());
    }
    if !headers.contains_key(header::DATE) {
        date::with_now(|now| h1::write_field(out, b"date", now));
    }
    match framing {
        Framing::AsIs => {}
        Framing::Length(n) => {
            out.extend_from_slice(b"content-length: ");
            write_number(out, n, 10);
            out.extend_from_slice(b"\r\n");
        }
        Framing::Chunked => out.extend_from_slice(b"transfer-encoding: chunked\r\n"),
    }
    if close {
        out.extend_from_slice(b"connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// The next piece of the body, `None` at its end. Writes what is gathered first when the
/// piece is not there yet.
async fn next_data<S: LeanStream>(
    body: &mut ProxyBody,
    stream: &mut S,
    out: &mut Vec<u8>,
) -> io::Result<Option<Bytes>> {
    loop {
        let ready =
            Pin::new(&mut *body).poll_frame(&mut Context::from_waker(std::task::Waker::noop()));
        let frame = match ready {
            Poll::Ready(frame) => frame,
            Poll::Pending => {
                if !out.is_empty() {
                    stream.write_all(out).await?;
                    out.clear();
                }
                std::future::poll_fn(|cx| Pin::new(&mut *body).poll_frame(cx)).await
            }
        };
        match frame {
            None => return Ok(None),
            Some(Err(e)) => return Err(io::Error::other(e)),
            // Trailers are not passed on (hyper's server drops them for HTTP/1.1 too unless
            // the client asked for them).
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) if data.is_empty() => continue,
                Ok(data) => return Ok(Some(data)),
                Err(_) => continue,
            },
        }
    }
}

async fn append_data<S: LeanStream>(
    stream: &mut S,
    out: &mut Vec<u8>,
    data: &[u8],
    framing: Framing,
) -> io::Result<()> {
    let chunked = framing == Framing::Chunked;
    if chunked {
        write_number(out, data.len() as u64, 16);
        out.extend_from_slice(b"\r\n");
    }
    if out.len() + data.len() <= WRITE_AT {
        out.extend_from_slice(data);
    } else {
        if !out.is_empty() {
            stream.write_all(out).await?;
            out.clear();
        }
        stream.write_all(data).await?;
    }
    if chunked {
        out.extend_from_slice(b"\r\n");
    }
    if out.len() >= WRITE_AT {
        stream.write_all(out).await?;
        out.clear();
    }
    Ok(())
}

/// Appends `n` in `radix` (10 for Content-Length, 16 for chunk sizes).
fn write_number(out: &mut Vec<u8>, mut n: u64, radix: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b"0123456789abcdef"[(n % radix) as usize];
        n /= radix;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

/// The `Date` of responses, formatted once a second per thread (hyper does the same).
mod date {
    use std::cell::RefCell;
    use std::time::{SystemTime, UNIX_EPOCH};

    thread_local! {
        static CACHED: RefCell<(u64, String)> = const { RefCell::new((0, String::new())) };
    }

    pub fn with_now(f: impl FnOnce(&[u8])) {
        let now = SystemTime::now();
        let second = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        CACHED.with_borrow_mut(|(at, text)| {
            if *at != second || text.is_empty() {
                *at = second;
                *text = httpdate::fmt_http_date(now);
            }
            f(text.as_bytes())
        });
    }
}

/// A connection handed to hyper with the bytes the lean path read but did not serve.
pub struct Rewind<S> {
    prefix: Bytes,
    stream: S,
}

impl<S> Rewind<S> {
    fn new(prefix: Bytes, stream: S) -> Rewind<S> {
        Rewind { prefix, stream }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Rewind<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.prefix.is_empty() {
            let n = this.prefix.len().min(buf.remaining());
            buf.put_slice(&this.prefix[..n]);
            this.prefix.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.stream).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Rewind<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

/// The request head parser for the fuzz targets (`fuzz/`, through `crate::fuzzing`): `parse`
/// called exactly as `serve` calls it, its answer copied out of the borrowed buffer.
#[doc(hidden)]
pub(crate) mod fuzzing {
    use std::mem::MaybeUninit;

    use super::{MAX_FIELDS, Next, parse};

    /// What `parse` decided about the bytes at the start of a connection's buffer.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub enum RequestHead {
        Partial,
        HandOver,
        Lean {
            method: String,
            target: Vec<u8>,
            fields: Vec<(String, Vec<u8>)>,
            host: String,
            close: bool,
            head_len: usize,
        },
    }

    pub fn parse_request_head(buf: &[u8]) -> RequestHead {
        let mut slots = [const { MaybeUninit::uninit() }; MAX_FIELDS];
        match parse(buf, &mut slots) {
            Next::Partial => RequestHead::Partial,
            Next::HandOver => RequestHead::HandOver,
            Next::Lean(r) => RequestHead::Lean {
                method: r.method.as_str().to_owned(),
                target: r.target.to_vec(),
                fields: r
                    .fields
                    .iter()
                    .map(|f| (f.name.to_owned(), f.value.to_vec()))
                    .collect(),
                host: r.host,
                close: r.close,
                head_len: r.head_len,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ProxyConfig, TlsMode};
    use crate::proxy::routes::{Owner, RouteSpec};
    use crate::proxy::{Proxy, service};
    use crate::server::accept;
    use tokio::net::TcpListener;
    use tokio::sync::oneshot;

    /// An app that answers every request with its method, target and body, on any number of
    /// keep-alive connections.
    async fn echo_app() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let (mut socket, _) = listener.accept().await.unwrap();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    while let Some((head, body)) = read_message(&mut socket, &mut buf, false).await
                    {
                        let line = head.lines().next().unwrap_or("").to_owned();
                        let mut words = line.split(' ');
                        let said = format!(
                            "{} {} {}",
                            words.next().unwrap_or(""),
                            words.next().unwrap_or(""),
                            String::from_utf8_lossy(&body)
                        );
                        let answer = format!(
                            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{said}",
                            said.len()
                        );
                        if socket.write_all(answer.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        addr
    }

    /// An app on one connection that answers each request with the next of `answers`,
    /// written as given; a `|` in an answer waits for the next of `go` before the rest.
    /// Closes after the last answer.
    async fn scripted_app(
        answers: Vec<&'static str>,
        mut go: Vec<oneshot::Receiver<()>>,
    ) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut buf = Vec::new();
            for answer in answers {
                read_message(&mut socket, &mut buf, true).await.unwrap();
                for (i, part) in answer.split('|').enumerate() {
                    if i > 0 {
                        go.remove(0).await.unwrap();
                    }
                    socket.write_all(part.as_bytes()).await.unwrap();
                }
            }
        });
        addr
    }

    /// Reads one message (request or response) with its body: by `Content-Length`, chunked,
    /// or none. `None` when the peer closed first.
    async fn read_message(
        socket: &mut TcpStream,
        buf: &mut Vec<u8>,
        bodiless: bool,
    ) -> Option<(String, Vec<u8>)> {
        let head_end = loop {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break end + 4;
            }
            fill(socket, buf).await?;
        };
        let head = String::from_utf8(buf.drain(..head_end).collect()).unwrap();
        let field = |name: &str| {
            head.lines().find_map(|l| {
                let (n, v) = l.split_once(':')?;
                n.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
            })
        };
        let mut body = Vec::new();
        if bodiless {
        } else if let Some(len) = field("content-length") {
            let len: usize = len.parse().unwrap();
            while buf.len() < len {
                fill(socket, buf).await?;
            }
            body = buf.drain(..len).collect();
        } else if field("transfer-encoding").is_some_and(|v| v == "chunked") {
            loop {
                let (used, size) = loop {
                    if let Ok(httparse::Status::Complete(c)) = httparse::parse_chunk_size(buf) {
                        break c;
                    }
                    fill(socket, buf).await?;
                };
                let size = size as usize;
                while buf.len() < used + size + 2 {
                    fill(socket, buf).await?;
                }
                body.extend_from_slice(&buf[used..used + size]);
                buf.drain(..used + size + 2);
                if size == 0 {
                    break;
                }
            }
        }
        Some((head, body))
    }

    async fn fill(socket: &mut TcpStream, buf: &mut Vec<u8>) -> Option<()> {
        let mut chunk = [0u8; 4096];
        let n = socket.read(&mut chunk).await.ok()?;
        buf.extend_from_slice(&chunk[..n]);
        (n > 0).then_some(())
    }

    /// The proxy's plain listener as the daemon runs it, with `a.test` routed to `app`.
    /// Returns its address, its shutdown, and a receiver told of each accepted connection.
    async fn proxy_to(
        app: SocketAddr,
    ) -> (
        SocketAddr,
        CancellationToken,
        tokio::sync::mpsc::UnboundedReceiver<()>,
    ) {
        let proxy = Arc::new(Proxy::new(
            &ProxyConfig::default(),
            None,
            tokio_util::sync::CancellationToken::new(),
        ));
        proxy.routes.replace(vec![RouteSpec {
            host: "a.test".into(),
            upstreams: vec![app],
            tls: TlsMode::None,
            owner: Owner::Config,
        }]);
        let worker = Worker::new(proxy);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        let (_probe, probes) = accept::probe("http");
        let (accepted_tx, accepted) = tokio::sync::mpsc::unbounded_channel();
        let w = Arc::clone(&worker);
        tokio::spawn(accept::serve(
            "http",
            accept::Source::Listener(listener),
            None,
            Some(worker),
            move |peer| {
                let _ = accepted_tx.send(());
                service(Arc::clone(&w), peer, Scheme::Http)
            },
            probes,
            shutdown.clone(),
            Duration::from_secs(5),
        ));
        (addr, shutdown, accepted)
    }

    async fn response(client: &mut TcpStream, buf: &mut Vec<u8>, head: bool) -> (String, String) {
        let (h, b) = tokio::time::timeout(Duration::from_secs(5), read_message(client, buf, head))
            .await
            .expect("no answer in time")
            .expect("connection closed before the answer");
        (h, String::from_utf8(b).unwrap())
    }

    #[test]
    fn lengths_are_written_in_decimal_and_chunk_sizes_in_hex() {
        for (n, radix, want) in [
            (0, 10, "0"),
            (1234, 10, "1234"),
            (u64::MAX, 10, "18446744073709551615"),
            (0, 16, "0"),
            (255, 16, "ff"),
            (16384, 16, "4000"),
        ] {
            let mut out = Vec::new();
            write_number(&mut out, n, radix);
            assert_eq!(out, want.as_bytes());
        }
    }

    #[tokio::test]
    async fn pipelined_requests_are_answered_in_order_and_a_body_goes_over_to_hyper() {
        let (proxy, _shutdown, _) = proxy_to(echo_app().await).await;
        let mut client = TcpStream::connect(proxy).await.unwrap();
        client
            .write_all(
                b"GET /a HTTP/1.1\r\nHost: a.test\r\n\r\n\
                  GET /b?x=1 HTTP/1.1\r\nhost: A.test:80\r\ncontent-length: 0\r\n\r\n\
                  POST /c HTTP/1.1\r\nHost: a.test\r\nContent-Length: 5\r\n\r\nhello\
                  GET /d HTTP/1.1\r\nHost: a.test\r\n\r\n",
            )
            .await
            .unwrap();
        let mut buf = Vec::new();
        for want in ["GET /a ", "GET /b?x=1 ", "POST /c hello", "GET /d "] {
            let (head, body) = response(&mut client, &mut buf, false).await;
            assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
            assert_eq!(body, want);
        }
    }

    #[tokio::test]
    async fn chunked_and_until_close_answers_reach_the_client_chunked() {
        let app = scripted_app(
            vec![
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
                "HTTP/1.1 200 OK\r\nx-kind: until-close\r\n\r\nbye-bye",
            ],
            Vec::new(),
        )
        .await;
        let (proxy, _shutdown, _) = proxy_to(app).await;
        let mut client = TcpStream::connect(proxy).await.unwrap();
        let mut buf = Vec::new();
        for (path, want) in [("/1", "hello world"), ("/2", "bye-bye")] {
            let request = format!("GET {path} HTTP/1.1\r\nHost: a.test\r\n\r\n");
            client.write_all(request.as_bytes()).await.unwrap();
            let (head, body) = response(&mut client, &mut buf, false).await;
            let head = head.to_ascii_lowercase();
            assert!(head.contains("transfer-encoding: chunked\r\n"), "{head}");
            assert!(!head.contains("content-length"), "{head}");
            assert!(head.contains("date: "), "{head}");
            assert_eq!(body, want);
        }
    }

    #[tokio::test]
    async fn a_streamed_answer_is_passed_on_before_it_ends() {
        let (go, wait) = oneshot::channel();
        let app = scripted_app(
            vec!["HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nfirst|after"],
            vec![wait],
        )
        .await;
        let (proxy, _shutdown, _) = proxy_to(app).await;
        let mut client = TcpStream::connect(proxy).await.unwrap();
        client
            .write_all(b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n")
            .await
            .unwrap();
        let mut buf = Vec::new();
        while !buf.ends_with(b"first") {
            tokio::time::timeout(Duration::from_secs(5), fill(&mut client, &mut buf))
                .await
                .expect("the first piece was held back")
                .expect("closed");
        }
        go.send(()).unwrap();
        while !buf.ends_with(b"firstafter") {
            fill(&mut client, &mut buf).await.expect("closed");
        }
    }

    #[tokio::test]
    async fn head_keeps_the_apps_length_and_connection_close_closes() {
        let app = scripted_app(
            vec![
                "HTTP/1.1 200 OK\r\ncontent-length: 42\r\n\r\n",
                "HTTP/1.1 204 No Content\r\n\r\n",
            ],
            Vec::new(),
        )
        .await;
        let (proxy, _shutdown, _) = proxy_to(app).await;
        let mut client = TcpStream::connect(proxy).await.unwrap();
        let mut buf = Vec::new();
        client
            .write_all(b"HEAD / HTTP/1.1\r\nHost: a.test\r\n\r\n")
            .await
            .unwrap();
        let (head, _) = response(&mut client, &mut buf, true).await;
        assert!(head.contains("content-length: 42\r\n"), "{head}");
        client
            .write_all(b"GET / HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let (head, _) = response(&mut client, &mut buf, true).await;
        assert!(head.starts_with("HTTP/1.1 204 No Content\r\n"), "{head}");
        assert!(head.contains("connection: close\r\n"), "{head}");
        let closed =
            tokio::time::timeout(Duration::from_secs(5), fill(&mut client, &mut buf)).await;
        assert_eq!(closed.expect("still open"), None);
        assert!(buf.is_empty(), "bytes after a HEAD or 204 answer: {buf:?}");
    }

    #[tokio::test]
    async fn at_shutdown_an_idle_connection_closes_and_an_early_one_is_answered() {
        let (proxy, shutdown, mut accepted) = proxy_to(echo_app().await).await;
        let mut idle = TcpStream::connect(proxy).await.unwrap();
        let mut buf = Vec::new();
        idle.write_all(b"GET /1 HTTP/1.1\r\nHost: a.test\r\n\r\n")
            .await
            .unwrap();
        response(&mut idle, &mut buf, false).await;
        let mut early = TcpStream::connect(proxy).await.unwrap();
        accepted.recv().await.unwrap();
        accepted.recv().await.unwrap();
        shutdown.cancel();
        let closed = tokio::time::timeout(Duration::from_secs(5), fill(&mut idle, &mut buf)).await;
        assert_eq!(closed.expect("the idle connection stayed open"), None);
        tokio::time::sleep(Duration::from_millis(100)).await;
        early
            .write_all(b"GET /2 HTTP/1.1\r\nHost: a.test\r\n\r\n")
            .await
            .unwrap();
        let (_, body) = response(&mut early, &mut Vec::new(), false).await;
        assert_eq!(body, "GET /2 ");
    }
    /// Idle for longer than IDLE_PAUSE, a connection waits in the accept loop's lot
    /// (`server::park`) without a task; it is answered when it asks again, and a request
    /// arriving as the proxy shuts down is answered too, while an idle one closes.
    #[tokio::test]
    async fn a_connection_idle_for_a_while_is_answered_again_and_closes_at_shutdown() {
        let (proxy, shutdown, _) = proxy_to(echo_app().await).await;
        let mut buf = Vec::new();
        let mut asks = TcpStream::connect(proxy).await.unwrap();
        let mut idle = TcpStream::connect(proxy).await.unwrap();
        for (n, client) in [&mut asks, &mut idle].into_iter().enumerate() {
            let ask = format!("GET /{n} HTTP/1.1\r\nHost: a.test\r\n\r\n");
            client.write_all(ask.as_bytes()).await.unwrap();
            let (_, body) = response(client, &mut buf, false).await;
            assert_eq!(body, format!("GET /{n} "));
        }
        for round in 0..3 {
            tokio::time::sleep(IDLE_PAUSE * 2).await;
            let ask = format!("GET /again{round} HTTP/1.1\r\nHost: a.test\r\n\r\n");
            asks.write_all(ask.as_bytes()).await.unwrap();
            let (_, body) = response(&mut asks, &mut buf, false).await;
            assert_eq!(body, format!("GET /again{round} "));
        }
        tokio::time::sleep(IDLE_PAUSE * 2).await;
        asks.write_all(b"GET /last HTTP/1.1\r\nHost: a.test\r\n\r\n")
            .await
            .unwrap();
        shutdown.cancel();
        let (_, body) = response(&mut asks, &mut buf, false).await;
        assert_eq!(body, "GET /last ");
        let closed = tokio::time::timeout(Duration::from_secs(5), fill(&mut idle, &mut buf)).await;
        assert_eq!(closed.expect("the idle connection stayed open"), None);
    }
}
