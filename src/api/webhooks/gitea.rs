//! Gitea deliveries, and Forgejo's and Gogs', which share the format.
//!
//! - Signature: `X-Gitea-Signature` (Forgejo also sends `X-Forgejo-Signature`, Gogs
//!   `X-Gogs-Signature`), lowercase hex HMAC-SHA256 of the raw body, no prefix. Gitea sends
//!   the header empty when the hook has no secret.
//! - Event: `X-Gitea-Event` (or `X-Forgejo-Event`, `X-Gogs-Event`): `push` for branches and
//!   tags. A deleted branch comes only as a `delete` event, which does not deploy. Gitea has no
//!   ping; its "Test delivery" sends a `push`.
//! - Delivery: `X-Gitea-Delivery` (or `X-Forgejo-Delivery`, `X-Gogs-Delivery`).
//! - Body: JSON, or form-encoded with the JSON in `payload`.

use axum::http::HeaderMap;

use super::{Event, WebhookError};

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
        other => super::check_json(&json).map(|()| Event::Other(other.to_owned())),
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
}
