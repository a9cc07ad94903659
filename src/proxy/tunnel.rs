//! An upgraded connection (a WebSocket) copied both ways between the client and the app,
//! holding a buffer only while one side is slower than the other.
//!
//! `tokio::io::copy_bidirectional` keeps an 8 KiB buffer per direction for as long as the
//! connection lives, and most of a WebSocket's life is idle: those 16 KiB were most of an idle
//! WebSocket's memory in the proxy (issue 16, row 6: 21.1 kB each against nginx's 16.9). Here
//! each read goes into a buffer on the stack and is written at once; only bytes the other
//! side cannot take yet are copied to the heap, and that copy is freed once written.

use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// How much one read takes.
const READ_SIZE: usize = 8 * 1024;

/// Copies bytes from `a` to `b` and from `b` to `a` until both have ended (each end shut down
/// for writing once the other side has sent everything), or either fails.
pub async fn copy_both_ways<A, B>(a: &mut A, b: &mut B) -> io::Result<()>
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    let (mut a_to_b, mut b_to_a) = (OneWay::default(), OneWay::default());
    poll_fn(|cx| {
        let there = a_to_b.poll(cx, &mut *a, &mut *b)?;
        let back = b_to_a.poll(cx, &mut *b, &mut *a)?;
        if there.is_ready() && back.is_ready() {
            Poll::Ready(Ok(()))
        } else {
            Poll::Pending
        }
    })
    .await
}

/// One direction of the copy.
#[derive(Default)]
struct OneWay {
    /// Bytes read but not yet written, from this offset on; empty (no allocation) otherwise.
    pending: Vec<u8>,
    written: usize,
    /// The reader has ended: shut the writer down once `pending` is written.
    read_all: bool,
    done: bool,
}

impl OneWay {
    fn poll<R, W>(&mut self, cx: &mut Context<'_>, from: &mut R, to: &mut W) -> Poll<io::Result<()>>
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        if self.done {
            return Poll::Ready(Ok(()));
        }
        loop {
            while self.written < self.pending.len() {
                let n = ready!(Pin::new(&mut *to).poll_write(cx, &self.pending[self.written..]))?;
                if n == 0 {
                    return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
                }
                self.written += n;
            }
            if !self.pending.is_empty() {
                // Caught up: give the copy back.
                self.pending = Vec::new();
                self.written = 0;
            }
            if self.read_all {
                ready!(Pin::new(&mut *to).poll_shutdown(cx))?;
                self.done = true;
                return Poll::Ready(Ok(()));
            }
            let mut stack = [0u8; READ_SIZE];
            let mut buf = ReadBuf::new(&mut stack);
            match Pin::new(&mut *from).poll_read(cx, &mut buf) {
                Poll::Pending => {
                    // Nothing more for now: what was written goes out.
                    ready!(Pin::new(&mut *to).poll_flush(cx))?;
                    return Poll::Pending;
                }
                Poll::Ready(result) => result?,
            }
            let read = buf.filled();
            if read.is_empty() {
                self.read_all = true;
                continue;
            }
            let mut sent = 0;
            while sent < read.len() {
                match Pin::new(&mut *to).poll_write(cx, &read[sent..]) {
                    Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                    Poll::Ready(Ok(n)) => sent += n,
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Pending => {
                        // The other side is slower: keep the rest until it takes it.
                        self.pending.extend_from_slice(&read[sent..]);
                        return Poll::Pending;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt, duplex};

    /// Sends `data` and shuts down for writing while reading everything the other end sends;
    /// returns what was read.
    async fn send_all_and_read_to_end(end: tokio::io::DuplexStream, data: Vec<u8>) -> Vec<u8> {
        let (mut r, mut w) = tokio::io::split(end);
        let sending = async {
            w.write_all(&data).await.unwrap();
            w.shutdown().await.unwrap();
        };
        let mut got = Vec::new();
        let receiving = r.read_to_end(&mut got);
        let ((), n) = tokio::join!(sending, receiving);
        n.unwrap();
        got
    }

    #[tokio::test]
    async fn bytes_go_both_ways_and_each_end_reaches_the_other_side() {
        // client <-> (a) proxy (b) <-> app, each link a small in-memory pipe, so writes are
        // often partial and reads often wait.
        let (client, mut a) = duplex(64);
        let (mut b, app) = duplex(64);
        let proxy = tokio::spawn(async move { copy_both_ways(&mut a, &mut b).await });
        let up: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let down: Vec<u8> = (0..70_000u32).map(|i| (i % 241) as u8).collect();
        let (up2, down2) = (up.clone(), down.clone());
        let client_side = tokio::spawn(send_all_and_read_to_end(client, up2));
        let got = send_all_and_read_to_end(app, down2).await;
        assert!(
            got == up,
            "the app got {} bytes, not what the client sent",
            got.len()
        );
        let client_got = client_side.await.unwrap();
        assert!(
            client_got == down,
            "the client got {} bytes, not what the app sent",
            client_got.len()
        );
        proxy.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn an_idle_tunnel_holds_no_copy_and_a_slow_side_holds_only_what_it_has_not_taken() {
        let (mut client, mut a) = duplex(16);
        let (mut b, mut app) = duplex(16);
        let mut one = OneWay::default();
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        assert!(one.poll(&mut cx, &mut a, &mut b).is_pending());
        assert_eq!(one.pending.capacity(), 0, "idle, nothing held");
        // The pipe to the app takes 16 bytes; 3 more wait in the copy.
        client.write_all(b"0123456789abcdef").await.unwrap();
        assert!(one.poll(&mut cx, &mut a, &mut b).is_pending());
        assert_eq!(one.pending.capacity(), 0, "all written");
        client.write_all(b"XYZ").await.unwrap();
        assert!(one.poll(&mut cx, &mut a, &mut b).is_pending());
        assert_eq!(&one.pending[one.written..], b"XYZ");
        let mut got = [0u8; 16];
        app.read_exact(&mut got).await.unwrap();
        assert!(one.poll(&mut cx, &mut a, &mut b).is_pending());
        assert_eq!(one.pending.capacity(), 0, "written, the copy is given back");
        let mut rest = [0u8; 3];
        app.read_exact(&mut rest).await.unwrap();
        assert_eq!(&rest, b"XYZ");
    }
}
