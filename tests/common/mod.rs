//! Shared harness for the integration tests: starts the real `rivetr` binary in a temporary
//! directory, with its stderr captured to a file, and helps talk to it.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

pub mod api;
pub mod backend;
pub mod moto;
pub mod pebble;
pub mod platform;
pub mod sink;
pub mod sse;

pub const BIN: &str = env!("CARGO_BIN_EXE_rivetr");

/// Says loudly that `case` is skipped because `why`: on stderr itself, past libtest's
/// capture, so a skip is seen even when the test "passes". Under `CI=true`, where the test
/// command installs and starts everything a test needs, a skip is a failure instead.
#[track_caller]
pub fn skip(case: &str, why: &str) {
    let msg = format!("{case}: SKIPPED because {why}");
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{msg}; with CI=true that is a failure");
    }
    let _ = writeln!(std::io::stderr(), "\n!!!!!!!! {msg} !!!!!!!!\n");
}

/// Debian's Chromium (`$CHROMIUM`, or /usr/bin/chromium), or `None` after [`skip`].
#[track_caller]
pub fn chromium(case: &str) -> Option<PathBuf> {
    let path =
        PathBuf::from(std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".to_owned()));
    if path.exists() {
        return Some(path);
    }
    skip(
        case,
        &format!(
            "{} does not exist (apt-get install chromium)",
            path.display()
        ),
    );
    None
}

/// A port that was free a moment ago.
/// A port nothing listens on, for a daemon to bind later. Taken below the kernel's ephemeral
/// range (32768 and up by default) from a counter seeded by the pid: a port the kernel picked
/// for `bind(0)` is free again at once and can be handed to an outgoing connection of another
/// test before the daemon binds it, which made a daemon fail to start now and then.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const LOW: u32 = 20_000;
    const SPAN: u32 = 12_000;
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let seed = std::process::id().wrapping_mul(7919) % SPAN;
    loop {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = (LOW + (seed + n) % SPAN) as u16;
        if port_is_free(port) {
            return port;
        }
    }
}

/// True when nothing listens on the port and it can be bound.
pub fn port_is_free(port: u16) -> bool {
    TcpListener::bind(("127.0.0.1", port)).is_ok()
}

/// Polls `f` until it returns `Some`, or panics after `timeout` with `what`.
pub fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        if Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// A field of /proc/<pid>/status in kB.
pub fn proc_status_kb(pid: i32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

/// Sends `request` verbatim (it should say `Connection: close`) and returns the status line's
/// code, the response headers (lower-cased names) and the body.
pub fn raw_exchange(addr: SocketAddr, request: &str) -> (u16, Vec<(String, String)>, String) {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    (status, headers, body.to_owned())
}

/// A minimal HTTP/1.1 exchange; returns (status, body). Enough for health checks without
/// pulling a client into every test.
pub fn http_get(addr: SocketAddr, path: &str, host: &str) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("no status line in {text:?}")))?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}

/// A temporary working directory for one Rivetr process.
pub struct TestDir {
    pub dir: tempfile::TempDir,
}

impl TestDir {
    pub fn new() -> TestDir {
        TestDir {
            dir: tempfile::Builder::new()
                .prefix("rivetr-test-")
                .tempdir()
                .unwrap(),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    }
}

/// How to start one Rivetr.
pub struct Launch {
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    /// A program to run Rivetr under (`systemd-socket-activate ...`); Rivetr's own argv follows.
    pub wrapper: Vec<String>,
}

impl Launch {
    /// `rivetr serve` on free ports, state in `<dir>/data`.
    pub fn serve() -> Launch {
        Launch {
            args: vec!["serve".into()],
            env: vec![
                (
                    "RIVETR_SERVER_API_LISTEN".into(),
                    format!("127.0.0.1:{}", free_port()),
                ),
                (
                    "RIVETR_PROXY_HTTP_LISTEN".into(),
                    format!("127.0.0.1:{}", free_port()),
                ),
                (
                    "RIVETR_PROXY_HTTPS_LISTEN".into(),
                    format!("127.0.0.1:{}", free_port()),
                ),
                // Tests that want certificates from an ACME CA turn this on with Pebble.
                ("RIVETR_ACME_ENABLED".into(), "false".into()),
            ],
            wrapper: Vec::new(),
        }
    }

    pub fn arg(mut self, a: impl Into<String>) -> Launch {
        self.args.push(a.into());
        self
    }

    pub fn env(mut self, k: &str, v: impl Into<String>) -> Launch {
        self.env.retain(|(key, _)| key != k);
        self.env.push((k.into(), v.into()));
        self
    }

    pub fn get_env(&self, k: &str) -> Option<&str> {
        self.env
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    }

    pub fn start(self, dir: &TestDir) -> Rivetr {
        let log_path = dir.path().join(format!("rivetr-{}.log", free_port()));
        let log = std::fs::File::create(&log_path).unwrap();
        let mut cmd = if self.wrapper.is_empty() {
            Command::new(BIN)
        } else {
            let mut c = Command::new(&self.wrapper[0]);
            c.args(&self.wrapper[1..]).arg(BIN);
            c
        };
        cmd.args(&self.args)
            .current_dir(dir.path())
            .env_remove("RUST_LOG")
            .env_remove("NOTIFY_SOCKET")
            .env_remove("LISTEN_FDS")
            .env_remove("LISTEN_PID")
            .env_remove("LISTEN_FDNAMES")
            .env_remove("JOURNAL_STREAM")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let api = self
            .get_env("RIVETR_SERVER_API_LISTEN")
            .and_then(|a| a.parse().ok());
        let http = self
            .get_env("RIVETR_PROXY_HTTP_LISTEN")
            .and_then(|a| a.parse().ok());
        let https = self
            .get_env("RIVETR_PROXY_HTTPS_LISTEN")
            .and_then(|a| a.parse().ok());
        let child = cmd.spawn().unwrap();
        Rivetr {
            child: Some(child),
            log_path,
            api,
            http,
            https,
        }
    }
}

/// A running Rivetr; killed when dropped.
pub struct Rivetr {
    pub child: Option<Child>,
    pub log_path: PathBuf,
    pub api: Option<SocketAddr>,
    pub http: Option<SocketAddr>,
    pub https: Option<SocketAddr>,
}

impl Rivetr {
    pub fn pid(&self) -> i32 {
        self.child.as_ref().unwrap().id() as i32
    }

    pub fn api(&self) -> SocketAddr {
        self.api.expect("api address known")
    }

    pub fn http(&self) -> SocketAddr {
        self.http.expect("http address known")
    }

    pub fn https(&self) -> SocketAddr {
        self.https.expect("https address known")
    }

    /// Peak resident memory (VmHWM) of the process, in kB.
    pub fn peak_rss_kb(&self) -> u64 {
        proc_status_kb(self.pid(), "VmHWM")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Waits until `/api/health` answers 200 on `addr`.
    pub fn wait_healthy_at(&mut self, addr: SocketAddr) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok((200, body)) = http_get(addr, "/api/health", "localhost") {
                return body;
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!(
                    "rivetr exited with {status} before it was healthy:\n{}",
                    self.log()
                );
            }
            if Instant::now() > deadline {
                panic!("rivetr not healthy after 30s:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    pub fn wait_healthy(&mut self) -> String {
        let addr = self.api();
        self.wait_healthy_at(addr)
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child's pid.
        let rc = unsafe { libc::kill(self.pid(), sig) };
        assert_eq!(rc, 0, "kill failed");
    }

    /// Waits for the process to exit, up to `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let child = self.child.as_mut().unwrap();
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                panic!("rivetr still running after {timeout:?}:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until the log contains `needle`.
    pub fn wait_log(&self, needle: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while !self.log().contains(needle) {
            if Instant::now() > deadline {
                panic!("log never contained {needle:?}:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }
}

impl Drop for Rivetr {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Plays systemd's side of the notify protocol: a datagram socket Rivetr sends to.
pub struct NotifySocket {
    pub path: PathBuf,
    sock: UnixDatagram,
}

impl NotifySocket {
    pub fn bind(dir: &TestDir) -> NotifySocket {
        let path = dir.path().join("notify.sock");
        let sock = UnixDatagram::bind(&path).unwrap();
        NotifySocket { path, sock }
    }

    /// The next datagram, or None after `timeout`.
    pub fn recv(&self, timeout: Duration) -> Option<String> {
        let deadline = Instant::now() + timeout;
        let mut buf = vec![0u8; 4096];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            self.sock.set_read_timeout(Some(left)).unwrap();
            match self.sock.recv(&mut buf) {
                Ok(n) => return Some(String::from_utf8_lossy(&buf[..n]).into_owned()),
                // recv with a timeout fails with EINTR, without any signal handler, when the
                // process is stopped and continued (signal(7)); that is not a timeout.
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => return None,
            }
        }
    }

    /// Receives until a datagram contains `line` as one of its lines; returns that datagram
    /// and the ones before it.
    pub fn recv_until(&self, line: &str, timeout: Duration) -> (String, Vec<String>) {
        let deadline = Instant::now() + timeout;
        let mut before = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                panic!("no {line:?} within {timeout:?}; got {before:?}");
            }
            match self.recv(left) {
                Some(msg) if msg.lines().any(|l| l == line) => return (msg, before),
                Some(msg) => before.push(msg),
                None => panic!("no {line:?} within {timeout:?}; got {before:?}"),
            }
        }
    }
}
