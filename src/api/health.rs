//! `GET /api/health`: unauthenticated liveness for people, load balancers and tests.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;

use crate::AppState;

#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct Health {
    status: &'static str,
    version: &'static str,
    uptime_s: u64,
    db: String,
    /// The container engine (name, version, rootless) or what was tried.
    #[schema(value_type = Object)]
    runtime: crate::runtime::RuntimeStatus,
    /// `ok`, or which managed databases' latest backup failed (their backup list says why).
    backups: String,
    /// `ok`, or how many notifications were given up in the last day.
    notifications: String,
    /// `ok`, or why the engine cannot report containers' CPU and memory (the per-app stats
    /// and their metrics are absent then).
    container_stats: String,
}

/// Liveness: the version, the uptime and whether the database answers.
#[utoipa::path(
    get,
    path = "/api/health",
    tag = "meta",
    responses(
        (status = 200, description = "Serving", body = Health),
        (status = 503, description = "The database does not answer", body = Health),
    )
)]
pub(super) async fn health(State(state): State<AppState>) -> (StatusCode, Json<Health>) {
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
    let backups = match state.backups.failing().await {
        Ok(failing) if failing.is_empty() => "ok".to_owned(),
        Ok(failing) => {
            let names: Vec<&str> = failing.iter().map(|(name, _)| name.as_str()).collect();
            format!(
                "the latest backup failed for {}; GET /api/databases/{{db}}/backups says why",
                names.join(", ")
            )
        }
        Err(e) => format!("unknown: {e}"),
    };
    let notifications = match state
        .db
        .call(|c| crate::db::notifications::failed_recently(c))
        .await
    {
        Ok(0) => "ok".to_owned(),
        Ok(n) => format!(
            "{n} notifications were not delivered in the last day; GET \
             /api/notifications/deliveries?status=failed says why"
        ),
        Err(e) => format!("unknown: {e}"),
    };
    let container_stats = match state.runtime.load().runtime.clone() {
        Some(rt) => rt
            .stats_unavailable()
            .await
            .unwrap_or_else(|| "ok".to_owned()),
        None => "no container engine".to_owned(),
    };
    let body = Health {
        status,
        version: crate::VERSION,
        uptime_s: state.started.elapsed().as_secs(),
        db,
        runtime: state.runtime.load().status.clone(),
        backups,
        notifications,
        container_stats,
    };
    (code, Json(body))
}
