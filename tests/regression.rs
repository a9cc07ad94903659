//! Regression tests: one per defect fixed, named after the issue and what it guards
//! (`issue_11_...`), each failing before its fix. The model is ripgrep's
//! `tests/regression.rs`. Tests that need a container engine use the same harness as the
//! other integration tests (`scripts/test-env/engines.sh` exports the sockets).

mod common;

/// A browser's EventSource that reconnects to a deployment's log sends `Last-Event-ID`; the
/// API ignored it and sent the whole log again, so the dashboard showed every line twice.
#[test]
fn issue_12_deployment_log_stream_honours_last_event_id() {
    use common::platform::{GitRepo, Platform, podman_socket, unique_name};
    let Some(socket) = podman_socket("issue_12_deployment_log_stream_honours_last_event_id") else {
        return;
    };
    let platform = Platform::start(&socket, &[]);
    let repo = GitRepo::new("<h1>resume</h1>\n");
    let app = platform.create_app(&unique_name("resume"), repo.path(), serde_json::json!({}));
    let id = platform.deploy(&app, None);
    assert_eq!(platform.wait_done(id)["status"], "running");
    let (_, all) = platform.api("GET", &format!("/api/deployments/{id}/logs"), None);
    let all: Vec<String> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["id"].to_string())
        .collect();
    assert!(all.len() > 4, "{all:?}");
    let auth = format!("Bearer {}", platform.token);
    let mut resumed = common::sse::Sse::open(
        platform.rivetr.api(),
        &format!("/api/deployments/{id}/logs?follow=1"),
        &[("Authorization", &auth), ("Last-Event-ID", &all[1])],
    );
    let mut ids = Vec::new();
    while let Some(e) = resumed.next() {
        if e.event == "end" {
            break;
        }
        ids.push(e.id.unwrap());
    }
    assert_eq!(ids, all[2..].to_vec(), "only the lines after Last-Event-ID");
}
