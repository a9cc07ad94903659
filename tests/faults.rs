//! Faults under load (issue 17): each test keeps a client requesting a served app through the
//! proxy for the whole time, injects one fault, and checks that every request was answered,
//! that what the fault interrupted failed with a clear error or waited, and that nothing was
//! lost once it passed. Each test prints one row of the table `scripts/faults.sh` collects:
//! the fault, the requests sent, failed and refused, and the recovery time.
//!
//! `kill -9` of the service under systemd is in `scripts/test-env/package-e2e.sh`, where the
//! packaged unit holds the sockets.

use crate::common;

use std::io::ErrorKind;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::backend::Backend;
use common::platform::{GitRepo, Platform, podman_socket, unique_name};
use common::{Launch, NotifySocket, TestDir, http_get, raw_exchange};
use serde_json::{Value, json};

/// A client requesting `host` through the proxy, one request at a time on a new connection,
/// until stopped.
struct Load {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Counts>,
}

#[derive(Debug, Default)]
struct Counts {
    sent: u64,
    /// Answered, but not with one of the bodies expected.
    failed: u64,
    /// The connection was refused: nothing listened.
    refused: u64,
    /// The first few failures, for the assertion message.
    examples: Vec<String>,
}

impl Load {
    fn start(proxy: SocketAddr, host: &str, bodies: &[&str]) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let host = host.to_owned();
        let bodies: Vec<String> = bodies.iter().map(|b| (*b).to_owned()).collect();
        let stopping = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let mut counts = Counts::default();
            while !stopping.load(Ordering::Relaxed) {
                counts.sent += 1;
                let outcome = http_get(proxy, "/", &host);
                let failure = match outcome {
                    Ok((200, body)) if bodies.contains(&body) => None,
                    Ok((status, body)) => Some(format!("{status} {body:?}")),
                    Err(e) if e.kind() == ErrorKind::ConnectionRefused => {
                        counts.refused += 1;
                        Some("refused".to_owned())
                    }
                    Err(e) => Some(e.to_string()),
                };
                if let Some(f) = failure {
                    if f != "refused" {
                        counts.failed += 1;
                    }
                    if counts.examples.len() < 5 {
                        counts.examples.push(f);
                    }
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            counts
        });
        Load { stop, thread }
    }

    fn finish(self) -> Counts {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().expect("the load thread")
    }
}

/// One row of the faults table, and the check every fault shares: every request answered.
fn report(fault: &str, counts: &Counts, recovery: Duration) {
    println!(
        "\nfault-row\t{fault}\t{}\t{}\t{}\t{:.2} s",
        counts.sent,
        counts.failed,
        counts.refused,
        recovery.as_secs_f64()
    );
    assert!(
        counts.sent > 20,
        "{fault}: only {} requests were sent: the load proves nothing",
        counts.sent
    );
    assert_eq!(
        (counts.failed, counts.refused),
        (0, 0),
        "{fault}: requests failed or were refused: {:?}",
        counts.examples
    );
}

/// An API call that also returns the answer's headers.
fn api(
    p: &Platform,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, Vec<(String, String)>, Value) {
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        p.token,
        body.len()
    );
    let (status, headers, text) = raw_exchange(p.rivetr.api(), &request);
    (
        status,
        headers,
        serde_json::from_str(&text).unwrap_or(Value::Null),
    )
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

fn deploy_and_wait(p: &Platform, app: &str) -> Value {
    let id = p.deploy(app, None);
    let d = p.wait_done(id);
    assert_eq!(d["status"], "running", "{d}\n{}", p.logs(id));
    d
}

fn integrity_check(db: &Path) {
    let conn = rusqlite::Connection::open(db).unwrap();
    let result: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(result, "ok", "PRAGMA integrity_check of {}", db.display());
}

#[test]
fn a_database_locked_by_another_process_for_10_s_fails_api_writes_fast_and_loses_nothing() {
    let Some(socket) = podman_socket("database locked for 10 s") else {
        return;
    };
    let p = Platform::start(&socket, &[]);
    let repo = GitRepo::new("v1\n");
    let app = p.create_app(&unique_name("locked"), repo.path(), json!({}));
    deploy_and_wait(&p, &app);
    let load = Load::start(p.http(), &format!("{app}.test"), &["v1\n", "v2\n"]);
    let db_path = p.dir.path().join("data/rivetr.db");

    // A deployment under way when the lock is taken: its writes (stages, log lines) wait for
    // the lock rather than being lost.
    repo.commit(&[("www/index.html", "v2\n")], "v2");
    let second = p.deploy(&app, None);
    let locker = rusqlite::Connection::open(&db_path).unwrap();
    locker.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let locked_at = Instant::now();

    // A write through the API: refused at once, saying why and when to come back.
    let t = Instant::now();
    let (status, headers, body) = api(
        &p,
        "POST",
        "/api/apps",
        Some(
            json!({ "name": unique_name("during-lock"), "port": 8080, "image": "localhost/busybox:test" }),
        ),
    );
    let took = t.elapsed();
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "database_locked", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("locked"),
        "{body}"
    );
    assert_eq!(header(&headers, "retry-after"), Some("1"));
    assert!(took < Duration::from_secs(4), "the 503 took {took:?}");
    println!("API write while locked: 503 after {took:?}");

    // A read is answered at once too: 200 when the connection is free (a read does not wait
    // for the write lock, WAL), 503 while the deployment's write holds it waiting for the lock.
    let t = Instant::now();
    let (status, _, apps) = api(&p, "GET", "/api/apps", None);
    assert!(
        status == 200 || (status == 503 && apps["error"]["code"] == "database_locked"),
        "{status} {apps}"
    );
    assert!(
        t.elapsed() < Duration::from_secs(4),
        "the read took {:?}",
        t.elapsed()
    );
    // The health check reads on a connection of its own: it stays 200, as the proxy serves
    // (the load thread).
    let (status, health) = http_get(p.rivetr.api(), "/api/health", "localhost").unwrap();
    assert_eq!(status, 200, "{health}");

    let remaining = Duration::from_secs(10).saturating_sub(locked_at.elapsed());
    std::thread::sleep(remaining);
    locker.execute_batch("ROLLBACK").unwrap();
    let released = Instant::now();

    // After: writes go through again, and the deployment went on where it waited.
    let recovered = loop {
        let (status, _, body) = api(
            &p,
            "POST",
            "/api/apps",
            Some(
                json!({ "name": unique_name("after-lock"), "port": 8080, "image": "localhost/busybox:test" }),
            ),
        );
        if status == 201 {
            break released.elapsed();
        }
        assert_eq!(status, 503, "{body}");
        assert!(released.elapsed() < Duration::from_secs(10), "{body}");
        std::thread::sleep(Duration::from_millis(50));
    };
    let d = p.wait_done(second);
    assert_eq!(d["status"], "running", "{d}\n{}", p.logs(second));
    assert_eq!(
        p.through_proxy(&format!("{app}.test"), "/"),
        (200, "v2\n".to_owned())
    );
    let logs = p.logs(second);
    assert!(
        logs.lines().count() > 3,
        "the deployment's log lost lines: {logs}"
    );
    // (The old version's container drains for a second after the switch.)
    common::wait_for("one running container", Duration::from_secs(30), || {
        let running = p
            .containers(&app)
            .into_iter()
            .filter(|(_, state)| state == "running")
            .count();
        (running == 1).then_some(())
    });
    let counts = load.finish();
    integrity_check(&db_path);
    report(
        "database locked by another process for 10 s",
        &counts,
        recovered,
    );
}

/// `LD_PRELOAD` of libfaketime (Debian's `libfaketime`), whose clock offset follows a file:
/// the wall clock (`CLOCK_REALTIME`) steps when the file changes, the monotonic clock does not,
/// as when an administrator or NTP sets the time.
struct SteppedClock {
    file: std::path::PathBuf,
}

const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1";

impl SteppedClock {
    fn new(dir: &TestDir) -> SteppedClock {
        assert!(
            Path::new(LIBFAKETIME).exists(),
            "{LIBFAKETIME} is missing: apt install libfaketime (scripts/test-all.sh does)"
        );
        SteppedClock {
            file: dir.write("faketime", "+0\n"),
        }
    }

    fn env(&self, launch: Launch) -> Launch {
        launch
            .env("LD_PRELOAD", LIBFAKETIME)
            .env("FAKETIME_TIMESTAMP_FILE", self.file.to_str().unwrap())
            .env("FAKETIME_NO_CACHE", "1")
            .env("FAKETIME_DONT_FAKE_MONOTONIC", "1")
    }

    /// Sets the wall clock to `seconds` from the true time.
    fn step(&self, seconds: i64) {
        std::fs::write(&self.file, format!("{seconds:+}\n")).unwrap();
    }
}

/// The wall-clock time an HTTP `Date` header names, in seconds since the epoch.
fn date_header(headers: &[(String, String)]) -> i64 {
    let date = header(headers, "date").expect("a Date header");
    let out = Command::new("date")
        .args(["-d", date, "+%s"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[test]
fn clock_steps_forward_and_back_break_no_rate_limit_timeout_or_watchdog() {
    let backend = Backend::start("A");
    let dir = TestDir::new();
    let clock = SteppedClock::new(&dir);
    let config = dir.write(
        "rivetr.toml",
        &format!(
            "[proxy]\nresponse_timeout_seconds = 1\n\n[[proxy.routes]]\nhost = \"a.test\"\n\
             upstreams = [\"{}\"]\ntls = \"none\"\n",
            backend.addr
        ),
    );
    let notify = NotifySocket::bind(&dir);
    let mut rivetr = clock
        .env(Launch::serve())
        .arg("--config")
        .arg(config.to_str().unwrap())
        .env("NOTIFY_SOCKET", notify.path.to_str().unwrap())
        .env("WATCHDOG_USEC", "2000000")
        .start(&dir);
    notify.recv_until("READY=1", Duration::from_secs(30));
    rivetr.wait_healthy();
    let load = Load::start(rivetr.http(), "a.test", &["A"]);

    // Watchdog beats are counted by a thread of their own for the whole test.
    let beating = Arc::new(AtomicBool::new(true));
    let beats = {
        let beating = Arc::clone(&beating);
        std::thread::spawn(move || {
            let mut gaps = Vec::new();
            let mut last = Instant::now();
            while beating.load(Ordering::Relaxed) {
                let message = notify.recv(Duration::from_secs(3)).unwrap_or_default();
                if message.lines().any(|l| l == "WATCHDOG=1") {
                    gaps.push(last.elapsed());
                    last = Instant::now();
                }
            }
            gaps
        })
    };

    // The failed-token limit: exhausted before the steps, and still in force after each.
    let bad = |rivetr: &common::Rivetr| {
        raw_exchange(
            rivetr.api(),
            "GET /api/apps HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer rvt_wrong\r\nConnection: close\r\n\r\n",
        )
        .0
    };
    let mut statuses = Vec::new();
    for _ in 0..12 {
        statuses.push(bad(&rivetr));
    }
    assert_eq!(statuses.last(), Some(&429), "{statuses:?}");

    // (In this order: libfaketime 0.9.10 here ignores a step back that follows a step forward
    // in a process with many threads.)
    for (label, offset) in [("back 1 h", -3600), ("forward 1 day", 86_400)] {
        // A request the app stalls on when the clock steps: 504 after the timeout, not at
        // once (forward) and not an hour late (back).
        let proxy = rivetr.http();
        let stalled = std::thread::spawn(move || {
            let t = Instant::now();
            let answer = http_get(proxy, "/stall?ms=8000", "a.test");
            (answer, t.elapsed())
        });
        std::thread::sleep(Duration::from_millis(300));
        clock.step(offset);
        let (answer, took) = stalled.join().unwrap();
        assert_eq!(answer.unwrap().0, 504, "stalled request, clock {label}");
        assert!(
            took > Duration::from_millis(900) && took < Duration::from_secs(4),
            "the 1 s response timeout fired after {took:?} with the clock stepped {label}"
        );

        // The step took effect: the Date of the proxy's own answers follows the wall clock.
        // (Not the API's: hyper renders its Date again only once the clock passes the second
        // it last rendered, so after a step back its Date stands still for the step's length.)
        let (status, headers, _) = raw_exchange(
            rivetr.http(),
            "GET / HTTP/1.1\r\nHost: nowhere.test\r\nConnection: close\r\n\r\n",
        );
        assert_eq!(status, 404);
        let skew = date_header(&headers) - now_unix();
        assert!(
            (skew - offset).abs() <= 5,
            "clock {label}: the Date header is {skew} s from now, not {offset}"
        );
        // ...and the limit still holds: a step does not refill the bucket. (One failure comes
        // back every 6 s of real time, and these rounds are a second or two apart.)
        let statuses: Vec<u16> = (0..5).map(|_| bad(&rivetr)).collect();
        assert!(
            statuses.iter().filter(|s| **s == 401).count() <= 1
                && statuses.iter().all(|s| *s == 401 || *s == 429),
            "clock {label}: the failed-token limit reset: {statuses:?}"
        );
    }

    // A good token still goes through (the limit only counts failures), and the API answers.
    let token = common::api::initial_token(dir.path());
    let (status, _, body) = raw_exchange(
        rivetr.api(),
        &format!(
            "GET /api/apps HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
        ),
    );
    assert_eq!(status, 200, "{body}");

    // A few more beats after the last step, with the load still on.
    std::thread::sleep(Duration::from_secs(3));
    beating.store(false, Ordering::Relaxed);
    let gaps = beats.join().unwrap();
    let longest = gaps.iter().max().copied().unwrap_or_default();
    assert!(gaps.len() >= 4, "only {} watchdog beats", gaps.len());
    // systemd would restart a service whose beats were WATCHDOG_USEC apart.
    assert!(
        longest < Duration::from_secs(2),
        "a watchdog beat came {longest:?} after the one before (WATCHDOG_USEC=2 s)"
    );
    let counts = load.finish();
    report(
        "wall clock stepped back 1 h, then forward 1 day",
        &counts,
        Duration::ZERO,
    );
    assert!(
        rivetr.log().lines().all(|l| !l.contains("panicked")),
        "{}",
        rivetr.log()
    );
}

/// A small tmpfs mounted over a directory for one test, filled on demand.
struct SmallFs {
    at: std::path::PathBuf,
}

impl SmallFs {
    fn mount(at: &Path, megabytes: u32) -> SmallFs {
        std::fs::create_dir_all(at).unwrap();
        let status = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={megabytes}m,mode=0755"),
                "tmpfs",
            ])
            .arg(at)
            .status()
            .unwrap();
        assert!(
            status.success(),
            "mount -t tmpfs on {} (run as root)",
            at.display()
        );
        SmallFs { at: at.to_owned() }
    }

    /// Writes a file until the file system is full; returns its path.
    fn fill(&self) -> std::path::PathBuf {
        use std::io::Write;
        let path = self.at.join("filler");
        let mut f = std::fs::File::create(&path).unwrap();
        for chunk in [1 << 20, 4096, 1] {
            let block = vec![0u8; chunk];
            while f.write_all(&block).is_ok() {}
        }
        let _ = f.sync_all();
        path
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        // After the test directory's own clean-up, which cannot remove a mount point.
        let _ = Command::new("umount").arg("-l").arg(&self.at).status();
        let _ = std::fs::remove_dir(&self.at);
        if let Some(parent) = self.at.parent() {
            let _ = std::fs::remove_dir_all(parent);
        }
    }
}

#[test]
fn a_full_disk_under_the_state_directory_fails_clearly_keeps_serving_and_recovers() {
    let Some(socket) = podman_socket("disk full") else {
        return;
    };
    let dir = TestDir::new();
    let fs = SmallFs::mount(&dir.path().join("data"), 64);
    let p = Platform::start_in(dir, &socket, &[]);
    let repo = GitRepo::new("v1\n");
    let app = p.create_app(&unique_name("full"), repo.path(), json!({}));
    deploy_and_wait(&p, &app);
    let host = format!("{app}.test");
    let load = Load::start(p.http(), &host, &["v1\n", "v3\n"]);
    let db_path = p.dir.path().join("data/rivetr.db");

    // A deployment that fills the disk itself: its checkout (a 48 MiB file, twice: in git's
    // objects and in the work tree) does not fit in what is left of the 64 MiB.
    let mut big = vec![0u8; 48 << 20];
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for chunk in big.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
    }
    std::fs::write(repo.path().join("big.bin"), &big).unwrap();
    drop(big);
    repo.commit(&[("www/index.html", "v2\n")], "v2, too large for the disk");
    let too_large = p.deploy(&app, None);
    let d = p.wait_done(too_large);
    assert_eq!(d["status"], "failed", "{d}");
    let reason = d["reason"].as_str().unwrap_or("").to_owned();
    assert!(
        reason.contains("is full"),
        "the failure does not say the disk is full: {reason}\n{}",
        p.logs(too_large)
    );
    println!("deployment {too_large} failed with: {reason}");
    assert_eq!(p.through_proxy(&host, "/"), (200, "v1\n".to_owned()));

    // The disk filled by something else, then an API write: 507, saying what is full. (An
    // empty WAL first, so that the write must take new space: SQLite reuses a WAL's pages.)
    let checkpoint = rusqlite::Connection::open(&db_path).unwrap();
    common::wait_for("a complete WAL checkpoint", Duration::from_secs(10), || {
        let busy: i64 = checkpoint
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))
            .unwrap();
        (busy == 0).then_some(())
    });
    drop(checkpoint);
    let filler = fs.fill();
    let t = Instant::now();
    let (status, _, body) = api(
        &p,
        "POST",
        "/api/apps",
        Some(
            json!({ "name": unique_name("while-full"), "port": 8080, "image": "localhost/busybox:test" }),
        ),
    );
    assert_eq!(status, 507, "{body}");
    assert_eq!(body["error"]["code"], "disk_full", "{body}");
    assert!(
        t.elapsed() < Duration::from_secs(4),
        "the 507 took {:?}",
        t.elapsed()
    );
    // Reads and the proxy go on.
    let (status, _, _) = api(&p, "GET", &format!("/api/apps/{app}"), None);
    assert_eq!(status, 200);
    assert_eq!(p.through_proxy(&host, "/"), (200, "v1\n".to_owned()));

    // Space comes back: writes go through again, with nothing done by hand.
    std::fs::remove_file(&filler).unwrap();
    let freed = Instant::now();
    let recovered = loop {
        let (status, _, body) = api(
            &p,
            "POST",
            "/api/apps",
            Some(
                json!({ "name": unique_name("after-full"), "port": 8080, "image": "localhost/busybox:test" }),
            ),
        );
        if status == 201 {
            break freed.elapsed();
        }
        assert!(freed.elapsed() < Duration::from_secs(10), "{status} {body}");
        std::thread::sleep(Duration::from_millis(50));
    };

    // Nothing was left behind, and the next deployment works.
    let running: Vec<_> = p
        .containers(&app)
        .into_iter()
        .filter(|(_, state)| state == "running")
        .collect();
    assert_eq!(running.len(), 1, "{running:?}");
    let work: Vec<_> = std::fs::read_dir(p.dir.path().join("data/work"))
        .map(|d| d.filter_map(Result::ok).map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(
        work.is_empty(),
        "the failed checkout was left behind: {work:?}"
    );
    std::fs::remove_file(repo.path().join("big.bin")).unwrap();
    repo.commit(&[("www/index.html", "v3\n")], "v3");
    deploy_and_wait(&p, &app);
    assert_eq!(p.through_proxy(&host, "/"), (200, "v3\n".to_owned()));
    let counts = load.finish();
    integrity_check(&db_path);
    report(
        "state directory's disk full during a checkout and an API write",
        &counts,
        recovered,
    );
}

/// A Podman API service of the test's own, on this machine's rootful storage (the shared
/// service of engines.sh goes on serving the other tests), for the test to kill and restart.
struct OwnPodman {
    sock: std::path::PathBuf,
    child: Option<std::process::Child>,
}

impl OwnPodman {
    fn start(dir: &Path) -> OwnPodman {
        let mut engine = OwnPodman {
            sock: dir.join("own-podman.sock"),
            child: None,
        };
        engine.restart();
        engine
    }

    fn url(&self) -> String {
        format!("unix://{}", self.sock.display())
    }

    /// Starts the service (again) on the same socket and waits until it answers.
    fn restart(&mut self) {
        let _ = std::fs::remove_file(&self.sock);
        let child = Command::new("podman")
            .args(["system", "service", "--time=0", &self.url()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("podman system service");
        self.child = Some(child);
        common::wait_for(
            "the test's own Podman service",
            Duration::from_secs(30),
            || {
                let out = Command::new("curl")
                    .args(["-sf", "--max-time", "2", "--unix-socket"])
                    .arg(&self.sock)
                    .arg("http://d/_ping")
                    .output()
                    .ok()?;
                out.status.success().then_some(())
            },
        );
    }

    /// `kill -9` of the service: the containers it started run on (under conmon).
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for OwnPodman {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The deployment's end, once the engine is back: failed, saying the engine was the cause,
/// and only the old version's container left running.
fn check_failed_for_the_engine(p: &Platform, app: &str, id: i64, engine: &OwnPodman) -> String {
    let d = p.wait_done(id);
    assert_eq!(d["status"], "failed", "{d}\n{}", p.logs(id));
    let reason = d["reason"].as_str().unwrap_or("").to_owned();
    let socket = engine.sock.display().to_string();
    assert!(
        reason.contains(&socket)
            || reason.to_lowercase().contains("engine")
            || reason.contains("podman"),
        "the failure does not name the engine: {reason}\n{}",
        p.logs(id)
    );
    let running: Vec<_> = common::wait_for(
        "only the serving version's container to remain",
        Duration::from_secs(30),
        || {
            let running: Vec<_> = p
                .containers(app)
                .into_iter()
                .filter(|(_, state)| state == "running")
                .collect();
            (running.len() == 1).then_some(running)
        },
    );
    assert_eq!(running.len(), 1);
    reason
}

#[test]
fn the_engine_killed_during_a_build_and_a_health_check_fails_the_deployment_and_keeps_serving() {
    if podman_socket("engine killed").is_none() {
        return;
    }
    let dir = TestDir::new();
    let mut engine = OwnPodman::start(dir.path());
    let p = Platform::start_in(dir, &engine.url(), &[]);
    let repo = GitRepo::new("v1\n");
    let app = p.create_app(&unique_name("enginekill"), repo.path(), json!({}));
    deploy_and_wait(&p, &app);
    let host = format!("{app}.test");
    let load = Load::start(p.http(), &host, &["v1\n", "v4\n"]);
    let mut recoveries = Vec::new();

    // During a build (a slow RUN step).
    repo.commit(
        &[
            (
                "Dockerfile",
                &common::platform::DOCKERFILE.replacen('\n', "\nRUN sleep 6\n", 1),
            ),
            ("www/index.html", "v2\n"),
        ],
        "v2, slow to build",
    );
    let building = p.deploy(&app, None);
    p.wait_status(building, "building");
    std::thread::sleep(Duration::from_secs(1));
    engine.kill();
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(p.through_proxy(&host, "/"), (200, "v1\n".to_owned()));
    let restarted = Instant::now();
    engine.restart();
    let reason = check_failed_for_the_engine(&p, &app, building, &engine);
    recoveries.push(restarted.elapsed());
    println!("killed during the build: {reason}");

    // During a health check (of a path the new version never answers).
    repo.commit(
        &[
            ("Dockerfile", common::platform::DOCKERFILE),
            ("www/index.html", "v3\n"),
        ],
        "v3",
    );
    let never = json!({ "healthcheck": { "path": "/never", "interval_ms": 300, "timeout_ms": 1000, "retries": 200 } });
    let (status, body) = p.api("PATCH", &format!("/api/apps/{app}"), Some(never));
    assert_eq!(status, 200, "{body}");
    let checking = p.deploy(&app, None);
    p.wait_status(checking, "health_checking");
    std::thread::sleep(Duration::from_secs(1));
    engine.kill();
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(p.through_proxy(&host, "/"), (200, "v1\n".to_owned()));
    let restarted = Instant::now();
    engine.restart();
    let reason = check_failed_for_the_engine(&p, &app, checking, &engine);
    recoveries.push(restarted.elapsed());
    println!("killed during the health check: {reason}");

    // The engine is back: the next deployment works.
    let healthy = json!({ "healthcheck": { "path": "/", "interval_ms": 200, "timeout_ms": 1000, "retries": 50 } });
    let (status, body) = p.api("PATCH", &format!("/api/apps/{app}"), Some(healthy));
    assert_eq!(status, 200, "{body}");
    repo.commit(&[("www/index.html", "v4\n")], "v4");
    deploy_and_wait(&p, &app);
    assert_eq!(p.through_proxy(&host, "/"), (200, "v4\n".to_owned()));
    let counts = load.finish();
    integrity_check(&p.dir.path().join("data/rivetr.db"));
    report(
        "container engine killed during a build, then during a health check",
        &counts,
        recoveries.into_iter().max().unwrap(),
    );
}
