//! The apps, env and deployments API end to end: the real binary on real Podman, real git
//! repositories. Each endpoint's happy path and its refusals (400, 404, 409, 422), the app
//! lifecycle (stop, start, restart, delete) as the engine sees it, cancel, rollback, and the
//! logs as JSON and as Server-Sent Events.

use crate::common;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use common::platform::{DOCKERFILE, GitRepo, Platform, podman_socket, unique_name};
use common::{raw_exchange, wait_for};
use serde_json::{Value, json};

fn platform(case: &str) -> Option<Platform> {
    let socket = podman_socket(case)?;
    Some(Platform::start(&socket, &[]))
}

/// A request with a body sent exactly as given (malformed JSON included).
fn send(p: &Platform, method: &str, path: &str, body: &str) -> (u16, Value) {
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        p.token,
        body.len()
    );
    let (status, _, text) = raw_exchange(p.rivetr.api(), &request);
    let json = serde_json::from_str(&text).unwrap_or(Value::Null);
    (status, json)
}

/// Asserts an error answer: its status, its code, and that its message names `names`.
fn assert_error(answer: (u16, Value), status: u16, code: &str, names: &str) {
    let (got, body) = answer;
    assert_eq!(got, status, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains(names), "`{names}` not in: {message}");
}

/// Reads an event stream until `needle` appears (or panics after `timeout`).
fn read_stream_until(p: &Platform, path: &str, needle: &str, timeout: Duration) -> String {
    let mut s = std::net::TcpStream::connect(p.rivetr.api()).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\r\n",
        p.token
    )
    .unwrap();
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let deadline = Instant::now() + timeout;
    let mut seen = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        let text = String::from_utf8_lossy(&seen).into_owned();
        if text.contains(needle) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "`{needle}` not in the stream {path} after {timeout:?}:\n{text}"
        );
        match s.read(&mut buf) {
            Ok(0) => panic!("the stream {path} ended without `{needle}`:\n{text}"),
            Ok(n) => seen.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => panic!("reading {path}: {e}"),
        }
    }
}

fn deploy_ok(p: &Platform, app: &str) -> Value {
    let id = p.deploy(app, None);
    let d = p.wait_done(id);
    assert_eq!(d["status"], "running", "{d}\n{}", p.logs(id));
    d
}

/// Image ids Podman holds for `app`.
///
/// `podman images` lists and then inspects each image, so an image another test removes in
/// between fails the whole listing ("image not known"); such a failure is asked again.
fn images(p: &Platform, app: &str) -> Vec<String> {
    let mut last_error = String::new();
    for _ in 0..10 {
        let out = std::process::Command::new("podman")
            .args(["--remote", "--url", &p.socket, "images", "-q"])
            .args(["--filter", &format!("label=io.rivetr.app={app}")])
            .output()
            .expect("podman");
        if out.status.success() {
            return String::from_utf8_lossy(&out.stdout)
                .lines()
                .map(str::to_owned)
                .collect();
        }
        last_error = String::from_utf8_lossy(&out.stderr).into_owned();
        std::thread::sleep(Duration::from_millis(300));
    }
    panic!("podman images failed ten times; the last said: {last_error}");
}

#[test]
fn app_and_env_endpoints_answer_and_refuse_bad_input_naming_it() {
    let Some(p) = platform("app endpoints") else {
        return;
    };
    let repo = GitRepo::new("v1\n");
    let name = unique_name("api");
    let create = json!({
        "name": name,
        "git_url": repo.path(),
        "branch": "main",
        "port": 8080,
        "domains": [format!("{name}.test")],
    });

    let (status, created) = send(&p, "POST", "/api/apps", &create.to_string());
    assert_eq!(status, 201, "{created}");
    let secret = created["webhook_secret"].as_str().unwrap().to_owned();
    assert_eq!(secret.len(), 64, "{created}");
    assert!(
        created["webhooks"]["github"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/webhooks/github/{name}")),
        "{created}"
    );
    assert_eq!(created["healthcheck"]["path"], "/");

    let (status, shown) = p.api("GET", &format!("/api/apps/{name}"), None);
    assert_eq!(status, 200);
    assert!(
        !shown.to_string().contains(&secret),
        "the webhook secret is shown again"
    );
    let (status, all) = p.api("GET", "/api/apps", None);
    assert_eq!(status, 200);
    assert!(
        all.as_array().unwrap().iter().any(|a| a["name"] == name),
        "{all}"
    );

    // Refusals on create: each names the problem.
    assert_error(
        send(&p, "POST", "/api/apps", &create.to_string()),
        409,
        "conflict",
        &name,
    );
    assert_error(
        p.api(
            "POST",
            "/api/apps",
            Some(json!({"name": "Not_A_Label", "git_url": repo.path()})),
        ),
        422,
        "invalid_value",
        "name",
    );
    assert_error(
        p.api(
            "POST",
            "/api/apps",
            Some(json!({"name": unique_name("x"), "git_url": repo.path(), "port": 0})),
        ),
        422,
        "invalid_value",
        "port",
    );
    assert_error(
        p.api("POST", "/api/apps", Some(json!({"name": unique_name("x")}))),
        422,
        "invalid_value",
        "git_url",
    );
    assert_error(
        send(&p, "POST", "/api/apps", "{\"name\": "),
        400,
        "invalid_json",
        "line 1",
    );
    assert_error(
        send(
            &p,
            "POST",
            "/api/apps",
            r#"{"name": "typed", "git_url": "/srv/x", "port": "eighty"}"#,
        ),
        400,
        "invalid_json",
        "port",
    );
    let (status, _) = p.api("GET", "/api/apps", None);
    assert_eq!(status, 200);

    // Change, and refuse a bad change without changing anything.
    let (status, changed) = p.api(
        "PATCH",
        &format!("/api/apps/{name}"),
        Some(json!({"branch": "release", "healthcheck": {"path": "/healthz"}})),
    );
    assert_eq!(status, 200, "{changed}");
    assert_eq!(changed["branch"], "release");
    assert_eq!(changed["healthcheck"]["path"], "/healthz");
    assert_error(
        p.api(
            "PATCH",
            &format!("/api/apps/{name}"),
            Some(json!({"replicas": 0, "branch": "other"})),
        ),
        422,
        "invalid_value",
        "replicas",
    );
    let (_, after) = p.api("GET", &format!("/api/apps/{name}"), None);
    assert_eq!(
        after["branch"], "release",
        "a refused change changed the app"
    );

    // Env vars.
    let (status, var) = p.api(
        "PUT",
        &format!("/api/apps/{name}/env/GREETING"),
        Some(json!({"value": "hello", "secret": false})),
    );
    assert_eq!((status, var["value"].clone()), (200, json!("hello")));
    assert_error(
        p.api(
            "PUT",
            &format!("/api/apps/{name}/env/not-a-name"),
            Some(json!({"value": "x"})),
        ),
        422,
        "invalid_value",
        "not-a-name",
    );
    let (status, vars) = p.api("GET", &format!("/api/apps/{name}/env"), None);
    assert_eq!(status, 200);
    assert_eq!(vars.as_array().unwrap().len(), 1, "{vars}");
    let (status, body) = p.api("DELETE", &format!("/api/apps/{name}/env/GREETING"), None);
    assert_eq!(status, 204, "{body}");
    assert_error(
        p.api("DELETE", &format!("/api/apps/{name}/env/GREETING"), None),
        404,
        "not_found",
        "GREETING",
    );

    // Unknown things are 404; what needs a deployment first is 409.
    assert_error(
        p.api("GET", "/api/apps/no-such-app", None),
        404,
        "not_found",
        "no-such-app",
    );
    assert_error(
        p.api("POST", "/api/apps/no-such-app/deployments", Some(json!({}))),
        404,
        "not_found",
        "no-such-app",
    );
    assert_error(
        p.api("GET", "/api/apps/no-such-app/env", None),
        404,
        "not_found",
        "no-such-app",
    );
    assert_error(
        p.api("GET", "/api/deployments/987654", None),
        404,
        "not_found",
        "987654",
    );
    assert_error(
        p.api("POST", "/api/deployments/987654/cancel", None),
        404,
        "not_found",
        "987654",
    );
    assert_error(
        p.api(
            "POST",
            &format!("/api/apps/{name}/rollback"),
            Some(json!({"deployment_id": 987654})),
        ),
        404,
        "not_found",
        "987654",
    );
    assert_error(
        p.api("POST", &format!("/api/apps/{name}/start"), None),
        409,
        "conflict",
        &name,
    );

    let (status, body) = p.api("DELETE", &format!("/api/apps/{name}"), None);
    assert_eq!(status, 204, "{body}");
    assert_error(
        p.api("GET", &format!("/api/apps/{name}"), None),
        404,
        "not_found",
        &name,
    );
}

#[test]
fn an_app_stops_starts_restarts_and_deleting_it_removes_containers_images_and_route() {
    let Some(p) = platform("app lifecycle") else {
        return;
    };
    let repo = GitRepo::new("unused\n");
    repo.commit(
        &[(
            "Dockerfile",
            "FROM localhost/busybox:test\nCMD [\"sh\", \"-c\", \"echo app-started; mkdir -p /www; echo up > /www/index.html; exec httpd -f -p 8080 -h /www\"]\n",
        )],
        "says when it starts",
    );
    let app = p.create_app(&unique_name("life"), repo.path(), json!({}));
    deploy_ok(&p, &app);
    let host = format!("{app}.test");
    assert_eq!(p.through_proxy(&host, "/"), (200, "up\n".to_owned()));

    // The app's own output, as a finished stream (no follow) and as a live one.
    let (status, _, events) = raw_exchange(
        p.rivetr.api(),
        &format!(
            "GET /api/apps/{app}/logs?tail=20 HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\r\n",
            p.token
        ),
    );
    assert_eq!(status, 200);
    assert!(
        events.contains("event: stdout") && events.contains("data: app-started"),
        "{events}"
    );
    read_stream_until(
        &p,
        &format!("/api/apps/{app}/logs?tail=5&follow=1"),
        "data: app-started",
        Duration::from_secs(20),
    );

    let (status, stopped) = p.api("POST", &format!("/api/apps/{app}/stop"), None);
    assert_eq!((status, stopped["stopped"].clone()), (200, json!(true)));
    let states = p.containers(&app);
    assert!(
        states.len() == 1 && states[0].1 != "running",
        "after stop: {states:?}"
    );
    assert_ne!(p.through_proxy(&host, "/").0, 200, "a stopped app answers");

    let (status, started) = p.api("POST", &format!("/api/apps/{app}/start"), None);
    assert_eq!((status, started["stopped"].clone()), (200, json!(false)));
    wait_for(
        "the app to serve after start",
        Duration::from_secs(30),
        || (p.through_proxy(&host, "/").0 == 200).then_some(()),
    );

    let (status, _) = p.api("POST", &format!("/api/apps/{app}/restart"), None);
    assert_eq!(status, 200);
    wait_for(
        "the app to serve after restart",
        Duration::from_secs(30),
        || (p.through_proxy(&host, "/").0 == 200).then_some(()),
    );
    assert_eq!(p.containers(&app).len(), 1, "{:?}", p.containers(&app));
    assert!(
        !images(&p, &app).is_empty(),
        "the app has no image to remove"
    );

    let (status, body) = p.api("DELETE", &format!("/api/apps/{app}"), None);
    assert_eq!(status, 204, "{body}");
    assert_eq!(p.containers(&app), Vec::new(), "containers left");
    assert_eq!(images(&p, &app), Vec::<String>::new(), "images left");
    assert_eq!(p.through_proxy(&host, "/").0, 404, "the route is left");
}

#[test]
fn deployments_list_newest_first_cancel_roll_back_and_stream_their_logs() {
    let Some(p) = platform("deployments") else {
        return;
    };
    let repo = GitRepo::new("v1\n");
    let app = p.create_app(&unique_name("deps"), repo.path(), json!({}));
    let host = format!("{app}.test");
    let v1 = deploy_ok(&p, &app);
    let v1_id = v1["id"].as_i64().unwrap();

    // The finished deployment's log: JSON lines, and the same as events ending in `end`.
    let (status, lines) = p.api("GET", &format!("/api/deployments/{v1_id}/logs"), None);
    assert_eq!(status, 200);
    let lines = lines.as_array().unwrap();
    assert!(lines.iter().any(|l| l["stream"] == "build"), "{lines:?}");
    let backlog = read_stream_until(
        &p,
        &format!("/api/deployments/{v1_id}/logs?follow=1"),
        "event: end",
        Duration::from_secs(10),
    );
    assert!(backlog.contains("switched"), "{backlog}");
    let end = read_stream_until(
        &p,
        &format!("/api/deployments/{v1_id}/logs?follow=1"),
        "\"status\":\"running\"",
        Duration::from_secs(10),
    );
    assert!(end.contains("event: end"), "{end}");

    // A slow build, followed live, then cancelled: the stream ends `cancelled`.
    repo.commit(
        &[("Dockerfile", &format!("{DOCKERFILE}RUN sleep 60\n"))],
        "slow",
    );
    let slow = p.deploy(&app, None);
    p.wait_status(slow, "building");
    let (status, _) = p.api("POST", &format!("/api/deployments/{slow}/cancel"), None);
    assert_eq!(status, 200);
    let followed = read_stream_until(
        &p,
        &format!("/api/deployments/{slow}/logs?follow=1"),
        "event: end",
        Duration::from_secs(60),
    );
    assert!(followed.contains("\"status\":\"cancelled\""), "{followed}");
    assert_eq!(p.wait_done(slow)["status"], "cancelled");
    assert_error(
        p.api("POST", &format!("/api/deployments/{slow}/cancel"), None),
        409,
        "conflict",
        "cancelled",
    );
    assert_eq!(p.through_proxy(&host, "/"), (200, "v1\n".to_owned()));

    // A new version followed live from its start to its end.
    repo.commit(
        &[("Dockerfile", DOCKERFILE), ("www/index.html", "v2\n")],
        "v2",
    );
    let v2 = p.deploy(&app, None);
    let live = read_stream_until(
        &p,
        &format!("/api/deployments/{v2}/logs?follow=1"),
        "event: end",
        Duration::from_secs(120),
    );
    assert!(live.contains("\"status\":\"running\""), "{live}");
    assert!(live.contains("\"stream\":\"health\""), "{live}");
    assert_eq!(p.through_proxy(&host, "/"), (200, "v2\n".to_owned()));

    let (status, list) = p.api("GET", &format!("/api/apps/{app}/deployments"), None);
    assert_eq!(status, 200);
    let ids: Vec<i64> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, vec![v2, slow, v1_id], "newest first");
    assert_eq!(list[1]["status"], "cancelled");
    assert_eq!(list[2]["status"], "replaced");

    // Back to v1; a cancelled deployment is no place to go back to.
    assert_error(
        p.api(
            "POST",
            &format!("/api/apps/{app}/rollback"),
            Some(json!({"deployment_id": slow})),
        ),
        409,
        "conflict",
        &slow.to_string(),
    );
    let (status, rb) = p.api(
        "POST",
        &format!("/api/apps/{app}/rollback"),
        Some(json!({"deployment_id": v1_id})),
    );
    assert_eq!(status, 202, "{rb}");
    assert_eq!(rb["rollback_of"], v1_id);
    let rb = p.wait_done(rb["id"].as_i64().unwrap());
    assert_eq!(rb["status"], "running", "{rb}");
    assert_eq!(p.through_proxy(&host, "/"), (200, "v1\n".to_owned()));
}

/// An app's swarm placement is stored, shown, replaced whole by PATCH and checked (422 naming
/// the field, nothing changed); on an engine that is not a swarm the node routes answer 409
/// saying so.
#[test]
fn placement_is_stored_and_checked_and_nodes_need_a_swarm() {
    let Some(p) = platform("placement and nodes") else {
        return;
    };
    let repo = GitRepo::new("v1\n");
    let name = unique_name("placed");
    let (status, created) = p.api(
        "POST",
        "/api/apps",
        Some(json!({
            "name": name,
            "git_url": repo.path(),
            "placement": {"constraints": ["node.role==worker"], "max_per_node": 1},
        })),
    );
    assert_eq!(status, 201, "{created}");
    assert_eq!(
        created["placement"],
        json!({"constraints": ["node.role==worker"], "max_per_node": 1, "spread": []})
    );
    let (status, shown) = p.api("GET", &format!("/api/apps/{name}"), None);
    assert_eq!(status, 200);
    assert_eq!(shown["placement"], created["placement"]);

    // PATCH replaces the placement whole; a PATCH without it leaves it.
    let placement = json!({
        "constraints": ["node.labels.zone!=eu-3", "engine.labels.disk==ssd"],
        "max_per_node": 2,
        "spread": ["node.labels.zone"],
    });
    let (status, changed) = p.api(
        "PATCH",
        &format!("/api/apps/{name}"),
        Some(json!({ "placement": placement })),
    );
    assert_eq!(status, 200, "{changed}");
    assert_eq!(changed["placement"], placement);
    let (status, changed) = p.api(
        "PATCH",
        &format!("/api/apps/{name}"),
        Some(json!({"branch": "release"})),
    );
    assert_eq!(status, 200, "{changed}");
    assert_eq!(changed["placement"], placement);

    // A bad constraint: 422 naming it, and nothing changes.
    assert_error(
        p.api(
            "PATCH",
            &format!("/api/apps/{name}"),
            Some(json!({
                "branch": "other",
                "placement": {"constraints": ["node.role==worker", "zone==eu"]},
            })),
        ),
        422,
        "invalid_value",
        "placement.constraints[1]",
    );
    assert_error(
        p.api(
            "POST",
            "/api/apps",
            Some(json!({
                "name": unique_name("x"), "git_url": repo.path(),
                "placement": {"max_per_node": 1001},
            })),
        ),
        422,
        "invalid_value",
        "placement.max_per_node",
    );
    assert_error(
        send(
            &p,
            "PATCH",
            &format!("/api/apps/{name}"),
            r#"{"placement": {"constraint": ["node.role==worker"]}}"#,
        ),
        400,
        "invalid_json",
        "constraint",
    );
    let (_, after) = p.api("GET", &format!("/api/apps/{name}"), None);
    assert_eq!(
        after["branch"], "release",
        "a refused change changed the app"
    );
    assert_eq!(after["placement"], placement);

    // Podman is no swarm: the node routes say so.
    for (method, path) in [
        ("GET", "/api/nodes".to_owned()),
        ("POST", "/api/nodes/some-node/drain".to_owned()),
        ("POST", "/api/nodes/some-node/activate".to_owned()),
    ] {
        assert_error(
            p.api(method, &path, None),
            409,
            "conflict",
            "not running on a swarm",
        );
    }

    let (status, body) = p.api("DELETE", &format!("/api/apps/{name}"), None);
    assert_eq!(status, 204, "{body}");
}
