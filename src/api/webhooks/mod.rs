//! Forge webhooks: `POST /webhooks/{github,gitlab,gitea}/{app}`.
//!
//! Each provider module knows its forge's headers and payloads and nothing else: it verifies
//! the signature in constant time, names the delivery, and reads the event into one
//! [`Event`]. [`decide`] turns an event into what Rivetr does about it, and [`handler`] is the
//! HTTP side: it finds the app and its encrypted secret, limits failures, deduplicates
//! deliveries and hands a deployable push to the engine through
//! [`crate::engine::Deployer`]. [`secret`] makes and rotates an app's webhook secret.
//!
//! Nothing here logs a secret or a signature.

pub mod gitea;
pub mod github;
pub mod gitlab;
pub mod handler;
pub mod secret;

use std::borrow::Cow;

use axum::http::HeaderMap;
use axum::http::header::CONTENT_TYPE;
use hmac::{Hmac, KeyInit, Mac};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use sha2::Sha256;

/// The largest webhook body accepted; GitHub caps its payloads at 25 MB, but a push worth
/// deploying is far below this, and anything larger is refused (413) before it is hashed.
pub const BODY_LIMIT: usize = 5 * 1024 * 1024;

/// A forge Rivetr takes webhooks from. Forgejo and Gogs count as Gitea: they send the same
/// payloads and headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Provider {
    GitHub,
    GitLab,
    Gitea,
}

impl Provider {
    pub const ALL: [Provider; 3] = [Provider::GitHub, Provider::GitLab, Provider::Gitea];

    /// The name in the URL and in `webhook_deliveries.provider`.
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::GitHub => "github",
            Provider::GitLab => "gitlab",
            Provider::Gitea => "gitea",
        }
    }

    pub fn from_path(segment: &str) -> Option<Provider> {
        Provider::ALL.into_iter().find(|p| p.as_str() == segment)
    }

    /// Checks the delivery's signature or token against the app's webhook secret.
    pub fn verify(
        self,
        headers: &HeaderMap,
        body: &[u8],
        secret: &[u8],
    ) -> Result<(), WebhookError> {
        match self {
            Provider::GitHub => github::verify(headers, body, secret),
            Provider::GitLab => gitlab::verify(headers, secret),
            Provider::Gitea => gitea::verify(headers, body, secret),
        }
    }

    /// The delivery's id, the same when the forge sends it again.
    pub fn delivery_id(self, headers: &HeaderMap) -> Result<String, WebhookError> {
        match self {
            Provider::GitHub => github::delivery_id(headers),
            Provider::GitLab => gitlab::delivery_id(headers),
            Provider::Gitea => gitea::delivery_id(headers),
        }
    }

    /// The event, read from the headers and the (verified) body.
    pub fn event(self, headers: &HeaderMap, body: &[u8]) -> Result<Event, WebhookError> {
        match self {
            Provider::GitHub => github::event(headers, body),
            Provider::GitLab => gitlab::event(headers, body),
            Provider::Gitea => gitea::event(headers, body),
        }
    }
}

/// What a delivery says happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A forge checking the hook works (GitHub's `ping`).
    Ping,
    Push(Push),
    /// Something happened to a pull (merge) request.
    PullRequest(PullRequest),
    /// Any other event, by the forge's name for it.
    Other(String),
}

pub use crate::previews::{PrAction, PullRequest};

/// A push of one ref.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Push {
    /// The full ref, `refs/heads/main`.
    pub git_ref: String,
    /// The branch, when the ref is `refs/heads/<branch>`.
    pub branch: Option<String>,
    /// The tag, when the ref is `refs/tags/<tag>`.
    pub tag: Option<String>,
    /// The commit the ref points to after the push (all zeros when deleted).
    pub commit_sha: String,
    /// The push deleted the ref.
    pub deleted: bool,
}

impl Push {
    /// Builds a push from a payload's `ref` and `after`; `deleted` when the forge says so or
    /// `after` is all zeros (GitLab and Gitea have no flag).
    fn new(git_ref: String, after: String, deleted_flag: bool) -> Result<Push, WebhookError> {
        if !is_commit_id(&after) {
            return Err(WebhookError::Field {
                field: "after".to_owned(),
                message: "not a commit id (40 or 64 hex digits)".to_owned(),
            });
        }
        if git_ref.is_empty() {
            return Err(WebhookError::Field {
                field: "ref".to_owned(),
                message: "empty".to_owned(),
            });
        }
        let deleted = deleted_flag || after.bytes().all(|b| b == b'0');
        Ok(Push {
            branch: git_ref.strip_prefix("refs/heads/").map(str::to_owned),
            tag: git_ref.strip_prefix("refs/tags/").map(str::to_owned),
            commit_sha: after.to_ascii_lowercase(),
            git_ref,
            deleted,
        })
    }
}

/// SHA-1 (40) or SHA-256 (64) object names.
fn is_commit_id(s: &str) -> bool {
    (s.len() == 40 || s.len() == 64) && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// What Rivetr does about an event, for an app that deploys `app_branch`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Answer 200: the forge is checking the hook.
    Pong,
    /// Answer 202 with the reason; nothing is queued.
    Ignore(String),
    /// Queue a deployment of exactly this commit.
    Deploy { branch: String, commit_sha: String },
    /// A pull request changed: its preview follows (see [`crate::previews`]).
    Preview(PullRequest),
}

pub fn decide(event: &Event, app_branch: &str) -> Decision {
    let push = match event {
        Event::Ping => return Decision::Pong,
        Event::Other(name) => {
            return Decision::Ignore(format!(
                "`{name}` events do not deploy; only pushes and pull requests do"
            ));
        }
        Event::PullRequest(pr) => return Decision::Preview(pr.clone()),
        Event::Push(push) => push,
    };
    if let Some(tag) = &push.tag {
        return Decision::Ignore(format!("push to tag `{tag}`; only branch pushes deploy"));
    }
    let Some(branch) = &push.branch else {
        return Decision::Ignore(format!("`{}` is not a branch", push.git_ref));
    };
    if push.deleted {
        return Decision::Ignore(format!("branch `{branch}` was deleted"));
    }
    if branch != app_branch {
        return Decision::Ignore(format!(
            "push to branch `{branch}`; this app deploys `{app_branch}`"
        ));
    }
    Decision::Deploy {
        branch: branch.clone(),
        commit_sha: push.commit_sha.clone(),
    }
}

/// Why a delivery was refused. Messages name the header or field, never a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    #[error("missing {0} header: set a secret on the webhook, the one Rivetr gave for this app")]
    MissingSignature(&'static str),
    #[error("{header} is malformed: {why}")]
    MalformedSignature {
        header: &'static str,
        why: &'static str,
    },
    #[error("{0} does not match: the webhook's secret is not this app's, or the body was altered")]
    SignatureMismatch(&'static str),
    #[error("missing {0} header")]
    MissingHeader(&'static str),
    #[error("{header} header: {why}")]
    BadHeader {
        header: &'static str,
        why: &'static str,
    },
    #[error("malformed JSON in the body: {0}")]
    MalformedJson(String),
    #[error("payload field `{field}`: {message}")]
    Field { field: String, message: String },
    #[error("payload: {0}")]
    Payload(String),
    #[error("form-encoded body: {0}")]
    Form(&'static str),
}

impl WebhookError {
    /// A failed authentication (401), as opposed to a malformed request (400).
    pub fn is_auth_failure(&self) -> bool {
        matches!(
            self,
            WebhookError::MissingSignature(_)
                | WebhookError::MalformedSignature { .. }
                | WebhookError::SignatureMismatch(_)
        )
    }
}

/// A header as text. `Ok(None)` when absent; an error when present but not text.
fn header<'h>(headers: &'h HeaderMap, name: &'static str) -> Result<Option<&'h str>, WebhookError> {
    match headers.get(name) {
        None => Ok(None),
        Some(v) => v
            .to_str()
            .map(|s| Some(s.trim()))
            .map_err(|_| WebhookError::BadHeader {
                header: name,
                why: "not ASCII text",
            }),
    }
}

/// The first of `names` that is present, with the name it was found under.
fn first_header<'h>(
    headers: &'h HeaderMap,
    names: &[&'static str],
) -> Result<Option<(&'static str, &'h str)>, WebhookError> {
    for &name in names {
        if let Some(v) = header(headers, name)? {
            return Ok(Some((name, v)));
        }
    }
    Ok(None)
}

/// A delivery id from the first of `names` present: printable ASCII, at most 200 characters.
fn delivery_from(headers: &HeaderMap, names: &[&'static str]) -> Result<String, WebhookError> {
    let (name, value) =
        first_header(headers, names)?.ok_or(WebhookError::MissingHeader(names[0]))?;
    if value.is_empty() || value.len() > 200 || !value.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(WebhookError::BadHeader {
            header: name,
            why: "must be 1 to 200 printable characters",
        });
    }
    Ok(value.to_owned())
}

/// Checks a hex HMAC-SHA256 of `body` in constant time (`verify_slice` compares every byte).
fn verify_hmac_sha256_hex(
    header_name: &'static str,
    hex_signature: &str,
    body: &[u8],
    secret: &[u8],
) -> Result<(), WebhookError> {
    let mut expected = [0u8; 32];
    hex::decode_to_slice(hex_signature, &mut expected).map_err(|_| {
        WebhookError::MalformedSignature {
            header: header_name,
            why: "expected 64 hex digits",
        }
    })?;
    let mut mac =
        <Hmac<Sha256> as KeyInit>::new_from_slice(secret).expect("HMAC takes a key of any length");
    mac.update(body);
    mac.verify_slice(&expected)
        .map_err(|_| WebhookError::SignatureMismatch(header_name))
}

/// The JSON of a delivery: the body itself, or its `payload` field when the forge sends
/// `application/x-www-form-urlencoded` (a setting on GitHub and Gitea hooks).
fn json_payload<'b>(headers: &HeaderMap, body: &'b [u8]) -> Result<Cow<'b, [u8]>, WebhookError> {
    let form = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| {
            ct.split(';').next().is_some_and(|m| {
                m.trim()
                    .eq_ignore_ascii_case("application/x-www-form-urlencoded")
            })
        });
    if !form {
        return Ok(Cow::Borrowed(body));
    }
    form_urlencoded::parse(body)
        .find(|(k, _)| k == "payload")
        .map(|(_, v)| Cow::Owned(v.into_owned().into_bytes()))
        .ok_or(WebhookError::Form("no `payload` field"))
}

/// Parses a payload, naming the field that is missing or of the wrong type.
fn parse_payload<T: DeserializeOwned>(json: &[u8]) -> Result<T, WebhookError> {
    let mut de = serde_json::Deserializer::from_slice(json);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            return WebhookError::MalformedJson(inner.to_string());
        }
        let text = inner.to_string();
        let text = text
            .rfind(" at line ")
            .map_or(text.as_str(), |i| &text[..i])
            .to_owned();
        if path == "." {
            // serde names a missing field in the message, at its parent's path.
            WebhookError::Payload(text)
        } else {
            WebhookError::Field {
                field: path,
                message: text,
            }
        }
    })?;
    de.end()
        .map_err(|e| WebhookError::MalformedJson(e.to_string()))?;
    Ok(value)
}

/// Checks that a body is JSON at all, for events whose content Rivetr does not read.
fn check_json(json: &[u8]) -> Result<(), WebhookError> {
    parse_payload::<serde::de::IgnoredAny>(json).map(|_| ())
}

/// The fields of a push that every forge sends alike.
#[derive(Debug, Deserialize)]
struct PushPayload {
    #[serde(rename = "ref")]
    git_ref: String,
    after: String,
    /// GitHub only; the others mark a deletion with an all-zero `after`.
    #[serde(default)]
    deleted: bool,
}

fn parse_push(json: &[u8]) -> Result<Push, WebhookError> {
    let p: PushPayload = parse_payload(json)?;
    Push::new(p.git_ref, p.after, p.deleted)
}

/// A pull request event as GitHub sends it. Gitea, Forgejo and Gogs send the same shape
/// (their `PullRequestPayload` copies GitHub's), so both modules read it here and differ only
/// in what their `action` strings mean.
#[derive(Debug, Deserialize)]
struct GitHubStylePr {
    action: String,
    number: u64,
    pull_request: GitHubStylePrBody,
}

#[derive(Debug, Deserialize)]
struct GitHubStylePrBody {
    head: GitHubStyleHead,
    base: GitHubStyleBase,
    /// Absent from older GitHub Enterprise and Gitea payloads: not a draft.
    #[serde(default)]
    draft: Option<bool>,
    #[serde(default, deserialize_with = "lenient_timestamp")]
    updated_at: Option<i64>,
}

#[derive(Debug, Deserialize)]
struct GitHubStyleHead {
    #[serde(rename = "ref")]
    git_ref: String,
    sha: String,
    /// `null` when the fork the PR came from has been deleted.
    #[serde(default)]
    repo: Option<GitHubStyleRepo>,
}

#[derive(Debug, Deserialize)]
struct GitHubStyleBase {
    #[serde(default)]
    repo: Option<GitHubStyleRepo>,
}

#[derive(Debug, Deserialize)]
struct GitHubStyleRepo {
    full_name: String,
}

impl GitHubStylePr {
    /// The event, with `action` already read by the forge's own rules.
    fn into_pull_request(self, action: PrAction) -> Result<PullRequest, WebhookError> {
        let pr = self.pull_request;
        let head_repo = pr.head.repo.map(|r| r.full_name);
        let base_repo = pr.base.repo.map(|r| r.full_name);
        // Only a head known to live in the base repository is not a fork: a deleted fork
        // (`head.repo: null`) is still someone else's code.
        let from_fork = match (&head_repo, &base_repo) {
            (Some(head), Some(base)) => !head.eq_ignore_ascii_case(base),
            _ => true,
        };
        check_pull_request(
            PullRequest {
                number: self.number,
                action,
                action_name: self.action,
                head_ref: pr.head.git_ref,
                head_sha: pr.head.sha,
                head_repo,
                base_repo,
                from_fork,
                draft: pr.draft.unwrap_or(false),
                updated_at: pr.updated_at,
            },
            "pull_request.head.sha",
            "pull_request.head.ref",
        )
    }
}

/// Checks a pull request's head as [`Push::new`] checks a push, naming the payload's field
/// for it, and lower-cases the commit so that previews compare commits as text.
fn check_pull_request(
    mut pr: PullRequest,
    sha_field: &str,
    ref_field: &str,
) -> Result<PullRequest, WebhookError> {
    if !is_commit_id(&pr.head_sha) {
        return Err(WebhookError::Field {
            field: sha_field.to_owned(),
            message: "not a commit id (40 or 64 hex digits)".to_owned(),
        });
    }
    if pr.head_ref.is_empty() {
        return Err(WebhookError::Field {
            field: ref_field.to_owned(),
            message: "empty".to_owned(),
        });
    }
    pr.head_sha.make_ascii_lowercase();
    Ok(pr)
}

/// Reads a payload's time as seconds since the epoch. The time only orders deliveries, so a
/// missing, `null`, non-text or unreadable value is `None` rather than a refused delivery.
fn lenient_timestamp<'de, D: serde::Deserializer<'de>>(de: D) -> Result<Option<i64>, D::Error> {
    let value = Option::<serde_json::Value>::deserialize(de)?;
    Ok(value
        .as_ref()
        .and_then(serde_json::Value::as_str)
        .and_then(parse_timestamp))
}

/// RFC 3339 (GitHub, Gitea, newer GitLab), or GitLab's `2016-08-12 13:54:19 UTC` and its
/// `2016-08-12 13:54:19 +0200` variant.
fn parse_timestamp(text: &str) -> Option<i64> {
    let text = text.trim();
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(text) {
        return Some(t.timestamp());
    }
    if let Some(naive) = text.strip_suffix(" UTC") {
        return chrono::NaiveDateTime::parse_from_str(naive, "%Y-%m-%d %H:%M:%S")
            .ok()
            .map(|t| t.and_utc().timestamp());
    }
    chrono::DateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S %z")
        .ok()
        .map(|t| t.timestamp())
}

#[cfg(test)]
pub(crate) mod fixtures {
    //! The real payloads in tests/fixtures/webhooks (see SOURCES.md there).
    pub fn read(path: &str) -> Vec<u8> {
        let full = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/webhooks/");
        std::fs::read(format!("{full}{path}")).unwrap()
    }

    pub fn sign(secret: &[u8], body: &[u8]) -> String {
        use hmac::{Hmac, KeyInit, Mac};
        let mut mac = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(secret).unwrap();
        mac.update(body);
        hex::encode(mac.finalize().into_bytes())
    }

    pub fn headers(pairs: &[(&'static str, &str)]) -> axum::http::HeaderMap {
        let mut h = axum::http::HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, v.parse().unwrap());
        }
        h
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn push(git_ref: &str, after: &str, deleted: bool) -> Event {
        Event::Push(Push::new(git_ref.to_owned(), after.to_owned(), deleted).unwrap())
    }

    const SHA: &str = "fd489864e7642b48eaad6e3f155c10e46810ec72";
    const ZEROS: &str = "0000000000000000000000000000000000000000";

    #[test]
    fn push_to_the_app_branch_deploys_that_commit() {
        assert_eq!(
            decide(&push("refs/heads/main", SHA, false), "main"),
            Decision::Deploy {
                branch: "main".to_owned(),
                commit_sha: SHA.to_owned()
            }
        );
    }

    #[test]
    fn everything_else_is_ignored_with_a_reason() {
        let reason = |e: Event| match decide(&e, "main") {
            Decision::Ignore(r) => r,
            other => panic!("{other:?}"),
        };
        assert!(reason(push("refs/heads/dev", SHA, false)).contains("`dev`"));
        assert!(reason(push("refs/tags/v1", SHA, false)).contains("tag `v1`"));
        assert!(reason(push("refs/heads/main", ZEROS, false)).contains("deleted"));
        assert!(reason(push("refs/heads/main", SHA, true)).contains("deleted"));
        assert!(reason(push("refs/pull/1/head", SHA, false)).contains("not a branch"));
        assert!(reason(Event::Other("issues".into())).contains("`issues`"));
        assert_eq!(decide(&Event::Ping, "main"), Decision::Pong);
    }

    #[test]
    fn push_fields_are_checked() {
        let err = Push::new("refs/heads/main".into(), "xyz".into(), false).unwrap_err();
        assert_eq!(
            err.to_string(),
            "payload field `after`: not a commit id (40 or 64 hex digits)"
        );
        let sha256 = "a".repeat(64);
        assert!(Push::new("refs/heads/main".into(), sha256, false).is_ok());
        let upper = SHA.to_ascii_uppercase();
        let p = Push::new("refs/heads/main".into(), upper, false).unwrap();
        assert_eq!(p.commit_sha, SHA);
    }

    #[test]
    fn payload_errors_name_the_field() {
        let err = parse_push(br#"{"ref": "refs/heads/main"}"#).unwrap_err();
        assert!(err.to_string().contains("missing field `after`"), "{err}");
        let err = parse_push(br#"{"ref": 5, "after": "x"}"#).unwrap_err();
        assert!(err.to_string().contains("`ref`"), "{err}");
        let err = parse_push(br#"{"ref": "#).unwrap_err();
        assert!(matches!(err, WebhookError::MalformedJson(_)), "{err}");
        assert!(check_json(b"not json").is_err());
        assert!(check_json(b"{}").is_ok());
    }

    #[test]
    fn form_bodies_carry_the_json_in_payload() {
        let h = fixtures::headers(&[("content-type", "application/x-www-form-urlencoded")]);
        let body = b"payload=%7B%22a%22%3A1%7D&x=y";
        assert_eq!(&*json_payload(&h, body).unwrap(), br#"{"a":1}"#);
        let err = json_payload(&h, b"other=1").unwrap_err();
        assert_eq!(err.to_string(), "form-encoded body: no `payload` field");
        let json = fixtures::headers(&[("content-type", "application/json")]);
        assert_eq!(&*json_payload(&json, b"{}").unwrap(), b"{}");
    }

    #[test]
    fn providers_by_path() {
        for p in Provider::ALL {
            assert_eq!(Provider::from_path(p.as_str()), Some(p));
        }
        assert_eq!(Provider::from_path("bitbucket"), None);
    }
}
