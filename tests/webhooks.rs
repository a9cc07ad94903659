//! Forge webhooks against the real binary, with the real payloads in tests/fixtures/webhooks
//! and the headers real deliveries carry (HEADERS.md there).
//!
//! These daemons run without a container engine, so a delivery that should deploy reaches the
//! engine and is refused with 503 (`no container runtime`), leaving no delivery recorded;
//! everything up to that point (signatures, parsing, branch decisions, dedupe of already-seen
//! deliveries) is checked here with the status codes the issue fixes. Deliveries that really
//! deploy, on Podman, are in tests/webhook_deploys.rs.

use crate::common;

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use common::api::{
    Api, Resp, fixture, initial_token, insert_app, open_db, request, set_webhook_secret, sign,
};
use common::{Launch, Rivetr, TestDir};

struct Env {
    dir: TestDir,
    rivetr: Rivetr,
    api: Api,
}

fn start() -> Env {
    let dir = TestDir::new();
    // No engine, whatever runs on this machine: a socket that does not exist.
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
    Env { dir, rivetr, api }
}

impl Env {
    /// An app with a secret from the API, as a user would get it.
    fn app(&self, name: &str, branch: &str) -> String {
        insert_app(self.dir.path(), name, branch);
        let r = self
            .api
            .post_json(&format!("/api/apps/{name}/webhook-secret"), "");
        assert_eq!(r.status, 200, "{}", r.body);
        let body = r.json();
        assert_eq!(
            body["webhook_urls"]["github"],
            format!("http://localhost/webhooks/github/{name}")
        );
        body["webhook_secret"].as_str().unwrap().to_owned()
    }

    fn post(&self, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Resp {
        request(self.api.addr, "POST", path, headers, body)
    }

    fn deliveries(&self) -> i64 {
        open_db(self.dir.path())
            .query_row("SELECT COUNT(*) FROM webhook_deliveries", [], |r| r.get(0))
            .unwrap()
    }
}

fn github_headers<'a>(event: &'a str, delivery: &'a str, sig: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("X-GitHub-Event", event),
        ("X-GitHub-Delivery", delivery),
        ("X-Hub-Signature-256", sig),
        ("Content-Type", "application/json"),
        ("User-Agent", "GitHub-Hookshot/044aadd"),
    ]
}

/// The state a queueing push reaches when no container engine runs: the engine refuses with
/// 503, and nothing stays recorded.
fn assert_reaches_the_engine_hook(env: &Env, r: &Resp) {
    assert_eq!(r.status, 503, "{}", r.body);
    assert_eq!(r.code(), "unavailable");
    assert!(r.message().contains("no container runtime"), "{}", r.body);
    assert_eq!(
        env.deliveries(),
        0,
        "a refused delivery must not stay claimed"
    );
}

#[test]
fn github_documented_vector_passes_the_signature_check() {
    let env = start();
    let id = insert_app(env.dir.path(), "docs", "main");
    set_webhook_secret(env.dir.path(), id, "It's a Secret to Everybody");
    let good = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
    // "Hello, World!" is not JSON: with the right signature that is a 400, not a 401.
    let r = env.post(
        "/webhooks/github/docs",
        &github_headers("push", "doc-1", good),
        b"Hello, World!",
    );
    assert_eq!(
        (r.status, r.code().as_str()),
        (400, "invalid_webhook"),
        "{}",
        r.body
    );
    assert!(r.message().contains("malformed JSON"), "{}", r.body);

    let bad = good.replace("757107", "757108");
    let r = env.post(
        "/webhooks/github/docs",
        &github_headers("push", "doc-1", &bad),
        b"Hello, World!",
    );
    assert_eq!((r.status, r.code().as_str()), (401, "unauthorized"));
}

#[test]
fn github_deliveries() {
    let env = start();
    let secret = env.app("blog", "master");
    let url = "/webhooks/github/blog";

    // The push fixture is to master: it goes to the engine hook.
    let push = fixture("github/push.json");
    let sig = format!("sha256={}", sign(&secret, &push));
    let r = env.post(url, &github_headers("push", "d-push", &sig), &push);
    assert_reaches_the_engine_hook(&env, &r);

    // The same push form-encoded, as a hook set to that content type sends it.
    let form: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("payload", std::str::from_utf8(&push).unwrap())
        .finish();
    let sig_form = format!("sha256={}", sign(&secret, form.as_bytes()));
    let mut headers = github_headers("push", "d-form", &sig_form);
    headers.retain(|(k, _)| *k != "Content-Type");
    headers.push(("Content-Type", "application/x-www-form-urlencoded"));
    let r = env.post(url, &headers, form.as_bytes());
    assert_reaches_the_engine_hook(&env, &r);

    // A push creating the branch is a push of its head.
    let created = fixture("github/push-new-branch.json");
    let sig_created = format!("sha256={}", sign(&secret, &created));
    let r = env.post(
        url,
        &github_headers("push", "d-new", &sig_created),
        &created,
    );
    assert_reaches_the_engine_hook(&env, &r);

    // ping: 200.
    let ping = fixture("github/ping.json");
    let sig_ping = format!("sha256={}", sign(&secret, &ping));
    let r = env.post(url, &github_headers("ping", "d-ping", &sig_ping), &ping);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["outcome"], "pong");

    // Another branch, a tag, a deleted branch, another event: 202 with the reason.
    let cases: [(&str, String, &str); 4] = [
        (
            "push",
            String::from_utf8(push.clone())
                .unwrap()
                .replacen("refs/heads/master", "refs/heads/feature", 1),
            "`feature`",
        ),
        (
            "push",
            r#"{"ref": "refs/tags/v1.2", "after": "fd489864e7642b48eaad6e3f155c10e46810ec72"}"#
                .to_owned(),
            "tag `v1.2`",
        ),
        (
            "push",
            r#"{"ref": "refs/heads/master", "after": "0000000000000000000000000000000000000000", "deleted": true}"#
                .to_owned(),
            "deleted",
        ),
        ("issues", r#"{"action": "opened"}"#.to_owned(), "`issues`"),
    ];
    for (i, (event, body, reason)) in cases.iter().enumerate() {
        let sig = format!("sha256={}", sign(&secret, body.as_bytes()));
        let delivery = format!("d-ignored-{i}");
        let r = env.post(
            url,
            &github_headers(event, &delivery, &sig),
            body.as_bytes(),
        );
        assert_eq!(r.status, 202, "{reason}: {}", r.body);
        let v = r.json();
        assert_eq!(v["outcome"], "ignored");
        assert!(v["message"].as_str().unwrap().contains(reason), "{v}");
    }
    assert_eq!(env.deliveries(), 0);
}

#[test]
fn wrong_or_missing_signatures_are_401_and_logged_without_the_secret() {
    let env = start();
    let secret = env.app("blog", "master");
    let push = fixture("github/push.json");
    let url = "/webhooks/github/blog";

    let wrong = format!("sha256={}", sign("not-the-secret", &push));
    let r = env.post(url, &github_headers("push", "w-1", &wrong), &push);
    assert_eq!((r.status, r.code().as_str()), (401, "unauthorized"));
    assert!(r.message().contains("X-Hub-Signature-256"), "{}", r.body);

    // A body altered after signing fails too.
    let sig = format!("sha256={}", sign(&secret, &push));
    let mut altered = push.clone();
    altered.extend_from_slice(b" ");
    let r = env.post(url, &github_headers("push", "w-2", &sig), &altered);
    assert_eq!(r.status, 401);

    let mut headers = github_headers("push", "w-3", "");
    headers.retain(|(k, _)| *k != "X-Hub-Signature-256");
    let r = env.post(url, &headers, &push);
    assert_eq!(r.status, 401);
    assert!(
        r.message().contains("missing X-Hub-Signature-256"),
        "{}",
        r.body
    );

    let r = env.post(url, &github_headers("push", "w-4", "sha256=zz"), &push);
    assert_eq!(r.status, 401);
    assert!(r.message().contains("malformed"), "{}", r.body);

    env.rivetr
        .wait_log("webhook refused", Duration::from_secs(5));
    let log = env.rivetr.log();
    let refused: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("webhook refused"))
        .collect();
    assert_eq!(refused.len(), 4, "{log}");
    for line in &refused {
        assert!(line.contains("127.0.0.1"), "no peer address: {line}");
        assert!(line.contains("app=blog"), "{line}");
    }
    assert!(!log.contains(&secret), "the secret reached the log");
    assert!(!log.contains(&sig[7..]), "a signature reached the log");
    assert_eq!(env.deliveries(), 0);
}

#[test]
fn bad_headers_and_payloads_are_400_naming_them() {
    let env = start();
    let secret = env.app("blog", "master");
    let url = "/webhooks/github/blog";
    let push = fixture("github/push.json");
    let sig = format!("sha256={}", sign(&secret, &push));

    let mut no_delivery = github_headers("push", "", &sig);
    no_delivery.retain(|(k, _)| *k != "X-GitHub-Delivery");
    let r = env.post(url, &no_delivery, &push);
    assert_eq!((r.status, r.code().as_str()), (400, "invalid_webhook"));
    assert!(r.message().contains("X-GitHub-Delivery"), "{}", r.body);

    let mut no_event = github_headers("", "b-1", &sig);
    no_event.retain(|(k, _)| *k != "X-GitHub-Event");
    let r = env.post(url, &no_event, &push);
    assert_eq!(r.status, 400);
    assert!(r.message().contains("X-GitHub-Event"), "{}", r.body);

    let malformed = br#"{"ref": "refs/heads/master", "after": "#;
    let sig_m = format!("sha256={}", sign(&secret, malformed));
    let r = env.post(url, &github_headers("push", "b-2", &sig_m), malformed);
    assert_eq!(r.status, 400);
    assert!(r.message().contains("malformed JSON"), "{}", r.body);

    let no_after = br#"{"ref": "refs/heads/master"}"#;
    let sig_n = format!("sha256={}", sign(&secret, no_after));
    let r = env.post(url, &github_headers("push", "b-3", &sig_n), no_after);
    assert_eq!(r.status, 400);
    assert!(r.message().contains("`after`"), "{}", r.body);

    let bad_sha = br#"{"ref": "refs/heads/master", "after": "nope"}"#;
    let sig_b = format!("sha256={}", sign(&secret, bad_sha));
    let r = env.post(url, &github_headers("push", "b-4", &sig_b), bad_sha);
    assert_eq!(r.status, 400);
    assert!(r.message().contains("`after`"), "{}", r.body);
}

#[test]
fn unknown_provider_app_or_secret() {
    let env = start();
    let push = fixture("github/push.json");
    let r = env.post("/webhooks/bitbucket/blog", &[], &push);
    assert_eq!((r.status, r.code().as_str()), (404, "not_found"));
    assert!(r.message().contains("bitbucket"));
    let r = env.post("/webhooks/github/ghost", &[], &push);
    assert_eq!(r.status, 404);
    assert!(r.message().contains("`ghost`"));
    insert_app(env.dir.path(), "nosecret", "main");
    let r = env.post("/webhooks/github/nosecret", &[], &push);
    assert_eq!((r.status, r.code().as_str()), (401, "webhook_secret_unset"));
    let r = env.api.post_json("/api/apps/ghost/webhook-secret", "");
    assert_eq!(r.status, 404);
    // Rotating needs a token like every /api route.
    let r = request(
        env.api.addr,
        "POST",
        "/api/apps/nosecret/webhook-secret",
        &[],
        b"",
    );
    assert_eq!(r.status, 401);
}

#[test]
fn repeated_deliveries_answer_200_and_are_per_app() {
    let env = start();
    let secret = env.app("blog", "master");
    let other_secret = env.app("blog-staging", "master");
    let blog_id: i64 = open_db(env.dir.path())
        .query_row("SELECT id FROM apps WHERE name = 'blog'", [], |r| r.get(0))
        .unwrap();
    // A delivery the engine already took (recorded the way the handler records one).
    open_db(env.dir.path())
        .execute(
            "INSERT INTO webhook_deliveries (app_id, provider, delivery_id) VALUES (?1, 'github', 'seen-1')",
            [blog_id],
        )
        .unwrap();
    let push = fixture("github/push.json");
    let sig = format!("sha256={}", sign(&secret, &push));
    let r = env.post(
        "/webhooks/github/blog",
        &github_headers("push", "seen-1", &sig),
        &push,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["outcome"], "duplicate");

    // GitHub gives every hook of one event the same delivery id: for another app it is new.
    let sig_other = format!("sha256={}", sign(&other_secret, &push));
    let r = env.post(
        "/webhooks/github/blog-staging",
        &github_headers("push", "seen-1", &sig_other),
        &push,
    );
    assert_eq!(r.status, 503, "{}", r.body);
    // A repeat that fails its signature is still a 401, not a 200.
    let wrong = format!("sha256={}", sign("nope", &push));
    let r = env.post(
        "/webhooks/github/blog",
        &github_headers("push", "seen-1", &wrong),
        &push,
    );
    assert_eq!(r.status, 401);
}

#[test]
fn gitlab_deliveries() {
    let env = start();
    let secret = env.app("shop", "master");
    let url = "/webhooks/gitlab/shop";
    let push = fixture("gitlab/push.json");
    let headers = |token: &str, uuid: &str| -> Vec<(String, String)> {
        vec![
            ("X-Gitlab-Event".into(), "Push Hook".into()),
            ("X-Gitlab-Event-UUID".into(), uuid.into()),
            ("X-Gitlab-Token".into(), token.into()),
            ("Content-Type".into(), "application/json".into()),
            ("User-Agent".into(), "GitLab/17.0.0".into()),
        ]
    };
    let send = |h: Vec<(String, String)>, body: &[u8]| {
        let h: Vec<(&str, &str)> = h.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        env.post(url, &h, body)
    };

    let r = send(headers(&secret, "g-1"), &push);
    assert_reaches_the_engine_hook(&env, &r);

    let r = send(headers("wrong-token", "g-2"), &push);
    assert_eq!(r.status, 401);
    assert!(r.message().contains("X-Gitlab-Token"), "{}", r.body);

    let mut no_token = headers(&secret, "g-3");
    no_token.retain(|(k, _)| k != "X-Gitlab-Token");
    let r = send(no_token, &push);
    assert_eq!(r.status, 401);

    // Another branch: 202.
    let feature = String::from_utf8(push.clone())
        .unwrap()
        .replace("refs/heads/master", "refs/heads/feature");
    let r = send(headers(&secret, "g-4"), feature.as_bytes());
    assert_eq!(r.status, 202, "{}", r.body);

    // Deduplication prefers Idempotency-Key (GitLab 17.4+) over the event UUID.
    let app_id: i64 = open_db(env.dir.path())
        .query_row("SELECT id FROM apps WHERE name = 'shop'", [], |r| r.get(0))
        .unwrap();
    open_db(env.dir.path())
        .execute(
            "INSERT INTO webhook_deliveries (app_id, provider, delivery_id) VALUES (?1, 'gitlab', 'idem-1')",
            [app_id],
        )
        .unwrap();
    let mut with_key = headers(&secret, "g-5");
    with_key.push(("Idempotency-Key".into(), "idem-1".into()));
    let r = send(with_key, &push);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["outcome"], "duplicate");

    let mut no_id = headers(&secret, "x");
    no_id.retain(|(k, _)| k != "X-Gitlab-Event-UUID");
    let r = send(no_id, &push);
    assert_eq!(r.status, 400);
    assert!(r.message().contains("X-Gitlab-Event-UUID"), "{}", r.body);
}

#[test]
fn gitea_and_forgejo_deliveries() {
    let env = start();
    let secret = env.app("wiki", "develop");
    let url = "/webhooks/gitea/wiki";

    let push = fixture("gitea/push.json");
    let sig = sign(&secret, &push);
    let gitea = |sig: &str, delivery: &str, body: &[u8]| {
        env.post(
            url,
            &[
                ("X-Gitea-Event", "push"),
                ("X-Gitea-Event-Type", "push"),
                ("X-Gitea-Delivery", delivery),
                ("X-Gitea-Signature", sig),
                ("X-GitHub-Event", "push"),
                ("X-Hub-Signature-256", &format!("sha256={sig}")),
                ("Content-Type", "application/json"),
            ],
            body,
        )
    };
    let r = gitea(&sig, "t-1", &push);
    assert_reaches_the_engine_hook(&env, &r);

    let r = gitea(&sign("other", &push), "t-2", &push);
    assert_eq!(r.status, 401);
    assert!(r.message().contains("X-Gitea-Signature"), "{}", r.body);
    // A hook without a secret sends the header empty.
    let r = gitea("", "t-3", &push);
    assert_eq!(r.status, 401);

    // The first push of master: another branch for this app.
    let created = fixture("gitea/push-new-branch.json");
    let r = gitea(&sign(&secret, &created), "t-4", &created);
    assert_eq!(r.status, 202, "{}", r.body);
    assert!(r.json()["message"].as_str().unwrap().contains("`master`"));

    // Forgejo's own headers only.
    let forgejo = fixture("gitea/forgejo-push.json");
    let fsig = sign(&secret, &forgejo);
    let r = env.post(
        url,
        &[
            ("X-Forgejo-Event", "push"),
            ("X-Forgejo-Delivery", "f-1"),
            ("X-Forgejo-Signature", &fsig),
            ("Content-Type", "application/json"),
        ],
        &forgejo,
    );
    assert_reaches_the_engine_hook(&env, &r);

    // A deleted branch arrives only as a `delete` event: 202.
    let delete = br#"{"ref": "develop", "ref_type": "branch", "pusher_type": "user"}"#;
    let r = env.post(
        url,
        &[
            ("X-Gitea-Event", "delete"),
            ("X-Gitea-Delivery", "t-5"),
            ("X-Gitea-Signature", &sign(&secret, delete)),
        ],
        delete,
    );
    assert_eq!(r.status, 202, "{}", r.body);
}

#[test]
fn bodies_over_5_mb_are_413() {
    let env = start();
    let secret = env.app("blog", "master");
    let url = "/webhooks/github/blog";
    let big = vec![b' '; 5 * 1024 * 1024 + 1];
    let sig = format!("sha256={}", sign(&secret, &big));

    // Announced with Content-Length: refused before the body is read.
    let r = env.post(url, &github_headers("push", "big-1", &sig), &big);
    assert_eq!(
        (r.status, r.code().as_str()),
        (413, "payload_too_large"),
        "{}",
        r.body
    );

    // Streamed without a length: refused once the limit is passed.
    let r = chunked_post(
        env.api.addr,
        url,
        &github_headers("push", "big-2", &sig),
        &big,
    );
    assert_eq!(r.status, 413, "{}", r.body);

    // Exactly 5 MB of JSON whitespace around a push is accepted.
    let push = fixture("github/push.json");
    let mut padded = push.clone();
    padded.resize(5 * 1024 * 1024, b' ');
    let sig = format!("sha256={}", sign(&secret, &padded));
    let r = env.post(url, &github_headers("push", "big-3", &sig), &padded);
    assert_eq!(r.status, 503, "{}", r.body);
}

/// POSTs `body` with `Transfer-Encoding: chunked`, writing from another thread while the
/// answer is read, as a client that streams does.
fn chunked_post(
    addr: std::net::SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Resp {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut head = format!(
        "POST {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n"
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).unwrap();
    let mut writer = s.try_clone().unwrap();
    let body = body.to_vec();
    let sender = std::thread::spawn(move || {
        for chunk in body.chunks(64 * 1024) {
            let frame = [format!("{:x}\r\n", chunk.len()).as_bytes(), chunk, b"\r\n"].concat();
            if writer.write_all(&frame).is_err() {
                return;
            }
        }
        let _ = writer.write_all(b"0\r\n\r\n");
    });
    let r = common::api::read_response(&mut s);
    let _ = sender.join();
    r
}

#[test]
fn failed_signatures_are_limited_per_client_and_app() {
    let env = start();
    let secret = env.app("blog", "master");
    let other = env.app("shop", "master");
    let push = fixture("github/push.json");
    let wrong = format!("sha256={}", sign("guess", &push));
    for i in 0..10 {
        let r = env.post(
            "/webhooks/github/blog",
            &github_headers("push", &format!("l-{i}"), &wrong),
            &push,
        );
        assert_eq!(r.status, 401);
    }
    let sig = format!("sha256={}", sign(&secret, &push));
    let r = env.post(
        "/webhooks/github/blog",
        &github_headers("push", "l-ok", &sig),
        &push,
    );
    assert_eq!(
        (r.status, r.code().as_str()),
        (429, "rate_limited"),
        "{}",
        r.body
    );
    assert!(r.header("retry-after").is_some());

    // Forges send every hook from a few shared addresses, and GitHub does not retry: one
    // app's stale secret must not shut out another app's webhook, nor the API.
    let ping = fixture("github/ping.json");
    let sig = format!("sha256={}", sign(&other, &ping));
    let r = env.post(
        "/webhooks/github/shop",
        &github_headers("ping", "l-shop", &sig),
        &ping,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(env.api.get("/api/tokens").status, 200);
}

#[test]
fn rotating_the_secret_stops_the_old_one_at_once() {
    let env = start();
    let old = env.app("blog", "master");
    let r = env.api.post_json("/api/apps/blog/webhook-secret", "");
    let new = r.json()["webhook_secret"].as_str().unwrap().to_owned();
    assert_ne!(old, new);
    assert_eq!(new.len(), 64);
    let ping = fixture("github/ping.json");
    let with = |secret: &str| {
        let sig = format!("sha256={}", sign(secret, &ping));
        env.post(
            "/webhooks/github/blog",
            &github_headers("ping", "r-1", &sig),
            &ping,
        )
        .status
    };
    assert_eq!(with(&old), 401);
    assert_eq!(with(&new), 200);
    assert!(!env.rivetr.log().contains(&new));
}
