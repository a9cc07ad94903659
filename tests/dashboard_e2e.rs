//! The dashboard end to end: Debian's Chromium, driven by playwright-core
//! (`frontend/e2e/run.mjs`), against the real `rivetr` binary on rootful Podman. Every
//! scenario of the dashboard issue runs in one browser session, because each builds on the
//! one before (an app, its deployments, a rollback to the first). The script's steps and the
//! folder of screenshots (desktop and phone width) are printed as it runs.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::platform::{GitRepo, Platform, podman_socket, unique_name};

/// Chromium, or `None` after saying loudly why the test is skipped (a failure under CI).
fn chromium() -> Option<PathBuf> {
    let path =
        PathBuf::from(std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".to_owned()));
    if path.exists() {
        return Some(path);
    }
    let msg = format!(
        "dashboard e2e: SKIPPED because {} does not exist (apt-get install chromium)",
        path.display()
    );
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{msg}; with CI=true a missing browser is a failure");
    }
    eprintln!("\n!!!!!!!! {msg} !!!!!!!!\n");
    None
}

fn screenshots() -> PathBuf {
    std::env::var_os("RIVETR_E2E_SHOTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard-e2e"))
}

#[test]
fn dashboard_end_to_end_in_chromium() {
    let Some(socket) = podman_socket("dashboard e2e") else {
        return;
    };
    let Some(browser) = chromium() else {
        return;
    };
    let platform = Platform::start(&socket, &[]);
    let repo = GitRepo::new("<h1>version one</h1>\n");
    let app = unique_name("dash");
    let shots = screenshots();
    let _ = std::fs::remove_dir_all(&shots);
    println!("dashboard e2e screenshots: {}", shots.display());
    let frontend = Path::new(env!("CARGO_MANIFEST_DIR")).join("frontend");
    let status = Command::new("node")
        .arg("e2e/run.mjs")
        .current_dir(&frontend)
        .env("RIVETR_URL", format!("http://{}", platform.rivetr.api()))
        .env("RIVETR_PROXY_PORT", platform.http().port().to_string())
        .env("RIVETR_TOKEN", &platform.token)
        .env("RIVETR_E2E_REPO", repo.path())
        .env("RIVETR_E2E_APP", &app)
        .env("RIVETR_E2E_SHOTS", &shots)
        .env("CHROMIUM", &browser)
        .status()
        .expect("run node e2e/run.mjs (Node.js is needed to build the dashboard anyway)");
    assert!(
        status.success(),
        "the dashboard e2e failed ({status}); screenshots in {}; rivetr's log:\n{}",
        shots.display(),
        platform.rivetr.log()
    );
}
