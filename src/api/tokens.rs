//! `GET/POST /api/tokens`, `DELETE /api/tokens/{id}`: API tokens, managed through the API.
//!
//! The token itself is in the creation response only; lists show its name and dates.
//! Deleting a token revokes it: the row stays, so the list shows when it was revoked.

use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json as JsonResponse};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::auth::Caller;
use super::error::{ApiError, ErrorBody};
use super::extract::{Json, Path};
use crate::AppState;
use crate::db::tokens::{Refused, TokenRow};

/// A token as listed. The token itself is never shown again after creation.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenInfo {
    pub id: i64,
    pub name: String,
    /// RFC 3339, UTC.
    pub created_at: String,
    /// The last request made with it, to the minute; null if never used.
    pub last_used_at: Option<String>,
    /// When it was revoked; null while valid.
    pub revoked_at: Option<String>,
    pub revoked: bool,
}

impl From<TokenRow> for TokenInfo {
    fn from(row: TokenRow) -> Self {
        TokenInfo {
            revoked: row.revoked_at.is_some(),
            id: row.id,
            name: row.name,
            created_at: row.created_at,
            last_used_at: row.last_used_at,
            revoked_at: row.revoked_at,
        }
    }
}

/// `POST /api/tokens` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    /// Unique among tokens that are not revoked; 1 to 64 characters, no control characters,
    /// no spaces at either end.
    #[schema(
        min_length = 1,
        max_length = 64,
        pattern = "^[^\\u0000-\\u0020\\u007f-\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]([^\\u0000-\\u001f\\u007f-\\u009f]{0,62}[^\\u0000-\\u0020\\u007f-\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000])?$"
    )]
    pub name: String,
}

/// `POST /api/tokens` answer: the token's details and, this once, the token.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedTokenBody {
    #[serde(flatten)]
    pub info: TokenInfo,
    /// `rvt_` and 64 hex digits. Shown only in this response: store it now.
    pub token: String,
}

/// Lists every token, revoked ones included, oldest first.
#[utoipa::path(
    get,
    path = "/api/tokens",
    tag = "tokens",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Every token", body = Vec<TokenInfo>),
        (status = 401, description = "No valid token", body = ErrorBody),
    )
)]
pub async fn list_tokens(
    State(state): State<AppState>,
) -> Result<JsonResponse<Vec<TokenInfo>>, ApiError> {
    let rows = state
        .db
        .call(crate::db::tokens::list)
        .await
        .map_err(ApiError::internal)?;
    Ok(JsonResponse(
        rows.into_iter().map(TokenInfo::from).collect(),
    ))
}

/// Creates a token and shows it, once.
#[utoipa::path(
    post,
    path = "/api/tokens",
    tag = "tokens",
    security(("bearer" = [])),
    request_body = CreateToken,
    responses(
        (status = 201, description = "Created; `token` is shown only here", body = CreatedTokenBody),
        (status = 400, description = "Malformed JSON, or a missing or unknown field", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 409, description = "A token that is not revoked has this name", body = ErrorBody),
        (status = 413, description = "Body over 1 MiB", body = ErrorBody),
        (status = 422, description = "Invalid name", body = ErrorBody),
    )
)]
pub async fn create_token(
    State(state): State<AppState>,
    caller: Option<Extension<Caller>>,
    Json(body): Json<CreateToken>,
) -> Result<(StatusCode, JsonResponse<CreatedTokenBody>), ApiError> {
    crate::auth::validate_name(&body.name).map_err(|e| ApiError::invalid_value("name", e))?;
    let created = crate::auth::create(&state.db, &body.name)
        .await
        .map_err(ApiError::internal)?
        .map_err(|_| {
            ApiError::conflict(format!(
                "a token named `{}` already exists; revoke it or choose another name",
                body.name
            ))
        })?;
    let by = caller.map(|Extension(c)| c.token_name).unwrap_or_default();
    tracing::info!(id = created.row.id, name = %created.row.name, by = %by, "API token created");
    refresh_live_tokens(&state).await;
    let body = CreatedTokenBody {
        token: created.token.expose().to_owned(),
        info: created.row.into(),
    };
    Ok((StatusCode::CREATED, JsonResponse(body)))
}

/// Revokes a token: its next request fails. The row stays listed.
#[utoipa::path(
    delete,
    path = "/api/tokens/{id}",
    tag = "tokens",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "The token's id")),
    responses(
        (status = 200, description = "Revoked", body = TokenInfo),
        (status = 400, description = "The id is not a number", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 404, description = "No token with this id", body = ErrorBody),
        (status = 409, description = "Already revoked", body = ErrorBody),
    )
)]
pub async fn revoke_token(
    State(state): State<AppState>,
    caller: Option<Extension<Caller>>,
    Path(id): Path<i64>,
) -> Result<JsonResponse<TokenInfo>, ApiError> {
    let outcome = state
        .db
        .call(move |c| crate::db::tokens::revoke(c, id))
        .await
        .map_err(ApiError::internal)?;
    match outcome {
        Ok(row) => {
            let by = caller.map(|Extension(c)| c.token_name).unwrap_or_default();
            tracing::info!(id, name = %row.name, by = %by, "API token revoked");
            state.streams.end_token(id);
            refresh_live_tokens(&state).await;
            Ok(JsonResponse(row.into()))
        }
        Err(Refused::NotFound) => Err(ApiError::not_found(format!("no token with id {id}"))),
        Err(Refused::AlreadyRevoked(at)) => Err(ApiError::conflict(format!(
            "token {id} was already revoked at {at}"
        ))),
        Err(Refused::NameTaken) => Err(ApiError::internal("revoke reported a name conflict")),
    }
}

/// Reads the live tokens again after a change, so the change counts from the next request.
async fn refresh_live_tokens(state: &AppState) {
    if let Err(e) = state.live_tokens.refresh(&state.db).await {
        // The periodic reading catches up within seconds.
        tracing::warn!(error = %e, "cannot read the live API tokens");
    }
}
