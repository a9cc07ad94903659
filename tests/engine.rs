//! The deployment engine end to end: real git repositories, real Podman, the real binary and
//! its proxy. Each test deploys a tiny busybox web app and checks what a user would see.

use crate::common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use common::platform::{DOCKERFILE, GitRepo, Platform, podman_socket, unique_name};
use common::wait_for;
use serde_json::json;

fn platform(case: &str) -> Option<Platform> {
    let socket = podman_socket(case)?;
    Some(Platform::start(&socket, &[]))
}

/// Deploys the repository's head and asserts it runs; returns the deployment.
fn deploy_ok(p: &Platform, app: &str) -> serde_json::Value {
    let id = p.deploy(app, None);
    let d = p.wait_done(id);
    assert_eq!(
        d["status"],
        "running",
        "deployment failed: {d}\n{}",
        p.logs(id)
    );
    d
}

#[test]
fn a_git_repo_deploys_and_serves_through_the_proxy() {
    let Some(p) = platform("deploy from git") else {
        return;
    };
    let repo = GitRepo::new("v1\n");
    let app = p.create_app(&unique_name("web"), repo.path(), json!({}));
    let d = deploy_ok(&p, &app);
    assert_eq!(d["commit_sha"], repo.head());
    assert_eq!(d["commit_subject"], "first version");
    for stage in [
        "cloning_at",
        "building_at",
        "starting_at",
        "health_checking_at",
        "switching_at",
        "running_at",
    ] {
        assert!(d[stage].is_string(), "no {stage}: {d}");
    }
    let (status, body) = p.through_proxy(&format!("{app}.test"), "/");
    assert_eq!((status, body.as_str()), (200, "v1\n"));
    let logs = p.logs(d["id"].as_i64().unwrap());
    assert!(logs.contains("[git]") || logs.contains("cloning"), "{logs}");
    assert!(
        logs.contains("[build]"),
        "build output is not in the log:\n{logs}"
    );
    assert!(logs.contains("[health]"), "{logs}");
    // Published on loopback only, and exactly one container.
    let containers = p.containers(&app);
    assert_eq!(containers.len(), 1, "{containers:?}");
}

#[test]
fn a_broken_dockerfile_or_a_failing_health_check_leaves_the_old_version_serving() {
    let Some(p) = platform("failures keep the old version") else {
        return;
    };
    let repo = GitRepo::new("v1\n");
    let app = p.create_app(&unique_name("keep"), repo.path(), json!({}));
    deploy_ok(&p, &app);
    let host = format!("{app}.test");

    repo.commit(
        &[(
            "Dockerfile",
            "FROM localhost/busybox:test\nRUN echo about to fail && false\n",
        )],
        "broken build",
    );
    let id = p.deploy(&app, None);
    let d = p.wait_done(id);
    assert_eq!(d["status"], "failed");
    let reason = d["reason"].as_str().unwrap();
    assert!(
        reason.contains("build failed") && reason.contains("step"),
        "{reason}"
    );
    assert!(p.logs(id).contains("about to fail"), "{}", p.logs(id));
    assert_eq!(p.through_proxy(&host, "/"), (200, "v1\n".to_owned()));

    // Builds fine, never answers its health check path.
    repo.commit(
        &[
            ("Dockerfile", DOCKERFILE),
            (
                "deploy.toml",
                "[deploy.healthcheck]\npath = \"/not-there\"\nretries = 3\ninterval_ms = 100\n",
            ),
        ],
        "unhealthy",
    );
    let id = p.deploy(&app, None);
    let d = p.wait_done(id);
    assert_eq!(d["status"], "failed");
    assert!(
        d["reason"]
            .as_str()
            .unwrap()
            .contains("health check failed"),
        "{d}"
    );
    assert!(p.logs(id).contains("attempt 3/3"), "{}", p.logs(id));
    assert_eq!(p.through_proxy(&host, "/"), (200, "v1\n".to_owned()));
    // The failed deployments left no container behind.
    wait_for("one container", Duration::from_secs(10), || {
        (p.containers(&app).len() == 1).then_some(())
    });

    // A container that exits during the check fails fast with its exit code.
    repo.commit(
        &[
            (
                "Dockerfile",
                "FROM localhost/busybox:test\nCMD [\"sh\", \"-c\", \"echo dying now; exit 7\"]\n",
            ),
            ("deploy.toml", ""),
        ],
        "exits",
    );
    let id = p.deploy(&app, None);
    let d = p.wait_done(id);
    assert_eq!(d["status"], "failed");
    let reason = d["reason"].as_str().unwrap();
    assert!(
        reason.contains("exit code 7") && reason.contains("dying now"),
        "{reason}"
    );
    assert_eq!(p.through_proxy(&host, "/"), (200, "v1\n".to_owned()));
}

#[test]
fn an_invalid_deploy_toml_fails_naming_the_key_and_the_old_version_serves() {
    let Some(p) = platform("invalid deploy.toml") else {
        return;
    };
    let repo = GitRepo::new("v1\n");
    let app = p.create_app(&unique_name("toml"), repo.path(), json!({}));
    deploy_ok(&p, &app);
    repo.commit(
        &[(
            "deploy.toml",
            "[deploy]\nport = 8080\n\n[build]\ndockerfil = \"Dockerfile\"\n",
        )],
        "typo",
    );
    let id = p.deploy(&app, None);
    let d = p.wait_done(id);
    assert_eq!(d["status"], "failed");
    let reason = d["reason"].as_str().unwrap();
    assert!(
        reason.contains("deploy.toml:5") && reason.contains("build.dockerfil"),
        "{reason}"
    );
    assert_eq!(
        p.through_proxy(&format!("{app}.test"), "/"),
        (200, "v1\n".to_owned())
    );
}

#[test]
fn three_quick_commits_end_with_only_the_newest_running() {
    let Some(p) = platform("quick succession") else {
        return;
    };
    let repo = GitRepo::new("v0\n");
    let app = p.create_app(&unique_name("quick"), repo.path(), json!({}));
    let mut ids = Vec::new();
    let mut shas = Vec::new();
    for v in 1..=3 {
        // A slow build, so the next request arrives while this one runs.
        let dockerfile = format!("{DOCKERFILE}RUN sleep 2 # v{v}\n");
        let sha = repo.commit(
            &[
                ("Dockerfile", &dockerfile),
                ("www/index.html", &format!("v{v}\n")),
            ],
            &format!("v{v}"),
        );
        ids.push(p.deploy(&app, Some(&sha)));
        shas.push(sha);
        std::thread::sleep(Duration::from_millis(300));
    }
    let last = p.wait_done(ids[2]);
    assert_eq!(last["status"], "running", "{}", p.logs(ids[2]));
    assert_eq!(last["commit_sha"], shas[2]);
    for id in &ids[..2] {
        let d = p.wait_done(*id);
        let status = d["status"].as_str().unwrap();
        assert!(
            status == "superseded" || status == "cancelled",
            "deployment {id} ended {status}"
        );
    }
    assert_eq!(
        p.through_proxy(&format!("{app}.test"), "/"),
        (200, "v3\n".to_owned())
    );
    wait_for("no leftover containers", Duration::from_secs(15), || {
        let c = p.containers(&app);
        (c.len() == 1 && c[0].0.contains(&format!("-{}-", ids[2]))).then_some(())
    });
}

#[test]
fn a_redeploy_under_load_fails_no_request_and_rollback_serves_the_old_version() {
    let Some(p) = platform("zero downtime") else {
        return;
    };
    let repo = GitRepo::new("v1\n");
    let app = p.create_app(&unique_name("zero"), repo.path(), json!({}));
    let v1 = deploy_ok(&p, &app);
    let host = format!("{app}.test");
    repo.commit(&[("www/index.html", "v2\n")], "second version");

    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed, saw_v1, saw_v2) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
    );
    let proxy = p.http();
    let clients: Vec<_> = (0..20)
        .map(|_| {
            let (stop, ok, failed, saw_v1, saw_v2, host) = (
                stop.clone(),
                ok.clone(),
                failed.clone(),
                saw_v1.clone(),
                saw_v2.clone(),
                host.clone(),
            );
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match common::http_get(proxy, "/", &host) {
                        Ok((200, body)) if body == "v1\n" => {
                            saw_v1.fetch_add(1, Ordering::Relaxed);
                            ok.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok((200, body)) if body == "v2\n" => {
                            saw_v2.fetch_add(1, Ordering::Relaxed);
                            ok.fetch_add(1, Ordering::Relaxed);
                        }
                        other => {
                            eprintln!("failed request: {other:?}");
                            failed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let id = p.deploy(&app, None);
    let d = p.wait_done(id);
    assert_eq!(d["status"], "running", "{}", p.logs(id));
    // Through the drain and the old container's removal.
    std::thread::sleep(Duration::from_secs(4));
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().unwrap();
    }
    let (ok, failed) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    println!(
        "zero downtime: {ok} ok, {failed} failed; v1 {} v2 {}",
        saw_v1.load(Ordering::Relaxed),
        saw_v2.load(Ordering::Relaxed)
    );
    assert_eq!(failed, 0, "requests failed during the redeploy");
    assert!(saw_v1.load(Ordering::Relaxed) > 0 && saw_v2.load(Ordering::Relaxed) > 0);
    assert_eq!(p.through_proxy(&host, "/"), (200, "v2\n".to_owned()));
    assert_eq!(
        p.deployment(v1["id"].as_i64().unwrap())["status"],
        "replaced"
    );

    // Rollback to v1: no clone, no build.
    let (status, rb) = p.api(
        "POST",
        &format!("/api/apps/{app}/rollback"),
        Some(json!({ "deployment_id": v1["id"] })),
    );
    assert_eq!(status, 202, "{rb}");
    let rb = p.wait_done(rb["id"].as_i64().unwrap());
    assert_eq!(
        rb["status"],
        "running",
        "{}",
        p.logs(rb["id"].as_i64().unwrap())
    );
    assert_eq!(rb["rollback_of"], v1["id"]);
    assert!(
        rb["cloning_at"].is_null() && rb["building_at"].is_null(),
        "{rb}"
    );
    assert_eq!(p.through_proxy(&host, "/"), (200, "v1\n".to_owned()));
}

#[test]
fn kill_9_during_the_build_and_during_the_health_check_leaves_one_container_serving_the_old_version()
 {
    let Some(mut p) = platform("kill -9") else {
        return;
    };
    let repo = GitRepo::new("v1\n");
    let app = p.create_app(&unique_name("crash"), repo.path(), json!({}));
    deploy_ok(&p, &app);
    let host = format!("{app}.test");
    let old = p.containers(&app);
    assert_eq!(old.len(), 1);

    for (stage, files) in [
        ("building", vec![("Dockerfile", format!("{DOCKERFILE}RUN sleep 20\n"))]),
        (
            "health_checking",
            vec![
                ("Dockerfile", "FROM localhost/busybox:test\nCOPY www /www\nCMD [\"sh\", \"-c\", \"sleep 30; httpd -f -p 8080 -h /www\"]\n".to_owned()),
                ("www/index.html", "v2\n".to_owned()),
            ],
        ),
    ] {
        let files: Vec<(&str, &str)> = files.iter().map(|(a, b)| (*a, b.as_str())).collect();
        repo.commit(&files, stage);
        let id = p.deploy(&app, None);
        p.wait_status(id, stage);
        std::thread::sleep(Duration::from_millis(500));
        p.kill9();
        // The app container never stopped.
        assert!(p.containers(&app).contains(&old[0]), "the serving container went away: {:?}", p.containers(&app));
        p.restart();
        let d = p.deployment(id);
        assert_eq!(d["status"], "failed");
        assert_eq!(d["reason"], "interrupted by restart");
        assert_eq!(p.through_proxy(&host, "/"), (200, "v1\n".to_owned()));
        // The interrupted deployment's container goes in the background, after serving.
        wait_for("only the old container to remain", Duration::from_secs(60), || {
            (p.containers(&app) == old).then_some(())
        });
        assert_eq!(p.through_proxy(&host, "/"), (200, "v1\n".to_owned()));
    }
}

#[test]
fn secret_environment_variables_reach_the_container_and_nothing_else() {
    let Some(p) = platform("secret env") else {
        return;
    };
    let repo = GitRepo::new("unused\n");
    repo.commit(
        &[(
            "Dockerfile",
            "FROM localhost/busybox:test\nCMD [\"sh\", \"-c\", \"mkdir -p /www && echo \\\"$GREETING $API_KEY\\\" > /www/index.html && exec httpd -f -p 8080 -h /www\"]\n",
        )],
        "prints its environment",
    );
    let app = p.create_app(&unique_name("env"), repo.path(), json!({}));
    let secret = "sk-live-4f9a1c2e7b3d8e6f";
    let (status, v) = p.api(
        "PUT",
        &format!("/api/apps/{app}/env/API_KEY"),
        Some(json!({ "value": secret, "secret": true })),
    );
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["value"], "********");
    let (status, _) = p.api(
        "PUT",
        &format!("/api/apps/{app}/env/GREETING"),
        Some(json!({ "value": "hello", "secret": false })),
    );
    assert_eq!(status, 200);
    let (_, list) = p.api("GET", &format!("/api/apps/{app}/env"), None);
    assert!(!list.to_string().contains(secret), "{list}");
    let d = deploy_ok(&p, &app);
    assert_eq!(
        p.through_proxy(&format!("{app}.test"), "/"),
        (200, format!("hello {secret}\n"))
    );

    assert!(!p.logs(d["id"].as_i64().unwrap()).contains(secret));
    assert!(
        !p.rivetr.log().contains(secret),
        "the secret is in Rivetr's log"
    );
    for file in ["rivetr.db", "rivetr.db-wal"] {
        let bytes = std::fs::read(p.dir.path().join("data").join(file)).unwrap_or_default();
        assert!(
            !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "the secret is in {file}"
        );
    }
}

#[test]
fn a_restart_of_another_installation_on_the_same_engine_leaves_our_containers_alone() {
    let Some(ours) = platform("two installations") else {
        return;
    };
    let repo = GitRepo::new("ours\n");
    let app = ours.create_app(&unique_name("mine"), repo.path(), json!({}));
    deploy_ok(&ours, &app);
    let before = ours.containers(&app);
    assert_eq!(before.len(), 1, "{before:?}");

    // Another Rivetr on the same Podman reconciles at start and again after a crash: it
    // must only clean up what it created itself.
    let mut theirs = platform("two installations").expect("the engine answered a moment ago");
    theirs.kill9();
    theirs.restart();
    assert_eq!(ours.containers(&app), before, "our container was touched");
    assert_eq!(
        ours.through_proxy(&format!("{app}.test"), "/"),
        (200, "ours\n".to_owned())
    );
}

#[test]
fn an_image_app_runs_without_a_build_with_replicas_sharing_traffic_and_limits_applied() {
    let Some(p) = platform("image app") else {
        return;
    };
    // An image made outside Rivetr, as a registry would hold it; each container serves its
    // own hostname, so the replicas can be told apart.
    let image = format!("localhost/{}:1", unique_name("prebuilt"));
    let context = tempfile::tempdir().unwrap();
    std::fs::write(
        context.path().join("Dockerfile"),
        "FROM localhost/busybox:test\nCMD [\"sh\", \"-c\", \"mkdir -p /www && hostname > /www/index.html && exec httpd -f -p 8080 -h /www\"]\n",
    )
    .unwrap();
    let build = || {
        std::process::Command::new("podman")
            .args(["--remote", "--url", &p.socket, "build", "-q", "-t", &image])
            .arg(context.path())
            .output()
            .unwrap()
    };
    // Podman 4.3's build cache lookup fails with "layer not known" when another process
    // removes an image during the lookup (seen with the test binaries run side by side on
    // one engine); this image is the test's input, so its build is tried again.
    let mut built = build();
    for _ in 0..2 {
        if built.status.success()
            || !String::from_utf8_lossy(&built.stderr).contains("layer not known")
        {
            break;
        }
        built = build();
    }
    assert!(
        built.status.success(),
        "{}",
        String::from_utf8_lossy(&built.stderr)
    );

    let app = unique_name("img");
    let (status, created) = p.api(
        "POST",
        "/api/apps",
        Some(json!({
            "name": app,
            "image": image,
            "port": 8080,
            "domains": [format!("{app}.test")],
            "replicas": 2,
            "resources": {"memory": "64M", "cpus": 0.5},
        })),
    );
    assert_eq!(status, 201, "{created}");
    let d = deploy_ok(&p, &app);
    assert!(d["building_at"].is_null(), "an image app was built: {d}");
    assert!(
        !p.logs(d["id"].as_i64().unwrap()).contains("[build]"),
        "{}",
        p.logs(d["id"].as_i64().unwrap())
    );

    let containers = p.containers(&app);
    assert_eq!(containers.len(), 2, "{containers:?}");
    let mut bodies = std::collections::BTreeSet::new();
    for _ in 0..10 {
        let (status, body) = p.through_proxy(&format!("{app}.test"), "/");
        assert_eq!(status, 200, "{body}");
        bodies.insert(body);
    }
    assert_eq!(
        bodies.len(),
        2,
        "the replicas do not share the traffic: {bodies:?}"
    );

    for (name, _) in containers {
        let out = std::process::Command::new("podman")
            .args(["--remote", "--url", &p.socket, "inspect", &name])
            .args([
                "--format",
                "{{.HostConfig.Memory}} {{.HostConfig.NanoCpus}}",
            ])
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            format!("{} {}", 64 * 1024 * 1024, 500_000_000),
            "limits of {name}"
        );
    }
    let _ = std::process::Command::new("podman")
        .args(["--remote", "--url", &p.socket, "rmi", "-f", &image])
        .output();
}

#[test]
fn an_engine_that_appears_after_startup_is_found_and_deploys_work() {
    let Some(socket) = podman_socket("late engine") else {
        return;
    };
    // The configured socket does not exist yet, as when systemd starts Rivetr before the
    // rivetr user's podman.socket; a symlink to the test engine makes it appear later.
    let late = tempfile::tempdir().unwrap();
    let link = late.path().join("podman.sock");
    let p = Platform::start(&format!("unix://{}", link.display()), &[]);
    let (_, health) = p.api("GET", "/api/health", None);
    assert_eq!(health["runtime"]["status"], "unavailable", "{health}");
    let repo = GitRepo::new("late\n");
    let app = p.create_app(&unique_name("late"), repo.path(), json!({}));
    let (status, refused) = p.api(
        "POST",
        &format!("/api/apps/{app}/deployments"),
        Some(json!({})),
    );
    assert_eq!(status, 503, "{refused}");

    let target = socket.strip_prefix("unix://").unwrap_or(&socket);
    std::os::unix::fs::symlink(target, &link).unwrap();
    wait_for("the engine to be found", Duration::from_secs(60), || {
        let (_, health) = p.api("GET", "/api/health", None);
        (health["runtime"]["status"] == "ok").then_some(())
    });
    let (_, health) = p.api("GET", "/api/health", None);
    assert_eq!(health["runtime"]["engine"], "podman", "{health}");
    deploy_ok(&p, &app);
    assert_eq!(
        p.through_proxy(&format!("{app}.test"), "/"),
        (200, "late\n".to_owned())
    );
}

/// `podman` against the platform's engine; panics when it fails.
fn podman(p: &Platform, args: &[&str]) -> String {
    let out = std::process::Command::new("podman")
        .args(["--remote", "--url", &p.socket])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "podman {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn rollback(p: &Platform, app: &str, to: &serde_json::Value) -> serde_json::Value {
    let (status, rb) = p.api(
        "POST",
        &format!("/api/apps/{app}/rollback"),
        Some(json!({ "deployment_id": to })),
    );
    assert_eq!(status, 202, "{rb}");
    p.wait_done(rb["id"].as_i64().unwrap())
}

#[test]
fn names_from_before_scoping_keep_working_and_a_missing_built_image_fails_without_a_pull() {
    let Some(mut p) = platform("names before scoping") else {
        return;
    };
    let repo = GitRepo::new("v1\n");
    let app = p.create_app(&unique_name("legacy"), repo.path(), json!({}));
    let host = format!("{app}.test");
    let v1 = deploy_ok(&p, &app);
    repo.commit(&[("www/index.html", "v2\n")], "v2");
    let v2 = deploy_ok(&p, &app);
    repo.commit(&[("www/index.html", "v3\n")], "v3");
    deploy_ok(&p, &app);
    wait_for("only v3's container", Duration::from_secs(15), || {
        (p.containers(&app).len() == 1).then_some(())
    });

    // v1's image went missing behind Rivetr's back: the rollback fails saying so, and no
    // engine is asked to pull it (there is no registry here; a pull would fail otherwise).
    let v1_image = v1["image"].as_str().unwrap();
    podman(&p, &["rmi", "-f", v1_image]);
    let rb = rollback(&p, &app, &v1["id"]);
    assert_eq!(rb["status"], "failed", "{rb}");
    let reason = rb["reason"].as_str().unwrap();
    assert!(
        reason.contains(v1_image) && reason.contains("never pulls"),
        "{reason}"
    );
    assert_eq!(p.through_proxy(&host, "/"), (200, "v3\n".to_owned()));

    // v2 as a Rivetr before scoping recorded it, `rivetr/<app>:<id>`, which Podman's build
    // stored as `docker.io/rivetr/<app>:<id>`.
    let v2_image = v2["image"].as_str().unwrap();
    let legacy = format!("rivetr/{app}:{}", v2["id"]);
    podman(&p, &["tag", v2_image, &format!("docker.io/{legacy}")]);
    podman(&p, &["untag", v2_image, v2_image]);
    let db = rusqlite::Connection::open(p.dir.path().join("data/rivetr.db")).unwrap();
    db.busy_timeout(Duration::from_secs(10)).unwrap();
    db.execute(
        "UPDATE deployments SET image = ?1 WHERE id = ?2",
        rusqlite::params![legacy, v2["id"].as_i64().unwrap()],
    )
    .unwrap();
    let rb = rollback(&p, &app, &v2["id"]);
    assert_eq!(
        rb["status"],
        "running",
        "{}",
        p.logs(rb["id"].as_i64().unwrap())
    );
    assert_eq!(rb["image"], legacy.as_str());
    assert_eq!(p.through_proxy(&host, "/"), (200, "v2\n".to_owned()));

    // A container named as before scoping is found again after a restart, not duplicated.
    wait_for("one container", Duration::from_secs(15), || {
        (p.containers(&app).len() == 1).then_some(())
    });
    let (current, _) = p.containers(&app).remove(0);
    let old_name = format!("rivetr-{app}-{}-0", rb["id"]);
    p.kill9();
    podman(&p, &["rename", &current, &old_name]);
    p.restart();
    assert_eq!(p.containers(&app), vec![(old_name, "running".to_owned())]);
    assert_eq!(p.through_proxy(&host, "/"), (200, "v2\n".to_owned()));

    // Deleting the app removes the image under its old name too.
    let (status, body) = p.api("DELETE", &format!("/api/apps/{app}"), None);
    assert_eq!(status, 204, "{body}");
    let gone = std::process::Command::new("podman")
        .args(["--remote", "--url", &p.socket, "image", "exists", &legacy])
        .status()
        .unwrap();
    assert!(!gone.success(), "{legacy} outlived its app");
}
