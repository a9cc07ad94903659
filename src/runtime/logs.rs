//! Container output as whole lines. Engines deliver output in frames that follow the
//! container's writes, not its lines: one frame may hold several lines or half of one. Each
//! source (stdout, stderr) is buffered on its own so their lines never mix.

use std::collections::VecDeque;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};

use super::{LogLine, LogSource, LogStream, RuntimeError};

#[derive(Debug, Default)]
struct Splitter {
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

impl Splitter {
    fn feed(&mut self, source: LogSource, bytes: &[u8], out: &mut VecDeque<LogLine>) {
        let buf = self.buf(source);
        buf.extend_from_slice(bytes);
        let mut lines = Vec::new();
        while let Some(end) = buf.iter().position(|&b| b == b'\n') {
            let raw: Vec<u8> = buf.drain(..=end).collect();
            lines.push(to_line(&raw));
        }
        out.extend(lines.into_iter().map(|line| LogLine { source, line }));
    }

    fn finish(&mut self, out: &mut VecDeque<LogLine>) {
        for source in [LogSource::Stdout, LogSource::Stderr] {
            let buf = std::mem::take(self.buf(source));
            if !buf.is_empty() {
                out.push_back(LogLine {
                    source,
                    line: to_line(&buf),
                });
            }
        }
    }

    fn buf(&mut self, source: LogSource) -> &mut Vec<u8> {
        match source {
            LogSource::Stdout => &mut self.stdout,
            LogSource::Stderr => &mut self.stderr,
        }
    }
}

fn to_line(raw: &[u8]) -> String {
    let raw = raw.strip_suffix(b"\n").unwrap_or(raw);
    let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
    String::from_utf8_lossy(raw).into_owned()
}

/// Turns a stream of output frames into a stream of lines.
pub(crate) fn into_lines<S>(frames: S) -> LogStream
where
    S: Stream<Item = Result<(LogSource, Bytes), RuntimeError>> + Send + 'static,
{
    struct State<S> {
        frames: S,
        splitter: Splitter,
        ready: VecDeque<LogLine>,
        ended: bool,
    }
    let state = State {
        frames: Box::pin(frames),
        splitter: Splitter::default(),
        ready: VecDeque::new(),
        ended: false,
    };
    futures_util::stream::unfold(state, |mut st| async move {
        loop {
            if let Some(line) = st.ready.pop_front() {
                return Some((Ok(line), st));
            }
            if st.ended {
                return None;
            }
            match st.frames.next().await {
                Some(Ok((source, bytes))) => st.splitter.feed(source, &bytes, &mut st.ready),
                Some(Err(e)) => {
                    st.ended = true;
                    return Some((Err(e), st));
                }
                None => {
                    st.ended = true;
                    st.splitter.finish(&mut st.ready);
                }
            }
        }
    })
    .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_become_lines_per_source() {
        let frames = vec![
            Ok((LogSource::Stdout, Bytes::from_static(b"one\ntw"))),
            Ok((LogSource::Stderr, Bytes::from_static(b"err-a"))),
            Ok((LogSource::Stdout, Bytes::from_static(b"o\r\n"))),
            Ok((LogSource::Stderr, Bytes::from_static(b"\nerr-b"))),
        ];
        let lines: Vec<LogLine> = into_lines(futures_util::stream::iter(frames))
            .map(|l| l.unwrap())
            .collect()
            .await;
        let show: Vec<(LogSource, &str)> =
            lines.iter().map(|l| (l.source, l.line.as_str())).collect();
        assert_eq!(
            show,
            vec![
                (LogSource::Stdout, "one"),
                (LogSource::Stdout, "two"),
                (LogSource::Stderr, "err-a"),
                (LogSource::Stderr, "err-b"),
            ]
        );
    }
}
