//! Rivetr as a whole platform for end-to-end tests: the real binary on rootful Podman (from
//! `scripts/test-env/engines.sh`), driven through its API with the initial admin token, plus
//! real git repositories of a tiny busybox app.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{Launch, Rivetr, TestDir, free_port, raw_exchange, wait_for};

/// The rootful Podman socket, or `None` after saying loudly why the test is skipped (a
/// failure under `CI=true`).
pub fn podman_socket(case: &str) -> Option<String> {
    engine_socket("RIVETR_TEST_PODMAN_SOCKET", case)
}

/// The rootless Podman socket, as [`podman_socket`] the rootful one.
pub fn rootless_podman_socket(case: &str) -> Option<String> {
    engine_socket("RIVETR_TEST_PODMAN_ROOTLESS_SOCKET", case)
}

/// The Docker socket, as [`podman_socket`] the rootful Podman one.
pub fn docker_socket(case: &str) -> Option<String> {
    engine_socket("RIVETR_TEST_DOCKER_SOCKET", case)
}

/// The socket in `var`, or `None` after [`super::skip`].
#[track_caller]
pub fn engine_socket(var: &str, case: &str) -> Option<String> {
    match std::env::var(var).ok().filter(|s| !s.is_empty()) {
        Some(s) => Some(s),
        None => {
            super::skip(
                case,
                &format!("{var} is not set (run through scripts/test-env/engines.sh)"),
            );
            None
        }
    }
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A name no other test (in this or another process) uses: a DNS label.
pub fn unique_name(prefix: &str) -> String {
    format!(
        "{prefix}-{}-{}",
        std::process::id() % 100_000,
        COUNTER.fetch_add(1, Ordering::SeqCst)
    )
}

pub struct Platform {
    pub dir: TestDir,
    pub rivetr: Rivetr,
    pub token: String,
    pub socket: String,
    env: Vec<(String, String)>,
}

impl Platform {
    /// Starts Rivetr on Podman with fresh state; extra `RIVETR_*` settings in `env`.
    pub fn start(socket: &str, env: &[(&str, &str)]) -> Platform {
        Platform::start_in(TestDir::new(), socket, env)
    }

    /// As [`Platform::start`], in a directory the test prepared (a small file system mounted
    /// at `<dir>/data`, say).
    pub fn start_in(dir: TestDir, socket: &str, env: &[(&str, &str)]) -> Platform {
        let mut launch = Launch::serve()
            .env("RIVETR_RUNTIME_ENGINE", "podman")
            .env("RIVETR_RUNTIME_SOCKET", socket)
            .env("RIVETR_ENGINE_DRAIN_SECONDS", "1")
            .env("RIVETR_ENGINE_STOP_TIMEOUT_SECONDS", "2");
        for (k, v) in env {
            launch = launch.env(k, *v);
        }
        let saved = launch.env.clone();
        let mut rivetr = launch.start(&dir);
        rivetr.wait_healthy();
        let token = std::fs::read_to_string(dir.path().join("data/initial-admin-token"))
            .expect("the initial admin token file")
            .trim()
            .to_owned();
        Platform {
            dir,
            rivetr,
            token,
            socket: socket.to_owned(),
            env: saved,
        }
    }

    /// Starts Rivetr again on the same state and ports (after `kill -9`, say).
    pub fn restart(&mut self) {
        let mut launch = Launch::serve();
        launch.env = self.env.clone();
        let mut rivetr = launch.start(&self.dir);
        rivetr.wait_healthy();
        self.rivetr = rivetr;
    }

    /// Starts Rivetr again on the same state and ports without waiting for it, to time how
    /// soon it serves.
    pub fn restart_without_waiting(&mut self) {
        let mut launch = Launch::serve();
        launch.env = self.env.clone();
        self.rivetr = launch.start(&self.dir);
    }

    /// `kill -9`, and wait until it is gone.
    pub fn kill9(&mut self) {
        self.rivetr.signal(libc::SIGKILL);
        self.rivetr.wait_exit(Duration::from_secs(10));
    }

    /// One API call; the status and the JSON answer (Null when empty).
    pub fn api(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.token,
            body.len()
        );
        let (status, _, text) = raw_exchange(self.rivetr.api(), &request);
        let json = if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{method} {path}: not JSON ({e}): {text}"))
        };
        (status, json)
    }

    /// Creates an app from a git repository, serving `<name>.test`; returns its name.
    pub fn create_app(&self, name: &str, repo: &Path, extra: Value) -> String {
        let mut body = serde_json::json!({
            "name": name,
            "git_url": format!("file://{}", repo.display()),
            "branch": "main",
            "port": 8080,
            "domains": [format!("{name}.test")],
            "healthcheck": { "path": "/", "interval_ms": 200, "timeout_ms": 1000, "retries": 50 },
        });
        if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
            for (k, v) in e {
                b.insert(k.clone(), v.clone());
            }
        }
        let (status, answer) = self.api("POST", "/api/apps", Some(body));
        assert_eq!(status, 201, "create app: {answer}");
        name.to_owned()
    }

    /// Queues a deployment; returns its id.
    pub fn deploy(&self, app: &str, git_ref: Option<&str>) -> i64 {
        let body = match git_ref {
            Some(r) => serde_json::json!({ "ref": r }),
            None => serde_json::json!({}),
        };
        let (status, d) = self.api("POST", &format!("/api/apps/{app}/deployments"), Some(body));
        assert_eq!(status, 202, "deploy: {d}");
        d["id"].as_i64().unwrap()
    }

    pub fn deployment(&self, id: i64) -> Value {
        let (status, d) = self.api("GET", &format!("/api/deployments/{id}"), None);
        assert_eq!(status, 200, "{d}");
        d
    }

    /// Waits until the deployment reaches a final status; returns it.
    pub fn wait_done(&self, id: i64) -> Value {
        let deadline = Instant::now() + Duration::from_secs(180);
        loop {
            let d = self.deployment(id);
            let status = d["status"].as_str().unwrap_or("").to_owned();
            if ["running", "failed", "cancelled", "superseded", "replaced"]
                .contains(&status.as_str())
            {
                return d;
            }
            if Instant::now() > deadline {
                panic!(
                    "deployment {id} still {status} after 180s:\n{}\n{}",
                    self.logs(id),
                    self.rivetr.log()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until the deployment reaches `status` (a stage on the way).
    pub fn wait_status(&self, id: i64, status: &str) {
        wait_for(
            &format!("deployment {id} to reach {status}"),
            Duration::from_secs(120),
            || (self.deployment(id)["status"] == status).then_some(()),
        );
    }

    /// The deployment's log lines, joined.
    pub fn logs(&self, id: i64) -> String {
        let (_, lines) = self.api("GET", &format!("/api/deployments/{id}/logs"), None);
        lines
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|l| {
                        format!(
                            "[{}] {}",
                            l["stream"].as_str().unwrap_or(""),
                            l["line"].as_str().unwrap_or("")
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            })
            .unwrap_or_default()
    }

    /// A GET through Rivetr's proxy with `host`.
    pub fn through_proxy(&self, host: &str, path: &str) -> (u16, String) {
        let (status, _, body) = raw_exchange(
            self.rivetr.http(),
            &format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"),
        );
        (status, body)
    }

    /// Containers of `app` as `(name, state)`, from Podman itself.
    pub fn containers(&self, app: &str) -> Vec<(String, String)> {
        let out = Command::new("podman")
            .args([
                "--remote",
                "--url",
                &self.socket,
                "ps",
                "-a",
                "--format",
                "json",
            ])
            .args(["--filter", &format!("label=io.rivetr.app={app}")])
            .output()
            .expect("podman");
        assert!(
            out.status.success(),
            "podman ps: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let list: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        let mut found: Vec<(String, String)> = list
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|c| {
                        (
                            c["Names"][0].as_str().unwrap_or("").to_owned(),
                            c["State"].as_str().unwrap_or("").to_owned(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        found.sort();
        found
    }

    pub fn http(&self) -> SocketAddr {
        self.rivetr.http()
    }

    /// `podman` on the test engine; its standard output.
    pub fn podman(&self, args: &[&str]) -> String {
        let out = Command::new("podman")
            .arg("--url")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("podman");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The value of `var` in a container's configured environment, read from the engine.
    pub fn container_env(&self, container: &str, var: &str) -> String {
        let env = self.podman(&["inspect", "--format", "{{json .Config.Env}}", container]);
        let env: Vec<String> = serde_json::from_str(env.trim()).expect("the container's env");
        env.iter()
            .find_map(|e| e.strip_prefix(&format!("{var}=")).map(str::to_owned))
            .unwrap_or_else(|| panic!("{var} is not set in {container}"))
    }

    /// The `rivetr` command line against this Rivetr: exit code, stdout, stderr.
    /// `psql` as a managed PostgreSQL database's user (`db` as the API shows it) inside its
    /// container, over TCP; the output trimmed.
    pub fn psql(&self, db: &Value, sql: &str) -> String {
        let container = db["container"].as_str().unwrap();
        let password = self.container_env(container, "POSTGRES_PASSWORD");
        // Every caller expects success: a failure says why here rather than as an empty
        // answer further on (stop 32's CI saw only "" from a checksum query).
        let out = Command::new("podman")
            .arg("--url")
            .arg(&self.socket)
            .args([
                "exec",
                "-e",
                &format!("PGPASSWORD={password}"),
                container,
                "psql",
                "-h",
                "127.0.0.1",
                "-U",
                db["username"].as_str().unwrap(),
                "-d",
                db["database"].as_str().unwrap(),
                "-tAc",
                sql,
            ])
            .output()
            .expect("podman");
        assert!(
            out.status.success(),
            "psql {sql:?} in {container} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    pub fn cli(&self, args: &[&str]) -> (i32, String, String) {
        let out = Command::new(super::BIN)
            .args(args)
            .env("RIVETR_URL", format!("http://{}", self.rivetr.api()))
            .env("RIVETR_TOKEN", &self.token)
            .env("HOME", self.dir.path())
            .output()
            .expect("the rivetr binary");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

impl Drop for Platform {
    fn drop(&mut self) {
        // Remove what the test's apps left in the shared engine.
        let (_, apps) = self.api_quiet("GET", "/api/apps");
        if let Some(apps) = apps.as_array() {
            for a in apps {
                if let Some(name) = a["name"].as_str() {
                    let _ = self.api_quiet("DELETE", &format!("/api/apps/{name}"));
                }
            }
        }
        // And its databases, data and all (the apps holding links to them are gone).
        let (_, databases) = self.api_quiet("GET", "/api/databases");
        if let Some(databases) = databases.as_array() {
            for d in databases {
                if let Some(name) = d["name"].as_str() {
                    let _ =
                        self.api_quiet("DELETE", &format!("/api/databases/{name}?volumes=true"));
                }
            }
        }
    }
}

impl Platform {
    fn api_quiet(&self, method: &str, path: &str) -> (u16, Value) {
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            self.token
        );
        let Ok(mut s) =
            std::net::TcpStream::connect_timeout(&self.rivetr.api(), Duration::from_secs(2))
        else {
            return (0, Value::Null);
        };
        use std::io::{Read, Write};
        let _ = s.set_read_timeout(Some(Duration::from_secs(60)));
        if s.write_all(request.as_bytes()).is_err() {
            return (0, Value::Null);
        }
        let mut raw = Vec::new();
        let _ = s.read_to_end(&mut raw);
        let text = String::from_utf8_lossy(&raw).into_owned();
        let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
        (0, serde_json::from_str(body).unwrap_or(Value::Null))
    }
}

/// A git repository of a tiny web app: busybox httpd serving `www/`.
pub struct GitRepo {
    pub dir: tempfile::TempDir,
}

pub const DOCKERFILE: &str = "FROM localhost/busybox:test\nCOPY www /www\nEXPOSE 8080\nCMD [\"httpd\", \"-f\", \"-p\", \"8080\", \"-h\", \"/www\"]\n";

impl GitRepo {
    /// A repository whose first commit serves `body` at `/`.
    pub fn new(body: &str) -> GitRepo {
        let repo = GitRepo {
            dir: tempfile::Builder::new()
                .prefix("rivetr-repo-")
                .tempdir()
                .unwrap(),
        };
        repo.git(&["init", "--quiet", "--initial-branch=main"]);
        repo.git(&["config", "user.email", "test@rivetr.test"]);
        repo.git(&["config", "user.name", "Rivetr Test"]);
        repo.commit(
            &[("Dockerfile", DOCKERFILE), ("www/index.html", body)],
            "first version",
        );
        repo
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes the files and commits them; returns the commit id.
    pub fn commit(&self, files: &[(&str, &str)], message: &str) -> String {
        for (path, text) in files {
            let full: PathBuf = self.dir.path().join(path);
            std::fs::create_dir_all(full.parent().unwrap()).unwrap();
            std::fs::write(&full, text).unwrap();
        }
        self.git(&["add", "-A"]);
        self.git(&["commit", "--quiet", "--allow-empty", "-m", message]);
        self.head()
    }

    pub fn head(&self) -> String {
        self.git(&["rev-parse", "HEAD"]).trim().to_owned()
    }

    fn git(&self, args: &[&str]) -> String {
        let out = Command::new("git")
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

/// A port that is free, for tests that need one more.
pub fn spare_port() -> u16 {
    free_port()
}
