//! The dashboard: the React app's built files, embedded in the binary and served on the API
//! listener for every path that is not `/api/...` or `/webhooks/...`.
//!
//! `build.rs` builds `frontend/` (cargo feature `dashboard`) and precompresses it; this module
//! owns how the files are answered: the representation chosen by `Accept-Encoding` (brotli,
//! gzip, or as is), a strong ETag per representation with 304 for `If-None-Match`, hashed
//! assets cached for a year and the shell revalidated every time, the app shell for any other
//! path (the browser-side router takes it from there), and the security headers on every
//! answer. Without the feature, every such path answers a short page saying so. It never
//! reads the database nor knows about sessions: the shell is public, the API is not.

use axum::body::Body;
use axum::http::header::{
    ACCEPT_ENCODING, CACHE_CONTROL, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE, ETAG,
    IF_NONE_MATCH, REFERRER_POLICY, VARY, X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::Response;

/// One built file and its precompressed forms.
#[derive(Debug)]
pub struct Asset {
    /// The URL path, `/index.html` or `/assets/index-<hash>.js`.
    pub path: &'static str,
    pub content_type: &'static str,
    /// A digest of the content; the ETag is made from it.
    pub digest: &'static str,
    pub identity: &'static [u8],
    pub gzip: Option<&'static [u8]>,
    pub brotli: Option<&'static [u8]>,
}

#[cfg(feature = "dashboard")]
mod built {
    use super::Asset;
    include!(concat!(env!("OUT_DIR"), "/dashboard_files.rs"));
}

/// The files this binary serves; empty without the `dashboard` feature.
#[cfg(feature = "dashboard")]
pub fn files() -> &'static [Asset] {
    built::FILES
}

#[cfg(not(feature = "dashboard"))]
pub fn files() -> &'static [Asset] {
    &[]
}

/// True when this binary has the dashboard built in.
pub fn built_in() -> bool {
    !files().is_empty()
}

/// The only sources the dashboard may load from: itself. No inline script or style.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'self'; \
     object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// Hashed file names change with their content, so they can be kept for a year.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// The shell (and anything not hashed) is checked with the server on every load.
const REVALIDATE: &str = "no-cache";
const SHELL: &str = "/index.html";

/// True for paths the dashboard answers: everything but the API and the forge webhooks.
pub fn is_dashboard_path(path: &str) -> bool {
    let under = |prefix: &str| path == prefix || path.starts_with(&format!("{prefix}/"));
    !under("/api") && !under("/webhooks")
}

/// The answer to `method path` with `headers`, or `None` when the method is not one the
/// dashboard serves (the caller says 404 or 405).
pub fn serve(method: &Method, path: &str, headers: &HeaderMap) -> Option<Response> {
    if method != Method::GET && method != Method::HEAD {
        return None;
    }
    let head = method == Method::HEAD;
    if !built_in() {
        return Some(without_dashboard(head));
    }
    Some(serve_from(files(), path, headers, head))
}

/// [`serve`] over a given set of files (for tests).
pub fn serve_from(files: &[Asset], path: &str, headers: &HeaderMap, head: bool) -> Response {
    let asset = match find(files, path) {
        Some(asset) => asset,
        // A missing hashed file is a stale or mistyped link: the shell would be served as
        // JavaScript and fail obscurely.
        None if path.starts_with("/assets/") => return not_found(head),
        None => match find(files, SHELL) {
            Some(shell) => shell,
            None => return not_found(head),
        },
    };
    let (encoding, body) = choose_encoding(asset, headers);
    let etag = etag(asset, encoding);
    let cache = if asset.path.starts_with("/assets/") {
        IMMUTABLE
    } else {
        REVALIDATE
    };
    let mut res = Response::new(Body::empty());
    let h = res.headers_mut();
    h.insert(ETAG, header(&etag));
    h.insert(CACHE_CONTROL, HeaderValue::from_static(cache));
    h.insert(VARY, HeaderValue::from_static("Accept-Encoding"));
    security_headers(h);
    if not_modified(headers, &etag) {
        *res.status_mut() = StatusCode::NOT_MODIFIED;
        return res;
    }
    let h = res.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(asset.content_type));
    if let Some(name) = encoding.name() {
        h.insert(CONTENT_ENCODING, HeaderValue::from_static(name));
    }
    h.insert(CONTENT_LENGTH, HeaderValue::from(body.len()));
    if !head {
        *res.body_mut() = Body::from(body);
    }
    res
}

fn find<'a>(files: &'a [Asset], path: &str) -> Option<&'a Asset> {
    let path = if path == "/" { SHELL } else { path };
    files.iter().find(|a| a.path == path)
}

fn header(value: &str) -> HeaderValue {
    HeaderValue::from_str(value).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// The headers every dashboard answer carries.
pub fn security_headers(h: &mut HeaderMap) {
    h.insert(
        "content-security-policy",
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    h.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    h.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
}

/// A content coding of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Identity,
    Gzip,
    Brotli,
}

impl Encoding {
    fn name(self) -> Option<&'static str> {
        match self {
            Encoding::Identity => None,
            Encoding::Gzip => Some("gzip"),
            Encoding::Brotli => Some("br"),
        }
    }
}

/// The smallest form the client accepts: brotli, then gzip, then the file as is.
fn choose_encoding(asset: &Asset, headers: &HeaderMap) -> (Encoding, &'static [u8]) {
    let accept = headers
        .get(ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if let Some(br) = asset.brotli.filter(|_| accepts(accept, "br")) {
        return (Encoding::Brotli, br);
    }
    if let Some(gz) = asset.gzip.filter(|_| accepts(accept, "gzip")) {
        return (Encoding::Gzip, gz);
    }
    (Encoding::Identity, asset.identity)
}

/// True when `Accept-Encoding` allows `coding` (named, or through `*`, with a q-value above
/// zero). A coding named explicitly wins over `*`.
pub fn accepts(accept: &str, coding: &str) -> bool {
    let mut wildcard = None;
    for item in accept.split(',') {
        let mut parts = item.split(';');
        let name = parts.next().unwrap_or("").trim();
        let q = parts
            .filter_map(|p| p.trim().strip_prefix("q=").or(p.trim().strip_prefix("Q=")))
            .find_map(|q| q.trim().parse::<f32>().ok())
            .unwrap_or(1.0);
        if name.eq_ignore_ascii_case(coding) {
            return q > 0.0;
        }
        if name == "*" {
            wildcard = Some(q > 0.0);
        }
    }
    wildcard.unwrap_or(false)
}

/// A strong ETag for one representation: each encoding is its own byte sequence.
fn etag(asset: &Asset, encoding: Encoding) -> String {
    match encoding.name() {
        Some(name) => format!("\"{}-{name}\"", asset.digest),
        None => format!("\"{}\"", asset.digest),
    }
}

/// `If-None-Match` names this representation (weak comparison, as RFC 9110 says for it).
pub fn not_modified(headers: &HeaderMap, etag: &str) -> bool {
    let strip = |t: &str| t.trim().trim_start_matches("W/").to_owned();
    headers.get_all(IF_NONE_MATCH).iter().any(|v| {
        v.to_str().is_ok_and(|list| {
            list.split(',')
                .any(|t| t.trim() == "*" || strip(t) == strip(etag))
        })
    })
}

fn not_found(head: bool) -> Response {
    let body = "not found\n";
    let mut res = Response::new(if head {
        Body::empty()
    } else {
        Body::from(body)
    });
    *res.status_mut() = StatusCode::NOT_FOUND;
    let h = res.headers_mut();
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    h.insert(CONTENT_LENGTH, HeaderValue::from(body.len()));
    h.insert(CACHE_CONTROL, HeaderValue::from_static(REVALIDATE));
    security_headers(h);
    res
}

/// What a binary built with `--no-default-features` shows instead of the dashboard.
const NO_DASHBOARD: &str = "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<title>Rivetr: no dashboard</title></head><body><h1>This Rivetr has no dashboard</h1>\
<p>This binary was built without its dashboard (<code>--no-default-features</code>). The API \
(<code>/api</code>, described by <a href=\"/api/openapi.json\">/api/openapi.json</a>) and the \
<code>rivetr</code> command-line client work as usual. Build with the default features, which \
need Node.js 20.19 or newer, to have the dashboard.</p></body></html>\n";

fn without_dashboard(head: bool) -> Response {
    let mut res = Response::new(if head {
        Body::empty()
    } else {
        Body::from(NO_DASHBOARD)
    });
    let h = res.headers_mut();
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(CONTENT_LENGTH, HeaderValue::from(NO_DASHBOARD.len()));
    h.insert(CACHE_CONTROL, HeaderValue::from_static(REVALIDATE));
    security_headers(h);
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILES: &[Asset] = &[
        Asset {
            path: "/index.html",
            content_type: "text/html; charset=utf-8",
            digest: "shell",
            identity: b"<html>shell</html>",
            gzip: Some(b"GZ-shell"),
            brotli: Some(b"BR-shell"),
        },
        Asset {
            path: "/assets/app-1234.js",
            content_type: "text/javascript; charset=utf-8",
            digest: "js",
            identity: b"console.log(1)",
            gzip: Some(b"GZ-js"),
            brotli: None,
        },
    ];

    fn get(path: &str, headers: &[(&'static str, &'static str)]) -> Response {
        let mut map = HeaderMap::new();
        for (k, v) in headers {
            map.append(*k, HeaderValue::from_static(v));
        }
        serve_from(FILES, path, &map, false)
    }

    fn h<'a>(res: &'a Response, name: &str) -> &'a str {
        res.headers()
            .get(name)
            .map(|v| v.to_str().unwrap())
            .unwrap_or("")
    }

    #[test]
    fn accept_encoding_is_read_with_q_values_and_wildcards() {
        assert!(accepts("gzip, deflate, br", "br"));
        assert!(accepts("gzip;q=0.5", "gzip"));
        assert!(!accepts("gzip;q=0", "gzip"));
        assert!(!accepts("br;q=0, *", "br"));
        assert!(accepts("*", "br"));
        assert!(!accepts("", "gzip"));
        assert!(!accepts("identity", "gzip"));
        assert!(accepts("GZIP", "gzip"));
    }

    #[test]
    fn the_smallest_accepted_encoding_is_sent_with_its_own_etag() {
        let res = get("/", &[("accept-encoding", "gzip, br")]);
        assert_eq!(h(&res, "content-encoding"), "br");
        assert_eq!(h(&res, "etag"), "\"shell-br\"");
        let res = get("/", &[("accept-encoding", "gzip")]);
        assert_eq!(h(&res, "content-encoding"), "gzip");
        assert_eq!(h(&res, "etag"), "\"shell-gzip\"");
        let res = get("/", &[]);
        assert_eq!(h(&res, "content-encoding"), "");
        assert_eq!(h(&res, "etag"), "\"shell\"");
        assert_eq!(h(&res, "vary"), "Accept-Encoding");
        // No brotli form of this file: gzip it is.
        let res = get("/assets/app-1234.js", &[("accept-encoding", "br, gzip")]);
        assert_eq!(h(&res, "content-encoding"), "gzip");
    }

    #[test]
    fn etags_answer_304_only_for_the_same_representation() {
        let res = get(
            "/",
            &[("accept-encoding", "br"), ("if-none-match", "\"shell-br\"")],
        );
        assert_eq!(res.status(), StatusCode::NOT_MODIFIED);
        assert_eq!(h(&res, "etag"), "\"shell-br\"");
        assert_eq!(h(&res, "content-security-policy"), CONTENT_SECURITY_POLICY);
        let res = get(
            "/",
            &[
                ("accept-encoding", "gzip"),
                ("if-none-match", "\"shell-br\""),
            ],
        );
        assert_eq!(res.status(), StatusCode::OK);
        let res = get("/", &[("if-none-match", "\"x\", W/\"shell\"")]);
        assert_eq!(res.status(), StatusCode::NOT_MODIFIED);
    }

    #[test]
    fn hashed_assets_are_immutable_and_the_shell_is_revalidated() {
        assert_eq!(
            h(&get("/assets/app-1234.js", &[]), "cache-control"),
            IMMUTABLE
        );
        assert_eq!(h(&get("/", &[]), "cache-control"), "no-cache");
        assert_eq!(
            h(&get("/apps/web/deployments/3", &[]), "cache-control"),
            "no-cache"
        );
    }

    #[test]
    fn unknown_paths_get_the_shell_but_missing_assets_get_404() {
        let res = get("/apps/web", &[]);
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(h(&res, "content-type"), "text/html; charset=utf-8");
        assert_eq!(h(&res, "etag"), "\"shell\"");
        let res = get("/assets/app-0000.js", &[]);
        assert_eq!(res.status(), StatusCode::NOT_FOUND);
        assert_eq!(h(&res, "x-frame-options"), "DENY");
    }

    #[test]
    fn api_and_webhook_paths_are_not_the_dashboard() {
        for p in ["/api", "/api/apps", "/webhooks", "/webhooks/github/x"] {
            assert!(!is_dashboard_path(p), "{p}");
        }
        for p in ["/", "/apps", "/apix", "/webhooksx", "/tokens"] {
            assert!(is_dashboard_path(p), "{p}");
        }
    }

    #[test]
    fn every_answer_has_the_security_headers() {
        for res in [
            get("/", &[]),
            get("/assets/app-1234.js", &[]),
            get("/assets/nope.js", &[]),
        ] {
            assert_eq!(h(&res, "x-frame-options"), "DENY");
            assert_eq!(h(&res, "referrer-policy"), "same-origin");
            assert_eq!(h(&res, "x-content-type-options"), "nosniff");
            assert!(h(&res, "content-security-policy").contains("default-src 'self'"));
            assert!(!h(&res, "content-security-policy").contains("unsafe-inline"));
        }
    }
}
