//! `GET /api/system`: what the dashboard's System page shows: the version, the uptime, the
//! container engine found (or what was tried), the database, and the proxy's counters per
//! domain. The counters are read from the proxy's shards at request time; nothing is stored.

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;

use super::error::{ApiError, ErrorBody};
use crate::AppState;

#[derive(Debug, Serialize, ToSchema)]
pub struct SystemView {
    pub version: &'static str,
    pub uptime_s: u64,
    /// The container engine (name, version, rootless) or every place tried and why it failed.
    #[schema(value_type = Object)]
    pub runtime: crate::runtime::RuntimeStatus,
    pub database: DatabaseView,
    /// Counters of the proxy since start, one entry per domain routed.
    pub proxy: Vec<RouteCounters>,
    /// True when this binary has the dashboard built in.
    pub dashboard: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DatabaseView {
    /// `ok`, or the error.
    pub status: String,
    /// The schema version (`PRAGMA user_version`).
    pub schema_version: i64,
    /// The database file's size (pages in use times page size).
    pub size_bytes: i64,
    pub apps: i64,
    pub deployments: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RouteCounters {
    pub host: String,
    pub requests: u64,
    pub responses_5xx: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
}

/// Version, uptime, container engine, database and proxy counters.
#[utoipa::path(
    get,
    path = "/api/system",
    tag = "meta",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The system's state", body = SystemView),
        (status = 401, description = "No valid token or session", body = ErrorBody),
    )
)]
pub async fn system(State(state): State<AppState>) -> Result<Json<SystemView>, ApiError> {
    let database = state
        .db
        .call(|c| {
            let one = |sql: &str| c.query_row(sql, [], |r| r.get::<_, i64>(0));
            Ok(DatabaseView {
                status: "ok".to_owned(),
                schema_version: one("PRAGMA user_version")?,
                size_bytes: one("PRAGMA page_count")? * one("PRAGMA page_size")?,
                apps: one("SELECT COUNT(*) FROM apps")?,
                deployments: one("SELECT COUNT(*) FROM deployments")?,
            })
        })
        .await
        .map_err(ApiError::internal)?;
    let proxy = state
        .engine
        .route_metrics()
        .into_iter()
        .map(|(host, m)| RouteCounters {
            host,
            requests: m.requests,
            responses_5xx: m.responses_5xx,
            bytes_in: m.bytes_in,
            bytes_out: m.bytes_out,
        })
        .collect();
    Ok(Json(SystemView {
        version: crate::VERSION,
        uptime_s: state.started.elapsed().as_secs(),
        runtime: state.runtime.load().status.clone(),
        database,
        proxy,
        dashboard: crate::ui::built_in(),
    }))
}
