//! The chunked decoder of app answers (`proxy/h1.rs` `ResponseBody::decode_chunked`).
//!
//! Two checks per input:
//! - the input as a body the app sent: it gives no more data than it was sent, and the same
//!   decision and data whether it arrives in one read or split in two at any point (the first
//!   two bytes choose where), since TCP may cut a body anywhere;
//! - the input as data: encoded as chunks (sizes, hex case, extensions and trailers chosen
//!   from the input), then decoded, it comes back whole and the body ends.

use rivetr::fuzzing::{Decoded, decode_chunked};

use crate::conn::with_conn;

fn decode(pieces: &[&[u8]]) -> Decoded {
    with_conn(|conn| decode_chunked(conn, pieces))
}

/// Which of waiting, ended and refused (the messages may differ with the split: a line that is
/// too long is noticed before or after it ends).
fn kind(d: &Decoded) -> &'static str {
    match d.outcome {
        Ok(true) => "ended",
        Ok(false) => "waiting",
        Err(_) => "refused",
    }
}

pub fn check(data: &[u8]) {
    let whole = decode(&[data]);
    assert!(
        whole.data.len() <= data.len(),
        "more data out than bytes in"
    );
    if let Ok(false) = whole.outcome {
        assert!(
            whole.left.is_some_and(|l| l <= data.len()),
            "waiting without its buffer"
        );
    }
    if data.len() >= 2 {
        let at = usize::from(u16::from_le_bytes([data[0], data[1]])) % (data.len() + 1);
        let split = decode(&[&data[..at], &data[at..]]);
        assert_eq!(
            kind(&split),
            kind(&whole),
            "split at {at}: {split:?} vs {whole:?}"
        );
        assert_eq!(split.data, whole.data, "split at {at} changed the data");
    }
    round_trip(data);
}

/// A small deterministic generator seeded from the input, for the encoding's choices.
struct Choices(u64);

impl Choices {
    fn next(&mut self) -> u64 {
        // xorshift64
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn round_trip(payload: &[u8]) {
    let seed = payload.iter().fold(0x9e37_79b9_7f4a_7c15u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    let mut choose = Choices(seed | 1);
    let mut body = Vec::new();
    let mut rest = payload;
    while !rest.is_empty() {
        let n = (choose.next() % 300 + 1) as usize;
        let (chunk, after) = rest.split_at(n.min(rest.len()));
        let size = if choose.next() % 2 == 0 {
            format!("{:x}", chunk.len())
        } else {
            format!("{:X}", chunk.len())
        };
        body.extend_from_slice(size.as_bytes());
        if choose.next() % 4 == 0 {
            body.extend_from_slice(b";name=\"quoted value\"");
        }
        body.extend_from_slice(b"\r\n");
        body.extend_from_slice(chunk);
        body.extend_from_slice(b"\r\n");
        rest = after;
    }
    body.extend_from_slice(b"0\r\n");
    if choose.next() % 2 == 0 {
        body.extend_from_slice(b"X-Checksum: 1234\r\n");
    }
    body.extend_from_slice(b"\r\n");
    let at = (choose.next() % (body.len() as u64 + 1)) as usize;
    for pieces in [&[&body[..]][..], &[&body[..at], &body[at..]]] {
        let decoded = decode(pieces);
        assert_eq!(decoded.outcome, Ok(true), "encoded body did not end ({at})");
        assert!(
            decoded.data == payload,
            "round trip changed the data ({at})"
        );
    }
}
