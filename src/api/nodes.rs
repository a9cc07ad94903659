//! `/api/nodes`: the nodes of the swarm Rivetr deploys to (`[runtime] engine = "swarm"`), with
//! the tasks of this installation's apps on each; draining a node (its tasks move to the
//! others) and making it active again.
//!
//! This module only shows what the engine answers ([`crate::engine::Engine::nodes`],
//! [`crate::engine::Engine::set_node_availability`]); it never talks to the swarm itself. Without a swarm every route
//! answers 409 saying so; an unknown node is 404.

use axum::Json as JsonResponse;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;

use super::apps::engine_error;
use super::error::{ApiError, ErrorBody};
use super::extract::Path;
use crate::AppState;
use crate::engine::NodeTasks;
use crate::runtime::{Availability, NodeView};

/// `GET /api/nodes` answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct NodeList {
    pub nodes: Vec<NodeTasks>,
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
    Ok(JsonResponse(NodeList { nodes }))
}

async fn set_availability(
    state: &AppState,
    node: &str,
    availability: Availability,
) -> Result<JsonResponse<NodeView>, ApiError> {
    let view = state
        .engine
        .set_node_availability(node, availability)
        .await
        .map_err(engine_error)?;
    Ok(JsonResponse(view))
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
        (status = 200, description = "The node as it is now", body = NodeView),
        (status = 404, description = "No such node", body = ErrorBody),
        (status = 409, description = "Rivetr is not running on a swarm", body = ErrorBody),
        (status = 502, description = "The swarm's manager failed the request", body = ErrorBody),
        (status = 503, description = "No container engine", body = ErrorBody),
    )
)]
pub async fn drain_node(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<JsonResponse<NodeView>, ApiError> {
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
        (status = 200, description = "The node as it is now", body = NodeView),
        (status = 404, description = "No such node", body = ErrorBody),
        (status = 409, description = "Rivetr is not running on a swarm", body = ErrorBody),
        (status = 502, description = "The swarm's manager failed the request", body = ErrorBody),
        (status = 503, description = "No container engine", body = ErrorBody),
    )
)]
pub async fn activate_node(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<JsonResponse<NodeView>, ApiError> {
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
