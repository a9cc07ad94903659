//! Secrets at rest against the real binary: where the key comes from, what happens when it
//! is missing or wrong, and that secret values cannot be found in the database files or logs.

use crate::common;

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use common::api::{Api, initial_token, insert_app, open_db, state_dir};
use common::{Launch, Rivetr, TestDir};

fn start(dir: &TestDir, launch: Launch) -> Rivetr {
    let mut rivetr = launch.start(dir);
    rivetr.wait_healthy();
    rivetr
}

fn stop(mut rivetr: Rivetr) {
    rivetr.signal(libc::SIGTERM);
    assert!(rivetr.wait_exit(Duration::from_secs(30)).success());
}

/// Starts Rivetr expecting it to refuse; returns its log.
fn refused_start(dir: &TestDir, launch: Launch) -> String {
    let mut rivetr = launch.start(dir);
    let status = rivetr.wait_exit(Duration::from_secs(30));
    assert!(!status.success(), "started although it should not have");
    rivetr.log()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn the_state_key_is_created_0600_and_reused() {
    let dir = TestDir::new();
    let rivetr = start(&dir, Launch::serve());
    let key = state_dir(dir.path()).join("secret.key");
    let meta = std::fs::metadata(&key).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let bytes = std::fs::read(&key).unwrap();
    assert_eq!(bytes.len(), 32, "raw 32 bytes");
    assert!(rivetr.log().contains("secret.key"));
    stop(rivetr);

    let rivetr = start(&dir, Launch::serve());
    assert_eq!(std::fs::read(&key).unwrap(), bytes, "the key was replaced");
    assert!(rivetr.log().contains("loaded the key"), "{}", rivetr.log());
}

#[test]
fn secret_values_are_not_in_the_database_files_nor_in_the_log() {
    let dir = TestDir::new();
    let rivetr = start(&dir, Launch::serve());
    let api = Api {
        addr: rivetr.api(),
        token: initial_token(dir.path()),
    };
    let mut secrets = Vec::new();
    for name in ["alpha", "beta", "gamma"] {
        insert_app(dir.path(), name, "main");
        let r = api.post_json(&format!("/api/apps/{name}/webhook-secret"), "");
        assert_eq!(r.status, 200, "{}", r.body);
        secrets.push(r.json()["webhook_secret"].as_str().unwrap().to_owned());
    }
    // The sealed values are stored, one per app, and are not the secrets.
    let sealed: Vec<Vec<u8>> = {
        let db = open_db(dir.path());
        let mut stmt = db
            .prepare("SELECT webhook_secret FROM apps ORDER BY id")
            .unwrap();
        stmt.query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    };
    assert_eq!(sealed.len(), 3);
    for value in &sealed {
        assert_eq!(value[0], 1, "version byte");
        assert_eq!(value.len(), 1 + 24 + 64 + 16);
    }

    // Grep the database, its WAL and shared memory, while running and after a checkpoint.
    let files = ["rivetr.db", "rivetr.db-wal", "rivetr.db-shm"];
    let check = |when: &str| {
        let mut seen = 0;
        for file in files {
            let Ok(bytes) = std::fs::read(state_dir(dir.path()).join(file)) else {
                continue;
            };
            seen += bytes.len();
            for secret in &secrets {
                assert!(
                    !contains(&bytes, secret.as_bytes()),
                    "{when}: a secret is in {file}"
                );
                let raw = hex::decode(secret).unwrap();
                assert!(
                    !contains(&bytes, &raw),
                    "{when}: a secret's bytes are in {file}"
                );
            }
        }
        assert!(seen > 0, "no database files found");
    };
    check("while running");
    let log = rivetr.log();
    for secret in &secrets {
        assert!(!log.contains(secret.as_str()), "a secret is in the log");
    }
    stop(rivetr);
    check("after shutdown");
}

#[test]
fn a_missing_key_stops_startup_and_no_new_key_is_made() {
    let dir = TestDir::new();
    let rivetr = start(&dir, Launch::serve());
    let api = Api {
        addr: rivetr.api(),
        token: initial_token(dir.path()),
    };
    insert_app(dir.path(), "blog", "main");
    assert_eq!(
        api.post_json("/api/apps/blog/webhook-secret", "").status,
        200
    );
    stop(rivetr);

    let key = state_dir(dir.path()).join("secret.key");
    std::fs::remove_file(&key).unwrap();
    let log = refused_start(&dir, Launch::serve());
    assert!(log.contains("no secret key found"), "{log}");
    assert!(log.contains("1 encrypted values depend on it"), "{log}");
    assert!(log.contains("secret.key"), "{log}");
    assert!(!key.exists(), "a new key was created over the old values");
}

#[test]
fn a_different_key_stops_startup() {
    let dir = TestDir::new();
    stop(start(&dir, Launch::serve()));
    let key = state_dir(dir.path()).join("secret.key");
    std::fs::write(&key, [0x42u8; 32]).unwrap();
    let log = refused_start(&dir, Launch::serve());
    assert!(
        log.contains("is not the key this database was set up with"),
        "{log}"
    );
    assert!(log.contains("fingerprint"), "{log}");
}

#[test]
fn a_malformed_key_file_is_refused_with_the_formats() {
    let dir = TestDir::new();
    std::fs::create_dir_all(state_dir(dir.path())).unwrap();
    std::fs::write(state_dir(dir.path()).join("secret.key"), b"short\n").unwrap();
    let log = refused_start(&dir, Launch::serve());
    assert!(log.contains("secret.key"), "{log}");
    assert!(log.contains("6 bytes"), "{log}");
    assert!(log.contains("32 raw bytes"), "{log}");
    assert!(log.contains("64 hex digits"), "{log}");
}

#[test]
fn the_systemd_credential_is_the_key_raw_or_hex() {
    for (format, content) in [
        ("raw", vec![0x17u8; 32]),
        ("hex", format!("{}\n", "a5".repeat(32)).into_bytes()),
    ] {
        let dir = TestDir::new();
        let creds = dir.path().join("credentials");
        std::fs::create_dir(&creds).unwrap();
        std::fs::write(creds.join("rivetr.key"), &content).unwrap();
        let launch = || Launch::serve().env("CREDENTIALS_DIRECTORY", creds.to_str().unwrap());
        let rivetr = start(&dir, launch());
        assert!(
            rivetr.log().contains("credentials/rivetr.key"),
            "{format}: {}",
            rivetr.log()
        );
        assert!(
            !state_dir(dir.path()).join("secret.key").exists(),
            "{format}: a state key was made although the credential exists"
        );
        stop(rivetr);

        // Without the credential, the database set up with it refuses to start.
        let log = refused_start(&dir, Launch::serve());
        assert!(log.contains("no secret key found"), "{format}: {log}");
        // With it again, it starts.
        stop(start(&dir, launch()));
    }
}

#[test]
fn the_previews_env_is_sealed_shown_only_by_name_and_cleared_by_an_empty_object() {
    let dir = TestDir::new();
    let rivetr = start(&dir, Launch::serve());
    let api = Api {
        addr: rivetr.api(),
        token: initial_token(dir.path()),
    };
    let value = format!("preview-secret-{}", std::process::id());
    let body = serde_json::json!({
        "name": "web",
        "git_url": "https://git.example.com/web.git",
        "domains": ["web.example.com"],
        "previews": {"enabled": true, "env": {"PREVIEW_TOKEN": value}},
    });
    let r = api.post_json("/api/apps", &body.to_string());
    assert_eq!(r.status, 201, "{}", r.body);
    assert!(!r.body.contains(&value), "the value came back: {}", r.body);
    let shown = api.get("/api/apps/web").json();
    assert_eq!(shown["previews"]["enabled"], true);
    assert_eq!(
        shown["previews"]["env_keys"],
        serde_json::json!(["PREVIEW_TOKEN"])
    );
    let sealed: Vec<u8> = open_db(dir.path())
        .query_row("SELECT preview_env FROM apps WHERE name = 'web'", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(sealed[0], 1, "version byte");
    for file in ["rivetr.db", "rivetr.db-wal"] {
        if let Ok(bytes) = std::fs::read(state_dir(dir.path()).join(file)) {
            assert!(
                !contains(&bytes, value.as_bytes()),
                "the value is in {file}"
            );
        }
    }
    assert!(!rivetr.log().contains(&value), "the value is in the log");

    // Other preview settings change without touching the env; `{}` removes it.
    let r = api.patch_json("/api/apps/web", r#"{"previews": {"limit": 2}}"#);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["previews"]["limit"], 2);
    assert_eq!(
        r.json()["previews"]["env_keys"],
        serde_json::json!(["PREVIEW_TOKEN"])
    );
    let r = api.patch_json("/api/apps/web", r#"{"previews": {"env": {}}}"#);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["previews"]["env_keys"], serde_json::json!([]));
    let cleared: Option<Vec<u8>> = open_db(dir.path())
        .query_row("SELECT preview_env FROM apps WHERE name = 'web'", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(cleared, None);

    // Bad settings are refused naming the field.
    for (body, field) in [
        (
            r#"{"previews": {"domain_template": "pr.{domain}"}}"#,
            "previews.domain_template",
        ),
        (r#"{"previews": {"limit": 0}}"#, "previews.limit"),
        (
            r#"{"previews": {"env": {"1BAD": "x"}}}"#,
            "previews.env.1BAD",
        ),
        (r#"{"previews": {"color": "red"}}"#, "color"),
    ] {
        let r = api.patch_json("/api/apps/web", body);
        assert!(
            r.status == 422 || r.status == 400,
            "{body}: {} {}",
            r.status,
            r.body
        );
        assert!(r.body.contains(field), "{body}: {}", r.body);
    }
    stop(rivetr);
}
