//! The proxy's own short answers. They name the host that was asked for and nothing inside
//! Rivetr (no upstream address, no app name, no error detail).

use hyper::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue, LOCATION};
use hyper::{Response, StatusCode};

use super::body::ProxyBody;

fn page(status: StatusCode, text: String) -> Response<ProxyBody> {
    let mut res = Response::new(ProxyBody::page(text));
    *res.status_mut() = status;
    let headers = res.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

/// Printable, bounded form of a client-supplied host for a page.
fn shown(host: &str) -> String {
    host.chars()
        .filter(|c| c.is_ascii_graphic())
        .take(253)
        .collect()
}

pub fn no_route(host: &str) -> Response<ProxyBody> {
    page(
        StatusCode::NOT_FOUND,
        format!("404 Not Found: no app for host {}\n", shown(host)),
    )
}

pub fn bad_request(why: &str) -> Response<ProxyBody> {
    page(StatusCode::BAD_REQUEST, format!("400 Bad Request: {why}\n"))
}

pub fn bad_request_body() -> Response<ProxyBody> {
    bad_request("the request body is malformed or was cut short")
}

pub fn bad_gateway() -> Response<ProxyBody> {
    page(
        StatusCode::BAD_GATEWAY,
        "502 Bad Gateway: the app is not answering\n".to_owned(),
    )
}

pub fn gateway_timeout() -> Response<ProxyBody> {
    page(
        StatusCode::GATEWAY_TIMEOUT,
        "504 Gateway Timeout: the app did not answer in time\n".to_owned(),
    )
}

pub fn redirect(location: &str) -> Response<ProxyBody> {
    let mut res = page(
        StatusCode::PERMANENT_REDIRECT,
        format!("308 Permanent Redirect: {location}\n"),
    );
    if let Ok(v) = HeaderValue::from_str(location) {
        res.headers_mut().insert(LOCATION, v);
    }
    res
}

pub fn text(status: StatusCode, text: String) -> Response<ProxyBody> {
    page(status, text)
}
