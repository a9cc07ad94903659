//! `GET /metrics`: the Prometheus text, behind the same token as the API (Prometheus sends it
//! with its `authorization` setting; see the README for the scrape configuration).

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;

use crate::AppState;

/// Rivetr's metrics in the Prometheus text format 0.0.4.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "meta",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Proxy, deployment, certificate and process metrics", content_type = "text/plain", body = String),
        (status = 401, description = "No token, or a wrong one", body = super::error::ErrorBody),
    )
)]
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let text = state.metrics.render(&state).await;
    ([(CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], text)
}
