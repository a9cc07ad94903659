//! Regression tests: one per defect fixed, named after the issue and what it guards
//! (`issue_11_...`), each failing before its fix. The model is ripgrep's
//! `tests/regression.rs`. Tests that need a container engine use the same harness as the
//! other integration tests (`scripts/test-env/engines.sh` exports the sockets).

mod common;

// ---- issue 11, defects 7, 8, 9 and 14: retention, the failure limit, log streams, 413 ----

mod hygiene {
    //! Helpers of the issue 11 tests below: raw HTTP from a chosen loopback address, and
    //! Server-Sent Event streams read off the socket.

    use std::io::{Read, Write};
    use std::net::{SocketAddr, TcpStream};
    use std::time::{Duration, Instant};

    pub use super::common::api::{Resp, read_response};

    /// A connection to `to` from the loopback address `from` (every 127.0.0.0/8 address is
    /// the local host, so tests can play several clients).
    pub fn connect_from(from: &str, to: SocketAddr) -> TcpStream {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let stream = rt.block_on(async {
            let socket = tokio::net::TcpSocket::new_v4().unwrap();
            socket.bind(format!("{from}:0").parse().unwrap()).unwrap();
            socket.connect(to).await.unwrap().into_std().unwrap()
        });
        stream.set_nonblocking(false).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        stream
    }

    /// One request with `Connection: close` from `from` to `to`, Host `host`.
    pub fn request_from(
        from: &str,
        to: SocketAddr,
        host: &str,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Resp {
        let mut s = connect_from(from, to);
        let mut head = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        s.write_all(head.as_bytes()).unwrap();
        read_response(&mut s)
    }

    /// An open event stream: the response head has been read.
    pub struct Stream {
        pub socket: TcpStream,
        pub status: u16,
        pub head: String,
        pub rest: Vec<u8>,
    }

    /// Opens `GET path` with a bearer token and reads the response head.
    pub fn open_stream(addr: SocketAddr, path: &str, token: &str) -> Stream {
        let mut socket = TcpStream::connect(addr).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        write!(
            socket,
            "GET {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\nAccept: text/event-stream\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut raw = Vec::new();
        let mut buf = [0u8; 4096];
        let end = loop {
            if let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
                break end;
            }
            let n = socket.read(&mut buf).expect("no response head");
            assert!(n > 0, "closed before a response head");
            raw.extend_from_slice(&buf[..n]);
        };
        let head = String::from_utf8_lossy(&raw[..end]).into_owned();
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap();
        Stream {
            socket,
            status,
            head,
            rest: raw[end + 4..].to_vec(),
        }
    }

    impl Stream {
        /// Reads until the server ends the response (the last chunk, or the connection
        /// closing); the body so far, or `None` if it was still open after `within`.
        pub fn ended_within(&mut self, within: Duration) -> Option<String> {
            let deadline = Instant::now() + within;
            let mut body = std::mem::take(&mut self.rest);
            let mut buf = [0u8; 4096];
            loop {
                if body.ends_with(b"0\r\n\r\n") {
                    return Some(String::from_utf8_lossy(&body).into_owned());
                }
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return None;
                }
                self.socket.set_read_timeout(Some(left)).unwrap();
                match self.socket.read(&mut buf) {
                    Ok(0) => return Some(String::from_utf8_lossy(&body).into_owned()),
                    Ok(n) => body.extend_from_slice(&buf[..n]),
                    Err(e)
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                        ) =>
                    {
                        return None;
                    }
                    Err(_) => return Some(String::from_utf8_lossy(&body).into_owned()),
                }
            }
        }
    }

    /// `Authorization` of a token nobody was given.
    pub fn wrong_token(digit: char) -> String {
        format!("Bearer rvt_{}", digit.to_string().repeat(64))
    }
}

/// Defect 8: once an address has used up its failed attempts, it may no longer guess, but a
/// request with a valid token from it still goes through.
#[test]
fn issue_11_a_valid_token_still_works_from_an_address_that_failed_too_often() {
    use common::api::{Api, initial_token, request};
    let dir = common::TestDir::new();
    let mut rivetr = common::Launch::serve().start(&dir);
    rivetr.wait_healthy();
    let api = Api {
        addr: rivetr.api(),
        token: initial_token(dir.path()),
    };
    let bad = hygiene::wrong_token('1');
    let attempt = |auth: &str| {
        request(
            api.addr,
            "GET",
            "/api/tokens",
            &[("Authorization", auth)],
            b"",
        )
    };
    for i in 0..10 {
        assert_eq!(attempt(&bad).status, 401, "attempt {i}");
    }
    let limited = attempt(&bad);
    assert_eq!(
        (limited.status, limited.code().as_str()),
        (429, "rate_limited")
    );

    // The valid token is not refused for the failures of others from the same address...
    let ok = api.get("/api/tokens");
    assert_eq!(ok.status, 200, "{}", ok.body);
    // ...and creating a token and using it at once works too.
    let created = api.post_json("/api/tokens", r#"{"name": "fresh"}"#);
    assert_eq!(created.status, 201, "{}", created.body);
    let fresh = created.json()["token"].as_str().unwrap().to_owned();
    assert_eq!(attempt(&format!("Bearer {fresh}")).status, 200);

    // Guessing stays stopped: wrong, malformed and revoked tokens all get 429, unchecked.
    let revoked_id = created.json()["id"].as_i64().unwrap();
    assert_eq!(api.delete(&format!("/api/tokens/{revoked_id}")).status, 200);
    for auth in [
        bad.clone(),
        hygiene::wrong_token('2'),
        "Bearer rvt_short".to_owned(),
        format!("Bearer {fresh}"),
    ] {
        let r = attempt(&auth);
        assert_eq!(r.status, 429, "{auth}: {}", r.body);
        assert!(r.header("retry-after").is_some());
    }
    // A request without credentials is not a guess: it is told to authenticate.
    assert_eq!(
        request(api.addr, "GET", "/api/tokens", &[], b"").status,
        401
    );
    assert_eq!(api.get("/api/tokens").status, 200);
}

/// Defect 8: the limit is not outrun by guesses sent all at once (each one used to be
/// checked against the limit before any had been counted).
#[test]
fn issue_11_concurrent_guesses_cannot_outrun_the_failure_limit() {
    let dir = common::TestDir::new();
    let mut rivetr = common::Launch::serve().start(&dir);
    rivetr.wait_healthy();
    let addr = rivetr.api();
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(40));
    let threads: Vec<_> = (0..40)
        .map(|i| {
            let barrier = std::sync::Arc::clone(&barrier);
            std::thread::spawn(move || {
                use std::io::Write;
                let mut s = std::net::TcpStream::connect(addr).unwrap();
                s.set_read_timeout(Some(std::time::Duration::from_secs(30)))
                    .unwrap();
                let token = format!("rvt_{:064x}", i + 1);
                let req = format!(
                    "GET /api/tokens HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
                );
                barrier.wait();
                s.write_all(req.as_bytes()).unwrap();
                hygiene::read_response(&mut s).status
            })
        })
        .collect();
    let statuses: Vec<u16> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let checked = statuses.iter().filter(|&&s| s == 401).count();
    let refused = statuses.iter().filter(|&&s| s == 429).count();
    assert_eq!(checked + refused, 40, "{statuses:?}");
    assert!(
        checked <= 10,
        "{checked} of 40 simultaneous guesses were checked; the limit allows 10: {statuses:?}"
    );
}

/// Defect 8: behind `[server] domain` each client is counted on its own, with no
/// `trusted_proxies`, and no client can claim another's address.
#[test]
fn issue_11_clients_reaching_the_api_through_the_proxy_are_told_apart_without_configuration() {
    use hygiene::request_from;
    let dir = common::TestDir::new();
    let mut rivetr = common::Launch::serve()
        .env("RIVETR_SERVER_DOMAIN", "rivetr-api.test")
        .start(&dir);
    rivetr.wait_healthy();
    let token = common::api::initial_token(dir.path());
    let proxy = rivetr.http();
    let bad = hygiene::wrong_token('3');
    let guess = |from: &str, extra: &[(&str, &str)]| {
        let mut headers = vec![("Authorization", bad.as_str())];
        headers.extend_from_slice(extra);
        request_from(from, proxy, "rivetr-api.test", "/api/tokens", &headers)
    };
    // The route really leads to the API.
    let ok = request_from(
        "127.0.0.3",
        proxy,
        "rivetr-api.test",
        "/api/tokens",
        &[("Authorization", &format!("Bearer {token}"))],
    );
    assert_eq!(ok.status, 200, "{}", ok.body);

    for i in 0..10 {
        assert_eq!(guess("127.0.0.2", &[]).status, 401, "attempt {i}");
    }
    assert_eq!(guess("127.0.0.2", &[]).status, 429);
    // Another client of the same proxy still has all its attempts.
    let other = guess("127.0.0.3", &[]);
    assert_eq!(
        other.status, 401,
        "a client behind the proxy was limited for another's failures: {}",
        other.body
    );
    // Forged hand-over headers and X-Forwarded-For change nothing, through the proxy or
    // straight to the API.
    let forged_value = format!("127.0.0.9 {}", "ab".repeat(32));
    let forged: [(&str, &str); 2] = [
        ("X-Rivetr-Client", &forged_value),
        ("X-Forwarded-For", "127.0.0.9"),
    ];
    assert_eq!(guess("127.0.0.2", &forged).status, 429);
    let mut headers = vec![("Authorization", bad.as_str())];
    headers.extend_from_slice(&forged);
    let direct = request_from(
        "127.0.0.2",
        rivetr.api(),
        "localhost",
        "/api/tokens",
        &headers,
    );
    assert_eq!(direct.status, 429, "{}", direct.body);
    // The log names the real client.
    let log = rivetr.log();
    assert!(
        log.contains("127.0.0.3") && log.contains("API authentication failed"),
        "{log}"
    );
    assert!(!log.contains(&"ab".repeat(32)), "{log}");
}

/// Defect 9: a revoked token's log streams end within seconds, whether it was revoked
/// through the API or with `rivetr token revoke` on the host.
#[test]
fn issue_11_log_streams_of_a_revoked_token_end_within_seconds() {
    use common::api::{Api, initial_token, insert_app, open_db};
    use std::time::Duration;
    let dir = common::TestDir::new();
    let mut rivetr = common::Launch::serve().start(&dir);
    rivetr.wait_healthy();
    let admin = Api {
        addr: rivetr.api(),
        token: initial_token(dir.path()),
    };
    let app = insert_app(dir.path(), "streamed", "main");
    // A deployment still building: its log stream stays open until it ends.
    let deployment: i64 = open_db(dir.path())
        .query_row(
            "INSERT INTO deployments (app_id, status) VALUES (?1, 'building') RETURNING id",
            [app],
            |r| r.get(0),
        )
        .unwrap();
    let path = format!("/api/deployments/{deployment}/logs?follow=1");

    // Revoked through the API.
    let created = admin
        .post_json("/api/tokens", r#"{"name": "watcher"}"#)
        .json();
    let (id, token) = (
        created["id"].as_i64().unwrap(),
        created["token"].as_str().unwrap().to_owned(),
    );
    let mut stream = hygiene::open_stream(admin.addr, &path, &token);
    assert_eq!(stream.status, 200, "{}", stream.head);
    assert!(stream.ended_within(Duration::from_millis(500)).is_none());
    assert_eq!(admin.delete(&format!("/api/tokens/{id}")).status, 200);
    let body = stream
        .ended_within(Duration::from_secs(5))
        .expect("the stream of a revoked token was still open 5 s later");
    assert!(body.contains("revoked"), "{body}");

    // Revoked on the host, straight in the database.
    let created = admin
        .post_json("/api/tokens", r#"{"name": "watcher2"}"#)
        .json();
    let (id, token) = (
        created["id"].as_i64().unwrap(),
        created["token"].as_str().unwrap().to_owned(),
    );
    let mut app_stream = hygiene::open_stream(admin.addr, &path, &token);
    assert_eq!(app_stream.status, 200);
    let out = std::process::Command::new(common::BIN)
        .args(["token", "revoke", &id.to_string()])
        .current_dir(dir.path())
        .env_remove("RIVETR_CONFIG")
        .env_remove("STATE_DIRECTORY")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        app_stream.ended_within(Duration::from_secs(5)).is_some(),
        "the stream of a token revoked on the host was still open 5 s later"
    );
}

/// Defect 9: one token holds a bounded number of log streams at once (429 past it), and
/// `tail` has a maximum (422 naming it).
#[test]
fn issue_11_log_streams_per_token_are_capped_and_tail_is_bounded() {
    use common::api::{Api, initial_token, insert_app, open_db};
    use std::time::Duration;
    let dir = common::TestDir::new();
    let mut rivetr = common::Launch::serve()
        .env("RIVETR_SERVER_LOG_STREAMS_PER_TOKEN", "2")
        .start(&dir);
    rivetr.wait_healthy();
    let admin = Api {
        addr: rivetr.api(),
        token: initial_token(dir.path()),
    };
    let app = insert_app(dir.path(), "capped", "main");
    let deployment: i64 = open_db(dir.path())
        .query_row(
            "INSERT INTO deployments (app_id, status) VALUES (?1, 'building') RETURNING id",
            [app],
            |r| r.get(0),
        )
        .unwrap();
    let path = format!("/api/deployments/{deployment}/logs?follow=1");
    let first = hygiene::open_stream(admin.addr, &path, &admin.token);
    let second = hygiene::open_stream(admin.addr, &path, &admin.token);
    assert_eq!((first.status, second.status), (200, 200));
    let mut third = hygiene::open_stream(admin.addr, &path, &admin.token);
    assert_eq!(third.status, 429, "{}", third.head);
    let body = third.ended_within(Duration::from_secs(5)).unwrap();
    assert!(body.contains("too_many_streams"), "{body}");
    // Another token has its own allowance.
    let other = admin
        .post_json("/api/tokens", r#"{"name": "other"}"#)
        .json();
    let other_token = other["token"].as_str().unwrap().to_owned();
    assert_eq!(
        hygiene::open_stream(admin.addr, &path, &other_token).status,
        200
    );
    // A stream that ends gives its place back.
    drop(first);
    common::wait_for("a closed stream's place", Duration::from_secs(10), || {
        let s = hygiene::open_stream(admin.addr, &path, &admin.token);
        (s.status == 200).then_some(())
    });

    let too_long = admin.get("/api/apps/capped/logs?tail=1000000");
    assert_eq!(too_long.status, 422, "{}", too_long.body);
    assert_eq!(too_long.code(), "invalid_value");
    assert!(too_long.message().contains("tail"), "{}", too_long.body);
    assert!(too_long.message().contains("10000"), "{}", too_long.body);
}

/// Defect 14: a body over the limit is answered 413, and a client that writes the whole body
/// before reading (as Python's urllib does) reads that answer instead of a reset.
#[test]
fn issue_11_an_oversized_body_is_answered_413_to_a_client_that_sends_it_all_first() {
    use std::io::Write;
    use std::net::SocketAddr;
    use std::time::Duration;
    let dir = common::TestDir::new();
    let mut rivetr = common::Launch::serve()
        .env("RIVETR_SERVER_DOMAIN", "rivetr-api.test")
        .start(&dir);
    rivetr.wait_healthy();
    let token = common::api::initial_token(dir.path());
    common::api::insert_app(dir.path(), "big", "main");
    let body = vec![b'x'; 8 * 1024 * 1024];
    let send_all_then_read = |to: SocketAddr, head: String, chunked: bool| {
        let mut s = std::net::TcpStream::connect(to).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        s.write_all(head.as_bytes()).unwrap();
        let written = if chunked {
            body.chunks(64 * 1024)
                .try_for_each(|c| {
                    write!(s, "{:x}\r\n", c.len())?;
                    s.write_all(c)?;
                    s.write_all(b"\r\n")
                })
                .and_then(|()| s.write_all(b"0\r\n\r\n"))
        } else {
            s.write_all(&body)
        };
        if let Err(e) = written {
            panic!("writing the body failed ({e}): the server closed the connection on the client");
        }
        hygiene::read_response(&mut s)
    };
    let auth = format!("Authorization: Bearer {token}\r\n");
    let cases = [
        (rivetr.api(), "localhost", "/api/apps", auth.as_str(), false),
        (rivetr.api(), "localhost", "/api/apps", auth.as_str(), true),
        (rivetr.api(), "localhost", "/webhooks/github/big", "", false),
        (
            rivetr.http(),
            "rivetr-api.test",
            "/api/apps",
            auth.as_str(),
            false,
        ),
    ];
    for (to, host, path, auth, chunked) in cases {
        let length = if chunked {
            "Transfer-Encoding: chunked\r\n".to_owned()
        } else {
            format!("Content-Length: {}\r\n", body.len())
        };
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: {host}\r\n{auth}Content-Type: application/json\r\n{length}\r\n"
        );
        let r = send_all_then_read(to, head, chunked);
        assert_eq!(
            r.status, 413,
            "{path} via {to} (chunked {chunked}): {}",
            r.body
        );
    }

    // Python's urllib writes the whole body before it reads.
    let script = r#"
import sys, urllib.request, urllib.error
req = urllib.request.Request(sys.argv[1], data=b"x" * (8 * 1024 * 1024), method="POST",
    headers={"Authorization": "Bearer " + sys.argv[2], "Content-Type": "application/json"})
try:
    urllib.request.urlopen(req, timeout=30)
    print("no error")
except urllib.error.HTTPError as e:
    print(e.code)
except Exception as e:
    print(type(e).__name__, e)
"#;
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            script,
            &format!("http://{}/api/apps", rivetr.api()),
            &token,
        ])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "413",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Defect 7: an app keeps its last `keep_deployments` deployments with their logs, plus the
/// one serving and those whose image is kept for a rollback; webhook deliveries are kept 30
/// days; and the database is in incremental auto-vacuum, so freed pages go back to the file
/// system without a VACUUM.
#[test]
fn issue_11_old_deployments_their_logs_and_old_deliveries_are_pruned() {
    use common::platform::{GitRepo, Platform, podman_socket, unique_name};
    use std::time::Duration;
    let Some(socket) = podman_socket("deployment retention") else {
        return;
    };
    let p = Platform::start(
        &socket,
        &[
            ("RIVETR_ENGINE_KEEP_DEPLOYMENTS", "3"),
            ("RIVETR_ENGINE_KEEP_IMAGES", "2"),
        ],
    );
    let repo = GitRepo::new("kept\n");
    let app = p.create_app(&unique_name("kept"), repo.path(), serde_json::json!({}));
    let mut ok = Vec::new();
    for _ in 0..3 {
        let id = p.deploy(&app, None);
        assert_eq!(p.wait_done(id)["status"], "running", "{}", p.logs(id));
        ok.push(id);
    }
    let db = common::api::open_db(p.dir.path());
    let app_id: i64 = db
        .query_row("SELECT id FROM apps WHERE name = ?1", [&app], |r| r.get(0))
        .unwrap();
    db.execute_batch(&format!(
        "INSERT INTO webhook_deliveries (provider, delivery_id, app_id, received_at)
           VALUES ('github', 'old', {app_id}, strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-31 days')),
                  ('github', 'recent', {app_id}, strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-29 days'));"
    ))
    .unwrap();
    // Deployments of a branch that does not exist fail at once, with a few log lines each.
    let mut failed = Vec::new();
    for _ in 0..5 {
        let id = p.deploy(&app, Some("no-such-branch"));
        assert_eq!(p.wait_done(id)["status"], "failed");
        failed.push(id);
    }
    // ok[0] lost its image to keep_images = 2; ok[1] is a rollback target, ok[2] serves.
    let expect_kept = vec![ok[1], ok[2], failed[2], failed[3], failed[4]];
    let kept = |db: &rusqlite::Connection| -> Vec<i64> {
        let mut stmt = db
            .prepare("SELECT id FROM deployments WHERE app_id = ?1 ORDER BY id")
            .unwrap();
        stmt.query_map([app_id], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    };
    common::wait_for(
        "old deployments to be pruned",
        Duration::from_secs(20),
        || (kept(&db) == expect_kept).then_some(()),
    );
    let orphan_lines: i64 = db
        .query_row(
            &format!(
                "SELECT COUNT(*) FROM deployment_logs WHERE deployment_id IN ({}, {}, {})",
                ok[0], failed[0], failed[1]
            ),
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(orphan_lines, 0, "the logs of pruned deployments are left");
    let kept_lines: i64 = db
        .query_row(
            &format!(
                "SELECT COUNT(*) FROM deployment_logs WHERE deployment_id = {}",
                failed[4]
            ),
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(kept_lines > 0, "a kept deployment lost its log");
    let (status, _) = p.api("GET", &format!("/api/deployments/{}", failed[0]), None);
    assert_eq!(status, 404);
    let (status, rolled) = p.api(
        "POST",
        &format!("/api/apps/{app}/rollback"),
        Some(serde_json::json!({"deployment_id": ok[1]})),
    );
    assert_eq!(status, 202, "the rollback target was pruned: {rolled}");
    p.wait_done(rolled["id"].as_i64().unwrap());

    let deliveries: Vec<String> = {
        let mut stmt = db
            .prepare("SELECT delivery_id FROM webhook_deliveries WHERE app_id = ?1 ORDER BY 1")
            .unwrap();
        stmt.query_map([app_id], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    };
    assert_eq!(deliveries, ["recent"]);
    let auto_vacuum: i64 = db
        .query_row("PRAGMA auto_vacuum", [], |r| r.get(0))
        .unwrap();
    assert_eq!(
        auto_vacuum, 2,
        "the database is not in incremental auto-vacuum"
    );
}
