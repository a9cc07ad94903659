//! Certificates from a real ACME CA (Pebble): TLS-ALPN-01 and HTTP-01, domains added while
//! running, a failing domain that blocks nobody and is retried after the configured wait,
//! SNI selection, each domain's state in the API, and the cache across restarts. (The names
//! are under a public-looking domain: Pebble's own DNS answers for them, and Rivetr never
//! orders for reserved names such as `.test`.)

use crate::common;

use std::time::Duration;

use common::api::{Api, initial_token};
use common::backend::Backend;
use common::pebble::{self, Pebble, https_get, https_request};
use common::*;

fn config(
    pebble: &Pebble,
    challenge: &str,
    hosts: &[&str],
    upstream: std::net::SocketAddr,
) -> String {
    // A failed order is retried after 2 s (doubling), not the hour a public CA needs.
    let mut text = format!(
        "[acme]\nenabled = true\ndirectory_url = \"{}\"\nextra_root_ca = \"{}\"\nchallenge = \"{challenge}\"\ncontact_email = \"ops@rivetr.test\"\nretry_after_failure_seconds = 2\n\n",
        pebble.directory_url,
        pebble.listener_ca.display()
    );
    for host in hosts {
        // No `tls` key: ACME is the default for a named host.
        text += &format!("[[proxy.routes]]\nhost = \"{host}\"\nupstreams = [\"{upstream}\"]\n\n");
    }
    text
}

fn start(dir: &TestDir, config_text: &str, http_port: u16, https_port: u16) -> Rivetr {
    let path = dir.write("rivetr.toml", config_text);
    let mut rivetr = Launch::serve()
        .arg("--config")
        .arg(path.to_str().unwrap())
        .env("RIVETR_PROXY_HTTP_LISTEN", format!("127.0.0.1:{http_port}"))
        .env(
            "RIVETR_PROXY_HTTPS_LISTEN",
            format!("127.0.0.1:{https_port}"),
        )
        .env("RIVETR_ACME_ENABLED", "true")
        .start(dir);
    rivetr.wait_healthy();
    rivetr
}

/// Waits until `host` is served over HTTPS with a certificate chaining to `root`; returns the
/// leaf certificate.
fn wait_for_certificate(
    rt: &tokio::runtime::Runtime,
    rivetr: &Rivetr,
    host: &str,
    root: &[u8],
) -> Vec<u8> {
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    let mut last = String::new();
    while std::time::Instant::now() < deadline {
        match rt.block_on(https_get(rivetr.https(), host, root)) {
            Ok((leaf, body)) => {
                assert_eq!(body, "app", "{host} served the wrong body");
                return leaf;
            }
            Err(e) => last = e,
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    panic!(
        "no valid certificate for {host} after 90s (last error: {last}):\n{}",
        rivetr.log()
    );
}

fn lines_for<'a>(log: &'a str, domain: &str, what: &str) -> Vec<&'a str> {
    log.lines()
        .filter(|l| l.contains(what) && l.contains(&format!("domain=\"{domain}\"")))
        .collect()
}

#[test]
fn certificates_from_pebble_by_tls_alpn_and_http01_added_live_isolated_and_cached() {
    if !pebble::available() {
        return;
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let app = Backend::start("app");
    let dir = TestDir::new();
    let (http_port, https_port) = (free_port(), free_port());
    let pebble = Pebble::start(&dir, http_port, https_port);
    // The CA will look for this one where nothing listens: its validation fails.
    pebble.set_a_record("broken.acme.rivetr-tests.net", "127.0.0.2");
    let root = rt.block_on(pebble.root());

    // Two domains (and a broken one) by TLS-ALPN-01.
    let hosts = [
        "a.acme.rivetr-tests.net",
        "b.acme.rivetr-tests.net",
        "broken.acme.rivetr-tests.net",
    ];
    let rivetr = start(
        &dir,
        &config(&pebble, "tls-alpn-01", &hosts, app.addr),
        http_port,
        https_port,
    );
    let a = wait_for_certificate(&rt, &rivetr, "a.acme.rivetr-tests.net", &root);
    let b = wait_for_certificate(&rt, &rivetr, "b.acme.rivetr-tests.net", &root);
    assert_ne!(a, b, "each SNI gets its own certificate");

    // The broken domain fails on its own, and is tried again after the configured wait; the
    // others keep being served.
    rivetr.wait_log("certificate order failed", Duration::from_secs(60));
    common::wait_for(
        "a second order for the broken domain",
        Duration::from_secs(90),
        || {
            (lines_for(
                &rivetr.log(),
                "broken.acme.rivetr-tests.net",
                "order failed",
            )
            .len()
                >= 2)
                .then_some(())
        },
    );
    let api = Api {
        addr: rivetr.api(),
        token: initial_token(dir.path()),
    };
    let states = api.get("/api/certificates").json();
    let state = |domain: &str| {
        states
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["domain"] == domain)
            .unwrap_or_else(|| panic!("no state for {domain}: {states}"))
            .clone()
    };
    for domain in ["a.acme.rivetr-tests.net", "b.acme.rivetr-tests.net"] {
        let s = state(domain);
        assert_eq!(s["status"], "valid", "{s}");
        let until = time::OffsetDateTime::parse(
            s["valid_until"].as_str().unwrap(),
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap();
        assert!(
            until > time::OffsetDateTime::now_utc() + time::Duration::days(1),
            "{s}"
        );
        assert!(
            s["last_error"].is_null() && s["next_attempt"].is_null(),
            "{s}"
        );
    }
    let broken = state("broken.acme.rivetr-tests.net");
    assert_eq!(broken["status"], "failed", "{broken}");
    assert!(
        broken["last_error"].as_str().is_some_and(|e| !e.is_empty()),
        "{broken}"
    );
    assert!(broken["valid_until"].is_null(), "{broken}");
    assert!(
        rt.block_on(https_get(
            rivetr.https(),
            "broken.acme.rivetr-tests.net",
            &root
        ))
        .is_err()
    );
    assert_eq!(
        wait_for_certificate(&rt, &rivetr, "a.acme.rivetr-tests.net", &root),
        a
    );

    // Plain HTTP for a domain with a certificate redirects.
    let (status, _, _) = raw_exchange(
        rivetr.http(),
        "GET /x HTTP/1.1\r\nHost: a.acme.rivetr-tests.net\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status, 308);

    // A third domain added while running.
    let hosts = [
        "a.acme.rivetr-tests.net",
        "b.acme.rivetr-tests.net",
        "broken.acme.rivetr-tests.net",
        "c.acme.rivetr-tests.net",
    ];
    dir.write(
        "rivetr.toml",
        &config(&pebble, "tls-alpn-01", &hosts, app.addr),
    );
    rivetr.signal(libc::SIGHUP);
    let c = wait_for_certificate(&rt, &rivetr, "c.acme.rivetr-tests.net", &root);
    drop(rivetr);

    // Restart with HTTP-01 and a fourth domain: the three certificates come from the cache
    // (no new order), the fourth is issued through HTTP-01 on the http listener.
    let hosts = [
        "a.acme.rivetr-tests.net",
        "b.acme.rivetr-tests.net",
        "c.acme.rivetr-tests.net",
        "d.acme.rivetr-tests.net",
    ];
    let rivetr = start(
        &dir,
        &config(&pebble, "http-01", &hosts, app.addr),
        http_port,
        https_port,
    );
    let d = wait_for_certificate(&rt, &rivetr, "d.acme.rivetr-tests.net", &root);
    for (host, leaf) in [
        ("a.acme.rivetr-tests.net", &a),
        ("b.acme.rivetr-tests.net", &b),
        ("c.acme.rivetr-tests.net", &c),
    ] {
        assert_eq!(
            &wait_for_certificate(&rt, &rivetr, host, &root),
            leaf,
            "{host} was re-issued"
        );
    }
    let log = rivetr.log();
    for host in [
        "a.acme.rivetr-tests.net",
        "b.acme.rivetr-tests.net",
        "c.acme.rivetr-tests.net",
    ] {
        assert_eq!(lines_for(&log, host, "loaded from cache").len(), 1, "{log}");
        assert!(
            lines_for(&log, host, "new certificate issued").is_empty(),
            "{log}"
        );
    }
    assert_eq!(
        lines_for(&log, "d.acme.rivetr-tests.net", "new certificate issued").len(),
        1,
        "{log}"
    );
    drop(rivetr);

    // With the CA gone, a restart still serves every cached certificate.
    let same_config = config(&pebble, "http-01", &hosts, app.addr);
    drop(pebble);
    let rivetr = start(&dir, &same_config, http_port, https_port);
    for (host, leaf) in [
        ("a.acme.rivetr-tests.net", &a),
        ("d.acme.rivetr-tests.net", &d),
    ] {
        assert_eq!(&wait_for_certificate(&rt, &rivetr, host, &root), leaf);
    }
}

/// The dashboard through `[server] domain` over HTTPS, as a browser reaches it on a real
/// installation: the certificate comes from the CA, the shell and its assets carry their
/// security and cache headers, sign-in sets a `Secure` cookie, and the cookie changes
/// things only from the dashboard's own origin.
#[test]
fn the_dashboard_is_served_through_server_domain_over_https_with_a_secure_session() {
    if !pebble::available() {
        return;
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = TestDir::new();
    let (http_port, https_port) = (free_port(), free_port());
    let pebble = Pebble::start(&dir, http_port, https_port);
    let root = rt.block_on(pebble.root());
    let domain = "paas.acme.rivetr-tests.net";
    let text = config(&pebble, "tls-alpn-01", &[], "127.0.0.1:1".parse().unwrap())
        + &format!("[server]\ndomain = \"{domain}\"\n");
    let rivetr = start(&dir, &text, http_port, https_port);
    // What a browser sends for https://paas...:port/.
    let host = format!("{domain}:{https_port}");
    let origin = format!("https://{host}");
    let send = |method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]| {
        let mut all = vec![("host", host.as_str())];
        all.extend_from_slice(headers);
        rt.block_on(https_request(
            rivetr.https(),
            domain,
            &root,
            method,
            path,
            &all,
            body,
        ))
        .map(|(_, r)| r)
    };

    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    let shell = loop {
        match send("GET", "/", &[], b"") {
            Ok(r) if r.status == 200 => break r,
            other if std::time::Instant::now() > deadline => panic!(
                "no dashboard on https://{domain} after 90s: {:?}\n{}",
                other.map(|r| r.status),
                rivetr.log()
            ),
            _ => std::thread::sleep(Duration::from_millis(250)),
        }
    };
    let check_shell = |r: &common::api::Resp, what: &str| {
        assert_eq!(r.status, 200, "{what}: {}", r.body);
        assert!(r.body.contains("<div id=\"root\">"), "{what}: {}", r.body);
        assert_eq!(r.header("cache-control"), Some("no-cache"), "{what}");
        let csp = r.header("content-security-policy").unwrap_or("");
        assert!(csp.contains("default-src 'self'"), "{what}: {csp}");
        assert!(!csp.contains("unsafe-inline"), "{what}: {csp}");
        assert_eq!(r.header("x-frame-options"), Some("DENY"), "{what}");
        assert_eq!(r.header("referrer-policy"), Some("same-origin"), "{what}");
        assert_eq!(
            r.header("x-content-type-options"),
            Some("nosniff"),
            "{what}"
        );
    };
    check_shell(&shell, "/");
    check_shell(
        &send("GET", "/apps/web/env", &[], b"").unwrap(),
        "a deep link",
    );
    let start = shell
        .body
        .find("/assets/")
        .expect("the shell loads an asset");
    let script = &shell.body[start..start + shell.body[start..].find('"').unwrap()];
    let asset = send("GET", script, &[("accept-encoding", "br, gzip")], b"").unwrap();
    assert_eq!(asset.status, 200, "{script}");
    assert_eq!(
        asset.header("cache-control"),
        Some("public, max-age=31536000, immutable")
    );
    assert_eq!(asset.header("content-encoding"), Some("br"), "{script}");

    // Signing in over HTTPS gives a Secure cookie, which then works on this host.
    let token = initial_token(dir.path());
    let session = send(
        "POST",
        "/api/session",
        &[("content-type", "application/json"), ("origin", &origin)],
        format!("{{\"token\": \"{token}\"}}").as_bytes(),
    )
    .unwrap();
    assert_eq!(session.status, 201, "{}", session.body);
    let set = session.header("set-cookie").unwrap().to_owned();
    for attr in ["HttpOnly", "SameSite=Strict", "Secure"] {
        assert!(set.contains(attr), "{attr} missing: {set}");
    }
    let cookie = set.split(';').next().unwrap().to_owned();
    let apps = send("GET", "/api/apps", &[("cookie", &cookie)], b"").unwrap();
    assert_eq!(apps.status, 200, "{}", apps.body);
    let create = |origin: &str, name: &str| {
        send(
            "POST",
            "/api/tokens",
            &[
                ("cookie", &cookie),
                ("content-type", "application/json"),
                ("origin", origin),
            ],
            format!("{{\"name\": \"{name}\"}}").as_bytes(),
        )
        .unwrap()
    };
    let mine = create(&origin, "from-the-dashboard");
    assert_eq!(mine.status, 201, "{}", mine.body);
    let cross = create("https://evil.acme.rivetr-tests.net", "cross-site");
    assert_eq!(cross.status, 403, "{}", cross.body);
    // Bearer clients through the same domain are unaffected by the origin rule.
    let bearer = format!("Bearer {token}");
    let listed = send("GET", "/api/tokens", &[("authorization", &bearer)], b"").unwrap();
    assert_eq!(listed.status, 200, "{}", listed.body);
    assert!(listed.body.contains("from-the-dashboard"));
    assert!(!listed.body.contains("cross-site"));
}
