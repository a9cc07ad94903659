//! How the proxy tells Rivetr's own API which client a request came from, in a way no client
//! can forge.
//!
//! Requests for `[server] domain` reach the API over a loopback connection from the proxy, so
//! the API sees every such client as 127.0.0.1. The proxy knows the real address; it hands it
//! over in one request header, [`HEADER`], whose value is the address followed by a secret of
//! 32 random bytes made when the process starts ([`ClientHandover::new`]). The secret lives
//! only in this process's memory: it is never written to disk, to a log, to a response, or to
//! anything but the API's own socket. Every copy of the header a client sends is removed
//! by the proxy before it adds its own (for apps too), and the API believes the header only
//! when the secret matches in constant time, so an outside client, talking to the proxy or to
//! the API directly, cannot name an address: guessing the secret means guessing 256 bits.
//!
//! This module only makes and checks the header; the proxy decides when to send it (routes
//! owned by the server, never an app's) and the API when to read it.

use std::fmt;
use std::net::IpAddr;

use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use subtle::ConstantTimeEq;

/// The request header carrying `<client address> <secret in hex>` from the proxy to the API.
pub const HEADER: HeaderName = HeaderName::from_static("x-rivetr-client");

const SECRET_BYTES: usize = 32;

/// The per-process secret that authenticates the proxy's hand-over. Its `Debug` shows nothing.
pub struct ClientHandover {
    secret_hex: String,
}

impl ClientHandover {
    /// A new random secret. Panics only if the operating system has no random numbers, when
    /// nothing secure could run anyway.
    pub fn new() -> ClientHandover {
        let mut secret = zeroize::Zeroizing::new([0u8; SECRET_BYTES]);
        getrandom::fill(&mut *secret).expect("the operating system provides random numbers");
        ClientHandover {
            secret_hex: hex::encode(*secret),
        }
    }

    /// The header value that hands `client` over.
    pub fn value_for(&self, client: IpAddr) -> HeaderValue {
        let mut value = HeaderValue::from_str(&format!("{client} {}", self.secret_hex))
            .unwrap_or_else(|_| unreachable!("an address and hex digits are a valid header value"));
        value.set_sensitive(true);
        value
    }

    /// The client the proxy handed over, when the request carries exactly one copy of the
    /// header and its secret is this process's.
    pub fn client(&self, headers: &HeaderMap) -> Option<IpAddr> {
        let mut values = headers.get_all(HEADER).iter();
        let value = values.next()?;
        if values.next().is_some() {
            return None;
        }
        let (client, secret) = value.to_str().ok()?.split_once(' ')?;
        let genuine: bool = secret.as_bytes().ct_eq(self.secret_hex.as_bytes()).into();
        if !genuine {
            return None;
        }
        client.parse().ok()
    }
}

impl Default for ClientHandover {
    fn default() -> Self {
        ClientHandover::new()
    }
}

impl fmt::Debug for ClientHandover {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClientHandover(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_this_process_secret_hands_a_client_over() {
        let ours = ClientHandover::new();
        let client: IpAddr = "203.0.113.7".parse().unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(HEADER, ours.value_for(client));
        assert_eq!(ours.client(&headers), Some(client));

        // Another process (or a guess) has another secret.
        assert_eq!(ClientHandover::new().client(&headers), None);
        // Two copies: one of them was not ours.
        headers.append(HEADER, HeaderValue::from_static("192.0.2.1 00"));
        assert_eq!(ours.client(&headers), None);
        // No header, garbage, a truncated secret.
        assert_eq!(ours.client(&HeaderMap::new()), None);
        for forged in ["203.0.113.7", "", "203.0.113.7 ", "x y"] {
            let mut h = HeaderMap::new();
            h.insert(HEADER, HeaderValue::from_str(forged).unwrap());
            assert_eq!(ours.client(&h), None, "{forged:?}");
        }
        let genuine = ours.value_for(client);
        let truncated = &genuine.to_str().unwrap()[..genuine.len() - 1];
        let mut h = HeaderMap::new();
        h.insert(HEADER, HeaderValue::from_str(truncated).unwrap());
        assert_eq!(ours.client(&h), None);
    }

    #[test]
    fn the_secret_is_not_shown() {
        let h = ClientHandover::new();
        assert_eq!(format!("{h:?}"), "ClientHandover(..)");
        assert!(h.value_for("::1".parse().unwrap()).is_sensitive());
    }
}
