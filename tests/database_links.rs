//! Linked databases end to end through the real daemon, for the engines and database kinds
//! `api_databases.rs` does not cover (it does PostgreSQL on rootful Podman): MariaDB and
//! Redis on rootful Podman, PostgreSQL on rootless Podman and on Docker, with the test images
//! `scripts/test-env/db-images.sh` imports into every engine.
//!
//! Each test creates one database through the API, links one app to it and deploys the app.
//! The app's image is built FROM the database's test image (for its client) with busybox's
//! httpd copied in; at start it writes and reads through the URL Rivetr injected and serves
//! what it saw through Rivetr's proxy. The test then proves the database stays private: the
//! password is in no log, the container publishes no host port, the database's port is
//! refused on every IPv4 address of the host, and a client inside the database's own
//! container is refused without the password or with a wrong one (and let in with the right
//! one, reading the app's write back). Then a schedule keeping 2 runs three times to a
//! directory and three times to moto's S3 server, leaving two backups in each, and the
//! newest in the bucket restores into a new database that holds the app's write.

use crate::common;

use std::net::{IpAddr, SocketAddr, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use common::moto::Moto;
use common::platform::{GitRepo, Platform, unique_name};
use serde_json::{Value, json};

/// The container engine a case runs Rivetr on.
#[derive(Clone, Copy, Debug)]
enum Engine {
    RootfulPodman,
    RootlessPodman,
    Docker,
}

impl Engine {
    fn var(self) -> &'static str {
        match self {
            Engine::RootfulPodman => "RIVETR_TEST_PODMAN_SOCKET",
            Engine::RootlessPodman => "RIVETR_TEST_PODMAN_ROOTLESS_SOCKET",
            Engine::Docker => "RIVETR_TEST_DOCKER_SOCKET",
        }
    }

    /// `runtime.engine` in Rivetr's configuration.
    fn runtime(self) -> &'static str {
        match self {
            Engine::RootfulPodman | Engine::RootlessPodman => "podman",
            Engine::Docker => "docker",
        }
    }

    /// The engine's socket, or `None` after saying loudly why the case is skipped (a failure
    /// under `CI=true`).
    fn socket(self, case: &str) -> Option<String> {
        common::platform::engine_socket(self.var(), case)
    }

    /// The engine's own command line (`podman --remote` or `docker`) on `socket`.
    fn cli(self, socket: &str, args: &[&str]) -> Ran {
        let out = match self {
            Engine::RootfulPodman | Engine::RootlessPodman => Command::new("podman")
                .args(["--remote", "--url", socket])
                .args(args)
                .output(),
            Engine::Docker => Command::new("docker")
                .args(["-H", socket])
                .args(args)
                .output(),
        }
        .expect("the engine's command line");
        Ran {
            ok: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

impl Engine {
    /// `exec` of a command that always says something (a read, a refused login), asked again
    /// (up to 3 times in all) when the engine's command line returns nothing at all:
    /// `podman --remote exec` sometimes loses a short command's whole output
    /// (containers/podman#25855, open; seen here once, a refused login that printed nothing).
    /// The commands are reads or failed logins, so running one again changes nothing.
    fn exec_saying(self, socket: &str, args: &[&str]) -> Ran {
        let mut ran = self.cli(socket, args);
        for _ in 1..3 {
            if !matches!(self, Engine::RootfulPodman | Engine::RootlessPodman)
                || !ran.stdout.is_empty()
                || !ran.stderr.is_empty()
            {
                break;
            }
            eprintln!("{args:?}: the engine's command line returned no output; asking again");
            ran = self.cli(socket, args);
        }
        ran
    }
}

/// What a command said.
struct Ran {
    ok: bool,
    stdout: String,
    stderr: String,
}

impl Ran {
    fn both(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

/// The database kinds of these cases, each with its test image, its client and the app
/// that uses it.
#[derive(Clone, Copy, Debug)]
enum Kind {
    Postgres,
    Mariadb,
    Redis,
}

/// What every app's start script ends with: busybox's httpd serving what it wrote.
const SERVE: &str = "exec /bin/busybox httpd -f -p 8080 -h /www\n";

/// PostgreSQL's app (as in `api_databases.rs`): `psql` on `$DATABASE_URL` creates a table,
/// inserts a row and counts the rows.
const POSTGRES_START: &str = r#"mkdir -p /www
echo ok > /www/index.html
echo "$PGHOST $PGPORT $PGUSER $PGDATABASE" > /www/vars
case "$DATABASE_URL" in *":$PGPASSWORD@"*) echo same ;; *) echo different ;; esac > /www/same-password
psql "$DATABASE_URL" -tAc "CREATE TABLE IF NOT EXISTS hits (v text); INSERT INTO hits VALUES ('from-app'); SELECT count(*) FROM hits" > /www/result 2>&1
"#;

/// MariaDB's app: the `mariadb` client takes no URL, so the script cuts `$DATABASE_URL`
/// (`mariadb://user:password@host:port/database`) into its pieces and connects with them;
/// the separate `MYSQL_*` variables are served for the test to compare.
const MARIADB_START: &str = r#"mkdir -p /www
echo ok > /www/index.html
echo "$MYSQL_HOST $MYSQL_PORT $MYSQL_USER $MYSQL_DATABASE" > /www/vars
case "$DATABASE_URL" in *":$MYSQL_PASSWORD@"*) echo same ;; *) echo different ;; esac > /www/same-password
rest=${DATABASE_URL#mariadb://}
user=${rest%%:*}; rest=${rest#*:}
pass=${rest%%@*}; rest=${rest#*@}
host=${rest%%:*}; rest=${rest#*:}
port=${rest%%/*}; db=${rest#*/}
echo "$host $port $user $db" > /www/url
MYSQL_PWD="$pass" mariadb -h "$host" -P "$port" -u "$user" "$db" -N -e "CREATE TABLE IF NOT EXISTS hits (v varchar(32)); INSERT INTO hits VALUES ('from-app'); SELECT count(*) FROM hits" > /www/result 2>&1
"#;

/// Redis's app: `redis-cli -u "$DATABASE_URL"` sets a key and gets it back.
const REDIS_START: &str = r#"mkdir -p /www
echo ok > /www/index.html
echo "$REDIS_HOST $REDIS_PORT" > /www/vars
case "$DATABASE_URL" in *":$REDIS_PASSWORD@"*) echo same ;; *) echo different ;; esac > /www/same-password
redis-cli --no-auth-warning -u "$DATABASE_URL" SET from-app written > /www/result 2>&1
redis-cli --no-auth-warning -u "$DATABASE_URL" GET from-app >> /www/result 2>&1
"#;

impl Kind {
    /// The database's name, which is also the host name the app reaches it by.
    fn name(self) -> &'static str {
        match self {
            Kind::Postgres => "main",
            Kind::Mariadb => "shop",
            Kind::Redis => "cache",
        }
    }

    /// `engine` in the API.
    fn api_engine(self) -> &'static str {
        match self {
            Kind::Postgres => "postgres",
            Kind::Mariadb => "mariadb",
            Kind::Redis => "redis",
        }
    }

    fn version(self) -> &'static str {
        match self {
            Kind::Postgres => "15",
            Kind::Mariadb => "10.11",
            Kind::Redis => "7",
        }
    }

    /// The setting pointing Rivetr's image template at the test image.
    fn image_setting(self) -> (&'static str, &'static str) {
        match self {
            Kind::Postgres => (
                "RIVETR_DATABASES_POSTGRES_IMAGE",
                "localhost/rivetr-test-postgres:{version}",
            ),
            Kind::Mariadb => (
                "RIVETR_DATABASES_MARIADB_IMAGE",
                "localhost/rivetr-test-mariadb:{version}",
            ),
            Kind::Redis => (
                "RIVETR_DATABASES_REDIS_IMAGE",
                "localhost/rivetr-test-redis:{version}",
            ),
        }
    }

    fn image(self) -> String {
        self.image_setting().1.replace("{version}", self.version())
    }

    fn port(self) -> u16 {
        match self {
            Kind::Postgres => 5432,
            Kind::Mariadb => 3306,
            Kind::Redis => 6379,
        }
    }

    /// The app's Dockerfile: the database's image (for its client) with busybox copied in.
    fn dockerfile(self) -> String {
        format!(
            "FROM localhost/busybox:test AS bb\nFROM {}\nCOPY --from=bb /bin/busybox /bin/busybox\nCOPY start.sh /start.sh\nENTRYPOINT []\nCMD [\"/bin/sh\", \"/start.sh\"]\n",
            self.image()
        )
    }

    fn start_script(self) -> String {
        let writes = match self {
            Kind::Postgres => POSTGRES_START,
            Kind::Mariadb => MARIADB_START,
            Kind::Redis => REDIS_START,
        };
        format!("{writes}{SERVE}")
    }

    /// What the app's `/result` must end with: the row count, or the value read back.
    fn expected_result(self) -> &'static str {
        match self {
            Kind::Postgres | Kind::Mariadb => "1",
            Kind::Redis => "written",
        }
    }

    /// What the app's `/vars` must say: the separate variables' host and port (and user and
    /// database where the engine has them).
    fn expected_vars(self, created: &Value) -> String {
        let name = self.name();
        let port = self.port();
        match self {
            Kind::Redis => format!("{name} {port}"),
            Kind::Postgres | Kind::Mariadb => format!(
                "{name} {port} {} {}",
                created["username"].as_str().expect("a user"),
                created["database"].as_str().expect("a database")
            ),
        }
    }

    /// The password Rivetr gave the database, read back from its container's configuration.
    fn password(self, engine: Engine, socket: &str, container: &str) -> String {
        let inspected = inspect(engine, socket, container);
        let config = &inspected["Config"];
        let found = match self {
            Kind::Postgres | Kind::Mariadb => {
                let var = match self {
                    Kind::Postgres => "POSTGRES_PASSWORD=",
                    _ => "MARIADB_PASSWORD=",
                };
                config["Env"].as_array().and_then(|env| {
                    env.iter()
                        .filter_map(Value::as_str)
                        .find_map(|e| e.strip_prefix(var))
                })
            }
            Kind::Redis => config["Cmd"].as_array().and_then(|cmd| {
                cmd.iter()
                    .skip_while(|a| a.as_str() != Some("--requirepass"))
                    .nth(1)
                    .and_then(Value::as_str)
            }),
        };
        let password = found
            .unwrap_or_else(|| panic!("no password in {container}'s configuration"))
            .to_owned();
        assert!(
            password.len() >= 32,
            "a generated password of 32+ characters"
        );
        password
    }

    /// A client inside the database's container, over TCP to 127.0.0.1, with `password`
    /// (none: no password at all) in its environment: the arguments of `exec`.
    fn client(self, created: &Value, password: Option<&str>, statement: &str) -> Vec<String> {
        let container = created["container"].as_str().unwrap();
        let port = self.port().to_string();
        let (var, cmd): (&str, Vec<&str>) = match self {
            Kind::Postgres => (
                "PGPASSWORD",
                vec![
                    "psql",
                    "-w",
                    "-h",
                    "127.0.0.1",
                    "-p",
                    &port,
                    "-U",
                    created["username"].as_str().unwrap(),
                    "-d",
                    created["database"].as_str().unwrap(),
                    "-tAc",
                    statement,
                ],
            ),
            Kind::Mariadb => (
                "MYSQL_PWD",
                vec![
                    "mariadb",
                    "-h",
                    "127.0.0.1",
                    "-P",
                    &port,
                    "-u",
                    created["username"].as_str().unwrap(),
                    created["database"].as_str().unwrap(),
                    "-N",
                    "-e",
                    statement,
                ],
            ),
            // redis-cli takes the command as separate words.
            Kind::Redis => {
                let mut cmd = vec!["redis-cli", "-h", "127.0.0.1", "-p", &port];
                cmd.extend(statement.split_whitespace());
                ("REDISCLI_AUTH", cmd)
            }
        };
        let mut args = vec!["exec".to_owned()];
        if let Some(pw) = password {
            args.push("-e".to_owned());
            args.push(format!("{var}={pw}"));
        }
        args.push(container.to_owned());
        args.extend(cmd.into_iter().map(str::to_owned));
        args
    }

    /// Reads the app's write back.
    fn read_back(self) -> (&'static str, &'static str) {
        match self {
            Kind::Postgres | Kind::Mariadb => ("SELECT v FROM hits", "from-app"),
            Kind::Redis => ("GET from-app", "written"),
        }
    }

    /// What the server says when it refuses a client without the right password.
    fn refusals(self) -> &'static [&'static str] {
        match self {
            Kind::Postgres => &["password authentication failed", "no password supplied"],
            Kind::Mariadb => &["Access denied"],
            Kind::Redis => &["NOAUTH", "WRONGPASS"],
        }
    }
}

/// The container as the engine shows it (`inspect`, first element).
fn inspect(engine: Engine, socket: &str, container: &str) -> Value {
    let ran = engine.cli(socket, &["inspect", container]);
    assert!(ran.ok, "inspect {container}: {}", ran.both());
    let all: Value = serde_json::from_str(&ran.stdout)
        .unwrap_or_else(|e| panic!("inspect {container}: not JSON ({e}): {}", ran.stdout));
    all[0].clone()
}

/// Host ports a container has published (or asked for), from `HostConfig.PortBindings` and
/// `NetworkSettings.Ports`: an exposed port without a binding maps to null or [].
fn published_ports(inspected: &Value) -> Vec<String> {
    let mut found = Vec::new();
    for (what, ports) in [
        (
            "HostConfig.PortBindings",
            &inspected["HostConfig"]["PortBindings"],
        ),
        (
            "NetworkSettings.Ports",
            &inspected["NetworkSettings"]["Ports"],
        ),
    ] {
        if let Some(ports) = ports.as_object() {
            for (port, bindings) in ports {
                let bound = match bindings {
                    Value::Null => false,
                    Value::Array(list) => !list.is_empty(),
                    _ => true,
                };
                if bound {
                    found.push(format!("{what}: {port} -> {bindings}"));
                }
            }
        }
    }
    found
}

/// Every IPv4 address of the host (`ip -4 addr`): loopback, the network's, the bridges'.
fn host_ipv4_addresses() -> Vec<IpAddr> {
    let out = Command::new("ip")
        .args(["-4", "-o", "addr", "show"])
        .output()
        .expect("ip");
    assert!(out.status.success(), "ip -4 addr failed");
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            words.find(|w| *w == "inet")?;
            words.next()?.split('/').next()?.parse().ok()
        })
        .collect()
}

/// A GET through Rivetr's proxy that must answer 200; its body, trimmed.
fn served(p: &Platform, host: &str, path: &str) -> String {
    let (status, body) = p.through_proxy(host, path);
    assert_eq!(status, 200, "GET {path} on {host}: {body}");
    body.trim().to_owned()
}

/// The whole case on one engine for one kind, timed.
fn a_linked_app_writes_and_reads_and_the_database_stays_private(engine: Engine, kind: Kind) {
    let case = format!("{kind:?} linked to an app on {engine:?}");
    let Some(socket) = engine.socket(&case) else {
        return;
    };
    let Some(moto) = Moto::start(&case) else {
        return;
    };
    let started = Instant::now();
    let p = Platform::start(
        &socket,
        &[
            ("RIVETR_RUNTIME_ENGINE", engine.runtime()),
            kind.image_setting(),
        ],
    );
    let name = kind.name();

    // Created: the answer comes once it accepts connections.
    let (status, created) = p.api(
        "POST",
        "/api/databases",
        Some(json!({"name": name, "engine": kind.api_engine(), "version": kind.version()})),
    );
    assert_eq!(status, 201, "{case}: create: {created}");
    assert_eq!(created["status"], "running", "{created}");
    assert_eq!(created["image"], kind.image().as_str(), "{created}");
    assert_eq!(created["port"], kind.port(), "{created}");
    let container = created["container"].as_str().unwrap().to_owned();
    let password = kind.password(engine, &socket, &container);
    let made = started.elapsed();

    // Linked to an app whose container uses it through the injected variables.
    let repo = GitRepo::new("v1\n");
    repo.commit(
        &[
            ("Dockerfile", &kind.dockerfile()),
            ("start.sh", &kind.start_script()),
        ],
        "an app that uses its database",
    );
    let app = p.create_app(&unique_name("linked"), repo.path(), json!({}));
    let (status, link) = p.api(
        "POST",
        &format!("/api/apps/{app}/links"),
        Some(json!({"database": name})),
    );
    assert_eq!(status, 201, "link: {link}");
    assert_eq!(link["env"], "DATABASE_URL", "{link}");
    assert_eq!(link["host"], name, "{link}");

    // Deployed, the app wrote and read through the URL it was given.
    let id = p.deploy(&app, None);
    let done = p.wait_done(id);
    let deploy_log = p.logs(id);
    assert_eq!(done["status"], "running", "{done}\n{deploy_log}");
    let deployed = started.elapsed();
    let host = format!("{app}.test");
    let result = served(&p, &host, "/result");
    assert_eq!(
        result.lines().last(),
        Some(kind.expected_result()),
        "{case}: the app's client said: {result}"
    );
    assert_eq!(
        served(&p, &host, "/vars"),
        kind.expected_vars(&created),
        "the separate variables"
    );
    assert_eq!(
        served(&p, &host, "/same-password"),
        "same",
        "the separate password variable and the URL's password differ"
    );
    if let Kind::Mariadb = kind {
        assert_eq!(
            served(&p, &host, "/url"),
            kind.expected_vars(&created),
            "the pieces of DATABASE_URL"
        );
    }

    // The password is in no log: not the deployment's, not Rivetr's own.
    assert!(
        !deploy_log.contains(&password),
        "{case}: the password is in the deploy log:\n{deploy_log}"
    );
    let rivetr_log = p.rivetr.log();
    assert!(
        !rivetr_log.contains(&password),
        "{case}: the password is in Rivetr's log:\n{rivetr_log}"
    );

    // The app's write is in the database itself: the right password over TCP reads it.
    let (read, written) = kind.read_back();
    let args = kind.client(&created, Some(&password), read);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let ran = engine.exec_saying(&socket, &args);
    assert!(ran.ok, "{case}: the right password: {}", ran.both());
    assert_eq!(ran.stdout.trim(), written, "{}", ran.both());

    // Never published: no host port in the engine's view of the container...
    let inspected = inspect(engine, &socket, &container);
    let published = published_ports(&inspected);
    assert!(
        published.is_empty(),
        "{case}: the database publishes {published:?}"
    );
    // ...and its port is refused on every address of the host.
    let addresses = host_ipv4_addresses();
    assert!(
        addresses.contains(&IpAddr::from([127, 0, 0, 1])),
        "{addresses:?}"
    );
    assert!(
        addresses.iter().any(|a| !a.is_loopback()),
        "no non-loopback IPv4 address to check against: {addresses:?}"
    );
    for ip in &addresses {
        let at = SocketAddr::new(*ip, kind.port());
        match TcpStream::connect_timeout(&at, Duration::from_secs(2)) {
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {}
            Err(e) => panic!("{case}: {at}: expected a refusal, saw {e}"),
            Ok(_) => panic!("{case}: the database's port answers on the host at {at}"),
        }
    }

    // Without the credentials, even from inside its own container, the server refuses.
    for (what, attempt) in [
        ("no password", None),
        ("a wrong password", Some("wrong-password")),
    ] {
        let args = kind.client(&created, attempt, read);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let ran = engine.exec_saying(&socket, &args);
        let said = ran.both();
        assert!(
            !said.contains(written),
            "{case}: {what} read the data: {said}"
        );
        assert!(
            kind.refusals().iter().any(|r| said.contains(r)),
            "{case}: {what} was not refused by the server: {said}"
        );
        if !matches!(kind, Kind::Redis) {
            assert!(!ran.ok, "{case}: {what} succeeded: {said}");
        }
    }

    let checked = started.elapsed();
    backups_keep_two_and_restore_into_a_new_database(&p, &moto, engine, &socket, kind);
    eprintln!(
        "{case}: passed in {:?} (database up after {made:?}, app deployed after {deployed:?}, \
         private after {checked:?})",
        started.elapsed()
    );
}

/// Three runs of a schedule keeping 2, to the local directory and to moto, leave two backups
/// in each; the newest in the bucket, restored into a new database, holds the app's write.
fn backups_keep_two_and_restore_into_a_new_database(
    p: &Platform,
    moto: &Moto,
    engine: Engine,
    socket: &str,
    kind: Kind,
) {
    let name = kind.name();
    let (status, added) = p.api(
        "POST",
        "/api/backup-destinations",
        Some(json!({
            "name": "offsite", "kind": "s3", "endpoint": format!("http://{}", moto.addr),
            "region": "us-east-1", "bucket": "backups", "prefix": "", "path_style": true,
            "access_key_id": moto.access_key_id, "secret_access_key": moto.secret_access_key,
        })),
    );
    assert_eq!(status, 201, "{added}");
    let mut newest = Value::Null;
    for destination in ["local", "offsite"] {
        let (status, schedule) = p.api(
            "POST",
            &format!("/api/databases/{name}/schedules"),
            Some(json!({"cron": "@daily", "keep_last": 2, "destination": destination})),
        );
        assert_eq!(status, 201, "{schedule}");
        let run = format!("/api/databases/{name}/schedules/{}/run", schedule["id"]);
        let mut taken = Vec::new();
        for _ in 0..3 {
            let done = run_backup(p, name, &run);
            assert_eq!(
                done["status"], "succeeded",
                "{kind:?} to {destination}: {done}"
            );
            taken.push(done);
        }
        // Retention runs just after a backup is recorded good: the third may be listed an
        // instant longer than its run.
        let kept: Vec<String> = common::wait_for(
            "the schedule's retention to keep 2",
            Duration::from_secs(30),
            || {
                let (_, list) = p.api("GET", &format!("/api/databases/{name}/backups"), None);
                let kept: Vec<String> = list
                    .as_array()?
                    .iter()
                    .filter(|b| b["destination"] == destination && b["status"] == "succeeded")
                    .map(|b| b["location"].as_str().unwrap().to_owned())
                    .collect();
                (kept.len() == 2).then_some(kept)
            },
        );
        let stored = match destination {
            "local" => {
                let folder = std::path::Path::new(&kept[0]).parent().unwrap();
                std::fs::read_dir(folder).unwrap().count()
            }
            _ => moto.objects().len(),
        };
        assert_eq!(
            stored, 2,
            "{kind:?}: files or objects left in {destination}"
        );
        newest = taken.pop().unwrap();
    }

    let copy = format!("{name}-copy");
    let (status, restored) = p.api(
        "POST",
        &format!("/api/databases/{name}/restore"),
        Some(json!({"backup": newest["id"], "into": copy})),
    );
    assert_eq!(status, 200, "{kind:?}: restore from the bucket: {restored}");
    let database = &restored["database"];
    let container = database["container"].as_str().unwrap();
    let password = kind.password(engine, socket, container);
    let (read, written) = kind.read_back();
    let args = kind.client(database, Some(&password), read);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let ran = engine.exec_saying(socket, &args);
    assert_eq!(
        ran.stdout.trim(),
        written,
        "{kind:?}: the restored copy: {}",
        ran.both()
    );
}

/// Runs a backup with `POST path` and waits for its end.
fn run_backup(p: &Platform, database: &str, path: &str) -> Value {
    let (status, started) = p.api("POST", path, None);
    assert_eq!(status, 202, "{started}");
    let id = started["id"].clone();
    common::wait_for("the backup's end", Duration::from_secs(120), || {
        let (_, list) = p.api("GET", &format!("/api/databases/{database}/backups"), None);
        list.as_array()?
            .iter()
            .find(|b| b["id"] == id && b["status"] != "running")
            .cloned()
    })
}

/// MariaDB on rootful Podman: the `mariadb` client connects with the pieces of
/// `DATABASE_URL` and the `MYSQL_*` variables agree with them.
#[test]
fn mariadb_on_rootful_podman_serves_a_linked_app_and_no_one_else() {
    a_linked_app_writes_and_reads_and_the_database_stays_private(
        Engine::RootfulPodman,
        Kind::Mariadb,
    );
}

/// Redis on rootful Podman: `redis-cli -u "$DATABASE_URL"` sets and gets a key (the URL
/// names the user `default`, see the regression test on it).
#[test]
fn redis_on_rootful_podman_serves_a_linked_app_and_no_one_else() {
    a_linked_app_writes_and_reads_and_the_database_stays_private(
        Engine::RootfulPodman,
        Kind::Redis,
    );
}

/// PostgreSQL on rootless Podman: `psql "$DATABASE_URL"` writes and reads a row.
#[test]
fn postgres_on_rootless_podman_serves_a_linked_app_and_no_one_else() {
    a_linked_app_writes_and_reads_and_the_database_stays_private(
        Engine::RootlessPodman,
        Kind::Postgres,
    );
}

/// PostgreSQL on Docker: `psql "$DATABASE_URL"` writes and reads a row.
#[test]
fn postgres_on_docker_serves_a_linked_app_and_no_one_else() {
    a_linked_app_writes_and_reads_and_the_database_stays_private(Engine::Docker, Kind::Postgres);
}
