//! GitLab deliveries.
//!
//! - Secret: `X-Gitlab-Token` carries the hook's secret token verbatim (GitLab signs
//!   nothing). Both sides are hashed with SHA-256 and the digests compared in constant time,
//!   so neither the secret's bytes nor its length show in the timing.
//! - Event: `X-Gitlab-Event`: `Push Hook` for branches (also creation and deletion), `Tag Push
//!   Hook` for tags. GitLab's "Test" button sends one of these with sample data, so a test
//!   push to the app's branch deploys like a real one.
//! - Merge requests: `Merge Request Hook`, read from `object_attributes`. New commits arrive as
//!   `update` carrying `oldrev`; an `update` without it changes only metadata (title, labels),
//!   so it redeploys nothing. A merge is its own `merge` action, which ends the preview as a
//!   close does. The MR's number is `iid` (per project), not the global `id`, and it comes
//!   from a fork when `source_project_id` differs from `target_project_id`.
//! - Delivery: `Idempotency-Key` when present (GitLab 17.4+: unique per delivery and stable
//!   across its retries, the key GitLab documents for deduplication), else
//!   `X-Gitlab-Event-UUID` (14.8+: per event). Deliveries are deduplicated per app, so hooks of
//!   one event for two apps do not collide.

use axum::http::HeaderMap;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{Event, PrAction, PullRequest, WebhookError};

pub const TOKEN_HEADER: &str = "X-Gitlab-Token";
pub const EVENT_HEADER: &str = "X-Gitlab-Event";
pub const IDEMPOTENCY_HEADER: &str = "Idempotency-Key";
pub const EVENT_UUID_HEADER: &str = "X-Gitlab-Event-UUID";

pub fn verify(headers: &HeaderMap, secret: &[u8]) -> Result<(), WebhookError> {
    let given = headers
        .get(TOKEN_HEADER)
        .ok_or(WebhookError::MissingSignature(TOKEN_HEADER))?;
    let given = Sha256::digest(given.as_bytes());
    let expected = Sha256::digest(secret);
    if bool::from(given.as_slice().ct_eq(expected.as_slice())) {
        Ok(())
    } else {
        Err(WebhookError::SignatureMismatch(TOKEN_HEADER))
    }
}

pub fn delivery_id(headers: &HeaderMap) -> Result<String, WebhookError> {
    super::delivery_from(headers, &[IDEMPOTENCY_HEADER, EVENT_UUID_HEADER]).map_err(|e| match e {
        // Name the header every supported GitLab sends, not the newer one.
        WebhookError::MissingHeader(_) => WebhookError::MissingHeader(EVENT_UUID_HEADER),
        other => other,
    })
}

pub fn event(headers: &HeaderMap, body: &[u8]) -> Result<Event, WebhookError> {
    let name = super::header(headers, EVENT_HEADER)?
        .filter(|n| !n.is_empty())
        .ok_or(WebhookError::MissingHeader(EVENT_HEADER))?;
    match name {
        "Push Hook" | "Tag Push Hook" => super::parse_push(body).map(Event::Push),
        "Merge Request Hook" => parse_merge_request(body).map(Event::PullRequest),
        other => super::check_json(body).map(|()| Event::Other(other.to_owned())),
    }
}

/// The parts of a `Merge Request Hook` that Rivetr reads.
#[derive(Debug, Deserialize)]
struct MergeRequestPayload {
    object_attributes: MergeRequest,
}

#[derive(Debug, Deserialize)]
struct MergeRequest {
    iid: u64,
    action: String,
    /// The head before the push; only an `update` that brought new commits has it.
    #[serde(default)]
    oldrev: Option<String>,
    source_branch: String,
    last_commit: LastCommit,
    /// `null` when the source project is gone, as for a deleted fork.
    #[serde(default)]
    source_project_id: Option<u64>,
    #[serde(default)]
    target_project_id: Option<u64>,
    #[serde(default)]
    source: Option<Project>,
    #[serde(default)]
    target: Option<Project>,
    /// GitLab 14+; older versions only send `work_in_progress`.
    #[serde(default)]
    draft: Option<bool>,
    #[serde(default)]
    work_in_progress: Option<bool>,
    #[serde(default, deserialize_with = "super::lenient_timestamp")]
    updated_at: Option<i64>,
}

#[derive(Debug, Deserialize)]
struct LastCommit {
    id: String,
}

#[derive(Debug, Deserialize)]
struct Project {
    path_with_namespace: String,
}

fn parse_merge_request(json: &[u8]) -> Result<PullRequest, WebhookError> {
    let mr = super::parse_payload::<MergeRequestPayload>(json)?.object_attributes;
    let action = mr_action(&mr.action, mr.oldrev.as_deref());
    // An MR whose source project is unknown is treated as from a fork, like GitHub's
    // `head.repo: null`.
    let from_fork = match (mr.source_project_id, mr.target_project_id) {
        (Some(source), Some(target)) => source != target,
        _ => true,
    };
    super::check_pull_request(
        PullRequest {
            number: mr.iid,
            action,
            action_name: mr.action,
            head_ref: mr.source_branch,
            head_sha: mr.last_commit.id,
            head_repo: mr.source.map(|p| p.path_with_namespace),
            base_repo: mr.target.map(|p| p.path_with_namespace),
            from_fork,
            draft: mr.draft.or(mr.work_in_progress).unwrap_or(false),
            updated_at: mr.updated_at,
        },
        "object_attributes.last_commit.id",
        "object_attributes.source_branch",
    )
}

/// GitLab's `action` names. Approvals and the like change no code: `Other`.
fn mr_action(action: &str, oldrev: Option<&str>) -> PrAction {
    match action {
        "open" => PrAction::Opened,
        "reopen" => PrAction::Reopened,
        "update" if oldrev.is_some_and(|rev| !rev.is_empty()) => PrAction::Updated,
        "close" | "merge" => PrAction::Closed,
        _ => PrAction::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{headers, read};
    use super::*;

    #[test]
    fn the_token_must_equal_the_secret() {
        let h = headers(&[(TOKEN_HEADER, "s3cret-token")]);
        verify(&h, b"s3cret-token").unwrap();
        assert_eq!(
            verify(&h, b"s3cret-tokem"),
            Err(WebhookError::SignatureMismatch(TOKEN_HEADER))
        );
        assert_eq!(
            verify(&h, b"s3cret-token-longer"),
            Err(WebhookError::SignatureMismatch(TOKEN_HEADER))
        );
        assert_eq!(
            verify(&headers(&[]), b"x"),
            Err(WebhookError::MissingSignature(TOKEN_HEADER))
        );
    }

    #[test]
    fn push_fixture() {
        let body = read("gitlab/push.json");
        let h = headers(&[
            (EVENT_HEADER, "Push Hook"),
            (EVENT_UUID_HEADER, "13792a34-cac6-4fda-95a8-c58e00a3954e"),
        ]);
        let Event::Push(push) = event(&h, &body).unwrap() else {
            panic!("not a push")
        };
        assert_eq!(push.branch.as_deref(), Some("master"));
        assert_eq!(push.commit_sha, "da1560886d4f094c3e6c9ef40349f7d38b5d27d7");
        assert!(!push.deleted);
        assert_eq!(
            delivery_id(&h).unwrap(),
            "13792a34-cac6-4fda-95a8-c58e00a3954e"
        );
    }

    #[test]
    fn idempotency_key_is_preferred() {
        let h = headers(&[
            (EVENT_UUID_HEADER, "event-uuid"),
            (IDEMPOTENCY_HEADER, "delivery-key"),
        ]);
        assert_eq!(delivery_id(&h).unwrap(), "delivery-key");
        assert_eq!(
            delivery_id(&headers(&[])),
            Err(WebhookError::MissingHeader(EVENT_UUID_HEADER))
        );
    }

    #[test]
    fn deleted_branch_and_tag_push() {
        let h = headers(&[(EVENT_HEADER, "Push Hook")]);
        let body = br#"{"object_kind": "push", "ref": "refs/heads/main", "before": "95790bf891e76fee5e1747ab589903a6a1f80f22", "after": "0000000000000000000000000000000000000000", "checkout_sha": null}"#;
        let Event::Push(push) = event(&h, body).unwrap() else {
            panic!()
        };
        assert!(push.deleted);
        let h = headers(&[(EVENT_HEADER, "Tag Push Hook")]);
        let body = br#"{"object_kind": "tag_push", "ref": "refs/tags/v1.0.0", "after": "82b3d5ae55f7080f1e6022629cdb57bfae7cccc7"}"#;
        let Event::Push(push) = event(&h, body).unwrap() else {
            panic!()
        };
        assert_eq!(push.tag.as_deref(), Some("v1.0.0"));
    }

    #[test]
    fn other_events() {
        let h = headers(&[(EVENT_HEADER, "Issue Hook")]);
        assert_eq!(event(&h, b"{}").unwrap(), Event::Other("Issue Hook".into()));
        assert_eq!(
            event(&headers(&[]), b"{}"),
            Err(WebhookError::MissingHeader(EVENT_HEADER))
        );
    }

    fn mr_event(body: &[u8]) -> Result<PullRequest, WebhookError> {
        let h = headers(&[(EVENT_HEADER, "Merge Request Hook")]);
        match event(&h, body)? {
            Event::PullRequest(pr) => Ok(pr),
            other => panic!("not a merge request: {other:?}"),
        }
    }

    /// A fixture as JSON, to change one field of a real payload.
    fn fixture_value(path: &str) -> serde_json::Value {
        serde_json::from_slice(&read(path)).unwrap()
    }

    fn to_body(v: &serde_json::Value) -> Vec<u8> {
        serde_json::to_vec(v).unwrap()
    }

    #[test]
    fn merge_request_open_fixture() {
        let pr = mr_event(&read("gitlab/merge_request.open.json")).unwrap();
        assert_eq!(
            pr,
            PullRequest {
                number: 3,
                action: PrAction::Opened,
                action_name: "open".into(),
                head_ref: "real6543-main-patch-42541".into(),
                head_sha: "2f7670508b771e7e77839402be8b34b13787aba8".into(),
                head_repo: Some("demoaccount2-commits-group/test_ci_tmp".into()),
                base_repo: Some("demoaccount2-commits-group/test_ci_tmp".into()),
                from_fork: false,
                draft: false,
                // 2025-08-05 21:48:27 UTC
                updated_at: Some(1_754_430_507),
            }
        );
    }

    #[test]
    fn merge_request_update_fixture_with_oldrev_is_an_update() {
        let pr = mr_event(&read("gitlab/merge_request.update.json")).unwrap();
        assert_eq!(
            pr,
            PullRequest {
                number: 3,
                action: PrAction::Updated,
                action_name: "update".into(),
                head_ref: "anbraten-main-patch-05373".into(),
                head_sha: "c136499ec574e1034b24c5d306de9acda3005367".into(),
                head_repo: Some("anbraten/woodpecker".into()),
                base_repo: Some("anbraten/woodpecker".into()),
                from_fork: false,
                // No `draft` in this 2022 payload: `work_in_progress: false` is read.
                draft: false,
                // 2022-01-17 15:47:39 UTC
                updated_at: Some(1_642_434_459),
            }
        );
    }

    #[test]
    fn merge_request_merge_fixture_is_closed() {
        let pr = mr_event(&read("gitlab/merge_request.merge.json")).unwrap();
        assert_eq!(
            pr,
            PullRequest {
                number: 4,
                action: PrAction::Closed,
                action_name: "merge".into(),
                head_ref: "patch-1".into(),
                head_sha: "3e4db3586b65dd401de8c77b3ac343fd24cbf89b".into(),
                head_repo: Some("anbraten/woodpecker-test".into()),
                base_repo: Some("anbraten/woodpecker-test".into()),
                from_fork: false,
                draft: false,
                // 2023-12-05 18:43:00 UTC
                updated_at: Some(1_701_801_780),
            }
        );
    }

    #[test]
    fn update_without_oldrev_changes_no_code() {
        let mut v = fixture_value("gitlab/merge_request.update.json");
        let attrs = v["object_attributes"].as_object_mut().unwrap();
        attrs.remove("oldrev");
        let pr = mr_event(&to_body(&v)).unwrap();
        assert_eq!(pr.action, PrAction::Other);
        assert_eq!(pr.action_name, "update");
        v["object_attributes"]["oldrev"] = serde_json::Value::Null;
        assert_eq!(mr_event(&to_body(&v)).unwrap().action, PrAction::Other);
    }

    #[test]
    fn merge_request_actions() {
        for (name, oldrev, action) in [
            ("open", None, PrAction::Opened),
            ("reopen", None, PrAction::Reopened),
            (
                "update",
                Some("8b641937b7340066d882b9d8a8cc5b0573a207de"),
                PrAction::Updated,
            ),
            ("update", None, PrAction::Other),
            ("close", None, PrAction::Closed),
            ("merge", None, PrAction::Closed),
            ("approved", None, PrAction::Other),
            ("unapproved", None, PrAction::Other),
        ] {
            assert_eq!(mr_action(name, oldrev), action, "{name}");
        }
    }

    #[test]
    fn merge_request_from_a_fork_and_drafts() {
        let mut v = fixture_value("gitlab/merge_request.open.json");
        v["object_attributes"]["source_project_id"] = 1234.into();
        v["object_attributes"]["source"]["path_with_namespace"] = "someone/test_ci_tmp".into();
        v["object_attributes"]["draft"] = true.into();
        let pr = mr_event(&to_body(&v)).unwrap();
        assert!(pr.from_fork);
        assert!(pr.draft);
        assert_eq!(pr.head_repo.as_deref(), Some("someone/test_ci_tmp"));
        assert_eq!(
            pr.base_repo.as_deref(),
            Some("demoaccount2-commits-group/test_ci_tmp")
        );

        // Older GitLab: only `work_in_progress`.
        let mut v = fixture_value("gitlab/merge_request.update.json");
        v["object_attributes"]["work_in_progress"] = true.into();
        assert!(mr_event(&to_body(&v)).unwrap().draft);
    }

    #[test]
    fn merge_request_times() {
        let mut v = fixture_value("gitlab/merge_request.open.json");
        v["object_attributes"]["updated_at"] = "2016-08-12 13:54:19 UTC".into();
        assert_eq!(
            mr_event(&to_body(&v)).unwrap().updated_at,
            Some(1_471_010_059)
        );
        v["object_attributes"]["updated_at"] = "2016-08-12T13:54:19Z".into();
        assert_eq!(
            mr_event(&to_body(&v)).unwrap().updated_at,
            Some(1_471_010_059)
        );
        v["object_attributes"]["updated_at"] = "2016-08-12 15:54:19 +0200".into();
        assert_eq!(
            mr_event(&to_body(&v)).unwrap().updated_at,
            Some(1_471_010_059)
        );
        v["object_attributes"]["updated_at"] = "last tuesday".into();
        assert_eq!(mr_event(&to_body(&v)).unwrap().updated_at, None);
        v["object_attributes"]["updated_at"] = 5.into();
        assert_eq!(mr_event(&to_body(&v)).unwrap().updated_at, None);
        v["object_attributes"]
            .as_object_mut()
            .unwrap()
            .remove("updated_at");
        assert_eq!(mr_event(&to_body(&v)).unwrap().updated_at, None);
    }

    #[test]
    fn merge_request_field_errors_name_the_field() {
        let mut v = fixture_value("gitlab/merge_request.open.json");
        v["object_attributes"]["last_commit"]["id"] = "main".into();
        let err = mr_event(&to_body(&v)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "payload field `object_attributes.last_commit.id`: not a commit id (40 or 64 hex digits)"
        );

        let mut v = fixture_value("gitlab/merge_request.open.json");
        v["object_attributes"]["source_branch"] = "".into();
        let err = mr_event(&to_body(&v)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "payload field `object_attributes.source_branch`: empty"
        );

        let mut v = fixture_value("gitlab/merge_request.open.json");
        v["object_attributes"]
            .as_object_mut()
            .unwrap()
            .remove("iid");
        let err = mr_event(&to_body(&v)).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("`object_attributes`"), "{text}");
        assert!(text.contains("missing field `iid`"), "{text}");
    }
}
