//! The daemon as a systemd service and as a plain process: configuration, socket activation,
//! sd_notify, reload, shutdown and database migrations. Every test starts the real binary.

use crate::common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::*;

fn journal_mode(db: &std::path::Path) -> String {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.pragma_query_value(None, "journal_mode", |r| r.get(0))
        .unwrap()
}

fn user_version(db: &std::path::Path) -> i64 {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap()
}

fn migration_count() -> i64 {
    std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "sql")
        })
        .count() as i64
}

#[test]
fn serve_with_no_config_file_uses_the_embedded_defaults() {
    let dir = TestDir::new();
    // The documented defaults: API on 127.0.0.1:8080, proxy on 127.0.0.1:8000, ./data.
    let mut launch = Launch::serve();
    launch.env.clear();
    let mut rivetr = launch.start(&dir);
    let api: SocketAddr = "127.0.0.1:8080".parse().unwrap();
    let body = rivetr.wait_healthy_at(api);
    let health: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(health["status"], "ok");
    assert_eq!(health["db"], "ok");
    assert_eq!(health["version"], env!("CARGO_PKG_VERSION"));
    assert!(health["uptime_s"].is_u64());

    let (status, body) =
        http_get("127.0.0.1:8000".parse().unwrap(), "/", "nothing.example").unwrap();
    assert_eq!(status, 404);
    assert!(body.contains("nothing.example"), "{body}");

    let db = dir.path().join("data/rivetr.db");
    assert!(db.exists(), "no data/rivetr.db");
    assert_eq!(journal_mode(&db), "wal");
}

#[test]
fn socket_activation_serves_on_the_passed_sockets_and_binds_nothing() {
    let dir = TestDir::new();
    let (p1, p2) = (free_port(), free_port());
    let launch = Launch::serve();
    let configured_api = launch
        .get_env("RIVETR_SERVER_API_LISTEN")
        .unwrap()
        .to_owned();
    let configured_http = launch
        .get_env("RIVETR_PROXY_HTTP_LISTEN")
        .unwrap()
        .to_owned();
    let mut launch = Launch {
        wrapper: vec![
            "systemd-socket-activate".into(),
            format!("--listen=127.0.0.1:{p1}"),
            format!("--listen=127.0.0.1:{p2}"),
            "--fdname=api:http".into(),
            format!("--setenv=RIVETR_SERVER_API_LISTEN={configured_api}"),
            format!("--setenv=RIVETR_PROXY_HTTP_LISTEN={configured_http}"),
            "--setenv=RIVETR_LOG_LEVEL=debug".into(),
        ],
        ..launch
    };
    launch.env.clear();
    let mut rivetr = launch.start(&dir);
    // systemd-socket-activate starts Rivetr on the first connection; that connection waits in
    // the socket's backlog and is answered.
    rivetr.wait_healthy_at(format!("127.0.0.1:{p1}").parse().unwrap());
    let (status, body) =
        http_get(format!("127.0.0.1:{p2}").parse().unwrap(), "/", "x.example").unwrap();
    assert_eq!(status, 404);
    assert!(body.contains("no app for host x.example"), "{body}");

    let configured_api: SocketAddr = configured_api.parse().unwrap();
    let configured_http: SocketAddr = configured_http.parse().unwrap();
    assert!(
        port_is_free(configured_api.port()),
        "configured API port was bound"
    );
    assert!(
        port_is_free(configured_http.port()),
        "configured HTTP port was bound"
    );
    assert!(rivetr.log().contains("using the socket passed by systemd"));
}

#[test]
fn socket_activation_with_an_unknown_name_is_a_clear_startup_error() {
    let dir = TestDir::new();
    let p1 = free_port();
    let mut launch = Launch {
        wrapper: vec![
            "systemd-socket-activate".into(),
            format!("--listen=127.0.0.1:{p1}"),
            "--fdname=admin".into(),
        ],
        ..Launch::serve()
    };
    launch.env.clear();
    let mut rivetr = launch.start(&dir);
    // The first connection makes systemd-socket-activate start Rivetr.
    let _conn = wait_for(
        "systemd-socket-activate to listen",
        Duration::from_secs(10),
        || std::net::TcpStream::connect(("127.0.0.1", p1)).ok(),
    );
    let status = rivetr.wait_exit(Duration::from_secs(20));
    assert_eq!(status.code(), Some(2), "{}", rivetr.log());
    let log = rivetr.log();
    assert!(log.contains("named `admin`"), "{log}");
    assert!(log.contains("api, http, https"), "{log}");
    assert!(!dir.path().join("data").exists(), "state was created");
}

#[test]
fn notify_ready_then_watchdog_at_half_period_then_stopping_on_sigterm() {
    let dir = TestDir::new();
    let notify = NotifySocket::bind(&dir);
    // A slow app behind the proxy, to have a request in flight at SIGTERM.
    let slow = common::backend::Backend::start("slow");
    let config = dir.write(
        "rivetr.toml",
        &format!(
            "[[proxy.routes]]\nhost = \"slow.test\"\nupstreams = [\"{}\"]\ntls = \"none\"\n",
            slow.addr
        ),
    );
    let mut rivetr = Launch::serve()
        .arg("--config")
        .arg(config.to_str().unwrap())
        .env("NOTIFY_SOCKET", notify.path.to_str().unwrap())
        .env("WATCHDOG_USEC", "1000000")
        .start(&dir);

    let (ready, _) = notify.recv_until("READY=1", Duration::from_secs(30));
    assert!(ready.contains("STATUS=serving 0 apps"), "{ready}");
    // READY means ready: the API answers right away.
    let (status, _) = http_get(rivetr.api(), "/api/health", "localhost").unwrap();
    assert_eq!(status, 200);

    let mut beats = Vec::new();
    while beats.len() < 5 {
        let (_, others) = notify.recv_until("WATCHDOG=1", Duration::from_secs(5));
        assert!(others.is_empty(), "unexpected notifications {others:?}");
        beats.push(Instant::now());
    }
    for pair in beats.windows(2).skip(1) {
        let gap = pair[1] - pair[0];
        assert!(
            gap > Duration::from_millis(300) && gap < Duration::from_millis(800),
            "watchdog interval {gap:?} is not about half of 1s"
        );
    }

    let proxy = rivetr.http();
    let in_flight = std::thread::spawn(move || {
        let started = Instant::now();
        let answer = http_get(proxy, "/stall?ms=2000", "slow.test");
        (answer, started.elapsed())
    });
    std::thread::sleep(Duration::from_millis(500));
    rivetr.signal(libc::SIGTERM);
    let (stopping, _) = notify.recv_until("STOPPING=1", Duration::from_secs(10));
    assert!(stopping.contains("STOPPING=1"));
    // No new connections once stopping.
    wait_for(
        "the proxy to stop accepting",
        Duration::from_secs(2),
        || std::net::TcpStream::connect(proxy).is_err().then_some(()),
    );
    let (answer, took) = in_flight.join().unwrap();
    assert_eq!(
        answer.unwrap(),
        (200, "done".to_owned()),
        "the request in flight was cut"
    );
    assert!(took >= Duration::from_millis(1900), "{took:?}");
    let status = rivetr.wait_exit(Duration::from_secs(30));
    assert_eq!(status.code(), Some(0), "{}", rivetr.log());
}

#[test]
fn sighup_reloads_the_log_level_and_keeps_the_old_config_when_the_new_one_is_bad() {
    let dir = TestDir::new();
    let notify = NotifySocket::bind(&dir);
    let config = dir.write("rivetr.toml", "[log]\nlevel = \"info\"\n");
    let rivetr = Launch::serve()
        .arg("--config")
        .arg(config.to_str().unwrap())
        .env("NOTIFY_SOCKET", notify.path.to_str().unwrap())
        .start(&dir);
    notify.recv_until("READY=1", Duration::from_secs(30));
    http_get(rivetr.api(), "/api/health", "localhost").unwrap();
    assert!(
        !rivetr.log().contains("api request"),
        "debug line at info level"
    );

    dir.write("rivetr.toml", "[log]\nlevel = \"debug\"\n");
    rivetr.signal(libc::SIGHUP);
    let (reloading, _) = notify.recv_until("RELOADING=1", Duration::from_secs(10));
    assert!(reloading.contains("MONOTONIC_USEC="), "{reloading}");
    notify.recv_until("READY=1", Duration::from_secs(10));
    http_get(rivetr.api(), "/api/health", "localhost").unwrap();
    rivetr.wait_log("api request", Duration::from_secs(5));

    dir.write(
        "rivetr.toml",
        "[log]\nlevel = \"debug\"\nlevle = \"info\"\n",
    );
    rivetr.signal(libc::SIGHUP);
    notify.recv_until("RELOADING=1", Duration::from_secs(10));
    notify.recv_until("READY=1", Duration::from_secs(10));
    rivetr.wait_log("reload refused", Duration::from_secs(5));
    let log = rivetr.log();
    assert!(log.contains("rivetr.toml:3"), "{log}");
    assert!(log.contains("log.levle"), "{log}");
    // Still serving, still at debug.
    let before = log.matches("api request").count();
    let (status, _) = http_get(rivetr.api(), "/api/health", "localhost").unwrap();
    assert_eq!(status, 200);
    wait_for(
        "a debug line for the new request",
        Duration::from_secs(5),
        || (rivetr.log().matches("api request").count() > before).then_some(()),
    );
}

#[test]
fn unknown_config_key_is_refused_with_its_line_and_nothing_is_created() {
    let dir = TestDir::new();
    let config = dir.write(
        "bad.toml",
        "# comment\n[server]\nshutdown_grace_seconds = 5\napi_lisen = \"127.0.0.1:1\"\n",
    );
    let mut rivetr = Launch::serve()
        .arg("--config")
        .arg(config.to_str().unwrap())
        .start(&dir);
    let status = rivetr.wait_exit(Duration::from_secs(10));
    assert_eq!(status.code(), Some(2));
    let log = rivetr.log();
    assert!(log.contains("bad.toml:4"), "{log}");
    assert!(log.contains("server.api_lisen"), "{log}");
    assert!(!dir.path().join("data").exists(), "state was created");
}

#[test]
fn wrong_type_names_the_key_and_the_expected_type() {
    let dir = TestDir::new();
    let config = dir.write("bad.toml", "[server]\nshutdown_grace_seconds = \"soon\"\n");
    let mut rivetr = Launch::serve()
        .arg("--config")
        .arg(config.to_str().unwrap())
        .start(&dir);
    assert_eq!(rivetr.wait_exit(Duration::from_secs(10)).code(), Some(2));
    let log = rivetr.log();
    assert!(log.contains("bad.toml:2"), "{log}");
    assert!(log.contains("server.shutdown_grace_seconds"), "{log}");
    assert!(log.contains("expected u64"), "{log}");
    assert!(!dir.path().join("data").exists());
}

#[test]
fn migrations_fresh_then_noop_then_refuse_a_newer_database() {
    let dir = TestDir::new();
    let db = dir.path().join("data/rivetr.db");
    let latest = migration_count();

    let mut rivetr = Launch::serve().start(&dir);
    rivetr.wait_healthy();
    drop(rivetr);
    assert_eq!(user_version(&db), latest);

    // A second start changes nothing and makes no backup.
    let mut rivetr = Launch::serve().start(&dir);
    rivetr.wait_healthy();
    drop(rivetr);
    assert_eq!(user_version(&db), latest);
    let backups: Vec<_> = std::fs::read_dir(dir.path().join("data"))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".bak"))
        .collect();
    assert!(backups.is_empty(), "unexpected backups {backups:?}");

    // A database from a newer Rivetr is refused and left alone.
    rusqlite::Connection::open(&db)
        .unwrap()
        .pragma_update(None, "user_version", latest + 7)
        .unwrap();
    let mut rivetr = Launch::serve().start(&dir);
    let status = rivetr.wait_exit(Duration::from_secs(20));
    assert_eq!(status.code(), Some(1));
    let log = rivetr.log();
    assert!(log.contains("newer Rivetr"), "{log}");
    assert!(
        log.contains(&format!("schema version {}", latest + 7)),
        "{log}"
    );
    assert_eq!(user_version(&db), latest + 7);
}

#[test]
fn migrating_an_existing_database_first_writes_a_copy_named_with_its_version() {
    let dir = TestDir::new();
    std::fs::create_dir(dir.path().join("data")).unwrap();
    let db = dir.path().join("data/rivetr.db");
    // A database as the first schema left it, with an app in it.
    {
        let conn = rusqlite::Connection::open(&db).unwrap();
        let first = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/migrations/0001_initial.sql"
        ))
        .unwrap();
        conn.execute_batch(&first).unwrap();
        conn.pragma_update(None, "user_version", 1).unwrap();
        conn.execute(
            "INSERT INTO apps (name, git_url) VALUES ('blog', 'https://example.com/blog.git')",
            [],
        )
        .unwrap();
    }
    let mut rivetr = Launch::serve().start(&dir);
    rivetr.wait_healthy();
    drop(rivetr);

    let backup = dir.path().join("data/rivetr.db.v1.bak");
    assert!(backup.exists(), "no pre-migration copy");
    assert_eq!(user_version(&backup), 1);
    assert_eq!(user_version(&db), migration_count());
    for file in [&backup, &db] {
        let conn = rusqlite::Connection::open(file).unwrap();
        let name: String = conn
            .query_row("SELECT name FROM apps", [], |r| r.get(0))
            .unwrap();
        assert_eq!(name, "blog");
    }
}
