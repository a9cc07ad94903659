//! The reverse proxy, end to end: the real binary configured with `[[proxy.routes]]` in front
//! of real HTTP backends started by the test.

use crate::common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::backend::Backend;
use common::*;
use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Empty};
use hyper::Request;
use hyper_util::rt::TokioIo;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// One `[[proxy.routes]]` block.
fn route(host: &str, upstreams: &[SocketAddr], extra: &str) -> String {
    let ups: Vec<String> = upstreams.iter().map(|a| format!("\"{a}\"")).collect();
    format!(
        "[[proxy.routes]]\nhost = \"{host}\"\nupstreams = [{}]\ntls = \"none\"\n{extra}\n",
        ups.join(", ")
    )
}

fn start_with_config(dir: &TestDir, config: &str) -> Rivetr {
    let path = dir.write("rivetr.toml", config);
    let mut rivetr = Launch::serve()
        .arg("--config")
        .arg(path.to_str().unwrap())
        .start(dir);
    rivetr.wait_healthy();
    rivetr
}

fn get(addr: SocketAddr, host: &str, path: &str) -> (u16, Vec<(String, String)>, String) {
    raw_exchange(
        addr,
        &format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"),
    )
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

#[test]
fn routes_by_exact_host_and_most_specific_wildcard_and_404s_the_rest() {
    let (a, w, ww) = (
        Backend::start("A"),
        Backend::start("W"),
        Backend::start("WW"),
    );
    let dir = TestDir::new();
    let config = [
        route("a.test", &[a.addr], ""),
        route("*.w.test", &[w.addr], ""),
        route("*.x.w.test", &[ww.addr], ""),
    ]
    .concat();
    let rivetr = start_with_config(&dir, &config);
    let http = rivetr.http();
    assert_eq!(get(http, "a.test", "/").2, "A");
    assert_eq!(
        get(http, "A.Test:8000", "/").2,
        "A",
        "case and port are ignored"
    );
    assert_eq!(get(http, "one.w.test", "/").2, "W");
    assert_eq!(get(http, "deep.one.w.test", "/").2, "W");
    assert_eq!(get(http, "one.x.w.test", "/").2, "WW");
    let (status, _, body) = get(http, "unknown.test", "/");
    assert_eq!(status, 404);
    assert!(body.contains("no app for host unknown.test"), "{body}");
    assert!(
        !body.contains("127.0.0.1"),
        "404 page names internals: {body}"
    );
    let (status, _, _) = get(http, "w.test", "/");
    assert_eq!(status, 404, "a wildcard does not match its bare suffix");
}

#[test]
fn forwarded_headers_are_added_and_hop_by_hop_headers_removed_both_ways() {
    let a = Backend::start("A");
    let dir = TestDir::new();
    let rivetr = start_with_config(&dir, &route("a.test", &[a.addr], ""));
    let (status, headers, body) = raw_exchange(
        rivetr.http(),
        "GET /headers HTTP/1.1\r\nHost: a.test\r\nX-Forwarded-For: 203.0.113.7\r\n\
         Connection: close, X-Foo\r\nX-Foo: secret\r\nKeep-Alive: timeout=9\r\n\
         Proxy-Authorization: Basic eDp5\r\nTE: trailers\r\nX-Kept: yes\r\n\
         X-Rivetr-Client: 192.0.2.1 00\r\n\r\n",
    );
    assert_eq!(status, 200, "{body}");
    let seen: serde_json::Value = serde_json::from_str(&body).unwrap();
    // The hand-over of the client to Rivetr's own API never reaches an app, forged or not.
    assert!(seen.get("x-rivetr-client").is_none(), "{body}");
    assert_eq!(seen["x-forwarded-for"], "203.0.113.7, 127.0.0.1");
    assert_eq!(seen["x-forwarded-proto"], "http");
    assert_eq!(seen["x-forwarded-host"], "a.test");
    assert_eq!(seen["x-real-ip"], "127.0.0.1");
    assert_eq!(seen["host"], "a.test");
    assert_eq!(seen["x-kept"], "yes");
    for gone in ["x-foo", "keep-alive", "proxy-authorization", "te"] {
        assert!(seen.get(gone).is_none(), "{gone} reached the app: {body}");
    }
    // The app's hop-by-hop headers do not reach the client.
    assert_eq!(header(&headers, "x-end-to-end"), Some("kept"));
    assert_eq!(header(&headers, "x-bar"), None, "{headers:?}");
    assert_eq!(header(&headers, "keep-alive"), None, "{headers:?}");
}

const GIB: u64 = 1 << 30;

#[test]
fn a_gibibyte_streams_each_way_while_the_proxy_stays_small() {
    let a = Backend::start("A");
    let dir = TestDir::new();
    let rivetr = start_with_config(&dir, &route("a.test", &[a.addr], ""));
    let proxy = rivetr.http();
    runtime().block_on(async {
        // Download.
        let stream = tokio::net::TcpStream::connect(proxy).await.unwrap();
        let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        tokio::spawn(conn);
        let req = Request::get(format!("/big?bytes={GIB}"))
            .header("host", "a.test")
            .body(Empty::<Bytes>::new())
            .unwrap();
        let res = send.send_request(req).await.unwrap();
        assert_eq!(res.status(), 200);
        let mut body = res.into_body();
        let mut got = 0u64;
        while let Some(frame) = body.frame().await {
            got += frame
                .unwrap()
                .data_ref()
                .map(|d| d.len() as u64)
                .unwrap_or(0);
        }
        assert_eq!(got, GIB);

        // Upload.
        let stream = tokio::net::TcpStream::connect(proxy).await.unwrap();
        let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        tokio::spawn(conn);
        let chunk = Bytes::from(vec![7u8; 256 * 1024]);
        let chunks = GIB / chunk.len() as u64;
        let body = http_body_util::StreamBody::new(futures_util::stream::iter((0..chunks).map(
            move |_| Ok::<_, std::convert::Infallible>(hyper::body::Frame::data(chunk.clone())),
        )));
        let req = Request::post("/count")
            .header("host", "a.test")
            .header("content-length", GIB.to_string())
            .body(body)
            .unwrap();
        let res = send.send_request(req).await.unwrap();
        assert_eq!(res.status(), 200);
        let count = res.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(count, GIB.to_string());
    });
    let peak = rivetr.peak_rss_kb();
    println!("proxy peak RSS after 1 GiB each way: {peak} kB");
    assert!(
        peak < 50 * 1024,
        "proxy peak RSS {peak} kB is not under 50 MB"
    );
}

#[test]
fn websocket_echo_through_the_proxy() {
    let a = Backend::start("A");
    let dir = TestDir::new();
    let rivetr = start_with_config(&dir, &route("ws.test", &[a.addr], ""));
    let proxy = rivetr.http();
    runtime().block_on(async {
        let stream = tokio::net::TcpStream::connect(proxy).await.unwrap();
        let (mut ws, res) = tokio_tungstenite::client_async("ws://ws.test/ws", stream)
            .await
            .unwrap();
        assert_eq!(res.status(), 101);
        use tokio_tungstenite::tungstenite::Message;
        for i in 0..3 {
            ws.send(Message::text(format!("hello {i}"))).await.unwrap();
            let echoed = ws.next().await.unwrap().unwrap();
            assert_eq!(echoed, Message::text(format!("hello {i}")));
        }
        ws.send(Message::binary(vec![1u8, 2, 3])).await.unwrap();
        assert_eq!(
            ws.next().await.unwrap().unwrap(),
            Message::binary(vec![1u8, 2, 3])
        );
        ws.close(None).await.unwrap();
    });
}

#[test]
fn upstream_down_is_502_stall_is_504_and_a_refusing_replica_is_skipped() {
    let a = Backend::start("A");
    let dead: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let dir = TestDir::new();
    let config = [
        "[proxy]\nresponse_timeout_seconds = 1\n".to_owned(),
        route("down.test", &[dead], ""),
        route("slow.test", &[a.addr], ""),
        route("replicas.test", &[dead, a.addr], ""),
    ]
    .concat();
    let rivetr = start_with_config(&dir, &config);
    let http = rivetr.http();

    let (status, _, body) = get(http, "down.test", "/");
    assert_eq!(status, 502, "{body}");
    assert!(
        !body.contains(&dead.to_string()),
        "502 page names internals: {body}"
    );

    let started = Instant::now();
    let (status, _, _) = get(http, "slow.test", "/stall?ms=5000");
    assert_eq!(status, 504);
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "504 took {:?}",
        started.elapsed()
    );

    for i in 0..10 {
        let (status, _, body) = get(http, "replicas.test", "/");
        assert_eq!((status, body.as_str()), (200, "A"), "request {i}");
    }
    rivetr.wait_log("skipping this upstream", Duration::from_secs(1));
}

#[test]
fn a_route_swapped_100_times_under_load_fails_no_request() {
    let (a, b) = (Backend::start("A"), Backend::start("B"));
    let dir = TestDir::new();
    let config_for = |up: SocketAddr| route("swap.test", &[up], "");
    let config_path = dir.path().join("rivetr.toml");
    let rivetr = start_with_config(&dir, &config_for(a.addr));
    let proxy = rivetr.http();

    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let seen_a = Arc::new(AtomicU64::new(0));
    let seen_b = Arc::new(AtomicU64::new(0));
    let rt = runtime();
    let mut clients = Vec::new();
    for _ in 0..20 {
        let (stop, ok, failed, seen_a, seen_b) = (
            stop.clone(),
            ok.clone(),
            failed.clone(),
            seen_a.clone(),
            seen_b.clone(),
        );
        clients.push(rt.spawn(async move {
            let client =
                hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                    .build_http::<Empty<Bytes>>();
            while !stop.load(Ordering::Relaxed) {
                let req = Request::get(format!("http://{proxy}/"))
                    .header("host", "swap.test")
                    .body(Empty::new())
                    .unwrap();
                match client.request(req).await {
                    Ok(res) if res.status() == 200 => {
                        let body = res.into_body().collect().await.map(|b| b.to_bytes());
                        match body.as_deref() {
                            Ok(b"A") => seen_a.fetch_add(1, Ordering::Relaxed),
                            Ok(b"B") => seen_b.fetch_add(1, Ordering::Relaxed),
                            _ => failed.fetch_add(1, Ordering::Relaxed),
                        };
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    let started = Instant::now();
    for i in 0..100 {
        let up = if i % 2 == 0 { b.addr } else { a.addr };
        // Written whole then renamed, so a reload never reads half a file.
        let tmp = dir.write("rivetr.toml.new", &config_for(up));
        std::fs::rename(&tmp, &config_path).unwrap();
        rivetr.signal(libc::SIGHUP);
        std::thread::sleep(Duration::from_millis(100));
        // Signals sent while a reload is still running coalesce into one, and a busy machine
        // can take longer than the pause: the next swap waits for this one to be done.
        let deadline = Instant::now() + Duration::from_secs(20);
        while rivetr.log().matches("configuration reloaded").count() <= i {
            assert!(Instant::now() < deadline, "reload {} was not logged", i + 1);
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    stop.store(true, Ordering::Relaxed);
    rt.block_on(async {
        for c in clients {
            c.await.unwrap();
        }
    });
    let elapsed = started.elapsed();
    let (ok, failed) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    println!(
        "route swap: {ok} ok, {failed} failed in {elapsed:?}; A {} B {}",
        seen_a.load(Ordering::Relaxed),
        seen_b.load(Ordering::Relaxed)
    );
    assert_eq!(failed, 0);
    assert!(ok > 1000, "only {ok} requests in {elapsed:?}");
    assert!(seen_a.load(Ordering::Relaxed) > 0 && seen_b.load(Ordering::Relaxed) > 0);
    assert_eq!(rivetr.log().matches("configuration reloaded").count(), 100);
}

/// A self-signed certificate for `host`, written as PEM files.
fn self_signed(dir: &TestDir, host: &str) -> (std::path::PathBuf, std::path::PathBuf, Vec<u8>) {
    let cert = rcgen::generate_simple_self_signed(vec![host.to_owned()]).unwrap();
    let cert_pem = cert.cert.pem();
    let c = dir.write(&format!("{host}.pem"), &cert_pem);
    let k = dir.write(&format!("{host}.key"), &cert.signing_key.serialize_pem());
    (c, k, cert.cert.der().to_vec())
}

#[test]
fn manual_certificate_serves_http2_over_tls_and_plain_http_redirects() {
    let a = Backend::start("A");
    let dir = TestDir::new();
    let (cert, key, der) = self_signed(&dir, "secure.test");
    let config = route("secure.test", &[a.addr], "").replace("tls = \"none\"\n", "")
        + &format!(
            "cert = \"{}\"\nkey = \"{}\"\n",
            cert.display(),
            key.display()
        );
    let rivetr = start_with_config(&dir, &config);

    let (status, headers, _) = get(rivetr.http(), "secure.test", "/some/path?q=1");
    assert_eq!(status, 308);
    assert_eq!(
        header(&headers, "location"),
        Some(
            format!(
                "https://secure.test:{}/some/path?q=1",
                rivetr.https().port()
            )
            .as_str()
        )
    );

    let https = rivetr.https();
    runtime().block_on(async {
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(rustls::pki_types::CertificateDer::from(der))
            .unwrap();
        let mut tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        tls.alpn_protocols = vec![b"h2".to_vec()];
        let connector = tokio_rustls::TlsConnector::from(Arc::new(tls.clone()));
        let tcp = tokio::net::TcpStream::connect(https).await.unwrap();
        let name = rustls::pki_types::ServerName::try_from("secure.test").unwrap();
        let stream = connector.connect(name, tcp).await.unwrap();
        assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
        let (mut send, conn) = hyper::client::conn::http2::handshake(
            hyper_util::rt::TokioExecutor::new(),
            TokioIo::new(stream),
        )
        .await
        .unwrap();
        tokio::spawn(conn);
        let req = Request::get("https://secure.test/headers")
            .body(Empty::<Bytes>::new())
            .unwrap();
        let res = send.send_request(req).await.unwrap();
        assert_eq!(res.status(), 200);
        assert_eq!(res.version(), hyper::Version::HTTP_2);
        let body = res.into_body().collect().await.unwrap().to_bytes();
        let seen: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(seen["host"], "secure.test");
        assert_eq!(seen["x-forwarded-proto"], "https");

        // HTTP/1.1 over TLS: requests without a body take the proxy's own HTTP/1.1 server,
        // one with a body goes over to hyper on the same connection, which serves the rest.
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        let connector = tokio_rustls::TlsConnector::from(Arc::new(tls));
        let tcp = tokio::net::TcpStream::connect(https).await.unwrap();
        let name = rustls::pki_types::ServerName::try_from("secure.test").unwrap();
        let stream = connector.connect(name, tcp).await.unwrap();
        assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
        let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        tokio::spawn(conn);
        for (path, body, expected) in [
            ("/headers", "", None),
            ("/count", "twelve bytes", Some("12")),
            ("/headers", "", None),
        ] {
            let method = if body.is_empty() { "GET" } else { "POST" };
            let req = Request::builder()
                .method(method)
                .uri(path)
                .header("host", "secure.test")
                .body(http_body_util::Full::new(Bytes::from(body)))
                .unwrap();
            // An HTTP/1.1 client connection takes a request only once it has finished with
            // the previous answer; sending earlier is refused ("connection was not ready"), and
            // the stop's CI run hit that. ready() also fails if the proxy closed the connection.
            send.ready().await.unwrap();
            let res = send.send_request(req).await.unwrap();
            assert_eq!(res.status(), 200, "{path}");
            assert_eq!(res.version(), hyper::Version::HTTP_11);
            let answer = res.into_body().collect().await.unwrap().to_bytes();
            match expected {
                Some(expected) => assert_eq!(answer, expected.as_bytes()),
                None => {
                    let seen: serde_json::Value = serde_json::from_slice(&answer).unwrap();
                    assert_eq!(seen["host"], "secure.test");
                    assert_eq!(seen["x-forwarded-proto"], "https");
                }
            }
        }
    });
}

#[test]
fn a_bad_route_in_a_reload_is_refused_and_the_old_routes_keep_serving() {
    let a = Backend::start("A");
    let dir = TestDir::new();
    let rivetr = start_with_config(&dir, &route("a.test", &[a.addr], ""));
    dir.write(
        "rivetr.toml",
        "[[proxy.routes]]\nhost = \"*.test\"\nupstreams = [\"127.0.0.1:1\"]\n",
    );
    rivetr.signal(libc::SIGHUP);
    rivetr.wait_log("reload refused", Duration::from_secs(10));
    assert!(rivetr.log().contains("wildcard"), "{}", rivetr.log());
    assert_eq!(get(rivetr.http(), "a.test", "/").2, "A");
}

#[test]
fn server_domain_serves_the_api_through_the_proxy() {
    let dir = TestDir::new();
    let rivetr = start_with_config(&dir, "[server]\ndomain = \"paas.test\"\n");
    let (status, _, body) = get(rivetr.http(), "paas.test", "/api/health");
    assert_eq!(status, 200, "{body}");
    let health: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(health["status"], "ok");
    let (status, _, _) = get(rivetr.http(), "other.test", "/api/health");
    assert_eq!(status, 404);
}
