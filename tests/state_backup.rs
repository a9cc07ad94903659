//! `rivetr backup` and `rivetr restore` against the real binary and real SQLite files: a copy
//! of a running daemon's database comes back whole (apps, tokens, secrets that decrypt), and a
//! restore is refused while the daemon runs, for a file that is not Rivetr's, and for a backup
//! whose key is not the one on this machine.

use crate::common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::api::{Api, initial_token, request, state_dir};
use common::{BIN, Launch, Rivetr, TestDir};

/// Runs `rivetr ARGS` in `dir` as a test's daemon would find its state (`<dir>/data`).
fn run(dir: &TestDir, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .current_dir(dir.path())
        .env_remove("RIVETR_CONFIG")
        .env_remove("STATE_DIRECTORY")
        .env_remove("CREDENTIALS_DIRECTORY")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs `rivetr ARGS` expecting exit status 0; returns stdout.
fn ok(dir: &TestDir, args: &[&str]) -> String {
    let out = run(dir, args);
    assert!(
        out.status.success(),
        "rivetr {args:?}: {}\n{}",
        out.status,
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// Runs `rivetr ARGS` expecting exit status 1; returns stderr.
fn refused(dir: &TestDir, args: &[&str]) -> String {
    let out = run(dir, args);
    assert_eq!(
        out.status.code(),
        Some(1),
        "rivetr {args:?} should have failed: {}",
        text(&out.stdout)
    );
    text(&out.stderr)
}

/// Starts Rivetr on `dir`, with an API client holding the first token of `tokens_of`: a
/// restored database has the tokens of the installation it was copied from.
fn start(dir: &TestDir, tokens_of: &TestDir) -> (Rivetr, Api) {
    let mut rivetr = Launch::serve().start(dir);
    rivetr.wait_healthy();
    let api = Api {
        addr: rivetr.api(),
        token: initial_token(tokens_of.path()),
    };
    (rivetr, api)
}

fn stop(mut rivetr: Rivetr) {
    rivetr.signal(libc::SIGTERM);
    assert!(rivetr.wait_exit(Duration::from_secs(30)).success());
}

fn create_app(api: &Api, name: &str) {
    let body = format!(r#"{{"name": "{name}", "git_url": "/srv/git/{name}.git"}}"#);
    let r = api.post_json("/api/apps", &body);
    assert_eq!(r.status, 201, "{}", r.body);
}

fn set_secret_env(api: &Api, app: &str, key: &str, value: &str) {
    let body = format!(r#"{{"value": "{value}", "secret": true}}"#);
    let r = request(
        api.addr,
        "PUT",
        &format!("/api/apps/{app}/env/{key}"),
        &[
            ("Authorization", &api.auth()),
            ("Content-Type", "application/json"),
        ],
        body.as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", r.body);
}

fn app_names(api: &Api) -> Vec<String> {
    let r = api.get("/api/apps");
    assert_eq!(r.status, 200, "{}", r.body);
    let mut names: Vec<String> = r
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap().to_owned())
        .collect();
    names.sort();
    names
}

fn db_path(dir: &TestDir) -> PathBuf {
    state_dir(dir.path()).join("rivetr.db")
}

fn key_path(dir: &TestDir) -> PathBuf {
    state_dir(dir.path()).join("secret.key")
}

/// The key fingerprint a database records.
fn recorded_fingerprint(db: &Path) -> String {
    rusqlite::Connection::open(db)
        .unwrap()
        .query_row("SELECT fingerprint FROM secret_key WHERE id = 1", [], |r| {
            r.get(0)
        })
        .unwrap()
}

/// The value of a secret env var, decrypted from the database with the key file.
fn decrypted_env(db: &Path, key_file: &Path, app: &str, key: &str) -> String {
    let conn = rusqlite::Connection::open(db).unwrap();
    let (app_id, sealed): (i64, Vec<u8>) = conn
        .query_row(
            "SELECT a.id, e.value FROM env_vars e JOIN apps a ON a.id = e.app_id
              WHERE a.name = ?1 AND e.key = ?2 AND e.secret = 1",
            [app, key],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    let key_bytes = std::fs::read(key_file).unwrap();
    let secrets = rivetr::secrets::Secrets::new(&rivetr::secrets::key::parse(&key_bytes).unwrap());
    secrets
        .decrypt_str(rivetr::secrets::Purpose::EnvVar { app_id, key }, &sealed)
        .unwrap()
        .expose()
        .to_owned()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// A running daemon with one app and one secret, backed up; the daemon is returned running.
struct Source {
    dir: TestDir,
    rivetr: Rivetr,
    api: Api,
    backup: PathBuf,
}

fn running_source_with_backup() -> Source {
    let dir = TestDir::new();
    let (rivetr, api) = start(&dir, &dir);
    create_app(&api, "blog");
    set_secret_env(&api, "blog", "DB_PASSWORD", "hunter2-secret");
    let backup = dir.path().join("backups").join("rivetr.db");
    std::fs::create_dir(backup.parent().unwrap()).unwrap();
    let out = ok(&dir, &["backup", "--to", backup.to_str().unwrap()]);
    Source {
        dir,
        rivetr,
        api,
        backup: backup.clone(),
    }
    .checked(&out)
}

impl Source {
    /// Checks what `rivetr backup` printed and wrote.
    fn checked(self, out: &str) -> Source {
        let fingerprint = recorded_fingerprint(&db_path(&self.dir));
        assert!(out.contains(self.backup.to_str().unwrap()), "{out}");
        assert!(out.contains("bytes"), "{out}");
        assert!(out.contains(&fingerprint), "{out}");
        let meta = std::fs::metadata(&self.backup).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        let bytes = std::fs::read(&self.backup).unwrap();
        assert!(bytes.starts_with(b"SQLite format 3\0"));
        assert!(!contains(
            &bytes,
            &std::fs::read(key_path(&self.dir)).unwrap()
        ));
        assert!(!contains(&bytes, b"hunter2-secret"));
        // One self-contained file: nothing beside it.
        let beside: Vec<_> = std::fs::read_dir(self.backup.parent().unwrap())
            .unwrap()
            .collect();
        assert_eq!(beside.len(), 1, "{beside:?}");
        assert_eq!(recorded_fingerprint(&self.backup), fingerprint);
        self
    }
}

#[test]
fn a_backup_of_a_running_daemon_comes_back_after_a_restore() {
    let Source {
        dir,
        rivetr,
        api,
        backup,
    } = running_source_with_backup();
    // A change after the backup, which the restore must undo.
    create_app(&api, "later");
    // A directory as the target gets a dated file.
    let out = ok(&dir, &["backup", "--to", dir.path().to_str().unwrap()]);
    assert!(out.contains("rivetr-2"), "{out}");
    stop(rivetr);

    let out = ok(&dir, &["restore", "--from", backup.to_str().unwrap()]);
    assert!(out.contains("matches"), "{out}");
    assert!(out.contains("before-restore"), "{out}");
    let previous: Vec<PathBuf> = std::fs::read_dir(state_dir(dir.path()))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().contains("before-restore"))
        .collect();
    assert_eq!(previous.len(), 1, "{previous:?}");
    let kept = rusqlite::Connection::open(&previous[0]).unwrap();
    let n: i64 = kept
        .query_row("SELECT COUNT(*) FROM apps WHERE name = 'later'", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(n, 1, "the replaced database is kept whole");

    let (rivetr, api) = start(&dir, &dir);
    assert_eq!(app_names(&api), ["blog"]);
    let r = api.get("/api/apps/blog/env");
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()[0]["key"], "DB_PASSWORD");
    assert_eq!(
        decrypted_env(&db_path(&dir), &key_path(&dir), "blog", "DB_PASSWORD"),
        "hunter2-secret"
    );
    stop(rivetr);
}

#[test]
fn a_backup_restores_on_another_machine_that_has_the_key() {
    let source = running_source_with_backup();
    let target = TestDir::new();
    let data = state_dir(target.path());
    std::fs::create_dir(&data).unwrap();
    std::fs::copy(key_path(&source.dir), key_path(&target)).unwrap();
    let out = ok(
        &target,
        &["restore", "--from", source.backup.to_str().unwrap()],
    );
    assert!(
        !out.contains("before-restore"),
        "nothing was replaced: {out}"
    );
    stop(source.rivetr);

    let (rivetr, api) = start(&target, &source.dir);
    assert_eq!(app_names(&api), ["blog"]);
    assert_eq!(
        decrypted_env(&db_path(&target), &key_path(&target), "blog", "DB_PASSWORD"),
        "hunter2-secret"
    );
    stop(rivetr);
}

#[test]
fn restore_is_refused_while_the_daemon_runs() {
    let source = running_source_with_backup();
    let err = refused(
        &source.dir,
        &["restore", "--from", source.backup.to_str().unwrap()],
    );
    assert!(err.contains("Rivetr is running on"), "{err}");
    assert!(err.contains("rivetr.lock"), "{err}");
    // Nothing was touched: the daemon still answers, from the same database.
    assert_eq!(app_names(&source.api), ["blog"]);
    let names: Vec<String> = std::fs::read_dir(state_dir(source.dir.path()))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(
        !names
            .iter()
            .any(|n| n.contains("before-restore") || n.contains(".tmp-")),
        "{names:?}"
    );
    stop(source.rivetr);
}

#[test]
fn files_that_are_not_a_rivetr_database_of_a_known_version_are_refused() {
    let dir = TestDir::new();
    std::fs::create_dir(state_dir(dir.path())).unwrap();
    let garbage = dir.write("garbage.db", &"not a database\n".repeat(512));
    let err = refused(&dir, &["restore", "--from", garbage.to_str().unwrap()]);
    assert!(err.contains("garbage.db is not a Rivetr database"), "{err}");

    let other = dir.path().join("other.db");
    rusqlite::Connection::open(&other)
        .unwrap()
        .execute_batch("CREATE TABLE notes (x); INSERT INTO notes VALUES (1);")
        .unwrap();
    let err = refused(&dir, &["restore", "--from", other.to_str().unwrap()]);
    assert!(err.contains("no `apps` table"), "{err}");

    let missing = dir.path().join("missing.db");
    let err = refused(&dir, &["restore", "--from", missing.to_str().unwrap()]);
    assert!(err.contains("missing.db"), "{err}");

    // A backup from a newer Rivetr: a real database with a higher schema version.
    let newer = dir.path().join("newer.db");
    drop(rivetr::db::Db::open(&newer).unwrap());
    rusqlite::Connection::open(&newer)
        .unwrap()
        .pragma_update(None, "user_version", 9999)
        .unwrap();
    let err = refused(&dir, &["restore", "--from", newer.to_str().unwrap()]);
    assert!(err.contains("schema version 9999"), "{err}");
    assert!(err.contains("newer Rivetr"), "{err}");

    // None of them left anything in the state directory but the lock file.
    let names: Vec<String> = std::fs::read_dir(state_dir(dir.path()))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, ["rivetr.lock"]);

    // And with no database, there is nothing to back up.
    let err = refused(&dir, &["backup", "--to", "copy.db"]);
    assert!(err.contains("no database at"), "{err}");
}

#[test]
fn a_backup_made_with_another_key_is_refused_without_force() {
    let source = running_source_with_backup();
    stop(source.rivetr);
    let expected = recorded_fingerprint(&source.backup);

    // Another installation, with a key of its own.
    let target = TestDir::new();
    let (rivetr, api) = start(&target, &target);
    create_app(&api, "mine");
    stop(rivetr);
    let own = recorded_fingerprint(&db_path(&target));
    assert_ne!(own, expected);

    let from = source.backup.to_str().unwrap();
    let err = refused(&target, &["restore", "--from", from]);
    assert!(err.contains(&expected) && err.contains(&own), "{err}");
    assert!(err.contains("--force"), "{err}");
    // Untouched: its own app is still there.
    let (rivetr, api) = start(&target, &target);
    assert_eq!(app_names(&api), ["mine"]);
    stop(rivetr);

    // --key names the right key file: the check passes (the daemon would still need it).
    let source_key = key_path(&source.dir);
    let out = ok(
        &target,
        &[
            "restore",
            "--from",
            from,
            "--key",
            source_key.to_str().unwrap(),
        ],
    );
    assert!(out.contains("matches"), "{out}");
    assert!(out.contains(source_key.to_str().unwrap()), "{out}");

    // --force restores whatever the key; Rivetr then refuses to start with the wrong one,
    // and starts once the backup's key is in place.
    let out = run(&target, &["restore", "--from", from, "--force"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("--force"),
        "{}",
        text(&out.stderr)
    );
    let mut wrong_key = Launch::serve().start(&target);
    assert!(!wrong_key.wait_exit(Duration::from_secs(30)).success());
    assert!(wrong_key.log().contains(&expected), "{}", wrong_key.log());
    std::fs::copy(&source_key, key_path(&target)).unwrap();
    let (rivetr, api) = start(&target, &source.dir);
    assert_eq!(app_names(&api), ["blog"]);
    stop(rivetr);
}
