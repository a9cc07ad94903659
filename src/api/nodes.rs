//! `/api/nodes`: the nodes of the swarm Rivetr deploys to (`[runtime] engine = "swarm"`), with
//! the tasks of this installation's apps on each; draining a node (its tasks move to the
//! others) and making it active again.
//!
//! This module only shows what the engine answers ([`crate::engine::Engine::nodes`],
//! [`crate::engine::Engine::set_node_availability`]) in the API's own types, so the OpenAPI
//! document describes it; it never talks to the swarm itself. Without a swarm every route
//! answers 409 saying so; an unknown node is 404.

use std::collections::BTreeMap;

use axum::Json as JsonResponse;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;

use super::apps::engine_error;
use super::error::{ApiError, ErrorBody};
use super::extract::Path;
use crate::AppState;
use crate::engine::{NodeTask, NodeTasks};
use crate::runtime::{Availability, NodeView};

/// `GET /api/nodes` answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct NodeList {
    pub nodes: Vec<NodeWithTasks>,
}

/// One node of the swarm.
#[derive(Debug, Serialize, ToSchema)]
pub struct NodeInfo {
    /// The swarm's id of the node (`/api/nodes/{id}/...` also take its hostname).
    pub id: String,
    pub hostname: String,
    /// `manager` or `worker`.
    pub role: String,
    /// `ready`, `down`, `unknown` or `disconnected`.
    pub state: String,
    /// `active`, `pause` or `drain`.
    pub availability: String,
    /// The address the node's tasks are reached at.
    #[schema(value_type = Option<String>)]
    pub addr: Option<std::net::IpAddr>,
    /// The node's labels (what `node.labels.<name>` constraints and spread refer to).
    pub labels: BTreeMap<String, String>,
    pub engine_version: String,
    /// True for the managers' leader.
    pub leader: bool,
}

/// A node with the tasks of Rivetr's apps the swarm wants running there.
#[derive(Debug, Serialize, ToSchema)]
pub struct NodeWithTasks {
    #[serde(flatten)]
    pub node: NodeInfo,
    pub tasks: Vec<NodeTaskView>,
}

/// One task (a replica of an app's deployment) on a node.
#[derive(Debug, Serialize, ToSchema)]
pub struct NodeTaskView {
    pub app: String,
    pub deployment: i64,
    /// The swarm's id of the task.
    pub id: String,
    /// The task's state as the swarm reports it: `pending`, `preparing`, `starting`,
    /// `running`, `failed`, ...
    pub state: String,
    /// What the swarm wants it to be (`running`).
    pub desired_state: String,
    /// `address:port` where the proxy reaches it, once it runs.
    pub endpoint: Option<String>,
    /// Why it failed, when it did.
    pub error: Option<String>,
}

fn node_info(n: NodeView) -> NodeInfo {
    NodeInfo {
        id: n.id,
        hostname: n.hostname,
        role: n.role,
        state: n.state,
        availability: n.availability,
        addr: n.addr,
        labels: n.labels,
        engine_version: n.engine_version,
        leader: n.leader,
    }
}

fn task_view(t: NodeTask) -> NodeTaskView {
    NodeTaskView {
        app: t.app,
        deployment: t.deployment,
        id: t.id,
        state: t.state,
        desired_state: t.desired_state,
        endpoint: t.endpoint,
        error: t.error,
    }
}

fn with_tasks(n: NodeTasks) -> NodeWithTasks {
    NodeWithTasks {
        node: node_info(n.node),
        tasks: n.tasks.into_iter().map(task_view).collect(),
    }
}

/// Lists the swarm's nodes with the tasks of Rivetr's apps on each.
#[utoipa::path(
    get,
    path = "/api/nodes",
    tag = "nodes",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Every node, with its state, labels and tasks", body = NodeList),
        (status = 409, description = "Rivetr is not running on a swarm", body = ErrorBody),
        (status = 502, description = "The swarm's manager failed the request", body = ErrorBody),
        (status = 503, description = "No container engine", body = ErrorBody),
    )
)]
pub async fn list_nodes(State(state): State<AppState>) -> Result<JsonResponse<NodeList>, ApiError> {
    let nodes = state.engine.nodes().await.map_err(engine_error)?;
    Ok(JsonResponse(NodeList {
        nodes: nodes.into_iter().map(with_tasks).collect(),
    }))
}

async fn set_availability(
    state: &AppState,
    node: &str,
    availability: Availability,
) -> Result<JsonResponse<NodeInfo>, ApiError> {
    let view = state
        .engine
        .set_node_availability(node, availability)
        .await
        .map_err(engine_error)?;
    Ok(JsonResponse(node_info(view)))
}

/// Drains a node: the swarm moves its tasks to the other nodes and places none there until it
/// is active again. The routes follow the tasks, so requests keep being answered.
#[utoipa::path(
    post,
    path = "/api/nodes/{id}/drain",
    tag = "nodes",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The node's id or hostname")),
    responses(
        (status = 200, description = "The node as it is now", body = NodeInfo),
        (status = 404, description = "No such node", body = ErrorBody),
        (status = 409, description = "Rivetr is not running on a swarm", body = ErrorBody),
        (status = 502, description = "The swarm's manager failed the request", body = ErrorBody),
        (status = 503, description = "No container engine", body = ErrorBody),
    )
)]
pub async fn drain_node(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<JsonResponse<NodeInfo>, ApiError> {
    set_availability(&state, &id, Availability::Drain).await
}

/// Makes a drained node active: the swarm may place tasks there again (it does not move
/// running tasks back by itself; the next deployment spreads them).
#[utoipa::path(
    post,
    path = "/api/nodes/{id}/activate",
    tag = "nodes",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The node's id or hostname")),
    responses(
        (status = 200, description = "The node as it is now", body = NodeInfo),
        (status = 404, description = "No such node", body = ErrorBody),
        (status = 409, description = "Rivetr is not running on a swarm", body = ErrorBody),
        (status = 502, description = "The swarm's manager failed the request", body = ErrorBody),
        (status = 503, description = "No container engine", body = ErrorBody),
    )
)]
pub async fn activate_node(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<JsonResponse<NodeInfo>, ApiError> {
    set_availability(&state, &id, Availability::Active).await
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use tower::ServiceExt;

    use crate::api::test_support::TestApi;

    #[tokio::test]
    async fn without_a_swarm_every_route_answers_409_saying_so() {
        let api = TestApi::new().await;
        for (method, path) in [
            ("GET", "/api/nodes"),
            ("POST", "/api/nodes/abc/drain"),
            ("POST", "/api/nodes/abc/activate"),
        ] {
            let res = api
                .router
                .clone()
                .oneshot(
                    Request::builder()
                        .method(method)
                        .uri(path)
                        .header("authorization", format!("Bearer {}", api.token))
                        .body(Body::empty())
                        .unwrap(),
                )
                .await
                .unwrap();
            assert_eq!(res.status(), StatusCode::CONFLICT, "{method} {path}");
            let body = axum::body::to_bytes(res.into_body(), 1 << 20)
                .await
                .unwrap();
            let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(body["error"]["code"], "conflict", "{body}");
            assert!(
                body["error"]["message"]
                    .as_str()
                    .unwrap()
                    .contains("not running on a swarm"),
                "{body}"
            );
        }
    }
}
