//! `/api/notifications`: the channels messages go to (secrets write-only), a test message,
//! and the record of deliveries.

use axum::Json as JsonResponse;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::IntoParams;

use super::error::{ApiError, ErrorBody};
use super::extract::{Json, Path};
use crate::AppState;
use crate::notify::channels::{ChannelUpdate, ChannelView, DeliveryView, NewChannel, NotifyError};

fn notify_error(e: NotifyError) -> ApiError {
    match e {
        NotifyError::NotFound(_) => ApiError::not_found(e.to_string()),
        NotifyError::Conflict(_) => ApiError::conflict(e.to_string()),
        NotifyError::Invalid { field, message } => ApiError::invalid_value(field, message),
        NotifyError::NotDelivered(_) => {
            ApiError::new(StatusCode::BAD_GATEWAY, "not_delivered", e.to_string())
        }
        NotifyError::Db(_) | NotifyError::Secrets(_) => ApiError::internal(e),
    }
}

/// Adds a channel: a signed webhook, Slack, Mattermost, Discord or email.
#[utoipa::path(
    post,
    path = "/api/notifications",
    tag = "notifications",
    security(("bearer" = [])),
    request_body = NewChannel,
    responses(
        (status = 201, description = "Added; a generated signing secret is shown this once", body = ChannelView),
        (status = 409, description = "Name taken", body = ErrorBody),
        (status = 422, description = "An invalid value, named", body = ErrorBody),
    )
)]
pub async fn create_channel(
    State(state): State<AppState>,
    Json(body): Json<NewChannel>,
) -> Result<(StatusCode, JsonResponse<ChannelView>), ApiError> {
    let view = state
        .notifier
        .add_channel(body)
        .await
        .map_err(notify_error)?;
    Ok((StatusCode::CREATED, JsonResponse(view)))
}

#[utoipa::path(
    get,
    path = "/api/notifications",
    tag = "notifications",
    security(("bearer" = [])),
    responses((status = 200, description = "The channels, without their secrets", body = Vec<ChannelView>))
)]
pub async fn list_channels(
    State(state): State<AppState>,
) -> Result<JsonResponse<Vec<ChannelView>>, ApiError> {
    Ok(JsonResponse(
        state.notifier.channels().await.map_err(notify_error)?,
    ))
}

#[utoipa::path(
    get,
    path = "/api/notifications/{name}",
    tag = "notifications",
    security(("bearer" = [])),
    params(("name" = String, Path, description = "The channel's name")),
    responses(
        (status = 200, description = "The channel, without its secrets", body = ChannelView),
        (status = 404, description = "No such channel", body = ErrorBody),
    )
)]
pub async fn get_channel(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<JsonResponse<ChannelView>, ApiError> {
    Ok(JsonResponse(
        state.notifier.channel(&name).await.map_err(notify_error)?,
    ))
}

/// Changes a channel: what is given changes (a secret is replaced), the rest stays.
#[utoipa::path(
    patch,
    path = "/api/notifications/{name}",
    tag = "notifications",
    security(("bearer" = [])),
    params(("name" = String, Path, description = "The channel's name")),
    request_body = ChannelUpdate,
    responses(
        (status = 200, description = "Changed", body = ChannelView),
        (status = 404, description = "No such channel", body = ErrorBody),
        (status = 422, description = "An invalid value, named", body = ErrorBody),
    )
)]
pub async fn update_channel(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Json(body): Json<ChannelUpdate>,
) -> Result<JsonResponse<ChannelView>, ApiError> {
    Ok(JsonResponse(
        state
            .notifier
            .update_channel(&name, body)
            .await
            .map_err(notify_error)?,
    ))
}

/// Removes a channel and the record of its deliveries.
#[utoipa::path(
    delete,
    path = "/api/notifications/{name}",
    tag = "notifications",
    security(("bearer" = [])),
    params(("name" = String, Path, description = "The channel's name")),
    responses(
        (status = 204, description = "Removed"),
        (status = 404, description = "No such channel", body = ErrorBody),
    )
)]
pub async fn delete_channel(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    state
        .notifier
        .remove_channel(&name)
        .await
        .map_err(notify_error)?;
    Ok(StatusCode::NO_CONTENT)
}

/// Sends a test message now, once (no retries), and says whether it got through.
#[utoipa::path(
    post,
    path = "/api/notifications/{name}/test",
    tag = "notifications",
    security(("bearer" = [])),
    params(("name" = String, Path, description = "The channel's name")),
    responses(
        (status = 200, description = "Delivered", body = DeliveryView),
        (status = 404, description = "No such channel", body = ErrorBody),
        (status = 502, description = "Not delivered: the receiver's or the network's words", body = ErrorBody),
    )
)]
pub async fn test_channel(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<JsonResponse<DeliveryView>, ApiError> {
    Ok(JsonResponse(
        state
            .notifier
            .send_test(&name)
            .await
            .map_err(notify_error)?,
    ))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeliveriesQuery {
    /// Only this channel's.
    pub channel: Option<String>,
    /// `pending`, `sent` or `failed`.
    pub status: Option<String>,
    /// At most this many, newest first (default 100, at most 1000).
    /// (Any larger number is taken as 1000; the bound is what the number's type holds.)
    #[param(minimum = 0, maximum = 4294967295_u64)]
    pub limit: Option<u32>,
}

/// The newest deliveries: what was sent, what is being retried, what was given up and why.
#[utoipa::path(
    get,
    path = "/api/notifications/deliveries",
    tag = "notifications",
    security(("bearer" = [])),
    params(DeliveriesQuery),
    responses(
        (status = 200, description = "Newest first", body = Vec<DeliveryView>),
        (status = 404, description = "No such channel", body = ErrorBody),
        (status = 422, description = "An invalid value, named", body = ErrorBody),
    )
)]
pub async fn list_deliveries(
    State(state): State<AppState>,
    Query(q): Query<DeliveriesQuery>,
) -> Result<JsonResponse<Vec<DeliveryView>>, ApiError> {
    let limit = q.limit.unwrap_or(100).clamp(1, 1000) as usize;
    Ok(JsonResponse(
        state
            .notifier
            .deliveries(q.channel, q.status, limit)
            .await
            .map_err(notify_error)?,
    ))
}
