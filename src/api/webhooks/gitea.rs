//! Gitea deliveries, and Forgejo's and Gogs', which share the format.
//!
//! - Signature: `X-Gitea-Signature` (Forgejo also sends `X-Forgejo-Signature`, Gogs
//!   `X-Gogs-Signature`), lowercase hex HMAC-SHA256 of the raw body, no prefix. Gitea sends
//!   the header empty when the hook has no secret.
//! - Event: `X-Gitea-Event` (or `X-Forgejo-Event`, `X-Gogs-Event`): `push` for branches and
//!   tags. A deleted branch comes only as a `delete` event, which does not deploy. Gitea has no
//!   ping; its "Test delivery" sends a `push`.
//! - Pull requests: `pull_request` (a `pull_request_sync` name is read the same way), with
//!   GitHub's payload shape but Gitea's own `action` names: new commits are `synchronized`,
//!   with a trailing d, and a merge is `closed` with `merged: true`. Gitea also copies the
//!   event name into `X-GitHub-Event`; only Gitea's own headers are read here, so the
//!   delivery is never taken for GitHub's.
//! - Delivery: `X-Gitea-Delivery` (or `X-Forgejo-Delivery`, `X-Gogs-Delivery`).
//! - Body: JSON, or form-encoded with the JSON in `payload`.

use axum::http::HeaderMap;

use super::{Event, PrAction, PullRequest, WebhookError};

pub const SIGNATURE_HEADERS: [&str; 3] = [
    "X-Gitea-Signature",
    "X-Forgejo-Signature",
    "X-Gogs-Signature",
];
pub const EVENT_HEADERS: [&str; 3] = ["X-Gitea-Event", "X-Forgejo-Event", "X-Gogs-Event"];
pub const DELIVERY_HEADERS: [&str; 3] =
    ["X-Gitea-Delivery", "X-Forgejo-Delivery", "X-Gogs-Delivery"];

pub fn verify(headers: &HeaderMap, body: &[u8], secret: &[u8]) -> Result<(), WebhookError> {
    let (name, value) = super::first_header(headers, &SIGNATURE_HEADERS)
        .map_err(|_| WebhookError::MalformedSignature {
            header: SIGNATURE_HEADERS[0],
            why: "not ASCII text",
        })?
        .ok_or(WebhookError::MissingSignature(SIGNATURE_HEADERS[0]))?;
    if value.is_empty() {
        // What Gitea sends for a hook without a secret.
        return Err(WebhookError::MissingSignature(name));
    }
    super::verify_hmac_sha256_hex(name, value, body, secret)
}

pub fn delivery_id(headers: &HeaderMap) -> Result<String, WebhookError> {
    super::delivery_from(headers, &DELIVERY_HEADERS)
}

pub fn event(headers: &HeaderMap, body: &[u8]) -> Result<Event, WebhookError> {
    let (_, name) = super::first_header(headers, &EVENT_HEADERS)?
        .filter(|(_, n)| !n.is_empty())
        .ok_or(WebhookError::MissingHeader(EVENT_HEADERS[0]))?;
    let json = super::json_payload(headers, body)?;
    match name {
        "push" => super::parse_push(&json).map(Event::Push),
        // `pull_request_sync` is Gitea's finer type for new commits; the body's action says
        // the same, so both are read alike.
        "pull_request" | "pull_request_sync" => parse_pull_request(&json).map(Event::PullRequest),
        other => super::check_json(&json).map(|()| Event::Other(other.to_owned())),
    }
}

fn parse_pull_request(json: &[u8]) -> Result<PullRequest, WebhookError> {
    let payload: super::GitHubStylePr = super::parse_payload(json)?;
    let action = pr_action(&payload.action);
    payload.into_pull_request(action)
}

/// Gitea's `action` names, which differ from GitHub's for new commits (`synchronized`).
/// Labels, assignees, reviews and edits change no code: `Other`.
fn pr_action(action: &str) -> PrAction {
    match action {
        "opened" => PrAction::Opened,
        "reopened" => PrAction::Reopened,
        "synchronized" => PrAction::Updated,
        "closed" => PrAction::Closed,
        _ => PrAction::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{headers, read, sign};
    use super::*;

    #[test]
    fn push_fixture_with_gitea_headers() {
        let body = read("gitea/push.json");
        let sig = sign(b"gitea-secret", &body);
        let h = headers(&[
            ("X-Gitea-Signature", &sig),
            ("X-Gitea-Event", "push"),
            ("X-Gitea-Delivery", "f6266f16-1bf3-46a5-9ea4-602e06ead473"),
        ]);
        verify(&h, &body, b"gitea-secret").unwrap();
        assert_eq!(
            delivery_id(&h).unwrap(),
            "f6266f16-1bf3-46a5-9ea4-602e06ead473"
        );
        let Event::Push(push) = event(&h, &body).unwrap() else {
            panic!("not a push")
        };
        assert_eq!(push.branch.as_deref(), Some("develop"));
        assert_eq!(push.commit_sha, "bffeb74224043ba2feb48d137756c8a9331c449a");
        assert!(!push.deleted);
    }

    #[test]
    fn forgejo_fixture_with_forgejo_headers_only() {
        let body = read("gitea/forgejo-push.json");
        let sig = sign(b"forgejo-secret", &body);
        let h = headers(&[
            ("X-Forgejo-Signature", &sig),
            ("X-Forgejo-Event", "push"),
            ("X-Forgejo-Delivery", "d1"),
        ]);
        verify(&h, &body, b"forgejo-secret").unwrap();
        assert_eq!(delivery_id(&h).unwrap(), "d1");
        assert!(matches!(event(&h, &body).unwrap(), Event::Push(_)));
    }

    #[test]
    fn new_branch_fixture() {
        let body = read("gitea/push-new-branch.json");
        let h = headers(&[("X-Gitea-Event", "push")]);
        let Event::Push(push) = event(&h, &body).unwrap() else {
            panic!("not a push")
        };
        assert_eq!(push.branch.as_deref(), Some("master"));
        assert_eq!(push.commit_sha, "67b56589a45103f891bdee7c0546e5d40bc02001");
        assert!(!push.deleted);
    }

    #[test]
    fn wrong_empty_or_missing_signatures() {
        let body = read("gitea/push.json");
        let sig = sign(b"other", &body);
        let h = headers(&[("X-Gitea-Signature", &sig)]);
        assert_eq!(
            verify(&h, &body, b"gitea-secret"),
            Err(WebhookError::SignatureMismatch("X-Gitea-Signature"))
        );
        let h = headers(&[("X-Gitea-Signature", "")]);
        assert_eq!(
            verify(&h, &body, b"gitea-secret"),
            Err(WebhookError::MissingSignature("X-Gitea-Signature"))
        );
        // A GitHub-style signature alone is not what Gitea sends first; it is not read.
        let h = headers(&[("X-Hub-Signature-256", &format!("sha256={sig}"))]);
        assert_eq!(
            verify(&h, &body, b"other"),
            Err(WebhookError::MissingSignature("X-Gitea-Signature"))
        );
        let h = headers(&[("X-Gitea-Signature", "sha256=abcd")]);
        assert!(matches!(
            verify(&h, &body, b"x"),
            Err(WebhookError::MalformedSignature { .. })
        ));
    }

    #[test]
    fn delete_and_create_events_do_not_deploy() {
        let h = headers(&[("X-Gitea-Event", "delete")]);
        let body = br#"{"ref": "feature", "ref_type": "branch"}"#;
        assert_eq!(event(&h, body).unwrap(), Event::Other("delete".into()));
        assert_eq!(
            event(&headers(&[]), b"{}"),
            Err(WebhookError::MissingHeader("X-Gitea-Event"))
        );
    }

    fn pr_event(h: &HeaderMap, body: &[u8]) -> Result<PullRequest, WebhookError> {
        match event(h, body)? {
            Event::PullRequest(pr) => Ok(pr),
            other => panic!("not a pull request: {other:?}"),
        }
    }

    fn gitea_pr(body: &[u8]) -> Result<PullRequest, WebhookError> {
        pr_event(&headers(&[("X-Gitea-Event", "pull_request")]), body)
    }

    /// A fixture as JSON, to change one field of a real payload.
    fn fixture_value(path: &str) -> serde_json::Value {
        serde_json::from_slice(&read(path)).unwrap()
    }

    #[test]
    fn pull_request_opened_fixture() {
        let pr = gitea_pr(&read("gitea/pull_request.opened.json")).unwrap();
        assert_eq!(
            pr,
            PullRequest {
                number: 1,
                action: PrAction::Opened,
                action_name: "opened".into(),
                head_ref: "feature".into(),
                head_sha: "2eba238e33607c1fa49253182e9fff42baafa1eb".into(),
                head_repo: Some("jcitizen/my-repo".into()),
                base_repo: Some("jcitizen/my-repo".into()),
                from_fork: false,
                // This 2018 payload has no `draft`.
                draft: false,
                // 2018-07-06T00:37:47Z
                updated_at: Some(1_530_837_467),
            }
        );
    }

    #[test]
    fn pull_request_merged_fixture_is_closed() {
        let pr = gitea_pr(&read("gitea/pull_request.closed.json")).unwrap();
        assert_eq!(
            pr,
            PullRequest {
                number: 1,
                action: PrAction::Closed,
                action_name: "closed".into(),
                head_ref: "anbraten-patch-1".into(),
                head_sha: "d555a5dd07f4d0148a58d4686ec381502ae6a2d4".into(),
                head_repo: Some("anbraten/test-repo".into()),
                base_repo: Some("anbraten/test-repo".into()),
                from_fork: false,
                draft: false,
                // 2023-12-05T18:35:31Z
                updated_at: Some(1_701_801_331),
            }
        );
    }

    #[test]
    fn forgejo_pull_request_fixture_with_forgejo_headers_only() {
        let body = read("gitea/forgejo-pull_request.opened.json");
        let h = headers(&[("X-Forgejo-Event", "pull_request")]);
        let pr = pr_event(&h, &body).unwrap();
        assert_eq!(
            pr,
            PullRequest {
                number: 2,
                action: PrAction::Opened,
                action_name: "opened".into(),
                head_ref: "other".into(),
                head_sha: "5b88b61dbedba1acefb5a65b42114bfef773e18e".into(),
                head_repo: Some("root/example-pull-request".into()),
                base_repo: Some("root/example-pull-request".into()),
                from_fork: false,
                draft: false,
                // 2025-09-01T17:21:51Z
                updated_at: Some(1_756_747_311),
            }
        );
    }

    #[test]
    fn synchronized_is_an_update() {
        let mut v = fixture_value("gitea/pull_request.opened.json");
        v["action"] = "synchronized".into();
        let body = serde_json::to_vec(&v).unwrap();
        let pr = gitea_pr(&body).unwrap();
        assert_eq!(pr.action, PrAction::Updated);
        assert_eq!(pr.action_name, "synchronized");
        assert_eq!(pr.head_sha, "2eba238e33607c1fa49253182e9fff42baafa1eb");
        // The finer event name, should it come as the event, reads the same.
        let h = headers(&[("X-Gitea-Event", "pull_request_sync")]);
        assert_eq!(pr_event(&h, &body).unwrap(), pr);
    }

    #[test]
    fn pull_request_actions() {
        for (name, action) in [
            ("opened", PrAction::Opened),
            ("reopened", PrAction::Reopened),
            ("synchronized", PrAction::Updated),
            ("closed", PrAction::Closed),
            ("edited", PrAction::Other),
            ("label_updated", PrAction::Other),
            // GitHub's spelling is not Gitea's.
            ("synchronize", PrAction::Other),
        ] {
            assert_eq!(pr_action(name), action, "{name}");
        }
    }

    #[test]
    fn gitea_headers_win_over_its_github_copies() {
        let body = read("gitea/pull_request.opened.json");
        let sig = sign(b"gitea-secret", &body);
        let h = headers(&[
            ("X-Gitea-Signature", &sig),
            ("X-Gitea-Event", "pull_request"),
            ("X-Gitea-Event-Type", "pull_request"),
            ("X-Gitea-Delivery", "0b3f4b9a-1f7e-4b52-9c84-8b0f6f0c2f11"),
            ("X-GitHub-Event", "pull_request"),
            ("X-GitHub-Event-Type", "pull_request"),
            ("X-GitHub-Delivery", "0b3f4b9a-1f7e-4b52-9c84-8b0f6f0c2f11"),
            ("X-Hub-Signature-256", &format!("sha256={sig}")),
            ("content-type", "application/json"),
        ]);
        verify(&h, &body, b"gitea-secret").unwrap();
        let pr = pr_event(&h, &body).unwrap();
        assert_eq!(pr.number, 1);
        assert_eq!(pr.action, PrAction::Opened);
        assert_eq!(pr.head_sha, "2eba238e33607c1fa49253182e9fff42baafa1eb");
        // A Gitea `synchronized` read by GitHub's rules would not be an update.
        let mut v = fixture_value("gitea/pull_request.opened.json");
        v["action"] = "synchronized".into();
        let body = serde_json::to_vec(&v).unwrap();
        assert_eq!(pr_event(&h, &body).unwrap().action, PrAction::Updated);
    }

    #[test]
    fn pull_request_forks_and_field_errors() {
        let mut v = fixture_value("gitea/pull_request.opened.json");
        v["pull_request"]["head"]["repo"]["full_name"] = "someone/my-repo".into();
        assert!(
            gitea_pr(&serde_json::to_vec(&v).unwrap())
                .unwrap()
                .from_fork
        );
        v["pull_request"]["head"]["repo"] = serde_json::Value::Null;
        let pr = gitea_pr(&serde_json::to_vec(&v).unwrap()).unwrap();
        assert!(pr.from_fork);
        assert_eq!(pr.head_repo, None);

        let mut v = fixture_value("gitea/pull_request.opened.json");
        v["pull_request"]["head"]["sha"] = "feature".into();
        let err = gitea_pr(&serde_json::to_vec(&v).unwrap()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "payload field `pull_request.head.sha`: not a commit id (40 or 64 hex digits)"
        );
        let err = gitea_pr(b"{\"action\": \"opened\", \"number\": 1}").unwrap_err();
        assert!(
            err.to_string().contains("missing field `pull_request`"),
            "{err}"
        );
    }
}
