//! The dashboard as the real binary serves it: the shell and its assets, compression chosen
//! by `Accept-Encoding`, ETags and 304, the fallback to the shell for browser-side routes,
//! and the security headers. (Sessions and the event stream have tests of their own below.)

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::api::{Api, initial_token};
use common::{Launch, Rivetr, TestDir};

fn start(dir: &TestDir) -> (Rivetr, Api) {
    let mut rivetr = Launch::serve().start(dir);
    rivetr.wait_healthy();
    let api = Api {
        addr: rivetr.api(),
        token: initial_token(dir.path()),
    };
    (rivetr, api)
}

/// A response with its body as bytes (the dashboard's files may be compressed).
struct Raw {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Raw {
    fn header(&self, name: &str) -> &str {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

fn fetch(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)]) -> Raw {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let text = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = text.lines();
    let status = lines.next().unwrap().split_whitespace().nth(1).unwrap();
    Raw {
        status: status.parse().unwrap(),
        headers: lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect(),
        body: raw[split + 4..].to_vec(),
    }
}

/// Runs `program args` with `input` on stdin; its stdout.
fn pipe(program: &str, args: &[&str], input: &[u8]) -> Vec<u8> {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    child.stdin.take().unwrap().write_all(input).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{program} {args:?} failed");
    out.stdout
}

fn assert_security_headers(r: &Raw, what: &str) {
    let csp = r.header("content-security-policy");
    assert!(csp.contains("default-src 'self'"), "{what}: CSP {csp:?}");
    assert!(csp.contains("script-src 'self'"), "{what}: CSP {csp:?}");
    assert!(!csp.contains("unsafe-inline"), "{what}: CSP {csp:?}");
    assert_eq!(r.header("x-frame-options"), "DENY", "{what}");
    assert_eq!(r.header("referrer-policy"), "same-origin", "{what}");
    assert_eq!(r.header("x-content-type-options"), "nosniff", "{what}");
}

/// The first `/assets/...js` the shell loads.
fn script_of(shell: &str) -> String {
    let start = shell.find("/assets/").expect("the shell loads an asset");
    let rest = &shell[start..];
    let end = rest.find('"').unwrap();
    let path = &rest[..end];
    assert!(path.ends_with(".js"), "{path}");
    path.to_owned()
}

#[test]
fn the_shell_answers_every_browser_route_with_security_headers_and_no_cache() {
    let dir = TestDir::new();
    let (rivetr, _) = start(&dir);
    let root = fetch(rivetr.api(), "GET", "/", &[]);
    assert_eq!(root.status, 200);
    assert_eq!(root.header("content-type"), "text/html; charset=utf-8");
    assert_eq!(root.header("cache-control"), "no-cache");
    assert!(root.text().contains("<div id=\"root\">"), "{}", root.text());
    assert!(
        !root.text().contains("<script>"),
        "an inline script would break the CSP"
    );
    assert_security_headers(&root, "/");
    for deep in [
        "/apps/web",
        "/apps/web/deployments/12",
        "/tokens?x=1",
        "/system",
    ] {
        let r = fetch(rivetr.api(), "GET", deep, &[]);
        assert_eq!(r.status, 200, "{deep}");
        assert_eq!(r.body, root.body, "{deep} is the shell");
        assert_security_headers(&r, deep);
    }
    // The API and the webhooks keep their own answers.
    let api = fetch(rivetr.api(), "GET", "/api/nothing-here", &[]);
    assert_eq!(api.status, 401, "the token gate, not the shell");
    assert!(api.text().contains("\"unauthorized\""), "{}", api.text());
    let hook = fetch(rivetr.api(), "GET", "/webhooks/github/x", &[]);
    assert_ne!(hook.header("content-type"), "text/html; charset=utf-8");
    // Only GET and HEAD are the dashboard's.
    let post = fetch(rivetr.api(), "POST", "/apps", &[("content-length", "0")]);
    assert_eq!(post.status, 404);
    let head = fetch(rivetr.api(), "HEAD", "/", &[]);
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    assert_eq!(
        head.header("content-length"),
        root.body.len().to_string().as_str()
    );
}

#[test]
fn assets_are_precompressed_immutable_and_revalidated_by_etag() {
    let dir = TestDir::new();
    let (rivetr, _) = start(&dir);
    let shell = fetch(rivetr.api(), "GET", "/", &[]).text();
    let script = script_of(&shell);

    let plain = fetch(rivetr.api(), "GET", &script, &[]);
    assert_eq!(plain.status, 200);
    assert_eq!(plain.header("content-encoding"), "");
    assert_eq!(
        plain.header("content-type"),
        "text/javascript; charset=utf-8"
    );
    assert_eq!(
        plain.header("cache-control"),
        "public, max-age=31536000, immutable"
    );
    assert_eq!(plain.header("vary"), "Accept-Encoding");
    assert_security_headers(&plain, &script);

    let gz = fetch(rivetr.api(), "GET", &script, &[("accept-encoding", "gzip")]);
    assert_eq!(gz.header("content-encoding"), "gzip");
    assert!(gz.body.len() < plain.body.len() / 2, "gzip pays for JS");
    assert_eq!(pipe("gzip", &["-dc"], &gz.body), plain.body);

    let br = fetch(
        rivetr.api(),
        "GET",
        &script,
        &[("accept-encoding", "gzip, deflate, br, zstd")],
    );
    assert_eq!(br.header("content-encoding"), "br");
    assert!(br.body.len() < gz.body.len(), "brotli is the smaller one");
    let unbrotli =
        "process.stdout.write(require('zlib').brotliDecompressSync(require('fs').readFileSync(0)))";
    assert_eq!(pipe("node", &["-e", unbrotli], &br.body), plain.body);

    // Each representation has its own ETag, and a matching If-None-Match gets 304.
    let tags = [plain.header("etag"), gz.header("etag"), br.header("etag")];
    assert!(
        tags.iter().all(|t| t.starts_with('"') && t.ends_with('"')),
        "{tags:?}"
    );
    assert!(tags[0] != tags[1] && tags[1] != tags[2], "{tags:?}");
    let again = fetch(
        rivetr.api(),
        "GET",
        &script,
        &[("accept-encoding", "br"), ("if-none-match", tags[2])],
    );
    assert_eq!(again.status, 304);
    assert!(again.body.is_empty());
    assert_eq!(again.header("etag"), tags[2]);
    assert_security_headers(&again, "304");
    let shell_tag = fetch(rivetr.api(), "GET", "/", &[])
        .header("etag")
        .to_owned();
    let shell_again = fetch(
        rivetr.api(),
        "GET",
        "/apps",
        &[("if-none-match", &shell_tag)],
    );
    assert_eq!(shell_again.status, 304);

    // A hashed file that does not exist is a 404, not the shell.
    let missing = fetch(rivetr.api(), "GET", "/assets/index-00000000.js", &[]);
    assert_eq!(missing.status, 404);
    assert_security_headers(&missing, "404");
}
