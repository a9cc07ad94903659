//! Private repositories end to end: the real `rivetr` binary on rootful Podman cloning from a
//! real git server that wants credentials, with the secret looked for everywhere it must not
//! be.
//!
//! - HTTPS: git's own `git http-backend` (CGI) behind a small TLS server written here, with
//!   basic authentication, on 127.0.0.1. Rivetr trusts its certificate through
//!   `GIT_SSL_CAINFO` in its environment, as an administrator with a private CA would.
//! - SSH: a real `sshd` on 127.0.0.1 (own config, own host key, an unprivileged port, started
//!   as root by the test) serving a bare repository through `git-shell` for a dedicated system
//!   user, with the authorized keys in the test's directory.
//!
//! The third test needs no engine: deploy keys and credentials given, rotated and removed
//! through the command-line client.

use crate::common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::api::{initial_token, state_dir};
use common::platform::{GitRepo, Platform, podman_socket, unique_name};
use common::{BIN, Launch, TestDir, free_port, wait_for};
use serde_json::{Value, json};

/// The app's image: busybox httpd serving `www/`, plus what the build's environment held.
const DOCKERFILE: &str = "FROM localhost/busybox:test\nCOPY www /www\nRUN env > /www/build-env.txt && sleep 1\nEXPOSE 8080\nCMD [\"httpd\", \"-f\", \"-p\", \"8080\", \"-h\", \"/www\"]\n";

/// A value no one could guess, to look for.
fn random_secret(prefix: &str) -> String {
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .unwrap()
        .read_exact(&mut bytes)
        .unwrap();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("{prefix}{hex}")
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    !needle.is_empty()
        && haystack
            .windows(needle.len())
            .any(|w| w == needle.as_bytes())
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

// ---------------------------------------------------------------------------------------
// An HTTPS git server with basic authentication.
// ---------------------------------------------------------------------------------------

/// What the server saw of one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Auth {
    Missing,
    Accepted,
    Refused,
}

struct GitHttps {
    port: u16,
    ca_file: PathBuf,
    root: tempfile::TempDir,
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Vec<Auth>>>,
}

impl GitHttps {
    /// Serves the bare repositories under its root to `user`:`password` only, answering each
    /// request after `delay` (so that a clone lasts long enough to be watched).
    fn start(user: &str, password: &str, delay: Duration) -> GitHttps {
        use base64::Engine;
        let root = tempfile::Builder::new()
            .prefix("rivetr-git-https-")
            .tempdir()
            .unwrap();
        let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
        let ca_file = root.path().join("ca.pem");
        std::fs::write(&ca_file, cert.cert.pem()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![cert.cert.der().clone()],
                rustls::pki_types::PrivateKeyDer::Pkcs8(cert.signing_key.serialize_der().into()),
            )
            .unwrap();
        let config = Arc::new(config);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let expected = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
        );
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let repos = root.path().join("repos");
        std::fs::create_dir_all(&repos).unwrap();
        let (stop2, seen2, user) = (Arc::clone(&stop), Arc::clone(&seen), user.to_owned());
        std::thread::spawn(move || {
            while !stop2.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let conn = Connection {
                            config: Arc::clone(&config),
                            expected: expected.clone(),
                            user: user.clone(),
                            repos: repos.clone(),
                            delay,
                            seen: Arc::clone(&seen2),
                        };
                        std::thread::spawn(move || conn.serve(stream));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        GitHttps {
            port,
            ca_file,
            root,
            stop,
            seen,
        }
    }

    /// Publishes `source`'s `main` as the bare repository `name` (creating it the first time).
    fn publish(&self, name: &str, source: &Path) {
        let bare = self.root.path().join("repos").join(name);
        if !bare.exists() {
            run(Command::new("git")
                .args(["init", "--quiet", "--bare", "--initial-branch=main"])
                .arg(&bare));
        }
        run(Command::new("git")
            .arg("-C")
            .arg(source)
            .args(["push", "--quiet", "--force"])
            .arg(&bare)
            .arg("HEAD:refs/heads/main"));
    }

    fn url(&self, name: &str) -> String {
        format!("https://127.0.0.1:{}/{name}", self.port)
    }

    fn seen(&self) -> Vec<Auth> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for GitHttps {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

struct Connection {
    config: Arc<rustls::ServerConfig>,
    expected: String,
    user: String,
    repos: PathBuf,
    delay: Duration,
    seen: Arc<Mutex<Vec<Auth>>>,
}

/// One HTTP/1.1 request as read.
struct Request {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

impl Connection {
    fn serve(self, stream: TcpStream) {
        stream.set_nonblocking(false).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let Ok(tls) = rustls::ServerConnection::new(Arc::clone(&self.config)) else {
            return;
        };
        let mut reader = BufReader::new(rustls::StreamOwned::new(tls, stream));
        while let Some(req) = read_request(&mut reader) {
            std::thread::sleep(self.delay);
            let auth = match req.header("authorization") {
                None => Auth::Missing,
                Some(a) if a == self.expected => Auth::Accepted,
                Some(_) => Auth::Refused,
            };
            self.seen.lock().unwrap().push(auth);
            let response = if auth == Auth::Accepted {
                self.cgi(&req)
            } else {
                b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"private\"\r\nContent-Length: 0\r\n\r\n".to_vec()
            };
            let out = reader.get_mut();
            if out.write_all(&response).and_then(|()| out.flush()).is_err() {
                return;
            }
            if req
                .header("connection")
                .is_some_and(|c| c.eq_ignore_ascii_case("close"))
            {
                return;
            }
        }
    }

    /// Runs `git http-backend` for the request and turns its CGI answer into HTTP.
    fn cgi(&self, req: &Request) -> Vec<u8> {
        let (path, query) = req.target.split_once('?').unwrap_or((&req.target, ""));
        let mut cmd = Command::new("git");
        cmd.arg("http-backend")
            .env("GIT_PROJECT_ROOT", &self.repos)
            .env("GIT_HTTP_EXPORT_ALL", "1")
            .env("REQUEST_METHOD", &req.method)
            .env("PATH_INFO", path)
            .env("QUERY_STRING", query)
            .env("CONTENT_LENGTH", req.body.len().to_string())
            .env("REMOTE_USER", &self.user)
            .env("REMOTE_ADDR", "127.0.0.1")
            .env("SERVER_PROTOCOL", "HTTP/1.1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if let Some(t) = req.header("content-type") {
            cmd.env("CONTENT_TYPE", t);
        }
        if let Some(p) = req.header("git-protocol") {
            cmd.env("GIT_PROTOCOL", p);
        }
        if let Some(e) = req.header("content-encoding") {
            cmd.env("HTTP_CONTENT_ENCODING", e);
        }
        let mut child = cmd.spawn().unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let body = req.body.clone();
        let writer = std::thread::spawn(move || {
            let _ = stdin.write_all(&body);
        });
        let out = child.wait_with_output().unwrap();
        writer.join().unwrap();
        let raw = out.stdout;
        let split = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map(|i| (i, 4))
            .or_else(|| raw.windows(2).position(|w| w == b"\n\n").map(|i| (i, 2)))
            .expect("CGI output has headers");
        let head = String::from_utf8_lossy(&raw[..split.0]).into_owned();
        let body = &raw[split.0 + split.1..];
        let mut status = "200 OK".to_owned();
        let mut response = String::new();
        for line in head.lines() {
            match line.split_once(':') {
                Some((k, v)) if k.eq_ignore_ascii_case("status") => status = v.trim().to_owned(),
                Some(_) => {
                    response.push_str(line.trim_end());
                    response.push_str("\r\n");
                }
                None => {}
            }
        }
        let mut bytes = format!(
            "HTTP/1.1 {status}\r\n{response}Content-Length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        bytes.extend_from_slice(body);
        bytes
    }
}

fn read_request(r: &mut impl BufRead) -> Option<Request> {
    let mut line = String::new();
    if r.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut words = line.split_whitespace();
    let method = words.next()?.to_owned();
    let target = words.next()?.to_owned();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        r.read_line(&mut h).ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (k, v) = h.split_once(':')?;
        headers.push((k.trim().to_owned(), v.trim().to_owned()));
    }
    let mut req = Request {
        method,
        target,
        headers,
        body: Vec::new(),
    };
    if req
        .header("transfer-encoding")
        .is_some_and(|t| t.eq_ignore_ascii_case("chunked"))
    {
        loop {
            let mut size = String::new();
            r.read_line(&mut size).ok()?;
            let n = usize::from_str_radix(size.trim().split(';').next()?, 16).ok()?;
            let mut chunk = vec![0u8; n + 2];
            r.read_exact(&mut chunk).ok()?;
            if n == 0 {
                break;
            }
            req.body.extend_from_slice(&chunk[..n]);
        }
    } else if let Some(n) = req.header("content-length").and_then(|n| n.parse().ok()) {
        let mut body = vec![0u8; n];
        r.read_exact(&mut body).ok()?;
        req.body = body;
    }
    Some(req)
}

// ---------------------------------------------------------------------------------------
// Watching the clone: processes, the work tree and the clone's private directory.
// ---------------------------------------------------------------------------------------

#[derive(Debug, Default)]
struct Sampled {
    sweeps: usize,
    /// The first two words of every command line seen.
    commands: BTreeSet<String>,
    /// Where a secret showed up.
    leaks: Vec<String>,
    /// Every `.git/config` of a work tree, as read.
    git_configs: BTreeSet<String>,
    /// `(path, mode)` of the clone's private directory and what it held.
    private_files: BTreeSet<(String, u32)>,
}

/// Reads `/proc/*/cmdline` and `/proc/*/environ` of every process, and the state
/// directory's work trees, over and over until stopped.
struct Sampler {
    stop: Arc<AtomicBool>,
    handle: std::thread::JoinHandle<Sampled>,
}

impl Sampler {
    fn start(secrets: Vec<String>, work: PathBuf) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = Arc::clone(&stop);
        let handle = std::thread::spawn(move || {
            let mut s = Sampled::default();
            while !stop2.load(Ordering::Relaxed) {
                sweep(&secrets, &work, &mut s);
                std::thread::sleep(Duration::from_millis(2));
            }
            s
        });
        Sampler { stop, handle }
    }

    fn finish(self) -> Sampled {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().unwrap()
    }
}

fn sweep(secrets: &[String], work: &Path, s: &mut Sampled) {
    s.sweeps += 1;
    let me = std::process::id().to_string();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let pid = entry.file_name().to_string_lossy().into_owned();
        if !pid.bytes().all(|b| b.is_ascii_digit()) || pid == me {
            continue;
        }
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let environ = std::fs::read(entry.path().join("environ")).unwrap_or_default();
        for secret in secrets {
            for (what, bytes) in [("cmdline", &cmdline), ("environ", &environ)] {
                if contains(bytes, secret) {
                    s.leaks.push(format!(
                        "/proc/{pid}/{what}: {}",
                        String::from_utf8_lossy(bytes).replace('\0', " ")
                    ));
                }
            }
        }
        let words: Vec<String> = cmdline
            .split(|b| *b == 0)
            .take(2)
            .map(|w| {
                let w = String::from_utf8_lossy(w).into_owned();
                // Program paths differ between machines; their names do not.
                w.rsplit('/').next().unwrap_or_default().to_owned()
            })
            .collect();
        if !words.is_empty() {
            s.commands.insert(words.join(" "));
        }
    }
    let Ok(entries) = std::fs::read_dir(work) else {
        return;
    };
    for e in entries.flatten() {
        let path = e.path();
        let name = e.file_name().to_string_lossy().into_owned();
        if name.ends_with("-access") {
            if let Ok(m) = std::fs::metadata(&path) {
                s.private_files
                    .insert((name.clone(), m.permissions().mode() & 0o777));
            }
            for f in std::fs::read_dir(&path).into_iter().flatten().flatten() {
                if let Ok(m) = f.metadata() {
                    s.private_files.insert((
                        format!("{name}/{}", f.file_name().to_string_lossy()),
                        m.permissions().mode() & 0o777,
                    ));
                }
            }
        } else if let Ok(config) = std::fs::read_to_string(path.join(".git/config")) {
            s.git_configs.insert(config);
        }
    }
}

/// Fails when `secret` is in the database files, Rivetr's own log or any of `answers`.
fn assert_nowhere(secret: &str, p: &Platform, answers: &[String]) {
    let data = state_dir(p.dir.path());
    for file in ["rivetr.db", "rivetr.db-wal", "rivetr.db-shm"] {
        let bytes = std::fs::read(data.join(file)).unwrap_or_default();
        assert!(!contains(&bytes, secret), "the secret is in {file}");
    }
    assert!(
        !p.rivetr.log().contains(secret),
        "the secret is in Rivetr's log"
    );
    for a in answers {
        assert!(!a.contains(secret), "the secret is in an API answer: {a}");
    }
}

/// Platform API calls whose answers are kept, to look for secrets in them later.
struct Answers<'a> {
    p: &'a Platform,
    all: Vec<String>,
}

impl Answers<'_> {
    fn api(&mut self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let (status, v) = self.p.api(method, path, body);
        self.all.push(v.to_string());
        (status, v)
    }

    /// Deploys the app's branch and waits; returns the final deployment and its log, both
    /// kept.
    fn deploy(&mut self, app: &str) -> (Value, String) {
        self.deploy_ref(app, None)
    }

    /// Deploys a branch or commit and waits, as [`Answers::deploy`].
    fn deploy_ref(&mut self, app: &str, git_ref: Option<&str>) -> (Value, String) {
        let id = self.p.deploy(app, git_ref);
        self.p.wait_done(id);
        let (_, d) = self.api("GET", &format!("/api/deployments/{id}"), None);
        let (_, _) = self.api("GET", &format!("/api/deployments/{id}/logs"), None);
        let log = self.p.logs(id);
        (d, log)
    }
}

// ---------------------------------------------------------------------------------------
// HTTPS
// ---------------------------------------------------------------------------------------

#[test]
fn an_https_credential_deploys_a_private_repo_and_the_secret_is_never_shown() {
    let Some(socket) = podman_socket("private repos over https") else {
        return;
    };
    let password = random_secret("pw-");
    let server = GitHttps::start("deployer", &password, Duration::from_millis(250));
    let repo = GitRepo::new("private v1\n");
    repo.commit(
        &[("Dockerfile", DOCKERFILE)],
        "report the build's environment",
    );
    server.publish("site.git", repo.path());

    let ca = server.ca_file.display().to_string();
    let p = Platform::start(&socket, &[("GIT_SSL_CAINFO", ca.as_str())]);
    let mut answers = Answers {
        p: &p,
        all: Vec::new(),
    };
    let name = unique_name("https");
    let host = format!("{name}.test");
    let (status, created) = answers.api(
        "POST",
        "/api/apps",
        Some(json!({
            "name": name,
            "git_url": format!("https://deployer:{password}@127.0.0.1:{}/site.git", server.port),
            "domains": [host],
            "healthcheck": { "interval_ms": 200 },
        })),
    );
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["git_url"], server.url("site.git"));
    assert_eq!(created["git_credential"], true);

    // The deploy, watched from the outside while it runs.
    let sampler = Sampler::start(vec![password.clone()], state_dir(p.dir.path()).join("work"));
    let (d, log) = answers.deploy(&name);
    let sampled = sampler.finish();
    println!(
        "watched the https deploy: {} sweeps of /proc, {} distinct commands, {} .git/config read",
        sampled.sweeps,
        sampled.commands.len(),
        sampled.git_configs.len()
    );
    assert_eq!(d["status"], "running", "{log}");
    assert_eq!(
        p.through_proxy(&host, "/"),
        (200, "private v1\n".to_owned())
    );
    assert!(
        server.seen().contains(&Auth::Accepted),
        "git never sent the credential: {:?}",
        server.seen()
    );
    assert!(sampled.leaks.is_empty(), "{:#?}", sampled.leaks);
    assert!(
        sampled
            .commands
            .iter()
            .any(|c| c.starts_with("git-remote-https") || c.starts_with("git remote-https")),
        "the sampling never saw git talk to the server ({} sweeps): {:?}",
        sampled.sweeps,
        sampled.commands
    );
    assert!(
        !sampled.git_configs.is_empty(),
        "never saw the work tree's .git/config"
    );
    for config in &sampled.git_configs {
        assert!(!config.contains(&password), "{config}");
    }
    assert!(
        sampled
            .private_files
            .iter()
            .all(|(path, mode)| path.contains('/') || *mode == 0o700),
        "{:?}",
        sampled.private_files
    );
    let (status, build_env) = p.through_proxy(&host, "/build-env.txt");
    assert_eq!(status, 200);
    assert!(build_env.contains("PATH="), "{build_env}");
    assert!(!build_env.contains(&password), "{build_env}");
    assert!(!log.contains(&password));
    let work = state_dir(p.dir.path()).join("work");
    let left: Vec<_> = std::fs::read_dir(&work)
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "left in {}: {left:?}", work.display());

    // A wrong credential: the deployment fails saying so, and v1 keeps serving.
    let wrong = random_secret("wrong-");
    let (status, answer) = answers.api(
        "PUT",
        &format!("/api/apps/{name}/git-credential"),
        Some(json!({ "username": "deployer", "token": wrong })),
    );
    assert_eq!(status, 204, "{answer}");
    repo.commit(&[("www/index.html", "private v2\n")], "v2");
    server.publish("site.git", repo.path());
    let (d, log) = answers.deploy(&name);
    assert_eq!(d["status"], "failed", "{log}");
    let reason = d["reason"].as_str().unwrap();
    assert!(
        reason.contains("refused the credential stored for app") && reason.contains("PATCH"),
        "{reason}"
    );
    assert!(server.seen().contains(&Auth::Refused));
    assert_eq!(
        p.through_proxy(&host, "/"),
        (200, "private v1\n".to_owned())
    );

    // Rotated back to the right one through the git URL, it deploys v2 (by its commit id:
    // git then runs in the work tree, and still finds the credential).
    let (status, answer) = answers.api(
        "PATCH",
        &format!("/api/apps/{name}"),
        Some(json!({
            "git_url": format!("https://deployer:{password}@127.0.0.1:{}/site.git", server.port),
        })),
    );
    assert_eq!(status, 200, "{answer}");
    let (d, log) = answers.deploy_ref(&name, Some(&repo.head()));
    assert_eq!(d["status"], "running", "{log}");
    assert_eq!(d["commit_sha"], repo.head().as_str());
    assert_eq!(
        p.through_proxy(&host, "/"),
        (200, "private v2\n".to_owned())
    );

    // Removed, the server's question goes unanswered.
    let (status, _) = answers.api("DELETE", &format!("/api/apps/{name}/git-credential"), None);
    assert_eq!(status, 204);
    let (_, shown) = answers.api("GET", &format!("/api/apps/{name}"), None);
    assert_eq!(shown["git_credential"], false);
    let (d, log) = answers.deploy(&name);
    assert_eq!(d["status"], "failed", "{log}");
    assert!(
        d["reason"]
            .as_str()
            .unwrap()
            .contains("asks for a credential and app"),
        "{d}"
    );
    assert!(server.seen().contains(&Auth::Missing));
    assert_eq!(
        p.through_proxy(&host, "/"),
        (200, "private v2\n".to_owned())
    );

    let (_, list) = answers.api("GET", "/api/apps", None);
    let (_, deployments) = answers.api("GET", &format!("/api/apps/{name}/deployments"), None);
    assert!(list.is_array() && deployments.is_array());
    let all = answers.all.clone();
    assert_nowhere(&password, &p, &all);
    assert_nowhere(&wrong, &p, &all);
}

// ---------------------------------------------------------------------------------------
// SSH
// ---------------------------------------------------------------------------------------

const GIT_USER: &str = "rivetr-git-test";

/// The system user whose login shell is git-shell, made once per machine.
fn ensure_git_user() {
    let exists = Command::new("id")
        .arg("-u")
        .arg(GIT_USER)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap()
        .success();
    if !exists {
        let out = Command::new("useradd")
            .args([
                "--system",
                "--no-create-home",
                "--home-dir",
                "/",
                "--shell",
                "/usr/bin/git-shell",
                GIT_USER,
            ])
            .output()
            .unwrap();
        // Another test process may have made it meanwhile.
        assert!(
            out.status.success() || String::from_utf8_lossy(&out.stderr).contains("exists"),
            "{out:?}"
        );
    }
    // `*`: no password, but not locked (sshd without PAM refuses locked accounts).
    run(Command::new("usermod").args(["-p", "*", GIT_USER]));
}

/// A real sshd on 127.0.0.1 serving the bare repositories under its directory through
/// git-shell.
struct Sshd {
    dir: tempfile::TempDir,
    port: u16,
    child: Option<Child>,
}

impl Sshd {
    fn start() -> Sshd {
        ensure_git_user();
        let dir = tempfile::Builder::new()
            .prefix("rivetr-sshd-")
            .tempdir()
            .unwrap();
        // The git user reads the repositories and its authorized keys under here.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(dir.path().join("authorized_keys"), "").unwrap();
        std::fs::set_permissions(
            dir.path().join("authorized_keys"),
            std::fs::Permissions::from_mode(0o644),
        )
        .unwrap();
        std::fs::create_dir_all("/run/sshd").unwrap();
        let mut sshd = Sshd {
            dir,
            port: free_port(),
            child: None,
        };
        sshd.new_host_key();
        sshd
    }

    /// Makes a new host key and (re)starts sshd with it on the same port.
    fn new_host_key(&mut self) {
        self.stop();
        let key = self.dir.path().join("host_ed25519");
        let _ = std::fs::remove_file(&key);
        let _ = std::fs::remove_file(key.with_extension("pub"));
        run(Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(&key));
        let config = self.dir.path().join("sshd_config");
        std::fs::write(
            &config,
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {key}\nPidFile none\n\
                 AuthorizedKeysFile {dir}/authorized_keys\nStrictModes no\nUsePAM no\n\
                 PasswordAuthentication no\nKbdInteractiveAuthentication no\n\
                 PubkeyAuthentication yes\nPermitRootLogin no\nAllowUsers {GIT_USER}\n\
                 LogLevel VERBOSE\n",
                port = self.port,
                key = key.display(),
                dir = self.dir.path().display(),
            ),
        )
        .unwrap();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("sshd.log"))
            .unwrap();
        let child = Command::new("/usr/sbin/sshd")
            .args(["-D", "-e", "-f"])
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("sshd (Debian's openssh-server)");
        self.child = Some(child);
        let port = self.port;
        wait_for("sshd to answer", Duration::from_secs(10), || {
            let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
            s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
            let mut banner = [0u8; 4];
            s.read_exact(&mut banner).ok()?;
            (&banner == b"SSH-").then_some(())
        });
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// `SHA256:...` of the host key sshd presents.
    fn host_key_fingerprint(&self) -> String {
        let out = run(Command::new("ssh-keygen")
            .arg("-lf")
            .arg(self.dir.path().join("host_ed25519.pub")));
        out.split_whitespace().nth(1).unwrap().to_owned()
    }

    fn authorize(&self, public_key: &str) {
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(self.dir.path().join("authorized_keys"))
            .unwrap();
        writeln!(f, "{public_key}").unwrap();
    }

    /// Publishes `source`'s `main` as the bare repository `name`, owned by the git user.
    fn publish(&self, name: &str, source: &Path) -> String {
        let bare = self.dir.path().join(name);
        if bare.exists() {
            // Back to root for the push: git refuses a repository another user owns.
            run(Command::new("chown").args(["-R", "root:"]).arg(&bare));
        } else {
            run(Command::new("git")
                .args(["init", "--quiet", "--bare", "--initial-branch=main"])
                .arg(&bare));
        }
        run(Command::new("git")
            .arg("-C")
            .arg(source)
            .args(["push", "--quiet", "--force"])
            .arg(&bare)
            .arg("HEAD:refs/heads/main"));
        run(Command::new("chown")
            .args(["-R", &format!("{GIT_USER}:")])
            .arg(&bare));
        format!("ssh://{GIT_USER}@127.0.0.1:{}{}", self.port, bare.display())
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("sshd.log")).unwrap_or_default()
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        self.stop();
    }
}

#[test]
fn an_ssh_deploy_key_clones_and_changed_host_keys_and_other_apps_keys_are_refused() {
    let Some(socket) = podman_socket("private repos over ssh") else {
        return;
    };
    // SAFETY: geteuid has no preconditions.
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "this test starts sshd and makes a system user: run it as root"
    );
    let mut sshd = Sshd::start();
    let repo = GitRepo::new("over ssh v1\n");
    let url = sshd.publish("site.git", repo.path());
    let p = Platform::start(&socket, &[]);
    let mut answers = Answers {
        p: &p,
        all: Vec::new(),
    };
    let name = unique_name("ssh");
    let host = format!("{name}.test");
    let (status, created) = answers.api(
        "POST",
        "/api/apps",
        Some(json!({ "name": name, "git_url": url, "domains": [host], "healthcheck": { "interval_ms": 200 } })),
    );
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["deploy_key"], Value::Null);

    // Without a deploy key the server refuses, and the reason says what to do. The server's
    // host key is recorded all the same: this was the first contact.
    let (d, log) = answers.deploy(&name);
    assert_eq!(d["status"], "failed", "{log}");
    assert!(
        d["reason"].as_str().unwrap().contains("has no deploy key"),
        "{d}"
    );
    let first_host_key = sshd.host_key_fingerprint();
    assert!(
        log.contains(&format!(
            "recorded the SSH host key of [127.0.0.1]:{}: ssh-ed25519 {first_host_key}",
            sshd.port
        )),
        "{log}"
    );

    // With one the forge knows, it deploys; the server's host key is recorded.
    let (status, key) = answers.api("POST", &format!("/api/apps/{name}/deploy-key"), None);
    assert_eq!(status, 201, "{key}");
    let public = key["public_key"].as_str().unwrap().to_owned();
    assert!(public.starts_with("ssh-ed25519 "), "{public}");
    let (status, again) = answers.api("GET", &format!("/api/apps/{name}/deploy-key"), None);
    assert_eq!((status, &again["public_key"]), (200, &key["public_key"]));
    sshd.authorize(&public);
    let sampler = Sampler::start(Vec::new(), state_dir(p.dir.path()).join("work"));
    let (d, log) = answers.deploy(&name);
    let sampled = sampler.finish();
    assert_eq!(d["status"], "running", "{log}\n{}", sshd.log());
    assert_eq!(
        p.through_proxy(&host, "/"),
        (200, "over ssh v1\n".to_owned())
    );
    assert!(
        sshd.log()
            .contains("Accepted publickey for rivetr-git-test"),
        "{}",
        sshd.log()
    );
    assert!(!log.contains("recorded the SSH host key"), "{log}");
    let (_, known) = answers.api("GET", &format!("/api/apps/{name}/known-hosts"), None);
    assert_eq!(
        known,
        json!([{ "host": format!("[127.0.0.1]:{}", sshd.port), "key_type": "ssh-ed25519", "fingerprint": first_host_key }])
    );
    // The key was on disk only as a 0600 file in a 0700 directory, and only during the clone.
    let key_files: Vec<_> = sampled
        .private_files
        .iter()
        .filter(|(path, _)| path.ends_with("/deploy_key"))
        .collect();
    assert!(!key_files.is_empty(), "never saw the key file: {sampled:?}");
    assert!(
        key_files.iter().all(|(_, mode)| *mode == 0o600),
        "{key_files:?}"
    );
    assert!(
        sampled
            .private_files
            .iter()
            .filter(|(path, _)| !path.contains('/'))
            .all(|(_, mode)| *mode == 0o700),
        "{:?}",
        sampled.private_files
    );
    let work = state_dir(p.dir.path()).join("work");
    let left: Vec<_> = std::fs::read_dir(&work)
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "left in {}: {left:?}", work.display());

    // Another app's key is not this one's: refused.
    let other = unique_name("ssh-other");
    let (status, _) = answers.api(
        "POST",
        "/api/apps",
        Some(json!({ "name": other, "git_url": url, "healthcheck": { "interval_ms": 200 } })),
    );
    assert_eq!(status, 201);
    let (_, other_key) = answers.api("POST", &format!("/api/apps/{other}/deploy-key"), None);
    assert_ne!(other_key["public_key"], key["public_key"]);
    let (d, log) = answers.deploy(&other);
    assert_eq!(d["status"], "failed", "{log}");
    let reason = d["reason"].as_str().unwrap();
    assert!(
        reason.contains("refused the deploy key")
            && reason.contains(other_key["fingerprint"].as_str().unwrap()),
        "{reason}"
    );

    // The server's host key changes: refused, naming the new key; v1 keeps serving.
    sshd.new_host_key();
    let second_host_key = sshd.host_key_fingerprint();
    assert_ne!(first_host_key, second_host_key);
    repo.commit(&[("www/index.html", "over ssh v2\n")], "v2");
    sshd.publish("site.git", repo.path());
    let (d, log) = answers.deploy(&name);
    assert_eq!(d["status"], "failed", "{log}");
    let reason = d["reason"].as_str().unwrap();
    assert!(
        reason.contains("has changed")
            && reason.contains(&second_host_key)
            && reason.contains(&format!("[127.0.0.1]:{}", sshd.port))
            && reason.contains("known-hosts"),
        "{reason}"
    );
    assert_eq!(
        p.through_proxy(&host, "/"),
        (200, "over ssh v1\n".to_owned())
    );
    let (_, still) = answers.api("GET", &format!("/api/apps/{name}/known-hosts"), None);
    assert_eq!(still[0]["fingerprint"], first_host_key.as_str());

    // Reset through the API, the next clone records the new key and deploys v2 (by its
    // commit id: git then runs in the work tree, and still finds the key and known_hosts).
    let (status, _) = answers.api("DELETE", &format!("/api/apps/{name}/known-hosts"), None);
    assert_eq!(status, 204);
    let (d, log) = answers.deploy_ref(&name, Some(&repo.head()));
    assert_eq!(d["status"], "running", "{log}");
    assert_eq!(d["commit_sha"], repo.head().as_str());
    assert_eq!(
        p.through_proxy(&host, "/"),
        (200, "over ssh v2\n".to_owned())
    );
    let (_, known) = answers.api("GET", &format!("/api/apps/{name}/known-hosts"), None);
    assert_eq!(known[0]["fingerprint"], second_host_key.as_str());

    // The private key is encrypted at rest and never shown.
    let data = state_dir(p.dir.path());
    for file in ["rivetr.db", "rivetr.db-wal"] {
        let bytes = std::fs::read(data.join(file)).unwrap_or_default();
        assert!(!contains(&bytes, "OPENSSH PRIVATE KEY"), "{file}");
    }
    for a in &answers.all {
        assert!(!a.contains("PRIVATE KEY"), "{a}");
    }
}

// ---------------------------------------------------------------------------------------
// Rotation and removal through the command-line client (no engine needed).
// ---------------------------------------------------------------------------------------

fn cli(url: &str, token: &str, args: &[&str], stdin: &str) -> (i32, String, String) {
    let home = tempfile::tempdir().unwrap();
    let mut child = Command::new(BIN)
        .args(args)
        .env("RIVETR_URL", url)
        .env("RIVETR_TOKEN", token)
        .env("HOME", home.path())
        .env_remove("XDG_CONFIG_HOME")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn deploy_keys_and_credentials_are_shown_rotated_and_removed_from_the_cli() {
    let dir = TestDir::new();
    let mut rivetr = Launch::serve()
        .env(
            "RIVETR_RUNTIME_SOCKET",
            "unix:///nonexistent/rivetr-no-engine.sock",
        )
        .start(&dir);
    rivetr.wait_healthy();
    let token = initial_token(dir.path());
    let url = format!("http://{}", rivetr.api());
    let run = |args: &[&str], stdin: &str| {
        let r = cli(&url, &token, args, stdin);
        assert_eq!(r.0, 0, "rivetr {args:?}: {r:?}");
        r
    };
    run(
        &[
            "app",
            "create",
            "web",
            "--git",
            "git@git.example.com:team/web.git",
        ],
        "",
    );

    // First use makes the key; the public key alone is on stdout.
    let (_, first, note) = run(&["app", "deploy-key", "web"], "");
    assert!(first.starts_with("ssh-ed25519 ") && first.ends_with(" rivetr web\n"));
    assert!(
        note.contains("New deploy key") && note.contains("SHA256:"),
        "{note}"
    );
    let (_, again, note) = run(&["app", "deploy-key", "web"], "");
    assert_eq!(again, first);
    assert!(note.contains("The deploy key"), "{note}");
    let (_, shown, _) = run(&["app", "show", "web"], "");
    assert!(
        shown.contains("deploy key") && shown.contains("SHA256:"),
        "{shown}"
    );

    // Rotation replaces it.
    let (_, rotated, note) = run(&["app", "deploy-key", "web", "--rotate"], "");
    assert_ne!(rotated, first);
    assert!(note.contains("delete the old one"), "{note}");
    let (_, json, _) = run(&["app", "deploy-key", "web", "--json"], "");
    let v: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["public_key"].as_str().unwrap(), rotated.trim_end());
    assert!(!json.contains("PRIVATE"));

    // Removal.
    run(&["app", "deploy-key", "web", "--remove"], "");
    let r = cli(&url, &token, &["app", "deploy-key", "web", "--remove"], "");
    assert_eq!(r.0, 3, "{r:?}");
    assert!(r.2.contains("no deploy key"), "{r:?}");
    let (_, hosts, _) = run(&["app", "known-hosts", "web"], "");
    assert!(hosts.contains("no SSH host key recorded"), "{hosts}");
    run(&["app", "known-hosts", "web", "--reset"], "");

    // An https credential: refused for an ssh app, stored for an https one, token on stdin.
    let token_value = random_secret("glpat-");
    let r = cli(
        &url,
        &token,
        &["app", "credential", "web", "--username", "oauth2"],
        &token_value,
    );
    assert_eq!(r.0, 1, "{r:?}");
    assert!(r.2.contains("does not clone over https"), "{r:?}");
    run(
        &[
            "app",
            "create",
            "api",
            "--git",
            "https://gitlab.example.com/team/api.git",
        ],
        "",
    );
    run(
        &["app", "credential", "api", "--username", "oauth2"],
        &format!("{token_value}\n"),
    );
    let (_, shown, _) = run(&["app", "show", "api"], "");
    assert!(shown.contains("git credential"), "{shown}");
    let (_, json, _) = run(&["app", "show", "api", "--json"], "");
    assert!(!json.contains(&token_value));
    run(&["app", "credential", "api", "--remove"], "");
    let (_, shown, _) = run(&["app", "show", "api"], "");
    assert!(!shown.contains("git credential"), "{shown}");

    // Nothing of either reached the database in clear, or Rivetr's log.
    let db = state_dir(dir.path());
    for file in ["rivetr.db", "rivetr.db-wal"] {
        let bytes = std::fs::read(db.join(file)).unwrap_or_default();
        assert!(!contains(&bytes, &token_value), "{file}");
        assert!(!contains(&bytes, "OPENSSH PRIVATE KEY"), "{file}");
    }
    assert!(!rivetr.log().contains(&token_value));
}
