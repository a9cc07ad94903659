//! Backups of managed databases through the API and the CLI, on rootful Podman with the test
//! images `scripts/test-env/db-images.sh` builds: taken now or by a schedule with retention,
//! verified by SHA-256, downloaded, restored into the same or a new database; failures
//! recorded with the reason; a backup cut by `kill -9` never listed as good.

mod common;

use std::time::Duration;

use common::platform::{Platform, podman_socket};
use common::wait_for;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

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
                "RIVETR_DATABASES_MARIADB_IMAGE",
                "localhost/rivetr-test-mariadb:{version}",
            ),
            (
                "RIVETR_DATABASES_REDIS_IMAGE",
                "localhost/rivetr-test-redis:{version}",
            ),
        ],
    ))
}

fn create(p: &Platform, name: &str, engine: &str, version: &str) -> Value {
    let (status, created) = p.api(
        "POST",
        "/api/databases",
        Some(json!({"name": name, "engine": engine, "version": version})),
    );
    assert_eq!(status, 201, "{created}");
    created
}

/// `psql` as the app's user inside the database's container.
fn psql(p: &Platform, db: &Value, sql: &str) -> String {
    let container = db["container"].as_str().unwrap();
    let password = p.container_env(container, "POSTGRES_PASSWORD");
    p.podman(&[
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
    .trim()
    .to_owned()
}

/// Starts a backup with `POST path` and waits for its end.
fn backup(p: &Platform, db: &str, path: &str) -> Value {
    let (status, started) = p.api("POST", path, None);
    assert_eq!(status, 202, "{started}");
    assert_eq!(started["status"], "running", "{started}");
    wait_backup(p, db, started["id"].as_i64().unwrap())
}

fn wait_backup(p: &Platform, db: &str, id: i64) -> Value {
    wait_for("the backup's end", Duration::from_secs(180), || {
        let (_, list) = p.api("GET", &format!("/api/databases/{db}/backups"), None);
        list.as_array()?
            .iter()
            .find(|b| b["id"] == id && b["status"] != "running")
            .cloned()
    })
}

fn sha256_of(path: &str) -> String {
    hex::encode(Sha256::digest(std::fs::read(path).unwrap()))
}

#[test]
fn postgres_backups_follow_their_schedule_and_restore_into_a_new_database() {
    let Some(mut p) = start("PostgreSQL backups") else {
        return;
    };
    let main = create(&p, "main", "postgres", "15");
    psql(
        &p,
        &main,
        "CREATE TABLE items (id int PRIMARY KEY, name text); \
         INSERT INTO items SELECT g, 'item-' || g FROM generate_series(1, 1000) g",
    );
    let checksum_sql =
        "SELECT count(*) || ':' || md5(string_agg(name, ',' ORDER BY id)) FROM items";
    let original = psql(&p, &main, checksum_sql);
    assert!(original.starts_with("1000:"), "{original}");

    // Bad requests say what is wrong and change nothing.
    let (status, body) = p.api("POST", "/api/databases/nope/backups", None);
    assert_eq!(status, 404, "{body}");
    let (status, body) = p.api(
        "POST",
        "/api/databases/main/schedules",
        Some(json!({"cron": "0 0 3 * * *"})),
    );
    assert_eq!(status, 422, "{body}");
    assert!(body.to_string().contains("five"), "{body}");
    let (status, body) = p.api(
        "POST",
        "/api/databases/main/schedules",
        Some(json!({"cron": "0 3 * * *", "keep_last": 0})),
    );
    assert_eq!(status, 422, "{body}");
    assert!(body.to_string().contains("keep_last"), "{body}");

    // A schedule keeping 2: three of its runs leave exactly the newest 2, files and rows.
    let (status, schedule) = p.api(
        "POST",
        "/api/databases/main/schedules",
        Some(json!({"cron": "0 3 * * *", "keep_last": 2})),
    );
    assert_eq!(status, 201, "{schedule}");
    assert!(
        schedule["next_run_at"]
            .as_str()
            .unwrap()
            .contains("T03:00:00"),
        "{schedule}"
    );
    let sid = schedule["id"].as_i64().unwrap();
    let mut taken = Vec::new();
    for _ in 0..3 {
        let b = backup(
            &p,
            "main",
            &format!("/api/databases/main/schedules/{sid}/run"),
        );
        assert_eq!(b["status"], "succeeded", "{b}");
        assert_eq!(b["schedule_id"], sid);
        taken.push(b);
    }
    let (_, list) = p.api("GET", "/api/databases/main/backups", None);
    let ids: Vec<i64> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["id"].as_i64().unwrap())
        .collect();
    assert_eq!(
        ids,
        vec![
            taken[2]["id"].as_i64().unwrap(),
            taken[1]["id"].as_i64().unwrap()
        ],
        "{list}"
    );
    assert!(!std::path::Path::new(taken[0]["location"].as_str().unwrap()).exists());
    let folder = std::path::Path::new(taken[2]["location"].as_str().unwrap())
        .parent()
        .unwrap()
        .to_owned();
    assert_eq!(std::fs::read_dir(&folder).unwrap().count(), 2, "{folder:?}");

    // The file is what the row says: its size and SHA-256; inside, pg_dump's custom format.
    let good = &taken[2];
    let location = good["location"].as_str().unwrap();
    assert_eq!(sha256_of(location), good["sha256"].as_str().unwrap());
    assert_eq!(
        std::fs::metadata(location).unwrap().len(),
        good["size_bytes"].as_u64().unwrap()
    );
    let gunzip = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("gzip -dc '{location}' | head -c 5"))
        .output()
        .unwrap();
    assert_eq!(gunzip.stdout, b"PGDMP", "a pg_dump -Fc archive");

    // Downloaded through the CLI, byte for byte.
    let id = good["id"].as_i64().unwrap().to_string();
    let copy = p.dir.path().join("downloaded.pgdump.gz");
    let (code, out, err) = p.cli(&["db", "download", "main", &id, "-o", copy.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(
        sha256_of(copy.to_str().unwrap()),
        good["sha256"].as_str().unwrap()
    );

    // Restored into a new database: the same rows.
    let (status, restored) = p.api(
        "POST",
        "/api/databases/main/restore",
        Some(json!({"backup": good["id"], "into": "main-copy"})),
    );
    assert_eq!(status, 200, "{restored}");
    assert_eq!(restored["database"]["name"], "main-copy");
    assert_eq!(psql(&p, &restored["database"], checksum_sql), original);

    // Restored into itself (CLI): changes since the backup are undone.
    psql(
        &p,
        &main,
        "DELETE FROM items WHERE id > 10; UPDATE items SET name = 'changed'",
    );
    assert_ne!(psql(&p, &main, checksum_sql), original);
    let (code, out, err) = p.cli(&["db", "restore", "main", "--backup", &id, "--yes"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("restored into main"), "{out}");
    assert_eq!(psql(&p, &main, checksum_sql), original);

    // A damaged file is refused before anything changes.
    psql(&p, &main, "INSERT INTO items VALUES (5000, 'after')");
    let mut bytes = std::fs::read(location).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(location, &bytes).unwrap();
    let (status, body) = p.api(
        "POST",
        "/api/databases/main/restore",
        Some(json!({"backup": good["id"]})),
    );
    assert_eq!(status, 409, "{body}");
    assert!(body.to_string().contains("SHA-256"), "{body}");
    assert_eq!(
        psql(&p, &main, "SELECT name FROM items WHERE id = 5000"),
        "after"
    );

    // A backup of a stopped database fails with the reason; the good ones stay; the CLI
    // exits non-zero and the health says which database.
    let (status, _) = p.api("POST", "/api/databases/main-copy/stop", None);
    assert_eq!(status, 200);
    let (code, out, err) = p.cli(&["db", "backup", "main-copy"]);
    assert_ne!(code, 0, "{out}{err}");
    assert!(err.contains("not running"), "{out}{err}");
    let (_, list) = p.api("GET", "/api/databases/main-copy/backups", None);
    assert_eq!(list[0]["status"], "failed", "{list}");
    assert!(list[0]["error"].as_str().unwrap().contains("not running"));
    let (_, health) = p.api("GET", "/api/health", None);
    assert!(
        health["backups"].as_str().unwrap().contains("main-copy"),
        "{health}"
    );
    let (code, out, err) = p.cli(&["db", "backups", "main"]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(out.matches("succeeded").count(), 2, "{out}");

    // kill -9 in the middle of a backup: after the restart it is listed failed, and no
    // file, whole or partial, is left of it.
    psql(
        &p,
        &main,
        "CREATE TABLE bulk AS SELECT g AS id, md5(g::text) || md5((g * 7)::text) AS v \
         FROM generate_series(1, 1500000) g",
    );
    let (status, started) = p.api("POST", "/api/databases/main/backups", None);
    assert_eq!(status, 202, "{started}");
    let location = started["location"].as_str().unwrap().to_owned();
    let partial = format!("{location}.partial");
    wait_for("the backup to be writing", Duration::from_secs(60), || {
        std::fs::metadata(&partial)
            .ok()
            .filter(|m| m.len() > 0)
            .map(|_| ())
    });
    p.kill9();
    p.restart();
    let cut = wait_backup(&p, "main", started["id"].as_i64().unwrap());
    assert_eq!(cut["status"], "failed", "{cut}");
    assert!(
        cut["error"].as_str().unwrap().contains("Rivetr stopped"),
        "{cut}"
    );
    assert!(!std::path::Path::new(&location).exists());
    assert!(!std::path::Path::new(&partial).exists());
    // The schedule survived the restart.
    let (_, schedules) = p.api("GET", "/api/databases/main/schedules", None);
    assert_eq!(schedules.as_array().unwrap().len(), 1, "{schedules}");
    // And a backup after it is good, large as it is.
    let after = backup(&p, "main", "/api/databases/main/backups");
    assert_eq!(after["status"], "succeeded", "{after}");

    // The password never reached the log.
    let password = p.container_env(main["container"].as_str().unwrap(), "POSTGRES_PASSWORD");
    let log = std::fs::read_to_string(&p.rivetr.log_path).unwrap();
    assert!(!log.contains(&password), "the password is in the log");
}

#[test]
fn mariadb_and_redis_backups_restore_into_themselves_and_into_new_databases() {
    let Some(p) = start("MariaDB and Redis backups") else {
        return;
    };

    // MariaDB: mariadb-dump --single-transaction, fed back to mariadb.
    let maria = create(&p, "shop", "mariadb", "10.11");
    let container = maria["container"].as_str().unwrap().to_owned();
    let root = p.container_env(&container, "MARIADB_ROOT_PASSWORD");
    let sql = |container: &str, db: &str, q: &str| {
        p.podman(&[
            "exec",
            "-e",
            &format!("MYSQL_PWD={root}"),
            container,
            "mariadb",
            "-h",
            "127.0.0.1",
            "-u",
            "root",
            "-N",
            "-e",
            q,
            db,
        ])
        .trim()
        .to_owned()
    };
    sql(
        &container,
        "shop",
        "CREATE TABLE orders (id INT PRIMARY KEY, what TEXT); \
         INSERT INTO orders VALUES (1, 'tea'), (2, 'bread'), (3, 'jam')",
    );
    let b = backup(&p, "shop", "/api/databases/shop/backups");
    assert_eq!(b["status"], "succeeded", "{b}");
    sql(&container, "shop", "DELETE FROM orders WHERE id = 2");
    let (status, restored) = p.api(
        "POST",
        "/api/databases/shop/restore",
        Some(json!({"backup": b["id"]})),
    );
    assert_eq!(status, 200, "{restored}");
    let all = "SELECT GROUP_CONCAT(what ORDER BY id) FROM orders";
    assert_eq!(sql(&container, "shop", all), "tea,bread,jam");
    let (status, restored) = p.api(
        "POST",
        "/api/databases/shop/restore",
        Some(json!({"backup": b["id"], "into": "shop-copy"})),
    );
    assert_eq!(status, 200, "{restored}");
    let copy = restored["database"]["container"]
        .as_str()
        .unwrap()
        .to_owned();
    let copy_root = p.container_env(&copy, "MARIADB_ROOT_PASSWORD");
    let copied = p.podman(&[
        "exec",
        "-e",
        &format!("MYSQL_PWD={copy_root}"),
        &copy,
        "mariadb",
        "-h",
        "127.0.0.1",
        "-u",
        "root",
        "-N",
        "-e",
        all,
        "shop_copy",
    ]);
    assert_eq!(copied.trim(), "tea,bread,jam");

    // Redis: BGSAVE, then the RDB file; restored by putting it in place of the data.
    let cache = create(&p, "cache", "redis", "7");
    let container = cache["container"].as_str().unwrap().to_owned();
    let cli = |container: &str, args: &[&str]| {
        let cmd = p.podman(&["inspect", "--format", "{{json .Config.Cmd}}", container]);
        let cmd: Vec<String> = serde_json::from_str(cmd.trim()).unwrap();
        let pass = cmd[cmd.iter().position(|a| a == "--requirepass").unwrap() + 1].clone();
        let mut full = vec!["exec", "-e"];
        let auth = format!("REDISCLI_AUTH={pass}");
        full.push(&auth);
        full.extend([container, "redis-cli", "-h", "127.0.0.1"]);
        full.extend(args);
        p.podman(&full).trim().to_owned()
    };
    cli(&container, &["SET", "greeting", "hello"]);
    cli(&container, &["RPUSH", "queue", "a", "b", "c"]);
    let b = backup(&p, "cache", "/api/databases/cache/backups");
    assert_eq!(b["status"], "succeeded", "{b}");
    cli(&container, &["SET", "greeting", "changed"]);
    cli(&container, &["DEL", "queue"]);
    let (status, restored) = p.api(
        "POST",
        "/api/databases/cache/restore",
        Some(json!({"backup": b["id"]})),
    );
    assert_eq!(status, 200, "{restored}");
    assert_eq!(restored["database"]["status"], "running", "{restored}");
    assert_eq!(cli(&container, &["GET", "greeting"]), "hello");
    assert_eq!(cli(&container, &["LRANGE", "queue", "0", "-1"]), "a\nb\nc");
    // It survives a restart of Redis: the restored data is what Redis loads at start.
    let (status, _) = p.api("POST", "/api/databases/cache/restart", None);
    assert_eq!(status, 200);
    assert_eq!(cli(&container, &["GET", "greeting"]), "hello");
    let (status, restored) = p.api(
        "POST",
        "/api/databases/cache/restore",
        Some(json!({"backup": b["id"], "into": "cache-copy"})),
    );
    assert_eq!(status, 200, "{restored}");
    let copy = restored["database"]["container"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(cli(&copy, &["GET", "greeting"]), "hello");
    // No restore helper container is left.
    let left = p.podman(&["ps", "-a", "--format", "{{.Names}}"]);
    assert!(!left.contains("-restore"), "{left}");
}
