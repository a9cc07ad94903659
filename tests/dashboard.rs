//! The dashboard as the real binary serves it: the shell and its assets, compression chosen
//! by `Accept-Encoding`, ETags and 304, the fallback to the shell for browser-side routes,
//! and the security headers. (Sessions and the event stream have tests of their own below.)

use crate::common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::api::{Api, initial_token, request};
use common::platform::{GitRepo, Platform, unique_name};
use common::sse::Sse;
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

/// `rivetr_session=<value>` from a Set-Cookie header.
fn session_cookie(set_cookie: &str) -> String {
    set_cookie.split(';').next().unwrap().trim().to_owned()
}

fn sign_in(addr: SocketAddr, token: &str, extra: &[(&str, &str)]) -> common::api::Resp {
    let mut headers = vec![("Content-Type", "application/json")];
    headers.extend_from_slice(extra);
    request(
        addr,
        "POST",
        "/api/session",
        &headers,
        format!("{{\"token\": \"{token}\"}}").as_bytes(),
    )
}

#[test]
fn a_token_becomes_a_strict_http_only_session_that_ends_on_sign_out_and_revocation() {
    let dir = TestDir::new();
    let (rivetr, api) = start(&dir);
    let addr = rivetr.api();

    let bad = sign_in(addr, &format!("rvt_{}", "0".repeat(64)), &[]);
    assert_eq!(bad.status, 401, "{}", bad.body);
    assert!(bad.header("set-cookie").is_none());

    let ok = sign_in(addr, &api.token, &[]);
    assert_eq!(ok.status, 201, "{}", ok.body);
    assert_eq!(ok.json()["token_name"], "initial-admin");
    let set = ok.header("set-cookie").unwrap().to_owned();
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set.contains(attr), "{attr} missing: {set}");
    }
    assert!(!set.contains("Secure"), "plain HTTP: {set}");
    assert!(!set.contains(&api.token), "the token is not the cookie");
    let cookie = session_cookie(&set);
    let value = cookie.strip_prefix("rivetr_session=").unwrap().to_owned();

    // Stored hashed: the row holds SHA-256 of the value, and the value is nowhere.
    let db = common::api::open_db(dir.path());
    let stored: Vec<u8> = db
        .query_row("SELECT secret_hash FROM sessions", [], |r| r.get(0))
        .unwrap();
    assert_eq!(stored, rivetr::auth::hash(&value).to_vec());
    drop(db);

    // Over HTTPS (the proxy says so) the cookie is Secure.
    let tls = sign_in(addr, &api.token, &[("X-Forwarded-Proto", "https")]);
    assert!(tls.header("set-cookie").unwrap().contains("; Secure"));

    // The cookie authenticates reads ...
    let me = request(addr, "GET", "/api/session", &[("Cookie", &cookie)], b"");
    assert_eq!(me.status, 200, "{}", me.body);
    let apps = request(addr, "GET", "/api/apps", &[("Cookie", &cookie)], b"");
    assert_eq!(apps.status, 200, "{}", apps.body);

    // ... and changes only from the dashboard's own origin (or with its header).
    let create = |headers: &[(&str, &str)], name: &str| {
        let mut h = vec![
            ("Cookie", cookie.as_str()),
            ("Content-Type", "application/json"),
        ];
        h.extend_from_slice(headers);
        request(
            addr,
            "POST",
            "/api/tokens",
            &h,
            format!("{{\"name\": \"{name}\"}}").as_bytes(),
        )
    };
    let none = create(&[], "a");
    assert_eq!(none.status, 403, "{}", none.body);
    assert_eq!(none.code(), "forbidden");
    let evil = create(&[("Origin", "http://evil.test")], "b");
    assert_eq!(evil.status, 403, "{}", evil.body);
    let other_port = create(&[("Origin", "http://localhost:1")], "c");
    assert_eq!(other_port.status, 403, "{}", other_port.body);
    let same = create(&[("Origin", "http://localhost")], "d");
    assert_eq!(same.status, 201, "{}", same.body);
    let header = create(&[("X-Rivetr-Request", "1")], "e");
    assert_eq!(header.status, 201, "{}", header.body);
    // Bearer clients are unaffected: no Origin needed.
    assert_eq!(
        api.post_json("/api/tokens", "{\"name\": \"f\"}").status,
        201
    );

    // Sign-out ends the session; the old cookie no longer works.
    let out = request(
        addr,
        "DELETE",
        "/api/session",
        &[("Cookie", &cookie), ("Origin", "http://localhost")],
        b"",
    );
    assert_eq!(out.status, 204);
    assert!(out.header("set-cookie").unwrap().contains("Max-Age=0"));
    let after = request(addr, "GET", "/api/apps", &[("Cookie", &cookie)], b"");
    assert_eq!(after.status, 401, "{}", after.body);

    // Revoking the token ends its sessions.
    let token = same.json()["token"].as_str().unwrap().to_owned();
    let id = same.json()["id"].as_i64().unwrap();
    let second = session_cookie(sign_in(addr, &token, &[]).header("set-cookie").unwrap());
    let before = request(addr, "GET", "/api/apps", &[("Cookie", &second)], b"");
    assert_eq!(before.status, 200);
    assert_eq!(api.delete(&format!("/api/tokens/{id}")).status, 200);
    let revoked = request(addr, "GET", "/api/apps", &[("Cookie", &second)], b"");
    assert_eq!(revoked.status, 401, "{}", revoked.body);
    assert_eq!(
        sign_in(addr, &token, &[]).status,
        401,
        "a revoked token cannot sign in"
    );

    // Failed sign-ins count toward the client's limit, shared with bearer tokens. The limit
    // stops guessing and nothing else: a valid token still signs in from that address.
    for _ in 0..12 {
        sign_in(addr, "not-a-token", &[]);
    }
    let limited = sign_in(addr, &format!("rvt_{}", "0".repeat(64)), &[]);
    assert_eq!(limited.status, 429, "{}", limited.body);
    assert!(limited.header("retry-after").is_some());
    let valid = sign_in(addr, &api.token, &[]);
    assert_eq!(valid.status, 201, "{}", valid.body);
    let bearer = request(
        addr,
        "GET",
        "/api/apps",
        &[("Authorization", "Bearer rvt_wrong")],
        b"",
    );
    assert_eq!(bearer.status, 429);
}

#[test]
fn the_event_stream_reports_deployments_and_the_log_resumes_after_last_event_id() {
    let Some(socket) = common::platform::podman_socket("dashboard events") else {
        return;
    };
    let platform = Platform::start(&socket, &[]);
    let addr = platform.rivetr.api();
    let cookie = session_cookie(
        sign_in(addr, &platform.token, &[])
            .header("set-cookie")
            .unwrap(),
    );
    let mut events = Sse::open(addr, "/api/events", &[("Cookie", &cookie)]);
    assert_eq!(events.status, 200);
    assert_eq!(events.next().unwrap().event, "ready");

    let repo = GitRepo::new("<h1>events</h1>\n");
    let app = platform.create_app(&unique_name("ev"), repo.path(), serde_json::json!({}));
    let created = events.next().unwrap();
    assert_eq!(created.event, "app");
    assert_eq!(created.json()["app"], app.as_str());
    assert_eq!(created.json()["status"], "created");

    let id = platform.deploy(&app, None);
    let mut seen = Vec::new();
    let mut last_seq = created.id.clone().unwrap().parse::<u64>().unwrap();
    loop {
        let e = events.next().expect("the stream goes on");
        let seq: u64 = e.id.clone().unwrap().parse().unwrap();
        assert_eq!(seq, last_seq + 1, "ids rise by one: {e:?}");
        last_seq = seq;
        let data = e.json();
        assert_eq!(data["deployment"], id, "{e:?}");
        seen.push((e.event.clone(), data["status"].as_str().unwrap().to_owned()));
        if e.event == "deployment_finished" {
            break;
        }
    }
    let expected: Vec<(String, String)> = [
        ("deployment_created", "queued"),
        ("deployment_stage", "cloning"),
        ("deployment_stage", "building"),
        ("deployment_stage", "starting"),
        ("deployment_stage", "health_checking"),
        ("deployment_stage", "switching"),
        ("deployment_finished", "running"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(seen, expected);

    // The log: read part of it, drop the connection, resume from the last id: together
    // they are the whole log, in order, without a repeat.
    let path = format!("/api/deployments/{id}/logs?follow=1");
    let mut first = Sse::open(addr, &path, &[("Cookie", &cookie)]);
    let mut got: Vec<i64> = Vec::new();
    for _ in 0..3 {
        let e = first.next().unwrap();
        assert_eq!(e.event, "line");
        let line_id: i64 = e.id.clone().unwrap().parse().unwrap();
        assert_eq!(e.json()["id"], line_id, "the event id is the line's id");
        got.push(line_id);
    }
    drop(first);
    let last = got.last().unwrap().to_string();
    let mut resumed = Sse::open(
        addr,
        &path,
        &[("Cookie", &cookie), ("Last-Event-ID", &last)],
    );
    loop {
        let e = resumed.next().expect("an end event");
        if e.event == "end" {
            assert_eq!(e.json()["status"], "running");
            break;
        }
        got.push(e.id.unwrap().parse().unwrap());
    }
    let (_, all) = platform.api("GET", &format!("/api/deployments/{id}/logs"), None);
    let all: Vec<i64> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["id"].as_i64().unwrap())
        .collect();
    assert_eq!(got, all);
    let bad = request(
        addr,
        "GET",
        &path,
        &[("Cookie", &cookie), ("Last-Event-ID", "yesterday")],
        b"",
    );
    assert_eq!(bad.status, 400, "{}", bad.body);
}

/// The dashboard's API types (`frontend/src/lib/api-types.ts`) are generated from the
/// running binary's `/api/openapi.json` with openapi-typescript; this fails when they differ,
/// so the API and the dashboard cannot drift apart. `RIVETR_UPDATE_API_TYPES=1` rewrites the
/// file instead.
#[test]
fn the_dashboards_api_types_match_what_the_binary_documents() {
    let dir = TestDir::new();
    let (rivetr, _) = start(&dir);
    let doc = fetch(rivetr.api(), "GET", "/api/openapi.json", &[]);
    assert_eq!(doc.status, 200);
    let spec = dir.path().join("openapi.json");
    std::fs::write(&spec, &doc.body).unwrap();
    let generated = dir.path().join("api-types.ts");
    let frontend = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("frontend");
    let out = Command::new("node")
        .arg("node_modules/openapi-typescript/bin/cli.js")
        .arg(&spec)
        .arg("--output")
        .arg(&generated)
        .current_dir(&frontend)
        .output()
        .expect("node runs openapi-typescript (installed by the dashboard's build)");
    assert!(
        out.status.success(),
        "openapi-typescript failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let fresh = std::fs::read_to_string(&generated).unwrap();
    let committed_path = frontend.join("src/lib/api-types.ts");
    if std::env::var("RIVETR_UPDATE_API_TYPES").is_ok_and(|v| v == "1") {
        std::fs::write(&committed_path, &fresh).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(&committed_path).unwrap_or_default();
    assert!(
        committed == fresh,
        "frontend/src/lib/api-types.ts differs from what this binary documents at \
         /api/openapi.json; regenerate it with\n    RIVETR_UPDATE_API_TYPES=1 cargo test --test \
         dashboard the_dashboards_api_types\nand commit it"
    );
}
