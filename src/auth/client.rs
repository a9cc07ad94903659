//! Which address a request comes from, for the failed-authentication limit and the logs.
//!
//! The peer address of the connection, unless that peer is one of `[server] trusted_proxies`:
//! then `X-Forwarded-For` is read from the right (the entry the nearest proxy added), skipping
//! further trusted proxies, and the first address that is not one is the client. Entries a
//! client wrote itself sit further left and are never reached unless every hop after them is
//! trusted, so a client cannot pick its own address.

use std::net::{IpAddr, SocketAddr};

use axum::http::HeaderMap;

use crate::config::{TrustedProxy, canonical_ip as canonical};

/// The client's address for a request that arrived from `peer`.
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[TrustedProxy]) -> IpAddr {
    let is_trusted = |ip: IpAddr| trusted.iter().any(|t| t.contains(ip));
    let peer = canonical(peer);
    if !is_trusted(peer) {
        return peer;
    }
    // Several X-Forwarded-For headers are one list, in order.
    let hops: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    let mut client = peer;
    for hop in hops.iter().rev() {
        let Some(ip) = parse_hop(hop) else {
            // Garbage cannot be attributed to anyone; the last hop we could trust is the answer.
            break;
        };
        client = ip;
        if !is_trusted(ip) {
            break;
        }
    }
    client
}

/// An X-Forwarded-For entry: an address, possibly with a port (`192.0.2.1:5000`,
/// `[2001:db8::1]:5000`).
fn parse_hop(hop: &str) -> Option<IpAddr> {
    hop.parse::<IpAddr>()
        .or_else(|_| hop.parse::<SocketAddr>().map(|s| s.ip()))
        .ok()
        .map(canonical)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn xff(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append("x-forwarded-for", v.parse().unwrap());
        }
        h
    }

    fn trusted(list: &[&str]) -> Vec<TrustedProxy> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    #[test]
    fn untrusted_peer_is_the_client_whatever_it_claims() {
        let h = xff(&["203.0.113.9"]);
        assert_eq!(client_ip(ip("192.0.2.1"), &h, &[]), ip("192.0.2.1"));
        assert_eq!(
            client_ip(ip("192.0.2.1"), &h, &trusted(&["10.0.0.0/8"])),
            ip("192.0.2.1")
        );
    }

    #[test]
    fn trusted_proxy_hands_over_the_rightmost_untrusted_hop() {
        let t = trusted(&["127.0.0.1", "10.0.0.0/8"]);
        // The client forged the first entry; the proxies appended the rest.
        let h = xff(&["1.2.3.4, 203.0.113.9", "10.1.2.3"]);
        assert_eq!(client_ip(ip("127.0.0.1"), &h, &t), ip("203.0.113.9"));
        // With a port, and IPv6 in brackets.
        let h = xff(&["[2001:db8::7]:4711"]);
        assert_eq!(client_ip(ip("127.0.0.1"), &h, &t), ip("2001:db8::7"));
        let h = xff(&["198.51.100.2:4711"]);
        assert_eq!(client_ip(ip("127.0.0.1"), &h, &t), ip("198.51.100.2"));
    }

    #[test]
    fn trusted_proxy_without_header_or_with_garbage() {
        let t = trusted(&["127.0.0.1"]);
        assert_eq!(
            client_ip(ip("127.0.0.1"), &HeaderMap::new(), &t),
            ip("127.0.0.1")
        );
        let h = xff(&["203.0.113.9, not-an-address"]);
        assert_eq!(client_ip(ip("127.0.0.1"), &h, &t), ip("127.0.0.1"));
    }

    #[test]
    fn mapped_ipv4_peers_match_ipv4_entries() {
        let t = trusted(&["127.0.0.1"]);
        let h = xff(&["203.0.113.9"]);
        assert_eq!(client_ip(ip("::ffff:127.0.0.1"), &h, &t), ip("203.0.113.9"));
    }
}
