//! `GET /metrics` of the real binary: the proxy's counters move by exactly the requests sent
//! through it, the text passes `promtool check metrics` (Debian's `prometheus` package), and
//! the endpoint wants the API's token.

use crate::common;

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::api::{Api, initial_token, request};
use common::backend::Backend;
use common::platform::{
    GitRepo, Platform, docker_socket, podman_socket, rootless_podman_socket, unique_name,
};
use common::*;
use serde_json::json;

fn route(host: &str, upstreams: &[SocketAddr]) -> String {
    let ups: Vec<String> = upstreams.iter().map(|a| format!("\"{a}\"")).collect();
    format!(
        "[[proxy.routes]]\nhost = \"{host}\"\nupstreams = [{}]\ntls = \"none\"\n",
        ups.join(", ")
    )
}

/// The value of the sample `series` (name and labels exactly as written), 0 when absent.
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .map(|v| v.trim().parse().unwrap())
        .unwrap_or(0.0)
}

fn scrape(api: &Api) -> String {
    let r = api.get("/metrics");
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    r.body
}

fn promtool_check(text: &str) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian's prometheus package) runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics refused the text:\n{}{}\n---\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn proxied_requests_move_the_counters_by_exactly_their_number_and_promtool_accepts_the_text() {
    let a = Backend::start("A");
    let dir = TestDir::new();
    // Port 1 on loopback: nothing listens, so every request to down.test fails to connect.
    let down: SocketAddr = "127.0.0.1:1".parse().unwrap();
    let config = route("a.test", &[a.addr]) + &route("down.test", &[down]);
    let path = dir.write("rivetr.toml", &config);
    let mut rivetr = Launch::serve()
        .arg("--config")
        .arg(path.to_str().unwrap())
        .start(&dir);
    rivetr.wait_healthy();
    let api = Api {
        addr: rivetr.api(),
        token: initial_token(dir.path()),
    };

    // Without the token, or with a wrong one: refused like the rest of the API.
    assert_eq!(
        request(rivetr.api(), "GET", "/metrics", &[], b"").status,
        401
    );
    let wrong = request(
        rivetr.api(),
        "GET",
        "/metrics",
        &[("Authorization", "Bearer rivetr_wrong")],
        b"",
    );
    assert_eq!(wrong.status, 401);

    let get_2xx = "rivetr_proxy_requests_total{app=\"a.test\",method=\"GET\",code=\"2xx\"}";
    let post_2xx = "rivetr_proxy_requests_total{app=\"a.test\",method=\"POST\",code=\"2xx\"}";
    let down_5xx = "rivetr_proxy_requests_total{app=\"down.test\",method=\"GET\",code=\"5xx\"}";
    let connect_errors = "rivetr_proxy_upstream_errors_total{app=\"down.test\",kind=\"connect\"}";
    let durations = "rivetr_proxy_request_duration_seconds_count{app=\"a.test\"}";
    let received = "rivetr_proxy_received_bytes_total{app=\"a.test\"}";
    let before = scrape(&api);

    const GETS: usize = 137;
    for _ in 0..GETS {
        let (status, _, body) = raw_exchange(
            rivetr.http(),
            "GET / HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n",
        );
        assert_eq!((status, body.as_str()), (200, "A"));
    }
    const POSTS: usize = 5;
    const BODY: usize = 1000;
    for _ in 0..POSTS {
        let (status, _, body) = raw_exchange(
            rivetr.http(),
            &format!(
                "POST /count HTTP/1.1\r\nHost: a.test\r\nContent-Length: {BODY}\r\nConnection: close\r\n\r\n{}",
                "x".repeat(BODY)
            ),
        );
        assert_eq!((status, body.as_str()), (200, "1000"));
    }
    for _ in 0..3 {
        let (status, _, _) = raw_exchange(
            rivetr.http(),
            "GET / HTTP/1.1\r\nHost: down.test\r\nConnection: close\r\n\r\n",
        );
        assert_eq!(status, 502);
    }

    let after = scrape(&api);
    let delta = |series: &str| sample(&after, series) - sample(&before, series);
    assert_eq!(delta(get_2xx), GETS as f64, "{after}");
    assert_eq!(delta(post_2xx), POSTS as f64, "{after}");
    assert_eq!(delta(down_5xx), 3.0, "{after}");
    assert_eq!(delta(connect_errors), 3.0, "{after}");
    assert_eq!(delta(durations), (GETS + POSTS) as f64, "{after}");
    assert_eq!(delta(received), (POSTS * BODY) as f64, "{after}");
    assert!(
        sample(&after, "process_resident_memory_bytes") > 1e6,
        "{after}"
    );
    assert!(after.contains("# TYPE rivetr_deployment_queue_depth gauge"));
    promtool_check(&after);
}

#[test]
fn open_connections_are_counted_while_they_are_held() {
    let a = Backend::start("A");
    let dir = TestDir::new();
    let path = dir.write("rivetr.toml", &route("a.test", &[a.addr]));
    let mut rivetr = Launch::serve()
        .arg("--config")
        .arg(path.to_str().unwrap())
        .start(&dir);
    rivetr.wait_healthy();
    let api = Api {
        addr: rivetr.api(),
        token: initial_token(dir.path()),
    };
    let open = "rivetr_proxy_open_connections{listener=\"http\"}";
    let base = sample(&scrape(&api), open);
    let held: Vec<TcpStream> = (0..7)
        .map(|_| TcpStream::connect(rivetr.http()).unwrap())
        .collect();
    wait_for("7 more open connections", Duration::from_secs(10), || {
        (sample(&scrape(&api), open) == base + 7.0).then_some(())
    });
    drop(held);
    wait_for("the connections closed", Duration::from_secs(10), || {
        (sample(&scrape(&api), open) == base).then_some(())
    });
}

/// busybox httpd, with a shell spinning beside it.
const BUSY_DOCKERFILE: &str = "FROM localhost/busybox:test\nCOPY www /www\nEXPOSE 8080\n\
    CMD [\"sh\", \"-c\", \"while :; do :; done & exec httpd -f -p 8080 -h /www\"]\n";

fn metrics_text(p: &Platform) -> String {
    let api = Api {
        addr: p.rivetr.api(),
        token: p.token.clone(),
    };
    scrape(&api)
}

/// A busy app's CPU climbs in its stats, in /metrics and in `rivetr app stats`.
fn busy_app_case(socket: &str, engine: &str) {
    let p = Platform::start(socket, &[("RIVETR_RUNTIME_ENGINE", engine)]);
    let repo = GitRepo::new("busy\n");
    repo.commit(&[("Dockerfile", BUSY_DOCKERFILE)], "spin");
    let app = p.create_app(&unique_name("busy"), repo.path(), json!({}));
    let d = p.wait_done(p.deploy(&app, None));
    assert_eq!(d["status"], "running", "{d}");
    let stats = wait_for("a second of CPU", Duration::from_secs(60), || {
        let (status, stats) = p.api("GET", &format!("/api/apps/{app}/stats"), None);
        assert_eq!(status, 200, "{stats}");
        (stats["cpu_seconds"].as_f64().unwrap_or(0.0) >= 1.0).then_some(stats)
    });
    assert!(stats["unavailable"].is_null(), "{stats}");
    let containers = stats["containers"].as_array().unwrap();
    assert_eq!(containers.len(), 1, "{stats}");
    assert!(
        containers[0]["memory_bytes"].as_u64().unwrap() > 0,
        "{stats}"
    );
    // No limit was set: the machine's memory, which the engine reports instead, is none.
    assert!(containers[0]["memory_limit_bytes"].is_null(), "{stats}");
    let text = metrics_text(&p);
    let cpu = sample(
        &text,
        &format!("rivetr_container_cpu_seconds_total{{app=\"{app}\"}}"),
    );
    assert!(cpu >= 1.0, "{text}");
    let memory = sample(
        &text,
        &format!("rivetr_container_memory_bytes{{app=\"{app}\"}}"),
    );
    assert!(memory > 0.0, "{text}");
    promtool_check(&text);
    let (code, out, err) = p.cli(&["app", "stats", &app]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("CPU SECONDS") && out.contains(&app), "{out}");
    let (_, health) = p.api("GET", "/api/health", None);
    assert_eq!(health["container_stats"], "ok", "{health}");
    let (status, _) = p.api("DELETE", &format!("/api/apps/{app}"), None);
    assert_eq!(status, 204);
}

#[test]
fn a_busy_container_shows_its_cpu_on_rootful_podman() {
    if let Some(socket) = podman_socket("a_busy_container_shows_its_cpu_on_rootful_podman") {
        busy_app_case(&socket, "podman");
    }
}

#[test]
fn a_busy_container_shows_its_cpu_on_docker() {
    if let Some(socket) = docker_socket("a_busy_container_shows_its_cpu_on_docker") {
        busy_app_case(&socket, "docker");
    }
}

/// Rootless Podman on cgroups v1 (this machine's) cannot say: no zeros, the reason instead.
#[test]
fn container_stats_that_the_engine_cannot_report_are_absent_and_health_says_why() {
    let Some(socket) = rootless_podman_socket(
        "container_stats_that_the_engine_cannot_report_are_absent_and_health_says_why",
    ) else {
        return;
    };
    if std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .any(|l| l.contains(" /sys/fs/cgroup ") && l.contains("cgroup2"))
    {
        eprintln!("cgroups v2 here: rootless Podman reports stats; nothing to check");
        return;
    }
    let p = Platform::start(&socket, &[]);
    let app = p.create_app(&unique_name("quiet"), GitRepo::new("x\n").path(), json!({}));
    let (status, stats) = p.api("GET", &format!("/api/apps/{app}/stats"), None);
    assert_eq!(status, 200, "{stats}");
    let why = stats["unavailable"].as_str().unwrap_or_default();
    assert!(why.contains("cgroups v1"), "{stats}");
    assert!(
        stats["cpu_seconds"].is_null() && stats["memory_bytes"].is_null(),
        "{stats}"
    );
    let (_, health) = p.api("GET", "/api/health", None);
    assert_eq!(health["container_stats"].as_str(), Some(why), "{health}");
    let text = metrics_text(&p);
    assert!(!text.contains("rivetr_container_"), "{text}");
}

fn get_with_token(addr: SocketAddr, path: &str, token: Option<&str>) -> common::api::Resp {
    let auth = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = auth
        .as_deref()
        .map(|a| vec![("Authorization", a)])
        .unwrap_or_default();
    request(addr, "GET", path, &headers, b"")
}

/// Checks a listener serving `/metrics` alone, behind the token.
fn check_metrics_only_listener(addr: SocketAddr, token: &str) {
    let r = get_with_token(addr, "/metrics", Some(token));
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        r.body
            .contains("# TYPE rivetr_proxy_requests_total counter")
    );
    assert_eq!(get_with_token(addr, "/metrics", None).status, 401);
    let other = get_with_token(addr, "/api/apps", Some(token));
    assert_eq!(other.status, 404, "{}", other.body);
    assert!(other.body.contains("only /metrics"), "{}", other.body);
    let dashboard = get_with_token(addr, "/", Some(token));
    assert_eq!(
        dashboard.status, 404,
        "no dashboard here: {}",
        dashboard.body
    );
}

#[test]
fn metrics_listen_serves_metrics_alone_behind_the_token() {
    let dir = TestDir::new();
    let port = free_port();
    let mut rivetr = Launch::serve()
        .env("RIVETR_METRICS_LISTEN", format!("127.0.0.1:{port}"))
        .start(&dir);
    rivetr.wait_healthy();
    let token = initial_token(dir.path());
    check_metrics_only_listener(format!("127.0.0.1:{port}").parse().unwrap(), &token);
    // Still on the API's address too.
    let api = Api {
        addr: rivetr.api(),
        token,
    };
    scrape(&api);
}

#[test]
fn a_socket_passed_by_systemd_as_metrics_serves_metrics() {
    let dir = TestDir::new();
    let (api_port, metrics_port) = (free_port(), free_port());
    let launch = Launch::serve();
    let mut launch = Launch {
        wrapper: vec![
            "systemd-socket-activate".into(),
            format!("--listen=127.0.0.1:{api_port}"),
            format!("--listen=127.0.0.1:{metrics_port}"),
            "--fdname=api:metrics".into(),
        ],
        ..launch
    };
    let env = std::mem::take(&mut launch.env);
    for (k, v) in env {
        launch.wrapper.push(format!("--setenv={k}={v}"));
    }
    let mut rivetr = launch.start(&dir);
    rivetr.wait_healthy_at(format!("127.0.0.1:{api_port}").parse().unwrap());
    let token = initial_token(dir.path());
    check_metrics_only_listener(format!("127.0.0.1:{metrics_port}").parse().unwrap(), &token);
    assert!(
        rivetr
            .log()
            .contains("/metrics also served on its own listener")
    );
}
