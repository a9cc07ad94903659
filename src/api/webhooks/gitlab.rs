//! GitLab deliveries.
//!
//! - Secret: `X-Gitlab-Token` carries the hook's secret token verbatim (GitLab signs
//!   nothing). Both sides are hashed with SHA-256 and the digests compared in constant time,
//!   so neither the secret's bytes nor its length show in the timing.
//! - Event: `X-Gitlab-Event`: `Push Hook` for branches (also creation and deletion), `Tag Push
//!   Hook` for tags. GitLab's "Test" button sends one of these with sample data, so a test
//!   push to the app's branch deploys like a real one.
//! - Delivery: `Idempotency-Key` when present (GitLab 17.4+: unique per delivery and stable
//!   across its retries, the key GitLab documents for deduplication), else
//!   `X-Gitlab-Event-UUID` (14.8+: per event). Deliveries are deduplicated per app, so hooks of
//!   one event for two apps do not collide.

use axum::http::HeaderMap;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{Event, WebhookError};

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
        other => super::check_json(body).map(|()| Event::Other(other.to_owned())),
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
}
