//! The app-answer parser (`proxy/h1.rs` `Conn::parse_head`). The first input byte's low bit
//! says whether the request was HEAD; the rest is what the app sent.
//!
//! Properties: it consumes no more than it was given; the decision rests on the head alone;
//! no hop-by-hop field reaches the client; a chunked answer carries no Content-Length to the
//! client; nothing has a body after HEAD, 204 or 304.

use rivetr::fuzzing::{ResponseHead, parse_response_head};

use crate::conn::with_conn;

const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

fn parse(input: &[u8], head_request: bool) -> ResponseHead {
    with_conn(|mut conn| {
        let head = parse_response_head(&mut conn, input, head_request);
        (head, Some(conn))
    })
}

pub fn check(data: &[u8]) {
    let Some((&first, input)) = data.split_first() else {
        return;
    };
    let head_request = first & 1 == 1;
    let head = parse(input, head_request);
    let consumed = match &head {
        ResponseHead::Partial | ResponseHead::Invalid(_) => return,
        ResponseHead::Informational { consumed } => *consumed,
        ResponseHead::Final {
            consumed,
            status,
            framing,
            fields,
            ..
        } => {
            for (name, _) in fields {
                assert!(!HOP_BY_HOP.contains(&name.as_str()), "{name} forwarded");
            }
            if framing == "Chunked" {
                assert!(
                    !fields.iter().any(|(n, _)| n == "content-length"),
                    "chunked answer forwarded with Content-Length"
                );
            }
            if head_request || *status == 204 || *status == 304 {
                assert_eq!(framing, "Empty", "a body after HEAD, 204 or 304");
            }
            *consumed
        }
    };
    assert!(
        consumed > 0 && consumed <= input.len(),
        "consumed {consumed} of {}",
        input.len()
    );
    let again = parse(&input[..consumed], head_request);
    assert_eq!(
        format!("{again:?}"),
        format!("{head:?}"),
        "decision read past the head"
    );
}
