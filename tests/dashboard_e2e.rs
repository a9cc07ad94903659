//! The dashboard end to end: Debian's Chromium, driven by playwright-core, against the real
//! `rivetr` binary on rootful Podman. `frontend/e2e/run.mjs` runs every scenario of the
//! dashboard issue in one browser session, because each builds on the one before (an app,
//! its deployments, previews of pull requests turned on through the settings form and a PR
//! delivered to its webhook, signed with its secret, a rollback to the first);
//! `frontend/e2e/databases.mjs` does the same for
//! managed databases (issue 13): create, link, back up, schedule, restore, delete;
//! `frontend/e2e/notifications.mjs` for the notifications page: channels (a signed webhook to
//! a real receiver, Slack), test messages, deliveries, disabling and deleting. The scripts'
//! steps and the folders of screenshots (desktop and phone width, dark) are printed as they
//! run.

use crate::common;

use std::ffi::OsStr;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::sync::Mutex;

use common::api::{Api, initial_token, sign};
use common::platform::{GitRepo, Platform, podman_socket, unique_name};
use common::sink::Sink;
use common::{Launch, TestDir, free_port};
use serde_json::{Value, json};

/// The folder for one script's screenshots, emptied first.
fn screenshots(script: &str) -> PathBuf {
    let shots = std::env::var_os("RIVETR_E2E_SHOTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard-e2e"))
        .join(script);
    let _ = std::fs::remove_dir_all(&shots);
    println!("dashboard e2e screenshots ({script}): {}", shots.display());
    shots
}

/// One browser at a time: run.mjs times how the page keeps up with a long log, which a
/// second Chromium and Rivetr on the same (small) machine would disturb.
static ONE_BROWSER: Mutex<()> = Mutex::new(());

/// Runs `frontend/e2e/<script>.mjs` against the Rivetr whose API listens at `api`, signed in
/// with `token`; the environment every script reads is set here, `env` adds the script's own.
fn run_script(
    script: &str,
    api: SocketAddr,
    token: &str,
    browser: &Path,
    env: &[(&str, &OsStr)],
) -> (ExitStatus, PathBuf) {
    let _one = ONE_BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    let shots = screenshots(script);
    let frontend = Path::new(env!("CARGO_MANIFEST_DIR")).join("frontend");
    let status = Command::new("node")
        .arg(format!("e2e/{script}.mjs"))
        .current_dir(&frontend)
        .env("RIVETR_URL", format!("http://{api}"))
        .env("RIVETR_TOKEN", token)
        .env("RIVETR_E2E_SHOTS", &shots)
        .env("CHROMIUM", browser)
        .envs(env.iter().copied())
        .status()
        .expect("run node (Node.js is needed to build the dashboard anyway)");
    (status, shots)
}

#[test]
fn dashboard_end_to_end_in_chromium() {
    let Some(socket) = podman_socket("dashboard e2e") else {
        return;
    };
    let Some(browser) = common::chromium("dashboard e2e") else {
        return;
    };
    let platform = Platform::start(&socket, &[]);
    let repo = GitRepo::new("<h1>version one</h1>\n");
    // A build step that prints, waits and prints again: the first deployment lasts long
    // enough for the page to show its log growing line by line however fast the machine is
    // (a 4-step cached-base build once ended between two of the page's samples). Later builds
    // take it from the cache.
    repo.commit(
        &[(
            "Dockerfile",
            &common::platform::DOCKERFILE.replacen(
                "COPY www /www\n",
                "RUN echo build step one && sleep 1 && echo build step two && sleep 1 && echo build step three\nCOPY www /www\n",
                1,
            ),
        )],
        "a build that takes a moment",
    );
    let app = unique_name("dash");
    let proxy_port = platform.http().port().to_string();
    let (status, shots) = run_script(
        "run",
        platform.rivetr.api(),
        &platform.token,
        &browser,
        &[
            ("RIVETR_PROXY_PORT", proxy_port.as_ref()),
            ("RIVETR_E2E_REPO", repo.path().as_os_str()),
            ("RIVETR_E2E_APP", app.as_ref()),
        ],
    );
    assert!(
        status.success(),
        "the dashboard e2e failed ({status}); screenshots in {}; rivetr's log:\n{}",
        shots.display(),
        platform.rivetr.log()
    );
}

/// Managed databases in the dashboard (issue 13): a PostgreSQL 15 database created through
/// the form, linked from an app's page, backed up now and by a schedule, downloaded,
/// restored into itself and into a new database, and deleted through the dialog. The test
/// images come from `scripts/test-env/db-images.sh`.
#[test]
fn databases_in_the_dashboard_in_chromium() {
    let Some(socket) = podman_socket("dashboard databases e2e") else {
        return;
    };
    let Some(browser) = common::chromium("dashboard e2e") else {
        return;
    };
    let platform = Platform::start(
        &socket,
        &[(
            "RIVETR_DATABASES_POSTGRES_IMAGE",
            "localhost/rivetr-test-postgres:{version}",
        )],
    );
    let repo = GitRepo::new("<h1>linked</h1>\n");
    let app = platform.create_app(&unique_name("dblink"), repo.path(), json!({}));
    let (status, shots) = run_script(
        "databases",
        platform.rivetr.api(),
        &platform.token,
        &browser,
        &[("RIVETR_E2E_APP", app.as_ref())],
    );
    // What the script left (on a failure: anything) goes, volumes too: the engine is shared.
    let (_, links) = platform.api("GET", &format!("/api/apps/{app}/links"), None);
    for link in links.as_array().into_iter().flatten() {
        let db = link["database"].as_str().unwrap_or_default();
        platform.api("DELETE", &format!("/api/apps/{app}/links/{db}"), None);
    }
    let (_, databases) = platform.api("GET", "/api/databases", None);
    for db in databases.as_array().into_iter().flatten() {
        let name = db["name"].as_str().unwrap_or_default();
        platform.api(
            "DELETE",
            &format!("/api/databases/{name}?volumes=true"),
            None,
        );
    }
    assert!(
        status.success(),
        "the databases e2e failed ({status}); screenshots in {}; rivetr's log:\n{}",
        shots.display(),
        platform.rivetr.log()
    );
}

/// The notifications page: a signed webhook channel added through the form (its generated
/// signing secret seen once), a test message that a real HTTP receiver gets, signed with that
/// secret, and sees `sent` in the deliveries table; a Slack channel refused for a bad URL (the
/// 422 next to the field), then added with a URL nothing listens at, its test failing in the
/// network's words; the deliveries filtered; the Slack channel disabled and deleted. No
/// container engine is needed: Rivetr is pointed at a socket that does not exist.
#[test]
fn notifications_in_the_dashboard_in_chromium() {
    let Some(browser) = common::chromium("dashboard e2e") else {
        return;
    };
    let dir = TestDir::new();
    let mut rivetr = Launch::serve()
        .env(
            "RIVETR_RUNTIME_SOCKET",
            "unix:///nonexistent/rivetr-no-engine.sock",
        )
        .start(&dir);
    rivetr.wait_healthy();
    let api = Api {
        addr: rivetr.api(),
        token: initial_token(dir.path()),
    };
    let sink = Sink::start(&[]);
    let hook_url = sink.url("/hook");
    let dead_url = format!("http://127.0.0.1:{}/services/T000/B000/XXXX", free_port());
    let secret_file = dir.path().join("signing-secret");
    let (status, shots) = run_script(
        "notifications",
        api.addr,
        &api.token,
        &browser,
        &[
            ("RIVETR_E2E_HOOK_URL", hook_url.as_ref()),
            ("RIVETR_E2E_DEAD_URL", dead_url.as_ref()),
            ("RIVETR_E2E_SECRET_FILE", secret_file.as_os_str()),
        ],
    );
    assert!(
        status.success(),
        "the notifications e2e failed ({status}); screenshots in {}; rivetr's log:\n{}",
        shots.display(),
        rivetr.log()
    );

    // The receiver got the one test message, signed with the secret the page showed once.
    let received = sink.received();
    assert_eq!(
        received.len(),
        1,
        "the receiver got: {:#?}",
        received
            .iter()
            .map(|r| (&r.path, String::from_utf8_lossy(&r.body)))
            .collect::<Vec<_>>()
    );
    let hook = &received[0];
    assert_eq!(
        (hook.method.as_str(), hook.path.as_str()),
        ("POST", "/hook")
    );
    assert_eq!(hook.json()["event"], "test", "{}", hook.json());
    let secret = std::fs::read_to_string(&secret_file).expect("the script saved the secret");
    assert_eq!(
        hook.header("x-rivetr-signature-256"),
        Some(format!("sha256={}", sign(secret.trim(), &hook.body)).as_str()),
        "the signature is not HMAC-SHA256 of the body under the secret the page showed"
    );

    // What the page did is what the API holds: one channel left, enabled, with its events.
    let channels: Value = api.get("/api/notifications").json();
    let names: Vec<&str> = channels
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["ops-hook"], "{channels}");
    assert_eq!(channels[0]["enabled"], true);
    assert_eq!(
        channels[0]["events"],
        json!(["deployment.failed", "backup.failed"])
    );
    assert!(
        !rivetr.log().contains(secret.trim()),
        "the signing secret is in Rivetr's log"
    );
}
