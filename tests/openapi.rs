//! `GET /api/openapi.json` from the real binary: an OpenAPI 3 document whose every operation
//! the server really routes, and whose protected operations really need a token. (The unit
//! test in src/api/openapi.rs checks the other direction: every route the router serves is
//! in the document, with the same methods.)

use crate::common;

use common::api::{Api, initial_token, request};
use common::{Launch, TestDir};

/// A concrete URL for a templated path.
fn concrete(path: &str) -> String {
    path.replace("{provider}", "github")
        .replace("{app}", "no-such-app")
        .replace("{id}", "999999")
}

#[test]
fn the_document_is_public_and_every_operation_in_it_is_served_and_guarded() {
    let dir = TestDir::new();
    let mut rivetr = Launch::serve().start(&dir);
    rivetr.wait_healthy();
    let api = Api {
        addr: rivetr.api(),
        token: initial_token(dir.path()),
    };

    let r = request(api.addr, "GET", "/api/openapi.json", &[], b"");
    assert_eq!(r.status, 200);
    assert!(
        r.header("content-type")
            .unwrap()
            .starts_with("application/json")
    );
    let doc = r.json();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."), "{doc}");
    let paths = doc["paths"].as_object().unwrap();
    for expected in [
        "/api/health",
        "/api/openapi.json",
        "/api/tokens",
        "/api/tokens/{id}",
        "/api/apps/{app}/webhook-secret",
        "/api/apps/{app}/deploy-key",
        "/api/apps/{app}/known-hosts",
        "/api/apps/{app}/git-credential",
        "/api/certificates",
        "/webhooks/{provider}/{app}",
    ] {
        assert!(paths.contains_key(expected), "{expected} is not documented");
    }

    let mut operations = 0;
    for (path, item) in paths {
        for (method, op) in item.as_object().unwrap() {
            let method = method.to_uppercase();
            let url = concrete(path);
            let public = op.get("security").is_none();
            operations += 1;

            // Without a token: the gate refuses protected operations (401 with
            // `WWW-Authenticate: Bearer`) and lets public ones through (which may still say 401
            // themselves: `GET /api/session` without a session).
            let anonymous = request(api.addr, &method, &url, &[], b"");
            let gate_refused =
                anonymous.status == 401 && anonymous.header("www-authenticate") == Some("Bearer");
            if public {
                assert!(!gate_refused, "{method} {path} should be public");
            } else {
                assert!(gate_refused, "{method} {path}: {}", anonymous.body);
            }
            // An event stream never ends; tests/dashboard.rs follows it.
            let streams = op["responses"]["200"]["content"]
                .get("text/event-stream")
                .is_some();
            if streams {
                continue;
            }

            // With one: routed to a handler, never the fallback's 404 nor a 405.
            let authed = request(
                api.addr,
                &method,
                &url,
                &[("Authorization", &api.auth())],
                b"",
            );
            assert_ne!(authed.status, 405, "{method} {path} is not served");
            if authed.status == 404 {
                assert!(
                    !authed.message().starts_with("no route"),
                    "{method} {path} is not served: {}",
                    authed.body
                );
            }
        }
    }
    assert!(operations >= 7, "only {operations} operations");
}
