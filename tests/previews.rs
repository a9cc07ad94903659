//! Previews of pull requests end to end: the real `rivetr` binary on the real engines (rootful
//! Podman, Docker, rootless Podman), a real git repository whose branches serve different
//! content, and each forge's real pull request payloads (tests/fixtures/webhooks) patched to
//! name that repository's branches and commits, signed as each forge signs them, with the
//! headers each forge sends (tests/fixtures/webhooks/HEADERS.md).
//!
//! What this proves:
//!
//! - For GitHub (rootful Podman), GitLab (Docker) and Gitea (rootless Podman): an opened PR
//!   deploys exactly its head commit as app `<app>-pr-<n>`, one replica, at `pr-<n>.<domain>`
//!   through the proxy, while the app's own domain keeps serving `main`; new commits
//!   (`synchronize`, `update` with `oldrev`, `synchronized`) redeploy it, a label does not;
//!   a close or merge leaves no container and no image of it in the engine, no route (the
//!   proxy answers its host as any unknown host) and no counters, no work directory, no app
//!   and no deployment rows, and the PR is listed closed without a preview; new commits
//!   delivered late after it (each forge's time format) bring nothing back.
//! - The preview's container has the app's variables with the previews' overrides on top, the
//!   app's does not have the overrides, and an override's value never shows in a deployment's
//!   log or reason (even when the container prints it), Rivetr's log or its database.
//! - The policy: a fork's PR is refused naming the fork and creates nothing, a draft gets
//!   nothing, a preview name or host another app holds is refused naming that app; past the
//!   limit a PR is refused naming the previews that hold it; a repeated delivery is a
//!   duplicate; a `synchronize` after the close (older or newer) brings nothing back, a reopen
//!   does; stacked PRs each get a preview and go independently.
//! - A preview whose PR is recorded closed while Rivetr is stopped is removed at the next
//!   start, and an open PR's preview is kept. When the engine only appears after the start,
//!   the removal waits for it and the preview goes entirely, images included.
//! - Deleting an app removes its previews' containers and images; removing one preview
//!   through the API, or its app by name, leaves the others, and a later push does not bring
//!   it back; a change of the app's domain moves a preview to its new host at its next push.
//! - A PR closed while its preview's image builds (Podman, Docker) leaves nothing once the
//!   engine is done.

use crate::common;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::process::Command;
use std::time::Duration;

use common::api::{fixture, parse_response, sign, state_dir};
use common::platform::{
    GitRepo, Platform, docker_socket, podman_socket, rootless_podman_socket, unique_name,
};
use common::wait_for;
use serde_json::{Value, json};

// ---------------------------------------------------------------------------------------
// The forges' deliveries.
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Forge {
    GitHub,
    GitLab,
    Gitea,
}

impl Forge {
    fn path(self) -> &'static str {
        match self {
            Forge::GitHub => "github",
            Forge::GitLab => "gitlab",
            Forge::Gitea => "gitea",
        }
    }
}

/// What happened to the PR: opened, new commits, closed (merged).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Act {
    Open,
    Update,
    /// A change that is no new code: a label (GitHub, Gitea), an `update` without `oldrev`
    /// (GitLab).
    Label,
    Close,
    Reopen,
}

/// A pull request as the forge describes it in a delivery.
#[derive(Debug, Clone)]
struct Pr {
    number: u64,
    head_ref: String,
    head_sha: String,
    /// The head before the new commits (GitHub's `before`, GitLab's `oldrev`).
    before: String,
    base_ref: String,
    /// The forge's `updated_at`, seconds since the epoch.
    at: i64,
    /// The repository the head lives in, when it is a fork.
    fork: Option<String>,
    draft: bool,
}

/// 2030-01-01T00:00:00Z: the times of the deliveries count from here.
const T0: i64 = 1_893_456_000;

impl Pr {
    fn new(number: u64, head_ref: &str, head_sha: &str, at: i64) -> Pr {
        Pr {
            number,
            head_ref: head_ref.to_owned(),
            head_sha: head_sha.to_owned(),
            before: head_sha.to_owned(),
            base_ref: "main".to_owned(),
            at,
            fork: None,
            draft: false,
        }
    }

    /// The same PR after a push of `sha` to its head, at `at`.
    fn pushed(&self, sha: &str, at: i64) -> Pr {
        Pr {
            before: self.head_sha.clone(),
            head_sha: sha.to_owned(),
            at,
            ..self.clone()
        }
    }

    fn at(&self, at: i64) -> Pr {
        Pr { at, ..self.clone() }
    }
}

fn rfc3339(at: i64) -> String {
    chrono::DateTime::from_timestamp(at, 0)
        .unwrap()
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// A GitHub or Gitea body (Gitea copies GitHub's shape, with its own action names).
fn github_style_body(forge: Forge, act: Act, pr: &Pr) -> Vec<u8> {
    let (file, action) = match (forge, act) {
        (Forge::GitHub, Act::Open) => ("github/pull_request.opened.json", "opened"),
        (Forge::GitHub, Act::Update) => ("github/pull_request.synchronize.json", "synchronize"),
        (Forge::GitHub, Act::Label) => ("github/pull_request.opened.json", "labeled"),
        (Forge::GitHub, Act::Close) => ("github/pull_request.closed.json", "closed"),
        (Forge::GitHub, Act::Reopen) => ("github/pull_request.opened.json", "reopened"),
        (Forge::Gitea, Act::Open) => ("gitea/pull_request.opened.json", "opened"),
        // No Gitea fixture of new commits: they come as the opened body with Gitea's action
        // for them, `synchronized` (see HEADERS.md).
        (Forge::Gitea, Act::Update) => ("gitea/pull_request.opened.json", "synchronized"),
        (Forge::Gitea, Act::Label) => ("gitea/pull_request.opened.json", "label_updated"),
        (Forge::Gitea, Act::Close) => ("gitea/pull_request.closed.json", "closed"),
        (Forge::Gitea, Act::Reopen) => ("gitea/pull_request.opened.json", "reopened"),
        (Forge::GitLab, _) => unreachable!(),
    };
    let mut v: Value = serde_json::from_slice(&fixture(file)).unwrap();
    v["action"] = json!(action);
    v["number"] = json!(pr.number);
    {
        let p = &mut v["pull_request"];
        p["number"] = json!(pr.number);
        p["updated_at"] = json!(rfc3339(pr.at));
        p["head"]["ref"] = json!(pr.head_ref);
        p["head"]["sha"] = json!(pr.head_sha);
        p["base"]["ref"] = json!(pr.base_ref);
        p["draft"] = json!(pr.draft);
        let base_repo = p["base"]["repo"]["full_name"].clone();
        assert!(base_repo.is_string(), "{file}: no base.repo.full_name");
        p["head"]["repo"]["full_name"] = match &pr.fork {
            Some(fork) => json!(fork),
            None => base_repo,
        };
        if act == Act::Close {
            p["state"] = json!("closed");
            p["merged"] = json!(true);
        } else {
            p["state"] = json!("open");
            p["merged"] = json!(false);
        }
    }
    if forge == Forge::GitHub && act == Act::Update {
        v["before"] = json!(pr.before);
        v["after"] = json!(pr.head_sha);
    }
    serde_json::to_vec(&v).unwrap()
}

fn gitlab_body(act: Act, pr: &Pr) -> Vec<u8> {
    let (file, action) = match act {
        Act::Open => ("gitlab/merge_request.open.json", "open"),
        Act::Update | Act::Label => ("gitlab/merge_request.update.json", "update"),
        Act::Close => ("gitlab/merge_request.merge.json", "merge"),
        Act::Reopen => ("gitlab/merge_request.open.json", "reopen"),
    };
    let mut v: Value = serde_json::from_slice(&fixture(file)).unwrap();
    let o = &mut v["object_attributes"];
    o["iid"] = json!(pr.number);
    o["action"] = json!(action);
    o["source_branch"] = json!(pr.head_ref);
    o["target_branch"] = json!(pr.base_ref);
    o["last_commit"]["id"] = json!(pr.head_sha);
    o["updated_at"] = json!(
        chrono::DateTime::from_timestamp(pr.at, 0)
            .unwrap()
            .format("%Y-%m-%d %H:%M:%S UTC")
            .to_string()
    );
    o["state"] = json!(if act == Act::Close {
        "merged"
    } else {
        "opened"
    });
    o["draft"] = json!(pr.draft);
    o["work_in_progress"] = json!(pr.draft);
    if act == Act::Update {
        o["oldrev"] = json!(pr.before);
    } else {
        o.as_object_mut().unwrap().remove("oldrev");
    }
    let target = o["target_project_id"].as_u64().unwrap();
    match &pr.fork {
        Some(fork) => {
            o["source_project_id"] = json!(target + 1000);
            o["source"]["path_with_namespace"] = json!(fork);
        }
        None => o["source_project_id"] = json!(target),
    }
    serde_json::to_vec(&v).unwrap()
}

/// Delivers `act` of `pr` to `app`'s webhook as `forge` would; the status and the answer.
fn deliver(
    p: &Platform,
    forge: Forge,
    app: &str,
    secret: &str,
    act: Act,
    pr: &Pr,
    delivery: &str,
) -> (u16, Value) {
    let (body, headers): (Vec<u8>, Vec<(&str, String)>) = match forge {
        Forge::GitHub => {
            let body = github_style_body(forge, act, pr);
            let sig = format!("sha256={}", sign(secret, &body));
            let headers = vec![
                ("X-GitHub-Event", "pull_request".to_owned()),
                ("X-GitHub-Delivery", delivery.to_owned()),
                ("X-GitHub-Hook-ID", "292430182".to_owned()),
                (
                    "X-GitHub-Hook-Installation-Target-Type",
                    "repository".to_owned(),
                ),
                (
                    "X-GitHub-Hook-Installation-Target-ID",
                    "79929171".to_owned(),
                ),
                ("X-Hub-Signature-256", sig),
                ("User-Agent", "GitHub-Hookshot/044aadd".to_owned()),
            ];
            (body, headers)
        }
        Forge::GitLab => {
            let body = gitlab_body(act, pr);
            let headers = vec![
                ("X-Gitlab-Event", "Merge Request Hook".to_owned()),
                ("X-Gitlab-Token", secret.to_owned()),
                ("X-Gitlab-Event-UUID", format!("event-{delivery}")),
                ("Idempotency-Key", delivery.to_owned()),
                ("X-Gitlab-Instance", "https://gitlab.example.com".to_owned()),
                ("User-Agent", "GitLab/17.5.0".to_owned()),
            ];
            (body, headers)
        }
        Forge::Gitea => {
            let body = github_style_body(forge, act, pr);
            let sig = sign(secret, &body);
            let event_type = if act == Act::Update {
                "pull_request_sync"
            } else {
                "pull_request"
            };
            // Gitea sends its own headers and the same values under Gogs' and GitHub's names;
            // Rivetr must read Gitea's (`synchronized` is no GitHub action).
            let headers = vec![
                ("X-Gitea-Event", "pull_request".to_owned()),
                ("X-Gitea-Event-Type", event_type.to_owned()),
                ("X-Gitea-Delivery", delivery.to_owned()),
                ("X-Gitea-Signature", sig.clone()),
                ("X-Gogs-Event", "pull_request".to_owned()),
                ("X-Gogs-Event-Type", event_type.to_owned()),
                ("X-Gogs-Delivery", delivery.to_owned()),
                ("X-Gogs-Signature", sig.clone()),
                ("X-GitHub-Event", "pull_request".to_owned()),
                ("X-GitHub-Event-Type", event_type.to_owned()),
                ("X-GitHub-Delivery", delivery.to_owned()),
                ("X-Hub-Signature-256", format!("sha256={sig}")),
                ("User-Agent", "Go-http-client/1.1".to_owned()),
            ];
            (body, headers)
        }
    };
    let path = format!("/webhooks/{}/{app}", forge.path());
    let mut all: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
    all.push(("Content-Type", "application/json"));
    let r = common::api::request(p.rivetr.api(), "POST", &path, &all, &body);
    (r.status, r.json())
}

// ---------------------------------------------------------------------------------------
// The git repository's branches.
// ---------------------------------------------------------------------------------------

fn git(repo: &GitRepo, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(repo.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Commits `files` on `branch` (made from `from` if new); back on `main` after. The commit.
fn commit_on(
    repo: &GitRepo,
    branch: &str,
    from: &str,
    files: &[(&str, &str)],
    message: &str,
) -> String {
    let exists = !git(repo, &["branch", "--list", branch]).trim().is_empty();
    if exists {
        git(repo, &["checkout", "--quiet", branch]);
    } else {
        git(repo, &["checkout", "--quiet", "-b", branch, from]);
    }
    let sha = repo.commit(files, message);
    git(repo, &["checkout", "--quiet", "main"]);
    sha
}

fn page(text: &str) -> String {
    format!("{text}\n")
}

// ---------------------------------------------------------------------------------------
// The engine, through its own API (Docker's, which Podman serves too).
// ---------------------------------------------------------------------------------------

/// `GET path` on the engine's socket; the JSON answer. Podman answers a list with 500 when an
/// image goes while it reads them (other tests share the engine): asked again then.
fn engine_get(socket: &str, path: &str) -> Value {
    let file = socket.strip_prefix("unix://").unwrap_or(socket);
    let mut attempt = 0;
    loop {
        attempt += 1;
        let mut s = UnixStream::connect(file).unwrap_or_else(|e| panic!("{file}: {e}"));
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: engine\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).unwrap();
        let r = parse_response(&raw);
        if r.status == 500 && r.body.contains("not known") && attempt < 20 {
            std::thread::sleep(Duration::from_millis(250));
            continue;
        }
        assert_eq!(r.status, 200, "engine GET {path}: {}", r.body);
        return r.json();
    }
}

/// The containers (running or not) labelled `io.rivetr.app=<app>`: `name state` each.
fn containers(socket: &str, app: &str) -> Vec<String> {
    let list = engine_get(socket, "/containers/json?all=1");
    let mut found: Vec<String> = list
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["Labels"]["io.rivetr.app"] == app)
        .map(|c| {
            format!(
                "{} {}",
                c["Names"][0]
                    .as_str()
                    .unwrap_or("?")
                    .trim_start_matches('/'),
                c["State"].as_str().unwrap_or("?")
            )
        })
        .collect();
    found.sort();
    found
}

/// Running containers of `app`.
fn running(socket: &str, app: &str) -> usize {
    containers(socket, app)
        .iter()
        .filter(|c| c.ends_with(" running"))
        .count()
}

/// The images of `app`: tagged under a Rivetr repository named after it, or labelled with it.
fn images(socket: &str, app: &str) -> Vec<String> {
    let list = engine_get(socket, "/images/json");
    let suffix = format!("/{app}:");
    let mut found = Vec::new();
    for image in list.as_array().unwrap() {
        let tags: Vec<String> = image["RepoTags"]
            .as_array()
            .map(|t| {
                t.iter()
                    .filter_map(|t| t.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        let tagged = tags
            .iter()
            .any(|t| t.starts_with("localhost/rivetr-") && t.contains(&suffix));
        let labelled = image["Labels"]["io.rivetr.app"] == app;
        if tagged || labelled {
            found.push(format!("{} {tags:?}", image["Id"].as_str().unwrap_or("?")));
        }
    }
    found
}

/// Every tag the engine has.
fn all_tags(socket: &str) -> Vec<String> {
    engine_get(socket, "/images/json")
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|i| {
            i["RepoTags"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .filter_map(|t| t.as_str().map(str::to_owned))
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// Rivetr.
// ---------------------------------------------------------------------------------------

/// Rivetr on `socket` with `engine` (`podman` or `docker`).
fn start(socket: &str, engine: &str) -> Platform {
    Platform::start(socket, &[("RIVETR_RUNTIME_ENGINE", engine)])
}

/// Creates an app of `repo` serving `<name>.test`, previews as given; its webhook secret.
fn create_app(p: &Platform, name: &str, repo: &GitRepo, previews: Value, extra: Value) -> String {
    let mut body = json!({
        "name": name,
        "git_url": format!("file://{}", repo.path().display()),
        "branch": "main",
        "port": 8080,
        "domains": [format!("{name}.test")],
        "healthcheck": { "path": "/", "interval_ms": 200, "timeout_ms": 1000, "retries": 50 },
        "previews": previews,
    });
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    let (status, created) = p.api("POST", "/api/apps", Some(body));
    assert_eq!(status, 201, "{created}");
    created["webhook_secret"].as_str().unwrap().to_owned()
}

/// Waits for a deployment that must succeed; returns it.
fn wait_running(p: &Platform, id: i64) -> Value {
    let d = p.wait_done(id);
    assert_eq!(
        d["status"],
        "running",
        "deployment {id}: {d}\n{}\n{}",
        p.logs(id),
        p.rivetr.log()
    );
    d
}

/// The answer of a delivery that must queue a preview deployment: its id.
fn queued(answer: &(u16, Value), preview: &str) -> i64 {
    let (status, a) = answer;
    assert_eq!(*status, 202, "{a}");
    assert_eq!(a["outcome"], "queued", "{a}");
    assert_eq!(a["preview"], preview, "{a}");
    a["deployment_id"]
        .as_i64()
        .unwrap_or_else(|| panic!("no deployment_id: {a}"))
}

/// The entry of PR `number` in `GET /api/apps/{app}/previews`.
fn listed(p: &Platform, app: &str, number: u64) -> Value {
    let (status, list) = p.api("GET", &format!("/api/apps/{app}/previews"), None);
    assert_eq!(status, 200, "{list}");
    list.as_array()
        .unwrap()
        .iter()
        .find(|e| e["number"] == number)
        .cloned()
        .unwrap_or_else(|| panic!("PR #{number} not listed: {list}"))
}

/// The hosts the proxy keeps counters for (`GET /api/system`).
fn counted_hosts(p: &Platform) -> Vec<String> {
    let (status, system) = p.api("GET", "/api/system", None);
    assert_eq!(status, 200, "{system}");
    system["proxy"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["host"].as_str().map(str::to_owned))
        .collect()
}

/// What the proxy answers for a host no app has.
fn unknown_host(p: &Platform) -> (u16, String) {
    let host = format!("{}.test", unique_name("nobody"));
    let (status, body) = p.through_proxy(&host, "/");
    (status, body.replace(&host, "HOST"))
}

/// Checks that the preview `preview` of PR `number` of `app` is gone, everything of it:
/// containers, images (`images_seen` are tags it had), route, work directories, app, rows.
#[allow(clippy::too_many_arguments)]
fn assert_preview_gone(
    p: &Platform,
    socket: &str,
    app: &str,
    number: u64,
    host: &str,
    deployments: &[i64],
    images_seen: &[String],
) {
    let preview = format!("{app}-pr-{number}");
    assert_eq!(
        containers(socket, &preview),
        Vec::<String>::new(),
        "containers of {preview} left"
    );
    assert_eq!(
        images(socket, &preview),
        Vec::<String>::new(),
        "images of {preview} left"
    );
    let tags = all_tags(socket);
    for image in images_seen {
        assert!(!tags.contains(image), "image {image} of {preview} left");
    }
    let (status, body) = p.through_proxy(host, "/");
    let unknown = unknown_host(p);
    assert_eq!(
        (status, body.replace(host, "HOST")),
        unknown,
        "{host} must answer as a host no app has"
    );
    assert_eq!(status, 404, "{body}");
    let work = state_dir(p.dir.path()).join("work");
    for id in deployments {
        assert!(
            !work.join(id.to_string()).exists(),
            "work directory of deployment {id} left in {}",
            work.display()
        );
    }
    // Nothing else is under way in these tests when a preview goes: no checkout at all.
    let left: Vec<_> = std::fs::read_dir(&work)
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "left in {}: {left:?}", work.display());
    let (status, answer) = p.api("GET", &format!("/api/apps/{preview}"), None);
    assert_eq!(status, 404, "{answer}");
    for id in deployments {
        let (status, d) = p.api("GET", &format!("/api/deployments/{id}"), None);
        assert_eq!(status, 404, "deployment {id} of {preview} left: {d}");
    }
    let entry = listed(p, app, number);
    assert_eq!(entry["state"], "closed", "{entry}");
    assert!(entry["app"].is_null(), "{entry}");
    assert!(entry["host"].is_null(), "{entry}");
    assert!(entry["deployment"].is_null(), "{entry}");
    assert!(entry["running_deployment"].is_null(), "{entry}");
    let (_, apps) = p.api("GET", "/api/apps", None);
    assert!(
        !apps
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["name"] == preview.as_str()),
        "{apps}"
    );
}

// ---------------------------------------------------------------------------------------
// 1. Open, push, close, per forge.
// ---------------------------------------------------------------------------------------

fn forge_case(forge: Forge, socket: &str, engine: &str) {
    let p = start(socket, engine);
    let repo = GitRepo::new(&page("main v1"));
    let app = unique_name(forge.path());
    let domain = format!("{app}.test");
    let secret = create_app(
        &p,
        &app,
        &repo,
        json!({ "enabled": true, "domain_template": "pr-{number}.{domain}", "limit": 5 }),
        json!({ "replicas": 2 }),
    );
    let number = 7;
    let preview = format!("{app}-pr-{number}");
    let host = format!("pr-{number}.{domain}");
    let unknown = unknown_host(&p);
    assert_eq!(unknown.0, 404, "{unknown:?}");

    // The app itself, from main, while the PR's preview builds.
    let main_deploy = p.deploy(&app, None);
    let v1 = commit_on(
        &repo,
        "feature/login",
        "main",
        &[("www/index.html", &page(&format!("{forge:?} PR v1")))],
        "PR v1",
    );
    // Pushed after the forge wrote the delivery: not what the preview runs.
    commit_on(
        &repo,
        "feature/login",
        "main",
        &[("www/index.html", &page("not in the PR yet"))],
        "later",
    );
    let pr = Pr::new(number, "feature/login", &v1, T0);
    let opened = deliver(&p, forge, &app, &secret, Act::Open, &pr, "d-open");
    assert!(
        opened.1["message"]
            .as_str()
            .unwrap()
            .contains(&format!("PR #{number}")),
        "{opened:?}"
    );
    let first = queued(&opened, &preview);
    wait_running(&p, main_deploy);
    let d = wait_running(&p, first);
    assert_eq!(d["commit_sha"], v1.as_str(), "{d}");
    assert_eq!(d["trigger"], "webhook", "{d}");
    assert_eq!(d["app"], preview.as_str(), "{d}");
    assert_eq!(
        p.through_proxy(&host, "/"),
        (200, page(&format!("{forge:?} PR v1")))
    );
    assert_eq!(p.through_proxy(&domain, "/"), (200, page("main v1")));

    // The preview as an app: tied to its PR, one replica, its host, not listed, read-only.
    let (status, shown) = p.api("GET", &format!("/api/apps/{preview}"), None);
    assert_eq!(status, 200, "{shown}");
    assert_eq!(
        shown["preview_of"],
        json!({ "app": app, "number": number }),
        "{shown}"
    );
    assert_eq!(shown["replicas"], 1, "{shown}");
    assert_eq!(shown["domains"], json!([host]), "{shown}");
    assert_eq!(shown["branch"], "feature/login", "{shown}");
    assert_eq!(
        running(socket, &preview),
        1,
        "{:?}",
        containers(socket, &preview)
    );
    assert_eq!(running(socket, &app), 2, "{:?}", containers(socket, &app));
    let (_, apps) = p.api("GET", "/api/apps", None);
    let names: Vec<&str> = apps
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a["name"].as_str())
        .collect();
    assert_eq!(names, [app.as_str()], "{apps}");
    let (status, refused) = p.api(
        "PATCH",
        &format!("/api/apps/{preview}"),
        Some(json!({ "replicas": 3 })),
    );
    assert_eq!(status, 409, "{refused}");
    let entry = listed(&p, &app, number);
    assert_eq!(entry["state"], "open", "{entry}");
    assert_eq!(entry["head_ref"], "feature/login", "{entry}");
    assert_eq!(entry["head_sha"], v1.as_str(), "{entry}");
    assert_eq!(entry["app"], preview.as_str(), "{entry}");
    assert_eq!(entry["host"], host.as_str(), "{entry}");
    assert_eq!(entry["running_deployment"], first, "{entry}");
    assert!(entry["refused"].is_null(), "{entry}");

    // A label (GitLab: an update without `oldrev`) changes no code: nothing is deployed.
    let (status, label) = deliver(
        &p,
        forge,
        &app,
        &secret,
        Act::Label,
        &pr.at(T0 + 30),
        "d-label",
    );
    assert_eq!(status, 202, "{label}");
    assert_eq!(label["outcome"], "ignored", "{label}");
    let (_, list) = p.api("GET", &format!("/api/apps/{preview}/deployments"), None);
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");

    // New commits: the preview serves them.
    let v2 = commit_on(
        &repo,
        "feature/login",
        "main",
        &[("www/index.html", &page(&format!("{forge:?} PR v2")))],
        "PR v2",
    );
    let pr = pr.pushed(&v2, T0 + 60);
    let second = queued(
        &deliver(&p, forge, &app, &secret, Act::Update, &pr, "d-update"),
        &preview,
    );
    let d = wait_running(&p, second);
    assert_eq!(d["commit_sha"], v2.as_str(), "{d}");
    assert_eq!(
        p.through_proxy(&host, "/"),
        (200, page(&format!("{forge:?} PR v2")))
    );
    assert_eq!(p.through_proxy(&domain, "/"), (200, page("main v1")));
    let mut images_seen: Vec<String> = [first, second]
        .iter()
        .filter_map(|id| p.deployment(*id)["image"].as_str().map(str::to_owned))
        .collect();
    images_seen.sort();
    images_seen.dedup();
    assert!(!images_seen.is_empty(), "no image recorded");
    assert!(
        !images(socket, &preview).is_empty(),
        "the engine shows no image of {preview}: the check below could not fail"
    );

    assert!(counted_hosts(&p).contains(&host), "{:?}", counted_hosts(&p));

    // Closed (merged): the preview and everything of it go; the app stays.
    let (status, closed) = deliver(
        &p,
        forge,
        &app,
        &secret,
        Act::Close,
        &pr.at(T0 + 120),
        "d-close",
    );
    assert_eq!(status, 200, "{closed}");
    assert_eq!(closed["outcome"], "removed", "{closed}");
    assert_eq!(closed["preview"], preview.as_str(), "{closed}");
    assert_preview_gone(
        &p,
        socket,
        &app,
        number,
        &host,
        &[first, second],
        &images_seen,
    );
    assert!(
        !counted_hosts(&p).contains(&host),
        "the closed PR's host keeps its counters: {:?}",
        counted_hosts(&p)
    );

    // New commits written before the close, delivered after it: late, nothing comes back
    // (this reads each forge's time format).
    let v3 = commit_on(
        &repo,
        "feature/login",
        "main",
        &[("www/index.html", &page("after the close"))],
        "late",
    );
    let (status, late) = deliver(
        &p,
        forge,
        &app,
        &secret,
        Act::Update,
        &pr.pushed(&v3, T0 + 90),
        "d-late",
    );
    assert_eq!(status, 202, "{late}");
    assert_eq!(late["outcome"], "ignored", "{late}");
    assert!(
        late["message"].as_str().unwrap().contains("late delivery"),
        "{late}"
    );
    let (status, _) = p.api("GET", &format!("/api/apps/{preview}"), None);
    assert_eq!(status, 404);
    assert_eq!(p.through_proxy(&domain, "/"), (200, page("main v1")));
    assert_eq!(running(socket, &app), 2, "{:?}", containers(socket, &app));
}

#[test]
fn a_github_pull_request_previews_on_rootful_podman_and_goes_when_merged() {
    if let Some(socket) = podman_socket("previews from GitHub on rootful Podman") {
        forge_case(Forge::GitHub, &socket, "podman");
    }
}

#[test]
fn a_gitlab_merge_request_previews_on_docker_and_goes_when_merged() {
    if let Some(socket) = docker_socket("previews from GitLab on Docker") {
        forge_case(Forge::GitLab, &socket, "docker");
    }
}

#[test]
fn a_gitea_pull_request_previews_on_rootless_podman_and_goes_when_closed() {
    if let Some(socket) = rootless_podman_socket("previews from Gitea on rootless Podman") {
        forge_case(Forge::Gitea, &socket, "podman");
    }
}

// ---------------------------------------------------------------------------------------
// 2. The previews' environment.
// ---------------------------------------------------------------------------------------

/// busybox httpd serving `www/`, with the container's environment at `/env.txt`.
const ENV_DOCKERFILE: &str = "FROM localhost/busybox:test\nCOPY www /www\nEXPOSE 8080\n\
    CMD [\"sh\", \"-c\", \"env > /www/env.txt && exec httpd -f -p 8080 -h /www\"]\n";

/// Prints the variables and exits (after a while, so that its port is published first): the
/// health check then logs its last output.
const LEAKY_DOCKERFILE: &str = "FROM localhost/busybox:test\nCOPY www /www\n\
    CMD [\"sh\", \"-c\", \"echo PREVIEW_TOKEN=$PREVIEW_TOKEN; echo SHARED=$SHARED; sleep 3; exit 3\"]\n";

fn random_token() -> String {
    let mut bytes = [0u8; 12];
    std::fs::File::open("/dev/urandom")
        .unwrap()
        .read_exact(&mut bytes)
        .unwrap();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("preview-secret-{hex}")
}

fn env_of(p: &Platform, host: &str) -> Vec<String> {
    let (status, body) = p.through_proxy(host, "/env.txt");
    assert_eq!(status, 200, "{host}/env.txt: {body}");
    let mut lines: Vec<String> = body.lines().map(str::to_owned).collect();
    lines.sort();
    lines
}

#[test]
fn a_preview_runs_with_the_apps_env_and_the_overrides_which_never_reach_a_log() {
    let Some(socket) = docker_socket("previews' environment on Docker") else {
        return;
    };
    let p = start(&socket, "docker");
    let repo = GitRepo::new(&page("env app"));
    repo.commit(&[("Dockerfile", ENV_DOCKERFILE)], "print the env");
    let app = unique_name("env");
    let token = random_token();
    let secret = create_app(
        &p,
        &app,
        &repo,
        json!({ "enabled": true, "env": { "PREVIEW_TOKEN": token, "MODE": "preview" } }),
        json!({}),
    );
    for (key, value) in [("SHARED", "from-the-app"), ("MODE", "production")] {
        let (status, set) = p.api(
            "PUT",
            &format!("/api/apps/{app}/env/{key}"),
            Some(json!({ "value": value })),
        );
        assert_eq!(status, 200, "{set}");
    }
    let (status, set) = p.api(
        "PUT",
        &format!("/api/apps/{app}/env/API_KEY"),
        Some(json!({ "value": "app-secret-value", "secret": true })),
    );
    assert_eq!(status, 200, "{set}");
    // The overrides are write-only: their names show, never their values; a change of other
    // settings keeps them.
    let (status, patched) = p.api(
        "PATCH",
        &format!("/api/apps/{app}"),
        Some(json!({ "previews": { "limit": 3 } })),
    );
    assert_eq!(status, 200, "{patched}");
    let (status, shown) = p.api("GET", &format!("/api/apps/{app}"), None);
    assert_eq!(status, 200, "{shown}");
    assert_eq!(
        shown["previews"]["env_keys"],
        json!(["MODE", "PREVIEW_TOKEN"]),
        "{shown}"
    );
    assert!(!shown.to_string().contains(&token), "{shown}");

    let main_deploy = p.deploy(&app, None);
    let head = commit_on(
        &repo,
        "env-check",
        "main",
        &[("www/index.html", &page("env PR"))],
        "env PR",
    );
    let first = queued(
        &deliver(
            &p,
            Forge::GitHub,
            &app,
            &secret,
            Act::Open,
            &Pr::new(1, "env-check", &head, T0),
            "env-1",
        ),
        &format!("{app}-pr-1"),
    );
    wait_running(&p, main_deploy);
    wait_running(&p, first);

    let preview_env = env_of(&p, &format!("pr-1.{app}.test"));
    for want in [
        "SHARED=from-the-app".to_owned(),
        "API_KEY=app-secret-value".to_owned(),
        "MODE=preview".to_owned(),
        format!("PREVIEW_TOKEN={token}"),
    ] {
        assert!(preview_env.contains(&want), "{want} not in {preview_env:?}");
    }
    let app_env = env_of(&p, &format!("{app}.test"));
    assert!(
        app_env.contains(&"SHARED=from-the-app".to_owned())
            && app_env.contains(&"API_KEY=app-secret-value".to_owned())
            && app_env.contains(&"MODE=production".to_owned()),
        "{app_env:?}"
    );
    assert!(
        !app_env.iter().any(|l| l.starts_with("PREVIEW_TOKEN=")),
        "the app got the previews' override: {app_env:?}"
    );

    // A preview whose container prints the override and exits: the health check logs its
    // last output, with the value hidden.
    let leaky = commit_on(
        &repo,
        "leaky",
        "main",
        &[("Dockerfile", LEAKY_DOCKERFILE)],
        "print and exit",
    );
    let failed = queued(
        &deliver(
            &p,
            Forge::GitHub,
            &app,
            &secret,
            Act::Open,
            &Pr::new(2, "leaky", &leaky, T0 + 10),
            "env-2",
        ),
        &format!("{app}-pr-2"),
    );
    let d = p.wait_done(failed);
    assert_eq!(d["status"], "failed", "{d}\n{}", p.logs(failed));
    let log = p.logs(failed);
    assert!(
        log.contains("PREVIEW_TOKEN=***") && log.contains("SHARED=from-the-app"),
        "the container's output is not in the log, so the check below proves nothing:\n{log}"
    );
    for (what, text) in [
        ("the failed deployment's log", log.as_str()),
        ("the failed deployment's reason", &d["reason"].to_string()),
        ("the preview deployment's log", &p.logs(first)),
        ("the app's deployment log", &p.logs(main_deploy)),
        ("Rivetr's log", &p.rivetr.log()),
    ] {
        assert!(!text.contains(&token), "{what} shows the override:\n{text}");
    }
    let data = state_dir(p.dir.path());
    for file in ["rivetr.db", "rivetr.db-wal"] {
        let bytes = std::fs::read(data.join(file)).unwrap_or_default();
        assert!(
            !bytes.windows(token.len()).any(|w| w == token.as_bytes()),
            "{file} holds the override in clear"
        );
    }
}

// ---------------------------------------------------------------------------------------
// 3. The policy: forks, the limit, repeats, late deliveries, stacked PRs.
// ---------------------------------------------------------------------------------------

#[test]
fn forks_the_limit_repeats_late_deliveries_and_stacked_prs() {
    let Some(socket) = podman_socket("previews' policy on rootful Podman") else {
        return;
    };
    let p = start(&socket, "podman");
    let repo = GitRepo::new(&page("policy main"));
    let app = unique_name("policy");
    let secret = create_app(
        &p,
        &app,
        &repo,
        json!({ "enabled": true, "limit": 1 }),
        json!({}),
    );
    let gh = |act: Act, pr: &Pr, delivery: &str| {
        deliver(&p, Forge::GitHub, &app, &secret, act, pr, delivery)
    };
    let host = |n: u64| format!("pr-{n}.{app}.test");
    let preview = |n: u64| format!("{app}-pr-{n}");

    // A fork's PR: refused, naming the fork; nothing created.
    let sha = commit_on(
        &repo,
        "from-fork",
        "main",
        &[("www/index.html", &page("fork"))],
        "fork",
    );
    let mut fork = Pr::new(3, "from-fork", &sha, T0);
    fork.fork = Some("mallory/Hello-World".to_owned());
    let (status, answer) = gh(Act::Open, &fork, "fork-1");
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer["outcome"], "refused", "{answer}");
    let why = answer["message"].as_str().unwrap();
    assert!(
        why.contains("fork") && why.contains("mallory/Hello-World"),
        "{answer}"
    );
    assert!(answer["deployment_id"].is_null(), "{answer}");
    let (status, _) = p.api("GET", &format!("/api/apps/{}", preview(3)), None);
    assert_eq!(status, 404);
    assert!(containers(&socket, &preview(3)).is_empty());
    let entry = listed(&p, &app, 3);
    assert!(
        entry["refused"]
            .as_str()
            .is_some_and(|r| r.contains("mallory/Hello-World")),
        "{entry}"
    );
    assert!(entry["app"].is_null(), "{entry}");

    // A draft: no preview while previews.drafts is off.
    let mut draft = Pr::new(4, "from-fork", &sha, T0);
    draft.draft = true;
    let (status, answer) = gh(Act::Open, &draft, "draft-1");
    assert_eq!(status, 202, "{answer}");
    assert!(
        answer["outcome"] != "queued" && answer["message"].as_str().unwrap().contains("draft"),
        "{answer}"
    );
    let (status, _) = p.api("GET", &format!("/api/apps/{}", preview(4)), None);
    assert_eq!(status, 404);

    // The preview's name or host taken by an app of its own: refused, naming it; that app
    // is left as it was.
    let squatter = preview(20);
    let (status, created) = p.api(
        "POST",
        "/api/apps",
        Some(json!({ "name": squatter, "git_url": format!("file://{}", repo.path().display()) })),
    );
    assert_eq!(status, 201, "{created}");
    let (status, answer) = gh(Act::Open, &Pr::new(20, "from-fork", &sha, T0), "name-1");
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer["outcome"], "refused", "{answer}");
    assert!(
        answer["message"].as_str().unwrap().contains(&squatter),
        "{answer}"
    );
    let (_, still) = p.api("GET", &format!("/api/apps/{squatter}"), None);
    assert!(still["preview_of"].is_null(), "{still}");
    assert_eq!(still["domains"], json!([]), "{still}");
    let holder = unique_name("holder");
    let (status, created) = p.api(
        "POST",
        "/api/apps",
        Some(json!({ "name": holder, "git_url": format!("file://{}", repo.path().display()), "domains": [host(21)] })),
    );
    assert_eq!(status, 201, "{created}");
    let (status, answer) = gh(Act::Open, &Pr::new(21, "from-fork", &sha, T0), "host-1");
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer["outcome"], "refused", "{answer}");
    assert!(
        answer["message"].as_str().unwrap().contains(&holder),
        "{answer}"
    );
    assert_eq!(listed(&p, &app, 21)["refused"], answer["message"]);
    for n in [20, 21] {
        assert!(listed(&p, &app, n)["app"].is_null());
    }

    // Limit 1: PR #10 gets its preview, PR #11 is refused naming #10.
    let a_sha = commit_on(
        &repo,
        "a",
        "main",
        &[("www/index.html", &page("PR 10"))],
        "a",
    );
    let a = Pr::new(10, "a", &a_sha, T0 + 10);
    let a_open = gh(Act::Open, &a, "a-open");
    let a_first = queued(&a_open, &preview(10));
    let b_sha = commit_on(
        &repo,
        "b",
        "main",
        &[("www/index.html", &page("PR 11"))],
        "b",
    );
    let (status, answer) = gh(Act::Open, &Pr::new(11, "b", &b_sha, T0 + 20), "b-open");
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer["outcome"], "refused", "{answer}");
    let why = answer["message"].as_str().unwrap();
    assert!(
        why.contains("#10") && why.contains("previews.limit = 1"),
        "{answer}"
    );
    let entry = listed(&p, &app, 11);
    assert_eq!(entry["refused"].as_str(), Some(why), "{entry}");
    assert!(entry["app"].is_null(), "{entry}");
    let (status, _) = p.api("GET", &format!("/api/apps/{}", preview(11)), None);
    assert_eq!(status, 404);

    // The same delivery again: a duplicate, nothing queued.
    let (status, again) = gh(Act::Open, &a, "a-open");
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["outcome"], "duplicate", "{again}");
    wait_running(&p, a_first);
    assert_eq!(p.through_proxy(&host(10), "/"), (200, page("PR 10")));
    let (_, list) = p.api(
        "GET",
        &format!("/api/apps/{}/deployments", preview(10)),
        None,
    );
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    let a_image = p.deployment(a_first)["image"]
        .as_str()
        .unwrap_or_default()
        .to_owned();

    // Closed at T0+300; then a synchronize written before the close arrives late, then one
    // after it: neither brings the preview back.
    let (status, closed) = gh(Act::Close, &a.at(T0 + 300), "a-close");
    assert_eq!(
        (status, &closed["outcome"]),
        (200, &json!("removed")),
        "{closed}"
    );
    let a2 = commit_on(
        &repo,
        "a",
        "main",
        &[("www/index.html", &page("PR 10 v2"))],
        "a v2",
    );
    let (status, late) = gh(Act::Update, &a.pushed(&a2, T0 + 200), "a-late");
    assert_eq!(status, 202, "{late}");
    assert_eq!(late["outcome"], "ignored", "{late}");
    assert!(
        late["message"].as_str().unwrap().contains("late delivery"),
        "{late}"
    );
    let (status, after) = gh(Act::Update, &a.pushed(&a2, T0 + 400), "a-after");
    assert_eq!(status, 202, "{after}");
    assert_eq!(after["outcome"], "ignored", "{after}");
    assert!(
        after["message"].as_str().unwrap().contains("closed"),
        "{after}"
    );
    std::thread::sleep(Duration::from_secs(1));
    assert_preview_gone(&p, &socket, &app, 10, &host(10), &[a_first], &[a_image]);

    // A reopen brings it back, at the PR's head; closing it again removes it again.
    let reopened = a.pushed(&a2, T0 + 450);
    let a_again = queued(&gh(Act::Reopen, &reopened, "a-reopen"), &preview(10));
    let d = wait_running(&p, a_again);
    assert_eq!(d["commit_sha"], a2.as_str(), "{d}");
    assert_eq!(p.through_proxy(&host(10), "/"), (200, page("PR 10 v2")));
    assert_eq!(listed(&p, &app, 10)["state"], "open");
    let a_image = p.deployment(a_again)["image"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let (status, closed) = gh(Act::Close, &reopened.at(T0 + 460), "a-close-2");
    assert_eq!(
        (status, &closed["outcome"]),
        (200, &json!("removed")),
        "{closed}"
    );
    assert_preview_gone(&p, &socket, &app, 10, &host(10), &[a_again], &[a_image]);

    // Stacked: #12 on main, #13 on #12's branch; both previewed, each goes on its own.
    let (status, patched) = p.api(
        "PATCH",
        &format!("/api/apps/{app}"),
        Some(json!({ "previews": { "limit": 5 } })),
    );
    assert_eq!(status, 200, "{patched}");
    assert_eq!(patched["previews"]["limit"], 5, "{patched}");
    assert_eq!(patched["previews"]["enabled"], true, "{patched}");
    let c_sha = commit_on(
        &repo,
        "stack-1",
        "main",
        &[("www/index.html", &page("stack 1"))],
        "stack 1",
    );
    let d_sha = commit_on(
        &repo,
        "stack-2",
        "stack-1",
        &[("www/other.html", &page("stack 2 only"))],
        "stack 2",
    );
    let c = Pr::new(12, "stack-1", &c_sha, T0 + 500);
    let mut d = Pr::new(13, "stack-2", &d_sha, T0 + 510);
    d.base_ref = "stack-1".to_owned();
    let c_id = queued(&gh(Act::Open, &c, "c-open"), &preview(12));
    let d_id = queued(&gh(Act::Open, &d, "d-open"), &preview(13));
    wait_running(&p, c_id);
    wait_running(&p, d_id);
    assert_eq!(p.through_proxy(&host(12), "/"), (200, page("stack 1")));
    assert_eq!(p.through_proxy(&host(13), "/"), (200, page("stack 1")));
    assert_eq!(
        p.through_proxy(&host(13), "/other.html"),
        (200, page("stack 2 only"))
    );
    assert_eq!(p.through_proxy(&host(12), "/other.html").0, 404);
    let c_image = p.deployment(c_id)["image"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let d_image = p.deployment(d_id)["image"]
        .as_str()
        .unwrap_or_default()
        .to_owned();

    let (status, closed) = gh(Act::Close, &c.at(T0 + 600), "c-close");
    assert_eq!(
        (status, &closed["outcome"]),
        (200, &json!("removed")),
        "{closed}"
    );
    assert_preview_gone(&p, &socket, &app, 12, &host(12), &[c_id], &[c_image]);
    assert_eq!(
        p.through_proxy(&host(13), "/other.html"),
        (200, page("stack 2 only"))
    );
    assert_eq!(running(&socket, &preview(13)), 1);
    assert_eq!(listed(&p, &app, 13)["state"], "open");

    let (status, closed) = gh(Act::Close, &d.at(T0 + 700), "d-close");
    assert_eq!(
        (status, &closed["outcome"]),
        (200, &json!("removed")),
        "{closed}"
    );
    assert_preview_gone(&p, &socket, &app, 13, &host(13), &[d_id], &[d_image]);
    let all = engine_get(&socket, "/containers/json?all=1");
    let left: Vec<&Value> = all
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| {
            c["Labels"]["io.rivetr.app"]
                .as_str()
                .is_some_and(|a| a.starts_with(&format!("{app}-pr-")))
        })
        .collect();
    assert!(left.is_empty(), "{left:?}");
    let (_, list) = p.api("GET", &format!("/api/apps/{app}/previews"), None);
    for entry in list.as_array().unwrap() {
        assert!(entry["app"].is_null(), "{list}");
    }
}

// ---------------------------------------------------------------------------------------
// 4. A PR closed while Rivetr was stopped.
// ---------------------------------------------------------------------------------------

#[test]
fn a_preview_whose_pr_was_closed_while_rivetr_was_stopped_goes_at_start() {
    let Some(socket) = rootless_podman_socket("previews at start on rootless Podman") else {
        return;
    };
    let mut p = start(&socket, "podman");
    let repo = GitRepo::new(&page("restart main"));
    let app = unique_name("restart");
    let secret = create_app(&p, &app, &repo, json!({ "enabled": true }), json!({}));
    let sha = commit_on(
        &repo,
        "topic",
        "main",
        &[("www/index.html", &page("restart PR"))],
        "topic",
    );
    let preview = format!("{app}-pr-4");
    let host = format!("pr-4.{app}.test");
    let id = queued(
        &deliver(
            &p,
            Forge::GitHub,
            &app,
            &secret,
            Act::Open,
            &Pr::new(4, "topic", &sha, T0),
            "r-open",
        ),
        &preview,
    );
    // PR #5 stays open: its preview must survive the start.
    let open_sha = commit_on(
        &repo,
        "still-open",
        "main",
        &[("www/index.html", &page("still open PR"))],
        "still open",
    );
    let kept = format!("{app}-pr-5");
    let kept_host = format!("pr-5.{app}.test");
    let kept_id = queued(
        &deliver(
            &p,
            Forge::GitHub,
            &app,
            &secret,
            Act::Open,
            &Pr::new(5, "still-open", &open_sha, T0),
            "r-open-5",
        ),
        &kept,
    );
    wait_running(&p, id);
    wait_running(&p, kept_id);
    assert_eq!(p.through_proxy(&host, "/"), (200, page("restart PR")));
    assert_eq!(
        p.through_proxy(&kept_host, "/"),
        (200, page("still open PR"))
    );

    p.rivetr.signal(libc::SIGTERM);
    let status = p.rivetr.wait_exit(Duration::from_secs(60));
    assert!(status.success(), "{status}\n{}", p.rivetr.log());
    assert_eq!(
        running(&socket, &preview),
        1,
        "the preview's container must outlive the stop for the start to have work: {:?}",
        containers(&socket, &preview)
    );
    let db = state_dir(p.dir.path()).join("rivetr.db");
    let out = Command::new("sqlite3")
        .arg(&db)
        .arg("UPDATE pull_requests SET state='closed' WHERE number = 4; SELECT changes();")
        .output()
        .expect("the sqlite3 command line");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "1");

    p.restart();
    wait_for(
        "the closed PR's preview to be removed",
        Duration::from_secs(30),
        || containers(&socket, &preview).is_empty().then_some(()),
    );
    wait_for(
        "the closed PR's host to lose its route",
        Duration::from_secs(30),
        || (p.through_proxy(&host, "/").0 == 404).then_some(()),
    );
    // The removal goes route, containers, images, rows: the images may still be on their way
    // (rootless Podman on a busy machine took seconds).
    wait_for(
        "the closed PR's images to be removed",
        Duration::from_secs(30),
        || images(&socket, &preview).is_empty().then_some(()),
    );
    assert_preview_gone(&p, &socket, &app, 4, &host, &[id], &[]);
    assert!(
        p.rivetr
            .log()
            .contains("removed the previews of closed pull requests"),
        "{}",
        p.rivetr.log()
    );
    assert_eq!(
        p.through_proxy(&kept_host, "/"),
        (200, page("still open PR"))
    );
    assert_eq!(
        running(&socket, &kept),
        1,
        "{:?}",
        containers(&socket, &kept)
    );
    let entry = listed(&p, &app, 5);
    assert_eq!(
        (&entry["state"], &entry["app"]),
        (&json!("open"), &json!(kept)),
        "{entry}"
    );
}

// ---------------------------------------------------------------------------------------
// 5. Deleting a preview, and the app with its previews.
// ---------------------------------------------------------------------------------------

#[test]
fn deleting_a_preview_or_the_app_removes_the_previews_containers() {
    let Some(socket) = docker_socket("deleting previews on Docker") else {
        return;
    };
    let p = start(&socket, "docker");
    let repo = GitRepo::new(&page("delete main"));
    let app = unique_name("delete");
    let secret = create_app(&p, &app, &repo, json!({ "enabled": true }), json!({}));
    let mut ids = Vec::new();
    for n in [1u64, 2] {
        let branch = format!("topic-{n}");
        let sha = commit_on(
            &repo,
            &branch,
            "main",
            &[("www/index.html", &page(&format!("delete PR {n}")))],
            "topic",
        );
        ids.push(queued(
            &deliver(
                &p,
                Forge::Gitea,
                &app,
                &secret,
                Act::Open,
                &Pr::new(n, &branch, &sha, T0),
                &format!("del-{n}"),
            ),
            &format!("{app}-pr-{n}"),
        ));
    }
    for id in &ids {
        wait_running(&p, *id);
    }
    for n in [1u64, 2] {
        assert_eq!(
            p.through_proxy(&format!("pr-{n}.{app}.test"), "/"),
            (200, page(&format!("delete PR {n}")))
        );
    }

    // One preview by hand: it goes, the other stays.
    let (status, answer) = p.api("DELETE", &format!("/api/apps/{app}/previews/2"), None);
    assert_eq!(status, 204, "{answer}");
    assert_preview_gone(
        &p,
        &socket,
        &app,
        2,
        &format!("pr-2.{app}.test"),
        &ids[1..],
        &[],
    );
    let (status, answer) = p.api("DELETE", &format!("/api/apps/{app}/previews/2"), None);
    assert_eq!(status, 404, "{answer}");
    assert_eq!(running(&socket, &format!("{app}-pr-1")), 1);

    // The app's domain changes: the next push moves the preview to the new host.
    let moved = format!("moved-{app}.test");
    let (status, patched) = p.api(
        "PATCH",
        &format!("/api/apps/{app}"),
        Some(json!({ "domains": [moved] })),
    );
    assert_eq!(status, 200, "{patched}");
    let v2 = commit_on(
        &repo,
        "topic-1",
        "main",
        &[("www/index.html", &page("delete PR 1 v2"))],
        "v2",
    );
    let pr1 = Pr::new(1, "topic-1", &v2, T0 + 60);
    let id = queued(
        &deliver(
            &p,
            Forge::Gitea,
            &app,
            &secret,
            Act::Update,
            &pr1,
            "del-1-v2",
        ),
        &format!("{app}-pr-1"),
    );
    wait_running(&p, id);
    ids.push(id);
    let moved_host = format!("pr-1.{moved}");
    assert_eq!(
        p.through_proxy(&moved_host, "/"),
        (200, page("delete PR 1 v2"))
    );
    assert_eq!(
        p.through_proxy(&format!("pr-1.{app}.test"), "/").0,
        404,
        "the preview's old host is still routed"
    );
    assert_eq!(listed(&p, &app, 1)["host"], moved_host.as_str());

    // The app: its preview's containers and images go with it.
    let (status, answer) = p.api("DELETE", &format!("/api/apps/{app}"), None);
    assert_eq!(status, 204, "{answer}");
    let preview = format!("{app}-pr-1");
    assert_eq!(containers(&socket, &preview), Vec::<String>::new());
    assert_eq!(images(&socket, &preview), Vec::<String>::new());
    assert_eq!(
        p.through_proxy(&moved_host, "/").0,
        404,
        "the preview's host is still routed"
    );
    let (status, _) = p.api("GET", &format!("/api/apps/{preview}"), None);
    assert_eq!(status, 404);
    let (status, _) = p.api("GET", &format!("/api/deployments/{}", ids[0]), None);
    assert_eq!(status, 404);
}

/// `DELETE /api/apps/<app>-pr-<n>` removes the preview as `DELETE
/// /api/apps/<app>/previews/<n>` does, and a later push to the PR does not bring it back.
///
/// A product bug at 1882174, found by this test: `api::apps::delete_app` removed the preview
/// app but left its PR recorded `open`, so the PR's next `synchronize` created the preview
/// again. Fixed by 2d6c208 (the PR is recorded closed, as by the previews' own DELETE).
#[test]
fn deleting_a_preview_app_directly_records_its_pr_closed() {
    let Some(socket) = rootless_podman_socket("deleting a preview app on rootless Podman") else {
        return;
    };
    let p = start(&socket, "podman");
    let repo = GitRepo::new(&page("direct main"));
    let app = unique_name("direct");
    let secret = create_app(&p, &app, &repo, json!({ "enabled": true }), json!({}));
    let sha = commit_on(
        &repo,
        "topic",
        "main",
        &[("www/index.html", &page("direct PR"))],
        "topic",
    );
    let preview = format!("{app}-pr-3");
    let host = format!("pr-3.{app}.test");
    let pr = Pr::new(3, "topic", &sha, T0);
    let id = queued(
        &deliver(&p, Forge::GitHub, &app, &secret, Act::Open, &pr, "x-open"),
        &preview,
    );
    wait_running(&p, id);
    assert_eq!(p.through_proxy(&host, "/"), (200, page("direct PR")));
    let (status, answer) = p.api("DELETE", &format!("/api/apps/{preview}"), None);
    assert_eq!(status, 204, "{answer}");
    assert!(containers(&socket, &preview).is_empty());
    assert_eq!(p.through_proxy(&host, "/").0, 404);
    let entry = listed(&p, &app, 3);
    assert!(entry["app"].is_null(), "{entry}");
    let v2 = commit_on(
        &repo,
        "topic",
        "main",
        &[("www/index.html", &page("direct PR v2"))],
        "v2",
    );
    let (status, later) = deliver(
        &p,
        Forge::GitHub,
        &app,
        &secret,
        Act::Update,
        &pr.pushed(&v2, T0 + 60),
        "x-sync",
    );
    let (shown, _) = p.api("GET", &format!("/api/apps/{preview}"), None);
    assert!(
        later["outcome"] != "queued" && shown == 404,
        "a push after the preview app was deleted brought it back ({status} {later}); the PR was listed {entry}"
    );
    assert_eq!(entry["state"], "closed", "{entry}");
}

// ---------------------------------------------------------------------------------------
// 6. A PR closed while its preview builds.
// ---------------------------------------------------------------------------------------

/// Closes a PR while its preview's image builds: nothing of the preview may be left once the
/// engine is done with the build.
fn close_while_building_case(socket: &str, engine: &str) {
    let p = start(socket, engine);
    let repo = GitRepo::new(&page("slow main"));
    let app = unique_name("slow");
    let secret = create_app(&p, &app, &repo, json!({ "enabled": true }), json!({}));
    // A build step no cache holds, long enough to close the PR during it.
    let dockerfile = format!(
        "FROM localhost/busybox:test\nRUN echo {app} && sleep 6\nCOPY www /www\nEXPOSE 8080\n\
         CMD [\"httpd\", \"-f\", \"-p\", \"8080\", \"-h\", \"/www\"]\n"
    );
    let sha = commit_on(
        &repo,
        "slow",
        "main",
        &[
            ("Dockerfile", &dockerfile),
            ("www/index.html", &page("slow PR")),
        ],
        "slow build",
    );
    let preview = format!("{app}-pr-5");
    let pr = Pr::new(5, "slow", &sha, T0);
    let id = queued(
        &deliver(&p, Forge::GitHub, &app, &secret, Act::Open, &pr, "s-open"),
        &preview,
    );
    wait_for(
        "the preview's build to start",
        Duration::from_secs(60),
        || {
            let d = p.deployment(id);
            let log = p.logs(id);
            (d["status"] == "building" && log.contains("sleep 6")).then_some(())
        },
    );
    let (status, closed) = deliver(
        &p,
        Forge::GitHub,
        &app,
        &secret,
        Act::Close,
        &pr.at(T0 + 60),
        "s-close",
    );
    assert_eq!(status, 200, "{closed}");
    assert_eq!(closed["outcome"], "removed", "{closed}");
    // Whatever the engine still does with the build ends within its 6 s.
    std::thread::sleep(Duration::from_secs(10));
    assert_preview_gone(&p, socket, &app, 5, &format!("pr-5.{app}.test"), &[id], &[]);
}

#[test]
fn a_pr_closed_while_its_preview_builds_leaves_nothing_on_rootful_podman() {
    if let Some(socket) = podman_socket("closing during the build on rootful Podman") {
        close_while_building_case(&socket, "podman");
    }
}

#[test]
fn a_pr_closed_while_its_preview_builds_leaves_nothing_on_docker() {
    if let Some(socket) = docker_socket("closing during the build on Docker") {
        close_while_building_case(&socket, "docker");
    }
}

// ---------------------------------------------------------------------------------------
// 7. A PR closed while Rivetr was stopped, and the engine back only after the start.
// ---------------------------------------------------------------------------------------

/// `DELETE path` on the engine's socket; the status.
fn engine_delete(socket: &str, path: &str) -> u16 {
    let file = socket.strip_prefix("unix://").unwrap_or(socket);
    let mut s = UnixStream::connect(file).unwrap_or_else(|e| panic!("{file}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    write!(
        s,
        "DELETE {path} HTTP/1.1\r\nHost: engine\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    parse_response(&raw).status
}

/// Rivetr may start before its engine (systemd on a first install, see `watch_for_runtime`):
/// the preview of a PR recorded closed must still go entirely, images included, once the
/// engine is there.
///
/// A bug this test found: `Previews::reconcile` ran at once at start; without an engine,
/// `engine::lifecycle::delete` skipped the containers and images and deleted the app's rows
/// all the same. The containers went later as the engine's leftovers (they carry the instance
/// label), but the preview's images, named after an app that no longer existed, stayed for
/// good. The removal now waits for the engine (and a close without one answers 503).
#[test]
fn a_closed_prs_preview_goes_entirely_when_the_engine_appears_after_the_start() {
    let Some(socket) = podman_socket("previews at start before the engine, rootful Podman") else {
        return;
    };
    let real = socket.strip_prefix("unix://").unwrap_or(&socket).to_owned();
    let links = tempfile::Builder::new()
        .prefix("rivetr-engine-link-")
        .tempdir()
        .unwrap();
    let link = links.path().join("engine.sock");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let mut p = start(&format!("unix://{}", link.display()), "podman");
    let repo = GitRepo::new(&page("late engine main"));
    let app = unique_name("late-engine");
    let secret = create_app(&p, &app, &repo, json!({ "enabled": true }), json!({}));
    let sha = commit_on(
        &repo,
        "topic",
        "main",
        &[("www/index.html", &page("late engine PR"))],
        "topic",
    );
    let preview = format!("{app}-pr-6");
    let host = format!("pr-6.{app}.test");
    let id = queued(
        &deliver(
            &p,
            Forge::GitHub,
            &app,
            &secret,
            Act::Open,
            &Pr::new(6, "topic", &sha, T0),
            "l-open",
        ),
        &preview,
    );
    wait_running(&p, id);
    assert_eq!(p.through_proxy(&host, "/"), (200, page("late engine PR")));
    assert!(!images(&socket, &preview).is_empty());

    p.rivetr.signal(libc::SIGTERM);
    p.rivetr.wait_exit(Duration::from_secs(60));
    let db = state_dir(p.dir.path()).join("rivetr.db");
    let out = Command::new("sqlite3")
        .arg(&db)
        .arg("UPDATE pull_requests SET state='closed'")
        .output()
        .expect("the sqlite3 command line");
    assert!(out.status.success());
    // The engine is not there when Rivetr starts, and comes a little later.
    std::fs::remove_file(&link).unwrap();
    p.restart();
    // Without the engine the removal waits: nothing of the preview is forgotten yet.
    std::thread::sleep(Duration::from_secs(3));
    let (status, _) = p.api("GET", &format!("/api/apps/{preview}"), None);
    assert_eq!(status, 200, "the preview was removed without its engine");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    p.rivetr.wait_log(
        "container runtime appeared after startup",
        Duration::from_secs(40),
    );
    p.rivetr.wait_log(
        "removed the previews of closed pull requests",
        Duration::from_secs(60),
    );
    wait_for(
        "the preview's containers to go",
        Duration::from_secs(30),
        || containers(&socket, &preview).is_empty().then_some(()),
    );
    assert_eq!(p.through_proxy(&host, "/").0, 404);
    let (status, _) = p.api("GET", &format!("/api/apps/{preview}"), None);
    assert_eq!(status, 404);
    // Give the engine's leftovers cleanup its time, then look for the images.
    std::thread::sleep(Duration::from_secs(3));
    let left = images(&socket, &preview);
    // Not left in the shared engine whatever the outcome.
    for tag in all_tags(&socket) {
        if tag.contains(&format!("/{preview}:")) {
            engine_delete(&socket, &format!("/images/{tag}?force=true"));
        }
    }
    assert_eq!(
        left,
        Vec::<String>::new(),
        "images of the removed preview {preview} left in the engine"
    );
}

// ---------------------------------------------------------------------------------------
// 6. The preview's certificate, from a real ACME CA.
// ---------------------------------------------------------------------------------------

/// The certificates cached under the state directory's acme/.
fn cached_certificates(p: &Platform) -> Vec<String> {
    let dir = state_dir(p.dir.path()).join("acme");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("cached_cert_"))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

fn certificate_domains(p: &Platform) -> Vec<String> {
    let (status, states) = p.api("GET", "/api/certificates", None);
    assert_eq!(status, 200, "{states}");
    states
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["domain"].as_str().map(str::to_owned))
        .collect()
}

/// A preview's host gets its own certificate from the CA (Pebble), as an app's domain does;
/// closing the PR removes the certificate file and its state, and keeps the app's.
#[test]
fn a_previews_certificate_comes_from_the_ca_and_goes_with_the_pr() {
    if !common::pebble::available() {
        return;
    }
    let Some(socket) = podman_socket("a preview's certificate, rootful Podman") else {
        return;
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let ca_dir = common::TestDir::new();
    let (http_port, https_port) = (common::free_port(), common::free_port());
    let pebble = common::pebble::Pebble::start(&ca_dir, http_port, https_port);
    let root = rt.block_on(pebble.root());
    let (http, https) = (
        format!("127.0.0.1:{http_port}"),
        format!("127.0.0.1:{https_port}"),
    );
    let (directory, ca) = (
        pebble.directory_url.clone(),
        pebble.listener_ca.display().to_string(),
    );
    let p = Platform::start(
        &socket,
        &[
            ("RIVETR_RUNTIME_ENGINE", "podman"),
            ("RIVETR_PROXY_HTTP_LISTEN", &http),
            ("RIVETR_PROXY_HTTPS_LISTEN", &https),
            ("RIVETR_ACME_ENABLED", "true"),
            ("RIVETR_ACME_DIRECTORY_URL", &directory),
            ("RIVETR_ACME_EXTRA_ROOT_CA", &ca),
            ("RIVETR_ACME_CHALLENGE", "tls-alpn-01"),
            ("RIVETR_ACME_CONTACT_EMAIL", "ops@rivetr.test"),
            ("RIVETR_ACME_RETRY_AFTER_FAILURE_SECONDS", "2"),
        ],
    );
    let repo = GitRepo::new(&page("cert main"));
    let app = unique_name("cert");
    // Under a name Pebble's DNS answers for (Rivetr never orders for `.test`).
    let domain = format!("{app}.acme.rivetr-tests.net");
    let secret = create_app(
        &p,
        &app,
        &repo,
        json!({ "enabled": true }),
        json!({ "domains": [domain] }),
    );
    let main_deploy = p.deploy(&app, None);
    wait_running(&p, main_deploy);
    let sha = commit_on(
        &repo,
        "tls",
        "main",
        &[("www/index.html", &page("cert PR"))],
        "tls",
    );
    let preview = format!("{app}-pr-5");
    let host = format!("pr-5.{domain}");
    let id = queued(
        &deliver(
            &p,
            Forge::GitHub,
            &app,
            &secret,
            Act::Open,
            &Pr::new(5, "tls", &sha, T0),
            "c-open",
        ),
        &preview,
    );
    wait_running(&p, id);
    let https_addr: std::net::SocketAddr = https.parse().unwrap();
    let fetch = |h: &str| rt.block_on(common::pebble::https_get(https_addr, h, &root));
    let served = wait_for(
        "the preview served over HTTPS with the CA's certificate",
        Duration::from_secs(90),
        || fetch(&host).ok(),
    );
    assert_eq!(served.1, page("cert PR"));
    wait_for("the app's own certificate", Duration::from_secs(90), || {
        fetch(&domain).ok()
    });
    wait_for("both certificates cached", Duration::from_secs(30), || {
        (cached_certificates(&p).len() == 2).then_some(())
    });
    let before = cached_certificates(&p);
    assert!(certificate_domains(&p).contains(&host));

    let (status, answer) = deliver(
        &p,
        Forge::GitHub,
        &app,
        &secret,
        Act::Close,
        &Pr::new(5, "tls", &sha, T0 + 60),
        "c-close",
    );
    assert_eq!(
        (status, answer["outcome"].as_str()),
        (200, Some("removed")),
        "{answer}"
    );
    wait_for(
        "the preview's certificate file to go",
        Duration::from_secs(30),
        || (cached_certificates(&p).len() == 1).then_some(()),
    );
    let after = cached_certificates(&p);
    assert!(before.contains(&after[0]), "the app's certificate stays");
    assert!(
        !certificate_domains(&p).contains(&host),
        "the preview's certificate state stays: {:?}",
        certificate_domains(&p)
    );
    p.rivetr.wait_log(
        "removed the certificate of a retired host",
        Duration::from_secs(10),
    );
    // The app keeps being served over HTTPS with its certificate.
    assert_eq!(fetch(&domain).unwrap().1, page("cert main"));
}
