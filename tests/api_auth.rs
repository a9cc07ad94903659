//! API authentication against the real binary: the first token, tokens through the API and
//! the `rivetr token` command, revocation, query-string tokens, the failed-attempt limit, and
//! the error format of bad requests.

use crate::common;

use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::Duration;

use common::api::{Api, initial_token, request, state_dir};
use common::{BIN, Launch, Rivetr, TestDir};

fn start(dir: &TestDir) -> (Rivetr, Api) {
    start_with(dir, Launch::serve())
}

fn start_with(dir: &TestDir, launch: Launch) -> (Rivetr, Api) {
    let mut rivetr = launch.start(dir);
    rivetr.wait_healthy();
    let api = Api {
        addr: rivetr.api(),
        token: initial_token(dir.path()),
    };
    (rivetr, api)
}

fn is_token(s: &str) -> bool {
    s.len() == 68
        && s.starts_with("rvt_")
        && s[4..]
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[test]
fn first_start_writes_the_initial_token_0600_and_logs_only_its_path() {
    let dir = TestDir::new();
    let (mut rivetr, api) = start(&dir);
    let path = state_dir(dir.path()).join("initial-admin-token");
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "mode {mode:o}");
    assert!(is_token(&api.token), "{:?}", api.token);
    assert_eq!(api.get("/api/tokens").status, 200);

    let log = rivetr.log();
    assert!(log.contains("initial-admin-token"), "{log}");
    assert!(!log.contains(&api.token), "the token is in the log:\n{log}");
    assert!(
        !log.contains(&api.token[4..20]),
        "part of the token is in the log"
    );

    // A restart creates no second token and leaves the file alone.
    rivetr.signal(libc::SIGTERM);
    rivetr.wait_exit(Duration::from_secs(30));
    let (rivetr, again) = start(&dir);
    assert_eq!(again.token, api.token);
    assert!(!rivetr.log().contains("created the first API token"));
    let list = again.get("/api/tokens").json();
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
}

#[test]
fn tokens_are_created_listed_and_revoked_through_the_api() {
    let dir = TestDir::new();
    let (rivetr, admin) = start(&dir);

    let created = admin.post_json("/api/tokens", r#"{"name": "ci"}"#);
    assert_eq!(created.status, 201, "{}", created.body);
    let body = created.json();
    let token = body["token"].as_str().unwrap().to_owned();
    assert!(is_token(&token));
    let id = body["id"].as_i64().unwrap();
    assert_eq!(body["name"], "ci");
    assert!(body["revoked_at"].is_null());

    let ci = Api {
        addr: admin.addr,
        token: token.clone(),
    };
    assert_eq!(ci.get("/api/tokens").status, 200);

    // The list shows id, name, dates and revocation, never a token or its hash.
    let list = admin.get("/api/tokens");
    assert_eq!(list.status, 200);
    assert!(!list.body.contains("rvt_"), "{}", list.body);
    let rows = list.json();
    let row = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == id)
        .unwrap()
        .clone();
    for field in ["id", "name", "created_at", "last_used_at", "revoked_at"] {
        assert!(row.get(field).is_some(), "no {field} in {row}");
    }
    assert!(row.get("token").is_none() && row.get("token_hash").is_none());
    assert!(row["last_used_at"].is_string(), "used once above: {row}");

    let revoked = admin.delete(&format!("/api/tokens/{id}"));
    assert_eq!(revoked.status, 200, "{}", revoked.body);
    assert!(revoked.json()["revoked_at"].is_string());

    // The very next request with it fails.
    let refused = ci.get("/api/tokens");
    assert_eq!(refused.status, 401);
    assert_eq!(refused.code(), "unauthorized");
    assert!(refused.message().contains("revoked"), "{}", refused.body);

    let again = admin.delete(&format!("/api/tokens/{id}"));
    assert_eq!((again.status, again.code().as_str()), (409, "conflict"));
    let missing = admin.delete("/api/tokens/999999");
    assert_eq!(
        (missing.status, missing.code().as_str()),
        (404, "not_found")
    );
    let not_a_number = admin.delete("/api/tokens/abc");
    assert_eq!(not_a_number.status, 400, "{}", not_a_number.body);
    assert!(not_a_number.message().contains("abc"));

    // A revoked token frees its name; a live one does not.
    assert_eq!(
        admin.post_json("/api/tokens", r#"{"name": "ci"}"#).status,
        201
    );
    let dup = admin.post_json("/api/tokens", r#"{"name": "ci"}"#);
    assert_eq!((dup.status, dup.code().as_str()), (409, "conflict"));
    assert!(dup.message().contains("`ci`"));

    assert!(!rivetr.log().contains(&token), "a created token was logged");
}

#[test]
fn bad_requests_get_json_errors_that_name_the_problem() {
    let dir = TestDir::new();
    let (_rivetr, api) = start(&dir);

    let syntax = api.post_json("/api/tokens", "{\n \"name\": }");
    assert_eq!(
        (syntax.status, syntax.code().as_str()),
        (400, "invalid_json")
    );
    assert!(syntax.message().contains("line 2"), "{}", syntax.body);

    let wrong_type = api.post_json("/api/tokens", r#"{"name": 42}"#);
    assert_eq!(wrong_type.status, 400);
    assert!(
        wrong_type.message().contains("`name`"),
        "{}",
        wrong_type.body
    );

    let missing = api.post_json("/api/tokens", "{}");
    assert_eq!(missing.status, 400);
    assert!(
        missing.message().contains("missing field `name`"),
        "{}",
        missing.body
    );

    let unknown = api.post_json("/api/tokens", r#"{"name": "x", "scope": "all"}"#);
    assert_eq!(unknown.status, 400);
    assert!(unknown.message().contains("`scope`"), "{}", unknown.body);

    for (name, why) in [
        ("", "empty"),
        ("  padded", "spaces"),
        (&"x".repeat(65)[..], "64"),
    ] {
        let invalid = api.post_json("/api/tokens", &format!(r#"{{"name": "{name}"}}"#));
        assert_eq!(
            (invalid.status, invalid.code().as_str()),
            (422, "invalid_value"),
            "{name:?}"
        );
        assert!(invalid.message().contains("`name`"), "{}", invalid.body);
        assert!(invalid.message().contains(why), "{}", invalid.body);
    }

    let text = request(
        api.addr,
        "POST",
        "/api/tokens",
        &[
            ("Authorization", &api.auth()),
            ("Content-Type", "text/plain"),
        ],
        br#"{"name": "x"}"#,
    );
    assert_eq!(text.status, 415, "{}", text.body);
    assert_eq!(text.code(), "unsupported_media_type");

    let big = format!(r#"{{"name": "{}"}}"#, "x".repeat(1024 * 1024));
    let too_large = api.post_json("/api/tokens", &big);
    assert_eq!(
        (too_large.status, too_large.code().as_str()),
        (413, "payload_too_large")
    );

    let no_route = api.get("/api/no-such-thing");
    assert_eq!(
        (no_route.status, no_route.code().as_str()),
        (404, "not_found")
    );

    let wrong_method = request(
        api.addr,
        "PUT",
        "/api/tokens",
        &[("Authorization", &api.auth())],
        b"",
    );
    assert_eq!(wrong_method.status, 405);
    assert_eq!(wrong_method.code(), "method_not_allowed");
    assert!(wrong_method.header("allow").unwrap().contains("POST"));

    // Nothing was created by any of these.
    let list = api.get("/api/tokens").json();
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
}

#[test]
fn missing_or_wrong_credentials_get_401() {
    let dir = TestDir::new();
    let (_rivetr, api) = start(&dir);
    let no_header = request(api.addr, "GET", "/api/tokens", &[], b"");
    assert_eq!(
        (no_header.status, no_header.code().as_str()),
        (401, "unauthorized")
    );
    assert_eq!(no_header.header("www-authenticate"), Some("Bearer"));
    assert!(no_header.message().contains("Authorization: Bearer"));

    let cases = [
        (format!("Basic {}", "dXNlcjpwYXNz"), "Bearer <token>"),
        ("Bearer not-a-token".to_owned(), "malformed"),
        (format!("Bearer rvt_{}", "0".repeat(64)), "unknown"),
        (api.token.clone(), "Bearer <token>"),
    ];
    for (value, why) in cases {
        let r = request(
            api.addr,
            "GET",
            "/api/tokens",
            &[("Authorization", &value)],
            b"",
        );
        assert_eq!(r.status, 401, "{value}");
        assert!(r.message().contains(why), "{value}: {}", r.body);
    }
    // Health and the OpenAPI document are public.
    assert_eq!(
        request(api.addr, "GET", "/api/health", &[], b"").status,
        200
    );
    assert_eq!(
        request(api.addr, "GET", "/api/openapi.json", &[], b"").status,
        200
    );
    // A path the router does not know still answers 401 before 404: nothing about the
    // API's shape is given away without a token.
    assert_eq!(
        request(api.addr, "GET", "/api/secret-route", &[], b"").status,
        401
    );
    // An encoded path does not slip past the gate into a route: it is not an API path, so it
    // gets what every other path does (the dashboard's page, or 404 in a build without it),
    // never the token list.
    let encoded = request(api.addr, "GET", "/%61pi/tokens", &[], b"");
    assert!(
        encoded.status == 404
            || encoded
                .header("content-type")
                .is_some_and(|t| t.starts_with("text/html")),
        "{} {}",
        encoded.status,
        encoded.body
    );
    assert!(!encoded.body.contains("initial-admin"), "{}", encoded.body);
}

#[test]
fn tokens_in_query_strings_are_refused() {
    let dir = TestDir::new();
    let (rivetr, api) = start(&dir);
    for query in [
        format!("token={}", api.token),
        format!("access_token={}", api.token),
        format!("anything={}", api.token),
    ] {
        // Refused even when the header is right too: the URL has leaked the token already.
        let r = request(
            api.addr,
            "GET",
            &format!("/api/tokens?{query}"),
            &[("Authorization", &api.auth())],
            b"",
        );
        assert_eq!(
            (r.status, r.code().as_str()),
            (400, "token_in_query"),
            "{query}"
        );
        assert!(r.message().contains("Authorization: Bearer"), "{}", r.body);
        let bare = request(api.addr, "GET", &format!("/api/tokens?{query}"), &[], b"");
        assert_eq!(bare.status, 400, "{query}");
    }
    assert!(!rivetr.log().contains(&api.token));
}

#[test]
fn failed_authentications_are_limited_per_peer_and_forwarded_for_is_ignored() {
    let dir = TestDir::new();
    let (_rivetr, api) = start(&dir);
    let bad = format!("Bearer rvt_{}", "1".repeat(64));

    // Requests without credentials are not attempts and do not count.
    for _ in 0..15 {
        assert_eq!(
            request(api.addr, "GET", "/api/tokens", &[], b"").status,
            401
        );
    }
    for i in 0..10 {
        let r = request(
            api.addr,
            "GET",
            "/api/tokens",
            &[("Authorization", &bad)],
            b"",
        );
        assert_eq!(r.status, 401, "attempt {i}");
    }
    // Now a wrong token from this address is refused unchecked, and a forged header changes
    // nothing, since no proxy is trusted; a valid token still goes through.
    for headers in [
        vec![("Authorization", bad.clone())],
        vec![
            ("Authorization", bad.clone()),
            ("X-Forwarded-For", "198.51.100.77".to_owned()),
        ],
    ] {
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let r = request(api.addr, "GET", "/api/tokens", &headers, b"");
        assert_eq!(
            (r.status, r.code().as_str()),
            (429, "rate_limited"),
            "{}",
            r.body
        );
        let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
        assert!((1..=6).contains(&retry), "Retry-After {retry}");
    }
    assert_eq!(api.get("/api/tokens").status, 200);
    // Public routes stay reachable.
    assert_eq!(
        request(api.addr, "GET", "/api/health", &[], b"").status,
        200
    );
}

#[test]
fn behind_a_trusted_proxy_the_limit_follows_the_forwarded_client() {
    let dir = TestDir::new();
    let launch = Launch::serve().env("RIVETR_SERVER_TRUSTED_PROXIES", r#"["127.0.0.1"]"#);
    let (_rivetr, api) = start_with(&dir, launch);
    let bad = format!("Bearer rvt_{}", "2".repeat(64));
    let attempt = |client: &str, auth: &str| {
        request(
            api.addr,
            "GET",
            "/api/tokens",
            &[("Authorization", auth), ("X-Forwarded-For", client)],
            b"",
        )
    };
    for _ in 0..10 {
        assert_eq!(attempt("203.0.113.5", &bad).status, 401);
    }
    assert_eq!(attempt("203.0.113.5", &bad).status, 429);
    // A valid token is never refused for failures; the limit stops guessing only.
    assert_eq!(attempt("203.0.113.5", &api.auth()).status, 200);
    // Another client behind the same proxy is not affected.
    assert_eq!(attempt("203.0.113.6", &bad).status, 401);
    // A client cannot escape by prepending an address: the proxy's entry is the rightmost.
    assert_eq!(attempt("192.0.2.1, 203.0.113.5", &bad).status, 429);
    // The proxy itself, when it forwards nothing, is one more client.
    let direct = request(
        api.addr,
        "GET",
        "/api/tokens",
        &[("Authorization", &bad)],
        b"",
    );
    assert_eq!(direct.status, 401);
}

fn cli(dir: &TestDir, args: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .args(args)
        .current_dir(dir.path())
        .env_remove("RIVETR_CONFIG")
        .env_remove("STATE_DIRECTORY")
        .output()
        .unwrap()
}

#[test]
fn token_cli_works_on_the_database_beside_a_running_daemon() {
    let dir = TestDir::new();

    // Before any database exists the command refuses, and creates nothing.
    let out = cli(&dir, &["token", "list"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no database"));
    assert!(!state_dir(dir.path()).exists());

    let (rivetr, admin) = start(&dir);

    let out = cli(&dir, &["token", "create", "--name", "laptop"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap().trim_end().to_owned();
    assert!(is_token(&token), "stdout is the token alone: {token:?}");

    let laptop = Api {
        addr: admin.addr,
        token: token.clone(),
    };
    assert_eq!(laptop.get("/api/tokens").status, 200);

    let out = cli(&dir, &["token", "list"]);
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(table.starts_with("ID"), "{table}");
    assert!(
        table.contains("laptop") && table.contains("initial-admin"),
        "{table}"
    );
    assert!(!table.contains("rvt_"), "{table}");

    let out = cli(&dir, &["token", "list", "--json"]);
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let id = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "laptop")
        .unwrap()["id"]
        .as_i64()
        .unwrap();

    let dup = cli(&dir, &["token", "create", "--name", "laptop"]);
    assert_eq!(dup.status.code(), Some(1));
    let bad = cli(&dir, &["token", "create", "--name", ""]);
    assert_eq!(bad.status.code(), Some(2));

    let out = cli(&dir, &["token", "revoke", &id.to_string()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The daemon sees the revocation on the token's next request.
    assert_eq!(laptop.get("/api/tokens").status, 401);
    let again = cli(&dir, &["token", "revoke", &id.to_string()]);
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("already revoked"));

    // And the API lists what the command made.
    let listed = admin.get("/api/tokens").json();
    let row = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == id)
        .unwrap()
        .clone();
    assert!(row["revoked"].as_bool().unwrap(), "{row}");
    assert!(!rivetr.log().contains(&token));

    // --config names the state directory from elsewhere.
    let other = TestDir::new();
    let config = other.write(
        "rivetr.toml",
        &format!(
            "[server]\nstate_dir = \"{}\"\n",
            state_dir(dir.path()).display()
        ),
    );
    let out = cli(
        &other,
        &["token", "list", "--config", config.to_str().unwrap()],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("laptop"));
}
