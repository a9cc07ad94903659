//! Managed databases on real engines, from the test images `scripts/test-env/db-images.sh`
//! builds out of Debian's own packages (they follow the official images' contract):
//! PostgreSQL, MariaDB and Redis on rootful Podman, PostgreSQL on rootless Podman and Docker.
//! Each test brings a database up, logs in over TCP with the generated password (a wrong
//! one is refused), writes a row, restarts it and reads the row back, removes it keeping the
//! volume, brings it up again on that volume, and removes everything. PostgreSQL and MariaDB
//! also go through a backup and a restore with the engine's own tools, streamed out of and
//! back into the container by exec, as the backup service does.

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use rivetr::databases::backups::{archive, dump};
use rivetr::databases::lifecycle::{self, DatabaseSpec, Names};
use rivetr::databases::{Credentials, DbKind, LABEL_DATABASE};
use rivetr::runtime::{
    ContainerRuntime, ContainerState, DockerRuntime, ExecSpec, LabelFilter, Limits, PodmanRuntime,
};
use rivetr::secrets::SecretString;

const READY_WITHIN: Duration = Duration::from_secs(180);

fn engine(var: &str) -> Option<Arc<dyn ContainerRuntime>> {
    let socket = common::platform::engine_socket(var, "databases")?;
    Some(if var.contains("DOCKER") {
        Arc::new(DockerRuntime::connect(&socket).unwrap())
    } else {
        Arc::new(PodmanRuntime::connect(&socket).unwrap())
    })
}

fn test_image(kind: DbKind) -> &'static str {
    match kind {
        DbKind::Postgres => "localhost/rivetr-test-postgres:15",
        DbKind::Mariadb | DbKind::Mysql => "localhost/rivetr-test-mariadb:10.11",
        DbKind::Redis => "localhost/rivetr-test-redis:7",
    }
}

fn random_password() -> SecretString {
    rivetr::secrets::random_hex_secret().unwrap()
}

fn spec(kind: DbKind, case: &str) -> DatabaseSpec {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    DatabaseSpec {
        name: format!("{case}{nanos:x}"),
        kind,
        image: test_image(kind).to_owned(),
        credentials: Credentials {
            user: "main".into(),
            password: random_password(),
            root_password: Some(random_password()),
            database: "main".into(),
        },
        limits: Limits {
            memory_bytes: Some(512 << 20),
            cpus: None,
            pids: None,
        },
        instance: format!("dbtest{}", std::process::id()),
    }
}

/// A client command run inside the database's container, connecting over TCP to
/// 127.0.0.1 with `password`; the password goes in the environment, never the arguments.
fn client(kind: DbKind, password: &str, statement: &str) -> ExecSpec {
    let (cmd, env): (Vec<String>, Vec<(String, String)>) = match kind {
        DbKind::Postgres => (
            vec![
                "psql".into(),
                "-h".into(),
                "127.0.0.1".into(),
                "-U".into(),
                "main".into(),
                "-d".into(),
                "main".into(),
                "-tAc".into(),
                statement.into(),
            ],
            vec![("PGPASSWORD".into(), password.into())],
        ),
        DbKind::Mariadb | DbKind::Mysql => (
            vec![
                "mariadb".into(),
                "-h".into(),
                "127.0.0.1".into(),
                "-u".into(),
                "main".into(),
                "-N".into(),
                "-B".into(),
                "main".into(),
                "-e".into(),
                statement.into(),
            ],
            vec![("MYSQL_PWD".into(), password.into())],
        ),
        DbKind::Redis => (
            std::iter::once("redis-cli")
                .chain(["-h", "127.0.0.1"])
                .map(str::to_owned)
                .chain(statement.split(' ').map(str::to_owned))
                .collect(),
            vec![("REDISCLI_AUTH".into(), password.into())],
        ),
    };
    ExecSpec {
        cmd,
        env,
        ..ExecSpec::default()
    }
}

fn write_and_read(kind: DbKind) -> (&'static str, &'static str) {
    match kind {
        DbKind::Postgres => (
            "CREATE TABLE t (v text); INSERT INTO t VALUES ('kept-row')",
            "SELECT v FROM t",
        ),
        DbKind::Mariadb | DbKind::Mysql => (
            "CREATE TABLE t (v text); INSERT INTO t VALUES ('kept-row')",
            "SELECT v FROM t",
        ),
        DbKind::Redis => ("SET t kept-row", "GET t"),
    }
}

async fn run(rt: &dyn ContainerRuntime, container: &str, spec: &ExecSpec) -> (i64, String) {
    let out = rt
        .exec(container, spec, Duration::from_secs(30))
        .await
        .unwrap();
    (out.exit_code, format!("{}{}", out.stdout, out.stderr))
}

async fn lifecycle_case(rt: Arc<dyn ContainerRuntime>, kind: DbKind, case: &str) {
    let image = test_image(kind);
    if rt
        .list_images(&rivetr::runtime::ImageFilter::Reference(image.to_owned()))
        .await
        .unwrap()
        .is_empty()
    {
        panic!("{image} is not in this engine: run scripts/test-env/db-images.sh first");
    }
    let spec = spec(kind, case);
    let names = spec.names();
    let password = spec.credentials.password.expose().to_owned();
    let _cleanup = Cleanup(rt.clone(), names.clone());
    let rt = rt.as_ref();

    let started = std::time::Instant::now();
    let info = lifecycle::bring_up(rt, &spec, &[], READY_WITHIN)
        .await
        .unwrap_or_else(|e| panic!("{kind} did not come up: {e}"));
    eprintln!("{kind}: ready on a fresh volume in {:?}", started.elapsed());
    assert_eq!(info.state, ContainerState::Running);
    assert_eq!(info.labels.get(LABEL_DATABASE), Some(&spec.name));
    assert_eq!(info.host_port, None, "a database publishes no port");

    let (write, read) = write_and_read(kind);
    let (code, out) = run(rt, &info.id, &client(kind, &password, write)).await;
    assert_eq!(code, 0, "{kind} write: {out}");
    let (code, out) = run(rt, &info.id, &client(kind, "wrong-password", read)).await;
    let refused = code != 0 || out.contains("WRONGPASS") || out.contains("NOAUTH");
    assert!(refused, "{kind} accepted a wrong password: {out}");
    assert!(!out.contains("kept-row"), "{out}");

    // Stop and start: the data is still there and nothing was initialised again.
    lifecycle::stop(rt, &names).await.unwrap();
    assert_eq!(
        rt.inspect(&names.container).await.unwrap().state,
        ContainerState::Exited
    );
    lifecycle::bring_up(rt, &spec, &[], READY_WITHIN)
        .await
        .unwrap();
    let (code, out) = run(rt, &names.container, &client(kind, &password, read)).await;
    assert_eq!(
        (code, out.trim()),
        (0, "kept-row"),
        "{kind} after a restart"
    );

    // Dumped through exec into a compressed file, the row deleted, the dump fed back: the
    // row is there again.
    if let Some(restore) = dump::restore_command(kind, &spec.credentials) {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("backup.gz");
        let mut session = rt
            .exec_start(
                &names.container,
                &dump::dump_command(kind, &spec.credentials),
            )
            .await
            .unwrap();
        let written = archive::write(&mut session.output, &file, None)
            .await
            .unwrap();
        assert!(
            written.size > 0,
            "{kind}: an empty dump ({})",
            written.stderr
        );
        let (code, out) = run(
            rt,
            &names.container,
            &client(kind, &password, "DELETE FROM t"),
        )
        .await;
        assert_eq!(code, 0, "{out}");
        let mut session = rt.exec_start(&names.container, &restore).await.unwrap();
        let mut input = session.input.take().expect("the restore tool's stdin");
        let mut dump = archive::open_dump(tokio::fs::File::open(&file).await.unwrap(), None);
        tokio::io::copy(&mut dump, &mut input).await.unwrap();
        tokio::io::AsyncWriteExt::shutdown(&mut input)
            .await
            .unwrap();
        drop(input);
        while futures_util::StreamExt::next(&mut session.output)
            .await
            .is_some()
        {}
        let (code, out) = run(rt, &names.container, &client(kind, &password, read)).await;
        assert_eq!(
            (code, out.trim()),
            (0, "kept-row"),
            "{kind} after a restore"
        );
    }

    // Removed without its volume: the data survives into a new container.
    let removed = lifecycle::remove(rt, &names, false).await.unwrap();
    let kept = removed.kept_volume.expect("the volume is kept");
    assert_eq!(kept.name, names.volume);
    assert!(!kept.mountpoint.is_empty());
    assert!(rt.inspect_network(&names.network).await.unwrap().is_none());
    let info = lifecycle::bring_up(rt, &spec, &[], READY_WITHIN)
        .await
        .unwrap();
    let (code, out) = run(rt, &info.id, &client(kind, &password, read)).await;
    assert_eq!(
        (code, out.trim()),
        (0, "kept-row"),
        "{kind} on its kept volume"
    );

    // Removed with its volume: nothing of it is left in the engine.
    let removed = lifecycle::remove(rt, &names, true).await.unwrap();
    assert_eq!(removed.kept_volume, None);
    let mine = [LabelFilter::eq(LABEL_DATABASE, spec.name.clone())];
    assert!(rt.list(&mine).await.unwrap().is_empty());
    assert!(rt.list_volumes(&mine).await.unwrap().is_empty());
    assert!(rt.list_networks(&mine).await.unwrap().is_empty());
}

/// Leaves nothing behind when a case fails half-way.
struct Cleanup(Arc<dyn ContainerRuntime>, Names);

impl Drop for Cleanup {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        let (rt, names) = (self.0.clone(), self.1.clone());
        let _ = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(async move {
                    let _ = lifecycle::remove(rt.as_ref(), &names, true).await;
                })
        })
        .join();
    }
}

macro_rules! database_case {
    ($name:ident, $var:literal, $kind:expr) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            if let Some(rt) = engine($var) {
                lifecycle_case(rt, $kind, stringify!($name)).await;
            }
        }
    };
}

database_case!(
    postgres_on_rootful_podman,
    "RIVETR_TEST_PODMAN_SOCKET",
    DbKind::Postgres
);
database_case!(
    mariadb_on_rootful_podman,
    "RIVETR_TEST_PODMAN_SOCKET",
    DbKind::Mariadb
);
database_case!(
    redis_on_rootful_podman,
    "RIVETR_TEST_PODMAN_SOCKET",
    DbKind::Redis
);
database_case!(
    postgres_on_rootless_podman,
    "RIVETR_TEST_PODMAN_ROOTLESS_SOCKET",
    DbKind::Postgres
);
database_case!(
    postgres_on_docker,
    "RIVETR_TEST_DOCKER_SOCKET",
    DbKind::Postgres
);

/// Debian's `docker-registry` on a free port of 127.0.0.1, serving TLS with a certificate
/// the engines trust through their `certs.d` folders (read at each pull, unlike
/// registries.conf, which a running Podman service has already read). Stops and forgets the
/// certificate when dropped.
struct Registry {
    child: std::process::Child,
    host: String,
    trusted: Vec<std::path::PathBuf>,
    _dir: tempfile::TempDir,
}

impl Registry {
    fn start() -> Option<Registry> {
        let program = std::path::Path::new("/usr/bin/docker-registry");
        if !program.exists() {
            common::skip(
                "image pulls",
                "/usr/bin/docker-registry is missing (apt-get install docker-registry)",
            );
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
        let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
        std::fs::write(&cert_path, cert.cert.pem()).unwrap();
        std::fs::write(&key_path, cert.signing_key.serialize_pem()).unwrap();
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let host = format!("127.0.0.1:{port}");
        let config = dir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {host}\n  tls:\n    certificate: {}\n    key: {}\n",
                dir.path().join("data").display(),
                cert_path.display(),
                key_path.display()
            ),
        )
        .unwrap();
        let mut trusted = Vec::new();
        for base in ["/etc/containers/certs.d", "/etc/docker/certs.d"] {
            let folder = std::path::Path::new(base).join(&host);
            std::fs::create_dir_all(&folder).unwrap();
            std::fs::write(folder.join("ca.crt"), cert.cert.pem()).unwrap();
            trusted.push(folder);
        }
        let child = std::process::Command::new(program)
            .arg("serve")
            .arg(&config)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(&host).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "the registry did not listen"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Some(Registry {
            child,
            host,
            trusted,
            _dir: dir,
        })
    }

    /// Pushes a local image of rootful Podman's to this registry under `name`.
    fn push(&self, image: &str, name: &str) -> String {
        let socket = std::env::var("RIVETR_TEST_PODMAN_SOCKET").unwrap();
        let target = format!("{}/{name}", self.host);
        let out = std::process::Command::new("podman")
            .args(["--url", &socket, "push", "--quiet", image, &target])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "podman push: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        target
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        for folder in &self.trusted {
            let _ = std::fs::remove_dir_all(folder);
        }
    }
}

/// The official images are not in a fresh engine: bringing a database up pulls its image
/// first, on every engine; an image the registry does not have fails saying so and leaves
/// no container.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_database_image_is_pulled_from_its_registry_on_every_engine() {
    let engines: Vec<(&str, Arc<dyn ContainerRuntime>)> = [
        "RIVETR_TEST_PODMAN_SOCKET",
        "RIVETR_TEST_PODMAN_ROOTLESS_SOCKET",
        "RIVETR_TEST_DOCKER_SOCKET",
    ]
    .into_iter()
    .filter_map(|var| engine(var).map(|rt| (var, rt)))
    .collect();
    if engines.len() < 3 {
        return;
    }
    let Some(registry) = Registry::start() else {
        return;
    };
    let image = registry.push(test_image(DbKind::Redis), "rivetr-test-redis:7");
    for (var, shared) in engines {
        let rt = shared.as_ref();
        rt.remove_image(&image).await.unwrap();
        let mut spec = spec(DbKind::Redis, "pulled");
        spec.image = image.clone();
        let names = spec.names();
        let _cleanup = Cleanup(shared.clone(), names.clone());
        let info = lifecycle::bring_up(rt, &spec, &[], READY_WITHIN)
            .await
            .unwrap_or_else(|e| panic!("{var}: {e}"));
        assert_eq!(info.state, ContainerState::Running, "{var}");
        lifecycle::remove(rt, &names, true).await.unwrap();
        rt.remove_image(&image).await.unwrap();

        spec.image = format!("{}/rivetr-test-redis:no-such-tag", registry.host);
        let err = lifecycle::bring_up(rt, &spec, &[], READY_WITHIN)
            .await
            .expect_err("an image the registry lacks")
            .to_string();
        assert!(err.contains("no-such-tag"), "{var}: {err}");
        assert!(
            rt.inspect(&names.container)
                .await
                .is_err_and(|e| e.is_not_found()),
            "{var}: a container was left"
        );
        lifecycle::remove(rt, &names, true).await.unwrap();
    }
}
