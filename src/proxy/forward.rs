//! Forwarding one request to an app: header rewriting (RFC 9110 7.6.1 hop-by-hop removal,
//! `X-Forwarded-*`), upstream choice with passive failover, timeouts, and WebSocket upgrades.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use hyper::body::{Body, Incoming};
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::http::request::Parts;
use hyper::{Request, Response, StatusCode, Uri, Version};

use super::h1;
use super::metrics::UpstreamError;
use super::pool::{Lease, Pool, PoolError};
use hyper_util::rt::TokioIo;

use super::Proxy;
use super::body::{ClientBodyError, ProxyBody, RequestBody, UpstreamBody};
use super::handover;
use super::pages;
use super::routes::{Route, RouteRef};

/// Which listener a request came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Http,
    Https,
}

impl Scheme {
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }
}

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");
const KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
const PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// Headers that describe one connection, not the message (RFC 9110 7.6.1), plus the legacy
/// `Keep-Alive` and `Proxy-Connection`.
pub(super) const HOP_BY_HOP: [HeaderName; 9] = [
    header::CONNECTION,
    KEEP_ALIVE,
    PROXY_CONNECTION,
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// Removes hop-by-hop headers, including every header the `Connection` header names.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // Most messages carry none or only `Connection`: one pass to look before nine removals.
    if !headers.keys().any(|name| HOP_BY_HOP.contains(name)) {
        return;
    }
    for name in connection_named(headers) {
        // The request's Host is not the connection's to remove (see write_upstream_head).
        if name != header::HOST {
            headers.remove(name);
        }
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
}

/// The `Upgrade` value of an HTTP/1.1 upgrade request (`Connection: upgrade` + `Upgrade`).
fn requested_upgrade(req: &Request<Incoming>) -> Option<HeaderValue> {
    if req.version() != Version::HTTP_11 {
        return None;
    }
    let connection_says_upgrade = req
        .headers()
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("upgrade"));
    if !connection_says_upgrade {
        return None;
    }
    req.headers().get(header::UPGRADE).cloned()
}

/// The client of a connection, with its address already rendered for the forwarding
/// headers (once per connection, not per request).
#[derive(Clone, Debug)]
pub struct Peer {
    pub addr: SocketAddr,
    ip: HeaderValue,
}

impl Peer {
    pub fn new(addr: SocketAddr) -> Peer {
        let ip = HeaderValue::from_str(&addr.ip().to_string())
            .expect("an IP address is a valid header value");
        Peer { addr, ip }
    }
}

/// The fields the proxy sets on a request to an app, worked out once for either way of
/// sending it (a header map for hyper, or a head written directly by the lean path).
struct Forwarded {
    /// A Host for the app when the client sent none: HTTP/2 carries it in :authority.
    host: Option<HeaderValue>,
    /// The client's own Host, as `X-Forwarded-Host`.
    original_host: HeaderValue,
    /// The client's `X-Forwarded-For` chain with the client appended.
    forwarded_for: HeaderValue,
    proto: HeaderValue,
    real_ip: HeaderValue,
}

/// Client headers the proxy replaces with its own values.
const SET_BY_PROXY: [HeaderName; 4] = [
    X_FORWARDED_FOR,
    X_FORWARDED_PROTO,
    X_FORWARDED_HOST,
    X_REAL_IP,
];

impl Forwarded {
    fn of(headers: &HeaderMap, host: &str, peer: &Peer, scheme: Scheme) -> Forwarded {
        let (host, original_host) = match headers.get(header::HOST) {
            Some(h) => (None, h.clone()),
            None => {
                let h = HeaderValue::from_str(host).unwrap_or(HeaderValue::from_static(""));
                (Some(h.clone()), h)
            }
        };
        let mut chain = Vec::new();
        append_forwarded_for(
            &mut chain,
            headers
                .get_all(X_FORWARDED_FOR)
                .iter()
                .map(HeaderValue::as_bytes),
            peer,
        );
        let forwarded_for = HeaderValue::from_maybe_shared(bytes::Bytes::from(chain))
            .unwrap_or_else(|_| peer.ip.clone());
        Forwarded {
            host,
            original_host,
            forwarded_for,
            proto: HeaderValue::from_static(scheme.as_str()),
            real_ip: peer.ip.clone(),
        }
    }

    /// The fields in the order they are sent.
    fn fields(&self) -> impl Iterator<Item = (HeaderName, &HeaderValue)> {
        self.host.iter().map(|h| (header::HOST, h)).chain([
            (X_FORWARDED_FOR, &self.forwarded_for),
            (X_FORWARDED_PROTO, &self.proto),
            (X_FORWARDED_HOST, &self.original_host),
            (X_REAL_IP, &self.real_ip),
        ])
    }
}

/// The client's `X-Forwarded-For` chain (every value, trimmed, empty ones left out) with the
/// client appended.
fn append_forwarded_for<'a>(
    out: &mut Vec<u8>,
    values: impl Iterator<Item = &'a [u8]>,
    peer: &Peer,
) {
    for value in values.map(<[u8]>::trim_ascii).filter(|v| !v.is_empty()) {
        out.extend_from_slice(value);
        out.extend_from_slice(b", ");
    }
    out.extend_from_slice(peer.ip.as_bytes());
}

/// The names a `Connection` header lists: hop-by-hop for this message.
fn connection_named(headers: &HeaderMap) -> Vec<HeaderName> {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|token| HeaderName::from_bytes(token.trim().as_bytes()).ok())
        .collect()
}

/// The request headers as the app receives them. `handover` is the client hand-over for
/// Rivetr's own API (see [`super::handover`]); any copy the client sent is dropped.
fn upstream_headers(
    parts: &mut Parts,
    host: &str,
    peer: &Peer,
    scheme: Scheme,
    upgrade: Option<&HeaderValue>,
    handover: Option<HeaderValue>,
) -> HeaderMap {
    let mut headers = std::mem::take(&mut parts.headers);
    strip_hop_by_hop(&mut headers);
    headers.remove(handover::HEADER);
    let forwarded = Forwarded::of(&headers, host, peer, scheme);
    for (name, value) in forwarded.fields() {
        headers.insert(name, value.clone());
    }
    if let Some(handover) = handover {
        headers.insert(handover::HEADER, handover);
    }
    if let Some(upgrade) = upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::UPGRADE, upgrade.clone());
    }
    headers
}

/// Writes the request head for the app straight from the client's header fields, however
/// they were read (a header map, or the raw head the plain-HTTP server parsed): the same
/// fields as [`upstream_headers`] gives, without building a second header map. `target` is
/// in origin form; `host` is the request's host, sent as `Host` when the client sent none.
#[allow(clippy::too_many_arguments)]
pub(super) fn write_upstream_head<'a, I>(
    out: &mut Vec<u8>,
    method: &[u8],
    target: &[u8],
    fields: impl Fn() -> I,
    host: &str,
    peer: &Peer,
    scheme: Scheme,
    handover: Option<&HeaderValue>,
) where
    I: Iterator<Item = (&'a [u8], &'a [u8])>,
{
    let is = |name: &[u8], known: &HeaderName| name.eq_ignore_ascii_case(known.as_str().as_bytes());
    let mut original_host = None;
    let mut named: Vec<&[u8]> = Vec::new();
    for (name, value) in fields() {
        if is(name, &header::HOST) {
            original_host.get_or_insert(value);
        } else if is(name, &header::CONNECTION) {
            // A client that lists Host in Connection would otherwise have the app get a
            // request without one: Host names the request, not the connection.
            named.extend(h1::tokens(value).filter(|t| !is(t, &header::HOST)));
        }
    }
    out.extend_from_slice(method);
    out.push(b' ');
    out.extend_from_slice(target);
    out.extend_from_slice(b" HTTP/1.1\r\n");
    let dropped = |name: &[u8]| {
        HOP_BY_HOP.iter().any(|h| is(name, h))
            || SET_BY_PROXY.iter().any(|h| is(name, h))
            || is(name, &handover::HEADER)
            || named.iter().any(|n| name.eq_ignore_ascii_case(n))
    };
    for (name, value) in fields() {
        if !dropped(name) {
            h1::write_field(out, name, value);
        }
    }
    // HTTP/2 carries the host in :authority, not in a field.
    if original_host.is_none() {
        h1::write_field(out, b"host", host.as_bytes());
    }
    let original_host = original_host.unwrap_or(host.as_bytes());
    out.extend_from_slice(b"x-forwarded-for: ");
    append_forwarded_for(
        out,
        fields()
            .filter(|(n, _)| is(n, &X_FORWARDED_FOR))
            .map(|(_, v)| v),
        peer,
    );
    out.extend_from_slice(b"\r\n");
    h1::write_field(out, b"x-forwarded-proto", scheme.as_str().as_bytes());
    h1::write_field(out, b"x-forwarded-host", original_host);
    h1::write_field(out, b"x-real-ip", peer.ip.as_bytes());
    if let Some(handover) = handover {
        h1::write_field(
            out,
            handover::HEADER.as_str().as_bytes(),
            handover.as_bytes(),
        );
    }
    out.extend_from_slice(b"\r\n");
}

/// Where the request body is kept between attempts on different upstreams.
enum BodySource {
    Empty,
    /// One upstream to try: the body goes straight through.
    Once(Option<Incoming>),
    /// Several upstreams: the body can be taken back if a connection fails.
    Shared(Arc<Mutex<Option<Incoming>>>),
}

impl BodySource {
    fn for_attempt(&mut self, route: &Route) -> Option<RequestBody> {
        match self {
            BodySource::Empty => Some(RequestBody::Empty),
            BodySource::Once(body) => body.take().map(|inner| RequestBody::Stream {
                inner,
                metrics: Arc::clone(&route.metrics),
            }),
            BodySource::Shared(slot) => {
                let still_here = slot.lock().unwrap_or_else(|e| e.into_inner()).is_some();
                still_here.then(|| RequestBody::reclaimable(slot, &route.metrics))
            }
        }
    }
}

impl Proxy {
    /// The client hand-over header for a request on `route`: only for Rivetr's own API
    /// (`[server] domain`), never for an app or a configured route.
    pub(super) fn handover_for(&self, route: &Route, peer: &Peer) -> Option<HeaderValue> {
        route
            .is_server
            .then(|| self.handover.value_for(peer.addr.ip()))
    }

    /// Sends the request to one of the route's upstreams and returns the app's response, or
    /// a 502/504 page of the proxy's own.
    pub(super) async fn forward(
        &self,
        pool: &Arc<Pool>,
        route: &RouteRef,
        mut req: Request<Incoming>,
        host: &str,
        peer: &Peer,
        scheme: Scheme,
    ) -> Response<ProxyBody> {
        let upgrade = requested_upgrade(&req);
        let client_upgrade = upgrade.as_ref().map(|_| hyper::upgrade::on(&mut req));
        let (mut parts, body) = req.into_parts();
        if body.is_end_stream() && upgrade.is_none() {
            return self
                .forward_lean(pool, route, &parts, host, peer, scheme)
                .await;
        }
        let headers = upstream_headers(
            &mut parts,
            host,
            peer,
            scheme,
            upgrade.as_ref(),
            self.handover_for(route, peer),
        );
        // Origin form for the app: an absolute-form or HTTP/2 target keeps only its path.
        let target = match parts.uri.path_and_query() {
            Some(_) if parts.uri.scheme().is_none() => parts.uri.clone(),
            Some(pq) => Uri::from(pq.clone()),
            None => Uri::from_static("/"),
        };
        let mut body = if body.is_end_stream() {
            BodySource::Empty
        } else if route.upstreams.len() > 1 {
            BodySource::Shared(Arc::new(Mutex::new(Some(body))))
        } else {
            BodySource::Once(Some(body))
        };

        let mut attempts_left = route.upstreams.len();
        let mut headers = Some(headers);
        for upstream in route.candidates() {
            let Some(attempt_body) = body.for_attempt(route) else {
                break;
            };
            attempts_left = attempts_left.saturating_sub(1);
            // The last attempt takes the headers; earlier ones copy them.
            let attempt_headers = if attempts_left == 0 {
                headers.take().unwrap_or_default()
            } else {
                headers.clone().unwrap_or_default()
            };
            let mut out = Request::new(attempt_body);
            *out.method_mut() = parts.method.clone();
            *out.uri_mut() = target.clone();
            *out.headers_mut() = attempt_headers;

            let sent = tokio::time::timeout(
                self.settings.response_timeout,
                pool.send(upstream.addr, out),
            )
            .await;
            match self.judge(route, upstream, host, sent) {
                Attempt::Answered((res, lease)) => {
                    return self.respond(res, lease, client_upgrade);
                }
                Attempt::NextUpstream => continue,
                Attempt::Failed(page) => return page(),
            }
        }
        pages::bad_gateway()
    }

    /// A request without a body and without an upgrade: over a lean connection (see `h1`).
    async fn forward_lean(
        &self,
        pool: &Arc<Pool>,
        route: &RouteRef,
        parts: &Parts,
        host: &str,
        peer: &Peer,
        scheme: Scheme,
    ) -> Response<ProxyBody> {
        let target = parts
            .uri
            .path_and_query()
            .map_or(&b"/"[..], |pq| pq.as_str().as_bytes());
        let fields = || {
            parts
                .headers
                .iter()
                .map(|(name, value)| (name.as_str().as_bytes(), value.as_bytes()))
        };
        let handover = self.handover_for(route, peer);
        let write_head = |out: &mut Vec<u8>| {
            write_upstream_head(
                out,
                parts.method.as_str().as_bytes(),
                target,
                fields,
                host,
                peer,
                scheme,
                handover.as_ref(),
            )
        };
        self.exchange_lean(pool, route, host, &parts.method, &write_head)
            .await
    }

    /// Sends a request without a body, its head written by `write_head`, to one of the
    /// route's upstreams over a lean connection, and returns the app's response or a 502/504
    /// page of the proxy's own.
    pub(super) async fn exchange_lean(
        &self,
        pool: &Arc<Pool>,
        route: &RouteRef,
        host: &str,
        method: &hyper::Method,
        write_head: &(dyn Fn(&mut Vec<u8>) + Sync),
    ) -> Response<ProxyBody> {
        for upstream in route.candidates() {
            let sent = tokio::time::timeout(
                self.settings.response_timeout,
                pool.send_lean(upstream.addr, method, write_head),
            )
            .await;
            match self.judge(route, upstream, host, sent) {
                Attempt::Answered(answer) => return self.respond_lean(answer),
                Attempt::NextUpstream => continue,
                Attempt::Failed(page) => return page(),
            }
        }
        pages::bad_gateway()
    }

    /// What one attempt on one upstream came to.
    fn judge<T>(
        &self,
        route: &Route,
        upstream: &super::routes::Upstream,
        host: &str,
        sent: Result<Result<T, PoolError>, tokio::time::error::Elapsed>,
    ) -> Attempt<T> {
        match sent {
            Err(_) => {
                route.metrics.count_upstream_error(UpstreamError::Timeout);
                tracing::warn!(host, upstream = %upstream.addr, timeout = ?self.settings.response_timeout, "app did not send response headers in time");
                Attempt::Failed(pages::gateway_timeout)
            }
            Ok(Err(e @ PoolError::Connect { .. })) => {
                route.metrics.count_upstream_error(UpstreamError::Connect);
                tracing::warn!(host, error = %e, failover = ?self.settings.failover, "cannot connect to app; skipping this upstream for a while");
                route.mark_down(upstream, self.settings.failover);
                Attempt::NextUpstream
            }
            Ok(Err(e)) if ClientBodyError::caused(&e) => {
                tracing::debug!(host, error = %e, "the client's request body was malformed or cut short");
                Attempt::Failed(pages::bad_request_body)
            }
            Ok(Err(e)) => {
                route.metrics.count_upstream_error(UpstreamError::Reset);
                tracing::warn!(host, error = %e, "app connection failed");
                Attempt::Failed(pages::bad_gateway)
            }
            Ok(Ok(answer)) => Attempt::Answered(answer),
        }
    }

    /// An app's answer on a lean connection as the client receives it.
    fn respond_lean(&self, answer: h1::Answer) -> Response<ProxyBody> {
        // The lean exchange has already left out the hop-by-hop headers.
        let (parts, ()) = answer.response.into_parts();
        if parts.status == StatusCode::SWITCHING_PROTOCOLS {
            // An app may not switch protocols nobody asked for.
            return pages::bad_gateway();
        }
        if answer.body.is_complete() {
            return Response::from_parts(parts, ProxyBody::empty());
        }
        let body = UpstreamBody::lean(answer.body, self.settings.idle_timeout);
        Response::from_parts(parts, ProxyBody::Upstream(body))
    }

    /// The app's response as the client receives it.
    fn respond(
        &self,
        mut res: Response<Incoming>,
        lease: Lease,
        client_upgrade: Option<hyper::upgrade::OnUpgrade>,
    ) -> Response<ProxyBody> {
        if res.status() == StatusCode::SWITCHING_PROTOCOLS {
            let Some(client_upgrade) = client_upgrade else {
                // An app may not switch protocols nobody asked for.
                return pages::bad_gateway();
            };
            let upstream_upgrade = hyper::upgrade::on(&mut res);
            tunnel(client_upgrade, upstream_upgrade);
            let upgrade = res.headers().get(header::UPGRADE).cloned();
            let (mut parts, _) = res.into_parts();
            strip_hop_by_hop(&mut parts.headers);
            if let Some(upgrade) = upgrade {
                parts
                    .headers
                    .insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
                parts.headers.insert(header::UPGRADE, upgrade);
            }
            return Response::from_parts(parts, ProxyBody::empty());
        }
        let (mut parts, body) = res.into_parts();
        one_length(&mut parts.headers);
        strip_hop_by_hop(&mut parts.headers);
        if body.is_end_stream() {
            lease.release_when_ready();
            return Response::from_parts(parts, ProxyBody::empty());
        }
        let body = UpstreamBody::new(body, self.settings.idle_timeout, lease);
        Response::from_parts(parts, ProxyBody::Upstream(body))
    }
}

/// The app's framing fields as the client gets them, as `h1` leaves them on the lean path.
/// hyper framed the body by `Transfer-Encoding` when there is one, and a proxy removes
/// `Content-Length` then (RFC 9112 6.3): left in, it told the client a length the body did
/// not have. Equal duplicate or listed lengths, which hyper accepts, go out as one field.
fn one_length(headers: &mut HeaderMap) {
    if headers.contains_key(header::TRANSFER_ENCODING) {
        headers.remove(header::CONTENT_LENGTH);
        return;
    }
    let mut values = headers.get_all(header::CONTENT_LENGTH).iter();
    let (Some(first), second) = (values.next(), values.next()) else {
        return;
    };
    if second.is_none() && !first.as_bytes().contains(&b',') {
        return;
    }
    // hyper refused the answer unless every length is the same number.
    let one = first
        .as_bytes()
        .split(|&b| b == b',')
        .next()
        .unwrap_or_default();
    if let Ok(one) = HeaderValue::from_bytes(one.trim_ascii()) {
        headers.insert(header::CONTENT_LENGTH, one);
    }
}

enum Attempt<T> {
    Answered(T),
    NextUpstream,
    /// The answer for the client is this page of the proxy's own.
    Failed(fn() -> Response<ProxyBody>),
}

/// Copies bytes both ways between an upgraded client connection and the app.
fn tunnel(client: hyper::upgrade::OnUpgrade, upstream: hyper::upgrade::OnUpgrade) {
    // Detached on purpose: it ends when either side closes.
    tokio::spawn(async move {
        let (client, upstream) = tokio::join!(client, upstream);
        let (client, upstream) = match (client, upstream) {
            (Ok(c), Ok(u)) => (c, u),
            (Err(e), _) | (_, Err(e)) => {
                tracing::debug!(error = %e, "upgrade did not complete");
                return;
            }
        };
        let mut client = TokioIo::new(client);
        let mut upstream = TokioIo::new(upstream);
        if let Err(e) = super::tunnel::copy_both_ways(&mut client, &mut upstream).await {
            tracing::debug!(error = %e, "upgraded connection ended with an error");
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forged_request() -> Parts {
        let (parts, ()) = Request::builder()
            .uri("/api/tokens")
            .header(header::HOST, "rivetr.example")
            .header(handover::HEADER, "192.0.2.1 forged")
            .header("x-kept", "yes")
            .body(())
            .unwrap()
            .into_parts();
        parts
    }

    #[test]
    fn a_client_copy_of_the_handover_is_replaced_or_dropped_on_both_paths() {
        let peer = Peer::new("203.0.113.9:4000".parse().unwrap());
        let ours = HeaderValue::from_static("203.0.113.9 genuine");
        for handover in [Some(ours.clone()), None] {
            let mut parts = forged_request();
            let headers = upstream_headers(
                &mut parts,
                "rivetr.example",
                &peer,
                Scheme::Https,
                None,
                handover.clone(),
            );
            let sent: Vec<_> = headers.get_all(handover::HEADER).iter().collect();
            assert_eq!(sent, handover.iter().collect::<Vec<_>>());
            assert_eq!(headers["x-kept"], "yes");

            let parts = forged_request();
            let mut head = Vec::new();
            write_upstream_head(
                &mut head,
                b"GET",
                b"/api/tokens",
                || {
                    parts
                        .headers
                        .iter()
                        .map(|(n, v)| (n.as_str().as_bytes(), v.as_bytes()))
                },
                "rivetr.example",
                &peer,
                Scheme::Http,
                handover.as_ref(),
            );
            let head = String::from_utf8(head).unwrap();
            assert!(!head.contains("forged"), "{head}");
            assert_eq!(
                head.contains("x-rivetr-client: 203.0.113.9 genuine\r\n"),
                handover.is_some(),
                "{head}"
            );
            assert!(head.contains("x-kept: yes\r\n"), "{head}");
        }
    }

    #[test]
    fn strips_standard_and_connection_named_headers() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, X-Foo"),
        );
        h.insert("x-foo", HeaderValue::from_static("1"));
        h.insert("x-bar", HeaderValue::from_static("2"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert(header::TE, HeaderValue::from_static("trailers"));
        h.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        h.insert(header::UPGRADE, HeaderValue::from_static("h2c"));
        h.insert(header::PROXY_AUTHORIZATION, HeaderValue::from_static("x"));
        strip_hop_by_hop(&mut h);
        let left: Vec<_> = h.keys().map(|k| k.as_str().to_owned()).collect();
        assert_eq!(left, vec!["x-bar"]);
    }
}
