//! A lean HTTP/1.1 exchange with an app, for the request most traffic is: no body, no upgrade.
//!
//! hyper's client connection runs in a task of its own and talks to the request through
//! channels: the request is queued to that task, the response head and every body chunk come
//! back through further channels, each a wake-up of another task. Measured against nginx that
//! cost the proxy its margin. Here the request's own task writes the head and parses the answer
//! (httparse), and the response body reads the socket directly as the client consumes it.
//! Requests with a body and upgrades keep going through hyper, which writes the body while it
//! reads an early answer and hands over the upgraded connection.
//!
//! Framing follows RFC 9112 section 6.3: no body after HEAD, 1xx, 204 and 304; chunked when
//! `Transfer-Encoding` ends in chunked; otherwise `Content-Length`; otherwise until the app
//! closes. A connection goes back to the pool only when its response was read exactly to its
//! end, it is HTTP/1.1 and nobody said `Connection: close`.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::{Buf, Bytes, BytesMut};
use hyper::body::{Body, Frame, SizeHint};
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::{Method, Response, StatusCode, Version};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::forward::HOP_BY_HOP;
use super::pool::Pool;

/// The most header bytes accepted from an app before its answer is refused.
const MAX_HEAD: usize = 64 * 1024;
/// The most headers in one response (hyper's default is 100 as well).
const MAX_HEADERS: usize = 100;
/// A chunk-size line or a trailer section longer than this is not HTTP an app would send.
const MAX_CHUNK_LINE: usize = 4096;
const MAX_TRAILERS: usize = 16 * 1024;
/// How much to ask the kernel for per read of a body.
const READ_SIZE: usize = 16 * 1024;
/// Pieces smaller than this are copied out of the read buffer, so that it stays the
/// connection's own and is reused for the next answer instead of allocated again.
const COPY_BELOW: usize = 4096;

/// What went wrong talking to the app.
#[derive(Debug, thiserror::Error)]
pub enum H1Error {
    #[error("writing the request: {0}")]
    Write(#[source] io::Error),
    #[error("reading the response: {0}")]
    Read(#[source] io::Error),
    #[error("the app closed the connection before answering")]
    ClosedBeforeAnswer,
    #[error("the app closed the connection in the middle of its answer")]
    ClosedEarly,
    #[error("invalid response from the app: {0}")]
    Invalid(String),
}

impl H1Error {
    /// Whether nothing of an answer arrived: on a reused connection the app may have closed it
    /// just as the request went out, and a fresh connection can try again.
    pub fn nothing_received(&self) -> bool {
        matches!(self, H1Error::Write(_) | H1Error::ClosedBeforeAnswer)
            || matches!(self, H1Error::Read(e) if e.kind() == io::ErrorKind::ConnectionReset)
    }

    /// Whether the request surely did not reach the app.
    pub fn not_sent(&self) -> bool {
        matches!(self, H1Error::Write(_))
    }
}

fn invalid(what: impl Into<String>) -> H1Error {
    H1Error::Invalid(what.into())
}

/// A keep-alive connection to an app, with what has been read from it but not yet used.
pub struct Conn {
    stream: TcpStream,
    buf: BytesMut,
    /// The request head being written, kept for the next request.
    out: Vec<u8>,
}

impl Conn {
    pub fn new(stream: TcpStream) -> Conn {
        Conn {
            stream,
            buf: BytesMut::new(),
            out: Vec::new(),
        }
    }

    /// Whether an idle connection can carry another request: the app sent nothing and did not
    /// close it while it sat in the pool. Costs no system call unless the socket turned
    /// readable since its last read.
    pub fn is_reusable(&self) -> bool {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        match self.stream.poll_read_ready(&mut cx) {
            Poll::Pending => true,
            Poll::Ready(Err(_)) => false,
            Poll::Ready(Ok(())) => {
                let mut byte = [0u8; 1];
                matches!(self.stream.try_read(&mut byte), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
            }
        }
    }

    /// Sends a request without a body, its head written by `write_head`, and reads the
    /// response head.
    pub async fn exchange(
        mut self,
        method: &Method,
        write_head: &(dyn Fn(&mut Vec<u8>) + Sync),
    ) -> Result<Answer, H1Error> {
        self.out.clear();
        write_head(&mut self.out);
        self.stream
            .write_all(&self.out)
            .await
            .map_err(H1Error::Write)?;
        let mut received_any = false;
        loop {
            if let Some(parsed) = self.parse_head(method)? {
                match parsed {
                    Parsed::Informational => {
                        received_any = true;
                        continue;
                    }
                    Parsed::Final(response, framing, keep_alive) => {
                        let body = ResponseBody::new(self, framing, keep_alive);
                        return Ok(Answer { response, body });
                    }
                }
            }
            if self.buf.len() > MAX_HEAD {
                return Err(invalid(format!(
                    "response head longer than {MAX_HEAD} bytes"
                )));
            }
            received_any |= !self.buf.is_empty();
            self.buf.reserve(READ_SIZE);
            let n = tokio::io::AsyncReadExt::read_buf(&mut self.stream, &mut self.buf)
                .await
                .map_err(H1Error::Read)?;
            if n == 0 {
                return Err(if received_any || !self.buf.is_empty() {
                    H1Error::ClosedEarly
                } else {
                    H1Error::ClosedBeforeAnswer
                });
            }
        }
    }

    /// Parses a response head from the buffer, consuming it, if a whole one is there.
    fn parse_head(&mut self, method: &Method) -> Result<Option<Parsed>, H1Error> {
        let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut parsed = httparse::Response::new(&mut slots);
        let len = match parsed.parse(&self.buf) {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(e) => return Err(invalid(e.to_string())),
        };
        let code = parsed.code.unwrap_or_default();
        let status = StatusCode::from_u16(code).map_err(|_| invalid(format!("status {code}")))?;
        let version = match parsed.version {
            Some(1) => Version::HTTP_11,
            _ => Version::HTTP_10,
        };
        // Where each name and value sits in the head, so the values can be slices of it.
        let base = self.buf.as_ptr() as usize;
        let at = |s: &[u8]| (s.as_ptr() as usize - base, s.len());
        let mut fields = [((0, 0), (0, 0)); MAX_HEADERS];
        let count = parsed.headers.len();
        for (field, h) in fields.iter_mut().zip(parsed.headers.iter()) {
            *field = (at(h.name.as_bytes()), at(h.value));
        }
        let head = take(&mut self.buf, len);
        if status.is_informational() && status != StatusCode::SWITCHING_PROTOCOLS {
            return Ok(Some(Parsed::Informational));
        }
        // Hop-by-hop fields (RFC 9110 7.6.1) are read for what they say about this connection
        // and left out of the head the client gets.
        let mut headers = HeaderMap::with_capacity(count);
        let mut close = false;
        let mut chunked_last: Option<bool> = None;
        let mut named: Vec<HeaderName> = Vec::new();
        for &((name_at, name_len), (value_at, value_len)) in &fields[..count] {
            let name = HeaderName::from_bytes(&head[name_at..name_at + name_len])
                .map_err(|_| invalid("a header name is not valid"))?;
            let raw = &head[value_at..value_at + value_len];
            if name == header::CONNECTION {
                for token in tokens(raw) {
                    if token.eq_ignore_ascii_case(b"close") {
                        close = true;
                    } else if token.eq_ignore_ascii_case(b"keep-alive") {
                        // Names only a header that is hop-by-hop already.
                    } else if let Ok(other) = HeaderName::from_bytes(token) {
                        named.push(other);
                    }
                }
                continue;
            }
            if name == header::TRANSFER_ENCODING {
                if let Some(last) = tokens(raw).last() {
                    chunked_last = Some(last.eq_ignore_ascii_case(b"chunked"));
                }
                continue;
            }
            if HOP_BY_HOP.contains(&name) {
                continue;
            }
            let value = HeaderValue::from_maybe_shared(head.slice(value_at..value_at + value_len))
                .map_err(|_| invalid(format!("value of header {name}")))?;
            headers.append(name, value);
        }
        for name in named {
            headers.remove(name);
        }
        if chunked_last.is_some() {
            // Transfer-Encoding overrides Content-Length, and a proxy removes the latter
            // before forwarding (RFC 9112 6.3): the client must not frame by it.
            headers.remove(header::CONTENT_LENGTH);
        }
        let length = match chunked_last {
            Some(_) => None,
            None => content_length(&mut headers)?,
        };
        let framing = framing_of(method, status, chunked_last, length);
        let keep_alive =
            version == Version::HTTP_11 && !close && !matches!(framing, Framing::UntilClose);
        let mut response = Response::new(());
        *response.status_mut() = status;
        *response.version_mut() = version;
        *response.headers_mut() = headers;
        Ok(Some(Parsed::Final(response, framing, keep_alive)))
    }
}

enum Parsed {
    Informational,
    Final(Response<()>, Framing, bool),
}

/// An app's response head, and its body still to be read from the connection.
pub struct Answer {
    pub response: Response<()>,
    pub body: ResponseBody,
}

/// How the response body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    Empty,
    Length(u64),
    Chunked,
    UntilClose,
}

/// `chunked_last`: whether the response had `Transfer-Encoding`, and if so whether its last
/// coding is chunked; `length`: its `Content-Length`.
fn framing_of(
    method: &Method,
    status: StatusCode,
    chunked_last: Option<bool>,
    length: Option<u64>,
) -> Framing {
    if method == Method::HEAD
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        return Framing::Empty;
    }
    match (chunked_last, length) {
        (Some(true), _) => Framing::Chunked,
        (Some(false), _) | (None, None) => Framing::UntilClose,
        (None, Some(0)) => Framing::Empty,
        (None, Some(n)) => Framing::Length(n),
    }
}

/// The response's `Content-Length`: every field and list element digits only, all the same
/// (RFC 9110 8.6). Anything else but one plain number (two fields, a list, a sign) is
/// replaced by one field with the number, so that nobody after the proxy can read a length
/// the proxy did not frame the body by.
fn content_length(headers: &mut HeaderMap) -> Result<Option<u64>, H1Error> {
    let mut length = None;
    let mut plain = true;
    for value in headers.get_all(header::CONTENT_LENGTH) {
        for part in value.as_bytes().split(|&b| b == b',') {
            let part = part.trim_ascii();
            let n: u64 = Some(part)
                .filter(|p| !p.is_empty() && p.iter().all(u8::is_ascii_digit))
                .and_then(|p| std::str::from_utf8(p).ok()?.parse().ok())
                .ok_or_else(|| invalid("Content-Length is not a number"))?;
            if length.is_some_and(|l| l != n) {
                return Err(invalid("conflicting Content-Length headers"));
            }
            plain &= length.is_none() && part.len() == value.len();
            length = Some(n);
        }
    }
    if let (Some(n), false) = (length, plain) {
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(n));
    }
    Ok(length)
}

/// The comma-separated tokens of a field value, trimmed, empty ones skipped.
pub(super) fn tokens(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|&b| b == b',')
        .map(|t| t.trim_ascii())
        .filter(|t| !t.is_empty())
}

/// One `name: value` line.
pub fn write_field(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// The first `n` buffered bytes, copied when small (see `COPY_BELOW`).
fn take(buf: &mut BytesMut, n: usize) -> Bytes {
    if n < COPY_BELOW {
        let bytes = Bytes::copy_from_slice(&buf[..n]);
        buf.advance(n);
        bytes
    } else {
        buf.split_to(n).freeze()
    }
}

/// Where the body reader is in the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// This many bytes of a `Content-Length` body are still to come.
    Length(u64),
    UntilClose,
    /// Expecting a chunk-size line.
    ChunkSize,
    /// This many bytes of the current chunk are still to come.
    ChunkData(u64),
    /// Expecting the CRLF after a chunk's data.
    ChunkEnd,
    /// Skipping trailer fields up to the empty line.
    Trailers,
    Done,
}

/// A response body read straight from the app's connection.
pub struct ResponseBody {
    conn: Option<Conn>,
    state: State,
    keep_alive: bool,
    /// Where the connection goes when the body has been read to its end.
    recycle: Option<(Arc<Pool>, SocketAddr)>,
    trailer_bytes: usize,
}

impl ResponseBody {
    fn new(conn: Conn, framing: Framing, keep_alive: bool) -> ResponseBody {
        let state = match framing {
            Framing::Empty => State::Done,
            Framing::Length(n) => State::Length(n),
            Framing::Chunked => State::ChunkSize,
            Framing::UntilClose => State::UntilClose,
        };
        ResponseBody {
            conn: Some(conn),
            state,
            keep_alive,
            recycle: None,
            trailer_bytes: 0,
        }
    }

    /// Sets what receives the connection when the body has been read to its end (if it can
    /// carry another request); called at once if the body is already complete.
    pub fn on_complete(&mut self, pool: Arc<Pool>, addr: SocketAddr) {
        self.recycle = Some((pool, addr));
        if self.state == State::Done {
            self.finish();
        }
    }

    pub fn is_complete(&self) -> bool {
        self.state == State::Done
    }

    fn finish(&mut self) {
        self.state = State::Done;
        let Some(mut conn) = self.conn.take() else {
            return;
        };
        // Bytes beyond the end of the answer: the app is confused; do not reuse.
        if self.keep_alive && conn.buf.is_empty() {
            // An idle connection in the pool holds no read buffer (16 KiB): a burst of
            // clients leaves a pool as large as the burst, for as long as the app keeps the
            // connections (issue 16, row 6: 150 of them held 2.4 MB under 10,000 idle
            // clients). The next exchange allocates one again, as cheaply as it reclaimed it.
            conn.buf = BytesMut::new();
            if let Some((pool, addr)) = self.recycle.take() {
                pool.put_back_lean(addr, conn);
            }
        }
    }

    /// Reads more from the socket into the buffer; `Ok(0)` when the app closed.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        let conn = self
            .conn
            .as_mut()
            .expect("reading a body that still has its connection");
        if conn.buf.capacity() - conn.buf.len() < 1024 {
            conn.buf.reserve(READ_SIZE);
        }
        tokio_util::io::poll_read_buf(Pin::new(&mut conn.stream), cx, &mut conn.buf)
    }

    fn buffered(&mut self) -> &mut BytesMut {
        &mut self.conn.as_mut().expect("body has its connection").buf
    }

    /// Advances the chunked decoder over what is buffered. `Ok(Some(bytes))` is data for the
    /// client, `Ok(None)` means more input is needed (or the body just ended: see `state`).
    fn decode_chunked(&mut self) -> Result<Option<Bytes>, H1Error> {
        loop {
            match self.state {
                State::ChunkSize => {
                    let buf = self.buffered();
                    match httparse::parse_chunk_size(buf) {
                        Ok(httparse::Status::Complete((used, size))) => {
                            buf.advance(used);
                            self.state = if size == 0 {
                                State::Trailers
                            } else {
                                State::ChunkData(size)
                            };
                        }
                        Ok(httparse::Status::Partial) if buf.len() > MAX_CHUNK_LINE => {
                            return Err(invalid("chunk-size line too long"));
                        }
                        Ok(httparse::Status::Partial) => return Ok(None),
                        Err(_) => return Err(invalid("malformed chunk size")),
                    }
                }
                State::ChunkData(left) => {
                    let buf = self.buffered();
                    if buf.is_empty() {
                        return Ok(None);
                    }
                    let n = (buf.len() as u64).min(left) as usize;
                    let data = take(buf, n);
                    self.state = if left == n as u64 {
                        State::ChunkEnd
                    } else {
                        State::ChunkData(left - n as u64)
                    };
                    return Ok(Some(data));
                }
                State::ChunkEnd => {
                    let buf = self.buffered();
                    if buf.len() < 2 {
                        return Ok(None);
                    }
                    if &buf[..2] != b"\r\n" {
                        return Err(invalid("chunk data not followed by CRLF"));
                    }
                    buf.advance(2);
                    self.state = State::ChunkSize;
                }
                State::Trailers => {
                    let seen = self.trailer_bytes;
                    let buf = self.buffered();
                    let Some(end) = buf.windows(2).position(|w| w == b"\r\n") else {
                        if seen + buf.len() > MAX_TRAILERS {
                            return Err(invalid("trailer section too long"));
                        }
                        return Ok(None);
                    };
                    buf.advance(end + 2);
                    self.trailer_bytes += end + 2;
                    if end == 0 {
                        self.finish();
                        return Ok(None);
                    }
                    if self.trailer_bytes > MAX_TRAILERS {
                        return Err(invalid("trailer section too long"));
                    }
                }
                State::Length(_) | State::UntilClose | State::Done => return Ok(None),
            }
        }
    }

    /// Takes up to `left` bytes of a `Content-Length` body from the buffer.
    fn take_length(&mut self, left: u64) -> Option<Bytes> {
        let buf = self.buffered();
        if buf.is_empty() {
            return None;
        }
        let n = (buf.len() as u64).min(left) as usize;
        let data = take(buf, n);
        let left = left - n as u64;
        self.state = State::Length(left);
        if left == 0 {
            self.finish();
        }
        Some(data)
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = H1Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, H1Error>>> {
        let this = self.get_mut();
        loop {
            let data = match this.state {
                State::Done => return Poll::Ready(None),
                State::Length(left) => this.take_length(left),
                State::UntilClose => {
                    let buf = this.buffered();
                    let n = buf.len();
                    (n > 0).then(|| take(buf, n))
                }
                _ => match this.decode_chunked() {
                    Ok(data) => data,
                    Err(e) => {
                        this.conn = None;
                        return Poll::Ready(Some(Err(e)));
                    }
                },
            };
            if let Some(data) = data {
                return Poll::Ready(Some(Ok(Frame::data(data))));
            }
            if this.state == State::Done {
                return Poll::Ready(None);
            }
            match ready!(this.poll_fill(cx)) {
                Ok(0) if this.state == State::UntilClose => {
                    this.state = State::Done;
                    this.conn = None;
                    return Poll::Ready(None);
                }
                Ok(0) => {
                    this.conn = None;
                    this.state = State::Done;
                    return Poll::Ready(Some(Err(H1Error::ClosedEarly)));
                }
                Ok(_) => {}
                Err(e) => {
                    this.conn = None;
                    this.state = State::Done;
                    return Poll::Ready(Some(Err(H1Error::Read(e))));
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.state == State::Done
    }

    fn size_hint(&self) -> SizeHint {
        match self.state {
            State::Done => SizeHint::with_exact(0),
            State::Length(n) => SizeHint::with_exact(n),
            _ => SizeHint::default(),
        }
    }
}

/// The app-answer parser and the chunked decoder for the fuzz targets (`fuzz/`, through
/// `crate::fuzzing`). Both run on a real `Conn` as the proxy's do; neither reads its socket,
/// only the bytes put in its buffer here.
#[doc(hidden)]
pub(crate) mod fuzzing {
    use super::*;

    /// What `parse_head` made of the bytes in the connection's buffer.
    #[derive(Debug)]
    pub enum ResponseHead {
        Partial,
        Informational {
            consumed: usize,
        },
        Final {
            consumed: usize,
            status: u16,
            /// `Empty`, `Length(n)`, `Chunked` or `UntilClose`.
            framing: String,
            keep_alive: bool,
            /// The fields the client would get, in order.
            fields: Vec<(String, Vec<u8>)>,
        },
        Invalid(String),
    }

    /// Parses an app's answer to a request (a HEAD request when `head_request`) from `input`.
    pub fn parse_response_head(conn: &mut Conn, input: &[u8], head_request: bool) -> ResponseHead {
        conn.buf.clear();
        conn.buf.extend_from_slice(input);
        let method = if head_request {
            Method::HEAD
        } else {
            Method::GET
        };
        let consumed = |conn: &Conn| input.len() - conn.buf.len();
        match conn.parse_head(&method) {
            Ok(None) => ResponseHead::Partial,
            Ok(Some(Parsed::Informational)) => ResponseHead::Informational {
                consumed: consumed(conn),
            },
            Ok(Some(Parsed::Final(response, framing, keep_alive))) => ResponseHead::Final {
                consumed: consumed(conn),
                status: response.status().as_u16(),
                framing: format!("{framing:?}"),
                keep_alive,
                fields: response
                    .headers()
                    .iter()
                    .map(|(n, v)| (n.as_str().to_owned(), v.as_bytes().to_vec()))
                    .collect(),
            },
            Err(e) => ResponseHead::Invalid(e.to_string()),
        }
    }

    /// What the chunked decoder made of a whole body.
    #[derive(Debug)]
    pub struct Decoded {
        /// The data for the client, in order.
        pub data: Vec<u8>,
        /// `Ok(true)`: the body ended (last chunk and trailers read); `Ok(false)`: the decoder
        /// waits for more; `Err`: the body was refused.
        pub outcome: Result<bool, String>,
        /// Bytes of `input` the decoder did not consume; `None` once the body ended, since the
        /// decoder let the connection and its buffer go.
        pub left: Option<usize>,
    }

    /// Runs the chunked decoder over `pieces` as if the app's socket had delivered them one
    /// read at a time. The connection comes back unless the body ended (the decoder then lets
    /// it go, as it does with one that has no pool to return to).
    pub fn decode_chunked(mut conn: Conn, pieces: &[&[u8]]) -> (Decoded, Option<Conn>) {
        conn.buf.clear();
        let mut body = ResponseBody::new(conn, Framing::Chunked, false);
        let mut data = Vec::new();
        let mut outcome = Ok(false);
        'pieces: for piece in pieces {
            body.buffered().extend_from_slice(piece);
            loop {
                match body.decode_chunked() {
                    Ok(Some(bytes)) => data.extend_from_slice(&bytes),
                    Ok(None) if body.is_complete() => {
                        outcome = Ok(true);
                        break 'pieces;
                    }
                    Ok(None) => break,
                    Err(e) => {
                        outcome = Err(e.to_string());
                        break 'pieces;
                    }
                }
            }
        }
        let left = body.conn.as_ref().map(|c| c.buf.len());
        let conn = body.conn.take();
        (
            Decoded {
                data,
                outcome,
                left,
            },
            conn,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use std::time::Duration;
    use tokio::io::AsyncReadExt;
    use tokio::net::TcpListener;

    /// An app on a real socket that answers each request it reads with the next of
    /// `answers`, written as given (split at `|` into separate writes), then closes.
    async fn app(answers: Vec<&'static str>) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut seen = Vec::new();
            for answer in answers {
                // Read up to the end of one request head.
                loop {
                    if let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
                        seen.drain(..end + 4);
                        break;
                    }
                    let mut chunk = [0u8; 1024];
                    let n = socket.read(&mut chunk).await.unwrap();
                    if n == 0 {
                        return;
                    }
                    seen.extend_from_slice(&chunk[..n]);
                }
                for part in answer.split('|') {
                    socket.write_all(part.as_bytes()).await.unwrap();
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
        });
        addr
    }

    fn get(out: &mut Vec<u8>) {
        out.extend_from_slice(b"GET /x HTTP/1.1\r\n");
        write_field(out, b"host", b"a.test");
        out.extend_from_slice(b"\r\n");
    }

    async fn connect(addr: SocketAddr) -> Conn {
        Conn::new(TcpStream::connect(addr).await.unwrap())
    }

    /// Sends GET, reads the whole answer; returns the response, the body, and the pool that
    /// received the connection back (empty when it was not reusable).
    async fn exchange(
        conn: Conn,
        method: Method,
    ) -> Result<(Response<()>, Bytes, Arc<Pool>), H1Error> {
        let pool = Pool::new(Duration::from_secs(1), Duration::from_secs(60));
        let mut answer = conn.exchange(&method, &get).await?;
        answer
            .body
            .on_complete(Arc::clone(&pool), "127.0.0.1:1".parse().unwrap());
        let body = answer.body.collect().await?.to_bytes();
        Ok((answer.response, body, pool))
    }

    #[tokio::test]
    async fn content_length_body_in_pieces_and_the_connection_is_reused() {
        let addr = app(vec![
            "HTTP/1.1 200 OK\r\nContent-Length: 10\r\nConnection: keep-alive\r\nX-App: 1\r\n\r\n01234|56789",
            "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
        ])
        .await;
        let (res, body, pool) = exchange(connect(addr).await, Method::GET).await.unwrap();
        assert_eq!(res.status(), 200);
        assert_eq!(&body[..], b"0123456789");
        assert_eq!(res.headers()["x-app"], "1");
        assert!(
            res.headers().get(header::CONNECTION).is_none(),
            "hop-by-hop left out"
        );
        assert_eq!(pool.idle_count(), 1);
        let conn = pool.take_idle_lean("127.0.0.1:1".parse().unwrap()).unwrap();
        let (_, body, _) = exchange(conn, Method::GET).await.unwrap();
        assert_eq!(&body[..], b"ok");
    }

    #[tokio::test]
    async fn chunked_body_with_extensions_and_trailers_is_decoded() {
        let addr = app(vec![
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhel|lo\r\n6\r\n world\r\n0\r\nX-Trailer: t|\r\n\r\n",
        ])
        .await;
        let (res, body, pool) = exchange(connect(addr).await, Method::GET).await.unwrap();
        assert_eq!(&body[..], b"hello world");
        assert!(res.headers().get(header::TRANSFER_ENCODING).is_none());
        assert_eq!(
            pool.idle_count(),
            1,
            "a chunked answer read to its end is reusable"
        );
    }

    #[tokio::test]
    async fn no_body_after_head_204_and_304_and_interim_answers_are_skipped() {
        let addr = app(vec![
            "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n",
            "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n",
            "HTTP/1.1 304 Not Modified\r\nContent-Length: 50\r\n\r\n",
        ])
        .await;
        let (res, body, pool) = exchange(connect(addr).await, Method::HEAD).await.unwrap();
        assert_eq!(res.headers()[header::CONTENT_LENGTH], "1000");
        assert!(body.is_empty());
        let conn = pool.take_idle_lean("127.0.0.1:1".parse().unwrap()).unwrap();
        let (res, body, pool) = exchange(conn, Method::GET).await.unwrap();
        assert_eq!(res.status(), 204);
        assert!(body.is_empty());
        let conn = pool.take_idle_lean("127.0.0.1:1".parse().unwrap()).unwrap();
        let (res, body, _) = exchange(conn, Method::GET).await.unwrap();
        assert_eq!(res.status(), 304);
        assert!(body.is_empty());
    }

    #[tokio::test]
    async fn a_body_until_close_and_connection_close_are_not_reused() {
        let addr = app(vec!["HTTP/1.1 200 OK\r\n\r\nall of it|, until close"]).await;
        let (_, body, pool) = exchange(connect(addr).await, Method::GET).await.unwrap();
        assert_eq!(&body[..], b"all of it, until close");
        assert_eq!(pool.idle_count(), 0);
        let addr = app(vec![
            "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok",
        ])
        .await;
        let (_, body, pool) = exchange(connect(addr).await, Method::GET).await.unwrap();
        assert_eq!(&body[..], b"ok");
        assert_eq!(pool.idle_count(), 0);
    }

    #[tokio::test]
    async fn broken_answers_are_errors_that_say_what() {
        let cases = [
            (
                "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
                "in the middle",
            ),
            (
                "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
                "conflicting Content-Length",
            ),
            (
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
                "malformed chunk size",
            ),
            (
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabX\r\n",
                "CRLF",
            ),
            ("NOT HTTP\r\n\r\n", "invalid response"),
            ("", "before answering"),
        ];
        for (answer, expected) in cases {
            let addr = app(vec![answer]).await;
            let err = exchange(connect(addr).await, Method::GET)
                .await
                .err()
                .unwrap_or_else(|| panic!("{answer:?} was accepted"));
            assert!(err.to_string().contains(expected), "{answer:?}: {err}");
        }
    }

    #[tokio::test]
    async fn an_idle_connection_the_app_closed_is_not_reusable() {
        let addr = app(vec!["HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"]).await;
        let (_, _, pool) = exchange(connect(addr).await, Method::GET).await.unwrap();
        // The app closes after its one answer.
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(
            pool.take_idle_lean("127.0.0.1:1".parse().unwrap())
                .is_none()
        );
    }
}
