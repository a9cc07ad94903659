//! The API's one door into the deployment engine: [`Deployer::enqueue`].
//!
//! The API verifies and decides; the engine deploys. Handlers (webhooks today, `POST
//! /api/apps/{app}/deployments` later) hand a [`DeployRequest`] to whatever implements
//! [`Deployer`] in `AppState::deployer`. Until the engine is wired in, that is [`NotWired`],
//! which refuses every request with [`DeployError::NotImplemented`] (HTTP 501) rather than
//! pretending a deployment was queued.

use futures_util::future::BoxFuture;

/// What started a deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trigger {
    /// A verified webhook delivery.
    Webhook {
        /// `github`, `gitlab` or `gitea`.
        provider: &'static str,
        delivery_id: String,
    },
    /// An API call.
    Api,
}

impl Trigger {
    /// The value for `deployments.trigger`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Trigger::Webhook { .. } => "webhook",
            Trigger::Api => "api",
        }
    }
}

/// A request to deploy an app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeployRequest {
    pub app_id: i64,
    pub app: String,
    /// The branch (or other ref) to deploy; `None`: the app's branch.
    pub git_ref: Option<String>,
    /// The exact commit to deploy (a webhook's pushed commit); `None`: the ref's head.
    pub commit_sha: Option<String>,
    pub trigger: Trigger,
}

/// The deployment a request became.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Queued {
    /// `deployments.id`.
    pub deployment_id: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    /// The engine is not part of this build yet: HTTP 501.
    #[error("the deployment engine is not wired into this build yet; nothing was queued")]
    NotImplemented,
    /// The app cannot be deployed now (stopped, an image app asked for a commit, ...): 409.
    #[error("{0}")]
    Refused(String),
    /// The engine is shutting down or otherwise unavailable: 503.
    #[error("the deployment engine is unavailable: {0}")]
    Unavailable(String),
}

/// Queues deployments. The engine implements it; the API only calls it.
pub trait Deployer: Send + Sync + 'static {
    /// Records a `queued` deployment and hands it to the engine; returns once it is recorded.
    fn enqueue(&self, request: DeployRequest) -> BoxFuture<'_, Result<Queued, DeployError>>;
}

/// The [`Deployer`] of a build without the engine: refuses everything, says so.
#[derive(Debug, Default, Clone, Copy)]
pub struct NotWired;

impl Deployer for NotWired {
    fn enqueue(&self, request: DeployRequest) -> BoxFuture<'_, Result<Queued, DeployError>> {
        tracing::warn!(app = %request.app, trigger = request.trigger.as_str(), "deployment requested, but the engine is not wired in");
        Box::pin(async { Err(DeployError::NotImplemented) })
    }
}

impl From<DeployError> for super::error::ApiError {
    fn from(e: DeployError) -> Self {
        use axum::http::StatusCode;
        match e {
            DeployError::NotImplemented => super::error::ApiError::not_implemented(e.to_string()),
            DeployError::Refused(_) => super::error::ApiError::conflict(e.to_string()),
            DeployError::Unavailable(_) => super::error::ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                e.to_string(),
            ),
        }
    }
}
