//! `GET /api/apps/{app}/stats`: an app's figures as JSON for the dashboard and the CLI: its
//! running containers' CPU and memory (from the engine) and its traffic through the proxy
//! since Rivetr started (the counters `/metrics` shows).

use axum::Json as JsonResponse;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;

use super::apps::{engine_error, find_app};
use super::error::{ApiError, ErrorBody};
use super::extract::Path;
use crate::AppState;
use crate::engine::ContainerUse;
use crate::proxy::metrics::{BUCKETS, CLASSES, Detail, UPSTREAM_ERRORS};
use crate::proxy::routes::Owner;
use crate::runtime::ContainerStats;

#[derive(Debug, Serialize, ToSchema)]
pub struct AppStats {
    pub app: String,
    /// Its running containers; empty when none runs or the engine cannot say.
    pub containers: Vec<ContainerView>,
    /// Summed over the containers; absent when the engine cannot say.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_seconds: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_bytes: Option<u64>,
    /// Why the engine cannot report CPU and memory, when it cannot.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unavailable: Option<String>,
    pub proxy: ProxyView,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ContainerView {
    pub name: String,
    #[serde(flatten)]
    pub stats: ContainerStats,
}

/// The app's traffic since Rivetr started, over all its domains.
#[derive(Debug, Default, Serialize, ToSchema)]
pub struct ProxyView {
    pub requests: u64,
    /// Answers by status class: `1xx` ... `5xx`.
    pub by_class: std::collections::BTreeMap<String, u64>,
    /// Mean time to the app's response headers.
    pub mean_duration_seconds: Option<f64>,
    /// The bound (seconds) under which 95 % of the answers came, from the histogram's
    /// buckets; absent without answers, or when it is past the last bucket.
    pub p95_duration_seconds: Option<f64>,
    pub received_bytes: u64,
    pub sent_bytes: u64,
    /// `connect`, `timeout`, `reset`.
    pub upstream_errors: std::collections::BTreeMap<String, u64>,
}

fn proxy_view(d: &Detail) -> ProxyView {
    let answered: u64 = d.duration_buckets.iter().sum();
    let mut by_class = std::collections::BTreeMap::new();
    for (ci, class) in CLASSES.iter().enumerate() {
        by_class.insert(
            (*class).to_owned(),
            d.answered.iter().map(|row| row[ci]).sum(),
        );
    }
    let p95 = (answered > 0)
        .then(|| {
            let wanted = (answered as f64 * 0.95).ceil() as u64;
            let mut seen = 0;
            BUCKETS
                .iter()
                .zip(d.duration_buckets)
                .find_map(|(bound, n)| {
                    seen += n;
                    (seen >= wanted).then_some(*bound)
                })
        })
        .flatten();
    ProxyView {
        requests: d.totals.requests,
        by_class,
        mean_duration_seconds: (answered > 0).then(|| d.duration_sum / answered as f64),
        p95_duration_seconds: p95,
        received_bytes: d.totals.bytes_in,
        sent_bytes: d.totals.bytes_out,
        upstream_errors: UPSTREAM_ERRORS
            .iter()
            .enumerate()
            .map(|(k, kind)| ((*kind).to_owned(), d.upstream_errors[k]))
            .collect(),
    }
}

/// An app's CPU, memory and traffic.
#[utoipa::path(
    get,
    path = "/api/apps/{app}/stats",
    tag = "apps",
    security(("bearer" = [])),
    params(("app" = String, Path, description = "The app's name")),
    responses(
        (status = 200, description = "Its containers' use and its traffic", body = AppStats),
        (status = 404, description = "No such app", body = ErrorBody),
        (status = 503, description = "No container engine", body = ErrorBody),
    )
)]
pub async fn app_stats(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<JsonResponse<AppStats>, ApiError> {
    let app = find_app(&state, &name).await?;
    let mut detail = Detail::default();
    for (_, owner, d) in state.engine.route_details() {
        if owner == Some(Owner::App(app.name.clone())) {
            detail.add(&d);
        }
    }
    let (containers, unavailable) = match state
        .engine
        .container_stats(Some(&app.name))
        .await
        .map_err(engine_error)?
    {
        ContainerUse::Samples(samples) => (Some(samples), None),
        ContainerUse::Unavailable(why) => (None, Some(why)),
    };
    let views: Vec<ContainerView> = containers
        .iter()
        .flatten()
        .map(|s| ContainerView {
            name: s.container.clone(),
            stats: s.stats,
        })
        .collect();
    Ok(JsonResponse(AppStats {
        app: app.name,
        cpu_seconds: containers
            .as_ref()
            .map(|c| c.iter().map(|s| s.stats.cpu_seconds).sum()),
        memory_bytes: containers
            .as_ref()
            .map(|c| c.iter().map(|s| s.stats.memory_bytes).sum()),
        containers: views,
        unavailable,
        proxy: proxy_view(&detail),
    }))
}
