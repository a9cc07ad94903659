//! Regression tests: one per defect fixed, named after the issue and what it guards
//! (`issue_11_...`), each failing before its fix. The model is ripgrep's
//! `tests/regression.rs`. Tests that need a container engine use the same harness as the
//! other integration tests (`scripts/test-env/engines.sh` exports the sockets).

mod common;

mod issue_11_support {
    //! What the `issue_11_*` tests of this file share.
    pub use super::common::api::{Api, initial_token, request};
    pub use super::common::backend::Backend;
    pub use super::common::platform::{GitRepo, Platform, podman_socket, unique_name};
    pub use super::common::{Launch, Rivetr, TestDir, raw_exchange, wait_for};
    pub use serde_json::json;
    pub use std::time::{Duration, Instant};

    /// `[[proxy.routes]]` for `host` to `upstream`, plain HTTP.
    pub fn route(host: &str, upstream: std::net::SocketAddr) -> String {
        format!(
            "[[proxy.routes]]\nhost = \"{host}\"\nupstreams = [\"{upstream}\"]\ntls = \"none\"\n\n"
        )
    }

    /// Starts Rivetr with `config` written to `<dir>/rivetr.toml`, plus `env`.
    pub fn start_with(dir: &TestDir, config: &str, env: &[(&str, &str)]) -> (Rivetr, Api) {
        let path = dir.write("rivetr.toml", config);
        let mut launch = Launch::serve().arg("--config").arg(path.to_str().unwrap());
        for (k, v) in env {
            launch = launch.env(k, *v);
        }
        let mut rivetr = launch.start(dir);
        rivetr.wait_healthy();
        let api = Api {
            addr: rivetr.api(),
            token: initial_token(dir.path()),
        };
        (rivetr, api)
    }

    pub fn patch_json(api: &Api, path: &str, body: &str) -> super::common::api::Resp {
        request(
            api.addr,
            "PATCH",
            path,
            &[
                ("Authorization", &api.auth()),
                ("Content-Type", "application/json"),
            ],
            body.as_bytes(),
        )
    }

    /// (status, body) of a GET through the proxy's plain-HTTP listener for `host`.
    pub fn through_proxy(rivetr: &Rivetr, host: &str) -> (u16, String) {
        let (status, _, body) = raw_exchange(
            rivetr.http(),
            &format!("GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"),
        );
        (status, body)
    }
}

/// Defect 3: an app's domain could take over `[server] domain` or a `[[proxy.routes]]` host
/// (the app won after a deploy, the configuration after a reload). A host has one owner: the
/// API refuses an app a configured host (409 naming the owner), a reload that claims an app's
/// host is refused whole, and at a start such a route is left out.
#[test]
fn issue_11_an_app_and_the_configuration_never_share_a_host() {
    use issue_11_support::*;
    let configured = Backend::start("configured");
    let dir = TestDir::new();
    let first = format!(
        "[server]\ndomain = \"paas.example.org\"\n\n{}{}",
        route("grafana.example.org", configured.addr),
        route("*.w.example.org", configured.addr)
    );
    let (mut rivetr, api) = start_with(&dir, &first, &[]);
    let app = |name: &str, domains: &[&str]| {
        json!({ "name": name, "image": "localhost/busybox:test", "domains": domains }).to_string()
    };

    for (domain, owner) in [
        ("grafana.example.org", "[[proxy.routes]]"),
        ("PAAS.example.org", "[server] domain"),
        ("*.w.example.org", "[[proxy.routes]]"),
    ] {
        let r = api.post_json("/api/apps", &app("taker", &[domain]));
        assert_eq!(r.status, 409, "an app was given {domain}: {}", r.body);
        assert!(r.message().contains(owner), "{domain}: {}", r.body);
    }
    assert_eq!(api.get("/api/apps/taker").status, 404);
    // A name under a configured wildcard is another host: the exact name wins it.
    let r = api.post_json("/api/apps", &app("under", &["a.w.example.org"]));
    assert_eq!(r.status, 201, "{}", r.body);
    // Between apps, the same name or the same wildcard is one host.
    let r = api.post_json(
        "/api/apps",
        &app("blog", &["blog.example.org", "*.shop.example.org"]),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    for domain in ["blog.example.org", "*.shop.example.org"] {
        let r = api.post_json("/api/apps", &app("copy", &[domain]));
        assert_eq!(r.status, 409, "{domain}: {}", r.body);
        assert!(r.message().contains("app `blog`"), "{}", r.body);
    }
    let r = patch_json(
        &api,
        "/api/apps/blog",
        &json!({ "domains": ["blog.example.org", "grafana.example.org"] }).to_string(),
    );
    assert_eq!(r.status, 409, "{}", r.body);
    assert!(r.message().contains("[[proxy.routes]]"), "{}", r.body);
    assert_eq!(
        api.get("/api/apps/blog").json()["domains"],
        json!(["blog.example.org", "*.shop.example.org"])
    );

    // A reload whose routes claim an app's host is refused whole, saying why.
    let second = format!(
        "{first}{}{}",
        route("new.example.org", configured.addr),
        route("blog.example.org", configured.addr)
    );
    dir.write("rivetr.toml", &second);
    rivetr.signal(libc::SIGHUP);
    rivetr.wait_log("reload refused", Duration::from_secs(10));
    assert!(
        rivetr.log().contains("is a domain of app `blog`"),
        "{}",
        rivetr.log()
    );
    assert_eq!(through_proxy(&rivetr, "blog.example.org").0, 404);
    assert_eq!(through_proxy(&rivetr, "new.example.org").0, 404);
    assert_eq!(
        through_proxy(&rivetr, "grafana.example.org"),
        (200, "configured".to_owned())
    );

    // At a start there is no older configuration to keep: the claiming route is left out,
    // the rest applies, and the app keeps its host.
    rivetr.signal(libc::SIGTERM);
    rivetr.wait_exit(Duration::from_secs(30));
    let (rivetr, _) = start_with(&dir, &second, &[]);
    assert!(
        rivetr
            .log()
            .contains("the configuration claims a domain of an app"),
        "{}",
        rivetr.log()
    );
    assert_eq!(through_proxy(&rivetr, "blog.example.org").0, 404);
    assert_eq!(
        through_proxy(&rivetr, "new.example.org"),
        (200, "configured".to_owned())
    );
}
