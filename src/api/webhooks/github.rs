//! GitHub (github.com and GitHub Enterprise Server) deliveries.
//!
//! - Signature: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the raw body>`, keyed with
//!   the hook's secret. The legacy SHA-1 `X-Hub-Signature` is not accepted.
//! - Event: `X-GitHub-Event` (`push`, `ping`, `pull_request`, ...). Delivery:
//!   `X-GitHub-Delivery`, a GUID that a redelivery repeats.
//! - Pull requests: `pull_request` with the body's `action`. New commits on the head branch
//!   are `synchronize`; a merge is `closed` with `merged: true`, as is a close without merge,
//!   since both end the preview. The commit to build is `pull_request.head.sha`, and
//!   `head.repo` is `null` once a fork is deleted, which counts as a fork.
//! - Body: JSON, or `application/x-www-form-urlencoded` with the JSON in `payload`.

use axum::http::HeaderMap;

use super::{Event, PrAction, PullRequest, WebhookError};

pub const SIGNATURE_HEADER: &str = "X-Hub-Signature-256";
pub const EVENT_HEADER: &str = "X-GitHub-Event";
pub const DELIVERY_HEADER: &str = "X-GitHub-Delivery";

pub fn verify(headers: &HeaderMap, body: &[u8], secret: &[u8]) -> Result<(), WebhookError> {
    let value = signature_header(headers)?;
    let hex = value
        .strip_prefix("sha256=")
        .ok_or(WebhookError::MalformedSignature {
            header: SIGNATURE_HEADER,
            why: "expected `sha256=` and 64 hex digits",
        })?;
    super::verify_hmac_sha256_hex(SIGNATURE_HEADER, hex, body, secret)
}

fn signature_header(headers: &HeaderMap) -> Result<&str, WebhookError> {
    let value = headers
        .get(SIGNATURE_HEADER)
        .ok_or(WebhookError::MissingSignature(SIGNATURE_HEADER))?;
    value
        .to_str()
        .map(str::trim)
        .map_err(|_| WebhookError::MalformedSignature {
            header: SIGNATURE_HEADER,
            why: "not ASCII text",
        })
}

pub fn delivery_id(headers: &HeaderMap) -> Result<String, WebhookError> {
    super::delivery_from(headers, &[DELIVERY_HEADER])
}

pub fn event(headers: &HeaderMap, body: &[u8]) -> Result<Event, WebhookError> {
    let name = super::header(headers, EVENT_HEADER)?
        .filter(|n| !n.is_empty())
        .ok_or(WebhookError::MissingHeader(EVENT_HEADER))?;
    let json = super::json_payload(headers, body)?;
    match name {
        "push" => super::parse_push(&json).map(Event::Push),
        "ping" => super::check_json(&json).map(|()| Event::Ping),
        "pull_request" => parse_pull_request(&json).map(Event::PullRequest),
        other => super::check_json(&json).map(|()| Event::Other(other.to_owned())),
    }
}

fn parse_pull_request(json: &[u8]) -> Result<PullRequest, WebhookError> {
    let payload: super::GitHubStylePr = super::parse_payload(json)?;
    let action = pr_action(&payload.action);
    payload.into_pull_request(action)
}

/// GitHub's `action` names. Labels, edits, reviews and the like change no code: `Other`.
fn pr_action(action: &str) -> PrAction {
    match action {
        "opened" => PrAction::Opened,
        "reopened" => PrAction::Reopened,
        "synchronize" => PrAction::Updated,
        "ready_for_review" => PrAction::ReadyForReview,
        "converted_to_draft" => PrAction::ConvertedToDraft,
        "closed" => PrAction::Closed,
        _ => PrAction::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{headers, read, sign};
    use super::*;

    /// GitHub's documented example ("Validating webhook deliveries").
    const DOC_SECRET: &[u8] = b"It's a Secret to Everybody";
    const DOC_BODY: &[u8] = b"Hello, World!";
    const DOC_SIGNATURE: &str =
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";

    #[test]
    fn githubs_documented_vector_passes() {
        let h = headers(&[(SIGNATURE_HEADER, DOC_SIGNATURE)]);
        verify(&h, DOC_BODY, DOC_SECRET).unwrap();
        // Header names are case-insensitive on the wire.
        let h = headers(&[("x-hub-signature-256", DOC_SIGNATURE)]);
        verify(&h, DOC_BODY, DOC_SECRET).unwrap();
    }

    #[test]
    fn a_wrong_secret_body_or_signature_fails() {
        let h = headers(&[(SIGNATURE_HEADER, DOC_SIGNATURE)]);
        assert_eq!(
            verify(&h, DOC_BODY, b"It's a Secret to Everybody!"),
            Err(WebhookError::SignatureMismatch(SIGNATURE_HEADER))
        );
        assert_eq!(
            verify(&h, b"Hello, World?", DOC_SECRET),
            Err(WebhookError::SignatureMismatch(SIGNATURE_HEADER))
        );
        let flipped = DOC_SIGNATURE.replace("757107", "757108");
        let h = headers(&[(SIGNATURE_HEADER, &flipped)]);
        assert!(verify(&h, DOC_BODY, DOC_SECRET).is_err());
    }

    #[test]
    fn malformed_or_missing_signatures_name_the_header() {
        let err = verify(&headers(&[]), DOC_BODY, DOC_SECRET).unwrap_err();
        assert_eq!(err, WebhookError::MissingSignature(SIGNATURE_HEADER));
        assert!(err.to_string().contains("X-Hub-Signature-256"));
        for bad in [
            "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
            "sha1=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
            "sha256=xyz",
            "sha256=757107",
        ] {
            let err =
                verify(&headers(&[(SIGNATURE_HEADER, bad)]), DOC_BODY, DOC_SECRET).unwrap_err();
            assert!(err.is_auth_failure(), "{bad}: {err}");
            assert!(err.to_string().contains(SIGNATURE_HEADER), "{err}");
        }
    }

    #[test]
    fn push_fixture() {
        let body = read("github/push.json");
        let sig = format!("sha256={}", sign(b"s3cret", &body));
        let h = headers(&[
            (SIGNATURE_HEADER, &sig),
            (EVENT_HEADER, "push"),
            (DELIVERY_HEADER, "72d3162e-cc78-11e3-81ab-4c9367dc0958"),
            ("content-type", "application/json"),
        ]);
        verify(&h, &body, b"s3cret").unwrap();
        assert_eq!(
            delivery_id(&h).unwrap(),
            "72d3162e-cc78-11e3-81ab-4c9367dc0958"
        );
        let Event::Push(push) = event(&h, &body).unwrap() else {
            panic!("not a push")
        };
        assert_eq!(push.branch.as_deref(), Some("master"));
        assert_eq!(push.commit_sha, "fd489864e7642b48eaad6e3f155c10e46810ec72");
        assert!(!push.deleted);
        assert_eq!(push.tag, None);
    }

    #[test]
    fn new_branch_fixture_is_a_push_of_its_head() {
        let body = read("github/push-new-branch.json");
        let h = headers(&[(EVENT_HEADER, "push")]);
        let Event::Push(push) = event(&h, &body).unwrap() else {
            panic!("not a push")
        };
        assert_eq!(push.branch.as_deref(), Some("master"));
        assert_eq!(push.commit_sha, "6113728f27ae82c7b1a177c8d03f9e96e0adf246");
        assert!(!push.deleted);
    }

    #[test]
    fn ping_fixture() {
        let body = read("github/ping.json");
        let h = headers(&[(EVENT_HEADER, "ping")]);
        assert_eq!(event(&h, &body).unwrap(), Event::Ping);
    }

    #[test]
    fn form_encoded_push() {
        let json = read("github/push.json");
        let body: String = form_urlencoded::Serializer::new(String::new())
            .append_pair("payload", std::str::from_utf8(&json).unwrap())
            .finish();
        let sig = format!("sha256={}", sign(b"k", body.as_bytes()));
        let h = headers(&[
            (SIGNATURE_HEADER, &sig),
            (EVENT_HEADER, "push"),
            ("content-type", "application/x-www-form-urlencoded"),
        ]);
        // The signature covers the raw form body, not the JSON inside it.
        verify(&h, body.as_bytes(), b"k").unwrap();
        let Event::Push(push) = event(&h, body.as_bytes()).unwrap() else {
            panic!("not a push")
        };
        assert_eq!(push.commit_sha, "fd489864e7642b48eaad6e3f155c10e46810ec72");
    }

    #[test]
    fn deleted_branch_and_tags() {
        let h = headers(&[(EVENT_HEADER, "push")]);
        let body = br#"{"ref": "refs/heads/old", "after": "0000000000000000000000000000000000000000", "deleted": true}"#;
        let Event::Push(push) = event(&h, body).unwrap() else {
            panic!()
        };
        assert!(push.deleted);
        let body =
            br#"{"ref": "refs/tags/v1.0", "after": "fd489864e7642b48eaad6e3f155c10e46810ec72"}"#;
        let Event::Push(push) = event(&h, body).unwrap() else {
            panic!()
        };
        assert_eq!(push.tag.as_deref(), Some("v1.0"));
        assert_eq!(push.branch, None);
    }

    #[test]
    fn missing_headers_and_other_events() {
        assert_eq!(
            event(&headers(&[]), b"{}"),
            Err(WebhookError::MissingHeader(EVENT_HEADER))
        );
        assert_eq!(
            delivery_id(&headers(&[])),
            Err(WebhookError::MissingHeader(DELIVERY_HEADER))
        );
        let h = headers(&[(EVENT_HEADER, "issues")]);
        assert_eq!(event(&h, b"{}").unwrap(), Event::Other("issues".into()));
        assert!(matches!(
            event(&h, b"{oops"),
            Err(WebhookError::MalformedJson(_))
        ));
    }

    fn pr_event(body: &[u8]) -> Result<PullRequest, WebhookError> {
        let h = headers(&[(EVENT_HEADER, "pull_request")]);
        match event(&h, body)? {
            Event::PullRequest(pr) => Ok(pr),
            other => panic!("not a pull request: {other:?}"),
        }
    }

    /// A fixture as JSON, to change one field of a real payload.
    fn fixture_value(path: &str) -> serde_json::Value {
        serde_json::from_slice(&read(path)).unwrap()
    }

    #[test]
    fn pull_request_opened_fixture() {
        let pr = pr_event(&read("github/pull_request.opened.json")).unwrap();
        assert_eq!(
            pr,
            PullRequest {
                number: 2,
                action: PrAction::Opened,
                action_name: "opened".into(),
                head_ref: "changes".into(),
                head_sha: "ec26c3e57ca3a959ca5aad62de7213c562f8c821".into(),
                head_repo: Some("Codertocat/Hello-World".into()),
                base_repo: Some("Codertocat/Hello-World".into()),
                from_fork: false,
                draft: false,
                // 2019-05-15T15:20:33Z
                updated_at: Some(1_557_933_633),
            }
        );
    }

    #[test]
    fn pull_request_synchronize_fixture_is_an_update() {
        let pr = pr_event(&read("github/pull_request.synchronize.json")).unwrap();
        assert_eq!(pr.number, 2);
        assert_eq!(pr.action, PrAction::Updated);
        assert_eq!(pr.action_name, "synchronize");
        assert_eq!(pr.head_ref, "changes");
        assert_eq!(pr.head_sha, "ec26c3e57ca3a959ca5aad62de7213c562f8c821");
        assert_eq!(pr.head_repo.as_deref(), Some("Codertocat/Hello-World"));
        assert_eq!(pr.base_repo.as_deref(), Some("Codertocat/Hello-World"));
        assert!(!pr.from_fork);
        assert!(!pr.draft);
        assert_eq!(pr.updated_at, Some(1_557_933_633));
    }

    #[test]
    fn pull_request_merged_fixture_is_closed() {
        let pr = pr_event(&read("github/pull_request.closed.json")).unwrap();
        assert_eq!(
            pr,
            PullRequest {
                number: 62,
                action: PrAction::Closed,
                action_name: "closed".into(),
                head_ref: "anbraten-patch-3".into(),
                head_sha: "c88b9ee719285134957cbc698c9b7ef9b78007bf".into(),
                head_repo: Some("anbraten/test-ready-release-go".into()),
                base_repo: Some("anbraten/test-ready-release-go".into()),
                from_fork: false,
                draft: false,
                // 2023-12-05T18:34:19Z
                updated_at: Some(1_701_801_259),
            }
        );
    }

    #[test]
    fn pull_request_actions() {
        for (name, action) in [
            ("opened", PrAction::Opened),
            ("reopened", PrAction::Reopened),
            ("synchronize", PrAction::Updated),
            ("ready_for_review", PrAction::ReadyForReview),
            ("converted_to_draft", PrAction::ConvertedToDraft),
            ("closed", PrAction::Closed),
            ("labeled", PrAction::Other),
            ("edited", PrAction::Other),
            // Gitea's spelling is not GitHub's.
            ("synchronized", PrAction::Other),
        ] {
            let mut v = fixture_value("github/pull_request.opened.json");
            v["action"] = name.into();
            let pr = pr_event(&serde_json::to_vec(&v).unwrap()).unwrap();
            assert_eq!((pr.action, pr.action_name.as_str()), (action, name));
        }
    }

    #[test]
    fn pull_request_from_a_fork_or_a_deleted_fork() {
        let mut v = fixture_value("github/pull_request.opened.json");
        v["pull_request"]["head"]["repo"]["full_name"] = "someone/Hello-World".into();
        let pr = pr_event(&serde_json::to_vec(&v).unwrap()).unwrap();
        assert!(pr.from_fork);
        assert_eq!(pr.head_repo.as_deref(), Some("someone/Hello-World"));
        assert_eq!(pr.base_repo.as_deref(), Some("Codertocat/Hello-World"));

        // Repository names are case-insensitive on GitHub.
        v["pull_request"]["head"]["repo"]["full_name"] = "codertocat/hello-world".into();
        assert!(
            !pr_event(&serde_json::to_vec(&v).unwrap())
                .unwrap()
                .from_fork
        );

        v["pull_request"]["head"]["repo"] = serde_json::Value::Null;
        let pr = pr_event(&serde_json::to_vec(&v).unwrap()).unwrap();
        assert!(pr.from_fork);
        assert_eq!(pr.head_repo, None);
        assert_eq!(pr.head_sha, "ec26c3e57ca3a959ca5aad62de7213c562f8c821");
    }

    #[test]
    fn pull_request_draft_sha_case_and_time() {
        let mut v = fixture_value("github/pull_request.opened.json");
        v["pull_request"]["draft"] = true.into();
        v["pull_request"]["head"]["sha"] = "EC26C3E57CA3A959CA5AAD62DE7213C562F8C821".into();
        v["pull_request"]["updated_at"] = "yesterday".into();
        let pr = pr_event(&serde_json::to_vec(&v).unwrap()).unwrap();
        assert!(pr.draft);
        assert_eq!(pr.head_sha, "ec26c3e57ca3a959ca5aad62de7213c562f8c821");
        assert_eq!(pr.updated_at, None);

        let body = v["pull_request"].as_object_mut().unwrap();
        body.remove("draft");
        body.remove("updated_at");
        let pr = pr_event(&serde_json::to_vec(&v).unwrap()).unwrap();
        assert!(!pr.draft);
        assert_eq!(pr.updated_at, None);
    }

    #[test]
    fn pull_request_field_errors_name_the_field() {
        let mut v = fixture_value("github/pull_request.opened.json");
        v["pull_request"]["head"]["sha"] = "not-a-sha".into();
        let err = pr_event(&serde_json::to_vec(&v).unwrap()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "payload field `pull_request.head.sha`: not a commit id (40 or 64 hex digits)"
        );

        let mut v = fixture_value("github/pull_request.opened.json");
        v["pull_request"]["head"]["ref"] = "".into();
        let err = pr_event(&serde_json::to_vec(&v).unwrap()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "payload field `pull_request.head.ref`: empty"
        );

        let mut v = fixture_value("github/pull_request.opened.json");
        v["pull_request"]["head"]
            .as_object_mut()
            .unwrap()
            .remove("sha");
        let err = pr_event(&serde_json::to_vec(&v).unwrap()).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("`pull_request.head`"), "{text}");
        assert!(text.contains("missing field `sha`"), "{text}");

        let mut v = fixture_value("github/pull_request.opened.json");
        v["number"] = "two".into();
        let err = pr_event(&serde_json::to_vec(&v).unwrap()).unwrap_err();
        assert!(err.to_string().contains("`number`"), "{err}");
    }
}
