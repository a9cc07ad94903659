//! Notifications against the real binary: the channel API and where a channel's secrets go
//! (never in clear into the database, its WAL or the log), the body, headers and signature
//! each kind of channel receives, the retries of a queued message, and email to a real SMTP
//! server (aiosmtpd, `tests/fixtures/smtp_sink.py`) over STARTTLS and TLS with AUTH.
//!
//! No container engine is needed: a daemon killed with SIGKILL and started again queues
//! `rivetr.started_after_crash` to every channel, which drives the delivery queue. HTTP
//! receivers are `common::sink::Sink`s.

use crate::common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use common::api::{Api, Resp, initial_token, request, state_dir};
use common::sink::{Received, Sink};
use common::{Launch, Rivetr, TestDir, free_port, wait_for};
use serde_json::{Value, json};

const SERVER: &str = "test-box";
const DASHBOARD: &str = "https://rivetr.test";
const CRASH_EVENT: &str = "rivetr.started_after_crash";

// ---------------------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------------------

fn launch() -> Launch {
    Launch::serve()
        .env("RIVETR_NOTIFICATIONS_RETRY_FIRST_SECONDS", "1")
        .env("RIVETR_NOTIFICATIONS_SERVER_NAME", SERVER)
        .env("RIVETR_NOTIFICATIONS_DASHBOARD_URL", DASHBOARD)
        // No container engine: the crash-loop check must not see other tests' containers.
        .env(
            "RIVETR_RUNTIME_SOCKET",
            "unix:///nonexistent/rivetr-no-engine.sock",
        )
}

fn start(dir: &TestDir) -> (Rivetr, Api) {
    let mut rivetr = launch().start(dir);
    rivetr.wait_healthy();
    let api = Api {
        addr: rivetr.api(),
        token: initial_token(dir.path()),
    };
    (rivetr, api)
}

fn marker(dir: &TestDir) -> PathBuf {
    state_dir(dir.path()).join("rivetr.running")
}

/// Waits for the marker of a completed start. The API answers a little before the start
/// completes (the marker is written just before READY), and a kill before it would be a
/// failed start, not a crash.
fn wait_marker(dir: &TestDir) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !marker(dir).exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(marker(dir).exists(), "no running marker while serving");
}

/// Kills `rivetr` with SIGKILL and starts it again in the same state directory: the new
/// process queues `rivetr.started_after_crash` to every channel that takes it.
fn crash_and_restart(dir: &TestDir, mut rivetr: Rivetr) -> (Rivetr, Api) {
    wait_marker(dir);
    rivetr.signal(libc::SIGKILL);
    rivetr.wait_exit(Duration::from_secs(10));
    drop(rivetr);
    assert!(marker(dir).exists(), "a kill -9 cannot remove the marker");
    start(dir)
}

/// SIGTERM, and a clean exit.
fn stop_cleanly(dir: &TestDir, mut rivetr: Rivetr) {
    rivetr.signal(libc::SIGTERM);
    let status = rivetr.wait_exit(Duration::from_secs(30));
    assert!(status.success(), "{status}:\n{}", rivetr.log());
    assert!(
        !marker(dir).exists(),
        "a clean stop leaves no running marker"
    );
}

fn post(api: &Api, path: &str, body: &Value) -> Resp {
    api.post_json(path, &body.to_string())
}

fn patch(api: &Api, path: &str, body: &Value) -> Resp {
    request(
        api.addr,
        "PATCH",
        path,
        &[
            ("Authorization", &api.auth()),
            ("Content-Type", "application/json"),
        ],
        body.to_string().as_bytes(),
    )
}

/// Creates a channel; the 201 answer's body.
fn create(api: &Api, body: Value) -> Value {
    let r = post(api, "/api/notifications", &body);
    assert_eq!(r.status, 201, "creating {body}: {}", r.body);
    r.json()
}

/// POST /api/notifications/{name}/test.
fn send_test(api: &Api, name: &str) -> Resp {
    api.post_json(&format!("/api/notifications/{name}/test"), "")
}

fn deliveries(api: &Api, query: &str) -> Vec<Value> {
    let r = api.get(&format!("/api/notifications/deliveries{query}"));
    assert_eq!(r.status, 200, "{}", r.body);
    r.json().as_array().unwrap().clone()
}

/// Waits until the newest delivery to `channel` has `status`; returns it.
fn wait_delivery(api: &Api, channel: &str, status: &str, timeout: Duration) -> Value {
    let deadline = Instant::now() + timeout;
    loop {
        let list = deliveries(api, &format!("?channel={channel}"));
        if let Some(d) = list.first().filter(|d| d["status"] == status) {
            return d.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no {status} delivery to {channel} within {timeout:?}: {list:#?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A 422 `invalid_value` whose message names `field`.
fn assert_invalid(r: &Resp, field: &str) {
    assert_eq!(r.status, 422, "{}", r.body);
    assert_eq!(r.code(), "invalid_value", "{}", r.body);
    assert!(
        r.message().starts_with(&format!("field `{field}`")),
        "the message should name `{field}`: {}",
        r.body
    );
}

/// Checks `X-Rivetr-Signature-256` against the exact body bytes, with the `hmac` crate.
fn assert_signed(secret: &str, req: &Received) {
    use hmac::{Hmac, KeyInit, Mac};
    let header = req
        .header("x-rivetr-signature-256")
        .unwrap_or_else(|| panic!("no signature header: {:?}", req.headers));
    let hex_sig = header
        .strip_prefix("sha256=")
        .unwrap_or_else(|| panic!("not sha256=<hex>: {header}"));
    assert_eq!(hex_sig.len(), 64, "{header}");
    let sig = hex::decode(hex_sig).unwrap();
    let mac = |key: &str| {
        let mut mac = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(key.as_bytes()).unwrap();
        mac.update(&req.body);
        mac
    };
    mac(secret).verify_slice(&sig).unwrap_or_else(|_| {
        panic!(
            "the signature does not match the body under the channel's secret: {header}\n{}",
            String::from_utf8_lossy(&req.body)
        )
    });
    assert!(
        mac("another-secret-entirely").verify_slice(&sig).is_err(),
        "a signature that any key verifies proves nothing"
    );
}

fn keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
    k.sort();
    k
}

/// A token unique to this run, for secrets that must be found (or not) byte for byte.
fn token(what: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{what}{}x{nanos:08x}Zq", std::process::id())
}

/// The bytes of the database and its WAL, as they are on disk now.
fn database_bytes(dir: &TestDir) -> Vec<(String, Vec<u8>)> {
    ["rivetr.db", "rivetr.db-wal"]
        .into_iter()
        .filter_map(|name| {
            let path = state_dir(dir.path()).join(name);
            std::fs::read(&path).ok().map(|b| (name.to_owned(), b))
        })
        .collect()
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

fn assert_rfc3339(v: &Value) {
    let s = v.as_str().unwrap_or_else(|| panic!("not a string: {v}"));
    assert!(
        chrono::DateTime::parse_from_rfc3339(s).is_ok(),
        "not RFC 3339: {s}"
    );
}

// ---------------------------------------------------------------------------------------
// 1. The channel API, and where the secrets go
// ---------------------------------------------------------------------------------------

#[test]
fn channels_are_created_checked_changed_and_removed_and_their_secrets_never_stored_in_clear() {
    let dir = TestDir::new();
    let (rivetr, api) = start(&dir);

    let slack_token = token("slackpath");
    let mm_token = token("mmpath");
    let mm_token2 = token("mmnewpath");
    let discord_token = token("discordpath");
    let webhook_token = token("webhookquery");
    let given_secret = token("given-signing-secret-");
    let smtp_password = token("smtp-password-");
    let secrets = [
        &slack_token,
        &mm_token,
        &mm_token2,
        &discord_token,
        &webhook_token,
        &given_secret,
        &smtp_password,
    ];

    let no_token = request(api.addr, "GET", "/api/notifications", &[], b"");
    assert_eq!(no_token.status, 401, "{}", no_token.body);
    assert_eq!(api.get("/api/notifications").json(), json!([]));

    // One channel of each kind.
    let slack = create(
        &api,
        json!({"name": "slack", "kind": "slack",
               "url": format!("https://hooks.slack.com/services/T0001/B0002/{slack_token}")}),
    );
    assert_eq!(slack["name"], "slack");
    assert_eq!(slack["kind"], "slack");
    assert_eq!(slack["url"], "https://hooks.slack.com/…");
    assert_eq!(slack["events"], json!([]));
    assert_eq!(slack["enabled"], true);
    assert_rfc3339(&slack["created_at"]);
    assert!(slack.get("signing_secret").is_none(), "{slack}");
    assert!(slack.get("email").is_none(), "{slack}");

    let mm = create(
        &api,
        json!({"name": "mm", "kind": "mattermost",
               "url": format!("https://chat.example.com/hooks/{mm_token}"),
               "events": ["deployment.failed", "deployment.succeeded"]}),
    );
    assert_eq!(mm["kind"], "mattermost");
    assert_eq!(mm["url"], "https://chat.example.com/…");
    assert_eq!(
        mm["events"],
        json!(["deployment.failed", "deployment.succeeded"])
    );

    let discord = create(
        &api,
        json!({"name": "discord", "kind": "discord", "enabled": false,
               "url": format!("https://discord.com/api/webhooks/1234/{discord_token}")}),
    );
    assert_eq!(discord["kind"], "discord");
    assert_eq!(discord["url"], "https://discord.com/…");
    assert_eq!(discord["enabled"], false);

    let signed = create(
        &api,
        json!({"name": "signed", "kind": "webhook", "signing_secret": given_secret,
               "url": format!("http://127.0.0.1:9/hook?token={webhook_token}")}),
    );
    assert_eq!(signed["kind"], "webhook");
    assert_eq!(signed["url"], "http://127.0.0.1:9/…");
    assert!(
        signed.get("signing_secret").is_none(),
        "a secret given is never shown back: {signed}"
    );

    // A webhook without a signing secret gets one, shown in this answer only.
    let generated = create(
        &api,
        json!({"name": "generated", "kind": "webhook", "url": "https://receiver.example.net/in"}),
    );
    let generated_secret = generated["signing_secret"]
        .as_str()
        .unwrap_or_else(|| panic!("no generated signing secret: {generated}"))
        .to_owned();
    assert!(
        generated_secret.len() >= 32 && generated_secret.bytes().all(|b| b.is_ascii_hexdigit()),
        "{generated_secret}"
    );

    let email_settings = json!({
        "host": "smtp.example.com",
        "port": 2525,
        "security": "starttls",
        "username": "ops-mailer",
        "from": "Rivetr <rivetr@example.com>",
        "to": ["ops@example.com", "Dev <dev@example.com>"],
    });
    let mail = create(
        &api,
        json!({"name": "mail", "kind": "email", "email": email_settings,
               "password": smtp_password, "events": ["backup.failed"]}),
    );
    assert_eq!(mail["kind"], "email");
    assert!(mail.get("url").is_none(), "{mail}");
    assert_eq!(mail["email"]["host"], "smtp.example.com");
    assert_eq!(mail["email"]["port"], 2525);
    assert_eq!(mail["email"]["security"], "starttls");
    assert_eq!(mail["email"]["username"], "ops-mailer");
    assert_eq!(mail["email"]["from"], "Rivetr <rivetr@example.com>");
    assert_eq!(
        mail["email"]["to"],
        json!(["ops@example.com", "Dev <dev@example.com>"])
    );
    assert!(!mail.to_string().contains("password"), "{mail}");

    // GET shows the URLs redacted, never a secret, never the signing secret.
    let list = api.get("/api/notifications");
    assert_eq!(list.status, 200);
    let names: Vec<String> = list
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_owned())
        .collect();
    let expected = ["discord", "generated", "mail", "mm", "signed", "slack"];
    assert_eq!(names, expected, "sorted by name");
    for c in list.json().as_array().unwrap() {
        assert!(c.get("signing_secret").is_none(), "{c}");
    }
    let one = api.get("/api/notifications/generated");
    assert_eq!(one.status, 200);
    assert_eq!(one.json()["url"], "https://receiver.example.net/…");
    assert!(one.json().get("signing_secret").is_none(), "{}", one.body);
    for body in [
        &list.body,
        &one.body,
        &api.get("/api/notifications/mail").body,
    ] {
        for s in secrets.iter().chain([&&generated_secret]) {
            assert!(!body.contains(s.as_str()), "{s} shown in {body}");
        }
    }

    // Refusals name the field and change nothing.
    let refused = [
        (
            json!({"name": "nourl", "kind": "webhook"}),
            "url",
            "a webhook without a URL",
        ),
        (
            json!({"name": "ftp", "kind": "slack", "url": "ftp://files.example.com/x"}),
            "url",
            "an ftp:// URL",
        ),
        (
            json!({"name": "noto", "kind": "email",
                   "email": {"host": "smtp.example.com", "security": "starttls",
                             "from": "rivetr@example.com", "to": []}}),
            "email.to",
            "an email channel without recipients",
        ),
        (
            json!({"name": "clear", "kind": "email", "password": "hunter2hunter2",
                   "email": {"host": "localhost", "security": "none", "username": "ops",
                             "from": "rivetr@example.com", "to": ["ops@example.com"]}}),
            "email.security",
            "a password over an unencrypted connection",
        ),
        (
            json!({"name": "unknown", "kind": "slack", "url": "https://hooks.slack.com/x",
                   "events": ["deployment.failed", "deployment.exploded"]}),
            "events",
            "an unknown event",
        ),
        (
            json!({"name": "slacksig", "kind": "slack", "url": "https://hooks.slack.com/x",
                   "signing_secret": "0123456789abcdef0123"}),
            "signing_secret",
            "a signing secret on a Slack channel",
        ),
        (
            json!({"name": "shortsig", "kind": "webhook", "url": "https://example.com/x",
                   "signing_secret": "short"}),
            "signing_secret",
            "a signing secret under 16 characters",
        ),
        (
            json!({"name": "Not A Label", "kind": "slack", "url": "https://hooks.slack.com/x"}),
            "name",
            "a name that is no DNS label",
        ),
        (
            json!({"name": "deliveries", "kind": "slack", "url": "https://hooks.slack.com/x"}),
            "name",
            "the name of the deliveries list",
        ),
    ];
    for (body, field, what) in &refused {
        let r = post(&api, "/api/notifications", body);
        assert_eq!(r.status, 422, "{what}: {}", r.body);
        assert_invalid(&r, field);
    }
    let r = post(
        &api,
        "/api/notifications",
        &json!({"name": "unknown", "kind": "slack", "url": "https://hooks.slack.com/x",
                "events": ["deployment.exploded"]}),
    );
    assert!(
        r.message().contains("deployment.exploded") && r.message().contains("backup.failed"),
        "the message names the wrong event and the known ones: {}",
        r.body
    );
    // A missing field is a malformed body (400, like every other endpoint), naming `to`.
    let r = post(
        &api,
        "/api/notifications",
        &json!({"name": "noto", "kind": "email",
                "email": {"host": "smtp.example.com", "security": "starttls",
                          "from": "rivetr@example.com"}}),
    );
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.code(), "invalid_json");
    assert!(r.message().contains("`to`"), "{}", r.body);
    assert_eq!(
        api.get("/api/notifications")
            .json()
            .as_array()
            .unwrap()
            .len(),
        expected.len(),
        "a refused channel was added"
    );

    // A name taken: 409, and the first channel stays as it was.
    let dup = post(
        &api,
        "/api/notifications",
        &json!({"name": "slack", "kind": "discord", "url": "https://discord.com/api/webhooks/9/z"}),
    );
    assert_eq!(dup.status, 409, "{}", dup.body);
    assert_eq!(dup.code(), "conflict");
    let slack_now = api.get("/api/notifications/slack").json();
    assert_eq!(slack_now["kind"], "slack");
    assert_eq!(slack_now["url"], "https://hooks.slack.com/…");

    // PATCH: what is given changes, the rest stays.
    let p = patch(
        &api,
        "/api/notifications/slack",
        &json!({"events": ["deployment.failed", "backup.failed"]}),
    );
    assert_eq!(p.status, 200, "{}", p.body);
    assert_eq!(
        p.json()["events"],
        json!(["deployment.failed", "backup.failed"])
    );
    assert_eq!(p.json()["url"], "https://hooks.slack.com/…");
    assert_eq!(p.json()["enabled"], true);
    let p = patch(&api, "/api/notifications/slack", &json!({"enabled": false}));
    assert_eq!(p.status, 200, "{}", p.body);
    assert_eq!(p.json()["enabled"], false);
    assert_eq!(
        p.json()["events"],
        json!(["deployment.failed", "backup.failed"])
    );
    let got = api.get("/api/notifications/slack").json();
    assert_eq!(got["enabled"], false);
    assert_eq!(got["events"], json!(["deployment.failed", "backup.failed"]));
    let p = patch(
        &api,
        "/api/notifications/mm",
        &json!({"url": format!("https://mm2.example.org/hooks/{mm_token2}")}),
    );
    assert_eq!(p.status, 200, "{}", p.body);
    assert_eq!(p.json()["url"], "https://mm2.example.org/…");
    assert_eq!(
        p.json()["events"],
        json!(["deployment.failed", "deployment.succeeded"])
    );
    assert!(!p.body.contains(&mm_token2), "{}", p.body);
    // Bad values in a PATCH are refused the same way and change nothing.
    assert_invalid(
        &patch(
            &api,
            "/api/notifications/mm",
            &json!({"url": "ftp://x.example/y"}),
        ),
        "url",
    );
    assert_invalid(
        &patch(&api, "/api/notifications/mm", &json!({"events": ["nope"]})),
        "events",
    );
    assert_invalid(
        &patch(
            &api,
            "/api/notifications/slack",
            &json!({"signing_secret": "0123456789abcdef0123"}),
        ),
        "signing_secret",
    );
    let mm_now = api.get("/api/notifications/mm").json();
    assert_eq!(mm_now["url"], "https://mm2.example.org/…");
    assert_eq!(
        mm_now["events"],
        json!(["deployment.failed", "deployment.succeeded"])
    );
    let missing = patch(&api, "/api/notifications/nosuch", &json!({"enabled": true}));
    assert_eq!(missing.status, 404, "{}", missing.body);

    // DELETE, then 404 everywhere.
    let d = api.delete("/api/notifications/discord");
    assert_eq!(d.status, 204, "{}", d.body);
    let gone = api.get("/api/notifications/discord");
    assert_eq!(gone.status, 404, "{}", gone.body);
    assert_eq!(gone.code(), "not_found");
    assert_eq!(api.delete("/api/notifications/discord").status, 404);
    assert_eq!(send_test(&api, "discord").status, 404);
    assert_eq!(
        api.get("/api/notifications/deliveries?channel=discord")
            .status,
        404
    );
    assert!(
        !api.get("/api/notifications").body.contains("\"discord\""),
        "a removed channel is listed"
    );

    // At rest: the database and its WAL hold none of the secrets in clear. The plain parts
    // of a channel are there, which shows these are the files written.
    let files = database_bytes(&dir);
    assert!(
        files.iter().any(|(_, b)| contains(b, "smtp.example.com")),
        "the email settings are in neither rivetr.db nor rivetr.db-wal"
    );
    for (name, bytes) in &files {
        for s in secrets.iter().chain([&&generated_secret]) {
            assert!(!contains(bytes, s), "{s} in clear in {name}");
        }
    }
    // Nor in the log.
    let log = rivetr.log();
    for s in secrets.iter().chain([&&generated_secret]) {
        assert!(!log.contains(s.as_str()), "{s} in the log:\n{log}");
    }
}

// ---------------------------------------------------------------------------------------
// 2. What each kind of channel receives
// ---------------------------------------------------------------------------------------

#[test]
fn test_messages_reach_each_kind_in_its_format_and_webhooks_are_signed() {
    let dir = TestDir::new();
    let (_rivetr, api) = start(&dir);
    let (webhook, generated, slack, mm, discord) = (
        Sink::start(&[]),
        Sink::start(&[]),
        Sink::start(&[]),
        Sink::start(&[]),
        Sink::start(&[]),
    );
    let secret = "a-signing-secret-of-the-tests-choosing";
    create(
        &api,
        json!({"name": "hook", "kind": "webhook", "signing_secret": secret,
               "url": webhook.url("/in/hook?token=t0k3n")}),
    );
    let generated_secret = create(
        &api,
        json!({"name": "gen", "kind": "webhook", "url": generated.url("/gen")}),
    )["signing_secret"]
        .as_str()
        .unwrap()
        .to_owned();
    create(
        &api,
        json!({"name": "slack", "kind": "slack", "url": slack.url("/services/T1/B2/xyz")}),
    );
    create(
        &api,
        json!({"name": "mm", "kind": "mattermost", "url": mm.url("/hooks/abc")}),
    );
    create(
        &api,
        json!({"name": "discord", "kind": "discord", "url": discord.url("/api/webhooks/1/tok")}),
    );

    // Each test message: 200 with its delivery, sent on the first try.
    let mut ids = Vec::new();
    for name in ["hook", "gen", "slack", "mm", "discord"] {
        let r = send_test(&api, name);
        assert_eq!(r.status, 200, "{name}: {}", r.body);
        let d = r.json();
        assert_eq!(d["channel"], name);
        assert_eq!(d["event"], "test");
        assert_eq!(d["status"], "sent");
        assert_eq!(d["attempts"], 1);
        assert_eq!(d["title"], format!("Test message to `{name}`"));
        assert!(d.get("last_error").is_none(), "{d}");
        assert!(d.get("next_attempt").is_none(), "{d}");
        assert_rfc3339(&d["sent_at"]);
        ids.push(d["id"].as_i64().unwrap());
    }

    let one = |sink: &Sink, path: &str| -> Received {
        let got = sink.received();
        assert_eq!(got.len(), 1, "{got:#?}");
        let r = got.into_iter().next().unwrap();
        assert_eq!(r.method, "POST");
        assert_eq!(r.path, path);
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert!(
            r.header("user-agent")
                .is_some_and(|u| u.starts_with("Rivetr/")),
            "{:?}",
            r.headers
        );
        r
    };

    // The generic webhook: the message as JSON, its event and delivery id in headers, and an
    // HMAC-SHA256 of the exact body bytes.
    let hook = one(&webhook, "/in/hook?token=t0k3n");
    assert_eq!(hook.header("x-rivetr-event"), Some("test"));
    assert_eq!(
        hook.header("x-rivetr-delivery"),
        Some(ids[0].to_string().as_str())
    );
    assert_signed(secret, &hook);
    let body = hook.json();
    assert_eq!(
        keys(&body),
        ["at", "event", "server", "text", "title", "url"],
        "{body}"
    );
    assert_eq!(body["event"], "test");
    assert_eq!(body["title"], "Test message to `hook`");
    assert_eq!(
        body["text"],
        "This channel receives Rivetr's notifications."
    );
    assert_eq!(body["server"], SERVER);
    assert_eq!(body["url"], DASHBOARD);
    assert_rfc3339(&body["at"]);

    let gen_req = one(&generated, "/gen");
    assert_eq!(
        gen_req.header("x-rivetr-delivery"),
        Some(ids[1].to_string().as_str())
    );
    assert_signed(&generated_secret, &gen_req);

    // Slack and Mattermost: {"text"}; Discord: {"content", "allowed_mentions"}. None signed.
    let slack_req = one(&slack, "/services/T1/B2/xyz");
    let slack_body = slack_req.json();
    assert_eq!(keys(&slack_body), ["text"], "{slack_body}");
    let text = slack_body["text"].as_str().unwrap();
    assert!(text.starts_with("*Test message to `slack`*\n"), "{text}");
    assert!(
        text.contains("This channel receives Rivetr's notifications."),
        "{text}"
    );
    assert!(text.contains(&format!("Server: {SERVER}")), "{text}");
    assert!(
        text.contains(&format!("<{DASHBOARD}|Open in Rivetr>")),
        "{text}"
    );

    let mm_body = one(&mm, "/hooks/abc").json();
    assert_eq!(keys(&mm_body), ["text"], "{mm_body}");
    let text = mm_body["text"].as_str().unwrap();
    assert!(text.contains("Test message to `mm`"), "{text}");
    assert!(text.contains(&format!("Server: {SERVER}")), "{text}");
    assert!(
        text.contains(&format!("[Open in Rivetr]({DASHBOARD})")),
        "{text}"
    );

    let discord_req = one(&discord, "/api/webhooks/1/tok");
    let discord_body = discord_req.json();
    assert_eq!(
        keys(&discord_body),
        ["allowed_mentions", "content"],
        "{discord_body}"
    );
    assert_eq!(discord_body["allowed_mentions"], json!({"parse": []}));
    let content = discord_body["content"].as_str().unwrap();
    assert!(content.contains("Test message to `discord`"), "{content}");
    assert!(content.contains(&format!("Server: {SERVER}")), "{content}");
    assert!(content.contains(DASHBOARD), "{content}");
    for r in [&slack_req, &discord_req] {
        assert!(
            r.header("x-rivetr-signature-256").is_none(),
            "{:?}",
            r.headers
        );
        assert!(r.header("x-rivetr-delivery").is_none(), "{:?}", r.headers);
    }

    // The record of deliveries: newest first, filtered by status, limited.
    let sent = deliveries(&api, "?status=sent");
    let mut sent_ids: Vec<i64> = sent.iter().map(|d| d["id"].as_i64().unwrap()).collect();
    assert_eq!(sent_ids.len(), 5, "{sent:#?}");
    assert!(sent_ids.windows(2).all(|w| w[0] > w[1]), "newest first");
    sent_ids.sort();
    assert_eq!(sent_ids, ids);
    assert_eq!(deliveries(&api, "?limit=2").len(), 2);
    assert_eq!(deliveries(&api, "?status=failed"), Vec::<Value>::new());
    let bad = api.get("/api/notifications/deliveries?status=lost");
    assert_invalid(&bad, "status");

    // A receiver that answers 500: 502 naming its answer, after one try and no retry.
    let broken = Sink::start(&[500, 500, 500]);
    create(
        &api,
        json!({"name": "broken", "kind": "webhook", "url": broken.url("/x")}),
    );
    let r = send_test(&api, "broken");
    assert_eq!(r.status, 502, "{}", r.body);
    assert_eq!(r.code(), "not_delivered");
    assert!(r.message().contains("500"), "{}", r.body);
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(broken.received().len(), 1, "a test message is tried once");
    let d = deliveries(&api, "?channel=broken");
    assert_eq!(d.len(), 1, "{d:#?}");
    assert_eq!(d[0]["status"], "failed");
    assert_eq!(d[0]["attempts"], 1);
    assert!(
        d[0]["last_error"].as_str().unwrap().contains("500"),
        "{d:#?}"
    );
    assert_eq!(send_test(&api, "nosuch").status, 404);
}

/// The user and password of a URL (`https://user:pass@host/…`) are as secret as its path:
/// the API shows the host only, and they are never sent as the Host header. (Refusing such
/// URLs with a 422 naming `url` would do as well.)
#[test]
fn a_urls_user_and_password_are_neither_shown_nor_sent_as_the_host() {
    let dir = TestDir::new();
    let (rivetr, api) = start(&dir);
    let password = token("basicpass");
    let sink = Sink::start(&[]);
    let url = sink
        .url("/in")
        .replacen("http://", &format!("http://alice:{password}@"), 1);
    let r = post(
        &api,
        "/api/notifications",
        &json!({"name": "basic", "kind": "webhook", "url": url}),
    );
    if r.status != 201 {
        assert_invalid(&r, "url");
        return;
    }
    // Every problem is reported, not only the first.
    let mut problems = Vec::new();
    for body in [r.body.clone(), api.get("/api/notifications").body] {
        if body.contains(&password) {
            problems.push(format!("the API shows the URL's password: {body}"));
        }
    }
    if r.json()["url"] != sink.url("/…") {
        problems.push(format!(
            "shown as {} rather than {}",
            r.json()["url"],
            sink.url("/…")
        ));
    }
    let sent = send_test(&api, "basic");
    assert_eq!(sent.status, 200, "{}", sent.body);
    let got = sink.received();
    assert_eq!(got.len(), 1);
    let host = got[0].header("host").unwrap_or_default();
    if host.contains("alice") || host.contains(&password) {
        problems.push(format!(
            "the URL's credentials sent as the Host header: {host}"
        ));
    }
    for (name, bytes) in database_bytes(&dir) {
        if contains(&bytes, &password) {
            problems.push(format!("the password in clear in {name}"));
        }
    }
    if rivetr.log().contains(&password) {
        problems.push("the password in the log".to_owned());
    }
    assert!(problems.is_empty(), "{problems:#?}");
}

/// A receiver that answers 200 after `delay`, each connection on its own thread; records the
/// `X-Rivetr-Delivery` of each request.
fn slow_receiver(delay: Duration) -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/slow", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = Arc::clone(&seen);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let record = Arc::clone(&record);
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut delivery = String::new();
                let mut len = 0;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let line = line.trim_end();
                    if line.is_empty() {
                        break;
                    }
                    if let Some((k, v)) = line.split_once(':') {
                        match k.trim().to_ascii_lowercase().as_str() {
                            "x-rivetr-delivery" => delivery = v.trim().to_owned(),
                            "content-length" => len = v.trim().parse().unwrap_or(0),
                            _ => {}
                        }
                    }
                }
                let mut body = vec![0; len];
                let _ = reader.read_exact(&mut body);
                record.lock().unwrap().push(delivery);
                std::thread::sleep(delay);
                let _ = stream.write_all(
                    b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
                );
            });
        }
    });
    (url, seen)
}

#[test]
fn a_test_message_is_sent_once_even_while_the_queue_retries_other_deliveries() {
    let dir = TestDir::new();
    let (rivetr, api) = start(&dir);
    // A receiver that is down: its queued message is retried 1, 2, 4 and 8 s apart, and
    // each retry wakes the delivery task.
    let down = Sink::start(&[503; 10]);
    create(
        &api,
        json!({"name": "down", "kind": "webhook", "url": down.url("/down")}),
    );
    // A slow receiver that takes no queued message (its filter), only the test message.
    let (slow_url, slow_seen) = slow_receiver(Duration::from_secs(4));
    create(
        &api,
        json!({"name": "slow", "kind": "webhook", "url": slow_url,
               "events": ["deployment.failed"]}),
    );
    let (_rivetr, api) = crash_and_restart(&dir, rivetr);
    down.wait_for("the first try", Duration::from_secs(20), |_| true);

    let r = send_test(&api, "slow");
    assert_eq!(r.status, 200, "{}", r.body);
    let id = r.json()["id"].as_i64().unwrap();
    std::thread::sleep(Duration::from_secs(5));
    let seen = slow_seen.lock().unwrap().clone();
    assert_eq!(
        seen,
        vec![id.to_string()],
        "the test message (delivery {id}) was sent more than once: the delivery task also \
         took its row, pending while the test was being sent"
    );
    let d = deliveries(&api, "?channel=slow");
    assert_eq!(d.len(), 1, "{d:#?}");
    assert_eq!(d[0]["status"], "sent");
    assert_eq!(d[0]["attempts"], 1, "{d:#?}");
}

// ---------------------------------------------------------------------------------------
// 3. Retries of queued messages
// ---------------------------------------------------------------------------------------

#[test]
fn a_message_queued_by_a_crash_restart_is_retried_until_sent_and_a_clean_restart_queues_none() {
    let dir = TestDir::new();
    let (rivetr, api) = start(&dir);
    let secret = "flaky-receiver-signing-secret";
    let flaky = Sink::start(&[503, 503]);
    create(
        &api,
        json!({"name": "flaky", "kind": "webhook", "signing_secret": secret,
               "url": flaky.url("/flaky")}),
    );
    assert_eq!(
        deliveries(&api, ""),
        Vec::<Value>::new(),
        "a first start is no crash"
    );

    let (rivetr, api) = crash_and_restart(&dir, rivetr);
    let d = wait_delivery(&api, "flaky", "sent", Duration::from_secs(30));
    assert_eq!(d["event"], CRASH_EVENT);
    assert_eq!(d["title"], "Rivetr started after a crash");
    assert_eq!(d["attempts"], 3, "{d}");
    assert!(d.get("last_error").is_none(), "{d}");
    assert!(d.get("next_attempt").is_none(), "{d}");
    assert_rfc3339(&d["sent_at"]);
    let id = d["id"].as_i64().unwrap().to_string();

    // Three requests, the same delivery, the same signed body; 1 s then 2 s apart.
    let got = flaky.received();
    assert_eq!(
        got.iter().map(|r| r.answered).collect::<Vec<_>>(),
        [503, 503, 200],
        "{got:#?}"
    );
    for r in &got {
        assert_eq!(r.header("x-rivetr-delivery"), Some(id.as_str()));
        assert_eq!(r.header("x-rivetr-event"), Some(CRASH_EVENT));
        assert_eq!(r.body, got[0].body, "a retry sends the same bytes");
        assert_signed(secret, r);
    }
    let body = got[0].json();
    assert_eq!(body["event"], CRASH_EVENT);
    assert_eq!(body["server"], SERVER);
    assert!(
        body["text"]
            .as_str()
            .unwrap()
            .contains("did not stop cleanly"),
        "{body}"
    );
    let at = flaky.arrival_times();
    let gaps: Vec<f64> = at.windows(2).map(|w| (w[1] - w[0]).as_secs_f64()).collect();
    assert!(
        gaps[0] >= 0.9 && gaps[1] >= 1.8,
        "waits 1 s, then 2 s: {gaps:?}"
    );
    assert_eq!(deliveries(&api, "").len(), 1);

    // A clean stop, then a start: nothing new is queued or sent.
    stop_cleanly(&dir, rivetr);
    let (_rivetr, api) = start(&dir);
    wait_marker(&dir);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(flaky.received().len(), 3, "{:#?}", flaky.received());
    let all = deliveries(&api, "");
    assert_eq!(all.len(), 1, "a clean restart queued something: {all:#?}");
}

#[test]
fn a_receiver_that_keeps_failing_is_tried_five_times_and_one_answering_404_once() {
    let dir = TestDir::new();
    let (rivetr, api) = start(&dir);
    let down = Sink::start(&[503; 10]);
    let gone = Sink::start(&[404; 10]);
    create(
        &api,
        json!({"name": "down", "kind": "webhook", "url": down.url("/down")}),
    );
    create(
        &api,
        json!({"name": "gone", "kind": "discord", "url": gone.url("/api/webhooks/1/revoked")}),
    );
    let (_rivetr, api) = crash_and_restart(&dir, rivetr);

    // A 404 will not get better: given up after one try.
    let d = wait_delivery(&api, "gone", "failed", Duration::from_secs(20));
    assert_eq!(d["event"], CRASH_EVENT);
    assert_eq!(d["attempts"], 1, "{d}");
    assert!(d["last_error"].as_str().unwrap().contains("404"), "{d}");
    assert!(d.get("next_attempt").is_none(), "{d}");

    // While a 503 is retried, the delivery is pending with its next try and the reason.
    let pending = wait_for("a retried delivery", Duration::from_secs(20), || {
        deliveries(&api, "?channel=down&status=pending")
            .into_iter()
            .find(|d| d["attempts"].as_i64() >= Some(1))
    });
    assert!(
        pending["last_error"].as_str().unwrap().contains("503"),
        "{pending}"
    );
    assert_rfc3339(&pending["next_attempt"]);

    // 503 every time: five tries (waits 1, 2, 4, 8 s), then given up.
    let d = wait_delivery(&api, "down", "failed", Duration::from_secs(45));
    assert_eq!(d["attempts"], 5, "{d}");
    let error = d["last_error"].as_str().unwrap();
    assert!(error.contains("503"), "{error}");
    assert!(
        error.contains("127.0.0.1"),
        "the error names the receiver: {error}"
    );
    let got = down.received();
    assert_eq!(got.len(), 5, "{got:#?}");
    let id = d["id"].as_i64().unwrap().to_string();
    assert!(
        got.iter()
            .all(|r| r.header("x-rivetr-delivery") == Some(id.as_str())),
        "{got:#?}"
    );
    let at = down.arrival_times();
    let gaps: Vec<f64> = at.windows(2).map(|w| (w[1] - w[0]).as_secs_f64()).collect();
    for (gap, want) in gaps.iter().zip([1.0, 2.0, 4.0, 8.0]) {
        assert!(*gap >= want * 0.9, "waits 1, 2, 4, 8 s: {gaps:?}");
    }

    // Given up is given up.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(down.received().len(), 5);
    assert_eq!(gone.received().len(), 1);
    let failed: Vec<String> = deliveries(&api, "?status=failed")
        .iter()
        .map(|d| d["channel"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(failed.len(), 2, "{failed:?}");
    assert!(failed.contains(&"down".to_owned()) && failed.contains(&"gone".to_owned()));
    assert_eq!(deliveries(&api, "?status=pending"), Vec::<Value>::new());
}

#[test]
fn disabled_channels_and_filters_without_the_event_receive_nothing() {
    let dir = TestDir::new();
    let (rivetr, api) = start(&dir);
    let (muted, paused, filtered, chosen) = (
        Sink::start(&[]),
        Sink::start(&[]),
        Sink::start(&[]),
        Sink::start(&[]),
    );
    create(
        &api,
        json!({"name": "muted", "kind": "slack", "url": muted.url("/m"), "enabled": false}),
    );
    create(
        &api,
        json!({"name": "paused", "kind": "discord", "url": paused.url("/p")}),
    );
    let p = patch(
        &api,
        "/api/notifications/paused",
        &json!({"enabled": false}),
    );
    assert_eq!(p.status, 200, "{}", p.body);
    create(
        &api,
        json!({"name": "filtered", "kind": "mattermost", "url": filtered.url("/f"),
               "events": ["deployment.failed", "backup.failed"]}),
    );
    // The control: a filter that names the event.
    create(
        &api,
        json!({"name": "chosen", "kind": "webhook", "url": chosen.url("/c"),
               "events": [CRASH_EVENT]}),
    );
    let (_rivetr, api) = crash_and_restart(&dir, rivetr);

    let d = wait_delivery(&api, "chosen", "sent", Duration::from_secs(20));
    assert_eq!(d["event"], CRASH_EVENT);
    assert_eq!(d["attempts"], 1);
    assert_eq!(chosen.received().len(), 1);
    std::thread::sleep(Duration::from_secs(2));
    for (name, sink) in [
        ("muted", &muted),
        ("paused", &paused),
        ("filtered", &filtered),
    ] {
        assert_eq!(sink.received().len(), 0, "{name} received a message");
        assert_eq!(
            deliveries(&api, &format!("?channel={name}")),
            Vec::<Value>::new(),
            "{name} has deliveries"
        );
    }
    assert_eq!(deliveries(&api, "").len(), 1);
}

/// A start that fails with an error (here: the API port is taken) is no crash: it exits
/// with its error, and the next start must not announce `rivetr.started_after_crash`.
#[test]
fn a_start_that_fails_with_an_error_is_not_announced_as_a_crash() {
    let dir = TestDir::new();
    let (rivetr, api) = start(&dir);
    let sink = Sink::start(&[]);
    create(
        &api,
        json!({"name": "ops", "kind": "slack", "url": sink.url("/s")}),
    );
    stop_cleanly(&dir, rivetr);

    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut failed = launch()
        .env(
            "RIVETR_SERVER_API_LISTEN",
            taken.local_addr().unwrap().to_string(),
        )
        .start(&dir);
    let status = failed.wait_exit(Duration::from_secs(20));
    assert!(!status.success(), "{status}: {}", failed.log());
    assert!(
        failed.log().contains("Address already in use"),
        "{}",
        failed.log()
    );
    drop(taken);

    let (_rivetr, api) = start(&dir);
    std::thread::sleep(Duration::from_secs(3));
    let all = deliveries(&api, "");
    assert_eq!(
        all,
        Vec::<Value>::new(),
        "a start that failed with an error left the running marker ({}), and the next start \
         announced a crash",
        marker(&dir).display()
    );
    assert_eq!(sink.received().len(), 0);
}

// ---------------------------------------------------------------------------------------
// 4. Email to a real SMTP server
// ---------------------------------------------------------------------------------------

const SMTP_USER: &str = "rivetr-mailer";
const FROM: &str = "Rivetr <rivetr@test-box.example>";

/// A Python 3 with aiosmtpd (Debian's python3-aiosmtpd); `python3` on PATH may be another.
fn python() -> &'static str {
    static FOUND: OnceLock<String> = OnceLock::new();
    FOUND.get_or_init(|| {
        ["python3", "/usr/bin/python3"]
            .into_iter()
            .find(|p| {
                Command::new(p)
                    .args(["-c", "import aiosmtpd.controller"])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success())
            })
            .expect("no python3 with aiosmtpd: apt install python3-aiosmtpd")
            .to_owned()
    })
}

/// A certificate for `localhost` and its key, self-signed; the PEM is the channel's
/// `ca_certificate`.
struct Cert {
    pem: String,
    cert_path: PathBuf,
    key_path: PathBuf,
}

fn localhost_cert(dir: &TestDir) -> Cert {
    let c = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let pem = c.cert.pem();
    Cert {
        cert_path: dir.write("smtp-cert.pem", &pem),
        key_path: dir.write("smtp-key.pem", &c.signing_key.serialize_pem()),
        pem,
    }
}

/// `tests/fixtures/smtp_sink.py`, running; killed when dropped.
struct SmtpSink {
    child: Child,
    port: u16,
    out: PathBuf,
}

impl SmtpSink {
    /// `security`: starttls, tls or none; `extra`: more arguments.
    fn start(dir: &TestDir, name: &str, security: &str, cert: &Cert, extra: &[&str]) -> SmtpSink {
        let port = free_port();
        let out = dir.path().join(name);
        let log = std::fs::File::create(dir.path().join(format!("{name}.log"))).unwrap();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/smtp_sink.py");
        let child = Command::new(python())
            .arg(script)
            .args(["--port", &port.to_string(), "--security", security])
            .arg("--cert")
            .arg(&cert.cert_path)
            .arg("--key")
            .arg(&cert.key_path)
            .arg("--out")
            .arg(&out)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let mut sink = SmtpSink { child, port, out };
        let ready = sink.out.join("ready");
        let deadline = Instant::now() + Duration::from_secs(20);
        while !ready.exists() {
            if let Some(status) = sink.child.try_wait().unwrap() {
                panic!(
                    "smtp_sink.py exited with {status}:\n{}",
                    std::fs::read_to_string(dir.path().join(format!("{name}.log")))
                        .unwrap_or_default()
                );
            }
            assert!(
                Instant::now() < deadline,
                "smtp_sink.py not ready after 20 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        sink
    }

    /// The messages saved, in order: envelope, TLS and AUTH facts, headers, text parts.
    fn messages(&self) -> Vec<Value> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&self.out)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        files.sort();
        files
            .iter()
            .map(|p| serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap())
            .collect()
    }

    /// The AUTH and DATA outcomes, one line each.
    fn events(&self) -> Vec<String> {
        std::fs::read_to_string(self.out.join("events.log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn email_channel(
    name: &str,
    sink: &SmtpSink,
    security: &str,
    ca: Option<&str>,
    password: &str,
) -> Value {
    let mut email = json!({
        "host": "localhost",
        "port": sink.port,
        "security": security,
        "username": SMTP_USER,
        "from": FROM,
        "to": ["ops@example.com", "Dev Team <dev@example.com>"],
    });
    if let Some(pem) = ca {
        email["ca_certificate"] = json!(pem);
    }
    json!({"name": name, "kind": "email", "email": email, "password": password})
}

/// The text/plain and text/html parts of a saved message, in order.
fn parts(message: &Value) -> Vec<(String, String)> {
    message["parts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["type"].as_str().unwrap().to_owned(),
                p["text"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[test]
fn email_over_starttls_with_auth_arrives_with_subject_and_plain_and_html_parts() {
    let dir = TestDir::new();
    let cert = localhost_cert(&dir);
    let password = token("smtp-pass-");
    let smtp = SmtpSink::start(
        &dir,
        "smtp",
        "starttls",
        &cert,
        &["--user", SMTP_USER, "--password", &password],
    );
    let (rivetr, api) = start(&dir);
    create(
        &api,
        email_channel("mail", &smtp, "starttls", Some(&cert.pem), &password),
    );
    let r = send_test(&api, "mail");
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["status"], "sent");
    assert_eq!(r.json()["attempts"], 1);

    let messages = smtp.messages();
    assert_eq!(messages.len(), 1, "{messages:#?}");
    let m = &messages[0];
    assert_eq!(m["tls"], true, "{m}");
    assert_eq!(m["auth"], json!({"login": SMTP_USER, "mechanism": "PLAIN"}));
    assert_eq!(m["helo"], SERVER, "the EHLO name is the server's");
    assert_eq!(m["mail_from"], "rivetr@test-box.example");
    assert_eq!(m["rcpt_tos"], json!(["ops@example.com", "dev@example.com"]));
    assert_eq!(
        m["subject"],
        format!("[Rivetr {SERVER}] Test message to `mail`")
    );
    assert!(
        m["from"]
            .as_str()
            .unwrap()
            .contains("rivetr@test-box.example"),
        "{m}"
    );
    let to = m["to"].as_str().unwrap();
    assert!(
        to.contains("ops@example.com") && to.contains("dev@example.com"),
        "{to}"
    );
    assert_eq!(m["content_type"], "multipart/alternative");
    let parts = parts(m);
    assert_eq!(
        parts.iter().map(|(t, _)| t.as_str()).collect::<Vec<_>>(),
        ["text/plain", "text/html"],
        "plain first, then HTML"
    );
    let (plain, html) = (&parts[0].1, &parts[1].1);
    assert!(plain.contains("Test message to `mail`"), "{plain}");
    assert!(
        plain.contains("This channel receives Rivetr's notifications."),
        "{plain}"
    );
    assert!(plain.contains(SERVER), "{plain}");
    assert!(plain.contains(DASHBOARD), "{plain}");
    assert!(!plain.contains("{{"), "an unfilled placeholder: {plain}");
    assert!(html.contains("Rivetr&#39;s notifications"), "{html}");
    assert!(html.contains(&format!("href=\"{DASHBOARD}\"")), "{html}");
    assert!(html.contains(SERVER), "{html}");
    assert!(!html.contains("{{"), "an unfilled placeholder: {html}");
    assert!(
        smtp.events()
            .contains(&format!("AUTH PLAIN {SMTP_USER} ok tls=True")),
        "{:?}",
        smtp.events()
    );

    // The password is nowhere in clear: not in the database, its WAL, or the log.
    for (name, bytes) in database_bytes(&dir) {
        assert!(
            !contains(&bytes, &password),
            "the password in clear in {name}"
        );
    }
    assert!(!rivetr.log().contains(&password), "the password in the log");
}

#[test]
fn email_over_implicit_tls_with_auth_login_arrives_and_an_unknown_certificate_is_refused() {
    let dir = TestDir::new();
    let cert = localhost_cert(&dir);
    let password = token("smtp-pass-");
    let smtp = SmtpSink::start(
        &dir,
        "smtps",
        "tls",
        &cert,
        &[
            "--user",
            SMTP_USER,
            "--password",
            &password,
            "--mechanisms",
            "LOGIN",
        ],
    );
    let (_rivetr, api) = start(&dir);
    create(
        &api,
        email_channel("mail", &smtp, "tls", Some(&cert.pem), &password),
    );
    let r = send_test(&api, "mail");
    assert_eq!(r.status, 200, "{}", r.body);
    let messages = smtp.messages();
    assert_eq!(messages.len(), 1, "{messages:#?}");
    let m = &messages[0];
    assert_eq!(m["tls"], true, "{m}");
    assert_eq!(m["auth"], json!({"login": SMTP_USER, "mechanism": "LOGIN"}));
    assert_eq!(
        m["subject"],
        format!("[Rivetr {SERVER}] Test message to `mail`")
    );
    assert_eq!(m["content_type"], "multipart/alternative");

    // The same server without its certificate trusted: not delivered, and no password sent.
    create(
        &api,
        email_channel("untrusted", &smtp, "tls", None, &password),
    );
    let events_before = smtp.events().len();
    let r = send_test(&api, "untrusted");
    assert_eq!(r.status, 502, "{}", r.body);
    assert_eq!(r.code(), "not_delivered");
    assert!(
        r.message().contains(&format!("localhost:{}", smtp.port)),
        "the error names the server: {}",
        r.body
    );
    assert_eq!(smtp.messages().len(), 1);
    assert_eq!(smtp.events().len(), events_before, "{:?}", smtp.events());
}

#[test]
fn a_wrong_smtp_password_fails_the_test_message_naming_the_servers_answer() {
    let dir = TestDir::new();
    let cert = localhost_cert(&dir);
    let smtp = SmtpSink::start(
        &dir,
        "smtp",
        "starttls",
        &cert,
        &["--user", SMTP_USER, "--password", "the-right-password"],
    );
    let (_rivetr, api) = start(&dir);
    create(
        &api,
        email_channel(
            "mail",
            &smtp,
            "starttls",
            Some(&cert.pem),
            "a-wrong-password",
        ),
    );
    let r = send_test(&api, "mail");
    assert_eq!(r.status, 502, "{}", r.body);
    assert_eq!(r.code(), "not_delivered");
    let message = r.message();
    assert!(message.contains("535"), "the server's code: {message}");
    assert!(
        message.contains("Authentication credentials invalid"),
        "the server's words: {message}"
    );
    assert!(
        message.contains(&format!("localhost:{}", smtp.port)),
        "{message}"
    );
    assert!(!message.contains("a-wrong-password"), "{message}");
    assert!(smtp.messages().is_empty());
    assert!(
        smtp.events()
            .iter()
            .any(|e| e.starts_with("AUTH") && e.contains("refused tls=True")),
        "{:?}",
        smtp.events()
    );
    let d = deliveries(&api, "?channel=mail");
    assert_eq!(d.len(), 1);
    assert_eq!(d[0]["status"], "failed");
    assert_eq!(d[0]["attempts"], 1);
    assert!(
        d[0]["last_error"].as_str().unwrap().contains("535"),
        "{d:#?}"
    );
}

#[test]
fn a_mail_server_answering_451_twice_gets_the_queued_message_on_the_third_try() {
    let dir = TestDir::new();
    let cert = localhost_cert(&dir);
    let password = token("smtp-pass-");
    let smtp = SmtpSink::start(
        &dir,
        "smtp",
        "starttls",
        &cert,
        &[
            "--user",
            SMTP_USER,
            "--password",
            &password,
            "--fail-data",
            "2",
        ],
    );
    let (rivetr, api) = start(&dir);
    create(
        &api,
        email_channel("mail", &smtp, "starttls", Some(&cert.pem), &password),
    );
    let (_rivetr, api) = crash_and_restart(&dir, rivetr);

    let d = wait_delivery(&api, "mail", "sent", Duration::from_secs(30));
    assert_eq!(d["event"], CRASH_EVENT);
    assert_eq!(d["attempts"], 3, "{d}");
    let data: Vec<String> = smtp
        .events()
        .into_iter()
        .filter(|e| e.starts_with("DATA"))
        .collect();
    assert_eq!(data, ["DATA 451", "DATA 451", "DATA 250 001"]);
    let messages = smtp.messages();
    assert_eq!(messages.len(), 1, "{messages:#?}");
    let m = &messages[0];
    assert_eq!(
        m["subject"],
        format!("[Rivetr {SERVER}] Rivetr started after a crash")
    );
    let parts = parts(m);
    assert_eq!(parts.len(), 2, "{parts:?}");
    assert!(
        parts[0].1.contains("journalctl -u rivetr -b -1"),
        "{}",
        parts[0].1
    );
    assert!(parts[0].1.contains(CRASH_EVENT), "{}", parts[0].1);
}
