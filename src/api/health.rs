//! `GET /api/health`: unauthenticated liveness for people, load balancers and tests.

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;

use crate::AppState;

pub fn routes() -> Router<AppState> {
    Router::new().route("/api/health", get(health))
}

#[derive(Serialize)]
struct Health {
    status: &'static str,
    version: &'static str,
    uptime_s: u64,
    db: String,
    /// The container engine (name, version, rootless) or what was tried.
    runtime: crate::runtime::RuntimeStatus,
}

async fn health(State(state): State<AppState>) -> (StatusCode, Json<Health>) {
    let db = match tokio::time::timeout(Duration::from_secs(2), state.db.ping()).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("no answer within 2s".to_owned()),
    };
    let (status, code, db) = match db {
        Ok(()) => ("ok", StatusCode::OK, "ok".to_owned()),
        Err(e) => (
            "degraded",
            StatusCode::SERVICE_UNAVAILABLE,
            format!("error: {e}"),
        ),
    };
    let body = Health {
        status,
        version: crate::VERSION,
        uptime_s: state.started.elapsed().as_secs(),
        db,
        runtime: state.runtime.status.clone(),
    };
    (code, Json(body))
}
