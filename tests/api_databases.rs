//! Managed databases through the API and the CLI, on rootful Podman with the test images
//! `scripts/test-env/db-images.sh` builds (the configuration points the image templates at
//! them, as an administrator would at a mirror). The real binary, the real engine.

use crate::common;

use std::process::Command;
use std::time::Duration;

use common::platform::{Platform, podman_socket};
use common::{BIN, wait_for};
use serde_json::{Value, json};

fn start(case: &str) -> Option<Platform> {
    let socket = podman_socket(case)?;
    Some(Platform::start(
        &socket,
        &[
            (
                "RIVETR_DATABASES_POSTGRES_IMAGE",
                "localhost/rivetr-test-postgres:{version}",
            ),
            (
                "RIVETR_DATABASES_REDIS_IMAGE",
                "localhost/rivetr-test-redis:{version}",
            ),
        ],
    ))
}

/// `podman` on the test engine.
fn podman(p: &Platform, args: &[&str]) -> String {
    let out = Command::new("podman")
        .arg("--url")
        .arg(&p.socket)
        .args(args)
        .output()
        .expect("podman");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The database password Rivetr gave the container, read back from the engine.
fn container_password(p: &Platform, container: &str) -> String {
    let env = podman(
        p,
        &["inspect", "--format", "{{json .Config.Env}}", container],
    );
    let env: Vec<String> = serde_json::from_str(env.trim()).expect("the container's env");
    env.iter()
        .find_map(|e| e.strip_prefix("POSTGRES_PASSWORD="))
        .expect("POSTGRES_PASSWORD is set")
        .to_owned()
}

fn cli(p: &Platform, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN)
        .args(args)
        .env("RIVETR_URL", format!("http://{}", p.rivetr.api()))
        .env("RIVETR_TOKEN", &p.token)
        .env("HOME", p.dir.path())
        .output()
        .expect("the rivetr binary");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_database_is_created_kept_across_restarts_and_deleted_without_showing_its_password() {
    let Some(mut p) = start("databases through the API") else {
        return;
    };
    let mut answers: Vec<String> = Vec::new();

    // Bad requests change nothing and say what is wrong.
    let (status, body) = p.api(
        "POST",
        "/api/databases",
        Some(json!({"name": "main", "engine": "oracle"})),
    );
    assert_eq!(status, 422, "{body}");
    assert!(body.to_string().contains("engine"), "{body}");
    let (status, body) = p.api(
        "POST",
        "/api/databases",
        Some(json!({"name": "Not_A_Label", "engine": "postgres"})),
    );
    assert_eq!(status, 422, "{body}");
    let (status, body) = p.api(
        "POST",
        "/api/databases",
        Some(json!({"name": "main", "engine": "postgres", "colour": "blue"})),
    );
    assert!(status == 400 || status == 422, "{status} {body}");
    assert!(body.to_string().contains("colour"), "{body}");

    // Create: the answer comes once it accepts connections.
    let (status, created) = p.api(
        "POST",
        "/api/databases",
        Some(json!({"name": "main", "engine": "postgres", "version": "15", "memory": "512M"})),
    );
    assert_eq!(status, 201, "{created}");
    answers.push(created.to_string());
    assert_eq!(created["status"], "running", "{created}");
    assert_eq!(created["engine"], "postgres");
    assert_eq!(created["image"], "localhost/rivetr-test-postgres:15");
    assert_eq!(created["memory_bytes"], 512u64 << 20);
    let container = created["container"].as_str().unwrap().to_owned();
    let volume = created["volume"].as_str().unwrap().to_owned();

    let password = container_password(&p, &container);
    assert!(
        password.len() >= 32,
        "a generated password of 32+ characters"
    );
    // Never published: no host port.
    let ports = podman(&p, &["port", &container]);
    assert!(ports.trim().is_empty(), "published: {ports}");

    // The same name again is a conflict.
    let (status, body) = p.api(
        "POST",
        "/api/databases",
        Some(json!({"name": "main", "engine": "redis"})),
    );
    assert_eq!(status, 409, "{body}");

    // A database whose image is missing fails clearly and leaves nothing behind.
    let (status, body) = p.api(
        "POST",
        "/api/databases",
        Some(json!({"name": "broken", "engine": "redis", "version": "no-such-tag"})),
    );
    assert_eq!(status, 502, "{body}");
    assert!(
        body.to_string().contains("rivetr-test-redis:no-such-tag"),
        "{body}"
    );
    let (status, _) = p.api("GET", "/api/databases/broken", None);
    assert_eq!(status, 404);
    let leftovers = podman(
        &p,
        &[
            "ps",
            "-a",
            "--filter",
            "label=io.rivetr.database=broken",
            "--format",
            "{{.Names}}",
        ],
    );
    assert!(leftovers.trim().is_empty(), "{leftovers}");
    let leftovers = podman(
        &p,
        &[
            "volume",
            "ls",
            "--filter",
            "label=io.rivetr.database=broken",
            "--format",
            "{{.Name}}",
        ],
    );
    assert!(leftovers.trim().is_empty(), "{leftovers}");

    // Listed and shown, by the API and the CLI.
    let (status, list) = p.api("GET", "/api/databases", None);
    assert_eq!(status, 200);
    answers.push(list.to_string());
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    let (code, out, err) = cli(&p, &["db", "list"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("main") && out.contains("postgres 15"), "{out}");
    let (code, out, err) = cli(&p, &["db", "show", "main"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("running") && out.contains(&volume), "{out}");
    answers.push(out);

    // Stopped by request, it stays stopped across a Rivetr restart.
    let (status, stopped) = p.api("POST", "/api/databases/main/stop", None);
    assert_eq!(status, 200, "{stopped}");
    assert_eq!(stopped["status"], "stopped", "{stopped}");
    p.kill9();
    p.restart();
    std::thread::sleep(Duration::from_secs(2));
    let (_, shown) = p.api("GET", "/api/databases/main", None);
    assert_eq!(shown["status"], "stopped", "{shown}");
    let (code, out, err) = cli(&p, &["db", "start", "main"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("running"), "{out}");

    // A database whose container went away (an engine restarted without it) comes back
    // when Rivetr starts, on its kept volume, with the same password.
    p.kill9();
    podman(&p, &["rm", "-f", "-t", "5", &container]);
    p.restart();
    wait_for("the database back up", Duration::from_secs(120), || {
        let (_, shown) = p.api("GET", "/api/databases/main", None);
        (shown["status"] == "running").then_some(())
    });
    assert_eq!(container_password(&p, &container), password);

    // Deleted: the volume is kept and the answer says where.
    let (status, deleted) = p.api("DELETE", "/api/databases/main", None);
    assert_eq!(status, 200, "{deleted}");
    answers.push(deleted.to_string());
    assert_eq!(deleted["kept_volume"]["name"], volume.as_str(), "{deleted}");
    assert!(
        deleted["message"].as_str().unwrap().contains(&volume),
        "{deleted}"
    );
    let volumes = podman(&p, &["volume", "ls", "--format", "{{.Name}}"]);
    assert!(volumes.lines().any(|v| v == volume), "{volumes}");
    podman(&p, &["volume", "rm", "-f", &volume]);
    let (status, _) = p.api("GET", "/api/databases/main", None);
    assert_eq!(status, 404);

    // A Redis database deleted with ?volumes=true leaves nothing.
    let (status, redis) = p.api(
        "POST",
        "/api/databases",
        Some(json!({"name": "cache", "engine": "redis", "version": "7"})),
    );
    assert_eq!(status, 201, "{redis}");
    assert_eq!(redis["username"], Value::Null, "Redis has no user");
    let redis_volume = redis["volume"].as_str().unwrap().to_owned();
    let (code, out, err) = cli(&p, &["db", "delete", "cache", "--volumes", "--yes"]);
    assert_eq!(code, 0, "{out}{err}");
    let volumes = podman(&p, &["volume", "ls", "--format", "{{.Name}}"]);
    assert!(!volumes.lines().any(|v| v == redis_volume), "{volumes}");

    // The password was never shown: not in an answer, the CLI, the log or the database file.
    let log = std::fs::read_to_string(&p.rivetr.log_path).unwrap();
    let db_file = std::fs::read(p.dir.path().join("data/rivetr.db")).unwrap();
    for text in answers.iter().chain(std::iter::once(&log)) {
        assert!(!text.contains(&password), "the password was shown: {text}");
    }
    assert!(
        !db_file
            .windows(password.len())
            .any(|w| w == password.as_bytes()),
        "the password is stored in clear"
    );
}

/// The linked app: the PostgreSQL test image (for psql) with busybox's httpd, writing and
/// reading a row through DATABASE_URL at start and serving what it saw.
const LINKED_DOCKERFILE: &str = "FROM localhost/busybox:test AS bb\nFROM localhost/rivetr-test-postgres:15\nCOPY --from=bb /bin/busybox /bin/busybox\nCOPY start.sh /start.sh\nENTRYPOINT []\nCMD [\"/bin/sh\", \"/start.sh\"]\n";
const LINKED_START: &str = "mkdir -p /www\necho ok > /www/index.html\necho \"$PGHOST\" > /www/pghost\npsql \"$DATABASE_URL\" -tAc \"CREATE TABLE IF NOT EXISTS hits (v text); INSERT INTO hits VALUES ('from-app'); SELECT count(*) FROM hits\" > /www/result 2>&1\nexec /bin/busybox httpd -f -p 8080 -h /www\n";

#[test]
fn a_linked_app_reaches_its_database_through_the_injected_url_and_others_need_the_password() {
    let Some(p) = start("a linked app") else {
        return;
    };
    let (status, created) = p.api(
        "POST",
        "/api/databases",
        Some(json!({"name": "main", "engine": "postgres", "version": "15"})),
    );
    assert_eq!(status, 201, "{created}");
    let container = created["container"].as_str().unwrap().to_owned();
    let password = container_password(&p, &container);

    let repo = common::platform::GitRepo::new("v1\n");
    repo.commit(
        &[
            ("Dockerfile", LINKED_DOCKERFILE),
            ("start.sh", LINKED_START),
        ],
        "an app that uses its database",
    );
    let app = common::platform::unique_name("linked");
    p.create_app(&app, repo.path(), json!({}));

    // Linking checks its input.
    let (status, body) = p.api(
        "POST",
        &format!("/api/apps/{app}/links"),
        Some(json!({"database": "nope"})),
    );
    assert_eq!(status, 404, "{body}");
    let (status, body) = p.api(
        "POST",
        &format!("/api/apps/{app}/links"),
        Some(json!({"database": "main", "env": "not a name"})),
    );
    assert_eq!(status, 422, "{body}");
    let (code, out, err) = cli(&p, &["db", "link", "main", "--app", &app]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("DATABASE_URL"), "{out}");
    let (status, body) = p.api(
        "POST",
        &format!("/api/apps/{app}/links"),
        Some(json!({"database": "main"})),
    );
    assert_eq!(status, 409, "linked twice: {body}");
    let (_, links) = p.api("GET", &format!("/api/apps/{app}/links"), None);
    assert_eq!(links[0]["host"], "main", "{links}");

    // Deployed, the app wrote and read a row through the URL it was given.
    let id = p.deploy(&app, None);
    let done = p.wait_done(id);
    assert_eq!(done["status"], "running", "{done}\n{}", p.logs(id));
    let host = format!("{app}.test");
    let (status, result) = p.through_proxy(&host, "/result");
    assert_eq!(status, 200, "{result}");
    assert_eq!(
        result.trim().lines().last(),
        Some("1"),
        "psql said: {result}"
    );
    let (_, pghost) = p.through_proxy(&host, "/pghost");
    assert_eq!(pghost.trim(), "main");
    let log = p.logs(id);
    assert!(
        !log.contains(&password),
        "the password is in the deploy log"
    );

    // The row is in the database itself.
    let rows = podman(
        &p,
        &[
            "exec",
            "-e",
            &format!("PGPASSWORD={password}"),
            &container,
            "psql",
            "-h",
            "127.0.0.1",
            "-U",
            "main",
            "-d",
            "main",
            "-tAc",
            "SELECT v FROM hits",
        ],
    );
    assert_eq!(rows.trim(), "from-app");

    // A linked database cannot be deleted.
    let (status, body) = p.api("DELETE", "/api/databases/main", None);
    assert_eq!(status, 409, "{body}");
    assert!(body.to_string().contains(&app), "{body}");

    // Another container, on the engine's default network, gets nowhere without the
    // credentials: refused at the network (Docker, rootless Podman) or by the server (rootful
    // Podman with CNI does not isolate its networks from each other).
    let address = links[0]["address"].as_str().unwrap().to_owned();
    let probe = Command::new("podman")
        .args(["--url", &p.socket, "run", "--rm", "--entrypoint", "psql"])
        .arg("localhost/rivetr-test-postgres:15")
        .arg(format!(
            "postgres://main:wrong-password@{address}:5432/main?connect_timeout=5"
        ))
        .args(["-tAc", "SELECT 1"])
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&probe.stdout),
        String::from_utf8_lossy(&probe.stderr)
    );
    assert!(!probe.status.success(), "an outsider got in: {said}");
    assert!(
        said.contains("password authentication failed") || said.contains("timeout"),
        "{said}"
    );

    // Unlinked, the running app loses its way to the database at once.
    let (code, out, err) = cli(&p, &["db", "unlink", "main", "--app", &app]);
    assert_eq!(code, 0, "{out}{err}");
    let app_container = p
        .containers(&app)
        .into_iter()
        .find(|(_, state)| state == "running")
        .expect("the app's container")
        .0;
    let probe = Command::new("podman")
        .args(["--url", &p.socket, "exec", &app_container])
        .args([
            "sh",
            "-c",
            "timeout 5 psql \"$DATABASE_URL\" -tAc 'SELECT 1' && echo reached || echo refused",
        ])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&probe.stdout);
    assert!(
        said.contains("refused"),
        "still reached after unlink: {said}"
    );

    // Deleting the app removes its network; the database can go now.
    let (status, body) = p.api("DELETE", &format!("/api/apps/{app}"), None);
    assert_eq!(status, 204, "{body}");
    let networks = podman(&p, &["network", "ls", "--format", "{{.Name}}"]);
    assert!(
        !networks
            .lines()
            .any(|n| n.ends_with(&format!("-app-{app}"))),
        "{networks}"
    );
    let (status, body) = p.api("DELETE", "/api/databases/main?volumes=true", None);
    assert_eq!(status, 200, "{body}");
}

fn psql(p: &Platform, db: &Value, sql: &str) -> String {
    p.psql(db, sql)
}

#[test]
fn a_database_changes_limits_and_minor_version_keeping_its_data_and_shows_its_logs() {
    let Some(p) = start("database updates") else {
        return;
    };
    let (status, main) = p.api(
        "POST",
        "/api/databases",
        Some(json!({"name": "main", "engine": "postgres", "version": "15", "memory": "256M"})),
    );
    assert_eq!(status, 201, "{main}");
    psql(
        &p,
        &main,
        "CREATE TABLE kept (v text); INSERT INTO kept VALUES ('still here')",
    );
    let container = main["container"].as_str().unwrap().to_owned();
    let inspect = |format: &str| podman(&p, &["inspect", "--format", format, &container]);

    // Refused, changing nothing: another major version, an unknown field, a tiny limit.
    let (status, body) = p.api(
        "PATCH",
        "/api/databases/main",
        Some(json!({"version": "16"})),
    );
    assert_eq!(status, 422, "{body}");
    assert!(body.to_string().contains("major"), "{body}");
    let (status, body) = p.api(
        "PATCH",
        "/api/databases/main",
        Some(json!({"colour": "blue"})),
    );
    assert!(status == 400 || status == 422, "{status} {body}");
    assert!(body.to_string().contains("colour"), "{body}");
    let (status, body) = p.api(
        "PATCH",
        "/api/databases/main",
        Some(json!({"memory": "32M"})),
    );
    assert_eq!(status, 422, "{body}");
    let (status, body) = p.api("PATCH", "/api/databases/nope", Some(json!({"cpus": 1})));
    assert_eq!(status, 404, "{body}");

    // A version whose image cannot run: 502 with the reason, and the previous container
    // is back, serving the same data.
    let (status, body) = p.api(
        "PATCH",
        "/api/databases/main",
        Some(json!({"version": "15.404"})),
    );
    assert_eq!(status, 502, "{body}");
    let (_, now) = p.api("GET", "/api/databases/main", None);
    assert_eq!(now["status"], "running", "{now}");
    assert_eq!(now["version"], "15", "{now}");
    assert_eq!(
        inspect("{{.ImageName}}").trim(),
        "localhost/rivetr-test-postgres:15"
    );
    assert_eq!(psql(&p, &main, "SELECT v FROM kept"), "still here");

    // Within the major version, with new limits: the same volume, the new image and limits.
    podman(
        &p,
        &[
            "tag",
            "localhost/rivetr-test-postgres:15",
            "localhost/rivetr-test-postgres:15.1",
        ],
    );
    let (status, updated) = p.api(
        "PATCH",
        "/api/databases/main",
        Some(json!({"version": "15.1", "memory": "512M", "cpus": 1.5})),
    );
    assert_eq!(status, 200, "{updated}");
    assert_eq!(updated["status"], "running", "{updated}");
    assert_eq!(updated["version"], "15.1");
    assert_eq!(updated["image"], "localhost/rivetr-test-postgres:15.1");
    assert_eq!(updated["memory_bytes"], 512u64 << 20);
    assert_eq!(updated["cpus"], 1.5);
    assert_eq!(
        inspect("{{.ImageName}}").trim(),
        "localhost/rivetr-test-postgres:15.1"
    );
    assert_eq!(
        inspect("{{.HostConfig.Memory}}").trim(),
        (512u64 << 20).to_string()
    );
    assert_eq!(psql(&p, &main, "SELECT v FROM kept"), "still here");

    // `null` (the CLI's `none`) removes a limit.
    let (code, out, err) = cli(&p, &["db", "update", "main", "--memory", "none"]);
    assert_eq!(code, 0, "{out}{err}");
    let (_, now) = p.api("GET", "/api/databases/main", None);
    assert!(now["memory_bytes"].is_null(), "{now}");
    assert_eq!(now["cpus"], 1.5, "{now}");
    assert_eq!(inspect("{{.HostConfig.Memory}}").trim(), "0");
    let (code, out, err) = cli(&p, &["db", "update", "main"]);
    assert_ne!(code, 0, "{out}{err}");
    assert!(err.contains("nothing to change"), "{err}");

    // A stopped database is changed without being started.
    let (status, _) = p.api("POST", "/api/databases/main/stop", None);
    assert_eq!(status, 200);
    let (status, stopped) = p.api("PATCH", "/api/databases/main", Some(json!({"cpus": null})));
    assert_eq!(status, 200, "{stopped}");
    assert_ne!(stopped["status"], "running", "{stopped}");
    let (status, started) = p.api("POST", "/api/databases/main/start", None);
    assert_eq!(status, 200, "{started}");
    assert!(started["cpus"].is_null(), "{started}");
    assert_eq!(psql(&p, &main, "SELECT v FROM kept"), "still here");

    // Its logs: the server's own lines, through the CLI and as Server-Sent Events.
    let (code, out, err) = cli(&p, &["db", "logs", "main", "-n", "50"]);
    assert_eq!(code, 0, "{out}{err}");
    let both = format!("{out}{err}");
    assert!(
        both.contains("database system is ready to accept connections"),
        "{both}"
    );
    let (status, body) = p.api("GET", "/api/databases/nope/logs", None);
    assert_eq!(status, 404, "{body}");
    let (status, body) = p.api("GET", "/api/databases/main/logs?tail=20000", None);
    assert_eq!(status, 422, "{body}");
    let (status, body) = p.api("DELETE", "/api/databases/main?volumes=true", None);
    assert_eq!(status, 200, "{body}");
    podman(&p, &["rmi", "localhost/rivetr-test-postgres:15.1"]);
}

/// The engine's own command line on the platform's socket: `podman --url` or `docker -H`.
fn engine_cli(p: &Platform, docker: bool, args: &[&str]) -> std::process::Output {
    let (program, flag) = if docker {
        ("docker", "-H")
    } else {
        ("podman", "--url")
    };
    Command::new(program)
        .args([flag, p.socket.as_str()])
        .args(args)
        .output()
        .expect("the engine's command line")
}

/// `psql` on the host's network (a throwaway container of the test image with host
/// networking), connecting to `127.0.0.1:port` as the database's user with `password`.
fn psql_from_host(
    p: &Platform,
    docker: bool,
    db: &Value,
    port: u16,
    password: &str,
) -> (bool, String) {
    let url = format!(
        "postgresql://{user}:{password}@127.0.0.1:{port}/{name}",
        user = db["username"].as_str().unwrap(),
        name = db["database"].as_str().unwrap(),
    );
    let out = engine_cli(
        p,
        docker,
        &[
            "run",
            "--rm",
            "--network",
            "host",
            "-e",
            &format!("URL={url}"),
            "localhost/rivetr-test-postgres:15",
            "sh",
            "-c",
            "psql \"$URL\" -tAc 'SELECT 40 + 2'",
        ],
    );
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn a_public_port_reaches_the_database_with_its_password_until_closed_and_after_a_restart() {
    let Some(p) = start("database public port") else {
        return;
    };
    public_port_case(p, false);
}

#[test]
fn a_public_port_on_docker_reaches_the_database_too() {
    let Some(socket) = common::platform::docker_socket("database public port on Docker") else {
        return;
    };
    let p = Platform::start(
        &socket,
        &[
            ("RIVETR_RUNTIME_ENGINE", "docker"),
            (
                "RIVETR_DATABASES_POSTGRES_IMAGE",
                "localhost/rivetr-test-postgres:{version}",
            ),
        ],
    );
    public_port_case(p, true);
}

/// Off by default; refused on a privileged or taken port; opened without a restart and
/// reached from the host with the password only; back after `kill -9` and a restart; closed,
/// with the database off the network the port reached it on.
fn public_port_case(mut p: Platform, docker: bool) {
    let (status, main) = p.api(
        "POST",
        "/api/databases",
        Some(json!({"name": "main", "engine": "postgres", "version": "15"})),
    );
    assert_eq!(status, 201, "{main}");
    assert!(main["public_port"].is_null(), "off by default: {main}");
    let container = main["container"].as_str().unwrap().to_owned();
    let env = engine_cli(
        &p,
        docker,
        &["inspect", "--format", "{{json .Config.Env}}", &container],
    );
    let env: Vec<String> = serde_json::from_slice(&env.stdout).expect("the container's env");
    let password = env
        .iter()
        .find_map(|e| e.strip_prefix("POSTGRES_PASSWORD="))
        .expect("POSTGRES_PASSWORD is set")
        .to_owned();
    let port = common::free_port();

    let (status, body) = p.api(
        "PATCH",
        "/api/databases/main",
        Some(json!({"public_port": 80})),
    );
    assert_eq!(status, 422, "{body}");
    let held = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    let (status, body) = p.api(
        "PATCH",
        "/api/databases/main",
        Some(json!({"public_port": port})),
    );
    assert_eq!(status, 409, "{body}");
    assert!(body.to_string().contains(&port.to_string()), "{body}");
    drop(held);

    let (code, out, err) = cli(
        &p,
        &["db", "update", "main", "--public-port", &port.to_string()],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains(&format!("public on 127.0.0.1:{port}")),
        "{out}"
    );
    let (ok, out) = psql_from_host(&p, docker, &main, port, &password);
    assert!(ok && out.trim() == "42", "{out}");
    let (ok, out) = psql_from_host(&p, docker, &main, port, "wrong-password");
    assert!(!ok, "a wrong password got in: {out}");
    let (_, view) = p.api("GET", "/api/databases/main", None);
    assert_eq!(
        view["public_address"],
        format!("127.0.0.1:{port}"),
        "{view}"
    );

    p.kill9();
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
    p.restart();
    // Open before READY; /api/health may answer a moment earlier.
    common::wait_for("the port after a restart", Duration::from_secs(20), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).ok()
    });
    let (ok, out) = psql_from_host(&p, docker, &main, port, &password);
    assert!(ok && out.trim() == "42", "after a restart: {out}");

    let (status, closed) = p.api(
        "PATCH",
        "/api/databases/main",
        Some(json!({"public_port": null})),
    );
    assert_eq!(status, 200, "{closed}");
    assert!(closed["public_port"].is_null() && closed["public_address"].is_null());
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
    let networks = engine_cli(
        &p,
        docker,
        &[
            "inspect",
            "--format",
            "{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{end}}",
            &container,
        ],
    );
    let networks = String::from_utf8_lossy(&networks.stdout);
    assert!(!networks.contains("-public"), "{networks}");
}

#[test]
fn a_public_port_is_refused_on_rootless_podman_saying_why() {
    let Some(socket) = common::platform::rootless_podman_socket("public port, rootless") else {
        return;
    };
    let p = Platform::start(
        &socket,
        &[(
            "RIVETR_DATABASES_POSTGRES_IMAGE",
            "localhost/rivetr-test-postgres:{version}",
        )],
    );
    let (status, main) = p.api(
        "POST",
        "/api/databases",
        Some(json!({"name": "main", "engine": "postgres", "version": "15"})),
    );
    assert_eq!(status, 201, "{main}");
    let (status, body) = p.api(
        "PATCH",
        "/api/databases/main",
        Some(json!({"public_port": common::free_port()})),
    );
    assert_eq!(status, 422, "{body}");
    assert!(body.to_string().contains("rootless"), "{body}");
}
