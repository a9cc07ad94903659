//! Regression tests: one per defect fixed, named after the issue and what it guards
//! (`issue_11_...`), each failing before its fix. The model is ripgrep's
//! `tests/regression.rs`. Tests that need a container engine use the same harness as the
//! other integration tests (`scripts/test-env/engines.sh` exports the sockets).

mod common;

mod issue_11_git {
    //! Issue 11, defects 6 and 11: how Rivetr runs git.

    use std::path::{Path, PathBuf};
    use std::process::Command;

    use serde_json::{Value, json};

    use super::common::api::{fixture, request, sign, state_dir};
    use super::common::platform::{DOCKERFILE, GitRepo, Platform, podman_socket, unique_name};
    use super::common::{Launch, TestDir};

    fn git(dir: &Path, args: &[&str]) -> String {
        let out = Command::new("git")
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    fn commit(dir: &Path, files: &[(&str, &str)], message: &str) -> String {
        for (path, text) in files {
            let full = dir.join(path);
            std::fs::create_dir_all(full.parent().unwrap()).unwrap();
            std::fs::write(full, text).unwrap();
        }
        git(dir, &["add", "-A"]);
        git(dir, &["commit", "--quiet", "-m", message]);
        git(dir, &["rev-parse", "HEAD"])
    }

    /// Defect 6: a push from a SHA-256 repository names its commit with 64 hex digits; the
    /// webhook took it, but the clone treated it as a branch name and failed.
    #[test]
    fn issue_11_a_push_of_a_sha256_commit_deploys_that_commit() {
        let Some(socket) = podman_socket("issue 11: sha256 commits") else {
            return;
        };
        let repo = tempfile::Builder::new()
            .prefix("rivetr-sha256-")
            .tempdir()
            .unwrap();
        git(
            repo.path(),
            &[
                "init",
                "--quiet",
                "--object-format=sha256",
                "--initial-branch=main",
            ],
        );
        git(repo.path(), &["config", "user.email", "test@rivetr.test"]);
        git(repo.path(), &["config", "user.name", "Rivetr Test"]);
        let pushed = commit(
            repo.path(),
            &[
                ("Dockerfile", DOCKERFILE),
                ("www/index.html", "sha256 v1\n"),
            ],
            "v1",
        );
        assert_eq!(pushed.len(), 64, "{pushed}");
        commit(repo.path(), &[("www/index.html", "later\n")], "not pushed");

        let p = Platform::start(&socket, &[]);
        let name = unique_name("sha256");
        let (status, created) = p.api(
            "POST",
            "/api/apps",
            Some(json!({
                "name": name,
                "git_url": format!("file://{}", repo.path().display()),
                "domains": [format!("{name}.test")],
                "healthcheck": { "interval_ms": 200 },
            })),
        );
        assert_eq!(status, 201, "{created}");
        let secret = created["webhook_secret"].as_str().unwrap();
        let mut payload: Value = serde_json::from_slice(&fixture("github/push.json")).unwrap();
        payload["ref"] = json!("refs/heads/main");
        payload["after"] = json!(pushed);
        let body = serde_json::to_vec(&payload).unwrap();
        let signature = format!("sha256={}", sign(secret, &body));
        let r = request(
            p.rivetr.api(),
            "POST",
            &format!("/webhooks/github/{name}"),
            &[
                ("X-GitHub-Event", "push"),
                ("X-GitHub-Delivery", "sha256-1"),
                ("X-Hub-Signature-256", &signature),
                ("Content-Type", "application/json"),
            ],
            &body,
        );
        assert_eq!(r.status, 202, "{}", r.body);
        let id = r.json()["deployment_id"].as_i64().unwrap();
        let d = p.wait_done(id);
        assert_eq!(d["status"], "running", "{}", p.logs(id));
        assert_eq!(d["commit_sha"], pushed.as_str());
        assert_eq!(
            p.through_proxy(&format!("{name}.test"), "/"),
            (200, "sha256 v1\n".to_owned())
        );
    }

    /// Defect 11: `ext::` runs any command, `<helper>::` and unknown `<scheme>://` run
    /// `git-remote-<helper>`, and `http://` sends the repository in clear. The API took some
    /// of these (`ext::sh@x:y` looked like `user@host:path`); now each is a 422 naming the
    /// field, and nothing is stored.
    #[test]
    fn issue_11_ext_and_remote_helper_urls_are_refused_with_422() {
        let dir = TestDir::new();
        let mut rivetr = Launch::serve()
            .env(
                "RIVETR_RUNTIME_SOCKET",
                "unix:///nonexistent/rivetr-no-engine.sock",
            )
            .start(&dir);
        rivetr.wait_healthy();
        let api = super::common::api::Api {
            addr: rivetr.api(),
            token: super::common::api::initial_token(dir.path()),
        };
        let good = GitRepo::new("x\n");
        let r = api.post_json(
            "/api/apps",
            &json!({"name": "kept", "git_url": good.path()}).to_string(),
        );
        assert_eq!(r.status, 201, "{}", r.body);
        for (i, url) in [
            "ext::sh@x:y",
            "ext::touch@host:/tmp/pwned",
            "fd::7@host:repo",
            "testgit::me@host:repo",
            "persistent-https://host/repo.git",
            "http://git.example.com/app.git",
        ]
        .into_iter()
        .enumerate()
        {
            let name = format!("helper-{i}");
            let r = api.post_json(
                "/api/apps",
                &json!({"name": name, "git_url": url}).to_string(),
            );
            assert_eq!(r.status, 422, "{url}: {}", r.body);
            assert_eq!(r.code(), "invalid_value", "{url}");
            assert!(r.message().contains("git_url"), "{url}: {}", r.body);
            assert_eq!(api.get(&format!("/api/apps/{name}")).status, 404, "{url}");
            let r = request(
                api.addr,
                "PATCH",
                "/api/apps/kept",
                &[
                    ("Authorization", &api.auth()),
                    ("Content-Type", "application/json"),
                ],
                json!({ "git_url": url }).to_string().as_bytes(),
            );
            assert_eq!(r.status, 422, "PATCH {url}: {}", r.body);
        }
        let kept = api.get("/api/apps/kept").json();
        assert_eq!(kept["git_url"], good.path().display().to_string());
    }

    /// A `git` first on Rivetr's PATH that records its environment, then runs the real git.
    fn git_probe(dir: &Path) -> PathBuf {
        let real = String::from_utf8(
            Command::new("sh")
                .args(["-c", "command -v git"])
                .output()
                .unwrap()
                .stdout,
        )
        .unwrap();
        let bin = dir.join("probe-bin");
        std::fs::create_dir_all(&bin).unwrap();
        let records = dir.join("probe-records");
        std::fs::create_dir_all(&records).unwrap();
        let script = bin.join("git");
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\nenv > '{}/env.'$$\nexec '{}' \"$@\"\n",
                records.display(),
                real.trim()
            ),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        bin
    }

    /// Defect 11: git ran with Rivetr's whole environment (HOME included) and git's defaults:
    /// every transport git knows was allowed, and `GIT_PROTOCOL_FROM_USER` was not set. Now
    /// only https, ssh, git and file are, from the user or not, with no system config.
    #[test]
    fn issue_11_git_runs_with_only_the_supported_protocols_allowed() {
        let Some(socket) = podman_socket("issue 11: git's protocols") else {
            return;
        };
        let probe = TestDir::new();
        let bin = git_probe(probe.path());
        let path = format!(
            "{}:{}",
            bin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let p = Platform::start(&socket, &[("PATH", path.as_str())]);
        let repo = GitRepo::new("protocols\n");
        let name = p.create_app(&unique_name("protocols"), repo.path(), json!({}));
        let id = p.deploy(&name, None);
        let d = p.wait_done(id);
        assert_eq!(d["status"], "running", "{}", p.logs(id));

        let records: Vec<String> = std::fs::read_dir(probe.path().join("probe-records"))
            .unwrap()
            .flatten()
            .map(|e| std::fs::read_to_string(e.path()).unwrap())
            .collect();
        assert!(!records.is_empty(), "Rivetr never ran git from its PATH");
        let home = state_dir(p.dir.path()).join("work");
        for env in &records {
            let var = |k: &str| {
                env.lines()
                    .find_map(|l| l.strip_prefix(&format!("{k}=")))
                    .map(str::to_owned)
            };
            assert_eq!(var("GIT_PROTOCOL_FROM_USER").as_deref(), Some("0"), "{env}");
            assert_eq!(
                var("GIT_ALLOW_PROTOCOL").as_deref(),
                Some("https:ssh:git:file"),
                "{env}"
            );
            assert_eq!(var("GIT_CONFIG_NOSYSTEM").as_deref(), Some("1"), "{env}");
            let git_home = var("HOME").unwrap_or_default();
            assert!(
                git_home.starts_with(&home.display().to_string()),
                "git's HOME is {git_home}, not a private directory under {}",
                home.display()
            );
        }
    }

    /// Defect 11: git read the system config and the global one of the user Rivetr runs as,
    /// so a `core.hooksPath` there (or any other setting) ran programs during every clone.
    #[test]
    fn issue_11_git_reads_no_system_or_global_config_and_runs_no_hooks() {
        let Some(socket) = podman_socket("issue 11: git's config") else {
            return;
        };
        let host = TestDir::new();
        let marker = |which: &str| host.path().join(format!("hook-ran-from-{which}-config"));
        for which in ["global", "system"] {
            let hooks = host.path().join(format!("{which}-hooks"));
            std::fs::create_dir_all(&hooks).unwrap();
            let hook = hooks.join("post-checkout");
            std::fs::write(
                &hook,
                format!("#!/bin/sh\ntouch '{}'\n", marker(which).display()),
            )
            .unwrap();
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
            let file = if which == "global" {
                host.path().join(".gitconfig")
            } else {
                host.path().join("system-gitconfig")
            };
            std::fs::write(file, format!("[core]\n\thooksPath = {}\n", hooks.display())).unwrap();
        }
        let home = host.path().display().to_string();
        let system = host.path().join("system-gitconfig").display().to_string();
        let p = Platform::start(
            &socket,
            &[
                ("HOME", home.as_str()),
                ("GIT_CONFIG_SYSTEM", system.as_str()),
            ],
        );
        let repo = GitRepo::new("no hooks\n");
        let name = p.create_app(&unique_name("hooks"), repo.path(), json!({}));
        let branch = p.deploy(&name, None);
        assert_eq!(
            p.wait_done(branch)["status"],
            "running",
            "{}",
            p.logs(branch)
        );
        let commit = p.deploy(&name, Some(&repo.head()));
        assert_eq!(
            p.wait_done(commit)["status"],
            "running",
            "{}",
            p.logs(commit)
        );
        for which in ["global", "system"] {
            assert!(
                !marker(which).exists(),
                "a hook from the {which} config ran during the clone"
            );
        }
    }
}
