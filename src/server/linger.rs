//! Lingering close: when Rivetr ends a connection whose client may still be sending, it reads
//! and drops what keeps arriving for a bounded time and size before closing the socket.
//!
//! A server that answers early (413 for a body over the limit, 401 before reading the body)
//! and closes at once leaves unread bytes in its socket; the kernel then answers the client's
//! next segments with a reset, and a client that writes its whole body before reading (Python's
//! urllib, most scripts) gets "broken pipe" or "connection reset" instead of the answer waiting
//! in its buffer. nginx's `lingering_close` is the model: after the answer, send FIN (so the
//! client sees the end of the response), keep reading and discarding until the client closes,
//! goes quiet for [`LINGER_IDLE`], or has sent [`LINGER_BYTES`] or taken [`LINGER_TIME`].
//!
//! [`Lingering`] wraps a connection's stream for hyper (under TLS too, at the TCP level). When
//! the connection is dropped without the client having closed its side, the stream is handed
//! to a small task that does the above. A connection the client closed first (the usual end
//! of a keep-alive connection) is closed at once, without a task.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};

/// The longest a closing connection is read from, in all.
pub const LINGER_TIME: Duration = Duration::from_secs(30);
/// A closing connection that sends nothing for this long is closed.
pub const LINGER_IDLE: Duration = Duration::from_secs(5);
/// The most a closing connection may still send before it is closed regardless.
pub const LINGER_BYTES: usize = 64 * 1024 * 1024;
/// Bytes read per call while discarding.
const DISCARD_CHUNK: usize = 16 * 1024;

/// A stream that lingers when dropped before its peer closed (see the module doc).
pub struct Lingering<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    inner: Option<S>,
    /// The peer closed its side: nothing more can arrive, so no lingering is needed.
    peer_closed: bool,
}

impl<S> Lingering<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    pub fn new(inner: S) -> Lingering<S> {
        Lingering {
            inner: Some(inner),
            peer_closed: false,
        }
    }

    fn stream(&mut self) -> &mut S {
        self.inner
            .as_mut()
            .expect("the stream is only taken when the wrapper is dropped")
    }
}

impl<S> Drop for Lingering<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    fn drop(&mut self) {
        let Some(stream) = self.inner.take() else {
            return;
        };
        if self.peer_closed {
            return;
        }
        // Detached on purpose: bounded by LINGER_TIME, and it owns nothing but the socket. At
        // shutdown the runtime drops it with everything else.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(linger(stream));
        }
    }
}

/// Sends FIN, then reads and drops the client's bytes until it closes or a bound is reached.
async fn linger<S>(mut stream: S)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    if tokio::time::timeout(LINGER_IDLE, stream.shutdown())
        .await
        .is_err()
    {
        return;
    }
    let deadline = tokio::time::Instant::now() + LINGER_TIME;
    let mut scratch = vec![0u8; DISCARD_CHUNK];
    let mut discarded = 0usize;
    while discarded < LINGER_BYTES {
        let wait = LINGER_IDLE.min(deadline.saturating_duration_since(tokio::time::Instant::now()));
        match tokio::time::timeout(wait, stream.read(&mut scratch)).await {
            Ok(Ok(n)) if n > 0 => discarded += n,
            // Closed by the client, failed, quiet too long, or out of time.
            _ => break,
        }
    }
    if discarded > 0 {
        tracing::debug!(
            discarded,
            "read and dropped the rest of a request before closing"
        );
    }
}

impl<S> AsyncRead for Lingering<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let asked = buf.remaining() > 0;
        let polled = Pin::new(this.stream()).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled
            && asked
            && buf.filled().len() == before
        {
            this.peer_closed = true;
        }
        polled
    }
}

impl<S> AsyncWrite for Lingering<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(self.get_mut().stream()).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(self.get_mut().stream()).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.as_ref().is_some_and(|s| s.is_write_vectored())
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(self.get_mut().stream()).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(self.get_mut().stream()).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::{TcpListener, TcpStream};

    /// The server answers after reading only the head and drops the connection; the client,
    /// still writing 8 MiB, finishes its write and reads the answer.
    #[tokio::test]
    async fn a_client_still_sending_reads_the_early_answer() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let mut conn = Lingering::new(stream);
            let mut head = [0u8; 16];
            conn.read_exact(&mut head).await.unwrap();
            conn.write_all(b"HTTP/1.1 413 Payload Too Large\r\ncontent-length: 0\r\n\r\n")
                .await
                .unwrap();
            conn.flush().await.unwrap();
        });
        let client = std::thread::spawn(move || {
            use std::io::{Read, Write};
            let mut s = std::net::TcpStream::connect(addr).unwrap();
            s.write_all(&vec![b'x'; 8 * 1024 * 1024])?;
            let mut answer = String::new();
            s.read_to_string(&mut answer)?;
            Ok::<_, io::Error>(answer)
        });
        server.await.unwrap();
        let answer = tokio::task::spawn_blocking(move || client.join().unwrap())
            .await
            .unwrap()
            .expect("the client saw a reset");
        assert!(answer.starts_with("HTTP/1.1 413"), "{answer:?}");
    }

    /// A connection the client closed first is closed at once, with no lingering task.
    #[tokio::test]
    async fn a_closed_client_is_not_waited_for() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let client = TcpStream::connect(addr).await.unwrap();
        let (stream, _) = listener.accept().await.unwrap();
        drop(client);
        let mut conn = Lingering::new(stream);
        let mut buf = [0u8; 8];
        assert_eq!(conn.read(&mut buf).await.unwrap(), 0);
        assert!(conn.peer_closed);
    }
}
