//! Notifications of real events, end to end: the real binary on real engines (rootful Podman,
//! Docker), real git repositories, moto's S3, Pebble's ACME CA and rcgen certificates make
//! something happen, and a real HTTP receiver (`common::sink`) gets the generic webhook's
//! JSON. One test per event: deployments (succeeded, failed with its reason, rolled back,
//! and a channel filtered to failures), a failed backup, a certificate about to expire, a
//! failed certificate order, a database container the engine keeps restarting, and a start
//! after `kill -9`.

use crate::common;

use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use common::moto::Moto;
use common::pebble::{self, Pebble};
use common::platform::{GitRepo, Platform, docker_socket, podman_socket, unique_name};
use common::sink::{Received, Sink};
use common::{Launch, TestDir, free_port, wait_for};
use rivetr::databases::LABEL_DATABASE;
use rivetr::runtime::{ContainerRuntime, DockerRuntime, PodmanRuntime};
use serde_json::{Value, json};

/// What every test here runs Rivetr with: checks every second, a quick first retry, and the
/// names messages are stamped with.
const NOTIFY_ENV: [(&str, &str); 4] = [
    ("RIVETR_NOTIFICATIONS_CHECK_SECONDS", "1"),
    ("RIVETR_NOTIFICATIONS_RETRY_FIRST_SECONDS", "1"),
    ("RIVETR_NOTIFICATIONS_SERVER_NAME", "test-box"),
    ("RIVETR_NOTIFICATIONS_DASHBOARD_URL", "https://rivetr.test"),
];

/// Adds a generic webhook channel posting to `url`, for `events` (empty: all).
fn add_channel(api: SocketAddr, token: &str, name: &str, url: &str, events: &[&str]) {
    let body = json!({"name": name, "kind": "webhook", "url": url, "events": events}).to_string();
    let auth = format!("Bearer {token}");
    let r = common::api::request(
        api,
        "POST",
        "/api/notifications",
        &[
            ("Authorization", auth.as_str()),
            ("Content-Type", "application/json"),
        ],
        body.as_bytes(),
    );
    assert_eq!(r.status, 201, "adding channel {name}: {}", r.body);
}

/// The JSON bodies the sink received on `path`, in order.
fn messages(sink: &Sink, path: &str) -> Vec<Value> {
    sink.received()
        .iter()
        .filter(|r| r.path == path)
        .map(Received::json)
        .collect()
}

/// The events of the messages on `path`, in order.
fn events(sink: &Sink, path: &str) -> Vec<String> {
    messages(sink, path)
        .iter()
        .map(|m| m["event"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// Waits for a message about `event` on `path`; returns its body after checking what every
/// message carries.
fn wait_message(sink: &Sink, path: &str, event: &str, timeout: Duration) -> Value {
    let r = sink.wait_for(&format!("{event} on {path}"), timeout, |r| {
        r.path == path
            && serde_json::from_slice::<Value>(&r.body).is_ok_and(|m| m["event"] == event)
    });
    assert_eq!(r.method, "POST");
    assert_eq!(r.header("x-rivetr-event"), Some(event), "{r:?}");
    assert!(
        r.header("x-rivetr-signature-256")
            .is_some_and(|s| s.starts_with("sha256=")),
        "{r:?}"
    );
    let m = r.json();
    // Shown when a test fails, to read what was said.
    println!("received: {m}");
    assert_stamped(&m);
    m
}

/// The server's name and a recent RFC 3339 time, as every message has them.
fn assert_stamped(m: &Value) {
    assert_eq!(m["server"], "test-box", "{m}");
    let at = time::OffsetDateTime::parse(
        m["at"].as_str().unwrap_or_default(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap_or_else(|e| panic!("`at` is not RFC 3339 ({e}): {m}"));
    let age = time::OffsetDateTime::now_utc() - at;
    assert!(
        age < time::Duration::minutes(5) && age > time::Duration::seconds(-5),
        "`at` is not now: {m}"
    );
}

/// The engine's own command line (`podman --remote` or `docker`) on `socket`; its output.
fn engine_cli(docker: bool, socket: &str, args: &[&str]) -> String {
    let out = if docker {
        Command::new("docker")
            .args(["-H", socket])
            .args(args)
            .output()
    } else {
        Command::new("podman")
            .args(["--remote", "--url", socket])
            .args(args)
            .output()
    }
    .expect("the engine's command line");
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

// ---------------------------------------------------------------------------------------
// Deployments

fn deployments_case(socket: &str, engine: &str) {
    let sink = Sink::start(&[]);
    let mut env = NOTIFY_ENV.to_vec();
    env.push(("RIVETR_RUNTIME_ENGINE", engine));
    let p = Platform::start(socket, &env);
    let api = p.rivetr.api();
    add_channel(api, &p.token, "ops", &sink.url("/all"), &[]);
    add_channel(
        api,
        &p.token,
        "failures",
        &sink.url("/failures"),
        &["deployment.failed"],
    );

    // A good commit: deployment.succeeded with the app, the deployment, the commit and its
    // page in the dashboard.
    let repo = GitRepo::new("v1\n");
    let app = p.create_app(&unique_name("tell"), repo.path(), json!({}));
    let good_sha = repo.head();
    let good = p.deploy(&app, None);
    let d = p.wait_done(good);
    assert_eq!(d["status"], "running", "{d}\n{}", p.logs(good));
    let m = wait_message(
        &sink,
        "/all",
        "deployment.succeeded",
        Duration::from_secs(30),
    );
    assert_eq!(m["app"], app.as_str(), "{m}");
    assert_eq!(m["deployment"], good, "{m}");
    assert_eq!(m["commit"], good_sha.as_str(), "{m}");
    assert_eq!(
        m["url"],
        format!("https://rivetr.test/deployments/{good}"),
        "{m}"
    );
    assert_eq!(
        m["title"],
        format!("{app}: deployment {good} is live"),
        "{m}"
    );
    assert!(
        m["text"].as_str().unwrap().contains("first version"),
        "the commit's subject: {m}"
    );
    assert!(m["database"].is_null() && m["domain"].is_null(), "{m}");

    // A broken Dockerfile: deployment.failed, saying why, to both channels.
    let bad_sha = repo.commit(
        &[(
            "Dockerfile",
            "FROM localhost/busybox:test\nRUN echo about to fail && false\n",
        )],
        "broken build",
    );
    let bad = p.deploy(&app, None);
    let d = p.wait_done(bad);
    assert_eq!(d["status"], "failed", "{d}");
    let reason = d["reason"].as_str().unwrap().to_owned();
    assert!(reason.contains("build failed"), "{reason}");
    for path in ["/all", "/failures"] {
        let m = wait_message(&sink, path, "deployment.failed", Duration::from_secs(30));
        assert_eq!(m["app"], app.as_str(), "{m}");
        assert_eq!(m["deployment"], bad, "{m}");
        assert_eq!(m["commit"], bad_sha.as_str(), "{m}");
        assert_eq!(
            m["url"],
            format!("https://rivetr.test/deployments/{bad}"),
            "{m}"
        );
        assert_eq!(m["title"], format!("{app}: deployment {bad} failed"), "{m}");
        let text = m["text"].as_str().unwrap();
        assert!(
            text.contains(&reason),
            "the text does not carry the reason {reason:?}: {m}"
        );
    }

    // A rollback to the good deployment: deployment.rolled_back.
    let (status, rb) = p.api(
        "POST",
        &format!("/api/apps/{app}/rollback"),
        Some(json!({ "deployment_id": good })),
    );
    assert_eq!(status, 202, "{rb}");
    let rb = rb["id"].as_i64().unwrap();
    let d = p.wait_done(rb);
    assert_eq!(d["status"], "running", "{d}\n{}", p.logs(rb));
    let m = wait_message(
        &sink,
        "/all",
        "deployment.rolled_back",
        Duration::from_secs(30),
    );
    assert_eq!(m["app"], app.as_str(), "{m}");
    assert_eq!(m["deployment"], rb, "{m}");
    assert_eq!(
        m["url"],
        format!("https://rivetr.test/deployments/{rb}"),
        "{m}"
    );
    assert!(
        m["title"]
            .as_str()
            .unwrap()
            .contains(&format!("rolled back to deployment {good}")),
        "{m}"
    );

    // Each said once, in order; the filtered channel got the failure only.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        events(&sink, "/all"),
        [
            "deployment.succeeded",
            "deployment.failed",
            "deployment.rolled_back"
        ]
    );
    assert_eq!(events(&sink, "/failures"), ["deployment.failed"]);
    let (status, list) = p.api(
        "GET",
        "/api/notifications/deliveries?channel=failures",
        None,
    );
    assert_eq!(status, 200, "{list}");
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["event"], "deployment.failed");
    assert_eq!(list[0]["status"], "sent");
}

#[test]
fn deployments_on_podman_announce_success_failure_with_its_reason_and_rollback() {
    let Some(socket) = podman_socket("deployment notifications on Podman") else {
        return;
    };
    deployments_case(&socket, "podman");
}

#[test]
fn deployments_on_docker_announce_success_failure_with_its_reason_and_rollback() {
    let Some(socket) = docker_socket("deployment notifications on Docker") else {
        return;
    };
    deployments_case(&socket, "docker");
}

// ---------------------------------------------------------------------------------------
// Backups

#[test]
fn a_backup_refused_by_its_s3_destination_is_announced_naming_the_database() {
    let Some(moto) = Moto::start("backup.failed") else {
        return;
    };
    let Some(socket) = podman_socket("backup.failed") else {
        return;
    };
    let sink = Sink::start(&[]);
    let mut env = NOTIFY_ENV.to_vec();
    env.push((
        "RIVETR_DATABASES_REDIS_IMAGE",
        "localhost/rivetr-test-redis:{version}",
    ));
    let p = Platform::start(&socket, &env);
    add_channel(p.rivetr.api(), &p.token, "ops", &sink.url("/hook"), &[]);
    let (status, db) = p.api(
        "POST",
        "/api/databases",
        Some(json!({"name": "cache", "engine": "redis", "version": "7"})),
    );
    assert_eq!(status, 201, "{db}");
    let (status, body) = p.api(
        "POST",
        "/api/backup-destinations",
        Some(json!({
            "name": "wrong-key", "kind": "s3", "endpoint": format!("http://{}", moto.addr),
            "region": "us-east-1", "bucket": "backups", "prefix": "rivetr/", "path_style": true,
            "access_key_id": moto.access_key_id, "secret_access_key": "not-the-secret-key",
        })),
    );
    assert_eq!(status, 201, "{body}");

    let (status, started) = p.api(
        "POST",
        "/api/databases/cache/backups?destination=wrong-key",
        None,
    );
    assert_eq!(status, 202, "{started}");
    let id = started["id"].as_i64().unwrap();
    let ended = wait_for("the backup's end", Duration::from_secs(60), || {
        let (_, list) = p.api("GET", "/api/databases/cache/backups", None);
        list.as_array()?
            .iter()
            .find(|b| b["id"] == id && b["status"] != "running")
            .cloned()
    });
    assert_eq!(ended["status"], "failed", "{ended}");
    let error = ended["error"].as_str().unwrap().to_owned();
    assert!(error.contains("403"), "the storage's refusal: {error}");

    let m = wait_message(&sink, "/hook", "backup.failed", Duration::from_secs(20));
    assert_eq!(m["database"], "cache", "{m}");
    assert_eq!(m["title"], format!("cache: backup {id} failed"), "{m}");
    assert!(
        m["text"].as_str().unwrap().contains(&error),
        "the text does not carry the error {error:?}: {m}"
    );
    assert_eq!(m["url"], "https://rivetr.test/databases/cache", "{m}");
    assert!(m["app"].is_null() && m["deployment"].is_null(), "{m}");
    assert!(
        !m.to_string().contains("not-the-secret-key"),
        "the destination's secret is in the message: {m}"
    );
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(events(&sink, "/hook"), ["backup.failed"]);
}

// ---------------------------------------------------------------------------------------
// Certificates

/// A self-signed certificate for `host` valid from an hour ago for `valid_for` more, as PEM
/// files in `dir`.
fn certificate(dir: &TestDir, host: &str, valid_for: time::Duration) -> (String, String) {
    let mut params = rcgen::CertificateParams::new(vec![host.to_owned()]).unwrap();
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::hours(1);
    params.not_after = now + valid_for;
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    let c = dir.write(&format!("{host}.pem"), &cert.pem());
    let k = dir.write(&format!("{host}.key"), &key.serialize_pem());
    (
        c.to_str().unwrap().to_owned(),
        k.to_str().unwrap().to_owned(),
    )
}

fn manual_route(host: &str, (cert, key): &(String, String)) -> String {
    format!(
        "[[proxy.routes]]\nhost = \"{host}\"\nupstreams = [\"127.0.0.1:1\"]\ntls = \"manual\"\ncert = \"{cert}\"\nkey = \"{key}\"\n\n"
    )
}

/// Rivetr with `config` as its file, notifications as in [`NOTIFY_ENV`], no container engine
/// needed.
fn launch(dir: &TestDir, config: &str, env: &[(&str, String)]) -> common::Rivetr {
    let path = dir.write("rivetr.toml", config);
    let mut launch = Launch::serve().arg("--config").arg(path.to_str().unwrap());
    for (k, v) in NOTIFY_ENV {
        launch = launch.env(k, v);
    }
    for (k, v) in env {
        launch = launch.env(k, v.clone());
    }
    let mut rivetr = launch.start(dir);
    rivetr.wait_healthy();
    rivetr
}

/// Writes `config` and has Rivetr read it again.
fn reload(dir: &TestDir, rivetr: &common::Rivetr, config: &str) {
    let before = rivetr.log().matches("configuration reloaded").count();
    dir.write("rivetr.toml", config);
    rivetr.signal(libc::SIGHUP);
    wait_for("the reload", Duration::from_secs(10), || {
        (rivetr.log().matches("configuration reloaded").count() > before).then_some(())
    });
}

#[test]
fn a_manual_certificate_ending_in_five_days_is_announced_once() {
    let sink = Sink::start(&[]);
    let dir = TestDir::new();
    // Valid two months more: nothing to say.
    let later = certificate(&dir, "later.test", time::Duration::days(60));
    let mut config = manual_route("later.test", &later);
    let rivetr = launch(&dir, &config, &[]);
    add_channel(
        rivetr.api(),
        &common::api::initial_token(dir.path()),
        "ops",
        &sink.url("/hook"),
        &[],
    );

    // Ending in five days (and an hour, so the whole days are five): said within seconds.
    let soon = certificate(
        &dir,
        "soon.test",
        time::Duration::days(5) + time::Duration::hours(1),
    );
    config += &manual_route("soon.test", &soon);
    let added = Instant::now();
    reload(&dir, &rivetr, &config);
    let m = wait_message(
        &sink,
        "/hook",
        "certificate.expiring",
        Duration::from_secs(10),
    );
    let took = added.elapsed();
    assert!(took < Duration::from_secs(5), "announced after {took:?}");
    assert_eq!(m["domain"], "soon.test", "{m}");
    assert_eq!(
        m["title"], "soon.test: certificate expires in 5 days",
        "{m}"
    );
    let text = m["text"].as_str().unwrap();
    assert!(text.contains("manual") && text.contains("soon.test"), "{m}");
    assert!(m["app"].is_null() && m["deployment"].is_null(), "{m}");

    // Not again on the next checks, nor after a reload that keeps the same certificate.
    std::thread::sleep(Duration::from_secs(3));
    reload(&dir, &rivetr, &config);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        events(&sink, "/hook"),
        ["certificate.expiring"],
        "{:?}",
        messages(&sink, "/hook")
    );
}

#[test]
fn a_failed_acme_order_is_announced_with_its_domain_and_error() {
    if !pebble::available() {
        return;
    }
    let sink = Sink::start(&[]);
    let dir = TestDir::new();
    let (http_port, https_port) = (free_port(), free_port());
    let pebble = Pebble::start(&dir, http_port, https_port);
    // The CA looks for this one where nothing listens: its validation fails.
    pebble.set_a_record("broken.acme.rivetr-tests.net", "127.0.0.2");
    let acme = format!(
        "[acme]\nenabled = true\ndirectory_url = \"{}\"\nextra_root_ca = \"{}\"\nchallenge = \"tls-alpn-01\"\ncontact_email = \"ops@rivetr.test\"\n\n",
        pebble.directory_url,
        pebble.listener_ca.display()
    );
    let env = [
        ("RIVETR_PROXY_HTTP_LISTEN", format!("127.0.0.1:{http_port}")),
        (
            "RIVETR_PROXY_HTTPS_LISTEN",
            format!("127.0.0.1:{https_port}"),
        ),
        ("RIVETR_ACME_ENABLED", "true".to_owned()),
        // The next order after an hour: this test sees exactly one failure.
        ("RIVETR_ACME_RETRY_AFTER_FAILURE_SECONDS", "3600".to_owned()),
    ];
    let rivetr = launch(&dir, &acme, &env);
    let token = common::api::initial_token(dir.path());
    add_channel(rivetr.api(), &token, "ops", &sink.url("/hook"), &[]);

    // A domain whose validation fails, and one that gets its certificate.
    let route = |host: &str| {
        format!(
            "[[proxy.routes]]\nhost = \"{host}\"\nupstreams = [\"127.0.0.1:1\"]\ntls = \"acme\"\n\n"
        )
    };
    let config = acme.clone()
        + &route("broken.acme.rivetr-tests.net")
        + &route("good.acme.rivetr-tests.net");
    reload(&dir, &rivetr, &config);
    let m = wait_message(
        &sink,
        "/hook",
        "certificate.renewal_failed",
        Duration::from_secs(60),
    );
    assert_eq!(m["domain"], "broken.acme.rivetr-tests.net", "{m}");
    assert_eq!(
        m["title"], "broken.acme.rivetr-tests.net: certificate order failed",
        "{m}"
    );
    let api = common::api::Api {
        addr: rivetr.api(),
        token,
    };
    let states = api.get("/api/certificates").json();
    let state = |domain: &str| {
        states
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["domain"] == domain)
            .cloned()
            .unwrap_or_else(|| panic!("no state for {domain}: {states}"))
    };
    let broken = state("broken.acme.rivetr-tests.net");
    assert_eq!(broken["status"], "failed", "{broken}");
    let error = broken["last_error"].as_str().unwrap();
    let text = m["text"].as_str().unwrap();
    assert!(
        !error.is_empty() && text.contains(error),
        "the text does not carry the error {error:?}: {m}"
    );
    assert!(text.contains("60 minutes"), "when it is tried again: {m}");

    // The good domain is issued, and nothing is said about it.
    wait_for(
        "the good domain's certificate",
        Duration::from_secs(60),
        || {
            let states = api.get("/api/certificates").json();
            states
                .as_array()?
                .iter()
                .any(|c| c["domain"] == "good.acme.rivetr-tests.net" && c["status"] == "valid")
                .then_some(())
        },
    );
    std::thread::sleep(Duration::from_secs(2));
    let all = messages(&sink, "/hook");
    assert_eq!(all.len(), 1, "one failure, told once: {all:?}");
    drop(pebble);
}

// ---------------------------------------------------------------------------------------
// Rivetr itself

#[test]
fn a_start_after_kill_9_is_announced_and_a_start_after_a_clean_stop_is_not() {
    let sink = Sink::start(&[]);
    let dir = TestDir::new();
    let mut launch = Launch::serve();
    for (k, v) in NOTIFY_ENV {
        launch = launch.env(k, v);
    }
    let env = launch.env.clone();
    let start = || {
        let mut launch = Launch::serve();
        launch.env = env.clone();
        let mut rivetr = launch.start(&dir);
        rivetr.wait_healthy();
        rivetr
    };
    let mut rivetr = start();
    add_channel(
        rivetr.api(),
        &common::api::initial_token(dir.path()),
        "ops",
        &sink.url("/hook"),
        &[],
    );

    // kill -9 once the start completed (its marker is written just before READY, a little
    // after the API answers), and the next start says so.
    let marker = common::api::state_dir(dir.path()).join("rivetr.running");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !marker.exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(marker.exists(), "no running marker while serving");
    rivetr.signal(libc::SIGKILL);
    rivetr.wait_exit(Duration::from_secs(10));
    let mut rivetr = start();
    let m = wait_message(
        &sink,
        "/hook",
        "rivetr.started_after_crash",
        Duration::from_secs(15),
    );
    assert!(
        m["text"].as_str().unwrap().contains("did not stop cleanly"),
        "{m}"
    );

    // A clean stop (SIGTERM), and the next start says nothing.
    rivetr.signal(libc::SIGTERM);
    assert!(rivetr.wait_exit(Duration::from_secs(30)).success());
    let _rivetr = start();
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(events(&sink, "/hook"), ["rivetr.started_after_crash"]);
}

// ---------------------------------------------------------------------------------------
// Crash loops

/// The container's main process on the host, its restart count and its state, from the
/// engine's inspect.
fn pid_restarts_state(docker: bool, socket: &str, container: &str) -> (i32, u64, String) {
    let out = engine_cli(
        docker,
        socket,
        &[
            "inspect",
            "--format",
            "{{.State.Pid}} {{.RestartCount}} {{.State.Status}}",
            container,
        ],
    );
    let mut parts = out.split_whitespace();
    let pid = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    let count = parts.next().and_then(|c| c.parse().ok()).unwrap_or(0);
    let state = parts.next().unwrap_or_default().to_owned();
    (pid, count, state)
}

fn crash_loop_case(socket: &str, engine: &str) {
    let docker = engine == "docker";
    let sink = Sink::start(&[]);
    let mut env = NOTIFY_ENV.to_vec();
    env.push(("RIVETR_RUNTIME_ENGINE", engine));
    env.push((
        "RIVETR_DATABASES_REDIS_IMAGE",
        "localhost/rivetr-test-redis:{version}",
    ));
    let p = Platform::start(socket, &env);
    add_channel(p.rivetr.api(), &p.token, "ops", &sink.url("/hook"), &[]);
    let (status, db) = p.api(
        "POST",
        "/api/databases",
        Some(json!({"name": "cache", "engine": "redis", "version": "7"})),
    );
    assert_eq!(status, 201, "{db}");
    let container = db["container"].as_str().unwrap().to_owned();
    let policy = engine_cli(
        docker,
        socket,
        &[
            "inspect",
            "--format",
            "{{.HostConfig.RestartPolicy.Name}}",
            &container,
        ],
    );
    assert_eq!(policy, "unless-stopped");
    // Rivetr has looked at it (every second) before it first dies.
    std::thread::sleep(Duration::from_secs(3));

    // Killed from the host three times; the engine restarts it and counts each time.
    for round in 1..=3u64 {
        let (pid, count, state) = pid_restarts_state(docker, socket, &container);
        assert!(pid > 0 && state == "running", "{pid} {count} {state}");
        assert_eq!(count, round - 1, "restart count before kill {round}");
        // SAFETY: kill(2) of the container's main process, as the engine reports it.
        let rc = unsafe { libc::kill(pid, libc::SIGKILL) };
        assert_eq!(rc, 0, "kill -9 {pid}");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let now = pid_restarts_state(docker, socket, &container);
            if now.0 > 0 && now.0 != pid && now.2 == "running" && now.1 >= round {
                assert_eq!(now.1, round, "one restart per kill");
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{engine} did not restart the container after kill {round} within 30s \
                 (pid, restart count, state now: {now:?}; before: {pid})"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    // Rivetr's own runtime reads the count the engine shows (libpod's inspect on Podman, the
    // Docker API's on Docker), with the labels naming the database.
    let info = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let rt: Box<dyn ContainerRuntime> = if docker {
                Box::new(DockerRuntime::connect(socket).unwrap())
            } else {
                Box::new(PodmanRuntime::connect(socket).unwrap())
            };
            rt.inspect(&container).await.unwrap()
        });
    assert_eq!(info.restart_count, 3, "{info:?}");
    assert_eq!(
        info.labels.get(LABEL_DATABASE).map(String::as_str),
        Some("cache"),
        "{info:?}"
    );

    let m = wait_message(
        &sink,
        "/hook",
        "container.crash_looping",
        Duration::from_secs(15),
    );
    assert_eq!(m["database"], "cache", "{m}");
    assert!(m["app"].is_null(), "a database, not an app: {m}");
    let title = m["title"].as_str().unwrap();
    assert!(
        title.contains("database cache") && title.contains(&container),
        "{m}"
    );
    assert!(
        m["text"].as_str().unwrap().contains("restarted it 3 times"),
        "Rivetr read the engine's restart count: {m}"
    );
    // Told once, not at every check after.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(events(&sink, "/hook"), ["container.crash_looping"]);
}

#[test]
fn a_database_container_killed_three_times_on_podman_is_a_crash_loop() {
    let Some(socket) = podman_socket("crash loop on Podman") else {
        return;
    };
    crash_loop_case(&socket, "podman");
}

#[test]
fn a_database_container_killed_three_times_on_docker_is_a_crash_loop() {
    let Some(socket) = docker_socket("crash loop on Docker") else {
        return;
    };
    crash_loop_case(&socket, "docker");
}
