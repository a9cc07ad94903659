//! Apps on a real Docker Swarm: three dockerd (a manager and two workers, each in its own
//! network namespace) and a registry, from `scripts/test-env/swarm.sh`, with the real `rivetr`
//! binary driving the manager (`[runtime] engine = "swarm"`).
//!
//! What this proves, in one app's life (one swarm is shared, so the steps run in order):
//!
//! - A build is pushed to the registry and runs by digest as a service of 2 replicas spread
//!   over the two workers (`node.role==worker`, spread by a node label): one task per worker,
//!   and the proxy answers from both (distinct task hostnames).
//! - A secret variable reaches the tasks' environment and is nowhere in the service's spec as
//!   the engine shows it, nor in the deployment's log.
//! - A new commit delivered by a signed GitHub push rolls out with 0 failed requests in a
//!   client loop; the old service is removed after its drain.
//! - A commit whose health check fails is refused: the deployment fails naming the health
//!   check, the old version keeps serving (0 failed requests), the failed service and its
//!   secret are gone.
//! - An explicit rollback to the first deployment runs its image again (the same digest, no
//!   build) with 0 failed requests, and the service it replaced is removed.
//! - `GET /api/nodes` lists the three nodes with their roles and the app's tasks; draining a
//!   worker through the API moves its task to the other worker with every request answered,
//!   and `activate` brings the node back.
//! - Rivetr killed with `kill -9` and started again finds the service and tasks as they are:
//!   the same task ids, routed again.
//! - A worker's dockerd killed with `kill -9`: the swarm moves its tasks, the routes follow
//!   (the proxy answers from the new tasks), every request answered; the node rejoins after a
//!   restart.
//! - Stop, start and delete: stopping scales the service to 0 and the host stops routing,
//!   starting brings it back, deleting the app removes its services.

use crate::common;

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::api::{fixture, sign};
use common::platform::{GitRepo, Platform, engine_socket, unique_name};
use common::wait_for;
use serde_json::{Value, json};

const SECRET: &str = "swarm-secret-7d1c";

/// One swarm serves every test here, and one of them kills a worker's dockerd: they take
/// turns.
static SWARM: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    SWARM.lock().unwrap_or_else(|e| e.into_inner())
}

/// A GET on the Docker API of the socket `unix:///path`.
fn docker(socket: &str, path: &str) -> Value {
    let out = Command::new("curl")
        .args([
            "-sf",
            "--max-time",
            "20",
            "--unix-socket",
            socket.trim_start_matches("unix://"),
        ])
        .arg(format!("http://d{path}"))
        .output()
        .unwrap();
    assert!(out.status.success(), "GET {path} on {socket} failed");
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The raw text of a GET on the Docker API, for searching it.
fn docker_text(socket: &str, path: &str) -> String {
    docker(socket, path).to_string()
}

/// The tasks the swarm wants running for service `name`: (task id, node id, state).
fn tasks(socket: &str, name: &str) -> Vec<(String, String, String)> {
    let filters = json!({ "service": [name], "desired-state": ["running"] }).to_string();
    let path = format!(
        "/tasks?filters={}",
        filters
            .bytes()
            .map(|b| format!("%{b:02X}"))
            .collect::<String>()
    );
    docker(socket, &path)
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["ID"].as_str().unwrap_or("").to_owned(),
                t["NodeID"].as_str().unwrap_or("").to_owned(),
                t["Status"]["State"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

/// Names of the services labelled with `app`.
fn services(socket: &str, app: &str) -> Vec<String> {
    docker(socket, "/services")
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["Spec"]["Labels"]["io.rivetr.app"] == app)
        .map(|s| s["Spec"]["Name"].as_str().unwrap().to_owned())
        .collect()
}

/// Node ids by their `rivetr.test.name` label (manager, worker1, worker2).
fn node_ids(socket: &str) -> std::collections::HashMap<String, String> {
    docker(socket, "/nodes")
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n["Spec"]["Labels"]["rivetr.test.name"]
                    .as_str()
                    .unwrap_or("")
                    .to_owned(),
                n["ID"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// The set of task hostnames the proxy answers with over `n` requests.
fn hostnames(p: &Platform, host: &str, n: usize) -> std::collections::BTreeSet<String> {
    (0..n)
        .map(|_| {
            let (status, body) = p.through_proxy(host, "/host.txt");
            assert_eq!(status, 200, "{body}");
            body.trim().to_owned()
        })
        .collect()
}

/// A client that keeps requesting `host` through the proxy until stopped (at most 20,000
/// requests); counts the answers that are not 200.
struct Loop {
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicUsize>,
    failed: Arc<AtomicUsize>,
    failures: Arc<std::sync::Mutex<Vec<String>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Loop {
    fn start(p: &Platform, host: &str) -> Loop {
        let (stop, sent, failed) = Default::default();
        let failures: Arc<std::sync::Mutex<Vec<String>>> = Default::default();
        let addr = p.rivetr.http();
        let host = host.to_owned();
        let thread = {
            let (stop, sent, failed, failures) = (
                Arc::clone(&stop),
                Arc::clone(&sent),
                Arc::clone(&failed),
                Arc::clone(&failures),
            );
            std::thread::spawn(move || {
                let (stop, sent, failed): (Arc<AtomicBool>, Arc<AtomicUsize>, Arc<AtomicUsize>) =
                    (stop, sent, failed);
                for _ in 0..20_000 {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let r = common::http_get(addr, "/", &host);
                    sent.fetch_add(1, Ordering::SeqCst);
                    match r {
                        Ok((200, _)) => {}
                        other => {
                            failed.fetch_add(1, Ordering::SeqCst);
                            failures.lock().unwrap().push(format!("{other:?}"));
                        }
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
            })
        };
        Loop {
            stop,
            sent,
            failed,
            failures,
            thread: Some(thread),
        }
    }

    /// Stops the client; returns (sent, failed) and the failures.
    fn finish(mut self) -> (usize, usize, Vec<String>) {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.take().unwrap().join().unwrap();
        (
            self.sent.load(Ordering::SeqCst),
            self.failed.load(Ordering::SeqCst),
            self.failures.lock().unwrap().clone(),
        )
    }
}

fn assert_no_failures(what: &str, l: Loop) {
    let (sent, failed, failures) = l.finish();
    eprintln!("{what}: {sent} requests, {failed} failed");
    assert!(sent > 20, "{what}: the client sent only {sent} requests");
    assert_eq!(failed, 0, "{what}: {failures:?}");
}

/// A signed GitHub push of `sha` on main.
fn push(p: &Platform, app: &str, secret: &str, sha: &str) {
    let mut v: Value = serde_json::from_slice(&fixture("github/push.json")).unwrap();
    v["ref"] = json!("refs/heads/main");
    v["after"] = json!(sha);
    if let Some(deleted) = v.get_mut("deleted") {
        *deleted = json!(false);
    }
    let body = serde_json::to_vec(&v).unwrap();
    let sig = format!("sha256={}", sign(secret, &body));
    let delivery = format!("swarm-{sha}");
    let r = common::api::request(
        p.rivetr.api(),
        "POST",
        &format!("/webhooks/github/{app}"),
        &[
            ("X-GitHub-Event", "push"),
            ("X-GitHub-Delivery", &delivery),
            ("X-Hub-Signature-256", &sig),
            ("User-Agent", "GitHub-Hookshot/044aadd"),
            ("Content-Type", "application/json"),
        ],
        &body,
    );
    assert_eq!(r.status, 202, "{}", r.json());
}

/// The newest deployment of `app`, once it is another than `after`.
fn next_deployment(p: &Platform, app: &str, after: i64) -> i64 {
    wait_for("the webhook's deployment", Duration::from_secs(30), || {
        let (_, list) = p.api("GET", &format!("/api/apps/{app}/deployments"), None);
        list.as_array()?
            .iter()
            .filter_map(|d| d["id"].as_i64())
            .max()
            .filter(|id| *id > after)
    })
}

/// The `sha256:...` digest a deployment's log says its service runs.
fn digest_in(log: &str) -> String {
    let at = log
        .find("@sha256:")
        .unwrap_or_else(|| panic!("no digest in the log: {log}"));
    log[at + 1..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == ':')
        .collect()
}

const DOCKERFILE: &str = "FROM localhost/busybox:test\nCOPY www /www\nCMD [\"sh\", \"-c\", \"hostname > /www/host.txt; echo \\\"$GREETING\\\" > /www/env.txt; echo task-started-on-$(hostname); exec httpd -f -p 8080 -h /www\"]\n";

#[test]
fn an_app_runs_across_the_swarm_and_survives_rollouts_drains_and_failures() {
    let Some(socket) = engine_socket("RIVETR_TEST_SWARM_SOCKET", "swarm") else {
        return;
    };
    let _turn = one_at_a_time();
    let registry = std::env::var("RIVETR_TEST_SWARM_REGISTRY").expect("the swarm's registry");
    let config_dir = tempfile::tempdir().unwrap();
    let config = config_dir.path().join("rivetr.toml");
    std::fs::write(
        &config,
        format!("[runtime.swarm]\nregistry = \"{registry}\"\n"),
    )
    .unwrap();
    let mut p = Platform::start(
        &socket,
        &[
            ("RIVETR_CONFIG", config.to_str().unwrap()),
            ("RIVETR_RUNTIME_ENGINE", "swarm"),
        ],
    );
    let nodes = node_ids(&socket);
    let (worker1, worker2) = (nodes["worker1"].clone(), nodes["worker2"].clone());
    // A run cut short may have left a worker drained.
    for w in [&worker1, &worker2] {
        let (status, answer) = p.api("POST", &format!("/api/nodes/{w}/activate"), None);
        assert_eq!(status, 200, "{answer}");
    }

    // A build runs as 2 replicas, one on each worker, and the proxy answers from both.
    let repo = GitRepo::new("v1\n");
    repo.commit(&[("Dockerfile", DOCKERFILE)], "swarm app");
    let app = unique_name("swarm");
    let host = format!("{app}.test");
    let (status, created) = p.api(
        "POST",
        "/api/apps",
        Some(json!({
            "name": app,
            "git_url": format!("file://{}", repo.path().display()),
            "port": 8080,
            "domains": [host],
            "replicas": 2,
            "placement": {
                "constraints": ["node.role==worker"],
                "spread": ["node.labels.rivetr.test.name"],
            },
            "healthcheck": { "path": "/", "interval_ms": 200, "timeout_ms": 1000, "retries": 50 },
        })),
    );
    assert_eq!(status, 201, "{created}");
    let webhook_secret = created["webhook_secret"].as_str().unwrap().to_owned();
    let (status, set) = p.api(
        "PUT",
        &format!("/api/apps/{app}/env/GREETING"),
        Some(json!({ "value": SECRET, "secret": true })),
    );
    assert!((200..300).contains(&status), "{set}");
    let first = p.deploy(&app, None);
    let d = p.wait_done(first);
    assert_eq!(d["status"], "running", "{d}\n{}", p.logs(first));
    let log = p.logs(first);
    assert!(
        log.contains("pushing ") && log.contains(&format!("{registry}/")),
        "{log}"
    );
    assert!(
        log.contains("@sha256:"),
        "the service runs the image by digest: {log}"
    );
    assert!(!log.contains(SECRET), "{log}");
    let service = services(&socket, &app);
    assert_eq!(service.len(), 1, "{service:?}");
    let running = tasks(&socket, &service[0]);
    let on: std::collections::BTreeSet<&str> = running.iter().map(|t| t.1.as_str()).collect();
    assert_eq!(
        on,
        [worker1.as_str(), worker2.as_str()].into_iter().collect(),
        "one task on each worker: {running:?}"
    );
    let seen = wait_for("answers from both tasks", Duration::from_secs(10), || {
        let seen = hostnames(&p, &host, 8);
        (seen.len() == 2).then_some(seen)
    });
    eprintln!("first deployment answered from {seen:?}");
    assert_eq!(p.through_proxy(&host, "/env.txt").1.trim(), SECRET);
    // The app's output comes from every task.
    let (status, _, events) = common::raw_exchange(
        p.rivetr.api(),
        &format!(
            "GET /api/apps/{app}/logs?tail=20 HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\r\n",
            p.token
        ),
    );
    assert_eq!(status, 200, "{events}");
    for name in &seen {
        assert!(
            events.contains(&format!("data: task-started-on-{name}")),
            "{name} in {events}"
        );
    }
    let spec = docker_text(&socket, &format!("/services/{}", service[0]));
    assert!(
        !spec.contains(SECRET),
        "the secret is in the service's spec: {spec}"
    );

    // A signed push rolls a new commit out with every request answered.
    let client = Loop::start(&p, &host);
    let v2 = repo.commit(&[("www/index.html", "v2\n")], "v2");
    push(&p, &app, &webhook_secret, &v2);
    let second = next_deployment(&p, &app, first);
    let d = p.wait_done(second);
    assert_eq!(d["status"], "running", "{d}\n{}", p.logs(second));
    assert_eq!(d["commit_sha"], v2.as_str());
    assert_eq!(p.through_proxy(&host, "/").1, "v2\n");
    wait_for("the old service to go", Duration::from_secs(30), || {
        (services(&socket, &app).len() == 1).then_some(())
    });
    std::thread::sleep(Duration::from_secs(1));
    assert_no_failures("rollout", client);

    // A failing health check: the deployment fails, the old version keeps serving.
    let client = Loop::start(&p, &host);
    repo.commit(
        &[
            ("www/index.html", "v3\n"),
            (
                "deploy.toml",
                "[deploy.healthcheck]\npath = \"/missing\"\nretries = 3\ninterval_ms = 200\n",
            ),
        ],
        "v3 with a failing health check",
    );
    let third = p.deploy(&app, None);
    let d = p.wait_done(third);
    assert_eq!(d["status"], "failed", "{d}");
    assert!(
        d["reason"]
            .as_str()
            .unwrap()
            .contains("health check failed"),
        "{d}"
    );
    assert_eq!(p.through_proxy(&host, "/").1, "v2\n");
    wait_for("the failed service to go", Duration::from_secs(30), || {
        (services(&socket, &app).len() == 1).then_some(())
    });
    let secrets = docker_text(&socket, "/secrets");
    assert!(
        !secrets.contains(&format!("-{app}-{third}-env")),
        "the failed deployment's secret stays: {secrets}"
    );
    assert_no_failures("failed deployment", client);

    // An explicit rollback to the first deployment: its image (same digest), no build, and
    // every request answered while the services swap.
    let client = Loop::start(&p, &host);
    let (status, queued) = p.api(
        "POST",
        &format!("/api/apps/{app}/rollback"),
        Some(json!({ "deployment_id": first })),
    );
    assert_eq!(status, 202, "{queued}");
    let back = queued["id"].as_i64().expect("the rollback's deployment id");
    let d = p.wait_done(back);
    assert_eq!(d["status"], "running", "{d}\n{}", p.logs(back));
    assert_eq!(d["rollback_of"], first, "{d}");
    let log = p.logs(back);
    assert!(
        log.contains(&format!("rolling back to deployment {first}")),
        "{log}"
    );
    assert!(!log.contains("[build]"), "a rollback builds nothing: {log}");
    assert_eq!(p.through_proxy(&host, "/").1, "v1\n");
    let first_digest = digest_in(&p.logs(first));
    assert_eq!(
        digest_in(&log),
        first_digest,
        "the rollback runs the first build's digest"
    );
    wait_for(
        "the rolled-back-from service to go",
        Duration::from_secs(30),
        || (services(&socket, &app).len() == 1).then_some(()),
    );
    std::thread::sleep(Duration::from_secs(1));
    assert_no_failures("rollback", client);
    // Back to a healthy head for what follows.
    repo.commit(
        &[("deploy.toml", ""), ("www/index.html", "v4\n")],
        "v4, healthy again",
    );
    let fourth = p.deploy(&app, None);
    assert_eq!(p.wait_done(fourth)["status"], "running");
    wait_for(
        "the replaced service to go",
        Duration::from_secs(30),
        || (services(&socket, &app).len() == 1).then_some(()),
    );

    // Nodes: listed with the app's tasks; a drained worker's task moves to the other.
    let (status, listed) = p.api("GET", "/api/nodes", None);
    assert_eq!(status, 200, "{listed}");
    let listed = listed["nodes"].as_array().unwrap().clone();
    assert_eq!(listed.len(), 3, "{listed:?}");
    for w in [&worker1, &worker2] {
        let n = listed.iter().find(|n| n["id"] == w.as_str()).unwrap();
        assert_eq!(n["role"], "worker");
        assert_eq!(n["state"], "ready");
        assert!(
            n["tasks"]
                .as_array()
                .unwrap()
                .iter()
                .any(|t| t["app"] == app.as_str()),
            "{n}"
        );
    }
    let service = services(&socket, &app).remove(0);
    let client = Loop::start(&p, &host);
    let (status, drained) = p.api("POST", &format!("/api/nodes/{worker1}/drain"), None);
    assert_eq!(status, 200, "{drained}");
    assert_eq!(drained["availability"], "drain");
    wait_for("both tasks on worker2", Duration::from_secs(60), || {
        let t = tasks(&socket, &service);
        (t.len() == 2 && t.iter().all(|t| t.1 == worker2 && t.2 == "running")).then_some(())
    });
    wait_for(
        "the proxy to answer from the moved task",
        Duration::from_secs(30),
        || (hostnames(&p, &host, 8).len() == 2).then_some(()),
    );
    std::thread::sleep(Duration::from_secs(3));
    assert_no_failures("drain", client);
    let (status, active) = p.api("POST", &format!("/api/nodes/{worker1}/activate"), None);
    assert_eq!(status, 200, "{active}");
    assert_eq!(active["availability"], "active");
    let (status, missing) = p.api("POST", "/api/nodes/no-such-node/drain", None);
    assert_eq!(status, 404, "{missing}");

    // kill -9 of Rivetr: the tasks are found as they are and routed again.
    let before: Vec<String> = tasks(&socket, &service).into_iter().map(|t| t.0).collect();
    p.kill9();
    p.restart();
    let after: Vec<String> = tasks(&socket, &service).into_iter().map(|t| t.0).collect();
    assert_eq!(before, after, "a restart changed the tasks");
    assert_eq!(p.through_proxy(&host, "/").1, "v4\n");
    assert_eq!(hostnames(&p, &host, 8).len(), 2);

    // kill -9 of worker2's dockerd: the swarm moves its tasks to worker1, the route follows.
    let old_names = hostnames(&p, &host, 8);
    let client = Loop::start(&p, &host);
    let pidfile = std::env::var("RIVETR_TEST_SWARM_WORKER2_PIDFILE").unwrap();
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    unsafe { libc::kill(pid, libc::SIGKILL) };
    let killed = Instant::now();
    wait_for("both tasks on worker1", Duration::from_secs(90), || {
        let t = tasks(&socket, &service);
        (t.len() == 2 && t.iter().all(|t| t.1 == worker1 && t.2 == "running")).then_some(())
    });
    wait_for("the route to follow", Duration::from_secs(30), || {
        let now = hostnames(&p, &host, 8);
        now.is_disjoint(&old_names).then_some(())
    });
    eprintln!(
        "worker2's dockerd killed: tasks moved and routed after {:?}",
        killed.elapsed()
    );
    assert_no_failures("worker killed", client);
    let restarted = Command::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/scripts/test-env/swarm.sh"
    ))
    .args(["--restart-node", "worker2"])
    .status()
    .unwrap();
    assert!(restarted.success());
    wait_for("worker2 ready again", Duration::from_secs(60), || {
        let (_, n) = p.api("GET", "/api/nodes", None);
        n["nodes"]
            .as_array()?
            .iter()
            .any(|n| n["id"] == worker2.as_str() && n["state"] == "ready")
            .then_some(())
    });

    // Stop, start, delete.
    let (status, _) = p.api("POST", &format!("/api/apps/{app}/stop"), None);
    assert!((200..300).contains(&status));
    assert_eq!(p.through_proxy(&host, "/").0, 404);
    wait_for("no task", Duration::from_secs(30), || {
        tasks(&socket, &service).is_empty().then_some(())
    });
    let (status, _) = p.api("POST", &format!("/api/apps/{app}/start"), None);
    assert!((200..300).contains(&status));
    assert_eq!(p.through_proxy(&host, "/").1, "v4\n");
    let (status, _) = p.api("DELETE", &format!("/api/apps/{app}"), None);
    assert!((200..300).contains(&status));
    assert!(services(&socket, &app).is_empty());
    let secrets = docker_text(&socket, "/secrets");
    assert!(!secrets.contains(&format!("-{app}-")), "{secrets}");
}

#[test]
fn a_swarm_that_is_not_one_is_refused_at_detection_naming_what_to_do() {
    let Some(socket) = engine_socket("RIVETR_TEST_DOCKER_SOCKET", "swarm detection") else {
        return;
    };
    // The single Docker engine of engines.sh is in no swarm.
    let config_dir = tempfile::tempdir().unwrap();
    let config = config_dir.path().join("rivetr.toml");
    std::fs::write(&config, "[runtime.swarm]\nregistry = \"127.0.0.1:5000\"\n").unwrap();
    let p = Platform::start(
        &socket,
        &[
            ("RIVETR_CONFIG", config.to_str().unwrap()),
            ("RIVETR_RUNTIME_ENGINE", "swarm"),
        ],
    );
    let (_, health) = p.api("GET", "/api/health", None);
    let message = health["runtime"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("not part of a swarm") && message.contains("docker swarm init"),
        "{health}"
    );
    let (status, answer) = p.api("GET", "/api/nodes", None);
    assert_eq!(status, 409, "{answer}");
    // The engine is configured as a swarm, so the credentials can be managed all the same.
    let (status, answer) = p.api("GET", "/api/registry-credentials", None);
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["configured"], false);
}

#[test]
fn registry_credentials_are_sealed_and_used_for_the_push_and_the_nodes_pulls() {
    let Some(socket) = engine_socket("RIVETR_TEST_SWARM_SOCKET", "swarm registry credentials")
    else {
        return;
    };
    let _turn = one_at_a_time();
    let registry =
        std::env::var("RIVETR_TEST_SWARM_AUTH_REGISTRY").expect("the registry with a password");
    let user = std::env::var("RIVETR_TEST_SWARM_AUTH_USER").unwrap();
    let password = std::env::var("RIVETR_TEST_SWARM_AUTH_PASSWORD").unwrap();
    let config_dir = tempfile::tempdir().unwrap();
    let config = config_dir.path().join("rivetr.toml");
    std::fs::write(
        &config,
        format!("[runtime.swarm]\nregistry = \"{registry}\"\n"),
    )
    .unwrap();
    let p = Platform::start(
        &socket,
        &[
            ("RIVETR_CONFIG", config.to_str().unwrap()),
            ("RIVETR_RUNTIME_ENGINE", "swarm"),
        ],
    );
    let repo = GitRepo::new("behind a password\n");
    repo.commit(&[("Dockerfile", DOCKERFILE)], "swarm app");
    let app = unique_name("swarm-auth");
    let host = format!("{app}.test");
    // On a worker: its dockerd has no login of its own, so the pull needs what Rivetr hands it.
    p.create_app(
        &app,
        repo.path(),
        json!({ "placement": { "constraints": ["node.role==worker"] } }),
    );

    // No credentials: the push is refused, and the deployment says where and why.
    let (status, shown) = p.api("GET", "/api/registry-credentials", None);
    assert_eq!(status, 200, "{shown}");
    assert_eq!(shown["configured"], false);
    assert_eq!(shown["registry"], registry.as_str());
    let refused = p.deploy(&app, None);
    let d = p.wait_done(refused);
    assert_eq!(d["status"], "failed", "{d}");
    let reason = d["reason"].as_str().unwrap();
    assert!(
        reason.contains(&format!("cannot push the image to {registry}")),
        "{reason}"
    );
    assert!(services(&socket, &app).is_empty());

    // Bad input is named and changes nothing.
    let (status, bad) = p.api(
        "PUT",
        "/api/registry-credentials",
        Some(json!({ "username": user, "password": "" })),
    );
    assert_eq!(status, 422, "{bad}");
    assert!(bad.to_string().contains("password"), "{bad}");

    let (status, stored) = p.api(
        "PUT",
        "/api/registry-credentials",
        Some(json!({ "username": user, "password": password })),
    );
    assert_eq!(status, 204, "{stored}");
    let (_, shown) = p.api("GET", "/api/registry-credentials", None);
    assert_eq!(shown["configured"], true);
    assert_eq!(shown["username"], user.as_str());
    assert!(!shown.to_string().contains(&password), "{shown}");
    let db = std::fs::read(p.dir.path().join("data/rivetr.db")).unwrap();
    assert!(
        !db.windows(password.len()).any(|w| w == password.as_bytes()),
        "the password is stored in the clear"
    );

    let deployed = p.deploy(&app, None);
    let d = p.wait_done(deployed);
    assert_eq!(d["status"], "running", "{d}\n{}", p.logs(deployed));
    assert!(!p.logs(deployed).contains(&password));
    assert_eq!(p.through_proxy(&host, "/").1, "behind a password\n");
    let service = services(&socket, &app);
    let spec = docker_text(&socket, &format!("/services/{}", service[0]));
    assert!(!spec.contains(&password), "{spec}");

    let (status, _) = p.api("DELETE", "/api/registry-credentials", None);
    assert_eq!(status, 204);
    let (_, shown) = p.api("GET", "/api/registry-credentials", None);
    assert_eq!(shown["configured"], false);
    let (status, _) = p.api("DELETE", &format!("/api/apps/{app}"), None);
    assert!((200..300).contains(&status));
}
