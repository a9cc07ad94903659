//! The plain-HTTP listener's request head parser (`proxy/plain.rs` `parse`).
//!
//! Properties: the head it reports lies within the input and ends a line; its decision rests
//! on the head alone (the same bytes cut at the head, or followed by a pipelined request or
//! garbage, decide the same: the next request is never read as part of this one); a head the
//! lean path takes carries no body framing and one Host.

use rivetr::fuzzing::{RequestHead, parse_request_head};

pub fn check(data: &[u8]) {
    let head = parse_request_head(data);
    let RequestHead::Lean {
        head_len, fields, ..
    } = &head
    else {
        return;
    };
    let head_len = *head_len;
    assert!(
        head_len <= data.len(),
        "head of {head_len} bytes in {}",
        data.len()
    );
    assert!(
        data[..head_len].ends_with(b"\n"),
        "head does not end a line"
    );
    assert_eq!(
        parse_request_head(&data[..head_len]),
        head,
        "decision read past the head"
    );
    for next in [
        &b"GET /next HTTP/1.1\r\nHost: b.test\r\n\r\n"[..],
        b"\x00\xff garbage",
    ] {
        let mut more = data[..head_len].to_vec();
        more.extend_from_slice(next);
        assert_eq!(
            parse_request_head(&more),
            head,
            "decision read past the head"
        );
    }
    let mut hosts = 0;
    for (name, value) in fields {
        let name = name.to_ascii_lowercase();
        assert!(
            name != "transfer-encoding" && name != "upgrade",
            "lean request with {name}"
        );
        if name == "content-length" {
            assert_eq!(value.trim_ascii(), b"0", "lean request with a body");
        }
        hosts += usize::from(name == "host");
    }
    assert_eq!(hosts, 1, "lean request with {hosts} Host fields");
}
