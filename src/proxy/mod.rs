//! The reverse proxy on the public `http` listener.
//!
//! Host routing arrives with the proxy proper; until then every request is answered 404,
//! naming the host that has no app, so a misdirected DNS record is easy to diagnose.

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HOST};
use hyper::service::Service;
use hyper::{Request, Response, StatusCode};

/// The service for one proxy connection.
pub fn service(
    _peer: SocketAddr,
) -> impl Service<Request<Incoming>, Response = Response<Full<Bytes>>, Error = Infallible, Future: Send>
+ Send
+ 'static {
    hyper::service::service_fn(|req: Request<Incoming>| async move { Ok(no_app(&req)) })
}

fn no_app(req: &Request<Incoming>) -> Response<Full<Bytes>> {
    let host = req
        .headers()
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri().host())
        .unwrap_or("(none)");
    let host: String = host.chars().filter(|c| !c.is_control()).take(255).collect();
    let mut res = Response::new(Full::new(Bytes::from(format!("no app for host {host}\n"))));
    *res.status_mut() = StatusCode::NOT_FOUND;
    res.headers_mut().insert(
        CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    res
}
