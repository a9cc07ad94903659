//! A signed push from each forge deploys exactly the pushed commit, and the app serves it
//! through the proxy: the real binary on Podman, the forges' real payloads (tests/fixtures)
//! pointed at a real git repository, signed as each forge signs.

use crate::common;

use common::api::{fixture, sign};
use common::platform::{GitRepo, Platform, podman_socket, unique_name};
use serde_json::{Value, json};

/// The fixture with its branch and commit replaced by ours.
fn payload(path: &str, sha: &str) -> Vec<u8> {
    let mut v: Value = serde_json::from_slice(&fixture(path)).unwrap();
    v["ref"] = json!("refs/heads/main");
    v["after"] = json!(sha);
    if v.get("checkout_sha").is_some() {
        v["checkout_sha"] = json!(sha);
    }
    if let Some(deleted) = v.get_mut("deleted") {
        *deleted = json!(false);
    }
    serde_json::to_vec(&v).unwrap()
}

fn post(p: &Platform, path: &str, headers: &[(&str, String)], body: &[u8]) -> (u16, Value) {
    let mut all: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
    all.push(("Content-Type", "application/json"));
    let r = common::api::request(p.rivetr.api(), "POST", path, &all, body);
    (r.status, r.json())
}

fn deliver(
    p: &Platform,
    provider: &str,
    app: &str,
    secret: &str,
    sha: &str,
    delivery: &str,
) -> (u16, Value) {
    let path = format!("/webhooks/{provider}/{app}");
    match provider {
        "github" => {
            let body = payload("github/push.json", sha);
            let sig = format!("sha256={}", sign(secret, &body));
            let headers = [
                ("X-GitHub-Event", "push".to_owned()),
                ("X-GitHub-Delivery", delivery.to_owned()),
                ("X-Hub-Signature-256", sig),
                ("User-Agent", "GitHub-Hookshot/044aadd".to_owned()),
            ];
            post(p, &path, &headers, &body)
        }
        "gitlab" => {
            let body = payload("gitlab/push.json", sha);
            let headers = [
                ("X-Gitlab-Event", "Push Hook".to_owned()),
                ("X-Gitlab-Event-UUID", delivery.to_owned()),
                ("X-Gitlab-Token", secret.to_owned()),
            ];
            post(p, &path, &headers, &body)
        }
        "gitea" => {
            let body = payload("gitea/push.json", sha);
            let headers = [
                ("X-Gitea-Event", "push".to_owned()),
                ("X-Gitea-Delivery", delivery.to_owned()),
                ("X-Gitea-Signature", sign(secret, &body)),
            ];
            post(p, &path, &headers, &body)
        }
        other => panic!("no provider {other}"),
    }
}

#[test]
fn a_signed_push_from_each_forge_deploys_that_commit() {
    let Some(socket) = podman_socket("webhook deploys") else {
        return;
    };
    let p = Platform::start(&socket, &[]);
    for provider in ["github", "gitlab", "gitea"] {
        let repo = GitRepo::new("first\n");
        let name = unique_name(provider);
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
        let secret = created["webhook_secret"].as_str().unwrap().to_owned();
        assert!(
            created["webhooks"][provider]
                .as_str()
                .unwrap()
                .ends_with(&format!("/webhooks/{provider}/{name}"))
        );

        // Two commits; the push names the first, and that is what runs, not the branch head.
        let pushed = repo.commit(
            &[("www/index.html", &format!("pushed via {provider}\n"))],
            "pushed",
        );
        repo.commit(&[("www/index.html", "later\n")], "not pushed");

        let (status, answer) = deliver(
            &p,
            provider,
            &name,
            &secret,
            &pushed,
            &format!("{provider}-1"),
        );
        assert_eq!(status, 202, "{provider}: {answer}");
        assert_eq!(answer["outcome"], "queued", "{answer}");
        let id = answer["deployment_id"]
            .as_i64()
            .unwrap_or_else(|| panic!("no deployment id: {answer}"));
        let d = p.wait_done(id);
        assert_eq!(d["status"], "running", "{provider}: {}", p.logs(id));
        assert_eq!(d["commit_sha"], pushed);
        assert_eq!(d["trigger"], "webhook");
        assert_eq!(
            p.through_proxy(&format!("{name}.test"), "/"),
            (200, format!("pushed via {provider}\n"))
        );

        // The forge's retry of the same delivery queues nothing.
        let (status, again) = deliver(
            &p,
            provider,
            &name,
            &secret,
            &pushed,
            &format!("{provider}-1"),
        );
        assert_eq!(status, 200, "{again}");
        assert_eq!(again["outcome"], "duplicate");
        let (_, list) = p.api("GET", &format!("/api/apps/{name}/deployments"), None);
        assert_eq!(list.as_array().unwrap().len(), 1, "{list}");

        // A wrong signature is refused and queues nothing.
        let (status, _) = deliver(
            &p,
            provider,
            &name,
            "not-the-secret",
            &pushed,
            &format!("{provider}-2"),
        );
        assert_eq!(status, 401);
        let (_, list) = p.api("GET", &format!("/api/apps/{name}/deployments"), None);
        assert_eq!(list.as_array().unwrap().len(), 1);
    }
}
