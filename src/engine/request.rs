//! The one door into the deployment engine: [`Deployer::enqueue`].
//!
//! The API verifies and decides; the engine deploys. Both the webhook handlers and `POST
//! /api/apps/{app}/deployments` hand a [`DeployRequest`] to whatever implements [`Deployer`]
//! (`AppState::deployer`: the [`Engine`](super::Engine)), so a deployment is recorded and
//! queued the same way whoever asked for it. The trait lives here, below the API, so the API
//! depends on the engine and never the other way round.

use futures_util::future::BoxFuture;

use super::EngineError;
use crate::db::deployments::Deployment;

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
    /// The app's id as the caller found it: if the name now belongs to another app (deleted
    /// and created again meanwhile), the request is refused rather than deploying that one.
    pub app_id: i64,
    pub app: String,
    /// The branch (or other ref) to deploy; `None`: the app's branch.
    pub git_ref: Option<String>,
    /// The exact commit to deploy (a webhook's pushed commit); `None`: the ref's head.
    pub commit_sha: Option<String>,
    pub trigger: Trigger,
}

/// Queues deployments. The engine implements it; the API only calls it.
pub trait Deployer: Send + Sync + 'static {
    /// Records a `queued` deployment and hands it to the engine; returns it once recorded.
    fn enqueue(&self, request: DeployRequest) -> BoxFuture<'_, Result<Deployment, EngineError>>;
}
