//! Server-Sent Events, parsed incrementally from the chunks of a response body, as the
//! WHATWG HTML standard describes the format: lines end with LF, CRLF or CR; `event:`,
//! `data:` and `id:` fields (one optional space after the colon); several `data:` lines join
//! with LF; a blank line dispatches the event; lines starting with `:` are comments (the
//! server's keep-alives). An event without data is dropped, as a browser would.
//!
//! This module knows nothing about HTTP or about Rivetr's events; [`super::commands`] gives
//! them meaning.

/// One event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The `event:` field; `message` when there was none.
    pub event: String,
    pub data: String,
    /// The last `id:` seen on the stream, if any.
    pub id: Option<String>,
}

/// The parser's state between chunks.
#[derive(Debug, Default)]
pub struct Parser {
    /// Bytes of a line not yet ended.
    partial: Vec<u8>,
    /// The previous chunk ended with CR: an LF opening the next one belongs to it.
    after_cr: bool,
    event: Option<String>,
    data: Option<String>,
    last_id: Option<String>,
}

impl Parser {
    pub fn new() -> Parser {
        Parser::default()
    }

    /// Feeds a chunk; returns the events it completed, in order.
    pub fn feed(&mut self, chunk: &[u8]) -> Vec<Event> {
        let mut events = Vec::new();
        let mut rest = chunk;
        if self.after_cr {
            self.after_cr = false;
            if let Some(stripped) = rest.strip_prefix(b"\n") {
                rest = stripped;
            }
        }
        while let Some(pos) = rest.iter().position(|&b| b == b'\n' || b == b'\r') {
            let mut line = std::mem::take(&mut self.partial);
            line.extend_from_slice(&rest[..pos]);
            let ended_by_cr = rest[pos] == b'\r';
            rest = &rest[pos + 1..];
            if ended_by_cr {
                match rest.first() {
                    Some(b'\n') => rest = &rest[1..],
                    Some(_) => {}
                    None => self.after_cr = true,
                }
            }
            if let Some(event) = self.line(&line) {
                events.push(event);
            }
        }
        self.partial.extend_from_slice(rest);
        events
    }

    fn line(&mut self, line: &[u8]) -> Option<Event> {
        if line.is_empty() {
            let event = self.event.take();
            let data = self.data.take()?;
            return Some(Event {
                event: event
                    .filter(|e| !e.is_empty())
                    .unwrap_or_else(|| "message".to_owned()),
                data,
                id: self.last_id.clone(),
            });
        }
        let line = String::from_utf8_lossy(line);
        if line.starts_with(':') {
            return None;
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line.as_ref(), ""),
        };
        match field {
            "event" => self.event = Some(value.to_owned()),
            "data" => match &mut self.data {
                Some(d) => {
                    d.push('\n');
                    d.push_str(value);
                }
                None => self.data = Some(value.to_owned()),
            },
            "id" if !value.contains('\0') => self.last_id = Some(value.to_owned()),
            _ => {}
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(chunks: &[&[u8]]) -> Vec<Event> {
        let mut p = Parser::new();
        chunks.iter().flat_map(|c| p.feed(c)).collect()
    }

    fn ev(event: &str, data: &str, id: Option<&str>) -> Event {
        Event {
            event: event.to_owned(),
            data: data.to_owned(),
            id: id.map(str::to_owned),
        }
    }

    #[test]
    fn rivetr_style_events() {
        let stream = b"event: line\nid: 7\ndata: {\"id\":7,\"line\":\"hi\"}\n\n: keep-alive\n\nevent: end\ndata: {\"status\":\"running\"}\n\n";
        assert_eq!(
            all(&[stream]),
            vec![
                ev("line", "{\"id\":7,\"line\":\"hi\"}", Some("7")),
                ev("end", "{\"status\":\"running\"}", Some("7")),
            ]
        );
    }

    #[test]
    fn every_split_of_the_stream_gives_the_same_events() {
        let stream: &[u8] =
            b"event: stdout\r\ndata: a\r\ndata:  b\r\n\r\nevent:stderr\rdata:c\r\rdata\n\n";
        let expected = vec![
            ev("stdout", "a\n b", None),
            ev("stderr", "c", None),
            ev("message", "", None),
        ];
        assert_eq!(all(&[stream]), expected);
        for cut in 0..stream.len() {
            assert_eq!(
                all(&[&stream[..cut], &stream[cut..]]),
                expected,
                "cut at {cut}"
            );
        }
        let bytes: Vec<&[u8]> = stream.chunks(1).collect();
        assert_eq!(all(&bytes), expected);
    }

    #[test]
    fn comments_and_events_without_data_are_dropped_and_unfinished_events_wait() {
        assert_eq!(all(&[b": ping\n\nevent: end\n\n"]), vec![]);
        let mut p = Parser::new();
        assert!(p.feed(b"event: line\ndata: x\n").is_empty());
        assert_eq!(p.feed(b"\n"), vec![ev("line", "x", None)]);
    }

    #[test]
    fn utf8_split_across_chunks_survives() {
        let text = "data: déjà vu\n\n".as_bytes();
        let at = text.iter().position(|&b| b >= 0x80).unwrap() + 1;
        assert_eq!(
            all(&[&text[..at], &text[at..]]),
            vec![ev("message", "déjà vu", None)]
        );
    }
}
