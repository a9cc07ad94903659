//! Each forge's webhook delivery: signature or token header, delivery id, event and payload
//! (`api/webhooks` `Provider::verify`, `delivery_id`, `event`), for GitHub, GitLab and Gitea
//! (which Forgejo and Gogs deliveries go through too).
//!
//! Input: one byte choosing the forge (modulo 3), header lines `Name: value`, an empty line,
//! the body. Properties: a delivery id that is accepted is 1 to 200 printable characters; the
//! same delivery with its signature (or token) set right verifies, whatever else it carries.

use hmac::{Hmac, KeyInit, Mac};
use http::{HeaderMap, HeaderName, HeaderValue};
use rivetr::api::webhooks::{Provider, gitea, github, gitlab};

const SECRET: &[u8] = b"fuzz-secret";

pub fn check(data: &[u8]) {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let provider = Provider::ALL[usize::from(first) % Provider::ALL.len()];
    let (head, body) = match rest.windows(2).position(|w| w == b"\n\n") {
        Some(at) => (&rest[..at], &rest[at + 2..]),
        None => (rest, &[][..]),
    };
    let mut headers = HeaderMap::new();
    for line in head.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(&line[..colon]),
            HeaderValue::from_bytes(line[colon + 1..].trim_ascii()),
        ) else {
            continue;
        };
        headers.append(name, value);
    }
    let _ = provider.verify(&headers, body, SECRET);
    if let Ok(id) = provider.delivery_id(&headers) {
        assert!(
            (1..=200).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_graphic()),
            "delivery id {id:?}"
        );
    }
    let _ = provider.event(&headers, body);
    sign(provider, &mut headers, body);
    if let Err(e) = provider.verify(&headers, body, SECRET) {
        panic!("a correctly signed delivery was refused: {e}");
    }
}

/// Sets the delivery's signature or token to the right one for `body`, as the forge would.
fn sign(provider: Provider, headers: &mut HeaderMap, body: &[u8]) {
    let mut mac = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(SECRET).unwrap();
    mac.update(body);
    let hex = hex::encode(mac.finalize().into_bytes());
    let (name, value) = match provider {
        Provider::GitHub => (github::SIGNATURE_HEADER, format!("sha256={hex}")),
        Provider::GitLab => (
            gitlab::TOKEN_HEADER,
            String::from_utf8(SECRET.to_vec()).unwrap(),
        ),
        Provider::Gitea => {
            for name in gitea::SIGNATURE_HEADERS {
                headers.remove(name);
            }
            (gitea::SIGNATURE_HEADERS[0], hex)
        }
    };
    headers.insert(name, HeaderValue::from_str(&value).unwrap());
}
