//! `/api/apps/{app}/env`: an app's environment variables. They apply at its next deployment.
//!
//! A variable marked secret is encrypted before it is stored and is never shown again: lists
//! show it masked. Its value reaches only the container's environment.

use axum::Json as JsonResponse;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::apps::find_app;
use super::error::{ApiError, ErrorBody};
use super::extract::{Json, Path};
use crate::AppState;
use crate::secrets::Purpose;

/// What a secret value is shown as.
pub const MASK: &str = "********";

#[derive(Debug, Serialize, ToSchema)]
pub struct EnvVarView {
    pub key: String,
    /// The value, or `********` for a secret.
    pub value: String,
    pub secret: bool,
    pub updated_at: String,
}

/// `PUT /api/apps/{app}/env/{KEY}` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EnvBody {
    pub value: String,
    /// Encrypt at rest and never show again; default false.
    #[serde(default)]
    pub secret: bool,
}

fn check_key(key: &str) -> Result<(), ApiError> {
    crate::limits::variable_name(key).map_err(|e| ApiError::invalid_value("key", e))
}

/// The app's variables, secret values masked.
#[utoipa::path(
    get,
    path = "/api/apps/{app}/env",
    tag = "env",
    security(("bearer" = [])),
    params(("app" = String, Path, description = "The app's name")),
    responses(
        (status = 200, description = "Every variable, by key", body = Vec<EnvVarView>),
        (status = 404, description = "No such app", body = ErrorBody),
    )
)]
pub async fn list_env(
    State(state): State<AppState>,
    Path(app): Path<String>,
) -> Result<JsonResponse<Vec<EnvVarView>>, ApiError> {
    let app = find_app(&state, &app).await?;
    let vars = state
        .db
        .call(move |c| crate::db::env_vars::list(c, app.id))
        .await
        .map_err(ApiError::internal)?;
    Ok(JsonResponse(
        vars.into_iter()
            .map(|v| EnvVarView {
                value: if v.secret {
                    MASK.to_owned()
                } else {
                    String::from_utf8_lossy(&v.value).into_owned()
                },
                key: v.key,
                secret: v.secret,
                updated_at: v.updated_at,
            })
            .collect(),
    ))
}

/// Sets a variable.
#[utoipa::path(
    put,
    path = "/api/apps/{app}/env/{key}",
    tag = "env",
    security(("bearer" = [])),
    params(("app" = String, Path, description = "The app's name"), ("key" = String, Path, description = "The variable's name")),
    request_body = EnvBody,
    responses(
        (status = 200, description = "Stored (a secret value comes back masked)", body = EnvVarView),
        (status = 404, description = "No such app", body = ErrorBody),
        (status = 422, description = "Not a variable name", body = ErrorBody),
    )
)]
pub async fn set_env(
    State(state): State<AppState>,
    Path((app, key)): Path<(String, String)>,
    Json(body): Json<EnvBody>,
) -> Result<JsonResponse<EnvVarView>, ApiError> {
    check_key(&key)?;
    if body.value.contains('\0') {
        return Err(ApiError::invalid_value(
            "value",
            "a value cannot contain a NUL byte",
        ));
    }
    let app = find_app(&state, &app).await?;
    let app_id = app.id;
    let stored: Vec<u8> = if body.secret {
        state
            .secrets
            .encrypt_str(Purpose::EnvVar { app_id, key: &key }, &body.value)
            .map_err(ApiError::internal)?
    } else {
        body.value.clone().into_bytes()
    };
    let (k, secret) = (key.clone(), body.secret);
    state
        .db
        .call(move |c| crate::db::env_vars::set(c, app_id, &k, &stored, secret))
        .await
        .map_err(ApiError::internal)?;
    tracing::info!(app = %app.name, key = %key, secret, "environment variable set");
    Ok(JsonResponse(EnvVarView {
        value: if body.secret {
            MASK.to_owned()
        } else {
            body.value
        },
        key,
        secret: body.secret,
        updated_at: String::new(),
    }))
}

/// Removes a variable.
#[utoipa::path(
    delete,
    path = "/api/apps/{app}/env/{key}",
    tag = "env",
    security(("bearer" = [])),
    params(("app" = String, Path, description = "The app's name"), ("key" = String, Path, description = "The variable's name")),
    responses(
        (status = 204, description = "Removed"),
        (status = 404, description = "No such app or variable", body = ErrorBody),
    )
)]
pub async fn unset_env(
    State(state): State<AppState>,
    Path((app, key)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let app = find_app(&state, &app).await?;
    let k = key.clone();
    let removed = state
        .db
        .call(move |c| crate::db::env_vars::unset(c, app.id, &k))
        .await
        .map_err(ApiError::internal)?;
    if removed {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("no variable `{key}`")))
    }
}
